//! Every gate of the plan as `{name, ok, why}`, computed from the store, the
//! flags and the backups, for the commands that are gated and for `status`.
//!
//! A gate is a plain function of [`Facts`]; a command names the gates it
//! needs ([`Action::checks`]). Adding a condition (per-partition state, say)
//! is one more function and one more entry in a list. A failed gate stops
//! the command with exit 3 and says what to run; `--force --reason "…"` goes
//! ahead anyway and the reason is recorded in the run.

pub mod coverage;
pub mod facts;
pub mod phase;

use crate::error::{CommandError, CommandResult};
use crate::flags::{READ, WRITE};
use crate::phase2::BACKUP_MAX_AGE_HOURS;
use chrono::Duration;
use coverage::Cover;
use facts::{human, run_time};
pub use facts::{Facts, Sources};
use serde::Serialize;

/// How long the switch must hold before phase 4 (plan section 7.3: 48 h of monitoring).
pub const SWITCH_HOLD_HOURS: i64 = 48;
/// The TO BE success rate phase 3 must keep (plan section 7, criteria).
pub const MIN_TO_BE_SUCCESS: f64 = 0.95;
/// Below this TO BE success rate the plan says to roll back (section 7, "¿Cuándo hacer rollback?").
pub const ROLLBACK_BELOW: f64 = 0.90;

/// One condition, met or not, and why, in words that name the fix.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Gate {
    /// Stable name, e.g. `backup_recent`.
    pub name: &'static str,
    /// Whether it is met.
    pub ok: bool,
    /// Why (and, when not met, what to run).
    pub why: String,
}

impl Gate {
    fn new(name: &'static str, ok: bool, why: impl Into<String>) -> Gate {
        Gate {
            name,
            ok,
            why: why.into(),
        }
    }
}

/// A gate: a function of the facts.
pub type Check = fn(&Facts) -> CommandResult<Gate>;

/// A command that is gated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// `phase1 enable`.
    Phase1Enable,
    /// `phase3 switch`.
    Phase3Switch,
    /// `phase4 cleanup`.
    Phase4Cleanup,
    /// `rollback --phase N`.
    Rollback(u8),
}

impl Action {
    /// Every gated command, in plan order (what `status` shows).
    pub const ALL: [Action; 7] = [
        Action::Phase1Enable,
        Action::Phase3Switch,
        Action::Phase4Cleanup,
        Action::Rollback(1),
        Action::Rollback(2),
        Action::Rollback(3),
        Action::Rollback(4),
    ];

    /// The command as an operator types it.
    pub fn command(self) -> String {
        match self {
            Action::Phase1Enable => "phase1 enable".into(),
            Action::Phase3Switch => "phase3 switch".into(),
            Action::Phase4Cleanup => "phase4 cleanup".into(),
            Action::Rollback(n) => format!("rollback --phase {n}"),
        }
    }

    /// The gates this command needs, in the order they are reported.
    pub fn checks(self) -> &'static [(&'static str, Check)] {
        match self {
            Action::Phase1Enable => &[("phase0_ready", phase0_ready)],
            Action::Phase3Switch => &[
                ("phase2_validated", phase2_validated),
                ("backup_recent", backup_recent),
                ("dual_write_check_passed", dual_write_check_passed),
                ("dual_write_on", dual_write_on),
            ],
            Action::Phase4Cleanup => &[
                ("switch_held", switch_held),
                ("phase3_healthy", phase3_healthy),
            ],
            Action::Rollback(1) | Action::Rollback(2) => {
                &[("reads_from_legacy", reads_from_legacy)]
            }
            Action::Rollback(3) => &[("legacy_in_place", legacy_in_place)],
            Action::Rollback(_) => &[],
        }
    }
}

/// The gates of one command, evaluated.
pub fn evaluate(action: Action, facts: &Facts) -> CommandResult<Vec<Gate>> {
    action
        .checks()
        .iter()
        .map(|(_, check)| check(facts))
        .collect()
}

/// Evaluates a command's gates; refuses (exit 3, every unmet gate and its
/// fix) unless `--force --reason` was given. Returns the gates for the run
/// record either way.
pub fn enforce(
    action: Action,
    facts: &Facts,
    force_reason: Option<&str>,
) -> CommandResult<Vec<Gate>> {
    let gates = evaluate(action, facts)?;
    let failed: Vec<&Gate> = gates.iter().filter(|g| !g.ok).collect();
    if failed.is_empty() {
        return Ok(gates);
    }
    if let Some(reason) = force_reason {
        for g in &failed {
            tracing::warn!(gate = g.name, reason, "gate overridden with --force");
        }
        return Ok(gates);
    }
    let list: Vec<String> = failed
        .iter()
        .map(|g| format!("  - {}: {}", g.name, g.why))
        .collect();
    Err(CommandError::Gate(format!(
        "{} refused: {} gate(s) not met\n{}\nfix them, or pass `--force --reason \"…\"` (the reason is recorded in the run)",
        action.command(),
        failed.len(),
        list.join("\n")
    )))
}

/// Every gate of every command, once each, with the commands it guards:
/// what `status` reports.
pub fn all(facts: &Facts) -> CommandResult<Vec<(Gate, Vec<String>)>> {
    let mut out: Vec<(Gate, Vec<String>)> = Vec::new();
    for action in Action::ALL {
        for (name, check) in action.checks() {
            if let Some((_, guards)) = out.iter_mut().find(|(g, _)| g.name == *name) {
                guards.push(action.command());
            } else {
                out.push((check(facts)?, vec![action.command()]));
            }
        }
    }
    Ok(out)
}

/// Phase 0 done: `client_drawers` and its indexes exist.
pub fn phase0_ready(f: &Facts) -> CommandResult<Gate> {
    let missing = f.phase0_missing()?;
    Ok(if missing.is_empty() {
        Gate::new(
            "phase0_ready",
            true,
            format!("{} and its indexes exist", f.config.drawers),
        )
    } else {
        Gate::new(
            "phase0_ready",
            false,
            format!(
                "missing {}: run `edn-migrate phase0 prepare`",
                missing.join(", ")
            ),
        )
    })
}

/// Dual-write is on in the backend's `.env` (reads from drawers need it).
pub fn dual_write_on(f: &Facts) -> CommandResult<Gate> {
    Ok(match f.env() {
        Err(e) => Gate::new("dual_write_on", false, e.to_string()),
        Ok(file) if file.flag(WRITE) => Gate::new(
            "dual_write_on",
            true,
            format!("{WRITE}=true in {}", file.path().display()),
        ),
        Ok(file) => Gate::new(
            "dual_write_on",
            false,
            format!(
                "{WRITE} is not true in {}: run `edn-migrate phase1 enable`",
                file.path().display()
            ),
        ),
    })
}

/// The last `phase1 dual-write-check` passed.
pub fn dual_write_check_passed(f: &Facts) -> CommandResult<Gate> {
    let name = "dual_write_check_passed";
    let Some(run) = f.last_run("phase1 dual-write-check", &["passed", "failed"])? else {
        return Ok(Gate::new(
            name,
            false,
            "no dual-write check recorded: run `edn-migrate phase1 dual-write-check`",
        ));
    };
    let rate = run
        .summary
        .as_ref()
        .and_then(|s| s.get_f64("match_rate").ok())
        .map(|r| format!("{:.1} %", r * 100.0))
        .unwrap_or_else(|| "no rate".into());
    let age = run_time(run)
        .map(|t| human(f.now - t))
        .unwrap_or_else(|| "?".into());
    Ok(if run.outcome == "passed" {
        Gate::new(
            name,
            true,
            format!("run {} passed ({rate}) {age} ago", run.run_id),
        )
    } else {
        Gate::new(
            name,
            false,
            format!(
                "the last check (run {}, {age} ago) failed ({rate}): fix dual-write, then run `edn-migrate phase1 dual-write-check`",
                run.run_id
            ),
        )
    })
}

/// A verified backup of this store and these databases, whole, younger than 24 h.
pub fn backup_recent(f: &Facts) -> CommandResult<Gate> {
    let name = "backup_recent";
    let manifest = match f.backup() {
        Ok(m) => m,
        Err(why) => return Ok(Gate::new(name, false, why)),
    };
    Ok(match f.backup_age() {
        Some(age) if age <= Duration::hours(BACKUP_MAX_AGE_HOURS) => Gate::new(
            name,
            true,
            format!("backup {} verified, taken {} ago", manifest.id, human(age)),
        ),
        Some(age) => Gate::new(
            name,
            false,
            format!(
                "backup {} was taken {} ago (more than {BACKUP_MAX_AGE_HOURS} h): run `edn-migrate phase2 backup`",
                manifest.id,
                human(age)
            ),
        ),
        None => Gate::new(
            name,
            false,
            format!(
                "backup {} has an unreadable date: run `edn-migrate phase2 backup`",
                manifest.id
            ),
        ),
    })
}

/// Phase 2 migrated for every user (every partition of a partitioned
/// migration done), and validated after the last migration: by one
/// validation of the whole, or by validations of every partition.
pub fn phase2_validated(f: &Facts) -> CommandResult<Gate> {
    let name = "phase2_validated";
    let Some(change) = f.last_phase2_change()? else {
        return Ok(Gate::new(
            name,
            false,
            "not migrated: run `edn-migrate phase2 migrate all`, then `edn-migrate phase2 validate`",
        ));
    };
    if change.command.starts_with("rollback") {
        return Ok(Gate::new(
            name,
            false,
            format!(
                "phase 2 was rolled back (run {}): migrate again with `edn-migrate phase2 migrate all`, then validate",
                change.run_id
            ),
        ));
    }
    if let Some(p) = f.partitioning()?.filter(|p| !p.done()) {
        return Ok(Gate::new(
            name,
            false,
            format!(
                "the migration is split in {} partitions, not done: {}{}",
                p.n,
                p.unfinished().join(", "),
                match p.commands() {
                    todo if todo.is_empty() => " (running)".to_string(),
                    todo => format!(": run `{}`", todo.join("`, `")),
                }
            ),
        ));
    }
    if f.partitioning()?.is_none() && change.outcome != "succeeded" {
        return Ok(Gate::new(
            name,
            false,
            format!(
                "the last migration (run {}) {}: finish it with `edn-migrate {} --resume`",
                change.run_id, change.outcome, change.command
            ),
        ));
    }
    let runs = f.runs()?;
    let since_reset = runs
        .iter()
        .rposition(|r| r.command.starts_with("rollback --phase 2"))
        .map_or(0, |at| at + 1);
    Ok(match coverage::cover(&runs[since_reset..]) {
        Cover::Passed(by) => Gate::new(
            name,
            true,
            format!(
                "validation {} passed after the migration (last run {})",
                by.join(" + "),
                change.run_id
            ),
        ),
        Cover::Failed(which) => Gate::new(
            name,
            false,
            format!("{which} after the migration: see its report, fix, migrate and validate again"),
        ),
        Cover::Missing(parts) if parts.is_empty() => Gate::new(
            name,
            false,
            format!(
                "not validated since the last migration (run {}): run `edn-migrate phase2 validate`",
                change.run_id
            ),
        ),
        Cover::Missing(parts) => Gate::new(
            name,
            false,
            format!(
                "partitions {} are not validated since their migration: run `edn-migrate phase2 validate --partition I/N` for each, or `edn-migrate phase2 validate`",
                parts.join(", ")
            ),
        ),
    })
}

/// Reads come from the legacy collections (phase 3 is not in effect), so
/// dual-write or the migrated data can be undone without breaking reads.
pub fn reads_from_legacy(f: &Facts) -> CommandResult<Gate> {
    let name = "reads_from_legacy";
    Ok(match f.flag(READ) {
        None => Gate::new(
            name,
            false,
            format!(
                "the flags are unknown ({}): pass the backend's file with --env-file, or, once you have checked {READ} is off, --force --reason \"…\"",
                f.env().err().unwrap_or("the .env file is unreadable").lines().next().unwrap_or_default()
            ),
        ),
        Some(false) => Gate::new(name, true, format!("{READ} is not on")),
        Some(true) => Gate::new(
            name,
            false,
            format!("plan generation reads the drawers ({READ}=true): run `edn-migrate rollback --phase 3` first"),
        ),
    })
}

/// The legacy collections are where the backend reads them (phase 4 is not
/// in effect), so reads can go back to them.
pub fn legacy_in_place(f: &Facts) -> CommandResult<Gate> {
    let deprecated = f.deprecated()?;
    Ok(if deprecated.is_empty() {
        Gate::new(
            "legacy_in_place",
            true,
            "no legacy collection is deprecated",
        )
    } else {
        let names: Vec<&str> = deprecated.iter().map(|d| d.name.as_str()).collect();
        Gate::new(
            "legacy_in_place",
            false,
            format!(
                "legacy collections are deprecated ({}): run `edn-migrate rollback --phase 4` first",
                names.join(", ")
            ),
        )
    })
}

/// The switch has held 48 h: reads are on and the last recorded switch is
/// at least that old.
pub fn switch_held(f: &Facts) -> CommandResult<Gate> {
    let name = "switch_held";
    if f.flag(READ) != Some(true) {
        return Ok(Gate::new(
            name,
            false,
            format!("reads are not switched ({READ} is not true): run `edn-migrate phase3 switch`"),
        ));
    }
    let switch = f.last_run("phase3 switch", &["succeeded"])?;
    let Some(at) = switch.and_then(run_time) else {
        return Ok(Gate::new(
            name,
            false,
            format!("{READ} is on but no `phase3 switch` is recorded: the switch time is unknown"),
        ));
    };
    let held = f.now - at;
    let hold = Duration::hours(SWITCH_HOLD_HOURS);
    Ok(if held >= hold {
        Gate::new(name, true, format!("switched {} ago", human(held)))
    } else {
        Gate::new(
            name,
            false,
            format!(
                "switched {} ago; the plan monitors {SWITCH_HOLD_HOURS} h: wait until {} and watch `edn-migrate phase3 status`",
                human(held),
                (at + hold).format("%Y-%m-%d %H:%M UTC")
            ),
        )
    })
}

/// Plan generation from the drawers works: TO BE jobs of the last 24 h
/// succeed at 95 % or more (and there are some).
pub fn phase3_healthy(f: &Facts) -> CommandResult<Gate> {
    let name = "phase3_healthy";
    if f.flag(READ) != Some(true) {
        return Ok(Gate::new(
            name,
            false,
            format!("reads are not switched ({READ} is not true)"),
        ));
    }
    let stats = f.jobs()?;
    let to_be = &stats.to_be;
    Ok(match to_be.rate() {
        None => Gate::new(
            name,
            false,
            "no TO BE generation job in the last 24 h: nothing shows plan generation works from the drawers yet",
        ),
        Some(rate) if rate >= MIN_TO_BE_SUCCESS => Gate::new(
            name,
            true,
            format!(
                "TO BE jobs succeed at {:.1} % ({} of {}) in the last 24 h",
                rate * 100.0,
                to_be.completed,
                to_be.total
            ),
        ),
        Some(rate) => Gate::new(
            name,
            false,
            format!(
                "TO BE jobs succeed at {:.1} % ({} of {}) in the last 24 h, under {:.0} %{}",
                rate * 100.0,
                to_be.completed,
                to_be.total,
                MIN_TO_BE_SUCCESS * 100.0,
                if rate < ROLLBACK_BELOW {
                    ": rollback recommended (`edn-migrate rollback --phase 3 --yes`)"
                } else {
                    ""
                }
            ),
        ),
    })
}
