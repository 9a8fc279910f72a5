//! What the migration left in the fresh store, read once before the
//! rollback: drawer sizes against MongoDB's 16 MiB limit, and the quarantine
//! by collection and reason. Ids, sizes and reasons only, never a value.

use crate::config::{own, Config};
use crate::error::CommandResult;
use crate::store::{Scan, Store};
use bson::Bson;
use serde::Serialize;
use std::collections::BTreeMap;

/// MongoDB refuses a document larger than this.
pub const LIMIT_BYTES: u64 = 16 * 1024 * 1024;
/// How many of the largest drawers the report names.
const LARGEST: usize = 10;
/// Upper bounds of the size classes of the drawer-size chart.
const CLASSES: [(u64, &str); 9] = [
    (4 << 10, "< 4 KiB"),
    (16 << 10, "4–16 KiB"),
    (64 << 10, "16–64 KiB"),
    (256 << 10, "64–256 KiB"),
    (1 << 20, "256 KiB–1 MiB"),
    (4 << 20, "1–4 MiB"),
    (12 << 20, "4–12 MiB"),
    (16 << 20, "12–16 MiB"),
    (u64::MAX, "≥ 16 MiB"),
];

/// The migrated store, as the report shows it.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Inspection {
    /// Drawers and their sizes.
    pub drawers: DrawerSizes,
    /// Quarantined documents by collection and reason.
    pub quarantine: Vec<QuarantineGroup>,
}

/// Drawer sizes (BSON bytes, as MongoDB counts them against its limit).
#[derive(Debug, Clone, Serialize, Default)]
pub struct DrawerSizes {
    /// Drawers in the store.
    pub count: u64,
    /// Their total size.
    pub total_bytes: u64,
    /// MongoDB's limit on one document.
    pub limit_bytes: u64,
    /// The largest, biggest first.
    pub largest: Vec<DrawerSize>,
    /// How many drawers fall in each size class.
    pub classes: Vec<SizeClass>,
    /// Snapshots moved to the archive because a drawer grew too large.
    pub archived_snapshots: u64,
}

/// One drawer's size.
#[derive(Debug, Clone, Serialize)]
pub struct DrawerSize {
    /// The drawer's `_id`.
    pub drawer_id: String,
    /// Its size in bytes.
    pub bytes: u64,
    /// Its size as a fraction of the 16 MiB limit.
    pub of_limit: f64,
}

/// Drawers whose size falls in one class.
#[derive(Debug, Clone, Serialize)]
pub struct SizeClass {
    /// The class, e.g. `4–16 KiB`.
    pub label: String,
    /// Drawers in it.
    pub drawers: u64,
}

/// Quarantined documents of one collection for one reason.
#[derive(Debug, Clone, Serialize)]
pub struct QuarantineGroup {
    /// The legacy collection.
    pub collection: String,
    /// Why they could not be migrated.
    pub reason: String,
    /// How many.
    pub documents: u64,
}

/// Reads the drawers and the quarantine.
pub fn inspect(store: &dyn Store, config: &Config) -> CommandResult<Inspection> {
    Ok(Inspection {
        drawers: drawer_sizes(store, config)?,
        quarantine: quarantine(store, config)?,
    })
}

fn drawer_sizes(store: &dyn Store, config: &Config) -> CommandResult<DrawerSizes> {
    let mut sizes = DrawerSizes {
        limit_bytes: LIMIT_BYTES,
        archived_snapshots: store.count(&config.drawer(own::SNAPSHOT_ARCHIVE))?,
        ..DrawerSizes::default()
    };
    let mut classes = [0u64; CLASSES.len()];
    let mut largest: Vec<(u64, String)> = Vec::new();
    for doc in store.scan(&config.drawers_ns(), &Scan::by_id(500))? {
        let doc = doc?;
        let bytes = bson::to_vec(&doc).map_or(0, |b| b.len() as u64);
        sizes.count += 1;
        sizes.total_bytes += bytes;
        let class = CLASSES
            .iter()
            .position(|(max, _)| bytes < *max)
            .unwrap_or(0);
        classes[class] += 1;
        let id = match doc.get("_id") {
            Some(Bson::String(s)) => s.clone(),
            Some(other) => crate::phase2::compare::render_id(other),
            None => String::new(),
        };
        largest.push((bytes, id));
        if largest.len() > 4 * LARGEST {
            keep_largest(&mut largest);
        }
    }
    keep_largest(&mut largest);
    sizes.largest = largest
        .into_iter()
        .map(|(bytes, drawer_id)| DrawerSize {
            drawer_id,
            bytes,
            of_limit: bytes as f64 / LIMIT_BYTES as f64,
        })
        .collect();
    sizes.classes = CLASSES
        .iter()
        .zip(classes)
        .map(|((_, label), drawers)| SizeClass {
            label: label.to_string(),
            drawers,
        })
        .collect();
    Ok(sizes)
}

/// Biggest first, ties by id, at most `LARGEST`.
fn keep_largest(list: &mut Vec<(u64, String)>) {
    list.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    list.truncate(LARGEST);
}

fn quarantine(store: &dyn Store, config: &Config) -> CommandResult<Vec<QuarantineGroup>> {
    let mut groups: BTreeMap<(String, String), u64> = BTreeMap::new();
    for doc in store.scan(&config.drawer(own::QUARANTINE), &Scan::by_id(1000))? {
        let doc = doc?;
        let collection = doc.get_str("source_collection").unwrap_or("?").to_string();
        let reason = doc
            .get_str("reason")
            .unwrap_or("no reason recorded")
            .to_string();
        *groups.entry((collection, reason)).or_default() += 1;
    }
    Ok(groups
        .into_iter()
        .map(|((collection, reason), documents)| QuarantineGroup {
            collection,
            reason,
            documents,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_largest_are_kept_biggest_first() {
        let mut list: Vec<(u64, String)> = (0..30).map(|i| (i % 17, format!("d{i:02}"))).collect();
        keep_largest(&mut list);
        assert_eq!(list.len(), LARGEST);
        assert_eq!(list[0], (16, "d16".to_string()));
        assert_eq!(list[1], (15, "d15".to_string()));
        assert!(list.windows(2).all(|w| w[0].0 >= w[1].0));
    }

    #[test]
    fn size_classes_cover_every_size_once() {
        let class = |bytes: u64| CLASSES.iter().position(|(max, _)| bytes < *max).unwrap();
        assert_eq!(class(0), 0);
        assert_eq!(class(4095), 0);
        assert_eq!(class(4096), 1);
        assert_eq!(class(LIMIT_BYTES - 1), 7);
        assert_eq!(class(LIMIT_BYTES), 8);
    }
}
