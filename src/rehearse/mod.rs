//! `rehearse DUMP`: the plan's staging run ("Fase 0.5") on a laptop. The
//! whole of phase 2, and the checks around it, run on a fresh embedded store
//! loaded from a production dump, and the team gets a report that says what
//! production will see before anyone touches production.
//!
//! The source database is never opened: the only input is the dump's files.
//! Every step calls the same library entry point the command line calls
//! (import, phase 0, the dual-write check, backup, migrate, validate,
//! rollback), with a [`Config`] that points at the fresh store, so what is
//! rehearsed is what will run. Gates are met honestly: the migration gates on
//! a real, verified backup of the fresh store, never on `--force`.
//!
//! The store right after the import is kept as `baseline.db`; after the
//! rollback every document is compared with it, byte for byte, so "the
//! rollback gives back the dump" is measured, not assumed. The store right
//! after the migration is kept as `migrated.db`, for whoever wants to look
//! at the drawers production will get.

mod inspect;
pub mod report;
mod restore;
mod steps;

mod html;
mod svg;

use crate::config::Config;
use crate::error::{CommandError, CommandResult};
use crate::phase2::validate::Thresholds;
use crate::private;
use crate::report::Output;
use chrono::Utc;
use report::{Outcome, Report};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The plan's threshold for the dual-write match rate (section 5: > 98 %),
/// as `phase1 dual-write-check` has it.
pub const DEFAULT_MIN_DUAL_WRITE: f64 = crate::phase1::DEFAULT_MIN_MATCH;

/// The embedded store the rehearsal runs on, inside the output folder.
pub const STORE_FILE: &str = "rehearsal.db";
/// The copy of the store taken right after the import.
pub const BASELINE_FILE: &str = "baseline.db";
/// The copy of the store taken right after the migration: the drawers as
/// production will get them, to inspect (`--store sqlite:OUT/migrated.db`).
pub const MIGRATED_FILE: &str = "migrated.db";

/// The backend flags production has during phase 2, written for the
/// rehearsal's gates and checks (a dump does not carry the backend's
/// `.env`): dual-write on, reads from the legacy collections.
pub const BACKEND_ENV: &str = "backend.env";
const PHASE2_FLAGS: &str = "# The backend's flags during phase 2, as the rehearsal assumes them\n# (written by `edn-migrate rehearse`; production's own .env is not read).\nUSE_CLIENT_DRAWER_WRITE=true\nUSE_CLIENT_DRAWER_READ=false\nDISABLE_LEGACY_ENDPOINTS=false\n";

/// What `rehearse` was asked.
#[derive(Debug, Clone)]
pub struct RehearseOptions {
    /// Where the store, the backup, the validation reports and the
    /// rehearsal's own report go. Created owner-only; must not hold a
    /// rehearsal already.
    pub out_dir: PathBuf,
    /// Dump database → store database, when the dump's names are not the
    /// configured legacy and drawer databases.
    pub rename: BTreeMap<String, String>,
    /// Phase 2 validation thresholds.
    pub thresholds: Thresholds,
    /// Dual-write match rate needed, 0 to 1.
    pub min_dual_write: f64,
    /// Check dual-write from this date (default: when the dump says it began).
    pub dual_write_since: Option<chrono::DateTime<Utc>>,
    /// Users per migration batch.
    pub batch_size: u32,
    /// Nutrition ↔ training pairing window.
    pub pairing_window_ms: i64,
    /// Drawer size limit before snapshots are archived.
    pub max_drawer_bytes: usize,
    /// Legacy documents production holds, for the projection (default: the
    /// dump's own count, i.e. the dump is production's data).
    pub production_documents: Option<u64>,
}

impl RehearseOptions {
    /// The plan's thresholds and the migration's defaults, writing to `out_dir`.
    pub fn new(out_dir: impl Into<PathBuf>) -> RehearseOptions {
        RehearseOptions {
            out_dir: out_dir.into(),
            rename: BTreeMap::new(),
            thresholds: Thresholds {
                questionnaires: 0.95,
                followups: 0.95,
                plans: 0.90,
            },
            min_dual_write: DEFAULT_MIN_DUAL_WRITE,
            dual_write_since: None,
            batch_size: 100,
            pairing_window_ms: crate::drawer::DEFAULT_PAIRING_WINDOW_MS,
            max_drawer_bytes: crate::drawer::DEFAULT_MAX_DRAWER_BYTES,
            production_documents: None,
        }
    }
}

/// The three report files, in the output folder.
#[derive(Debug, Clone)]
pub struct ReportFiles {
    /// `report.json`: every figure, for scripts.
    pub json: PathBuf,
    /// `report.md`: for a ticket or a pull request.
    pub markdown: PathBuf,
    /// `report.html`: self-contained, with charts, for people.
    pub html: PathBuf,
}

impl ReportFiles {
    /// The report files of a rehearsal written to `out_dir`.
    pub fn in_dir(out_dir: &Path) -> ReportFiles {
        ReportFiles {
            json: out_dir.join("report.json"),
            markdown: out_dir.join("report.md"),
            html: out_dir.join("report.html"),
        }
    }
}

/// The top-level entry point for `rehearse DUMP`.
///
/// `config` gives the database and collection names; its store URL is not
/// used (the rehearsal runs on `OUT/rehearsal.db`). Returns the summary when
/// every step passed its threshold; a step below its threshold or a gate not
/// met is `CommandError::Failed` (exit 3) with the same summary; a step that
/// could not run at all returns its own error, after the report is written.
pub fn rehearse(dump: &Path, config: &Config, opts: &RehearseOptions) -> CommandResult<Output> {
    let started = Utc::now();
    let out = &opts.out_dir;
    prepare_out_dir(out)?;
    let mut config = config.clone();
    config.store_url = format!("sqlite:{}", out.join(STORE_FILE).display());
    let run = steps::run_all(dump, &config, opts)?;
    let report = Report::build(dump, &config, opts, &run, started);
    let files = ReportFiles::in_dir(out);
    write_reports(&report, &files)?;
    let output = summary(&report, &files);
    if let Some(error) = run.error {
        return Err(stopped(error, &files));
    }
    if report.verdict.passed {
        Ok(output)
    } else {
        let message = format!(
            "the rehearsal did not pass: {}; see {}",
            report.verdict.reasons.join("; "),
            files.html.display()
        );
        Err(CommandError::Failed {
            output: Box::new(output),
            message,
        })
    }
}

/// The output folder, owner-only; refuses one that holds a rehearsal, so a
/// report never mixes two runs.
fn prepare_out_dir(out: &Path) -> CommandResult<()> {
    for name in [STORE_FILE, BASELINE_FILE, MIGRATED_FILE, "report.json"] {
        if out.join(name).exists() {
            return Err(CommandError::Input(format!(
                "{} already holds a rehearsal ({name}): pass another `--out DIR`, or remove that folder first",
                out.display()
            )));
        }
    }
    private::create_dir_all(out)
        .map_err(CommandError::io(format!("creating {}", out.display())))?;
    let env = out.join(BACKEND_ENV);
    private::write(&env, PHASE2_FLAGS)
        .map_err(CommandError::io(format!("writing {}", env.display())))
}

fn write_reports(report: &Report, files: &ReportFiles) -> CommandResult<()> {
    let json = serde_json::to_string_pretty(report)
        .map_err(|e| CommandError::Input(format!("the report cannot be encoded: {e}")))?;
    for (path, text) in [
        (&files.json, json),
        (&files.markdown, report::markdown(report)),
        (&files.html, html::render(report)),
    ] {
        private::write(path, text)
            .map_err(CommandError::io(format!("writing {}", path.display())))?;
    }
    Ok(())
}

/// A step failed to run (not a threshold): its error, with where the
/// report of what did run is.
fn stopped(error: CommandError, files: &ReportFiles) -> CommandError {
    let note = format!(
        "\nthe rehearsal stopped; the report of the steps that ran is {}",
        files.html.display()
    );
    match error {
        CommandError::Interrupted(m) => CommandError::Interrupted(m + &note),
        CommandError::Input(m) => CommandError::Input(m + &note),
        other => CommandError::Input(format!("{other}{note}")),
    }
}

/// The text and JSON the command prints: the steps, the verdict, the files.
fn summary(report: &Report, files: &ReportFiles) -> Output {
    let width = |f: fn(&report::Step) -> usize| report.steps.iter().map(f).max().unwrap_or(0);
    let (w_title, w_outcome) = (
        width(|s| s.title.chars().count()),
        width(|s| s.outcome.label().len()),
    );
    let mut rows = String::new();
    for s in &report.steps {
        let time = if s.outcome == Outcome::NotRun {
            String::new()
        } else {
            format!("{:.2} s", s.seconds)
        };
        rows.push_str(&format!(
            "  {:<w_title$}  {:<w_outcome$}  {time:>8}  {}\n",
            s.title,
            s.outcome.label(),
            s.result
        ));
    }
    let verdict = if report.verdict.passed {
        "passed: every step met its threshold".to_string()
    } else {
        format!("NOT passed: {}", report.verdict.reasons.join("; "))
    };
    let text = format!(
        "rehearse {}: {verdict}\n{}  projected maintenance window in production: {}\n  report: {}\n          {}\n          {}\n",
        report.dump.path,
        rows,
        report::duration(report.projection.window_seconds),
        files.html.display(),
        files.markdown.display(),
        files.json.display(),
    );
    let mut json = serde_json::to_value(report).unwrap_or_default();
    if let Some(map) = json.as_object_mut() {
        map.insert(
            "files".into(),
            serde_json::json!({
                "json": files.json.display().to_string(),
                "markdown": files.markdown.display().to_string(),
                "html": files.html.display().to_string(),
            }),
        );
    }
    Output { text, json }
}
