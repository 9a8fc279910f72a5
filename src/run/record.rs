//! Run records (`migration_runs`): what each run was asked, what it did, how
//! it ended, and where it stopped, so `--resume` needs no file of its own,
//! `status` can tell the phase from the store, and a failed run never leaves
//! a flag for a human to reset.

use crate::config::own;
use crate::config::Config;
use crate::error::CommandResult;
use crate::redact::{redact_text, redact_url};
use crate::store::{Ns, Scan, Store};
use bson::{doc, Bson, Document};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Every number a migrate run reports; they add up
/// (`drawers_created + drawers_updated + drawers_unchanged == users`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Tally {
    /// Users seen (with a usable `user_id`).
    pub users: u64,
    /// Drawers written for the first time.
    pub drawers_created: u64,
    /// Existing drawers changed.
    pub drawers_updated: u64,
    /// Users whose drawer needed no write (already migrated, or nothing in scope).
    pub drawers_unchanged: u64,
    /// Snapshots added to drawers.
    pub snapshots: u64,
    /// Follow-ups added to drawers.
    pub followups: u64,
    /// Legacy documents sent to quarantine.
    pub quarantined: u64,
    /// Warnings by kind.
    pub warnings: BTreeMap<String, u64>,
    /// Documents written (drawers, archived snapshots, plan stamps, quarantine records).
    pub writes: u64,
    /// Legacy documents read.
    pub documents: u64,
    /// Drawers that changed under us (dual-write) and were rebuilt.
    pub retried: u64,
}

impl Tally {
    /// Adds another tally (a batch's) to this one.
    pub fn absorb(&mut self, other: &Tally) {
        self.users += other.users;
        self.drawers_created += other.drawers_created;
        self.drawers_updated += other.drawers_updated;
        self.drawers_unchanged += other.drawers_unchanged;
        self.snapshots += other.snapshots;
        self.followups += other.followups;
        self.quarantined += other.quarantined;
        self.writes += other.writes;
        self.documents += other.documents;
        self.retried += other.retried;
        for (k, v) in &other.warnings {
            *self.warnings.entry(k.clone()).or_default() += v;
        }
    }
}

/// Where a run stopped: the last user whose batch was fully written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The last finished user id.
    pub last_user_id: String,
    /// Batches finished so far.
    pub batches: u64,
}

/// One run of `phase2 migrate`, as stored in `migration_runs`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunRecord {
    /// The run id, also stamped in every drawer the run changed.
    #[serde(rename = "_id")]
    pub run_id: String,
    /// The command, e.g. `phase2 migrate all`.
    pub command: String,
    /// The scope (`all`, `questionnaires`, …) and partition, which a resume must match.
    pub scope: String,
    /// `i/N` when partitioned.
    pub partition: Option<String>,
    /// The command line, with secrets redacted.
    pub args: Vec<String>,
    /// The OS user who ran it (`alice`, or `root (sudo by alice)`), so the
    /// audit trail says who, next to what.
    #[serde(default)]
    pub user: String,
    /// The host it ran on.
    #[serde(default)]
    pub host: String,
    /// The store, redacted.
    pub store: String,
    /// When it started (RFC 3339).
    pub started_at: String,
    /// When it ended, if it did.
    pub ended_at: Option<String>,
    /// `running`, `succeeded` or `failed`.
    pub outcome: String,
    /// Why it failed, redacted.
    pub error: Option<String>,
    /// The reason given with `--force`.
    pub force_reason: Option<String>,
    /// The live leases `--break-lock` broke to start this run, each with
    /// its holder, so the audit trail says whose work was cut short.
    #[serde(default)]
    pub broken_locks: Vec<String>,
    /// The run this one resumed.
    pub resumed_from: Option<String>,
    /// Where it stopped.
    pub checkpoint: Option<Checkpoint>,
    /// What it did so far.
    pub tally: Tally,
    /// A command's own result summary (validation rates …).
    #[serde(default)]
    pub summary: Option<Document>,
}

impl RunRecord {
    /// A record for the unit tests of what reads the run history: `run-<t>`,
    /// of `command` with `outcome`, started at second `t` of 2026.
    #[cfg(test)]
    pub(crate) fn sample(
        command: &str,
        partition: Option<&str>,
        outcome: &str,
        t: u32,
    ) -> RunRecord {
        let mut r = RunRecord::start(
            &format!("run-{t}"),
            command,
            "all",
            partition.map(str::to_string),
            &crate::store::sqlite::SqliteStore::open(":memory:").expect("an in-memory store"),
            Utc::now(),
        );
        r.outcome = outcome.into();
        r.started_at = format!("2026-01-01T00:00:{t:02}Z");
        r
    }

    /// A new record for a run that is starting.
    pub fn start(
        run_id: &str,
        command: &str,
        scope: &str,
        partition: Option<String>,
        store: &dyn Store,
        now: DateTime<Utc>,
    ) -> RunRecord {
        let record = RunRecord {
            run_id: run_id.to_string(),
            command: command.to_string(),
            scope: scope.to_string(),
            partition,
            args: redacted_args(std::env::args()),
            user: os_user(),
            host: host_name(),
            store: redact_url(&store.describe()),
            started_at: stamp(now),
            ended_at: None,
            outcome: "running".into(),
            error: None,
            force_reason: None,
            broken_locks: Vec::new(),
            resumed_from: None,
            checkpoint: None,
            tally: Tally::default(),
            summary: None,
        };
        tracing::info!(
            run_id = %record.run_id,
            command = %record.command,
            user = %record.user,
            host = %record.host,
            store = %record.store,
            args = %record.args.join(" "),
            "run recorded"
        );
        record
    }

    /// Writes the record (replacing its previous state).
    pub fn save(&self, store: &dyn Store, config: &Config) -> CommandResult<()> {
        let doc = bson::to_document(self)
            .map_err(|e| crate::store::StoreError::Encoding(e.to_string()))?;
        store.upsert_many(&runs_ns(config), &[doc])?;
        Ok(())
    }

    /// Marks the run finished with `outcome` and saves it.
    pub fn finish(
        &mut self,
        store: &dyn Store,
        config: &Config,
        outcome: &str,
        error: Option<String>,
        now: DateTime<Utc>,
    ) -> CommandResult<()> {
        self.outcome = outcome.to_string();
        self.error = error.map(|e| redact_text(&e));
        self.ended_at = Some(stamp(now));
        self.save(store, config)
    }
}

/// A run's time as people read it in tables and JSON: RFC 3339 UTC to the
/// millisecond (enough to order two runs of one second; no nanoseconds).
fn stamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The collection of run records.
pub fn runs_ns(config: &Config) -> Ns {
    config.drawer(own::RUNS)
}

/// All run records, oldest first by start time (two runs in the same
/// second have ids that do not sort by time).
pub fn all_runs(store: &dyn Store, config: &Config) -> CommandResult<Vec<RunRecord>> {
    let mut runs = Vec::new();
    for doc in store.scan(&runs_ns(config), &Scan::by_id(500))? {
        if let Ok(run) = bson::from_document::<RunRecord>(doc?) {
            runs.push(run);
        }
    }
    runs.sort_by_key(|r| DateTime::parse_from_rfc3339(&r.started_at).ok());
    Ok(runs)
}

/// The newest unfinished, failed or interrupted run of the same scope and
/// partition other than `current` (the run asking, already recorded as
/// running): the one `--resume` continues. Never one from before a phase 2
/// rollback or restore: its checkpoint marks users whose drawers were undone.
pub fn resumable(
    store: &dyn Store,
    config: &Config,
    scope: &str,
    partition: &Option<String>,
    current: &str,
) -> CommandResult<Option<RunRecord>> {
    let runs = all_runs(store, config)?;
    let since = runs
        .iter()
        .rposition(|r| r.command.starts_with("rollback --phase 2"))
        .map_or(0, |at| at + 1);
    Ok(runs[since..]
        .iter()
        .cloned()
        .rfind(|r| {
            r.run_id != current
                && r.command.starts_with("phase2 migrate")
                && r.scope == scope
                && &r.partition == partition
        })
        .filter(|r| r.outcome != "succeeded"))
}

/// A run id that sorts by start time: `run-20261123T131500Z-3fa2c1`.
pub fn new_run_id(now: DateTime<Utc>) -> String {
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    format!("run-{}-{}", now.format("%Y%m%dT%H%M%SZ"), &suffix[..6])
}

/// A compact document for logs and JSON, without the argument list.
pub fn summary_doc(run: &RunRecord) -> Document {
    doc! { "run_id": &run.run_id, "outcome": &run.outcome, "started_at": &run.started_at,
    "ended_at": run.ended_at.clone().map(Bson::from).unwrap_or(Bson::Null),
    "user": &run.user, "host": &run.host }
}

/// The command line as recorded: every argument redacted (a `--store` URL
/// carries passwords and keys).
pub fn redacted_args(args: impl IntoIterator<Item = String>) -> Vec<String> {
    args.into_iter().map(|a| redact_text(&a)).collect()
}

/// The OS user running this process; under `sudo`, also the user who ran
/// `sudo`, since `root` alone answers nothing in an audit.
pub fn os_user() -> String {
    let user = whoami::username().unwrap_or_else(|_| "unknown".into());
    match std::env::var("SUDO_USER") {
        Ok(by) if !by.is_empty() && by != user => format!("{user} (sudo by {by})"),
        _ => user,
    }
}

/// The name of the host running this process.
pub fn host_name() -> String {
    whoami::hostname().unwrap_or_else(|_| "unknown".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_arguments_carry_no_secret() {
        let args = redacted_args(
            [
                "edn-migrate",
                "--store",
                "mongodb://u:pw-SECRET@h/?tlsCertificateKeyFilePassword=kp-SECRET&authMechanismProperties=AWS_SESSION_TOKEN:tok-SECRET&proxyPassword=px-SECRET",
                "phase2",
                "migrate",
            ]
            .map(String::from),
        );
        let joined = args.join(" ");
        assert!(!joined.contains("SECRET"), "{joined}");
        assert_eq!(args.len(), 5);
        assert_eq!(args[3], "phase2");
    }

    #[test]
    fn a_run_from_before_a_rollback_is_not_resumed() {
        let store = crate::store::sqlite::SqliteStore::open(":memory:").unwrap();
        let config = Config::default();
        let at = |s: i64| DateTime::from_timestamp(1_700_000_000 + s, 0).unwrap();
        let record = |id: &str, command: &str, partition: Option<&str>, outcome: &str, t: i64| {
            let mut r = RunRecord::start(
                id,
                command,
                "all",
                partition.map(str::to_string),
                &store,
                at(t),
            );
            r.outcome = outcome.into();
            r.save(&store, &config).unwrap();
        };
        record("run-a", "phase2 migrate all", Some("0/2"), "failed", 1);
        record("run-b", "phase2 migrate all", Some("1/2"), "interrupted", 2);
        let part = |p: &str| Some(p.to_string());
        let found = resumable(&store, &config, "all", &part("0/2"), "run-now").unwrap();
        assert_eq!(
            found.map(|r| r.run_id).as_deref(),
            Some("run-a"),
            "its own partition's run"
        );
        record("run-c", "rollback --phase 2", None, "succeeded", 3);
        assert!(resumable(&store, &config, "all", &part("0/2"), "run-now")
            .unwrap()
            .is_none());
    }

    #[test]
    fn the_user_and_host_are_named() {
        let user = os_user();
        assert!(!user.is_empty() && user != "unknown", "{user}");
        let host = host_name();
        assert!(!host.is_empty() && host != "unknown", "{host}");
    }
}
