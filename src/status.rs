//! `status`: where the migration stands, read-only.

use crate::config::{own, Config};
use crate::error::CommandResult;
use crate::phase0::IndexPlan;
use crate::report::{table, Output};
use crate::store::Store;
use serde_json::{json, Map, Value};

/// The top-level entry point for `status`.
pub fn status(store: &dyn Store, config: &Config) -> CommandResult<Output> {
    let mut rows = vec![vec![
        "database".into(),
        "collection".into(),
        "documents".into(),
    ]];
    let mut collections = Map::new();
    let mut legacy_total = 0;
    for coll in config.legacy_collections() {
        let n = store.count(&config.legacy(coll))?;
        legacy_total += n;
        rows.push(vec![
            config.legacy_db.clone(),
            coll.to_string(),
            n.to_string(),
        ]);
        collections.insert(coll.to_string(), json!(n));
    }
    let drawer_colls = [
        config.drawers.as_str(),
        own::QUARANTINE,
        own::SNAPSHOT_ARCHIVE,
        own::RUNS,
    ];
    for coll in drawer_colls {
        let n = store.count(&config.drawer(coll))?;
        rows.push(vec![
            config.drawer_db.clone(),
            coll.to_string(),
            n.to_string(),
        ]);
        collections.insert(coll.to_string(), json!(n));
    }
    let indexes: Vec<String> = store
        .list_indexes(&config.drawers_ns())?
        .into_iter()
        .map(|i| i.name)
        .collect();
    let wanted = IndexPlan::builtin()?.drawers;
    let missing: Vec<&str> = wanted
        .iter()
        .filter(|w| !indexes.contains(&w.name))
        .map(|w| w.name.as_str())
        .collect();
    let drawers_exist = store
        .list_collections(&config.drawer_db)?
        .contains(&config.drawers);
    let phase0_ready = drawers_exist && missing.is_empty();
    let phase0_line = if phase0_ready {
        "phase 0: ready (client_drawers and its indexes exist)".to_string()
    } else {
        format!(
            "phase 0: not ready ({}): run `edn-migrate phase0 prepare`",
            if drawers_exist {
                format!("missing indexes: {}", missing.join(", "))
            } else {
                "no client_drawers collection".into()
            }
        )
    };
    let text = format!(
        "store: {}\nlegacy database: {} ({legacy_total} documents)   drawer database: {}\n{}\nindexes of {}: {}\n{phase0_line}\n",
        store.describe(),
        config.legacy_db,
        config.drawer_db,
        table(&rows),
        config.drawers,
        if indexes.is_empty() { "none".to_string() } else { indexes.join(", ") },
    );
    let json = json!({
        "store": store.describe(),
        "databases": { "legacy": config.legacy_db, "drawer": config.drawer_db },
        "collections": Value::Object(collections),
        "indexes": indexes,
        "phase0": { "ready": phase0_ready, "missing_indexes": missing },
    });
    Ok(Output { text, json })
}
