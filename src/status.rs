//! `status`: where the migration stands, read-only.

use crate::config::{own, Config};
use crate::error::CommandResult;
use crate::phase0::IndexPlan;
use crate::report::{table, Output};
use crate::run::record::{all_runs, RunRecord};
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
    let runs = all_runs(store, config)?;
    let (runs_text, phase2) = phase2_state(&runs);
    let text = format!("{text}{runs_text}");
    let recent: Vec<Value> = runs.iter().rev().take(RECENT_RUNS).map(run_json).collect();
    let json = json!({
        "store": store.describe(),
        "databases": { "legacy": config.legacy_db, "drawer": config.drawer_db },
        "collections": Value::Object(collections),
        "indexes": indexes,
        "phase0": { "ready": phase0_ready, "missing_indexes": missing },
        "phase2": phase2,
        "runs": recent,
    });
    Ok(Output { text, json })
}

/// How many of the latest runs `status` lists.
const RECENT_RUNS: usize = 5;

/// Where phase 2 stands, from the run records: the last migration and
/// whether the last validation passed (what the phase 3 gate will need).
fn phase2_state(runs: &[RunRecord]) -> (String, Value) {
    let last = |prefix: &str| runs.iter().rev().find(|r| r.command.starts_with(prefix));
    let migrate = last("phase2 migrate");
    let validate = last("phase2 validate");
    let validated = validate.is_some_and(|r| r.outcome == "passed");
    let mut text = match migrate {
        Some(r) => format!("phase 2: last migration {} ({}, {})\n", r.outcome, r.command, r.run_id),
        None => "phase 2: not migrated yet: run `edn-migrate phase2 backup`, then `edn-migrate phase2 migrate all`\n".to_string(),
    };
    text.push_str(match validate {
        Some(_) if validated => "phase 2: last validation passed\n",
        Some(_) => "phase 2: last validation FAILED: see its report, fix, re-run `edn-migrate phase2 validate`\n",
        None => "phase 2: not validated yet\n",
    });
    if !runs.is_empty() {
        let mut rows = vec![vec![
            "run".to_string(),
            "command".into(),
            "outcome".into(),
            "started".into(),
        ]];
        rows.extend(runs.iter().rev().take(RECENT_RUNS).map(|r| {
            vec![
                r.run_id.clone(),
                r.command.clone(),
                r.outcome.clone(),
                r.started_at.clone(),
            ]
        }));
        text.push_str("last runs\n");
        text.push_str(&table(&rows));
    }
    let json = json!({
        "last_migration": migrate.map(run_json),
        "validated": validated,
    });
    (text, json)
}

fn run_json(r: &RunRecord) -> Value {
    json!({
        "run_id": r.run_id, "command": r.command, "outcome": r.outcome,
        "started_at": r.started_at, "ended_at": r.ended_at,
        "users": r.tally.users, "writes": r.tally.writes,
    })
}
