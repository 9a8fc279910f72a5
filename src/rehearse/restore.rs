//! After the rollback: is the store back to the dump? Every collection of
//! the databases involved is read from the store and from the baseline (the
//! copy taken right after the import), both in `_id` order, and compared
//! document by document on their BSON bytes. Memory holds one scan batch of
//! each side, whatever the size of the dump.
//!
//! The tool's own bookkeeping (run records, the lock, the dual-write check's
//! records) is not part of the dump and is left out. Indexes are left out
//! too: phase 0 adds indexes on purpose and no rollback removes them.

use crate::config::{own, Config};
use crate::error::CommandResult;
use crate::phase2::compare::render_id;
use crate::phase2::diff::diff_paths;
use crate::store::{sort_key, DocStream, Ns, Scan, Store};
use bson::Document;
use serde::Serialize;
use std::cmp::Ordering;
use std::iter::Peekable;

/// Collections of the drawer database that record the tool's own work.
pub const BOOKKEEPING: [&str; 3] = [own::RUNS, own::LOCK, crate::phase1::VALIDATIONS];
/// Differences named in the report (all are counted).
const LISTED: usize = 50;
/// Documents per scan round trip.
const BATCH: u32 = 500;

/// The comparison with the dump.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RestoreCheck {
    /// Collections compared.
    pub collections: u64,
    /// Documents compared (the union of both sides).
    pub documents: u64,
    /// Documents that differ, are missing, or were added.
    pub differences: u64,
    /// The first differences, by namespace, id and what differs (paths only).
    pub listed: Vec<Difference>,
    /// Collections left out as the tool's bookkeeping.
    pub ignored: Vec<String>,
}

/// One document that is not as the dump had it.
#[derive(Debug, Clone, Serialize)]
pub struct Difference {
    /// `db.collection`.
    pub namespace: String,
    /// The document's `_id`.
    pub id: String,
    /// `missing`, `added`, or the paths that differ.
    pub what: String,
}

/// Compares every collection of `dbs` in `store` with `baseline`.
pub fn compare(
    store: &dyn Store,
    baseline: &dyn Store,
    dbs: &[String],
    config: &Config,
) -> CommandResult<RestoreCheck> {
    let mut check = RestoreCheck::default();
    for db in dbs {
        let mut names = store.list_collections(db)?;
        names.extend(baseline.list_collections(db)?);
        names.sort();
        names.dedup();
        for coll in names {
            let ns = Ns::new(db, &coll);
            if *db == config.drawer_db && BOOKKEEPING.contains(&coll.as_str()) {
                check.ignored.push(ns.to_string());
                continue;
            }
            check.collections += 1;
            compare_collection(store, baseline, &ns, &mut check)?;
        }
    }
    Ok(check)
}

fn compare_collection(
    store: &dyn Store,
    baseline: &dyn Store,
    ns: &Ns,
    check: &mut RestoreCheck,
) -> CommandResult<()> {
    let mut now = store.scan(ns, &Scan::by_id(BATCH))?.peekable();
    let mut then = baseline.scan(ns, &Scan::by_id(BATCH))?.peekable();
    loop {
        let order = match (peek(&mut now)?, peek(&mut then)?) {
            (None, None) => return Ok(()),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (Some(a), Some(b)) => sort_key(a.get("_id")).cmp(&sort_key(b.get("_id"))),
        };
        check.documents += 1;
        match order {
            Ordering::Less => {
                let doc = next(&mut now)?;
                differ(check, ns, &doc, "added".into());
            }
            Ordering::Greater => {
                let doc = next(&mut then)?;
                differ(check, ns, &doc, "missing".into());
            }
            Ordering::Equal => {
                let (a, b) = (next(&mut now)?, next(&mut then)?);
                if let Some(what) = difference(&a, &b) {
                    differ(check, ns, &a, what);
                }
            }
        }
    }
}

/// What differs between the document now and in the dump (paths only), or
/// `None` when their BSON bytes are the same.
fn difference(now: &Document, then: &Document) -> Option<String> {
    let (a, b) = (bson::to_vec(now).ok()?, bson::to_vec(then).ok()?);
    if a == b {
        return None;
    }
    let paths = diff_paths(Some(then), now);
    Some(if paths.is_empty() {
        "same fields and values, other field order or encoding".to_string()
    } else {
        paths.join("; ")
    })
}

fn differ(check: &mut RestoreCheck, ns: &Ns, doc: &Document, what: String) {
    check.differences += 1;
    if check.listed.len() < LISTED {
        check.listed.push(Difference {
            namespace: ns.to_string(),
            id: doc.get("_id").map(render_id).unwrap_or_default(),
            what,
        });
    }
}

fn peek<'a>(stream: &'a mut Peekable<DocStream<'_>>) -> CommandResult<Option<&'a Document>> {
    if matches!(stream.peek(), Some(Err(_))) {
        if let Some(Err(e)) = stream.next() {
            return Err(e.into());
        }
    }
    Ok(stream.peek().and_then(|r| r.as_ref().ok()))
}

fn next(stream: &mut Peekable<DocStream<'_>>) -> CommandResult<Document> {
    match stream.next() {
        Some(Ok(d)) => Ok(d),
        Some(Err(e)) => Err(e.into()),
        None => Ok(Document::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sqlite::SqliteStore;
    use bson::doc;

    fn store(docs: &[Document]) -> SqliteStore {
        let s = SqliteStore::open(":memory:").unwrap();
        s.insert_many(&Ns::new("l", "c"), docs).unwrap();
        s
    }

    #[test]
    fn added_missing_and_changed_documents_are_found_by_id_and_path() {
        let config = Config::new(":memory:", "l", "d");
        let then = store(&[
            doc! { "_id": "a", "email": "x@example.com" },
            doc! { "_id": "b", "n": 1 },
            doc! { "_id": "c", "n": 1_i64 },
        ]);
        let now = store(&[
            doc! { "_id": "a", "email": "x@example.com" },
            doc! { "_id": "c", "n": 1_i32 },
            doc! { "_id": "d", "n": 1 },
        ]);
        let check = compare(&now, &then, &["l".into()], &config).unwrap();
        assert_eq!(check.documents, 4);
        assert_eq!(check.differences, 3);
        let found: Vec<(&str, &str)> = check
            .listed
            .iter()
            .map(|d| (d.id.as_str(), d.what.as_str()))
            .collect();
        assert_eq!(found, [("b", "missing"), ("c", "~ n"), ("d", "added")]);
    }

    #[test]
    fn field_order_is_a_difference_and_bookkeeping_is_not() {
        let config = Config::new(":memory:", "l", "d");
        let then = store(&[doc! { "_id": "a", "x": 1, "y": 2 }]);
        let now = store(&[doc! { "_id": "a", "y": 2, "x": 1 }]);
        now.insert_many(&Ns::new("d", own::RUNS), &[doc! { "_id": "run" }])
            .unwrap();
        let check = compare(&now, &then, &["l".into(), "d".into()], &config).unwrap();
        assert_eq!(check.differences, 1);
        assert_eq!(check.ignored, ["d.migration_runs"]);
        assert!(check.listed[0].what.contains("field order"));
    }
}
