//! One owner for a run's life: the lease, the run record, checkpoints and
//! the outcome. Every command that changes the store or reports on it
//! (migrate, validate, rollback, restore, the phase switches) starts a
//! [`Run`], so each gets the lock, the audit trail and the "what to do now"
//! message the same way instead of repeating the steps.

pub mod record;

use crate::config::{own, Config};
use crate::engine::lock::{self, Claim, Lease};
use crate::error::{CommandError, CommandResult};
use crate::store::Store;
use bson::Document;
use chrono::{DateTime, Utc};
use record::{new_run_id, Checkpoint, RunRecord, Tally};

/// What a run is, before it starts.
#[derive(Debug, Clone, Default)]
pub struct RunSpec {
    /// The command as an operator would type it, e.g. `phase2 migrate all`.
    pub command: String,
    /// The scope a resume must match (`all`, `questionnaires`, …).
    pub scope: String,
    /// `i/N` when the run takes one partition.
    pub partition: Option<String>,
    /// The lock to hold for the whole run (`None`: a read-only or
    /// instantaneous command that needs none).
    pub lock: Option<String>,
    /// Take the lock even from a live holder (`--break-lock`).
    pub break_lock: bool,
    /// The reason given with `--force`, recorded with the run.
    pub force_reason: Option<String>,
}

impl RunSpec {
    /// A run of `command` over everything, holding the phase 2 lock.
    pub fn locked(command: impl Into<String>, scope: impl Into<String>) -> RunSpec {
        RunSpec {
            command: command.into(),
            scope: scope.into(),
            lock: Some(PHASE2_LOCK.into()),
            ..RunSpec::default()
        }
    }
}

/// The lock every command that rewrites drawers or legacy documents holds.
pub const PHASE2_LOCK: &str = "phase2";

/// A run in progress: it holds its lease (if any) and its record.
pub struct Run<'a> {
    store: &'a dyn Store,
    config: &'a Config,
    record: RunRecord,
    lease: Option<Lease>,
    started: DateTime<Utc>,
}

impl<'a> Run<'a> {
    /// Takes the lock (exit 4 naming the holder when it is held), then
    /// records the run as running.
    pub fn start(
        store: &'a dyn Store,
        config: &'a Config,
        spec: RunSpec,
    ) -> CommandResult<Run<'a>> {
        let now = Utc::now();
        let run_id = new_run_id(now);
        let lease = match &spec.lock {
            Some(name) => Some(lock::acquire(
                store,
                &config.drawer(own::LOCK),
                &Claim::for_this_process(name, &run_id, spec.break_lock),
                now,
            )?),
            None => None,
        };
        let mut record = RunRecord::start(
            &run_id,
            &spec.command,
            &spec.scope,
            spec.partition.clone(),
            store,
            now,
        );
        record.force_reason = spec.force_reason.clone();
        let run = Run {
            store,
            config,
            record,
            lease,
            started: now,
        };
        if let Err(e) = run.record.save(store, config) {
            run.release();
            return Err(e);
        }
        tracing::info!(run_id = %run.record.run_id, command = %spec.command, "run started");
        Ok(run)
    }

    /// The configuration the run was started with.
    pub fn config(&self) -> &'a Config {
        self.config
    }

    /// This run's id, also stamped in what it writes.
    pub fn id(&self) -> &str {
        &self.record.run_id
    }

    /// When the run started.
    pub fn started(&self) -> DateTime<Utc> {
        self.started
    }

    /// The record, for a command to fill in (`resumed_from`, `summary` …)
    /// before its next save.
    pub fn record_mut(&mut self) -> &mut RunRecord {
        &mut self.record
    }

    /// The record as it stands.
    pub fn record(&self) -> &RunRecord {
        &self.record
    }

    /// Saves progress: the counts so far and where the run can resume, and
    /// renews the lease, which fails if another run broke it (the run then
    /// stops before writing more).
    pub fn checkpoint(&mut self, tally: &Tally, mark: &Checkpoint) -> CommandResult<()> {
        self.record.tally = tally.clone();
        self.record.checkpoint = Some(mark.clone());
        self.record.save(self.store, self.config)?;
        self.renew()
    }

    /// Renews the lease, if the run holds one.
    pub fn renew(&mut self) -> CommandResult<()> {
        match &mut self.lease {
            Some(lease) => lease.heartbeat(self.store, Utc::now()),
            None => Ok(()),
        }
    }

    /// Ends the run with `outcome` (`succeeded`, `passed` …) and an optional
    /// summary of its own results, and gives the lock back.
    pub fn finish(mut self, outcome: &str, summary: Option<Document>) -> CommandResult<RunRecord> {
        if summary.is_some() {
            self.record.summary = summary;
        }
        let saved = self
            .record
            .finish(self.store, self.config, outcome, None, Utc::now());
        let released = match self.lease.take() {
            Some(lease) => lease.release(self.store, Utc::now()),
            None => Ok(()),
        };
        saved.and(released)?;
        tracing::info!(run_id = %self.record.run_id, outcome, "run ended");
        Ok(self.record)
    }

    /// Ends the run as failed with the error, best effort (the store may be
    /// what failed), and gives the lock back. Returns the record as it was
    /// last checkpointed, for the message that says how to continue.
    pub fn fail(mut self, error: &CommandError) -> RunRecord {
        let outcome = match error {
            CommandError::Interrupted(_) => "interrupted",
            _ => "failed",
        };
        let _ = self.record.finish(
            self.store,
            self.config,
            outcome,
            Some(error.to_string()),
            Utc::now(),
        );
        if let Some(lease) = self.lease.take() {
            let _ = lease.release(self.store, Utc::now());
        }
        tracing::warn!(run_id = %self.record.run_id, outcome, "run ended");
        self.record
    }

    fn release(self) {
        if let Some(lease) = self.lease {
            let _ = lease.release(self.store, Utc::now());
        }
    }
}
