//! Test support: stores for the contract suite and the wire test server.
#![allow(dead_code)]

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
    if !built.drawer.is_empty() {
        let ours = validate(&built.drawer, &[]);
        assert!(ours.is_empty(), "{}: {ours:?}", user.user_id);
        plan_validator::assert_plan_accepts(&built.drawer);
    }
    built
}
