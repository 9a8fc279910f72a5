//! The rehearsal's report: one [`Report`] value, written as `report.json`,
//! rendered as `report.md` here and as `report.html` by the `html` module,
//! so the three always carry the same figures.
//!
//! Everything in it is a count, a rate, a size, a time, an id, a collection
//! name, a field path or a reason: never a value from a document.

use super::inspect::{DrawerSizes, QuarantineGroup};
use super::restore::RestoreCheck;
use super::steps::{percent, Rehearsal};
use super::RehearseOptions;
use crate::config::Config;
use crate::drawer::LegacyKind;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

/// Rows of a listing the Markdown and HTML reports show (report.json has all).
pub const SHOWN: usize = 500;

/// Everything the rehearsal found.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// When the report was written (RFC 3339, UTC).
    pub generated_at: String,
    /// The edn-migrate version that ran the rehearsal.
    pub tool_version: String,
    /// The dump that was rehearsed.
    pub dump: DumpInfo,
    /// The fresh store the rehearsal ran on.
    pub store: String,
    /// The legacy database, as the phases read it.
    pub legacy_db: String,
    /// The drawer database.
    pub drawer_db: String,
    /// Whether production can go ahead, and if not, why.
    pub verdict: Verdict,
    /// Every step, in order.
    pub steps: Vec<Step>,
    /// The match rates against their thresholds.
    pub rates: Vec<Rate>,
    /// What phase 1's check found wrong, by id and path (never a value).
    pub dual_write_findings: Vec<DualWriteFinding>,
    /// The dump's collections and what became of their documents.
    pub collections: Vec<CollectionFate>,
    /// Quarantined documents by collection and reason.
    pub quarantine: Vec<QuarantineGroup>,
    /// The migration's warnings.
    pub warnings: Warnings,
    /// Drawer sizes after the migration (`None` if it did not run).
    pub drawers: Option<DrawerSizes>,
    /// The store after the rollback against the dump.
    pub restore: Option<RestoreCheck>,
    /// What production should expect, from the rates measured here.
    pub projection: Projection,
    /// The whole rehearsal, in seconds.
    pub elapsed_seconds: f64,
}

/// Where the dump came from.
#[derive(Debug, Clone, Serialize)]
pub struct DumpInfo {
    /// The folder or archive file.
    pub path: String,
    /// `directory` or `archive`.
    pub format: String,
    /// Whether it was gzipped.
    pub gzip: bool,
    /// Documents it held (as loaded).
    pub documents: u64,
}

/// The rehearsal's answer.
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    /// Every step met its threshold.
    pub passed: bool,
    /// One line per step that did not.
    pub reasons: Vec<String>,
}

/// How a step ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// It ran and met its threshold.
    Passed,
    /// It ran and did not meet its threshold (or its gate).
    Failed,
    /// It could not run; the rehearsal stopped there.
    Error,
    /// It did not run because an earlier step could not.
    NotRun,
}

impl Outcome {
    /// How the outcome reads in a table.
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Passed => "passed",
            Outcome::Failed => "FAILED",
            Outcome::Error => "ERROR",
            Outcome::NotRun => "not run",
        }
    }
}

/// One step of the rehearsal.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    /// Its key (`import`, `migrate` …).
    pub name: String,
    /// Its title.
    pub title: String,
    /// What it had to show to pass.
    pub check: String,
    /// How it ended.
    pub outcome: Outcome,
    /// What it found, in one line.
    pub result: String,
    /// Wall-clock time.
    pub seconds: f64,
    /// Documents it went through (`None` where that means nothing).
    pub documents: Option<u64>,
    /// Documents per second.
    pub per_second: Option<f64>,
}

impl Step {
    /// A step with its outcome; time and throughput are filled in by the caller.
    pub fn new(name: &str, title: &str, check: String, outcome: Outcome, result: String) -> Step {
        Step {
            name: name.into(),
            title: title.into(),
            check,
            outcome,
            result,
            seconds: 0.0,
            documents: None,
            per_second: None,
        }
    }

    /// A step that did not run, and why.
    pub fn not_run(name: &str, title: &str, check: String, why: &str) -> Step {
        Step::new(name, title, check, Outcome::NotRun, why.into())
    }
}

/// One match rate against its threshold.
#[derive(Debug, Clone, Serialize)]
pub struct Rate {
    /// `dual_write`, `questionnaires`, `followups` or `plans`.
    pub name: String,
    /// Documents compared.
    pub documents: u64,
    /// Documents that matched.
    pub matched: u64,
    /// `matched / documents`; `None` when nothing was compared (0 of 0 is not 100 %).
    pub rate: Option<f64>,
    /// The minimum to pass.
    pub threshold: f64,
    /// Whether it passed; `None` when it was not measured.
    pub passed: Option<bool>,
}

/// A document dual-write copied wrongly, or never copied.
#[derive(Debug, Clone, Serialize)]
pub struct DualWriteFinding {
    /// The legacy collection.
    pub collection: String,
    /// The legacy document's id.
    pub id: String,
    /// Its user.
    pub user_id: String,
    /// `missing`, or `differs`.
    pub problem: String,
    /// The paths that differ, or why it is missing.
    pub what: Vec<String>,
}

/// One collection of the dump and what became of its documents.
#[derive(Debug, Clone, Serialize)]
pub struct CollectionFate {
    /// The database it was loaded into.
    pub db: String,
    /// The collection.
    pub collection: String,
    /// Documents the dump held.
    pub documents: u64,
    /// Whether phase 2 migrates it.
    pub migrated: bool,
    /// Documents in their drawer (migrated collections, once validated).
    pub in_drawers: Option<u64>,
    /// Documents in quarantine.
    pub quarantined: Option<u64>,
    /// Documents neither in a drawer nor in quarantine.
    pub unaccounted: Option<u64>,
    /// In words.
    pub fate: String,
}

/// The migration's warnings, by kind and one by one.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Warnings {
    /// All of them.
    pub count: u64,
    /// How many of each kind.
    pub by_kind: BTreeMap<String, u64>,
    /// Each: user, kind, field path, document id.
    pub listed: Vec<WarningRow>,
}

/// One warning: never a value.
#[derive(Debug, Clone, Serialize)]
pub struct WarningRow {
    /// The user whose drawer carries it.
    pub user_id: String,
    /// The kind (`unparsable_value` …).
    pub kind: String,
    /// The field path, or empty.
    pub field: String,
    /// The legacy document's id.
    pub document: String,
}

/// The projection for production.
#[derive(Debug, Clone, Serialize)]
pub struct Projection {
    /// Legacy documents (the four migrated collections) rehearsed here.
    pub rehearsed_documents: u64,
    /// Legacy documents production is assumed to hold.
    pub production_documents: u64,
    /// Where that number comes from.
    pub production_basis: String,
    /// production / rehearsed.
    pub factor: f64,
    /// Each timed step of phase 2, here and projected.
    pub steps: Vec<ProjectedStep>,
    /// The maintenance window: backup, dry run, migration, validation.
    pub window_seconds: f64,
    /// A surgical rollback, should it be needed.
    pub rollback_seconds: f64,
    /// Cores of the machine that ran the rehearsal.
    pub cores: usize,
    /// What the projection takes for granted.
    pub assumptions: Vec<String>,
}

/// One step's time here and in production.
#[derive(Debug, Clone, Serialize)]
pub struct ProjectedStep {
    /// The step's key.
    pub name: String,
    /// Its title.
    pub title: String,
    /// Seconds here.
    pub seconds: f64,
    /// Seconds projected for production.
    pub projected_seconds: f64,
}

/// The steps of the maintenance window, in runbook order.
const WINDOW: [&str; 4] = ["backup", "dry_run", "migrate", "validate"];

impl Report {
    /// Gathers the report from what the steps produced.
    pub fn build(
        dump: &Path,
        config: &Config,
        opts: &RehearseOptions,
        run: &Rehearsal,
        started: DateTime<Utc>,
    ) -> Report {
        let now = Utc::now();
        let validation = run.outputs.get("validate");
        let failing: Vec<String> = run
            .steps
            .iter()
            .filter(|s| matches!(s.outcome, Outcome::Failed | Outcome::Error))
            .map(|s| format!("{}: {}", s.title, s.result))
            .collect();
        Report {
            generated_at: now.to_rfc3339_opts(SecondsFormat::Secs, true),
            tool_version: env!("CARGO_PKG_VERSION").into(),
            dump: DumpInfo {
                path: dump.display().to_string(),
                format: run.loaded.as_ref().map_or("", |l| l.format).into(),
                gzip: run.loaded.as_ref().is_some_and(|l| l.gzip),
                documents: run.loaded.as_ref().map_or(0, |l| l.documents()),
            },
            store: config.store_display(),
            legacy_db: config.legacy_db.clone(),
            drawer_db: config.drawer_db.clone(),
            verdict: Verdict {
                passed: !run.steps.is_empty()
                    && run.steps.iter().all(|s| s.outcome == Outcome::Passed),
                reasons: failing,
            },
            steps: run.steps.clone(),
            rates: rates(run, opts),
            dual_write_findings: run
                .outputs
                .get("phase1")
                .map(dual_write_findings)
                .unwrap_or_default(),
            collections: fates(config, run, validation),
            quarantine: run
                .inspection
                .as_ref()
                .map(|i| i.quarantine.clone())
                .unwrap_or_default(),
            warnings: validation.map(warnings).unwrap_or_default(),
            drawers: run.inspection.as_ref().map(|i| i.drawers.clone()),
            restore: run.restore.clone(),
            projection: projection(run, opts),
            elapsed_seconds: (now - started).num_milliseconds() as f64 / 1000.0,
        }
    }
}

fn rates(run: &Rehearsal, opts: &RehearseOptions) -> Vec<Rate> {
    let mut rates = Vec::new();
    let phase1 = run.outputs.get("phase1");
    let counts = phase1.map_or(&Value::Null, |p| &p["counts"]);
    let checked = counts["checked"].as_u64().unwrap_or(0);
    let matched = counts["matched"].as_u64().unwrap_or(0);
    rates.push(rate("dual_write", checked, matched, opts.min_dual_write));
    let validation = run.outputs.get("validate");
    for (name, threshold) in [
        ("questionnaires", opts.thresholds.questionnaires),
        ("followups", opts.thresholds.followups),
        ("plans", opts.thresholds.plans),
    ] {
        let r = validation.map_or(&Value::Null, |v| &v["rates"][name]);
        rates.push(rate(
            name,
            r["documents"].as_u64().unwrap_or(0),
            r["matched"].as_u64().unwrap_or(0),
            threshold,
        ));
    }
    rates
}

fn rate(name: &str, documents: u64, matched: u64, threshold: f64) -> Rate {
    let value = (documents > 0).then(|| matched as f64 / documents as f64);
    Rate {
        name: name.into(),
        documents,
        matched,
        rate: value,
        threshold,
        passed: value.map(|v| v >= threshold),
    }
}

fn dual_write_findings(check: &Value) -> Vec<DualWriteFinding> {
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    };
    let mut out = Vec::new();
    for (list, problem) in [("missing", "missing"), ("mismatches", "differs")] {
        for f in check[list].as_array().into_iter().flatten() {
            out.push(DualWriteFinding {
                collection: text(&f["collection"]),
                id: text(&f["id"]),
                user_id: text(&f["user_id"]),
                problem: problem.into(),
                what: f["what"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(text)
                    .collect(),
            });
        }
    }
    out
}

/// The legacy kind whose validation name (`submission` …) is `name`.
fn kind_named(name: &str) -> Option<LegacyKind> {
    [
        LegacyKind::Submission,
        LegacyKind::Followup,
        LegacyKind::TrainingPlan,
        LegacyKind::NutritionPlan,
    ]
    .into_iter()
    .find(|k| k.as_str() == name)
}

fn fates(config: &Config, run: &Rehearsal, validation: Option<&Value>) -> Vec<CollectionFate> {
    let Some(loaded) = &run.loaded else {
        return Vec::new();
    };
    let mut quarantined: BTreeMap<&str, u64> = BTreeMap::new();
    for g in run.inspection.iter().flat_map(|i| &i.quarantine) {
        *quarantined.entry(g.collection.as_str()).or_default() += g.documents;
    }
    let mut unaccounted: BTreeMap<&str, u64> = BTreeMap::new();
    let listed = validation.and_then(|v| v["accounting"]["unaccounted_listed"].as_array());
    for item in listed.into_iter().flatten() {
        if let Some(kind) = item["collection"].as_str().and_then(kind_named) {
            *unaccounted.entry(config.collection_of(kind)).or_default() += 1;
        }
    }
    let migrated = config.per_user_collections();
    loaded
        .collections
        .iter()
        .map(|c| {
            let is_migrated = c.db == config.legacy_db && migrated.contains(&c.collection.as_str());
            let mut fate = CollectionFate {
                db: c.db.clone(),
                collection: c.collection.clone(),
                documents: c.documents,
                migrated: is_migrated,
                in_drawers: None,
                quarantined: None,
                unaccounted: None,
                fate: fate_of(config, &c.db, &c.collection, is_migrated).into(),
            };
            if is_migrated && validation.is_some() {
                let q = quarantined.get(c.collection.as_str()).copied().unwrap_or(0);
                let u = unaccounted.get(c.collection.as_str()).copied().unwrap_or(0);
                fate.quarantined = Some(q);
                fate.unaccounted = Some(u);
                fate.in_drawers = Some(c.documents.saturating_sub(q + u));
            }
            fate
        })
        .collect()
}

fn fate_of(config: &Config, db: &str, coll: &str, migrated: bool) -> &'static str {
    if migrated {
        "migrated into the drawers"
    } else if db == config.drawer_db && coll == config.drawers {
        "drawers already in production (dual-write): merged into, never overwritten"
    } else if db == config.legacy_db {
        "kept as is: phase 2 does not migrate it"
    } else {
        "kept as is: not a database the migration uses"
    }
}

fn warnings(validation: &Value) -> Warnings {
    let w = &validation["warnings"];
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    let listed: Vec<WarningRow> = w["listed"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|item| WarningRow {
            user_id: text(&item["user_id"]),
            kind: text(&item["kind"]),
            field: text(&item["field"]),
            document: text(&item["document"]),
        })
        .collect();
    let by_kind = w["by_kind"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.as_u64().unwrap_or(0)))
        .collect();
    Warnings {
        count: w["count"].as_u64().unwrap_or(listed.len() as u64),
        by_kind,
        listed,
    }
}

fn projection(run: &Rehearsal, opts: &RehearseOptions) -> Projection {
    let rehearsed = run.legacy_documents;
    let (production, basis) = match opts.production_documents {
        Some(n) => (n, "given with --production-documents".to_string()),
        None => (
            rehearsed,
            "the dump's own count: the dump is production's data as of when it was taken"
                .to_string(),
        ),
    };
    let factor = if rehearsed == 0 {
        0.0
    } else {
        production as f64 / rehearsed as f64
    };
    let steps: Vec<ProjectedStep> = run
        .steps
        .iter()
        .filter(|s| WINDOW.contains(&s.name.as_str()) || s.name == "rollback")
        .filter(|s| s.outcome != Outcome::NotRun)
        .map(|s| ProjectedStep {
            name: s.name.clone(),
            title: s.title.clone(),
            seconds: s.seconds,
            projected_seconds: s.seconds * factor,
        })
        .collect();
    let sum = |pick: &dyn Fn(&ProjectedStep) -> bool| -> f64 {
        steps
            .iter()
            .filter(|s| pick(s))
            .map(|s| s.projected_seconds)
            .sum()
    };
    let window_seconds = sum(&|s| WINDOW.contains(&s.name.as_str()));
    let rollback_seconds = sum(&|s| s.name == "rollback");
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    Projection {
        rehearsed_documents: rehearsed,
        production_documents: production,
        production_basis: basis,
        factor,
        steps,
        window_seconds,
        rollback_seconds,
        cores,
        assumptions: assumptions(rehearsed, cores, opts),
    }
}

fn assumptions(rehearsed: u64, cores: usize, opts: &RehearseOptions) -> Vec<String> {
    let mut list = vec![
        "Each step's time grows in proportion to the legacy documents (measured: ×10.1 from 10,000 to 100,000 users, README).".to_string(),
        format!(
            "The rates are this machine's ({cores} cores) on the embedded store; production runs against MongoDB over the network, where round trips and the server's own load add time, so read the figures as a lower bound."
        ),
        format!(
            "The migration runs with the settings rehearsed here (batch of {} users, no --max-rate); with --max-rate R it takes at least documents / R seconds.",
            opts.batch_size
        ),
        "The backup covers the legacy collections and client_drawers, as `phase2 backup` does; the dump may hold more.".to_string(),
    ];
    if rehearsed < 10_000 {
        list.push(format!(
            "This dump is small ({rehearsed} legacy documents): fixed costs (opening files, starting runs) dominate its times, so the projection overstates production."
        ));
    }
    list
}

/// A duration as people read it: `0.42 s`, `3 min 05 s`, `1 h 02 min`.
pub fn duration(seconds: f64) -> String {
    if seconds < 60.0 {
        return format!("{seconds:.2} s");
    }
    let whole = seconds.round() as u64;
    if whole < 3600 {
        format!("{} min {:02} s", whole / 60, whole % 60)
    } else {
        format!("{} h {:02} min", whole / 3600, (whole % 3600) / 60)
    }
}

/// A byte count as people read it.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// A rate, or `n/a` when nothing was compared.
pub fn rate_text(rate: Option<f64>) -> String {
    rate.map_or_else(|| "n/a".to_string(), percent)
}

/// A count that may not have been measured.
pub fn maybe(n: Option<u64>) -> String {
    n.map_or_else(|| "–".to_string(), |n| n.to_string())
}

/// Throughput, or nothing.
pub fn per_second(rate: Option<f64>) -> String {
    rate.map_or_else(String::new, |r| format!("{r:.0}/s"))
}

/// `report.md`: the same sections as the HTML report, without charts.
pub fn markdown(r: &Report) -> String {
    let mut md = String::new();
    let mut line = |s: String| {
        md.push_str(&s);
        md.push('\n');
    };
    line("# Staging rehearsal".into());
    line(String::new());
    line(format!(
        "- dump: `{}` ({}{}, {} documents)",
        r.dump.path,
        r.dump.format,
        if r.dump.gzip { ", gzipped" } else { "" },
        r.dump.documents
    ));
    line(format!("- store: `{}` (fresh, embedded)", r.store));
    line(format!(
        "- generated: {} by edn-migrate {} in {}",
        r.generated_at,
        r.tool_version,
        duration(r.elapsed_seconds)
    ));
    line(String::new());
    if r.verdict.passed {
        line("**Verdict: passed.** Every step met its threshold.".into());
    } else {
        line("**Verdict: NOT passed.**".into());
        line(String::new());
        for reason in &r.verdict.reasons {
            line(format!("- {}", cell(reason)));
        }
    }
    md.push_str(&markdown_sections(r));
    md
}

fn markdown_sections(r: &Report) -> String {
    let mut md = String::new();
    md.push_str("\n## Steps\n\n| step | outcome | result | must show | time | documents | rate |\n|---|---|---|---|---:|---:|---:|\n");
    for s in &r.steps {
        md.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} |\n",
            s.title,
            s.outcome.label(),
            cell(&s.result),
            cell(&s.check),
            duration(s.seconds),
            maybe(s.documents),
            per_second(s.per_second)
        ));
    }
    md.push_str("\n## Match rates\n\n| rate | documents | matched | rate | threshold | |\n|---|---:|---:|---:|---:|---|\n");
    for x in &r.rates {
        md.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} |\n",
            x.name,
            x.documents,
            x.matched,
            rate_text(x.rate),
            percent(x.threshold),
            match x.passed {
                Some(true) => "ok",
                Some(false) => "**below**",
                None => "not measured",
            }
        ));
    }
    if !r.dual_write_findings.is_empty() {
        md.push_str("\n### Dual-write: documents not as the legacy ones (ids and paths only)\n\n| collection | id | user | problem | what |\n|---|---|---|---|---|\n");
        for f in r.dual_write_findings.iter().take(SHOWN) {
            md.push_str(&format!(
                "| {} | {} | {} | {} | {} |\n",
                cell(&f.collection),
                cell(&f.id),
                cell(&f.user_id),
                f.problem,
                cell(&f.what.join("; "))
            ));
        }
    }
    md.push_str("\n## Documents by collection\n\n| collection | documents | in drawers | quarantined | unaccounted | fate |\n|---|---:|---:|---:|---:|---|\n");
    for c in &r.collections {
        md.push_str(&format!(
            "| {}.{} | {} | {} | {} | {} | {} |\n",
            c.db,
            c.collection,
            c.documents,
            maybe(c.in_drawers),
            maybe(c.quarantined),
            maybe(c.unaccounted),
            c.fate
        ));
    }
    if !r.quarantine.is_empty() {
        md.push_str(
            "\n### Quarantined, by reason\n\n| collection | reason | documents |\n|---|---|---:|\n",
        );
        for q in &r.quarantine {
            md.push_str(&format!(
                "| {} | {} | {} |\n",
                q.collection,
                cell(&q.reason),
                q.documents
            ));
        }
    }
    md.push_str(&markdown_warnings(&r.warnings));
    md.push_str(&markdown_drawers(r));
    md.push_str(&markdown_projection(&r.projection));
    md
}

fn markdown_warnings(w: &Warnings) -> String {
    let mut md = format!("\n## Warnings ({})\n\n", w.count);
    if w.by_kind.is_empty() {
        md.push_str("None.\n");
        return md;
    }
    md.push_str("| kind | count |\n|---|---:|\n");
    for (kind, n) in &w.by_kind {
        md.push_str(&format!("| {kind} | {n} |\n"));
    }
    md.push_str("\n| user | kind | field path | document |\n|---|---|---|---|\n");
    for row in w.listed.iter().take(SHOWN) {
        md.push_str(&format!(
            "| {} | {} | {} | {} |\n",
            cell(&row.user_id),
            cell(&row.kind),
            cell(&row.field),
            cell(&row.document)
        ));
    }
    if w.listed.len() > SHOWN {
        md.push_str(&format!(
            "\n… and {} more in report.json.\n",
            w.listed.len() - SHOWN
        ));
    }
    md
}

fn markdown_drawers(r: &Report) -> String {
    let mut md = String::from("\n## Drawers\n\n");
    match &r.drawers {
        None => md.push_str("The migration did not run.\n"),
        Some(d) => {
            md.push_str(&format!(
                "{} drawers, {} in all; {} snapshots archived. MongoDB's limit is {} per document.\n\n| largest drawers | size | of 16 MiB |\n|---|---:|---:|\n",
                d.count,
                bytes(d.total_bytes),
                d.archived_snapshots,
                bytes(d.limit_bytes)
            ));
            for x in &d.largest {
                md.push_str(&format!(
                    "| {} | {} | {:.3} % |\n",
                    cell(&x.drawer_id),
                    bytes(x.bytes),
                    x.of_limit * 100.0
                ));
            }
        }
    }
    md.push_str("\n## Back to the dump\n\n");
    match &r.restore {
        None => md.push_str("Not checked.\n"),
        Some(c) => {
            md.push_str(&format!(
                "{} documents in {} collections compared byte for byte with the dump as imported: {} differ. Left out (the tool's own records): {}.\n",
                c.documents,
                c.collections,
                c.differences,
                if c.ignored.is_empty() { "none".to_string() } else { c.ignored.join(", ") }
            ));
            if !c.listed.is_empty() {
                md.push_str("\n| namespace | id | what differs |\n|---|---|---|\n");
                for d in &c.listed {
                    md.push_str(&format!(
                        "| {} | {} | {} |\n",
                        d.namespace,
                        cell(&d.id),
                        cell(&d.what)
                    ));
                }
            }
        }
    }
    md
}

fn markdown_projection(p: &Projection) -> String {
    let mut md = format!(
        "\n## Projection for production\n\n{} legacy documents rehearsed; production: {} ({}), ×{:.2}.\n\n| step | here | production |\n|---|---:|---:|\n",
        p.rehearsed_documents, p.production_documents, p.production_basis, p.factor
    );
    for s in &p.steps {
        md.push_str(&format!(
            "| {} | {} | {} |\n",
            s.title,
            duration(s.seconds),
            duration(s.projected_seconds)
        ));
    }
    md.push_str(&format!(
        "\nMaintenance window (backup, dry run, migration, validation): **{}**; a rollback, if needed: {}.\n\nAssumptions:\n\n",
        duration(p.window_seconds),
        duration(p.rollback_seconds)
    ));
    for a in &p.assumptions {
        md.push_str(&format!("- {a}\n"));
    }
    md
}

/// A Markdown table cell: pipes escaped, one line.
fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_sizes_read_as_people_write_them() {
        assert_eq!(duration(0.4234), "0.42 s");
        assert_eq!(duration(185.0), "3 min 05 s");
        assert_eq!(duration(3720.0), "1 h 02 min");
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(12 * 1024 + 512), "12.5 KiB");
        assert_eq!(bytes(16 * 1024 * 1024), "16.0 MiB");
    }

    #[test]
    fn nothing_compared_is_not_a_rate() {
        let r = rate("plans", 0, 0, 0.9);
        assert_eq!((r.rate, r.passed), (None, None));
        let r = rate("plans", 10, 9, 0.9);
        assert_eq!(r.passed, Some(true));
        let r = rate("plans", 10, 8, 0.9);
        assert_eq!(r.passed, Some(false));
    }

    #[test]
    fn table_cells_cannot_break_the_table() {
        assert_eq!(cell("a|b\nc"), "a\\|b c");
    }
}
