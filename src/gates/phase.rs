//! Where the migration stands, derived from the store and the flags every
//! time (never from a remembered "current phase"), so it is right after any
//! rollback, a hand-edited `.env`, or a run that died; and the one command
//! to run next.

use super::facts::{human, run_time, Facts};
use super::{
    backup_recent, dual_write_check_passed, evaluate, phase2_validated, Action, ROLLBACK_BELOW,
};
use crate::error::CommandResult;
use crate::flags::{READ, WRITE};
use serde::Serialize;

/// The phase in effect and what that means right now.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Phase {
    /// 0 to 4: the last phase the system entered.
    pub number: u8,
    /// One line: what is in effect and what is not.
    pub state: String,
}

/// The phase, from the most advanced fact down: legacy collections renamed
/// (4), reads from the drawers (3), drawers migrated (2), dual-write on (1),
/// otherwise 0 (prepared or not).
pub fn current(f: &Facts) -> CommandResult<Phase> {
    let write = f.flag(WRITE);
    let read = f.flag(READ);
    let deprecated = f.deprecated()?;
    if !deprecated.is_empty() {
        let names: Vec<&str> = deprecated.iter().map(|d| d.name.as_str()).collect();
        return Ok(Phase {
            number: 4,
            state: format!("legacy collections deprecated ({})", names.join(", ")),
        });
    }
    if read == Some(true) {
        let since = f
            .last_run("phase3 switch", &["succeeded"])?
            .and_then(run_time)
            .map(|t| format!(" since {} ago", human(f.now - t)))
            .unwrap_or_default();
        return Ok(Phase {
            number: 3,
            state: format!("plan generation reads the drawers{since}"),
        });
    }
    let dual_write = match write {
        Some(true) => "dual-write on",
        Some(false) => "dual-write OFF",
        None => "flags unknown (.env unreadable)",
    };
    if let Some(change) = f.last_phase2_change()? {
        if change.command.starts_with("phase2 migrate") {
            let partitioning = f.partitioning()?;
            let state = if let Some(p) = partitioning.filter(|p| !p.done()) {
                format!(
                    "migration split in {} partitions, {} done, not done: {}; {dual_write}",
                    p.n,
                    p.done_count(),
                    p.unfinished().join(", ")
                )
            } else if f.migration_done()? == Some(true) {
                let validated = phase2_validated(f)?.ok;
                format!(
                    "migrated ({}, run {}), {}; {dual_write}",
                    change.scope,
                    change.run_id,
                    if validated {
                        "validated"
                    } else {
                        "not validated since"
                    }
                )
            } else {
                format!(
                    "migration {} part-way (run {}); {dual_write}",
                    change.outcome, change.run_id
                )
            };
            return Ok(Phase { number: 2, state });
        }
    }
    if write == Some(true) {
        return Ok(Phase {
            number: 1,
            state: "dual-write on; historical data not migrated".into(),
        });
    }
    let ready = f.phase0_missing()?.is_empty();
    Ok(Phase {
        number: 0,
        state: if ready {
            format!("prepared; {dual_write}")
        } else {
            "not prepared".into()
        },
    })
}

/// The one command to run next, as an operator would type it.
pub fn next(f: &Facts, phase: &Phase) -> CommandResult<String> {
    let env = env_arg(f);
    if phase.number == 4 {
        let expired = f
            .deprecated()?
            .iter()
            .any(|d| d.expired(f.now, crate::phase4::RETENTION_DAYS));
        return Ok(if expired {
            "edn-migrate phase4 cleanup --drop-expired".into()
        } else {
            "nothing: the migration is complete (after 30 days: `edn-migrate phase4 cleanup --drop-expired`)".into()
        });
    }
    if phase.number == 3 {
        if let Some(rate) = f.jobs()?.to_be.rate() {
            if rate < ROLLBACK_BELOW {
                return Ok(format!("edn-migrate rollback --phase 3 --yes{env}"));
            }
        }
        let cleanup = evaluate(Action::Phase4Cleanup, f)?;
        return Ok(if cleanup.iter().all(|g| g.ok) {
            format!("edn-migrate phase4 cleanup{env}")
        } else {
            format!("edn-migrate phase3 status{env}   (monitor: phase 4 waits for 48 h of healthy TO BE jobs)")
        });
    }
    if !f.phase0_missing()?.is_empty() {
        return Ok("edn-migrate phase0 prepare".into());
    }
    if f.flag(WRITE) != Some(true) {
        return Ok(format!("edn-migrate phase1 enable{env}"));
    }
    if phase.number == 2 {
        if let Some(p) = f.partitioning()?.filter(|p| !p.done()) {
            let todo = p.commands();
            return Ok(if todo.is_empty() {
                format!(
                    "wait for the running partitions ({}) to finish (`edn-migrate status`)",
                    p.unfinished().join(", ")
                )
            } else {
                todo.join(", and ")
            });
        }
        let change = f.last_phase2_change()?;
        if let Some(c) = change.filter(|c| c.outcome != "succeeded") {
            return Ok(format!("edn-migrate {} --resume", c.command));
        }
        if !phase2_validated(f)?.ok {
            return Ok("edn-migrate phase2 validate".into());
        }
        if !dual_write_check_passed(f)?.ok {
            return Ok("edn-migrate phase1 dual-write-check".into());
        }
        if !backup_recent(f)?.ok {
            return Ok("edn-migrate phase2 backup".into());
        }
        return Ok(format!("edn-migrate phase3 switch{env}"));
    }
    if !dual_write_check_passed(f)?.ok {
        return Ok("edn-migrate phase1 dual-write-check".into());
    }
    if !backup_recent(f)?.ok {
        return Ok("edn-migrate phase2 backup".into());
    }
    Ok("edn-migrate phase2 migrate all --dry-run, then edn-migrate phase2 migrate all".into())
}

/// ` --env-file PATH` when the file is not the default one.
fn env_arg(f: &Facts) -> String {
    let path = f.sources.env_file.display().to_string();
    if path == ".env" || path == "./.env" {
        String::new()
    } else {
        format!(" --env-file {path}")
    }
}
