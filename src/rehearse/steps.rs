//! The rehearsal's steps, in the plan's order, each through the library
//! entry point the command line uses, each judged against its threshold.
//!
//! A step below its threshold (or whose gate was not met) is `failed` and the
//! rehearsal goes on, so the report shows everything that would happen. A
//! step that could not run at all (the store failed, the dump is unreadable)
//! stops it: the steps after it are `not run`.

use super::inspect::{self, Inspection};
use super::report::{Outcome, Step};
use super::restore::{self, RestoreCheck};
use super::{RehearseOptions, BACKEND_ENV, BASELINE_FILE, MIGRATED_FILE};
use crate::config::Config;
use crate::dump::{self, DumpOptions, Loaded};
use crate::error::{CommandError, CommandResult};
use crate::phase2::validate::{self, ValidateOptions};
use crate::phase2::{self, MigrateOptions, Part};
use crate::rollback::{self, RollbackOptions};
use crate::store::{self, Store};
use crate::toggle::{Consent, FlagOptions};
use crate::transfer::ImportOptions;
use crate::{backup, phase0, phase1};
use chrono::Utc;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

/// Everything the steps produced, for the report.
#[derive(Default)]
pub struct Rehearsal {
    /// One entry per step, in order, whether it ran or not.
    pub steps: Vec<Step>,
    /// What the import loaded.
    pub loaded: Option<Loaded>,
    /// The JSON output of each step's library call, by step name.
    pub outputs: BTreeMap<&'static str, Value>,
    /// The migrated store, read before the rollback.
    pub inspection: Option<Inspection>,
    /// The comparison with the dump after the rollback.
    pub restore: Option<RestoreCheck>,
    /// Legacy documents in the four migrated collections after the import.
    pub legacy_documents: u64,
    /// Why the rehearsal stopped early, if it did.
    pub error: Option<CommandError>,
}

/// What one step found.
struct Verdict {
    passed: bool,
    result: String,
    documents: Option<u64>,
    output: Option<Value>,
}

impl Verdict {
    fn new(passed: bool, result: impl Into<String>) -> Verdict {
        Verdict {
            passed,
            result: result.into(),
            documents: None,
            output: None,
        }
    }

    fn documents(mut self, n: Option<u64>) -> Verdict {
        self.documents = n;
        self
    }

    fn output(mut self, output: Value) -> Verdict {
        self.output = Some(output);
        self
    }
}

/// The steps: name (the key in report.json), title and what must hold.
pub const STEPS: [(&str, &str); 10] = [
    ("import", "Import the dump"),
    ("phase0", "Phase 0: prepare"),
    ("phase1", "Phase 1: dual-write check"),
    ("backup", "Phase 2: backup"),
    ("dry_run", "Phase 2: dry run"),
    ("migrate", "Phase 2: migration"),
    ("validate", "Phase 2: validation"),
    ("second_run", "Phase 2: second run"),
    ("rollback", "Rollback of phase 2"),
    ("restored", "Back to the dump"),
];

/// Runs every step on the fresh store named by `config.store_url`.
pub fn run_all(dump: &Path, config: &Config, opts: &RehearseOptions) -> CommandResult<Rehearsal> {
    let mut r = Rehearsal::default();
    let out = &opts.out_dir;
    let backups = out.join("backups");
    let mut store = store::open(&config.store_url)?;
    r.run("import", opts, |r| {
        import(store.as_ref(), dump, config, opts, r)
    });
    store = r.keep_copy(store, config, &out.join(BASELINE_FILE))?;
    r.run("phase0", opts, |_| prepare(store.as_ref(), config));
    r.run("phase1", opts, |_| {
        dual_write_check(store.as_ref(), config, opts)
    });
    r.run("backup", opts, |_| {
        take_backup(store.as_ref(), config, &backups)
    });
    r.run("dry_run", opts, |_| {
        dry_run(store.as_ref(), config, opts, &backups)
    });
    r.run("migrate", opts, |r| {
        migrate(store.as_ref(), config, opts, &backups, r)
    });
    store = r.keep_copy(store, config, &out.join(MIGRATED_FILE))?;
    if r.error.is_none() {
        match inspect::inspect(store.as_ref(), config) {
            Ok(found) => r.inspection = Some(found),
            Err(e) => r.error = Some(e),
        }
    }
    let store = store.as_ref();
    r.run("validate", opts, |_| validate(store, config, opts));
    r.run("second_run", opts, |_| {
        second_run(store, config, opts, &backups)
    });
    r.run("rollback", opts, |_| {
        roll_back(store, config, opts, &backups)
    });
    r.run("restored", opts, |r| restored(store, config, out, r));
    Ok(r)
}

impl Rehearsal {
    /// Copies the store file to `to` (unless a step could not run): the
    /// store is closed first, so its journal is folded back into the file,
    /// and opened again.
    fn keep_copy(
        &mut self,
        store: Box<dyn Store>,
        config: &Config,
        to: &Path,
    ) -> CommandResult<Box<dyn Store>> {
        if self.error.is_some() {
            return Ok(store);
        }
        drop(store);
        if let Err(e) = copy_store(&self_path(config), to) {
            self.error = Some(e);
        }
        Ok(store::open(&config.store_url)?)
    }

    /// Runs one step unless an earlier one could not run, times it, and
    /// records its outcome.
    fn run(
        &mut self,
        name: &'static str,
        opts: &RehearseOptions,
        step: impl FnOnce(&mut Rehearsal) -> CommandResult<Verdict>,
    ) {
        let title = title(name);
        let check = check_of(name, opts);
        if self.error.is_some() {
            self.steps.push(Step::not_run(
                name,
                title,
                check,
                "not run: an earlier step could not run",
            ));
            return;
        }
        let started = Instant::now();
        let result = step(self);
        let seconds = started.elapsed().as_secs_f64();
        let verdict = match result {
            Ok(v) => v,
            Err(CommandError::Failed { output, message }) => {
                Verdict::new(false, first_line(&message)).output(output.json)
            }
            Err(CommandError::Gate(message)) => Verdict::new(false, first_line(&message)),
            Err(e) => {
                let mut step = Step::new(
                    name,
                    title,
                    check,
                    Outcome::Error,
                    first_line(&e.to_string()),
                );
                step.seconds = seconds;
                self.steps.push(step);
                self.error = Some(e);
                return;
            }
        };
        let outcome = if verdict.passed {
            Outcome::Passed
        } else {
            Outcome::Failed
        };
        let mut step = Step::new(name, title, check, outcome, verdict.result);
        step.seconds = seconds;
        step.documents = verdict.documents;
        step.per_second = verdict
            .documents
            .filter(|_| seconds > 0.0)
            .map(|n| n as f64 / seconds);
        if let Some(output) = verdict.output {
            self.outputs.insert(name, output);
        }
        self.steps.push(step);
    }
}

fn title(name: &str) -> &'static str {
    STEPS
        .iter()
        .find(|(n, _)| *n == name)
        .map_or("", |(_, t)| *t)
}

/// What a step must show to pass, in words, with the thresholds in force.
fn check_of(name: &str, opts: &RehearseOptions) -> String {
    let t = &opts.thresholds;
    match name {
        "import" => "every file loads; the migrated collections hold documents".into(),
        "phase0" => "client_drawers and its indexes in place".into(),
        "phase1" => format!(
            "at least {} of the documents dual-write copied {} match the legacy ones",
            percent(opts.min_dual_write),
            match opts.dual_write_since {
                Some(t) => format!("since {}", t.format("%Y-%m-%d %H:%M UTC")),
                None => "since it began".to_string(),
            }
        ),
        "backup" => "written and verified against its manifest".into(),
        "dry_run" => "plans the migration without writing".into(),
        "migrate" => "passes the backup gate, succeeds, and does what the dry run planned".into(),
        "validate" => format!(
            "questionnaires ≥ {}, follow-ups ≥ {}, plans ≥ {}; every document in its drawer or in quarantine; every drawer valid",
            percent(t.questionnaires),
            percent(t.followups),
            percent(t.plans)
        ),
        "second_run" => "writes nothing".into(),
        "rollback" => "undoes every migration run".into(),
        "restored" => "every document byte-identical to the dump as imported (run records aside)".into(),
        _ => String::new(),
    }
}

/// A fraction as a percentage, one decimal.
pub fn percent(fraction: f64) -> String {
    format!("{:.1} %", fraction * 100.0)
}

fn first_line(text: &str) -> String {
    text.lines().next().unwrap_or_default().to_string()
}

fn import(
    store: &dyn Store,
    dump: &Path,
    config: &Config,
    opts: &RehearseOptions,
    r: &mut Rehearsal,
) -> CommandResult<Verdict> {
    let mut dump_opts = DumpOptions::new(ImportOptions {
        upsert: false,
        drop: false,
        batch_size: 1000,
    });
    dump_opts.rename = opts.rename.clone();
    let loaded = dump::load(store, dump, &dump_opts)?;
    let mut legacy = 0;
    for coll in config.per_user_collections() {
        legacy += store.count(&config.legacy(coll))?;
    }
    r.legacy_documents = legacy;
    let documents = loaded.documents();
    let collections = loaded.collections.len();
    r.loaded = Some(loaded);
    if legacy == 0 {
        return Ok(Verdict::new(
            false,
            format!(
                "{documents} documents loaded, but none in {}'s {}: check the dump's database names (`--rename-db FROM={}`)",
                config.legacy_db,
                config.per_user_collections().join(", "),
                config.legacy_db
            ),
        )
        .documents(Some(documents)));
    }
    Ok(Verdict::new(
        true,
        format!("{documents} documents in {collections} collections ({legacy} in the four migrated collections)"),
    )
    .documents(Some(documents)))
}

/// The store file a `sqlite:PATH` URL names.
fn self_path(config: &Config) -> std::path::PathBuf {
    config
        .store_url
        .strip_prefix("sqlite:")
        .unwrap_or(&config.store_url)
        .into()
}

/// Copies a closed store file (and a journal left beside it, if any).
fn copy_store(store: &Path, baseline: &Path) -> CommandResult<()> {
    for suffix in ["", "-wal"] {
        let from = with_suffix(store, suffix);
        if from.exists() {
            let to = with_suffix(baseline, suffix);
            std::fs::copy(&from, &to).map_err(CommandError::io(format!(
                "copying {} to {}",
                from.display(),
                to.display()
            )))?;
        }
    }
    Ok(())
}

fn with_suffix(path: &Path, suffix: &str) -> std::path::PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    name.into()
}

fn prepare(store: &dyn Store, config: &Config) -> CommandResult<Verdict> {
    let output = phase0::prepare(store, config, true)?;
    let created = output.json["created"].as_u64().unwrap_or(0);
    let items = output.json["steps"].as_array().map_or(0, Vec::len);
    Ok(Verdict::new(
        true,
        format!("{created} of {items} collections and indexes created"),
    )
    .output(output.json))
}

/// Phase 1's check on the drawers the dump holds (dual-write has been
/// writing them in production), from when dual-write began.
fn dual_write_check(
    store: &dyn Store,
    config: &Config,
    opts: &RehearseOptions,
) -> CommandResult<Verdict> {
    let check = phase1::CheckOptions {
        since: opts.dual_write_since,
        min_match: opts.min_dual_write,
        env_file: opts.out_dir.join(BACKEND_ENV),
    };
    let (passed, json) = match phase1::dual_write_check(store, config, &check) {
        Ok(output) => (true, output.json),
        Err(CommandError::Failed { output, .. }) => (false, output.json),
        Err(e) => return Err(e),
    };
    let c = &json["counts"];
    let checked = c["checked"].as_u64().unwrap_or(0);
    let result = if checked == 0 {
        "nothing to check: no drawer of the dump holds an entry dual-write wrote".to_string()
    } else {
        format!(
            "{} of {checked} match ({}); {} differ, {} missing from drawers",
            c["matched"],
            json["match_rate"].as_f64().map_or("n/a".into(), percent),
            c["mismatched"],
            c["missing"]
        )
    };
    Ok(Verdict::new(passed, result)
        .documents(Some(checked))
        .output(json))
}

fn take_backup(store: &dyn Store, config: &Config, backups: &Path) -> CommandResult<Verdict> {
    let output = backup::create(store, config, backups, Utc::now())?;
    let documents = output.json["documents"].as_u64();
    let verified = !output.json["verified_at"].is_null();
    let id = output.json["id"].as_str().unwrap_or_default().to_string();
    let result = if verified {
        format!(
            "backup {id}: {} documents, verified",
            documents.unwrap_or(0)
        )
    } else {
        format!("backup {id} was written but not verified")
    };
    Ok(Verdict::new(verified, result)
        .documents(documents)
        .output(output.json))
}

fn migrate_options(opts: &RehearseOptions, backups: &Path, dry_run: bool) -> MigrateOptions {
    MigrateOptions {
        part: Part::All,
        dry_run,
        resume: false,
        partition: None,
        batch_size: opts.batch_size,
        max_rate: None,
        break_lock: false,
        force_reason: None,
        backup_dir: backups.to_path_buf(),
        pairing_window_ms: opts.pairing_window_ms,
        max_drawer_bytes: opts.max_drawer_bytes,
    }
}

fn dry_run(
    store: &dyn Store,
    config: &Config,
    opts: &RehearseOptions,
    backups: &Path,
) -> CommandResult<Verdict> {
    let output = phase2::migrate(store, config, &migrate_options(opts, backups, true))?;
    let j = &output.json;
    let result = format!(
        "would create {} drawers, update {}, quarantine {} documents; {} writes",
        j["drawers_created"], j["drawers_updated"], j["quarantined"], j["writes"]
    );
    Ok(Verdict::new(true, result)
        .documents(j["documents"].as_u64())
        .output(output.json))
}

/// The counts a dry run predicts and the real run must reproduce.
const PLANNED: [&str; 6] = [
    "drawers_created",
    "drawers_updated",
    "snapshots",
    "followups",
    "quarantined",
    "writes",
];

fn migrate(
    store: &dyn Store,
    config: &Config,
    opts: &RehearseOptions,
    backups: &Path,
    r: &mut Rehearsal,
) -> CommandResult<Verdict> {
    let output = phase2::migrate(store, config, &migrate_options(opts, backups, false))?;
    let j = &output.json;
    let plan = r.outputs.get("dry_run");
    let differs: Vec<String> = PLANNED
        .iter()
        .filter(|k| plan.is_some_and(|p| p[**k] != j[**k]))
        .map(|k| {
            format!(
                "{k} {} planned, {} done",
                plan.map_or(&Value::Null, |p| &p[*k]),
                j[*k]
            )
        })
        .collect();
    let done = format!(
        "{} drawers created, {} updated, {} documents quarantined, {} writes",
        j["drawers_created"], j["drawers_updated"], j["quarantined"], j["writes"]
    );
    let verdict = if differs.is_empty() {
        Verdict::new(true, format!("{done}, as planned"))
    } else {
        Verdict::new(
            false,
            format!(
                "{done}; not what the dry run planned: {}",
                differs.join(", ")
            ),
        )
    };
    Ok(verdict
        .documents(j["documents"].as_u64())
        .output(output.json))
}

fn validate(store: &dyn Store, config: &Config, opts: &RehearseOptions) -> CommandResult<Verdict> {
    let validate_opts = ValidateOptions {
        thresholds: opts.thresholds,
        report_dir: opts.out_dir.join("validation"),
        list_warnings: true,
        partition: None,
    };
    let (passed, json) = match validate::validate(store, config, &validate_opts) {
        Ok(output) => (true, output.json),
        Err(CommandError::Failed { output, .. }) => (false, output.json),
        Err(e) => return Err(e),
    };
    let rates: Vec<String> = json["rates"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(name, r)| match r["rate"].as_f64() {
            Some(rate) => format!("{name} {}", percent(rate)),
            None => format!("{name} n/a"),
        })
        .collect();
    let a = &json["accounting"];
    let result = format!(
        "{}; {} unaccounted, {} invalid drawers",
        rates.join(", "),
        a["unaccounted"],
        json["drawers"]["invalid"]
    );
    Ok(Verdict::new(passed, result)
        .documents(a["legacy_documents"].as_u64())
        .output(json))
}

fn second_run(
    store: &dyn Store,
    config: &Config,
    opts: &RehearseOptions,
    backups: &Path,
) -> CommandResult<Verdict> {
    let output = phase2::migrate(store, config, &migrate_options(opts, backups, false))?;
    let j = &output.json;
    let writes = j["writes"].as_u64().unwrap_or(u64::MAX);
    let result = format!(
        "{} writes; {} of {} drawers unchanged",
        j["writes"], j["drawers_unchanged"], j["users"]
    );
    Ok(Verdict::new(writes == 0, result)
        .documents(j["documents"].as_u64())
        .output(output.json))
}

/// The rollback as an incident script runs it (`rollback --phase 2 --yes`),
/// gate included: reads still come from the legacy collections.
fn roll_back(
    store: &dyn Store,
    config: &Config,
    opts: &RehearseOptions,
    backups: &Path,
) -> CommandResult<Verdict> {
    let output = rollback::rollback(
        store,
        config,
        &RollbackOptions {
            phase: 2,
            from_backup: None,
            include_legacy: false,
        },
        &FlagOptions::env_file(opts.out_dir.join(BACKEND_ENV)),
        &Consent {
            yes: true,
            force_reason: None,
            backup_dir: backups.to_path_buf(),
        },
    )?;
    let u = &output.json["undone"];
    let drawers = ["drawers_deleted", "drawers_restored", "drawers_untouched"]
        .iter()
        .filter_map(|k| u[*k].as_u64())
        .sum::<u64>();
    let result = format!(
        "{} drawers deleted, {} restored, {} plan stamps and {} quarantine records removed",
        u["drawers_deleted"], u["drawers_restored"], u["stamps_removed"], u["quarantine_removed"]
    );
    Ok(Verdict::new(true, result)
        .documents(Some(drawers))
        .output(output.json))
}

fn restored(
    store: &dyn Store,
    config: &Config,
    out: &Path,
    r: &mut Rehearsal,
) -> CommandResult<Verdict> {
    let baseline = store::open(&format!("sqlite:{}", out.join(BASELINE_FILE).display()))?;
    let mut dbs: Vec<String> = vec![config.legacy_db.clone(), config.drawer_db.clone()];
    for c in r.loaded.iter().flat_map(|l| &l.collections) {
        dbs.push(c.db.clone());
    }
    dbs.sort();
    dbs.dedup();
    let check = restore::compare(store, baseline.as_ref(), &dbs, config)?;
    let verdict = if check.differences == 0 {
        Verdict::new(
            true,
            format!(
                "{} documents in {} collections identical",
                check.documents, check.collections
            ),
        )
    } else {
        let first = check
            .listed
            .first()
            .map(|d| format!(" (first: {} {} {})", d.namespace, d.id, d.what))
            .unwrap_or_default();
        Verdict::new(
            false,
            format!(
                "{} of {} documents differ from the dump{first}",
                check.differences, check.documents
            ),
        )
    };
    let verdict = verdict.documents(Some(check.documents));
    r.restore = Some(check);
    Ok(verdict)
}
