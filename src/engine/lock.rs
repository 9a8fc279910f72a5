//! The migration lock: a lease with an owner, a heartbeat and an expiry.
//!
//! Taking it is one atomic guarded write (insert if absent, or overwrite the
//! lease read, guarded on every field of it, if it has expired or was
//! released), so two runners can never both win; a check-then-insert lets
//! both through.
//! A run that dies stops renewing, and its lease expires on its own.

use crate::error::{CommandError, CommandResult};
use crate::store::{Guard, Ns, Outcome, Patch, Step, Store};
use bson::{doc, Document};
use chrono::{DateTime, Duration, Utc};

/// How long a lease lives without a heartbeat.
pub const DEFAULT_TTL_SECONDS: i64 = 300;

/// A held lease. Renew it with `heartbeat` and give it back with `release`.
#[derive(Debug)]
pub struct Lease {
    ns: Ns,
    current: Document,
    ttl: Duration,
}

/// Who asks for the lock and for how long.
#[derive(Debug, Clone)]
pub struct Claim {
    /// The lock's `_id`, e.g. `phase2`.
    pub name: String,
    /// The run that will hold it.
    pub run_id: String,
    /// A human-readable owner: host and process.
    pub owner: String,
    /// Lease length without a heartbeat.
    pub ttl: Duration,
    /// Take the lock even if another run holds an unexpired lease.
    pub break_lock: bool,
}

impl Claim {
    /// A claim for this process, named after host and pid.
    pub fn for_this_process(name: &str, run_id: &str, break_lock: bool) -> Claim {
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "localhost".into());
        Claim {
            name: name.into(),
            run_id: run_id.into(),
            owner: format!("{host}:{}", std::process::id()),
            ttl: Duration::seconds(DEFAULT_TTL_SECONDS),
            break_lock,
        }
    }
}

fn lease_doc(
    claim_name: &str,
    owner: &str,
    run_id: &str,
    acquired: DateTime<Utc>,
    now: DateTime<Utc>,
    ttl: Duration,
) -> Document {
    doc! {
        "_id": claim_name,
        "owner": owner,
        "run_id": run_id,
        "acquired_at": bson::DateTime::from_chrono(acquired),
        "heartbeat_at": bson::DateTime::from_chrono(now),
        "expires_at": bson::DateTime::from_chrono(now + ttl),
        "released": false,
    }
}

/// Takes the lock or fails with `LockHeld` (exit code 4) naming the holder.
pub fn acquire(
    store: &dyn Store,
    ns: &Ns,
    claim: &Claim,
    now: DateTime<Utc>,
) -> CommandResult<Lease> {
    let wanted = lease_doc(
        &claim.name,
        &claim.owner,
        &claim.run_id,
        now,
        now,
        claim.ttl,
    );
    if written(store.patch_many(ns, &[Patch::insert(wanted.clone())])?)? {
        return Ok(Lease {
            ns: ns.clone(),
            current: wanted,
            ttl: claim.ttl,
        });
    }
    let Some(held) = store.get_many(ns, &[claim.name.as_str().into()])?.pop() else {
        return Err(held_error(None, claim));
    };
    let free = !is_live(&held, now);
    if !(free || claim.break_lock) {
        return Err(held_error(Some(&held), claim));
    }
    if swap_if_same(store, ns, &held, &wanted)? {
        if !free {
            tracing::warn!(lock = %claim.name, holder = %describe(&held), "--break-lock: took over a live lease");
        }
        Ok(Lease {
            ns: ns.clone(),
            current: wanted,
            ttl: claim.ttl,
        })
    } else {
        Err(held_error(Some(&held), claim))
    }
}

/// Whether a lease document is held: not released and not expired at `now`.
pub fn is_live(lease: &Document, now: DateTime<Utc>) -> bool {
    !lease.get_bool("released").unwrap_or(false)
        && lease
            .get_datetime("expires_at")
            .is_ok_and(|e| e.to_chrono() >= now)
}

/// Every lease document ever taken in `ns` (released and expired ones too),
/// for the checks that look past one lock's own document.
pub fn all_leases(store: &dyn Store, ns: &Ns) -> CommandResult<Vec<Document>> {
    let mut leases = Vec::new();
    for doc in store.scan(ns, &crate::store::Scan::by_id(100))? {
        leases.push(doc?);
    }
    Ok(leases)
}

/// Marks another run's lease released on behalf of `by_run` (`--break-lock`),
/// guarded on the lease as read: its holder's next heartbeat fails and it
/// stops before writing more. False when the lease changed meanwhile.
pub fn break_held(
    store: &dyn Store,
    ns: &Ns,
    held: &Document,
    by_run: &str,
    now: DateTime<Utc>,
) -> CommandResult<bool> {
    let mut broken = held.clone();
    broken.insert("released", true);
    broken.insert("broken_by", by_run);
    broken.insert("broken_at", bson::DateTime::from_chrono(now));
    swap_if_same(store, ns, held, &broken)
}

/// The holder of a lease in words: `phase2:1/2 (owner host:42, run R, expires T)`.
pub fn describe(held: &Document) -> String {
    format!(
        "{} (owner {}, run {}, last heartbeat {}, expires {})",
        field(held, "_id"),
        field(held, "owner"),
        field(held, "run_id"),
        field(held, "heartbeat_at"),
        field(held, "expires_at")
    )
}

fn field(held: &Document, k: &str) -> String {
    held.get(k)
        .map(|v| match v {
            bson::Bson::DateTime(d) => d.try_to_rfc3339_string().unwrap_or_default(),
            bson::Bson::String(s) => s.clone(),
            other => other.to_string(),
        })
        .unwrap_or_else(|| "?".into())
}

/// Overwrites the lease `current` with `next`, guarded on every field of
/// `current` (and their number), so it happens only if nobody changed the
/// lease since it was read.
fn swap_if_same(
    store: &dyn Store,
    ns: &Ns,
    current: &Document,
    next: &Document,
) -> CommandResult<bool> {
    let fields = |d: &Document| -> Vec<(String, bson::Bson)> {
        d.iter()
            .filter(|(k, _)| k.as_str() != "_id")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    };
    let mut guards: Vec<Guard> = fields(current)
        .iter()
        .map(|(k, v)| Guard::is(k.clone(), Some(v)))
        .collect();
    guards.push(Guard::Fields(current.len()));
    let step = Step {
        guards,
        set: fields(next),
        unset: current
            .keys()
            .filter(|k| !next.contains_key(*k))
            .cloned()
            .collect(),
        ..Step::default()
    };
    let id = current.get("_id").cloned().unwrap_or(bson::Bson::Null);
    if written(store.patch_many(ns, &[Patch::update(id.clone(), step)])?)? {
        return Ok(true);
    }
    // A write retried after a lost reply finds its own result: it landed.
    let stored = store.get_many(ns, &[id])?;
    Ok(stored.first().is_some_and(|s| same_fields(s, next)))
}

/// The same fields with the same values, in any order.
fn same_fields(a: &Document, b: &Document) -> bool {
    a.len() == b.len()
        && a.iter().all(|(k, v)| {
            b.get(k).is_some_and(|w| {
                bson::to_vec(&bson::doc! {"v": v.clone()}).ok()
                    == bson::to_vec(&bson::doc! {"v": w.clone()}).ok()
            })
        })
}

/// Whether the one patch was applied; a refusal is an error.
fn written(mut outcomes: Vec<Outcome>) -> CommandResult<bool> {
    match outcomes.pop() {
        Some(Outcome::Applied) => Ok(true),
        Some(Outcome::Conflict) | None => Ok(false),
        Some(Outcome::Refused(e)) => Err(e.into()),
    }
}

fn held_error(held: Option<&Document>, claim: &Claim) -> CommandError {
    let Some(held) = held else {
        return CommandError::LockHeld(format!(
            "the {} lock changed hands while it was being taken: try again",
            claim.name
        ));
    };
    CommandError::LockHeld(format!(
        "another run holds the {} lock: owner {}, run {}, last heartbeat {}, expires {}\n\
         wait for it to finish; if it died, run again after the lease expires, or pass --break-lock",
        claim.name,
        field(held, "owner"),
        field(held, "run_id"),
        field(held, "heartbeat_at"),
        field(held, "expires_at")
    ))
}

impl Lease {
    /// Renews the lease; fails if someone broke it meanwhile, so the run stops
    /// instead of writing alongside another one.
    pub fn heartbeat(&mut self, store: &dyn Store, now: DateTime<Utc>) -> CommandResult<()> {
        let mut renewed = self.current.clone();
        renewed.insert("heartbeat_at", bson::DateTime::from_chrono(now));
        renewed.insert("expires_at", bson::DateTime::from_chrono(now + self.ttl));
        self.swap(store, renewed)
    }

    /// Gives the lock back (marks it released; the next run replaces it).
    pub fn release(mut self, store: &dyn Store, now: DateTime<Utc>) -> CommandResult<()> {
        let mut released = self.current.clone();
        released.insert("released", true);
        released.insert("heartbeat_at", bson::DateTime::from_chrono(now));
        self.swap(store, released)
    }

    /// How long the lease lives without a heartbeat.
    pub fn ttl(&self) -> std::time::Duration {
        self.ttl
            .to_std()
            .unwrap_or(std::time::Duration::from_secs(60))
    }

    /// The run id this lease belongs to.
    pub fn run_id(&self) -> &str {
        self.current.get_str("run_id").unwrap_or_default()
    }

    fn swap(&mut self, store: &dyn Store, next: Document) -> CommandResult<()> {
        if swap_if_same(store, &self.ns, &self.current, &next)? {
            self.current = next;
            Ok(())
        } else {
            Err(CommandError::LockHeld(
                "this run lost the migration lock (someone passed --break-lock): stopped before writing more; \
                 the work done so far is checkpointed, resume with --resume once the other run has finished".into(),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::EXIT_LOCK_HELD;
    use crate::store::sqlite::SqliteStore;

    fn claim(run: &str, break_lock: bool) -> Claim {
        Claim {
            name: "phase2".into(),
            run_id: run.into(),
            owner: format!("host:{run}"),
            ttl: Duration::seconds(60),
            break_lock,
        }
    }

    #[test]
    fn a_second_runner_is_refused_with_the_holder_named() {
        let store = SqliteStore::open(":memory:").unwrap();
        let ns = Ns::new("d", "migration_lock");
        let now = Utc::now();
        let _first = acquire(&store, &ns, &claim("run-a", false), now).unwrap();
        let err = acquire(&store, &ns, &claim("run-b", false), now).unwrap_err();
        assert_eq!(err.exit_code(), EXIT_LOCK_HELD);
        assert!(err.to_string().contains("run-a"), "{err}");
        assert!(err.to_string().contains("--break-lock"), "{err}");
    }

    #[test]
    fn expired_released_or_broken_leases_can_be_taken() {
        let store = SqliteStore::open(":memory:").unwrap();
        let ns = Ns::new("d", "migration_lock");
        let t0 = Utc::now();
        let first = acquire(&store, &ns, &claim("run-a", false), t0).unwrap();
        let later = t0 + Duration::seconds(61);
        let mut second = acquire(&store, &ns, &claim("run-b", false), later).unwrap();
        assert_eq!(second.run_id(), "run-b");
        assert!(
            first.release(&store, later).is_err(),
            "a lease that was taken over cannot be released"
        );
        second
            .heartbeat(&store, later + Duration::seconds(30))
            .unwrap();
        let third = acquire(
            &store,
            &ns,
            &claim("run-c", true),
            later + Duration::seconds(31),
        )
        .unwrap();
        assert!(
            second
                .heartbeat(&store, later + Duration::seconds(32))
                .is_err(),
            "the broken lease notices"
        );
        third
            .release(&store, later + Duration::seconds(33))
            .unwrap();
        acquire(
            &store,
            &ns,
            &claim("run-d", false),
            later + Duration::seconds(34),
        )
        .unwrap();
    }
}
