//! Test support: stores for the contract suite and the wire test server.
#![allow(dead_code)]

pub mod exports;
pub mod fixtures;
pub mod tool;
pub mod wire;

#[allow(unused_imports)]
pub use fixtures::*;

use edn_migrate::store::{sqlite::SqliteStore, Store};

/// A fresh in-memory SQLite store and a database name for one case.
pub fn sqlite_store(case: &str) -> Option<(Box<dyn Store>, String)> {
    let store = SqliteStore::open(":memory:").expect("in-memory SQLite opens");
    Some((Box::new(store), format!("db_{case}")))
}

/// A MongoDB store connected to the shared wire test server, with a database
/// name no other case uses; `None` only when the operator opted out.
pub fn wire_store(case: &str) -> Option<(Box<dyn Store>, String)> {
    let url = wire::url()?;
    let store = edn_migrate::store::mongo::MongoStore::connect(&url)
        .unwrap_or_else(|e| panic!("cannot connect to the wire test server at {url}: {e}"));
    Some((Box::new(store), wire::fresh_db(case)))
}

pub mod plan_validator;

use edn_migrate::drawer::{build, validate, BuildOptions, Built, LegacyUser};

/// Builds a drawer and checks it with both validators (ours and the plan's
/// `validate_drawer`), so every drawer a test builds is held to both.
pub fn build_checked(
    user: &LegacyUser,
    existing: Option<&bson::Document>,
    opts: &BuildOptions,
) -> Built {
    let built = build(user, existing, opts);
    let encoded = if built.changed {
        bson::to_vec(&built.drawer).unwrap().len()
    } else {
        0
    };
    assert_eq!(built.bytes, encoded, "{}: Built::bytes", user.user_id);
    if !built.drawer.is_empty() {
        let ours = validate(&built.drawer, &[]);
        assert!(ours.is_empty(), "{}: {ours:?}", user.user_id);
        plan_validator::assert_plan_accepts(&built.drawer);
        assert_dates_are_bson_dates(&built.drawer);
    }
    built
}

/// Every date field of the drawer schema, outside `raw_payload` and the
/// verbatim answers: each must be a BSON date (or null where nothing set it).
pub const DATE_FIELDS: [&str; 14] = [
    "profile.fecha_nacimiento",
    "profile.created_at",
    "profile.updated_at",
    "services.shared_questionnaires[].submitted_at",
    "services.training.enrolled_at",
    "services.training.questionnaires.inicial.submitted_at",
    "services.training.questionnaires.followups[].submitted_at",
    "services.training.measurements[].date",
    "services.training.snapshots[].created_at",
    "services.training.plans[].generated_at",
    "services.nutrition.plans[].generated_at",
    "meta.created_at",
    "meta.updated_at",
    "meta.migration.migrated_at",
];

/// The values at a `DATE_FIELDS` path (`[]` steps into every array entry).
pub fn values_at<'a>(d: &'a bson::Document, path: &str) -> Vec<&'a bson::Bson> {
    let mut current: Vec<&bson::Bson> = Vec::new();
    let mut first = true;
    for part in path.split('.') {
        let (name, each) = match part.strip_suffix("[]") {
            Some(n) => (n, true),
            None => (part, false),
        };
        let mut next = Vec::new();
        let parents: Vec<&bson::Document> = if first {
            vec![d]
        } else {
            current.iter().filter_map(|v| v.as_document()).collect()
        };
        first = false;
        for p in parents {
            match (p.get(name), each) {
                (Some(bson::Bson::Array(items)), true) => next.extend(items.iter()),
                (Some(v), false) => next.push(v),
                _ => {}
            }
        }
        current = next;
    }
    current
}

/// Panics naming the path unless every date field is a BSON date or null.
pub fn assert_dates_are_bson_dates(drawer: &bson::Document) {
    for path in DATE_FIELDS {
        for v in values_at(drawer, path) {
            assert!(
                matches!(v, bson::Bson::DateTime(_) | bson::Bson::Null),
                "{}: {path} is {:?}, not a BSON date",
                drawer.get("_id").map(|v| v.to_string()).unwrap_or_default(),
                v.element_type()
            );
        }
    }
}
