//! Whether the validations since the migration cover every user: one
//! validation of the whole, or validations of every partition of one
//! partitioning (`phase2 validate --partition I/N`), each newer than the
//! last migration run that touched its partition.
//!
//! A partition's users are touched by a run of that partition, by a whole
//! run, and by a run of a partitioning with another N (whose partitions
//! overlap it); a worker that validates its partition as soon as it is done
//! migrating keeps its validation while the others still migrate theirs.

use super::facts::{parse_time, run_time};
use crate::phase2::partitions::parse;
use crate::run::record::RunRecord;
use chrono::{DateTime, Utc};

/// What the validations say about the migrated data.
#[derive(Debug, Clone, PartialEq)]
pub enum Cover {
    /// Every user is covered by a passed validation: the runs that show it.
    Passed(Vec<String>),
    /// The newest validation covering some partition failed.
    Failed(String),
    /// Nothing, or not every partition, was validated after its migration:
    /// the partitions missing (`i/N`), empty when no validation at all.
    Missing(Vec<String>),
}

/// Does run `r` (a migration) touch partition `i` of `n`?
fn touches(r: &RunRecord, i: u32, n: u32) -> bool {
    match r.partition.as_deref().and_then(parse) {
        Some((j, m)) => m != n || j == i,
        None => true,
    }
}

/// Does validation `v` cover partition `i` of `n`?
fn covers(v: &RunRecord, i: u32, n: u32) -> bool {
    match v.partition.as_deref().and_then(parse) {
        Some((j, m)) => m == n && j == i,
        None => true,
    }
}

/// Could migration run `r` have changed the store? A run that ended having
/// written nothing (the idempotent second run) leaves a validation standing.
fn changed_store(r: &RunRecord) -> bool {
    r.outcome == "running" || r.tally.writes > 0
}

/// The cover of `runs` (oldest first, from the last rollback on): the
/// migrations in them that wrote and the finished validations.
pub fn cover(runs: &[RunRecord]) -> Cover {
    let migrations: Vec<&RunRecord> = runs
        .iter()
        .filter(|r| r.command.starts_with("phase2 migrate") && changed_store(r))
        .collect();
    let validations: Vec<&RunRecord> = runs
        .iter()
        .filter(|r| r.command.starts_with("phase2 validate") && r.outcome != "running")
        .collect();
    let mut ns: Vec<u32> = vec![1];
    ns.extend(
        validations
            .iter()
            .filter_map(|v| v.partition.as_deref().and_then(parse).map(|p| p.1)),
    );
    ns.sort_unstable();
    ns.dedup();
    let mut best: Option<Cover> = None;
    for n in ns {
        let c = cover_of(n, &migrations, &validations);
        if matches!(c, Cover::Passed(_)) {
            return c;
        }
        best = match (best, c) {
            (Some(Cover::Failed(f)), _) | (_, Cover::Failed(f)) => Some(Cover::Failed(f)),
            (Some(Cover::Missing(a)), Cover::Missing(b)) if !a.is_empty() && a.len() <= b.len() => {
                Some(Cover::Missing(a))
            }
            (_, c) => Some(c),
        };
    }
    best.unwrap_or(Cover::Missing(Vec::new()))
}

/// The cover by partitions of `n` (1: the whole).
fn cover_of(n: u32, migrations: &[&RunRecord], validations: &[&RunRecord]) -> Cover {
    let mut passed = Vec::new();
    let mut missing = Vec::new();
    for i in 0..n {
        let since: Option<DateTime<Utc>> = migrations
            .iter()
            .filter(|r| touches(r, i, n))
            .filter_map(|r| run_time(r))
            .max();
        let newest = validations
            .iter()
            .rev()
            .find(|v| covers(v, i, n) && parse_time(&v.started_at) >= since);
        match newest {
            Some(v) if v.outcome == "passed" => {
                if !passed.contains(&v.run_id) {
                    passed.push(v.run_id.clone());
                }
            }
            Some(v) => {
                return Cover::Failed(format!(
                    "validation {} ({}) {}",
                    v.run_id,
                    v.partition
                        .as_deref()
                        .map_or("whole".into(), |p| format!("partition {p}")),
                    v.outcome
                ))
            }
            None => missing.push(format!("{i}/{n}")),
        }
    }
    if missing.is_empty() {
        Cover::Passed(passed)
    } else if n == 1 {
        Cover::Missing(Vec::new())
    } else {
        Cover::Missing(missing)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(command: &str, partition: Option<&str>, outcome: &str, t: u32) -> RunRecord {
        let mut r = RunRecord::sample(command, partition, outcome, t);
        r.tally.writes = 1;
        r.ended_at = Some(format!("2026-01-01T00:00:{:02}Z", t + 1));
        r
    }

    #[test]
    fn the_union_of_partition_validations_covers_the_whole() {
        let mut runs = vec![
            run("phase2 migrate all", Some("0/2"), "succeeded", 1),
            run("phase2 validate", Some("0/2"), "passed", 3),
            run("phase2 migrate all", Some("1/2"), "succeeded", 4),
        ];
        assert_eq!(cover(&runs), Cover::Missing(vec!["1/2".into()]));
        runs.push(run("phase2 validate", Some("1/2"), "passed", 6));
        assert_eq!(
            cover(&runs),
            Cover::Passed(vec!["run-3".into(), "run-6".into()]),
            "partition 0's validation holds: partition 1's migration did not touch it"
        );
        runs.push(run("phase2 migrate all", Some("0/3"), "succeeded", 8));
        assert_eq!(
            cover(&runs),
            Cover::Missing(vec!["0/2".into(), "1/2".into()]),
            "a run of another N overlaps both"
        );
        runs.push(run("phase2 validate", None, "passed", 10));
        assert_eq!(cover(&runs), Cover::Passed(vec!["run-10".into()]));
    }

    #[test]
    fn a_run_that_wrote_nothing_keeps_the_validation() {
        let mut runs = vec![
            run("phase2 migrate all", None, "succeeded", 1),
            run("phase2 validate", None, "passed", 3),
            run("phase2 migrate all", None, "succeeded", 5),
        ];
        runs[2].tally.writes = 0;
        assert_eq!(cover(&runs), Cover::Passed(vec!["run-3".into()]));
        runs[2].outcome = "running".into();
        assert_eq!(
            cover(&runs),
            Cover::Missing(Vec::new()),
            "it may be writing"
        );
        runs[2].outcome = "succeeded".into();
        runs[2].tally.writes = 2;
        assert_eq!(cover(&runs), Cover::Missing(Vec::new()));
    }

    #[test]
    fn a_failed_partition_validation_is_named() {
        let runs = vec![
            run("phase2 migrate all", None, "succeeded", 1),
            run("phase2 validate", Some("0/2"), "passed", 3),
            run("phase2 validate", Some("1/2"), "failed", 5),
        ];
        assert!(
            matches!(cover(&runs), Cover::Failed(f) if f.contains("run-5") && f.contains("1/2"))
        );
        assert_eq!(cover(&runs[..1]), Cover::Missing(Vec::new()));
    }
}
