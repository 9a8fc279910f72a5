//! Undo what migration runs did to a drawer, from the drawer's own `meta.migration`.

use bson::{Bson, Document};

use super::meta::{MigrationMeta, ARRAYS};
use super::{path, LegacyKind};

/// What rollback does with one drawer.
#[derive(Debug, Clone, PartialEq)]
pub enum Undo {
    /// The migration created the drawer and nothing else was written to it since: delete it.
    Delete,
    /// Store this document instead (migration's additions removed, dual-write's kept).
    Replace(Document),
    /// No migration touched this drawer.
    Unchanged,
}

/// Removes exactly what migration runs added: their keys from each array,
/// their `set` paths restored (absent before → removed), `meta.migration`
/// itself. Entries whose key the migration did not add — e.g. a questionnaire
/// dual-written after the migration — are kept.
pub fn undo(drawer: &Document) -> Undo {
    let m = MigrationMeta::read(drawer);
    if !m.present {
        return Undo::Unchanged;
    }
    let mut d = drawer.clone();
    for (i, spec) in ARRAYS.iter().enumerate() {
        if m.added[i].is_empty() {
            continue;
        }
        if let Some(Bson::Array(items)) = path::get(&d, spec.path) {
            let kept: Vec<Bson> = items
                .iter()
                .filter(|e| !spec.key_of(e).is_some_and(|k| m.owns(i, &k)))
                .cloned()
                .collect();
            path::set(&mut d, spec.path, Bson::Array(kept));
        }
    }
    for r in m.set.iter().rev() {
        if r.existed {
            path::set(&mut d, &r.path, r.before.clone());
        } else {
            path::remove(&mut d, &r.path);
        }
    }
    path::remove(&mut d, "meta.migration");
    if m.created_drawer && hollow(&d) {
        Undo::Delete
    } else {
        Undo::Replace(d)
    }
}

/// Legacy plans the migration stamped (`snapshot_id`, `client_drawer_id`):
/// rollback unsets both fields on each.
pub fn stamps_to_undo(drawer: &Document) -> Vec<(LegacyKind, Bson)> {
    MigrationMeta::read(drawer).stamped
}

/// `_id`s in `client_drawer_snapshot_archive` that migration runs wrote for this drawer.
pub fn archive_ids_to_undo(drawer: &Document) -> Vec<String> {
    let id = drawer
        .get("_id")
        .map(crate::mapping::id_key)
        .unwrap_or_default();
    MigrationMeta::read(drawer)
        .archived
        .iter()
        .map(|s| format!("{id}:{s}"))
        .collect()
}

/// Nothing but the skeleton: ids, timestamps, status and empty containers.
fn hollow(d: &Document) -> bool {
    d.iter().all(|(k, v)| match k.as_str() {
        "_id" | "user_id" => true,
        "meta" => v.as_document().is_some_and(|m| {
            m.iter().all(|(k, v)| {
                matches!(
                    k.as_str(),
                    "created_at" | "updated_at" | "status" | "has_archived_snapshots"
                ) || empty(v)
            })
        }),
        _ => empty(v),
    })
}

fn empty(v: &Bson) -> bool {
    match v {
        Bson::Null | Bson::Boolean(false) => true,
        Bson::Array(a) => a.is_empty(),
        Bson::Document(d) => d.values().all(empty),
        _ => false,
    }
}
