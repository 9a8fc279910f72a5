//! Phase 1: dual-write. `phase1 enable` turns `USE_CLIENT_DRAWER_WRITE` on
//! (recorded, so the check knows when dual-write began); `phase1
//! dual-write-check` judges what dual-write wrote against the legacy
//! documents it copied, as the plan's validation does, but over every
//! document in range instead of a sample of ten and three fields.

pub mod check;
pub mod telemetry;

use crate::config::{own, Config};
use crate::drawer::{drawer_id, LegacyKind};
use crate::error::{CommandError, CommandResult};
use crate::extjson;
use crate::flags::{EnvFile, WRITE};
use crate::gates::facts::{parse_time, run_time};
use crate::gates::Action;
use crate::mapping::{date_millis, id_key, FieldMap};
use crate::report::{table, Output};
use crate::run::record::all_runs;
use crate::run::{Run, RunSpec};
use crate::store::{Ns, Scan, Store};
use crate::toggle::{flag_step, Consent, FlagOptions, FlagStep};
use bson::{doc, Bson, Document};
use check::{inicial, Verdict};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::PathBuf;
use telemetry::Telemetry;

/// Where each check's per-document results go (the plan's collection).
pub const VALIDATIONS: &str = "dual_write_validations";
/// The plan's threshold for the dual-write match rate (section 5, criteria: > 98 %).
pub const DEFAULT_MIN_MATCH: f64 = 0.98;
/// Legacy documents checked per drawer read.
const BATCH: usize = 500;
/// Lines of each list the text summary shows (JSON has them all).
const SHOWN: usize = 30;

/// The top-level entry point for `phase1 enable`: `USE_CLIENT_DRAWER_WRITE=true`
/// behind the phase 0 gate, recorded.
pub fn enable(
    store: &dyn Store,
    config: &Config,
    opts: &FlagOptions,
    consent: &Consent,
) -> CommandResult<Output> {
    let step = FlagStep {
        action: Action::Phase1Enable,
        values: vec![(WRITE, "true")],
        question: None,
    };
    flag_step(store, config, &step, opts, consent)
}

/// What `phase1 dual-write-check` was asked.
#[derive(Debug, Clone)]
pub struct CheckOptions {
    /// Check legacy documents dated from here (default: when dual-write began).
    pub since: Option<DateTime<Utc>>,
    /// The match rate needed to pass, 0 to 1.
    pub min_match: f64,
    /// The backend's `.env`, to report whether dual-write is on.
    pub env_file: PathBuf,
}

/// One document that did not match, by id and path only.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    /// The legacy collection.
    pub collection: String,
    /// The legacy `_id` (Extended JSON).
    pub id: Value,
    /// The user.
    pub user_id: String,
    /// What differs (paths) or why it is missing.
    pub what: Vec<String>,
}

/// The counts of a check; they add up (`matched + mismatched + missing == checked`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Counts {
    /// Legacy documents in range that were checked.
    pub checked: u64,
    /// Found in the drawer and equal.
    pub matched: u64,
    /// Found, but with differences.
    pub mismatched: u64,
    /// Not in the drawer.
    pub missing: u64,
    /// In range but without a `user_id` (dual-write cannot write those).
    pub skipped_no_user: u64,
    /// Without a usable date: cannot be placed in the range.
    pub skipped_no_date: u64,
    /// Not in a drawer but in `migration_quarantine` with a reason (phase 2
    /// could not map them): accounted for there, not counted as checked.
    pub quarantined: u64,
}

#[derive(Default)]
struct Found {
    counts: Counts,
    mismatches: Vec<Finding>,
    missing: Vec<Finding>,
}

/// The top-level entry point for `phase1 dual-write-check`.
pub fn dual_write_check(
    store: &dyn Store,
    config: &Config,
    opts: &CheckOptions,
) -> CommandResult<Output> {
    let now = Utc::now();
    let (telemetry, earliest) = telemetry::read(store, config)?;
    let (since, since_from) = range_start(store, config, opts, earliest)?;
    let run = Run::start(
        store,
        config,
        RunSpec {
            command: "phase1 dual-write-check".into(),
            scope: "dual-write".into(),
            ..RunSpec::default()
        },
    )?;
    let found = match since {
        Some(since) => check_range(store, config, since, run.id(), now),
        None => Ok(Found::default()),
    };
    let found = match found {
        Ok(f) => f,
        Err(e) => {
            run.fail(&e);
            return Err(e);
        }
    };
    let c = &found.counts;
    let rate = (c.checked > 0).then(|| c.matched as f64 / c.checked as f64);
    let passed = rate.is_some_and(|r| r >= opts.min_match);
    let run_id = run.id().to_string();
    let summary = doc! {
        "since": since.map(|s| s.to_rfc3339_opts(SecondsFormat::Secs, true)),
        "since_from": &since_from,
        "checked": c.checked as i64, "matched": c.matched as i64,
        "mismatched": c.mismatched as i64, "missing": c.missing as i64,
        "match_rate": rate, "threshold": opts.min_match, "passed": passed,
        "telemetry": bson::to_bson(&telemetry).unwrap_or(Bson::Null),
    };
    run.finish(if passed { "passed" } else { "failed" }, Some(summary))?;
    let output = render(
        &run_id,
        opts,
        since,
        &since_from,
        &found,
        rate,
        passed,
        &telemetry,
    );
    if passed {
        return Ok(output);
    }
    let message = match (rate, since) {
        (None, Some(s)) => format!(
            "nothing to check since {}: 0 of 0 is not a match rate. Wait until dual-write has written questionnaires, or pass an earlier --since",
            s.to_rfc3339_opts(SecondsFormat::Secs, true)
        ),
        (None, None) => "nothing to check: no `phase1 enable` is recorded and no drawer holds an entry dual-write wrote. Turn dual-write on (`edn-migrate phase1 enable`), wait for questionnaires, or pass --since DATE".into(),
        (Some(r), _) => format!(
            "match rate {:.1} % is below the threshold {:.1} %: fix dual-write for the documents listed (ids and paths), then check again (`--min-match` changes the threshold)",
            r * 100.0,
            opts.min_match * 100.0
        ),
    };
    Err(CommandError::Failed {
        output: Box::new(output),
        message,
    })
}

/// Where the range starts, and why there.
fn range_start(
    store: &dyn Store,
    config: &Config,
    opts: &CheckOptions,
    earliest: Option<i64>,
) -> CommandResult<(Option<DateTime<Utc>>, String)> {
    if let Some(s) = opts.since {
        return Ok((Some(s), "--since".into()));
    }
    let runs = all_runs(store, config)?;
    let enabled = runs
        .iter()
        .rev()
        .find(|r| r.command == "phase1 enable" && r.outcome == "succeeded");
    if let Some(r) = enabled {
        return Ok((
            parse_time(&r.started_at).or_else(|| run_time(r)),
            format!("`phase1 enable` (run {})", r.run_id),
        ));
    }
    Ok(match earliest.and_then(DateTime::from_timestamp_millis) {
        Some(t) => (Some(t), "the earliest entry dual-write wrote".into()),
        None => (
            None,
            "nothing: no enable recorded, no dual-write entry".into(),
        ),
    })
}

/// Checks every submission and follow-up dated from `since`, user by user.
fn check_range(
    store: &dyn Store,
    config: &Config,
    since: DateTime<Utc>,
    run_id: &str,
    now: DateTime<Utc>,
) -> CommandResult<Found> {
    let map = FieldMap::builtin()
        .map_err(|e| CommandError::Input(format!("the field map is invalid: {e}")))?;
    let mut found = Found::default();
    let since_ms = since.timestamp_millis();
    for kind in [LegacyKind::Submission, LegacyKind::Followup] {
        let ns = config.legacy(config.collection_of(kind));
        let mut batch: Vec<Document> = Vec::new();
        for doc in store.scan(&ns, &Scan::by_field("user_id", 1000))? {
            let doc = doc?;
            let Some(at) = date_millis(doc.get(kind.date_field())) else {
                found.counts.skipped_no_date += 1;
                continue;
            };
            if at < since_ms {
                continue;
            }
            let Ok(user) = doc.get_str("user_id") else {
                found.counts.skipped_no_user += 1;
                continue;
            };
            let boundary = batch
                .last()
                .is_some_and(|last| last.get_str("user_id").ok() != Some(user));
            if batch.len() >= BATCH && boundary {
                check_batch(
                    store, config, kind, &ns, &batch, map, run_id, now, &mut found,
                )?;
                batch.clear();
            }
            batch.push(doc);
        }
        check_batch(
            store, config, kind, &ns, &batch, map, run_id, now, &mut found,
        )?;
    }
    Ok(found)
}

/// Checks one batch of legacy documents (whole users) against their drawers
/// and records each result in `dual_write_validations`.
#[allow(clippy::too_many_arguments)]
fn check_batch(
    store: &dyn Store,
    config: &Config,
    kind: LegacyKind,
    ns: &Ns,
    docs: &[Document],
    map: &FieldMap,
    run_id: &str,
    now: DateTime<Utc>,
    found: &mut Found,
) -> CommandResult<()> {
    if docs.is_empty() {
        return Ok(());
    }
    let mut ids: Vec<Bson> = docs
        .iter()
        .filter_map(|d| d.get_str("user_id").ok())
        .map(|u| Bson::from(drawer_id(u)))
        .collect();
    ids.dedup();
    let drawers: HashMap<String, Document> = store
        .get_many(&config.drawers_ns(), &ids)?
        .into_iter()
        .filter_map(|d| Some((d.get_str("_id").ok()?.to_string(), d)))
        .collect();
    let latest = latest_per_user(kind, docs);
    let quarantined = quarantined(store, config, kind, docs)?;
    let mut records = Vec::with_capacity(docs.len());
    for doc in docs {
        let user = doc.get_str("user_id").unwrap_or_default();
        let id = doc.get("_id").cloned().unwrap_or(Bson::Null);
        let drawer = drawers.get(&drawer_id(user));
        let inicial_is_this =
            drawer
                .and_then(inicial)
                .is_some_and(|i| match i.get("submission_id") {
                    Some(sid) => *sid == id,
                    None => latest.get(user) == Some(&id_key(&id)),
                });
        let verdict = check::check(kind, doc, drawer, inicial_is_this, map);
        if matches!(verdict, Verdict::Missing(_)) && quarantined.contains(&id_key(&id)) {
            found.counts.quarantined += 1;
            continue;
        }
        let (ok, missing, what) = match &verdict {
            Verdict::Match => (true, false, Vec::new()),
            Verdict::Missing(why) => (false, true, vec![why.to_string()]),
            Verdict::Mismatch(paths) => (false, false, paths.clone()),
        };
        found.counts.checked += 1;
        let finding = || Finding {
            collection: ns.coll.clone(),
            id: extjson::to_json(&id),
            user_id: user.to_string(),
            what: what.clone(),
        };
        match verdict {
            Verdict::Match => found.counts.matched += 1,
            Verdict::Missing(_) => {
                found.counts.missing += 1;
                found.missing.push(finding());
            }
            Verdict::Mismatch(_) => {
                found.counts.mismatched += 1;
                found.mismatches.push(finding());
            }
        }
        records.push(doc! {
            "_id": format!("{run_id}:{}:{}", ns.coll, id_key(&id)),
            "run_id": run_id,
            "user_id": user,
            "submission_id": id,
            "collection": &ns.coll,
            "source": check::source_of(kind),
            "validated_at": bson::DateTime::from_chrono(now),
            "match": ok,
            "missing": missing,
            "paths": what,
        });
    }
    store.insert_many(&config.drawer(VALIDATIONS), &records)?;
    Ok(())
}

/// The ids (as id keys) of the batch's documents that phase 2 quarantined.
fn quarantined(
    store: &dyn Store,
    config: &Config,
    kind: LegacyKind,
    docs: &[Document],
) -> CommandResult<Vec<String>> {
    let ids: Vec<Bson> = docs
        .iter()
        .filter_map(|d| d.get("_id"))
        .map(|id| Bson::from(config.quarantine_id(kind, id)))
        .collect();
    let found = store.get_many(&config.drawer(own::QUARANTINE), &ids)?;
    Ok(docs
        .iter()
        .filter_map(|d| d.get("_id"))
        .filter(|id| {
            let qid = config.quarantine_id(kind, id);
            found
                .iter()
                .any(|q| q.get_str("_id").ok() == Some(qid.as_str()))
        })
        .map(id_key)
        .collect())
}

/// Each user's latest submission in the batch (what a plan-style dual-write
/// last wrote into `inicial`).
fn latest_per_user(kind: LegacyKind, docs: &[Document]) -> HashMap<String, String> {
    let mut latest: HashMap<String, (i64, String)> = HashMap::new();
    if kind != LegacyKind::Submission {
        return HashMap::new();
    }
    for d in docs {
        let (Ok(user), Some(at)) = (d.get_str("user_id"), date_millis(d.get(kind.date_field())))
        else {
            continue;
        };
        let id = d.get("_id").map(id_key).unwrap_or_default();
        let e = latest.entry(user.to_string()).or_insert((at, id.clone()));
        if (at, &id) > (e.0, &e.1) {
            *e = (at, id);
        }
    }
    latest.into_iter().map(|(u, (_, id))| (u, id)).collect()
}

#[allow(clippy::too_many_arguments)]
fn render(
    run_id: &str,
    opts: &CheckOptions,
    since: Option<DateTime<Utc>>,
    since_from: &str,
    found: &Found,
    rate: Option<f64>,
    passed: bool,
    t: &Telemetry,
) -> Output {
    let c = &found.counts;
    let since_text = since
        .map(|s| s.to_rfc3339_opts(SecondsFormat::Secs, true))
        .unwrap_or_else(|| "—".into());
    let flag = match EnvFile::read(&opts.env_file) {
        Ok(f) if f.flag(WRITE) => format!(
            "{WRITE}=true ({}): dual-write ACTIVE",
            opts.env_file.display()
        ),
        Ok(_) => format!(
            "{WRITE} is not true in {}: dual-write is OFF",
            opts.env_file.display()
        ),
        Err(_) => format!(
            "{} unreadable: dual-write state unknown",
            opts.env_file.display()
        ),
    };
    let pct = |r: Option<f64>| {
        r.map_or("— (nothing checked)".into(), |r| {
            format!("{:.1} %", r * 100.0)
        })
    };
    let mut text = format!(
        "phase1 dual-write-check: {} (run {run_id})\n  {flag}\n  legacy documents dated from {since_text} (from {since_from})\n",
        if passed { "PASSED" } else { "FAILED" }
    );
    let rows = vec![
        vec!["checked".to_string(), c.checked.to_string()],
        vec!["matched".to_string(), c.matched.to_string()],
        vec!["mismatched".to_string(), c.mismatched.to_string()],
        vec!["missing from drawers".to_string(), c.missing.to_string()],
        vec!["match rate".to_string(), pct(rate)],
        vec![
            "threshold".to_string(),
            format!("{:.1} %", opts.min_match * 100.0),
        ],
        vec![
            "skipped: no user_id".to_string(),
            c.skipped_no_user.to_string(),
        ],
        vec![
            "skipped: no usable date".to_string(),
            c.skipped_no_date.to_string(),
        ],
        vec![
            "in migration_quarantine (not counted)".to_string(),
            c.quarantined.to_string(),
        ],
    ];
    text.push_str(&table(&rows));
    for (title, list) in [
        ("mismatches (id: field path)", &found.mismatches),
        ("missing from drawers", &found.missing),
    ] {
        if list.is_empty() {
            continue;
        }
        text.push_str(&format!("{title}\n"));
        for f in list.iter().take(SHOWN) {
            for w in &f.what {
                text.push_str(&format!(
                    "  {} {} (user {}): {w}\n",
                    f.collection, f.id, f.user_id
                ));
            }
        }
        if list.len() > SHOWN {
            text.push_str(&format!("  … {} more (see --json)\n", list.len() - SHOWN));
        }
    }
    text.push_str("telemetry (client_drawers)\n");
    text.push_str(&table(&[
        vec!["drawers".into(), t.total_drawers.to_string()],
        vec![
            "shared questionnaires".into(),
            t.total_shared_questionnaires.to_string(),
        ],
        vec!["training plans".into(), t.total_training_plans.to_string()],
        vec![
            "nutrition plans".into(),
            t.total_nutrition_plans.to_string(),
        ],
        vec![
            "questionnaires per drawer".into(),
            format!("{:.3}", t.avg_questionnaires_per_drawer),
        ],
        vec![
            "training plans per drawer".into(),
            format!("{:.3}", t.avg_training_plans_per_drawer),
        ],
        vec![
            "nutrition plans per drawer".into(),
            format!("{:.3}", t.avg_nutrition_plans_per_drawer),
        ],
    ]));
    let json = json!({
        "run_id": run_id,
        "passed": passed,
        "since": since.map(|s| s.to_rfc3339_opts(SecondsFormat::Secs, true)),
        "since_from": since_from,
        "threshold": opts.min_match,
        "match_rate": rate,
        "counts": c,
        "mismatches": found.mismatches,
        "missing": found.missing,
        "telemetry": t,
        "dual_write": flag,
    });
    Output { text, json }
}
