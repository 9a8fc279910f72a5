//! `status`: where the migration stands, read-only: the phase (derived from
//! the store and the flags, so it is right after any rollback), every gate
//! with why, the flags, the backup's age, the lock holder, the last runs and
//! the one command to run next.

use crate::config::{own, Config};
use crate::error::CommandResult;
use crate::flags::{ALL, READ, WRITE};
use crate::gates::facts::{human, Facts};
use crate::gates::{self, phase, Sources};
use crate::phase0::IndexPlan;
use crate::phase2::partitions::{Partitioning, State};
use crate::report::{table, Output};
use crate::run::record::{Checkpoint, RunRecord};
use crate::run::PHASE2_LOCK;
use crate::store::Store;
use bson::Bson;
use chrono::Utc;
use serde_json::{json, Map, Value};

/// The top-level entry point for `status`.
pub fn status(store: &dyn Store, config: &Config, sources: &Sources) -> CommandResult<Output> {
    let facts = Facts::new(store, config, sources.clone(), Utc::now());
    let Output { text, mut json } = inventory(store, config, &facts)?;
    let (more_text, more_json) = state_machine(&facts)?;
    if let (Some(map), Value::Object(more)) = (json.as_object_mut(), more_json) {
        map.extend(more);
    }
    Ok(Output {
        text: format!("{text}{more_text}"),
        json,
    })
}

/// Phase, gates, flags, backup, lock, next: the part of `status` a script
/// reads (`phase`, `gates`, `flags`, `backup_age_s`, `lock`, `last_runs`, `next`).
fn state_machine(f: &Facts) -> CommandResult<(String, Value)> {
    let current = phase::current(f)?;
    let next = phase::next(f, &current)?;
    let gates = gates::all(f)?;
    let env = f.env();
    let mut flags = Map::new();
    for key in ALL {
        flags.insert(key.into(), f.flag(key).map_or(Value::Null, Value::Bool));
    }
    let backup = f.backup();
    let age = f.backup_age();
    let lock = lock_json(f)?;
    let last_runs: Vec<Value> = f
        .runs()?
        .iter()
        .rev()
        .take(RECENT_RUNS)
        .map(run_json)
        .collect();
    let mut text = format!(
        "phase {}: {}
",
        current.number, current.state
    );
    let flag_line: Vec<String> = ALL
        .iter()
        .map(|k| match f.flag(k) {
            Some(v) => format!("{k}={v}"),
            None => format!("{k}=?"),
        })
        .collect();
    text.push_str(&match env {
        Ok(file) => format!(
            "flags ({}): {}\n",
            file.path().display(),
            flag_line.join("  ")
        ),
        Err(e) => format!("flags: unknown: {e}\n"),
    });
    if let Ok(file) = env {
        for d in file.duplicates() {
            text.push_str(&format!(
                "  warning: {d} is set on several lines of {}\n",
                file.path().display()
            ));
        }
    }
    text.push_str(&match (backup, age) {
        (Ok(m), Some(a)) => format!("backup: {} verified, taken {} ago\n", m.id, human(a)),
        (Ok(m), None) => format!("backup: {} (date unreadable)\n", m.id),
        (Err(why), _) => format!("backup: {}\n", why.lines().next().unwrap_or_default()),
    });
    let locks = locks_json(f)?;
    if locks.is_empty() {
        text.push_str("lock: free\n");
    }
    for l in &locks {
        let name = l["name"].as_str().unwrap_or("?");
        text.push_str(&format!(
            "lock{}: {} by {} (run {}), expires {}\n",
            if name == PHASE2_LOCK {
                String::new()
            } else {
                format!(" {name}")
            },
            if l["expired"] == true {
                "EXPIRED lease held"
            } else {
                "held"
            },
            l["owner"].as_str().unwrap_or("?"),
            l["run_id"].as_str().unwrap_or("?"),
            l["expires_at"].as_str().unwrap_or("?")
        ));
    }
    let mut rows = vec![vec![
        "gate".to_string(),
        "".into(),
        "for".into(),
        "why".into(),
    ]];
    for (g, guards) in &gates {
        rows.push(vec![
            g.name.to_string(),
            if g.ok { "ok".into() } else { "NOT MET".into() },
            guards.join(", "),
            g.why.clone(),
        ]);
    }
    text.push_str("gates\n");
    text.push_str(&table(&rows));
    text.push_str(&format!("next: {next}\n"));
    let gates_json: Vec<Value> = gates
        .iter()
        .map(|(g, guards)| json!({ "name": g.name, "ok": g.ok, "why": g.why, "for": guards }))
        .collect();
    let json = json!({
        "phase": current.number,
        "phase_state": current.state,
        "gates": gates_json,
        "flags": flags,
        "env_file": {
            "path": f.sources.env_file.display().to_string(),
            "readable": env.is_ok(),
            "error": env.err(),
            "duplicates": env.map(|e| e.duplicates()).unwrap_or_default(),
        },
        "backup_age_s": age.map(|a| a.num_seconds()),
        "backup_id": backup.ok().map(|m| m.id.clone()),
        "lock": lock,
        "locks": locks,
        "last_runs": last_runs,
        "next": next,
        "dual_write": f.flag(WRITE),
        "reads_from_drawers": f.flag(READ),
    });
    Ok((text, json))
}

/// The whole phase 2 lease when someone holds it (or held it and died: `expired`).
fn lock_json(f: &Facts) -> CommandResult<Value> {
    let Some(doc) = f.lock()? else {
        return Ok(Value::Null);
    };
    lease_json(f, doc)
}

/// Every phase 2 lease not released, whole and per partition.
fn locks_json(f: &Facts) -> CommandResult<Vec<Value>> {
    let mut out = Vec::new();
    for doc in f.leases()? {
        let name = doc.get_str("_id").unwrap_or_default();
        if name == PHASE2_LOCK || name.starts_with(&format!("{PHASE2_LOCK}:")) {
            let v = lease_json(f, doc)?;
            if !v.is_null() {
                out.push(v);
            }
        }
    }
    Ok(out)
}

fn lease_json(f: &Facts, doc: &bson::Document) -> CommandResult<Value> {
    if doc.get_bool("released").unwrap_or(false) {
        return Ok(Value::Null);
    }
    let time = |k: &str| match doc.get(k) {
        Some(Bson::DateTime(d)) => d.try_to_rfc3339_string().ok(),
        _ => None,
    };
    let expired = doc
        .get_datetime("expires_at")
        .map(|e| e.to_chrono() < f.now)
        .unwrap_or(true);
    Ok(json!({
        "name": doc.get_str("_id").unwrap_or_default(),
        "owner": doc.get_str("owner").unwrap_or_default(),
        "run_id": doc.get_str("run_id").unwrap_or_default(),
        "heartbeat_at": time("heartbeat_at"),
        "expires_at": time("expires_at"),
        "expired": expired,
    }))
}

/// Store, databases, collections and counts, indexes, phase 0 and phase 2.
fn inventory(store: &dyn Store, config: &Config, facts: &Facts) -> CommandResult<Output> {
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
    let runs = facts.runs()?;
    let (runs_text, phase2) = phase2_state(facts)?;
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

/// Where phase 2 stands: the last migration, whether a rollback came after
/// it, and whether it was validated since (the phase 3 gate).
fn phase2_state(f: &Facts) -> CommandResult<(String, Value)> {
    let runs = f.runs()?;
    let migrate = f.last_run("phase2 migrate", &[])?;
    let change = f.last_phase2_change()?;
    let rolled_back = change.filter(|c| c.command.starts_with("rollback"));
    let validated = gates::phase2_validated(f)?;
    let partitioning = f.partitioning()?.filter(|_| rolled_back.is_none());
    let done = f.migration_done()?.unwrap_or(false) && rolled_back.is_none();
    let mut text = match (migrate, rolled_back) {
        (_, Some(r)) => format!(
            "phase 2: rolled back ({}, run {} {}): the drawers hold no migrated data\n",
            r.command, r.run_id, r.outcome
        ),
        (Some(_), None) if partitioning.is_some() => partitions_text(partitioning.as_ref()),
        (Some(r), None) => format!("phase 2: last migration {} ({}, {})\n", r.outcome, r.command, r.run_id),
        (None, None) => "phase 2: not migrated yet: run `edn-migrate phase2 backup`, then `edn-migrate phase2 migrate all`\n".to_string(),
    };
    if migrate.is_some() && rolled_back.is_none() {
        text.push_str(&format!(
            "phase 2: {}: {}\n",
            if validated.ok {
                "validated"
            } else {
                "not validated"
            },
            validated.why
        ));
    }
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
        "rolled_back": rolled_back.is_some(),
        "migrated": done,
        "partitioning": partitioning.as_ref().map(partitions_json),
        "validated": validated.ok,
    });
    Ok((text, json))
}

/// A partitioned migration: done or not, and one line per partition.
fn partitions_text(p: Option<&Partitioning>) -> String {
    let Some(p) = p else {
        return String::new();
    };
    let mut text = format!(
        "phase 2: migration split in {} partitions ({}, started {}): {}\n",
        p.n,
        p.part,
        p.started_at,
        if p.done() {
            "done".to_string()
        } else {
            format!("NOT done, {} of {} partitions done", p.done_count(), p.n)
        }
    );
    let mut rows = vec![vec![
        "partition".to_string(),
        "state".into(),
        "run".into(),
        "detail".into(),
    ]];
    for (i, state) in p.states.iter().enumerate() {
        let (run, detail) = match state {
            State::NotStarted => (
                String::new(),
                format!(
                    "run `edn-migrate phase2 migrate {} --partition {i}/{}`",
                    p.part, p.n
                ),
            ),
            State::Running {
                run_id,
                holder,
                checkpoint,
                users,
            } => (
                run_id.clone(),
                format!(
                    "held by {holder}, {users} users so far{}",
                    at(checkpoint.as_ref())
                ),
            ),
            State::Interrupted {
                run_id,
                outcome,
                checkpoint,
            } => (
                run_id.clone(),
                format!(
                    "{outcome}{}: `edn-migrate phase2 migrate {} --partition {i}/{} --resume`",
                    at(checkpoint.as_ref()),
                    p.part,
                    p.n
                ),
            ),
            State::Done { run_id } => (run_id.clone(), String::new()),
        };
        rows.push(vec![
            format!("{i}/{}", p.n),
            state.name().into(),
            run,
            detail,
        ]);
    }
    text.push_str(&table(&rows));
    text
}

/// `, checkpoint at user U (B batches)`, or nothing before the first batch.
fn at(checkpoint: Option<&Checkpoint>) -> String {
    checkpoint
        .map(|c| {
            format!(
                ", checkpoint at user {} ({} batches)",
                c.last_user_id, c.batches
            )
        })
        .unwrap_or_default()
}

fn partitions_json(p: &Partitioning) -> Value {
    let partitions: Vec<Value> = p
        .states
        .iter()
        .enumerate()
        .map(|(i, state)| {
            let mut v = json!({ "partition": format!("{i}/{}", p.n), "state": state.name() });
            let extra = match state {
                State::NotStarted => json!({}),
                State::Running {
                    run_id,
                    holder,
                    checkpoint,
                    users,
                } => json!({
                    "run_id": run_id, "holder": holder, "users": users,
                    "checkpoint": checkpoint,
                }),
                State::Interrupted {
                    run_id,
                    outcome,
                    checkpoint,
                } => json!({
                    "run_id": run_id, "outcome": outcome, "checkpoint": checkpoint,
                }),
                State::Done { run_id } => json!({ "run_id": run_id }),
            };
            if let (Some(map), Value::Object(more)) = (v.as_object_mut(), extra) {
                map.extend(more);
            }
            v
        })
        .collect();
    json!({
        "part": p.part,
        "n": p.n,
        "started_at": p.started_at,
        "done": p.done(),
        "partitions": partitions,
    })
}

fn run_json(r: &RunRecord) -> Value {
    json!({
        "run_id": r.run_id, "command": r.command, "outcome": r.outcome,
        "started_at": r.started_at, "ended_at": r.ended_at,
        "users": r.tally.users, "writes": r.tally.writes,
        "force_reason": r.force_reason, "error": r.error,
    })
}
