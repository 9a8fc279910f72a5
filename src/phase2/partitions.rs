//! The partitioning of a migration shared by N workers (`--partition I/N`),
//! derived every time from the run records and the leases, never kept as a
//! document of its own: the run records already say which partition ran,
//! how it ended and where it stopped, so there is nothing to keep in step.
//!
//! A partitioning starts with the first partitioned run after a rollback (or
//! after the previous partitioning finished) and is fixed until every one of
//! its partitions has succeeded: users are split by a hash of their id
//! modulo N, so a run with another N would cover users of several
//! unfinished partitions and no one could say what is done.

use crate::config::{own, Config};
use crate::engine::lock;
use crate::error::{CommandError, CommandResult};
use crate::run::record::{all_runs, Checkpoint, RunRecord};
use crate::run::RunSpec;
use crate::store::Store;
use bson::Document;
use chrono::{DateTime, Utc};

/// `(i, n)` from a run record's `i/n`.
pub fn parse(text: &str) -> Option<(u32, u32)> {
    let (i, n) = text.split_once('/')?;
    let (i, n) = (i.trim().parse().ok()?, n.trim().parse().ok()?);
    (i < n).then_some((i, n))
}

/// Where one partition stands.
#[derive(Debug, Clone, PartialEq)]
pub enum State {
    /// No run of it yet.
    NotStarted,
    /// A worker holds its lease and is migrating it.
    Running {
        /// The run.
        run_id: String,
        /// Host and process of the worker.
        holder: String,
        /// The last batch it finished, if any.
        checkpoint: Option<Checkpoint>,
        /// Users migrated so far.
        users: u64,
    },
    /// Its last run stopped (failed, interrupted, or died: recorded as
    /// running while no live lease backs it) and can be resumed.
    Interrupted {
        /// The run.
        run_id: String,
        /// `failed`, `interrupted`, or `died` for a run that left no outcome.
        outcome: String,
        /// Where `--resume` continues.
        checkpoint: Option<Checkpoint>,
    },
    /// Its last run succeeded.
    Done {
        /// The run.
        run_id: String,
    },
}

impl State {
    /// One word for tables and JSON.
    pub fn name(&self) -> &'static str {
        match self {
            State::NotStarted => "not started",
            State::Running { .. } => "running",
            State::Interrupted { .. } => "interrupted",
            State::Done { .. } => "done",
        }
    }
}

/// The partitioning in effect: which part, how many partitions, and each
/// partition's state.
#[derive(Debug, Clone, PartialEq)]
pub struct Partitioning {
    /// The part migrated (`all`, `plans` …).
    pub part: String,
    /// How many partitions.
    pub n: u32,
    /// When its first run started.
    pub started_at: String,
    /// Partition `i`'s state at index `i`.
    pub states: Vec<State>,
}

impl Partitioning {
    /// Every partition succeeded.
    pub fn done(&self) -> bool {
        self.states.iter().all(|s| matches!(s, State::Done { .. }))
    }

    /// The partitions not done, as `i/n (state)`.
    pub fn unfinished(&self) -> Vec<String> {
        self.states
            .iter()
            .enumerate()
            .filter(|(_, s)| !matches!(s, State::Done { .. }))
            .map(|(i, s)| format!("{i}/{} ({})", self.n, s.name()))
            .collect()
    }

    /// The command that finishes partition `i`, or `None` while a worker
    /// runs it.
    pub fn command(&self, i: usize) -> Option<String> {
        let base = format!(
            "edn-migrate phase2 migrate {} --partition {i}/{}",
            self.part, self.n
        );
        match self.states.get(i)? {
            State::NotStarted => Some(base),
            State::Interrupted { .. } => Some(format!("{base} --resume")),
            State::Running { .. } | State::Done { .. } => None,
        }
    }

    /// The commands that finish every unfinished partition not running now.
    pub fn commands(&self) -> Vec<String> {
        (0..self.states.len())
            .filter_map(|i| self.command(i))
            .collect()
    }

    /// How many partitions are done.
    pub fn done_count(&self) -> usize {
        self.states
            .iter()
            .filter(|s| matches!(s, State::Done { .. }))
            .count()
    }
}

/// Whether a run is a phase 2 migration (not a dry run: those leave no record).
fn is_migration(r: &RunRecord) -> bool {
    r.command.starts_with("phase2 migrate")
}

/// Whether a run undid or replaced the migrated data (surgical rollback or
/// restore), which ends any partitioning.
fn is_reset(r: &RunRecord) -> bool {
    r.command.starts_with("rollback --phase 2")
}

/// The partitioning in effect, from the run records (oldest first) and the
/// lease documents, as of `now`; `None` when the last phase 2 migration
/// work was not partitioned (or there was none).
pub fn current(
    runs: &[RunRecord],
    leases: &[Document],
    now: DateTime<Utc>,
) -> Option<Partitioning> {
    let mut start: Option<usize> = None;
    for (at, r) in runs.iter().enumerate() {
        if is_reset(r) {
            start = None;
            continue;
        }
        if !is_migration(r) {
            continue;
        }
        let same = |s: usize| {
            let first = &runs[s];
            first.scope == r.scope
                && first.partition.as_deref().and_then(parse).map(|p| p.1)
                    == r.partition.as_deref().and_then(parse).map(|p| p.1)
        };
        let finished = |s: usize| states_of(&runs[s..at], &runs[s], leases, now).done();
        match (r.partition.as_deref().and_then(parse), start) {
            (Some(_), Some(s)) if same(s) => {}
            (Some(_), _) => start = Some(at),
            (None, Some(s)) if finished(s) || r.outcome == "succeeded" => start = None,
            (None, _) => {}
        }
    }
    let s = start?;
    Some(states_of(&runs[s..], &runs[s], leases, now))
}

/// The partitioning that `first` opened, with the states `runs` give it.
fn states_of(
    runs: &[RunRecord],
    first: &RunRecord,
    leases: &[Document],
    now: DateTime<Utc>,
) -> Partitioning {
    let n = first
        .partition
        .as_deref()
        .and_then(parse)
        .map_or(1, |p| p.1);
    let states = (0..n)
        .map(|i| {
            let name = format!("{i}/{n}");
            runs.iter()
                .rfind(|r| {
                    is_migration(r)
                        && r.scope == first.scope
                        && r.partition.as_deref() == Some(&name)
                })
                .map_or(State::NotStarted, |r| state_of(r, leases, now))
        })
        .collect();
    Partitioning {
        part: first.scope.clone(),
        n,
        started_at: first.started_at.clone(),
        states,
    }
}

/// A partition's state from its newest run.
fn state_of(r: &RunRecord, leases: &[Document], now: DateTime<Utc>) -> State {
    match r.outcome.as_str() {
        "succeeded" => State::Done {
            run_id: r.run_id.clone(),
        },
        "running" => match leases
            .iter()
            .find(|l| l.get_str("run_id") == Ok(r.run_id.as_str()) && lock::is_live(l, now))
        {
            Some(lease) => State::Running {
                run_id: r.run_id.clone(),
                holder: lease.get_str("owner").unwrap_or("?").to_string(),
                checkpoint: r.checkpoint.clone(),
                users: r.tally.users,
            },
            None => State::Interrupted {
                run_id: r.run_id.clone(),
                outcome: "died".into(),
                checkpoint: r.checkpoint.clone(),
            },
        },
        other => State::Interrupted {
            run_id: r.run_id.clone(),
            outcome: other.to_string(),
            checkpoint: r.checkpoint.clone(),
        },
    }
}

/// The partitioning in effect in `store`, read now.
pub fn read(store: &dyn Store, config: &Config) -> CommandResult<Option<Partitioning>> {
    let runs = all_runs(store, config)?;
    let leases = lock::all_leases(store, &config.drawer(own::LOCK))?;
    Ok(current(&runs, &leases, Utc::now()))
}

/// The [`RunSpec::admit`] of `phase2 migrate`: while a partitioning is
/// unfinished, only runs of its part on its partitions may start (exit 3
/// naming the unfinished partitions and the two ways out).
pub fn admit(store: &dyn Store, config: &Config, spec: &RunSpec) -> CommandResult<()> {
    let Some(current) = read(store, config)? else {
        return Ok(());
    };
    if current.done() {
        return Ok(());
    }
    let mine = spec.partition.as_deref().and_then(parse);
    if spec.scope == current.part && mine.is_some_and(|(_, n)| n == current.n) {
        return Ok(());
    }
    let asked = match &spec.partition {
        Some(p) => format!("phase2 migrate {} --partition {p}", spec.scope),
        None => format!("phase2 migrate {}", spec.scope),
    };
    let todo = current.commands();
    Err(CommandError::Gate(format!(
        "`{asked}` refused: the migration is split in {n} partitions ({part}, started {started}) and these are not done: {list}\n\
         a run with another partitioning would split users across unfinished partitions: finish them{how} \
         (`edn-migrate status` shows each), or undo the migration with `edn-migrate rollback --phase 2` and start again",
        n = current.n,
        part = current.part,
        started = current.started_at,
        list = current.unfinished().join(", "),
        how = if todo.is_empty() {
            " (their workers are running)".to_string()
        } else {
            format!(": `{}`", todo.join("`, `"))
        },
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(command: &str, partition: Option<&str>, outcome: &str, t: u32) -> RunRecord {
        RunRecord::sample(command, partition, outcome, t)
    }

    #[test]
    fn a_partitioning_is_done_only_when_every_partition_is() {
        let now = Utc::now();
        let runs = vec![run("phase2 migrate all", Some("0/2"), "succeeded", 1)];
        let p = current(&runs, &[], now).unwrap();
        assert_eq!(p.n, 2);
        assert!(!p.done());
        assert_eq!(p.states[1], State::NotStarted);
        let mut more = runs.clone();
        more.push(run("phase2 migrate all", Some("1/2"), "running", 2));
        let p = current(&more, &[], now).unwrap();
        assert!(
            matches!(&p.states[1], State::Interrupted { outcome, .. } if outcome == "died"),
            "running without a live lease: {:?}",
            p.states[1]
        );
        more.push(run("phase2 migrate all", Some("1/2"), "succeeded", 3));
        assert!(current(&more, &[], now).unwrap().done());
    }

    #[test]
    fn a_rollback_or_a_whole_run_ends_it() {
        let now = Utc::now();
        let mut runs = vec![run("phase2 migrate all", Some("0/2"), "succeeded", 1)];
        runs.push(run("rollback --phase 2", None, "succeeded", 2));
        assert_eq!(current(&runs, &[], now), None);
        runs.push(run("phase2 migrate all", Some("0/3"), "succeeded", 3));
        assert_eq!(current(&runs, &[], now).unwrap().n, 3);
        for i in 1..3 {
            runs.push(run(
                "phase2 migrate all",
                Some(&format!("{i}/3")),
                "succeeded",
                3 + i,
            ));
        }
        runs.push(run("phase2 migrate all", None, "failed", 7));
        assert_eq!(
            current(&runs, &[], now),
            None,
            "a whole run after a finished one"
        );
    }
}
