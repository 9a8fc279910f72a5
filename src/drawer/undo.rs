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
/// itself, and the containers they created that are empty again. Entries whose key the migration did not add — e.g. a questionnaire
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
    let mut created: Vec<&String> = m.created.iter().collect();
    created.sort_by_key(|p| std::cmp::Reverse(p.matches('.').count()));
    for p in created {
        if path::get(&d, p).is_some_and(bare) {
            path::remove(&mut d, p);
        }
    }
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

/// The keys (as id keys) migration runs added to the array at `path`:
/// whatever else the array holds was written by someone else (dual-write).
pub fn added_by_migration(drawer: &Document, path: &str) -> Vec<String> {
    let m = MigrationMeta::read(drawer);
    ARRAYS
        .iter()
        .position(|a| a.path == path)
        .map(|i| m.added[i].iter().map(crate::mapping::id_key).collect())
        .unwrap_or_default()
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

/// What the builder creates as a container: `{}`, `[]` or `null`.
fn bare(v: &Bson) -> bool {
    match v {
        Bson::Null => true,
        Bson::Array(a) => a.is_empty(),
        Bson::Document(d) => d.is_empty(),
        _ => false,
    }
}

fn empty(v: &Bson) -> bool {
    match v {
        Bson::Null | Bson::Boolean(false) => true,
        Bson::Array(a) => a.is_empty(),
        Bson::Document(d) => d.values().all(empty),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drawer::{build, BuildOptions, LegacyUser};
    use bson::doc;

    fn user() -> LegacyUser {
        let sub = doc! { "_id": "s1", "user_id": "u1", "submitted_at": bson::DateTime::from_millis(1_000),
        "responses": { "peso": "80", "nombre_completo": "X" } };
        let fup = doc! { "_id": "f1", "user_id": "u1", "submission_date": bson::DateTime::from_millis(2_000),
        "measurements": { "peso": "79" } };
        let plan = doc! { "_id": "t1", "user_id": "u1", "generated_at": bson::DateTime::from_millis(1_500), "job_id": "j1" };
        LegacyUser {
            user_id: "u1".into(),
            submissions: vec![sub],
            followups: vec![fup],
            training_plans: vec![plan],
            nutrition_plans: Vec::new(),
            sizes: Default::default(),
        }
    }

    fn bytes(d: &Document) -> Vec<u8> {
        bson::to_vec(d).unwrap()
    }

    #[test]
    fn a_drawer_lacking_most_blocks_comes_back_byte_for_byte() {
        let u = user();
        let entry = doc! { "submission_id": "s1", "submitted_at": bson::DateTime::from_millis(1_000),
        "source": "nutrition_initial", "raw_payload": u.submissions[0].clone() };
        let shapes = [
            doc! { "_id": "client_u1", "user_id": "u1", "services": { "shared_questionnaires": [entry.clone()] } },
            doc! { "_id": "client_u1", "user_id": "u1", "services": { "shared_questionnaires": [entry.clone()],
            "training": { "plans": Bson::Null } }, "meta": { "updated_at": bson::DateTime::from_millis(5) } },
            doc! { "_id": "client_u1", "user_id": "u1", "profile": { "email": "e" },
            "services": { "shared_questionnaires": [entry], "nutrition": { "plans": [] } },
            "meta": { "created_at": bson::DateTime::from_millis(5), "status": "active" } },
        ];
        for original in shapes {
            let opts = BuildOptions::new(bson::DateTime::from_millis(9_000), "run-1");
            let migrated = build(&u, Some(&original), &opts).drawer;
            assert!(path::get(&migrated, "services.training.snapshots").is_some());
            let Undo::Replace(back) = undo(&migrated) else {
                panic!("expected Replace")
            };
            assert_eq!(bytes(&back), bytes(&original), "{back}\n{original}");
        }
    }

    #[test]
    fn containers_that_dual_write_filled_since_are_kept() {
        let u = user();
        let original = doc! { "_id": "client_u1", "user_id": "u1", "services": { "shared_questionnaires": [] } };
        let opts = BuildOptions::new(bson::DateTime::from_millis(9_000), "run-1");
        let mut migrated = build(&u, Some(&original), &opts).drawer;
        let later = doc! { "submission_id": "s9", "source": "followup" };
        path::set(
            &mut migrated,
            "services.training.questionnaires.followups",
            Bson::Array(vec![Bson::Document(later.clone())]),
        );
        let Undo::Replace(back) = undo(&migrated) else {
            panic!("expected Replace")
        };
        assert_eq!(
            back,
            doc! { "_id": "client_u1", "user_id": "u1", "services": { "shared_questionnaires": [],
            "training": { "questionnaires": { "followups": [later] } } } }
        );
    }
}
