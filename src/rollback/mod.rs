//! `rollback --phase N`: undo one phase, in reverse order of the plan, the
//! same way from a terminal or an incident script (`--yes --json`: no
//! prompt, one JSON object, the exit code tells the outcome).
//!
//! - 1: `USE_CLIENT_DRAWER_WRITE=false` (refused while reads come from the
//!   drawers: they would go stale).
//! - 2: undo exactly what the migration runs wrote (`phase2.rs`), or restore
//!   a backup.
//! - 3: `USE_CLIENT_DRAWER_READ=false`: reads go back to the legacy
//!   collections (refused while those are deprecated).
//! - 4: rename the deprecated collections back, then
//!   `DISABLE_LEGACY_ENDPOINTS=false` (`phase4.rs`).
//!
//! Every rollback runs under the run supervisor and is recorded.

mod phase2;
mod phase4;

pub use phase2::{phase2, phase2_forced, Undone};

use crate::config::Config;
use crate::error::{CommandError, CommandResult};
use crate::flags::{READ, WRITE};
use crate::gates::{self, Action};
use crate::report::Output;
use crate::store::Store;
use crate::toggle::{self, flag_step, Consent, FlagOptions, FlagStep};

/// What `rollback` was asked.
#[derive(Debug, Clone)]
pub struct RollbackOptions {
    /// The phase to undo, 1 to 4.
    pub phase: u8,
    /// Phase 2 only: restore this backup instead of undoing surgically.
    pub from_backup: Option<String>,
    /// With `from_backup`: restore the legacy collections too, not only the
    /// drawer side.
    pub include_legacy: bool,
}

/// The top-level entry point for `rollback --phase N`.
pub fn rollback(
    store: &dyn Store,
    config: &Config,
    opts: &RollbackOptions,
    flags: &FlagOptions,
    consent: &Consent,
) -> CommandResult<Output> {
    if opts.from_backup.is_some() && opts.phase != 2 {
        return Err(CommandError::Input(
            "--from-backup restores the data of phase 2: use it with `rollback --phase 2`".into(),
        ));
    }
    let step = |action, key, question: String| FlagStep {
        action,
        values: vec![(key, "false")],
        question: Some(question),
    };
    match opts.phase {
        1 => flag_step(
            store,
            config,
            &step(
                Action::Rollback(1),
                WRITE,
                format!(
                    "turn dual-write off ({WRITE}=false in {})?",
                    flags.env_file.display()
                ),
            ),
            flags,
            consent,
        ),
        2 => {
            gates::enforce(
                Action::Rollback(2),
                &toggle::facts(store, config, flags, consent),
                consent.force_reason.as_deref(),
            )?;
            phase2_forced(
                store,
                config,
                opts.from_backup.as_deref(),
                opts.include_legacy,
                &consent.backup_dir,
                consent.yes,
                consent.force_reason.as_deref(),
            )
        }
        3 => flag_step(
            store,
            config,
            &step(
                Action::Rollback(3),
                READ,
                format!(
                    "send plan generation back to the legacy collections ({READ}=false in {})?",
                    flags.env_file.display()
                ),
            ),
            flags,
            consent,
        ),
        4 => phase4::rollback(store, config, flags, consent),
        n => Err(CommandError::Input(format!(
            "there is no phase {n} to roll back: use --phase 1, 2, 3 or 4"
        ))),
    }
}
