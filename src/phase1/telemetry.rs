//! The production report's telemetry (`get_global_telemetry`): drawers,
//! shared questionnaires, training and nutrition plans, and the averages per
//! drawer; plus the earliest entry dual-write wrote, where a check starts
//! when no `phase1 enable` is recorded. One streaming pass over the drawers.

use crate::config::Config;
use crate::drawer::added_by_migration;
use crate::error::CommandResult;
use crate::mapping::{date_millis, id_key};
use crate::store::{Scan, Store};
use bson::{Bson, Document};
use serde::Serialize;

/// The figures `get_global_telemetry()` returns in production.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Telemetry {
    /// Drawers.
    pub total_drawers: u64,
    /// Entries of `services.shared_questionnaires` in all drawers.
    pub total_shared_questionnaires: u64,
    /// Entries of `services.training.plans`.
    pub total_training_plans: u64,
    /// Entries of `services.nutrition.plans`.
    pub total_nutrition_plans: u64,
    /// Shared questionnaires per drawer.
    pub avg_questionnaires_per_drawer: f64,
    /// Training plans per drawer.
    pub avg_training_plans_per_drawer: f64,
    /// Nutrition plans per drawer.
    pub avg_nutrition_plans_per_drawer: f64,
}

/// Telemetry and the earliest dual-write entry (milliseconds), in one pass.
pub fn read(store: &dyn Store, config: &Config) -> CommandResult<(Telemetry, Option<i64>)> {
    let mut t = Telemetry::default();
    let mut earliest: Option<i64> = None;
    for drawer in store.scan(&config.drawers_ns(), &Scan::by_id(500))? {
        let drawer = drawer?;
        t.total_drawers += 1;
        let shared = array(&drawer, &["services", "shared_questionnaires"]);
        t.total_shared_questionnaires += shared.len() as u64;
        t.total_training_plans += array(&drawer, &["services", "training", "plans"]).len() as u64;
        t.total_nutrition_plans += array(&drawer, &["services", "nutrition", "plans"]).len() as u64;
        let migrated = added_by_migration(&drawer, "services.shared_questionnaires");
        for entry in shared.iter().filter_map(Bson::as_document) {
            let by_migration = entry
                .get("submission_id")
                .is_some_and(|id| migrated.contains(&id_key(id)));
            if let (false, Some(at)) = (by_migration, date_millis(entry.get("submitted_at"))) {
                earliest = Some(earliest.map_or(at, |e| e.min(at)));
            }
        }
    }
    let avg = |n: u64| {
        if t.total_drawers == 0 {
            0.0
        } else {
            (n as f64 / t.total_drawers as f64 * 1000.0).round() / 1000.0
        }
    };
    t.avg_questionnaires_per_drawer = avg(t.total_shared_questionnaires);
    t.avg_training_plans_per_drawer = avg(t.total_training_plans);
    t.avg_nutrition_plans_per_drawer = avg(t.total_nutrition_plans);
    Ok((t, earliest))
}

fn array<'a>(doc: &'a Document, path: &[&str]) -> &'a [Bson] {
    let mut cur = doc;
    for (i, part) in path.iter().enumerate() {
        if i + 1 == path.len() {
            return cur.get_array(part).map(Vec::as_slice).unwrap_or(&[]);
        }
        match cur.get_document(part) {
            Ok(d) => cur = d,
            Err(_) => return &[],
        }
    }
    &[]
}
