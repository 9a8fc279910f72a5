//! One owner for a run's life: the lease, the run record, checkpoints,
//! signals and the outcome. Every command that changes the store or reports
//! on it (migrate, validate, rollback, restore, the phase switches) starts a
//! [`Run`], so each gets the lock, the audit trail, a clean stop on Ctrl-C
//! and the "what to do now" message the same way instead of repeating the
//! steps.

pub mod record;
mod signals;

use crate::config::{own, Config};
use crate::engine::leases;
use crate::engine::lock::{self, Claim, Lease};
use crate::error::{CommandError, CommandResult};
use crate::store::Store;
use bson::Document;
use chrono::{DateTime, Utc};
use record::{new_run_id, Checkpoint, RunRecord, Tally};
use std::time::{Duration, Instant};

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
    /// How long the lease lives without a heartbeat (`None`: the default,
    /// five minutes).
    pub lease_ttl: Option<Duration>,
    /// A check made once the lease is held and before the run is recorded
    /// (the partitioning a migration must keep): a refusal records nothing,
    /// and no run can change what it read before it answers.
    pub admit: Option<Admit>,
}

/// A command's own check under its lease; see [`RunSpec::admit`].
pub type Admit = fn(&dyn Store, &Config, &RunSpec) -> CommandResult<()>;

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

    /// A run of `command` over one partition (`Some((i, n))`, holding that
    /// partition's phase 2 lease, `phase2:i/n`) or over everything (`None`,
    /// the whole `phase2` lease).
    pub fn partitioned(
        command: impl Into<String>,
        scope: impl Into<String>,
        partition: Option<(u32, u32)>,
    ) -> RunSpec {
        RunSpec {
            partition: partition.map(|(i, n)| format!("{i}/{n}")),
            lock: Some(leases::name(PHASE2_LOCK, partition)),
            ..RunSpec::locked(command, scope)
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
    signals: signals::Signals,
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
        let taken = match &spec.lock {
            Some(name) => Some(leases::take(
                store,
                &config.drawer(own::LOCK),
                &Claim {
                    ttl: spec
                        .lease_ttl
                        .and_then(|t| chrono::Duration::from_std(t).ok())
                        .unwrap_or(chrono::Duration::seconds(lock::DEFAULT_TTL_SECONDS)),
                    ..Claim::for_this_process(name, &run_id, spec.break_lock)
                },
                now,
            )?),
            None => None,
        };
        let (lease, broken) = match taken {
            Some(t) => (Some(t.lease), t.broken),
            None => (None, Vec::new()),
        };
        if let Some(admit) = spec.admit {
            if let Err(e) = admit(store, config, &spec) {
                if let Some(lease) = lease {
                    let _ = lease.release(store, Utc::now());
                }
                return Err(e);
            }
        }
        let mut record = RunRecord::start(
            &run_id,
            &spec.command,
            &spec.scope,
            spec.partition.clone(),
            store,
            now,
        );
        record.force_reason = spec.force_reason.clone();
        record.broken_locks = broken;
        let run = Run {
            store,
            config,
            record,
            lease,
            started: now,
            signals: signals::Signals::install(),
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

    /// Saves progress: the counts so far and where the run can resume. A
    /// SIGINT or SIGTERM received meanwhile stops the run here, at a
    /// consistent point (`Interrupted`, exit 130).
    pub fn checkpoint(&mut self, tally: &Tally, mark: &Checkpoint) -> CommandResult<()> {
        self.record.tally = tally.clone();
        self.record.checkpoint = Some(mark.clone());
        self.record.save(self.store, self.config)?;
        self.stop_if_asked()
    }

    /// Renews the lease before a batch writes (a run that lost it stops
    /// before writing), without looking at signals: a batch that has begun
    /// is finished.
    pub fn renew_before_writes(&mut self) -> CommandResult<()> {
        match &mut self.lease {
            Some(lease) => lease.heartbeat(self.store, Utc::now()),
            None => Ok(()),
        }
    }

    /// Renews the lease at a point where the command may stop: a SIGINT or
    /// SIGTERM received so far stops it here (`Interrupted`).
    pub fn renew(&mut self) -> CommandResult<()> {
        self.renew_before_writes()?;
        self.stop_if_asked()
    }

    /// Waits (for `--max-rate`) without letting the lease lapse, renewing
    /// it well before it expires, and stops early on a signal.
    pub fn pause(&mut self, wait: Duration) -> CommandResult<()> {
        let until = Instant::now() + wait;
        let slice = Duration::from_millis(200);
        let mut renewed = Instant::now();
        while let Some(left) = until.checked_duration_since(Instant::now()) {
            self.stop_if_asked()?;
            if renewed.elapsed() >= self.renew_every() {
                self.renew_before_writes()?;
                renewed = Instant::now();
            }
            std::thread::sleep(left.min(slice));
        }
        self.stop_if_asked()
    }

    /// A third of the lease: renewing this often survives two missed beats.
    fn renew_every(&self) -> Duration {
        let ttl = self
            .lease
            .as_ref()
            .map_or(Duration::from_secs(300), Lease::ttl);
        ttl / 3
    }

    /// `Interrupted` once SIGINT or SIGTERM has been received.
    pub fn stop_if_asked(&self) -> CommandResult<()> {
        if self.signals.received() {
            return Err(CommandError::Interrupted(format!(
                "stopped by a signal (SIGINT or SIGTERM) at a consistent point; run {} is recorded as interrupted and the lock is released",
                self.record.run_id
            )));
        }
        Ok(())
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

/// What a pass asks of whoever supervises it: the run (lease, record,
/// signals), or nobody (a dry run, a test).
pub trait Supervisor {
    /// Before a batch's writes.
    fn before_writes(&mut self) -> CommandResult<()>;
    /// After a batch was fully written.
    fn checkpoint(&mut self, tally: &Tally, mark: &Checkpoint) -> CommandResult<()>;
    /// Between batches, to keep to `--max-rate`.
    fn pause(&mut self, wait: Duration) -> CommandResult<()>;
}

impl Supervisor for Run<'_> {
    fn before_writes(&mut self) -> CommandResult<()> {
        self.renew_before_writes()
    }
    fn checkpoint(&mut self, tally: &Tally, mark: &Checkpoint) -> CommandResult<()> {
        Run::checkpoint(self, tally, mark)
    }
    fn pause(&mut self, wait: Duration) -> CommandResult<()> {
        Run::pause(self, wait)
    }
}

/// No lease, no record, no signals: for a dry run and for tests.
pub struct Unsupervised;

impl Supervisor for Unsupervised {
    fn before_writes(&mut self) -> CommandResult<()> {
        Ok(())
    }
    fn checkpoint(&mut self, _: &Tally, _: &Checkpoint) -> CommandResult<()> {
        Ok(())
    }
    fn pause(&mut self, wait: Duration) -> CommandResult<()> {
        std::thread::sleep(wait);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::EXIT_LOCK_HELD;
    use crate::store::sqlite::SqliteStore;

    #[test]
    fn a_long_pause_keeps_the_lease_alive() {
        let store = SqliteStore::open(":memory:").unwrap();
        let config = Config::default();
        let spec = RunSpec {
            lease_ttl: Some(Duration::from_millis(900)),
            ..RunSpec::locked("phase2 migrate all", "all")
        };
        let mut run = Run::start(&store, &config, spec.clone()).unwrap();
        run.pause(Duration::from_millis(2000)).unwrap();
        let err = Run::start(&store, &config, spec.clone())
            .err()
            .expect("the lease outlived a pause longer than itself");
        assert_eq!(err.exit_code(), EXIT_LOCK_HELD);
        run.finish("succeeded", None).unwrap();
        Run::start(&store, &config, spec)
            .expect("released at the end")
            .finish("succeeded", None)
            .unwrap();
    }
}
