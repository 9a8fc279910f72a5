//! `phase2 validate`: for 100 % of users, rebuild the drawer from the legacy
//! documents, compare it entry by entry with the stored one, run the
//! validator on every drawer, and account for every legacy document (in its
//! drawer, or in quarantine). Reports name ids and field paths, never values.

use super::compare::{compare_user, render_id, Family, Finding};
use crate::config::{own, Config};
use crate::drawer::{self, BuildOptions, LegacyKind, LegacyUser};
use crate::engine::merge::{Group, PerUser, Source};
use crate::error::{CommandError, CommandResult};
use crate::report::{table, Output};
use crate::run::{Run, RunSpec};
use crate::store::{value_at_path, Store};
use bson::{Bson, Document};
use chrono::Utc;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

/// Failures listed per family in the report (all are counted).
const LISTED: usize = 200;
/// Users per read batch.
const BATCH: usize = 500;

/// Minimum match rates, from the plan (section 6): questionnaires and
/// follow-ups 95 %, plans 90 %.
#[derive(Debug, Clone, Copy)]
pub struct Thresholds {
    /// Questionnaires, as a fraction.
    pub questionnaires: f64,
    /// Follow-ups, as a fraction.
    pub followups: f64,
    /// Plans, as a fraction.
    pub plans: f64,
}

impl Thresholds {
    fn of(&self, family: Family) -> f64 {
        match family {
            Family::Questionnaires => self.questionnaires,
            Family::Followups => self.followups,
            Family::Plans => self.plans,
        }
    }
}

/// Options of `phase2 validate`.
#[derive(Debug, Clone)]
pub struct ValidateOptions {
    /// The minimum match rates.
    pub thresholds: Thresholds,
    /// Where the JSON and Markdown reports go.
    pub report_dir: PathBuf,
}

/// Counts of one family.
#[derive(Debug, Default, Clone, serde::Serialize)]
struct Rate {
    documents: u64,
    matched: u64,
    failures: Vec<Value>,
}

/// Everything the validation found.
#[derive(Debug, Default)]
struct Findings {
    rates: BTreeMap<Family, Rate>,
    legacy_documents: u64,
    quarantined: u64,
    unaccounted: Vec<Value>,
    drawers_checked: u64,
    drawers_invalid: Vec<Value>,
}

/// The top-level entry point for `phase2 validate`.
pub fn validate(
    store: &dyn Store,
    config: &Config,
    opts: &ValidateOptions,
) -> CommandResult<Output> {
    // Under the lock: a validation that reads while a migration writes would
    // report a half-written state and make it the "last validation".
    let run = Run::start(store, config, RunSpec::locked("phase2 validate", "all"))?;
    match check_all(store, config, opts, run.started()) {
        Ok((passed, output)) => {
            run.finish(
                if passed { "passed" } else { "failed" },
                Some(summary(&output.json, passed)),
            )?;
            if passed {
                Ok(output)
            } else {
                Err(CommandError::Failed {
                    output: Box::new(output),
                    message: "phase 2 validation failed: fix the failures listed in the report (ids and paths), re-run `edn-migrate phase2 migrate all`, then validate again".into(),
                })
            }
        }
        Err(e) => {
            run.fail(&e);
            Err(e)
        }
    }
}

/// Reads everything, writes the reports, and says whether it passed.
fn check_all(
    store: &dyn Store,
    config: &Config,
    opts: &ValidateOptions,
    now: chrono::DateTime<Utc>,
) -> CommandResult<(bool, Output)> {
    let mut findings = Findings::default();
    for family in [Family::Questionnaires, Family::Followups, Family::Plans] {
        findings.rates.insert(family, Rate::default());
    }
    let sources = [
        config.legacy(&config.submissions),
        config.legacy(&config.followups),
        config.legacy(&config.training_plans),
        config.legacy(&config.nutrition_plans),
    ];
    let mut batch = Vec::with_capacity(BATCH);
    for group in PerUser::open(store, sources.each_ref(), 1000, None)? {
        batch.push(group?);
        if batch.len() == BATCH {
            check_batch(store, config, &std::mem::take(&mut batch), &mut findings)?;
        }
    }
    check_batch(store, config, &batch, &mut findings)?;
    let passed = verdict(&findings, &opts.thresholds);
    let report = report_json(store, &findings, &opts.thresholds, passed, now);
    let paths = write_reports(&opts.report_dir, &report, now)?;
    let text = render_text(&findings, &opts.thresholds, passed, &paths);
    Ok((passed, Output { text, json: report }))
}

fn verdict(f: &Findings, thresholds: &Thresholds) -> bool {
    let rates_ok = f
        .rates
        .iter()
        .all(|(family, r)| rate(r) >= thresholds.of(*family));
    rates_ok && f.drawers_invalid.is_empty()
}

fn rate(r: &Rate) -> f64 {
    if r.documents == 0 {
        1.0
    } else {
        r.matched as f64 / r.documents as f64
    }
}

fn check_batch(
    store: &dyn Store,
    config: &Config,
    groups: &[Group],
    f: &mut Findings,
) -> CommandResult<()> {
    let mut quarantine_ids = Vec::new();
    let mut users = Vec::new();
    for group in groups {
        let (user, bad) = split(config, group);
        f.legacy_documents += group.len() as u64;
        quarantine_ids.extend(bad);
        if let Some(user) = user {
            users.push(user);
        }
    }
    let ids: Vec<Bson> = users
        .iter()
        .map(|u| Bson::from(drawer::drawer_id(&u.user_id)))
        .collect();
    let stored: HashMap<String, Document> = store
        .get_many(&config.drawers_ns(), &ids)?
        .into_iter()
        .filter_map(|d| Some((d.get_str("_id").ok()?.to_string(), d)))
        .collect();
    let opts = BuildOptions::new(bson::DateTime::from_millis(0), "validate");
    for user in &users {
        let built = drawer::build(user, None, &opts);
        let skip: Vec<Bson> = built.quarantine.iter().map(|q| q.id.clone()).collect();
        for q in &built.quarantine {
            quarantine_ids.push((
                q.kind,
                config.quarantine_id(q.kind, &q.id),
                render_id(&q.id),
            ));
        }
        let drawer = stored.get(&drawer::drawer_id(&user.user_id));
        let archived = archived_of(store, config, drawer)?;
        let refs: Vec<(LegacyKind, &Document)> = user.documents().collect();
        for finding in compare_user(&refs, &built.drawer, drawer, &archived, &skip) {
            tally(f, &user.user_id, finding);
        }
        if let Some(d) = drawer {
            check_drawer(f, d, &archived);
        }
    }
    account_quarantine(store, config, quarantine_ids, f)
}

/// A user's documents that pass triage (`None` when none do or there is no
/// user), and the quarantine keys of the rest.
fn split(
    config: &Config,
    group: &Group,
) -> (Option<LegacyUser>, Vec<(LegacyKind, String, String)>) {
    let mut bad = Vec::new();
    let mut user = LegacyUser {
        user_id: group.user_id.as_str().unwrap_or_default().to_string(),
        ..LegacyUser::default()
    };
    for source in Source::ALL {
        let kind = source.kind();
        for doc in group.of(source) {
            if drawer::triage(kind, doc).is_err() {
                let id = doc.get("_id").cloned().unwrap_or(Bson::Null);
                bad.push((kind, config.quarantine_id(kind, &id), render_id(&id)));
            } else {
                user.push(kind, doc.clone());
            }
        }
    }
    let has_user = !user.user_id.is_empty() && user.documents().next().is_some();
    (has_user.then_some(user), bad)
}

fn archived_of(
    store: &dyn Store,
    config: &Config,
    drawer: Option<&Document>,
) -> CommandResult<Vec<Document>> {
    let Some(d) = drawer else {
        return Ok(Vec::new());
    };
    let drawer_id = d.get_str("_id").unwrap_or_default();
    let ids: Vec<Bson> = match value_at_path(d, "meta.migration.archived_snapshot_ids") {
        Some(Bson::Array(ids)) => ids
            .iter()
            .filter_map(Bson::as_str)
            .map(|s| Bson::from(format!("{drawer_id}:{s}")))
            .collect(),
        _ => return Ok(Vec::new()),
    };
    Ok(store.get_many(&config.drawer(own::SNAPSHOT_ARCHIVE), &ids)?)
}

fn tally(f: &mut Findings, user_id: &str, finding: Finding) {
    let r = f.rates.entry(Family::of(finding.kind)).or_default();
    r.documents += 1;
    if finding.matches() {
        r.matched += 1;
        return;
    }
    let failure = json!({ "collection": finding.kind.as_str(), "id": finding.id, "user_id": user_id, "paths": finding.paths });
    if r.failures.len() < LISTED {
        r.failures.push(failure.clone());
    }
    if f.unaccounted.len() < LISTED {
        f.unaccounted.push(failure);
    }
}

fn check_drawer(f: &mut Findings, drawer: &Document, archived: &[Document]) {
    f.drawers_checked += 1;
    let ids: Vec<String> = archived
        .iter()
        .filter_map(|a| a.get_str("snapshot_id").ok().map(str::to_string))
        .collect();
    let errors = drawer::validate(drawer, &ids);
    if !errors.is_empty() && f.drawers_invalid.len() < LISTED {
        f.drawers_invalid.push(json!({
            "drawer_id": drawer.get_str("_id").unwrap_or_default(),
            "errors": errors.iter().map(|e| e.to_string()).collect::<Vec<_>>(),
        }));
    }
}

/// Documents that must be in quarantine: counted there, or unaccounted.
fn account_quarantine(
    store: &dyn Store,
    config: &Config,
    wanted: Vec<(LegacyKind, String, String)>,
    f: &mut Findings,
) -> CommandResult<()> {
    let ids: Vec<Bson> = wanted
        .iter()
        .map(|(_, key, _)| Bson::from(key.as_str()))
        .collect();
    let found: Vec<String> = store
        .get_many(&config.drawer(own::QUARANTINE), &ids)?
        .iter()
        .filter_map(|d| d.get_str("_id").ok().map(str::to_string))
        .collect();
    for (kind, key, id) in wanted {
        if found.contains(&key) {
            f.quarantined += 1;
        } else if f.unaccounted.len() < LISTED {
            f.unaccounted.push(
                json!({ "collection": kind.as_str(), "id": id, "paths": ["migration_quarantine"] }),
            );
        }
    }
    Ok(())
}

fn report_json(
    store: &dyn Store,
    f: &Findings,
    t: &Thresholds,
    passed: bool,
    now: chrono::DateTime<Utc>,
) -> Value {
    let families: serde_json::Map<String, Value> = f
        .rates
        .iter()
        .map(|(family, r)| {
            let name = serde_json::to_value(family).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
            (name, json!({
                "documents": r.documents, "matched": r.matched, "rate": rate(r),
                "threshold": t.of(*family), "passed": rate(r) >= t.of(*family), "failures": r.failures,
            }))
        })
        .collect();
    let in_drawers: u64 = f.rates.values().map(|r| r.matched).sum();
    json!({
        "generated_at": now.to_rfc3339(),
        "store": store.describe(),
        "passed": passed,
        "rates": families,
        "accounting": {
            "legacy_documents": f.legacy_documents,
            "in_drawers": in_drawers,
            "quarantined": f.quarantined,
            "unaccounted": f.legacy_documents - in_drawers - f.quarantined,
            "unaccounted_listed": f.unaccounted,
        },
        "drawers": { "checked": f.drawers_checked, "invalid": f.drawers_invalid.len(), "invalid_listed": f.drawers_invalid },
    })
}

fn write_reports(
    dir: &std::path::Path,
    report: &Value,
    now: chrono::DateTime<Utc>,
) -> CommandResult<(PathBuf, PathBuf)> {
    crate::private::create_dir_all(dir)
        .map_err(CommandError::io(format!("creating {}", dir.display())))?;
    let stem = format!("validate-{}", now.format("%Y%m%dT%H%M%SZ"));
    let json_path = dir.join(format!("{stem}.json"));
    let md_path = dir.join(format!("{stem}.md"));
    let pretty = serde_json::to_string_pretty(report).unwrap_or_else(|_| report.to_string());
    crate::private::write(&json_path, pretty)
        .map_err(CommandError::io(format!("writing {}", json_path.display())))?;
    crate::private::write(&md_path, markdown(report))
        .map_err(CommandError::io(format!("writing {}", md_path.display())))?;
    Ok((json_path, md_path))
}

fn markdown(report: &Value) -> String {
    let mut md = format!(
        "# Phase 2 validation\n\n- generated: {}\n- store: {}\n- result: **{}**\n\n| type | documents | matched | rate | threshold | |\n|---|---:|---:|---:|---:|---|\n",
        report["generated_at"].as_str().unwrap_or(""),
        report["store"].as_str().unwrap_or(""),
        if report["passed"] == true { "passed" } else { "FAILED" },
    );
    if let Some(rates) = report["rates"].as_object() {
        for (name, r) in rates {
            md.push_str(&format!(
                "| {name} | {} | {} | {:.1} % | {:.1} % | {} |\n",
                r["documents"],
                r["matched"],
                r["rate"].as_f64().unwrap_or(0.0) * 100.0,
                r["threshold"].as_f64().unwrap_or(0.0) * 100.0,
                if r["passed"] == true {
                    "ok"
                } else {
                    "**below**"
                }
            ));
        }
    }
    let a = &report["accounting"];
    md.push_str(&format!(
        "\n## Accounting\n\n{} legacy documents: {} in drawers as expected, {} in quarantine, {} unaccounted.\n\n## Drawers\n\n{} checked by the validator, {} invalid.\n",
        a["legacy_documents"], a["in_drawers"], a["quarantined"], a["unaccounted"], report["drawers"]["checked"], report["drawers"]["invalid"]
    ));
    let listed = a["unaccounted_listed"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if !listed.is_empty() {
        md.push_str("\n## Documents not as expected (ids and paths only)\n\n| collection | id | paths |\n|---|---|---|\n");
        for item in listed {
            let paths: Vec<String> = item["paths"]
                .as_array()
                .map(|p| {
                    p.iter()
                        .filter_map(|x| x.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            md.push_str(&format!(
                "| {} | {} | {} |\n",
                item["collection"].as_str().unwrap_or(""),
                item["id"].as_str().unwrap_or(""),
                paths.join(", ")
            ));
        }
    }
    md
}

/// What the run record keeps of a validation: the verdict and the rates.
fn summary(report: &Value, passed: bool) -> Document {
    bson::to_document(&json!({
        "passed": passed,
        "rates": report["rates"].as_object().map(|r| r.iter().map(|(k, v)| (k.clone(), v["rate"].clone())).collect::<serde_json::Map<_, _>>()),
        "unaccounted": report["accounting"]["unaccounted"],
        "drawers_invalid": report["drawers"]["invalid"],
    }))
    .unwrap_or_default()
}

fn render_text(f: &Findings, t: &Thresholds, passed: bool, paths: &(PathBuf, PathBuf)) -> String {
    let mut rows = vec![vec![
        "type".to_string(),
        "documents".into(),
        "matched".into(),
        "rate".into(),
        "threshold".into(),
        String::new(),
    ]];
    for (family, r) in &f.rates {
        let name = match family {
            Family::Questionnaires => "questionnaires",
            Family::Followups => "follow-ups",
            Family::Plans => "plans",
        };
        rows.push(vec![
            name.into(),
            r.documents.to_string(),
            r.matched.to_string(),
            format!("{:.1} %", rate(r) * 100.0),
            format!("{:.1} %", t.of(*family) * 100.0),
            if rate(r) >= t.of(*family) {
                "ok".into()
            } else {
                "BELOW".into()
            },
        ]);
    }
    let in_drawers: u64 = f.rates.values().map(|r| r.matched).sum();
    let mut text = format!(
        "phase2 validate: {}\n{}",
        if passed { "passed" } else { "FAILED" },
        table(&rows)
    );
    text.push_str(&format!(
        "  {} legacy documents: {in_drawers} in drawers as expected, {} in quarantine, {} unaccounted\n  {} drawers checked, {} invalid\n",
        f.legacy_documents,
        f.quarantined,
        f.legacy_documents - in_drawers - f.quarantined,
        f.drawers_checked,
        f.drawers_invalid.len()
    ));
    for item in f.unaccounted.iter().take(10) {
        text.push_str(&format!(
            "  not as expected: {} {}: {}\n",
            item["collection"].as_str().unwrap_or(""),
            item["id"].as_str().unwrap_or(""),
            item["paths"]
        ));
    }
    for item in f.drawers_invalid.iter().take(10) {
        text.push_str(&format!(
            "  invalid drawer {}: {}\n",
            item["drawer_id"].as_str().unwrap_or(""),
            item["errors"]
        ));
    }
    text.push_str(&format!(
        "  report: {} and {}\n",
        paths.0.display(),
        paths.1.display()
    ));
    text
}
