//! What the gates and `status` look at, each read at most once and only
//! when a gate asks: an incident rollback that needs one fact (are the
//! legacy collections in place?) must not wait for a scan of every job.

use crate::backup::{self, Manifest};
use crate::config::{own, Config};
use crate::engine::lock;
use crate::error::CommandResult;
use crate::flags::EnvFile;
use crate::phase0::IndexPlan;
use crate::phase2::partitions::{self, Partitioning};
use crate::phase3::{self, JobStats};
use crate::phase4::{self, Deprecated};
use crate::run::record::{all_runs, RunRecord};
use crate::run::PHASE2_LOCK;
use crate::store::Store;
use bson::Document;
use chrono::{DateTime, Duration, Utc};
use std::cell::OnceCell;
use std::path::PathBuf;

/// Where the facts live besides the store.
#[derive(Debug, Clone)]
pub struct Sources {
    /// The backend's `.env` with the feature flags.
    pub env_file: PathBuf,
    /// Where backups live.
    pub backup_dir: PathBuf,
}

/// The facts of one moment, read lazily and cached.
pub struct Facts<'a> {
    /// The store.
    pub store: &'a dyn Store,
    /// Names of databases and collections.
    pub config: &'a Config,
    /// The `.env` file and the backup folder.
    pub sources: Sources,
    /// The clock every age is measured against.
    pub now: DateTime<Utc>,
    env: OnceCell<Result<EnvFile, String>>,
    runs: OnceCell<Vec<RunRecord>>,
    backup: OnceCell<Result<Manifest, String>>,
    phase0: OnceCell<Vec<String>>,
    deprecated: OnceCell<Vec<Deprecated>>,
    jobs: OnceCell<JobStats>,
    lock: OnceCell<Option<Document>>,
    leases: OnceCell<Vec<Document>>,
}

impl<'a> Facts<'a> {
    /// Facts about `store` as of `now`; nothing is read yet.
    pub fn new(
        store: &'a dyn Store,
        config: &'a Config,
        sources: Sources,
        now: DateTime<Utc>,
    ) -> Facts<'a> {
        Facts {
            store,
            config,
            sources,
            now,
            env: OnceCell::new(),
            runs: OnceCell::new(),
            backup: OnceCell::new(),
            phase0: OnceCell::new(),
            deprecated: OnceCell::new(),
            jobs: OnceCell::new(),
            lock: OnceCell::new(),
            leases: OnceCell::new(),
        }
    }

    /// The `.env` file, or why it cannot be read (a missing file means the
    /// flags are unknown, which no gate takes as "off").
    pub fn env(&self) -> Result<&EnvFile, &str> {
        self.env
            .get_or_init(|| EnvFile::read(&self.sources.env_file).map_err(|e| e.to_string()))
            .as_ref()
            .map_err(String::as_str)
    }

    /// Whether a flag is on; `None` when the file cannot be read.
    pub fn flag(&self, key: &str) -> Option<bool> {
        self.env().ok().map(|f| f.flag(key))
    }

    /// Every run record, oldest first.
    pub fn runs(&self) -> CommandResult<&[RunRecord]> {
        if let Some(r) = self.runs.get() {
            return Ok(r);
        }
        let runs = all_runs(self.store, self.config)?;
        Ok(self.runs.get_or_init(|| runs))
    }

    /// The newest verified backup of this store and these databases, whole
    /// and not empty when the data is not, whatever its age; or why there is
    /// none. The one place the gates ask the backup module (`backup::gate`).
    pub fn backup(&self) -> Result<&Manifest, &str> {
        self.backup
            .get_or_init(|| {
                let any_age = Duration::days(365 * 100);
                backup::gate(
                    self.store,
                    self.config,
                    &self.sources.backup_dir,
                    self.now,
                    any_age,
                )
                .map_err(|e| e.to_string())
            })
            .as_ref()
            .map_err(String::as_str)
    }

    /// How old that backup is.
    pub fn backup_age(&self) -> Option<Duration> {
        self.backup()
            .ok()
            .and_then(|m| parse_time(&m.created_at))
            .map(|t| self.now - t)
    }

    /// What phase 0 still lacks: `client_drawers` or its indexes (empty when ready).
    pub fn phase0_missing(&self) -> CommandResult<&[String]> {
        if let Some(m) = self.phase0.get() {
            return Ok(m);
        }
        let config = self.config;
        let exists = self
            .store
            .list_collections(&config.drawer_db)?
            .contains(&config.drawers);
        let missing = if exists {
            let have: Vec<String> = self
                .store
                .list_indexes(&config.drawers_ns())?
                .into_iter()
                .map(|i| i.name)
                .collect();
            IndexPlan::builtin()?
                .drawers
                .into_iter()
                .filter(|w| !have.contains(&w.name))
                .map(|w| format!("index {}", w.name))
                .collect()
        } else {
            vec![format!("collection {}", config.drawers)]
        };
        Ok(self.phase0.get_or_init(|| missing))
    }

    /// Legacy collections renamed by `phase4 cleanup`.
    pub fn deprecated(&self) -> CommandResult<&[Deprecated]> {
        if let Some(d) = self.deprecated.get() {
            return Ok(d);
        }
        let found = phase4::deprecated(self.store, self.config)?;
        Ok(self.deprecated.get_or_init(|| found))
    }

    /// Generation jobs of the last 24 h by mode.
    pub fn jobs(&self) -> CommandResult<&JobStats> {
        if let Some(j) = self.jobs.get() {
            return Ok(j);
        }
        let stats = phase3::job_stats(self.store, self.config, self.now - Duration::hours(24))?;
        Ok(self.jobs.get_or_init(|| stats))
    }

    /// The phase 2 lease document, if one was ever taken.
    pub fn lock(&self) -> CommandResult<Option<&Document>> {
        if let Some(l) = self.lock.get() {
            return Ok(l.as_ref());
        }
        let doc = self
            .store
            .get_many(&self.config.drawer(own::LOCK), &[PHASE2_LOCK.into()])?
            .pop();
        Ok(self.lock.get_or_init(|| doc).as_ref())
    }

    /// Every lease document (whole and per partition, released ones too).
    pub fn leases(&self) -> CommandResult<&[Document]> {
        if let Some(l) = self.leases.get() {
            return Ok(l);
        }
        let found = lock::all_leases(self.store, &self.config.drawer(own::LOCK))?;
        Ok(self.leases.get_or_init(|| found))
    }

    /// The partitioning of the migration in effect, if its last work was
    /// partitioned (`--partition I/N`).
    pub fn partitioning(&self) -> CommandResult<Option<Partitioning>> {
        Ok(partitions::current(self.runs()?, self.leases()?, self.now))
    }

    /// Whether the phase 2 migration covered every user: every partition of
    /// the partitioning in effect is done, or (not partitioned) the last
    /// migration run succeeded. `None` when nothing was migrated since the
    /// last rollback.
    pub fn migration_done(&self) -> CommandResult<Option<bool>> {
        if let Some(p) = self.partitioning()? {
            return Ok(Some(p.done()));
        }
        Ok(self
            .last_phase2_change()?
            .filter(|c| c.command.starts_with("phase2 migrate"))
            .map(|c| c.outcome == "succeeded"))
    }

    /// The newest run whose command starts with `prefix` and whose outcome
    /// is one of `outcomes` (any outcome when empty).
    pub fn last_run(&self, prefix: &str, outcomes: &[&str]) -> CommandResult<Option<&RunRecord>> {
        Ok(self.runs()?.iter().rev().find(|r| {
            r.command.starts_with(prefix)
                && (outcomes.is_empty() || outcomes.contains(&r.outcome.as_str()))
        }))
    }

    /// The newest run that changed the drawers in bulk: a phase 2 migration
    /// (whatever its outcome: a failed one wrote part of its work) or a
    /// phase 2 rollback.
    pub fn last_phase2_change(&self) -> CommandResult<Option<&RunRecord>> {
        Ok(self.runs()?.iter().rev().find(|r| {
            r.command.starts_with("phase2 migrate") || r.command.starts_with("rollback --phase 2")
        }))
    }
}

/// An RFC 3339 time from a run record or manifest.
pub fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// When a run ended (or started, while it runs).
pub fn run_time(run: &RunRecord) -> Option<DateTime<Utc>> {
    run.ended_at
        .as_deref()
        .and_then(parse_time)
        .or_else(|| parse_time(&run.started_at))
}

/// A duration for people: `3 h 12 min`, `2 d 4 h`, `45 s`.
pub fn human(d: Duration) -> String {
    let s = d.num_seconds().max(0);
    match s {
        0..=119 => format!("{s} s"),
        120..=7199 => format!("{} min", s / 60),
        7200..=172_799 => format!("{} h {} min", s / 3600, (s % 3600) / 60),
        _ => format!("{} d {} h", s / 86_400, (s % 86_400) / 3600),
    }
}
