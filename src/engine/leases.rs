//! Lease families: one lease for whole-store work (`phase2`) and one per
//! partition (`phase2:1/4`), so N workers on the N partitions of one
//! partitioning run at the same time while anything that touches every user
//! (a whole migration, a rollback, a restore) still runs alone.
//!
//! Two different documents cannot be taken in one atomic write, so the
//! families exclude each other by acquire-then-check: a run first takes its
//! own lease, then looks for live leases it conflicts with; if it finds one,
//! it gives its own back and stops (exit 4). Of two runs that race, each
//! writes before it reads, so at least one sees the other: both may back
//! off, both can never proceed.

use super::lock::{self, Claim, Lease};
use crate::error::{CommandError, CommandResult};
use crate::store::{Ns, Store};
use bson::Document;
use chrono::{DateTime, Utc};

/// The lease name of partition `i` of `n` in `family` (`phase2:1/4`), or the
/// family's whole-store lease.
pub fn name(family: &str, partition: Option<(u32, u32)>) -> String {
    match partition {
        Some((i, n)) => format!("{family}:{i}/{n}"),
        None => family.to_string(),
    }
}

/// Whether two different leases may not be held at once: the same family,
/// and not two partitions of the same partitioning (a whole lease covers
/// every partition; partitions of another N overlap this one's users).
pub fn conflicts(a: &str, b: &str) -> bool {
    let split = |name: &str| -> (String, Option<String>) {
        match name.split_once(':') {
            Some((family, part)) => (
                family.to_string(),
                Some(part.rsplit('/').next().unwrap_or_default().to_string()),
            ),
            None => (name.to_string(), None),
        }
    };
    let ((fa, na), (fb, nb)) = (split(a), split(b));
    a != b && fa == fb && !(na.is_some() && na == nb)
}

/// What taking a lease in a family gave: the lease, and the live leases it
/// broke on the way (with `--break-lock`), described for the operator.
pub struct Taken {
    /// The lease now held.
    pub lease: Lease,
    /// The conflicting leases that were broken, each named with its holder.
    pub broken: Vec<String>,
}

/// Takes `claim`'s lease, then makes sure no conflicting lease is live.
/// Without `--break-lock` a live conflict gives the lease back and fails
/// with exit 4 naming every holder; with it, each conflicting lease is
/// broken (its holder stops at its next heartbeat) and named.
pub fn take(store: &dyn Store, ns: &Ns, claim: &Claim, now: DateTime<Utc>) -> CommandResult<Taken> {
    let before = lock::all_leases(store, ns)?;
    let lease = lock::acquire(store, ns, claim, now)?;
    // With --break-lock, the lease of the same name may have been live.
    let mut broken: Vec<String> = before
        .iter()
        .filter(|d| d.get_str("_id") == Ok(claim.name.as_str()) && lock::is_live(d, now))
        .filter(|d| d.get_str("run_id") != Ok(claim.run_id.as_str()))
        .map(lock::describe)
        .collect();
    let live: Vec<Document> = lock::all_leases(store, ns)?
        .into_iter()
        .filter(|d| d.get_str("_id").is_ok_and(|id| conflicts(&claim.name, id)))
        .filter(|d| lock::is_live(d, now))
        .collect();
    if live.is_empty() {
        return Ok(Taken { lease, broken });
    }
    if !claim.break_lock {
        let holders: Vec<String> = live.iter().map(lock::describe).collect();
        let _ = lease.release(store, Utc::now());
        return Err(CommandError::LockHeld(format!(
            "the {} lock cannot be taken while another run holds a conflicting lease: {}\n\
             wait for it to finish; if it died, run again after its lease expires, or pass --break-lock",
            claim.name,
            holders.join("; "),
        )));
    }
    for held in &live {
        if !lock::break_held(store, ns, held, &claim.run_id, now)? {
            let _ = lease.release(store, Utc::now());
            return Err(CommandError::LockHeld(format!(
                "the lease {} changed while --break-lock was breaking it: try again",
                lock::describe(held)
            )));
        }
        tracing::warn!(lease = %lock::describe(held), "--break-lock: broke a live conflicting lease");
        broken.push(lock::describe(held));
    }
    Ok(Taken { lease, broken })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::EXIT_LOCK_HELD;
    use crate::store::sqlite::SqliteStore;
    use chrono::Duration;

    fn claim(name: &str, run: &str, break_lock: bool) -> Claim {
        Claim {
            name: name.into(),
            run_id: run.into(),
            owner: format!("host:{run}"),
            ttl: Duration::seconds(60),
            break_lock,
        }
    }

    #[test]
    fn partitions_of_one_n_coexist_and_exclude_the_rest() {
        assert!(!conflicts("phase2:0/2", "phase2:1/2"));
        assert!(conflicts("phase2:0/2", "phase2"));
        assert!(conflicts("phase2", "phase2:1/3"));
        assert!(conflicts("phase2:0/2", "phase2:0/3"));
        assert!(
            !conflicts("phase2", "phase2"),
            "the same lease is lock::acquire's"
        );
        assert!(!conflicts("phase2:0/2", "other:0/3"));
        assert!(!conflicts("phase2", "phase3"));
    }

    #[test]
    fn a_whole_run_and_a_partition_exclude_each_other_and_give_back_their_lease() {
        let store = SqliteStore::open(":memory:").unwrap();
        let ns = Ns::new("d", "migration_lock");
        let now = Utc::now();
        let p0 = take(&store, &ns, &claim("phase2:0/2", "run-p0", false), now).unwrap();
        take(&store, &ns, &claim("phase2:1/2", "run-p1", false), now).unwrap();
        let err = take(&store, &ns, &claim("phase2", "run-all", false), now)
            .err()
            .unwrap();
        assert_eq!(err.exit_code(), EXIT_LOCK_HELD);
        assert!(
            err.to_string().contains("run-p0") && err.to_string().contains("run-p1"),
            "{err}"
        );
        let err = take(&store, &ns, &claim("phase2:2/3", "run-q2", false), now)
            .err()
            .unwrap();
        assert!(err.to_string().contains("phase2:0/2"), "{err}");
        let whole = lock::all_leases(&store, &ns).unwrap();
        for id in ["phase2", "phase2:2/3"] {
            let d = whole.iter().find(|d| d.get_str("_id") == Ok(id)).unwrap();
            assert!(!lock::is_live(d, now), "{id} was given back: {d}");
        }
        p0.lease.release(&store, now).unwrap();
        let err = take(&store, &ns, &claim("phase2", "run-all", false), now)
            .err()
            .unwrap();
        assert!(
            err.to_string().contains("run-p1") && !err.to_string().contains("run-p0"),
            "{err}"
        );
    }

    #[test]
    fn break_lock_breaks_the_conflicting_leases_and_names_them() {
        let store = SqliteStore::open(":memory:").unwrap();
        let ns = Ns::new("d", "migration_lock");
        let now = Utc::now();
        let mut p1 = take(&store, &ns, &claim("phase2:1/2", "run-p1", false), now)
            .unwrap()
            .lease;
        let taken = take(&store, &ns, &claim("phase2", "run-all", true), now).unwrap();
        assert_eq!(taken.broken.len(), 1);
        assert!(taken.broken[0].contains("phase2:1/2"), "{:?}", taken.broken);
        assert!(
            p1.heartbeat(&store, now + Duration::seconds(1)).is_err(),
            "the broken holder notices at its next heartbeat"
        );
    }

    #[test]
    fn an_expired_partition_lease_does_not_block() {
        let store = SqliteStore::open(":memory:").unwrap();
        let ns = Ns::new("d", "migration_lock");
        let t0 = Utc::now();
        let _dead = take(&store, &ns, &claim("phase2:0/2", "run-dead", false), t0).unwrap();
        let later = t0 + Duration::seconds(61);
        take(&store, &ns, &claim("phase2", "run-all", false), later).unwrap();
    }
}
