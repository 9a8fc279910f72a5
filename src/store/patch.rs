//! Guarded per-document patches: the one write verb that lets the migration
//! change a document the application is writing at the same time.
//!
//! A [`Patch`] is a list of operations on one document (insert if absent,
//! guarded update steps, guarded delete). Each operation is atomic on its
//! own and runs only while its guards hold; the first one whose guards fail
//! stops the patch and the caller re-reads and plans again. An update step
//! names only the paths it changes (`$set`, `$unset`, `$push` of entries,
//! `$pull` by key), so whatever else is in the document — a field, an array
//! entry or a value another writer added since the read — is kept by
//! construction, not by comparing the whole document.
//!
//! This file holds both meanings of a patch side by side: [`apply_step`] is
//! what the embedded store executes (and what a planner uses to predict the
//! result), [`filter`] and [`update`] are the MongoDB query and update
//! documents the MongoDB store sends. They must agree; `tests/contract.rs`
//! runs the same cases on both stores.

use super::keys::sort_key;
use bson::{doc, Bson, Document, RawDocumentBuf};
use std::cmp::Ordering;

/// MongoDB's largest document (`maxBsonObjectSize`), which both stores
/// refuse to exceed.
pub const MAX_DOCUMENT_BYTES: usize = 16 * 1024 * 1024;

/// Changes to one document, applied in order until one does not apply.
#[derive(Debug, Clone, PartialEq)]
pub struct Patch {
    /// The `_id` of the document.
    pub id: Bson,
    /// The operations, each atomic on its own.
    pub ops: Vec<Op>,
}

impl Patch {
    /// A patch that inserts `doc` unless a document with its `_id` exists.
    pub fn insert(doc: Document) -> Patch {
        Patch {
            id: doc.get("_id").cloned().unwrap_or(Bson::Null),
            ops: vec![Op::Insert(doc)],
        }
    }

    /// [`Patch::insert`] of a document already encoded: whoever built it
    /// encodes it and frees it on its own thread, and a store that writes
    /// BSON writes these bytes.
    pub fn insert_bytes(id: Bson, bytes: RawDocumentBuf) -> Patch {
        Patch {
            id,
            ops: vec![Op::InsertBytes(bytes)],
        }
    }

    /// A patch of one guarded update step.
    pub fn update(id: Bson, step: Step) -> Patch {
        Patch {
            id,
            ops: vec![Op::Update(step)],
        }
    }
}

/// One atomic operation of a patch.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// Insert the document; a document with the same `_id` makes it a
    /// conflict (another writer created it first).
    Insert(Document),
    /// `Insert` of the document's BSON bytes.
    InsertBytes(RawDocumentBuf),
    /// Change the named paths, if the guards hold.
    Update(Step),
    /// Delete the document, if the guards hold.
    Delete(Vec<Guard>),
}

/// One update statement: guards, then changes to named paths. No two paths
/// of a step may overlap (one a prefix of the other), as in MongoDB.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Step {
    /// What must hold for the step to run.
    pub guards: Vec<Guard>,
    /// `$set`: dotted paths (numeric parts index arrays) and their values.
    pub set: Vec<(String, Bson)>,
    /// `$unset`: dotted paths to remove.
    pub unset: Vec<String>,
    /// `$push` with `$each` (and `$position`).
    pub push: Vec<Push>,
    /// `$pull` of entries by key.
    pub pull: Vec<Pull>,
}

impl Step {
    /// Every path the step changes.
    pub fn paths(&self) -> impl Iterator<Item = &str> {
        self.set
            .iter()
            .map(|(p, _)| p.as_str())
            .chain(self.unset.iter().map(String::as_str))
            .chain(self.push.iter().map(|p| p.path.as_str()))
            .chain(self.pull.iter().map(|p| p.path.as_str()))
    }

    /// Whether the step changes nothing.
    pub fn is_empty(&self) -> bool {
        self.paths().next().is_none()
    }
}

/// Entries appended to (or inserted into) the array at `path`.
#[derive(Debug, Clone, PartialEq)]
pub struct Push {
    /// The array's dotted path; a missing array is created.
    pub path: String,
    /// The entries, in order.
    pub entries: Vec<Bson>,
    /// Insert before this index instead of appending.
    pub position: Option<u32>,
}

/// Entries removed from the array at `path` by their key.
#[derive(Debug, Clone, PartialEq)]
pub struct Pull {
    /// The array's dotted path.
    pub path: String,
    /// The field that keys an entry; `None`: the entry is its own key.
    pub key: Option<String>,
    /// Keys to remove (compared as MongoDB compares values).
    pub values: Vec<Bson>,
}

/// A condition on the stored document.
#[derive(Debug, Clone, PartialEq)]
pub enum Guard {
    /// The value at `path` is exactly `value`: same BSON type, same value,
    /// embedded fields in the same order. `None`: the path is absent.
    Is {
        /// A dotted path that does not run through an array except by index.
        path: String,
        /// The value as read, or `None` for absent.
        value: Option<Bson>,
    },
    /// No entry of the array at `path` has one of these keys.
    NoneOf {
        /// The array's dotted path.
        path: String,
        /// The field that keys an entry; `None`: the entry is its own key.
        key: Option<String>,
        /// Keys that must not be there.
        values: Vec<Bson>,
    },
    /// The array at `path` has exactly `len` entries.
    Len {
        /// The array's dotted path.
        path: String,
        /// Its length as read.
        len: usize,
    },
    /// The document has exactly this many top-level fields (`_id` included).
    Fields(usize),
}

impl Guard {
    /// The guard that `path` still holds what was read there.
    pub fn is(path: impl Into<String>, value: Option<&Bson>) -> Guard {
        Guard::Is {
            path: path.into(),
            value: value.cloned(),
        }
    }
}

/// What became of one patch.
#[derive(Debug)]
pub enum Outcome {
    /// Every operation ran.
    Applied,
    /// A guard did not hold (or the document was missing, or already
    /// there for an insert): another writer got there first. Re-read and
    /// plan again.
    Conflict,
    /// The store refused an operation (a unique index other than `_id`, a
    /// document over 16 MiB, a path that cannot be written). Planning again
    /// will not help: someone has to look.
    Refused(super::StoreError),
}

impl Outcome {
    /// Whether every operation ran.
    pub fn applied(&self) -> bool {
        matches!(self, Outcome::Applied)
    }
}

// ---------------------------------------------------------------------------
// The embedded meaning: apply a step to a decoded document.
// ---------------------------------------------------------------------------

/// Whether the guards hold on `doc`.
pub fn guards_hold(doc: &Document, guards: &[Guard]) -> bool {
    guards.iter().all(|g| holds(doc, g))
}

fn holds(doc: &Document, guard: &Guard) -> bool {
    match guard {
        Guard::Is { path, value } => match (get(doc, path), value) {
            (None, None) => true,
            (Some(a), Some(b)) => a.element_type() == b.element_type() && same_value(a, b),
            _ => false,
        },
        Guard::NoneOf { path, key, values } => {
            let wanted: Vec<Vec<u8>> = values.iter().map(|v| sort_key(Some(v))).collect();
            let hit = |v: Option<&Bson>| v.is_some_and(|v| wanted.contains(&sort_key(Some(v))));
            let found = match get(doc, path) {
                Some(Bson::Array(items)) => items.iter().any(|e| hit(entry_key(e, key))),
                Some(other) => hit(entry_key(other, key)),
                None => false,
            };
            !found
        }
        Guard::Len { path, len } => {
            matches!(get(doc, path), Some(Bson::Array(a)) if a.len() == *len)
        }
        Guard::Fields(n) => doc.len() == *n,
    }
}

/// Applies one update step. `Ok(false)`: a guard failed and `doc` is
/// untouched. `Err`: the step cannot be applied (MongoDB would refuse it
/// too); `doc` is untouched.
pub fn apply_step(doc: &mut Document, step: &Step) -> Result<bool, String> {
    if !guards_hold(doc, &step.guards) {
        return Ok(false);
    }
    check_overlaps(step)?;
    let mut changed = doc.clone();
    let mut mods: Vec<(&str, Mod<'_>)> = Vec::new();
    mods.extend(step.set.iter().map(|(p, v)| (p.as_str(), Mod::Set(v))));
    mods.extend(step.unset.iter().map(|p| (p.as_str(), Mod::Unset)));
    mods.extend(step.push.iter().map(|p| (p.path.as_str(), Mod::Push(p))));
    mods.extend(step.pull.iter().map(|p| (p.path.as_str(), Mod::Pull(p))));
    // MongoDB (5.0 and later) processes the paths of an update in
    // lexicographic order, numeric parts by number: new fields land in that
    // order.
    mods.sort_by(|a, b| path_order(a.0, b.0));
    for (path, m) in mods {
        let parts: Vec<&str> = path.split('.').collect();
        match m {
            Mod::Set(v) => set_path(&mut changed, &parts, v.clone())?,
            Mod::Unset => unset_path(&mut changed, &parts),
            Mod::Push(p) => push_path(&mut changed, &parts, p)?,
            Mod::Pull(p) => pull_path(&mut changed, &parts, p)?,
        }
    }
    *doc = changed;
    Ok(true)
}

enum Mod<'a> {
    Set(&'a Bson),
    Unset,
    Push(&'a Push),
    Pull(&'a Pull),
}

/// MongoDB refuses an update where one path is another or lies inside it
/// ("would create a conflict"); so does the embedded store.
fn check_overlaps(step: &Step) -> Result<(), String> {
    let paths: Vec<&str> = step.paths().collect();
    for (i, a) in paths.iter().enumerate() {
        for b in &paths[i + 1..] {
            if overlaps(a, b) {
                return Err(format!(
                    "updating the path '{a}' would create a conflict at '{b}'"
                ));
            }
        }
    }
    Ok(())
}

/// Whether two dotted paths are the same or one lies inside the other.
pub fn overlaps(a: &str, b: &str) -> bool {
    let (short, long) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    long == short || long.starts_with(&format!("{short}."))
}

/// The order MongoDB applies update paths in: part by part, numbers by
/// value, other names by their bytes.
pub fn path_order(a: &str, b: &str) -> Ordering {
    let mut x = a.split('.');
    let mut y = b.split('.');
    loop {
        match (x.next(), y.next()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(p), Some(q)) => {
                let order = match (p.parse::<u64>(), q.parse::<u64>()) {
                    (Ok(m), Ok(n)) => m.cmp(&n),
                    _ => p.as_bytes().cmp(q.as_bytes()),
                };
                if order != Ordering::Equal {
                    return order;
                }
            }
        }
    }
}

/// Equality as MongoDB's `$eq` sees it inside values: numbers by value,
/// embedded fields in order, types otherwise distinct.
fn same_value(a: &Bson, b: &Bson) -> bool {
    sort_key(Some(a)) == sort_key(Some(b))
}

fn entry_key<'a>(entry: &'a Bson, key: &Option<String>) -> Option<&'a Bson> {
    match key {
        None => Some(entry),
        Some(k) => entry.as_document()?.get(k),
    }
}

/// The value at a dotted path; numeric parts index arrays.
pub fn get<'a>(doc: &'a Document, path: &str) -> Option<&'a Bson> {
    let mut parts = path.split('.');
    let mut current = doc.get(parts.next()?)?;
    for part in parts {
        current = match current {
            Bson::Document(d) => d.get(part)?,
            Bson::Array(a) => a.get(part.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(current)
}

fn not_viable(parts: &[&str], at: &str) -> String {
    format!(
        "cannot create field '{at}' of path '{}': an element on the way is neither a document nor an array",
        parts.join(".")
    )
}

/// The container slot a path ends in, created as documents on the way.
fn slot<'a>(
    doc: &'a mut Document,
    parts: &[&str],
    create: bool,
) -> Result<Option<&'a mut Bson>, String> {
    let (first, rest) = parts.split_first().ok_or("empty path")?;
    if !doc.contains_key(*first) {
        if !create {
            return Ok(None);
        }
        if rest.is_empty() {
            doc.insert(*first, Bson::Null);
        } else {
            doc.insert(*first, Document::new());
        }
    }
    let mut current = doc.get_mut(*first).ok_or("path vanished")?;
    for (i, part) in rest.iter().enumerate() {
        let last = i + 1 == rest.len();
        current = match current {
            Bson::Document(d) => {
                if !d.contains_key(*part) {
                    if !create {
                        return Ok(None);
                    }
                    d.insert(
                        *part,
                        if last {
                            Bson::Null
                        } else {
                            Bson::Document(Document::new())
                        },
                    );
                }
                d.get_mut(*part).ok_or("path vanished")?
            }
            Bson::Array(a) => {
                let index: usize = part.parse().map_err(|_| not_viable(parts, part))?;
                if index >= a.len() {
                    if !create {
                        return Ok(None);
                    }
                    a.resize(index + 1, Bson::Null);
                    if !last {
                        a[index] = Bson::Document(Document::new());
                    }
                }
                &mut a[index]
            }
            _ if create => return Err(not_viable(parts, part)),
            _ => return Ok(None),
        };
    }
    Ok(Some(current))
}

fn set_path(doc: &mut Document, parts: &[&str], value: Bson) -> Result<(), String> {
    if let Some(slot) = slot(doc, parts, true)? {
        *slot = value;
    }
    Ok(())
}

fn unset_path(doc: &mut Document, parts: &[&str]) {
    let Some((last, parent)) = parts.split_last() else {
        return;
    };
    if parent.is_empty() {
        doc.remove(*last);
        return;
    }
    match slot(doc, parent, false) {
        Ok(Some(Bson::Document(d))) => {
            d.remove(*last);
        }
        Ok(Some(Bson::Array(a))) => {
            // MongoDB leaves a null where an array element was unset.
            if let Some(item) = last.parse::<usize>().ok().and_then(|i| a.get_mut(i)) {
                *item = Bson::Null;
            }
        }
        _ => {}
    }
}

fn push_path(doc: &mut Document, parts: &[&str], push: &Push) -> Result<(), String> {
    let path = parts.join(".");
    let existed = get(doc, &path).is_some();
    let slot = slot(doc, parts, true)?.ok_or("path vanished")?;
    if !existed {
        *slot = Bson::Array(Vec::new());
    }
    let Bson::Array(array) = slot else {
        return Err(format!(
            "the field '{path}' must be an array but is of type {:?}",
            slot.element_type()
        ));
    };
    let at = push
        .position
        .map_or(array.len(), |p| (p as usize).min(array.len()));
    array.splice(at..at, push.entries.iter().cloned());
    Ok(())
}

fn pull_path(doc: &mut Document, parts: &[&str], pull: &Pull) -> Result<(), String> {
    let Some(slot) = slot(doc, parts, false)? else {
        return Ok(());
    };
    let Bson::Array(items) = slot else {
        return Err(format!(
            "cannot apply $pull to a non-array value at '{}'",
            parts.join(".")
        ));
    };
    let wanted: Vec<Vec<u8>> = pull.values.iter().map(|v| sort_key(Some(v))).collect();
    items.retain(|e| !entry_key(e, &pull.key).is_some_and(|k| wanted.contains(&sort_key(Some(k)))));
    Ok(())
}

// ---------------------------------------------------------------------------
// The MongoDB meaning: a query filter and an update document.
// ---------------------------------------------------------------------------

/// The filter of an update or delete statement: the `_id` and every guard.
pub fn filter(id: &Bson, guards: &[Guard]) -> Document {
    let mut q = doc! { "_id": id.clone() };
    let clauses: Vec<Bson> = guards.iter().map(|g| Bson::Document(clause(g))).collect();
    if !clauses.is_empty() {
        q.insert("$and", clauses);
    }
    q
}

fn clause(guard: &Guard) -> Document {
    match guard {
        Guard::Is { path, value: None } => doc! { path: { "$exists": false } },
        Guard::Is {
            path,
            value: Some(Bson::Array(items)),
        } => doc! { path: { "$eq": items.clone(), "$size": items.len() as i64 } },
        // `$eq: null` also matches a missing field, and `$eq` alone matches
        // numbers of other types and arrays holding the value: pin the type
        // and refuse arrays.
        Guard::Is {
            path,
            value: Some(Bson::Null),
        } => doc! { path: { "$type": "null", "$not": { "$type": "array" } } },
        Guard::Is {
            path,
            value: Some(v),
        } => doc! { path: {
            "$eq": v.clone(),
            "$type": type_alias(v),
            "$not": { "$type": "array" },
        } },
        Guard::NoneOf { path, key, values } => {
            let at = match key {
                Some(k) => format!("{path}.{k}"),
                None => path.clone(),
            };
            doc! { at: { "$nin": values.clone() } }
        }
        Guard::Len { path, len } => doc! { path: { "$size": *len as i64 } },
        Guard::Fields(n) => doc! {
            "$expr": { "$eq": [ { "$size": { "$objectToArray": "$$ROOT" } }, *n as i64 ] }
        },
    }
}

/// The update document of a step.
pub fn update(step: &Step) -> Document {
    let mut u = Document::new();
    if !step.set.is_empty() {
        let set: Document = step.set.iter().cloned().collect();
        u.insert("$set", set);
    }
    if !step.unset.is_empty() {
        let unset: Document = step
            .unset
            .iter()
            .map(|p| (p.clone(), Bson::String(String::new())))
            .collect();
        u.insert("$unset", unset);
    }
    if !step.push.is_empty() {
        let mut push = Document::new();
        for p in &step.push {
            let mut each = doc! { "$each": p.entries.clone() };
            if let Some(at) = p.position {
                each.insert("$position", at as i64);
            }
            push.insert(p.path.clone(), each);
        }
        u.insert("$push", push);
    }
    if !step.pull.is_empty() {
        let mut pull = Document::new();
        for p in &step.pull {
            let condition = match &p.key {
                Some(k) => doc! { k: { "$in": p.values.clone() } },
                None => doc! { "$in": p.values.clone() },
            };
            pull.insert(p.path.clone(), condition);
        }
        u.insert("$pull", pull);
    }
    u
}

/// The `$type` alias of a value's BSON type.
fn type_alias(v: &Bson) -> &'static str {
    match v {
        Bson::Double(_) => "double",
        Bson::String(_) => "string",
        Bson::Document(_) => "object",
        Bson::Array(_) => "array",
        Bson::Binary(_) => "binData",
        Bson::Undefined => "undefined",
        Bson::ObjectId(_) => "objectId",
        Bson::Boolean(_) => "bool",
        Bson::DateTime(_) => "date",
        Bson::Null => "null",
        Bson::RegularExpression(_) => "regex",
        Bson::DbPointer(_) => "dbPointer",
        Bson::JavaScriptCode(_) => "javascript",
        Bson::Symbol(_) => "symbol",
        Bson::JavaScriptCodeWithScope(_) => "javascriptWithScope",
        Bson::Int32(_) => "int",
        Bson::Timestamp(_) => "timestamp",
        Bson::Int64(_) => "long",
        Bson::Decimal128(_) => "decimal",
        Bson::MinKey => "minKey",
        Bson::MaxKey => "maxKey",
    }
}

/// The encoded size of an update statement, to keep every command the
/// tool sends under the server's limit.
pub fn statement_bytes(id: &Bson, step: &Step) -> usize {
    let statement = doc! { "q": filter(id, &step.guards), "u": update(step) };
    bson::to_vec(&statement).map_or(usize::MAX, |v| v.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step() -> Step {
        Step::default()
    }

    #[test]
    fn a_set_keeps_fields_it_does_not_name_and_new_fields_land_in_path_order() {
        let mut d = doc! { "_id": 1, "a": { "z": 1 }, "app": "kept" };
        let s = Step {
            set: vec![("a.y".into(), Bson::from(2)), ("a.b".into(), Bson::from(3))],
            ..step()
        };
        assert_eq!(apply_step(&mut d, &s), Ok(true));
        assert_eq!(
            d,
            doc! { "_id": 1, "a": { "z": 1, "b": 3, "y": 2 }, "app": "kept" }
        );
        let keys: Vec<&String> = d.get_document("a").unwrap().keys().collect();
        assert_eq!(keys, ["z", "b", "y"]);
    }

    #[test]
    fn an_is_guard_tells_null_from_missing_and_int_from_double() {
        let d = doc! { "_id": 1, "n": Bson::Null, "i": 5_i32, "e": { "a": 1, "b": 2 } };
        assert!(holds(&d, &Guard::is("n", Some(&Bson::Null))));
        assert!(!holds(&d, &Guard::is("m", Some(&Bson::Null))));
        assert!(holds(&d, &Guard::is("m", None)));
        assert!(!holds(&d, &Guard::is("n", None)));
        assert!(holds(&d, &Guard::is("i", Some(&Bson::Int32(5)))));
        assert!(!holds(&d, &Guard::is("i", Some(&Bson::Double(5.0)))));
        assert!(!holds(&d, &Guard::is("i", Some(&Bson::Int64(5)))));
        let reordered = Bson::Document(doc! { "b": 2, "a": 1 });
        assert!(!holds(&d, &Guard::is("e", Some(&reordered))));
    }

    #[test]
    fn a_guarded_push_adds_once_and_pull_removes_by_key() {
        let mut d = doc! { "_id": 1, "list": [ { "k": "app" } ] };
        let push = Step {
            guards: vec![Guard::NoneOf {
                path: "list".into(),
                key: Some("k".into()),
                values: vec!["mine".into()],
            }],
            push: vec![Push {
                path: "list".into(),
                entries: vec![Bson::Document(doc! { "k": "mine" })],
                position: None,
            }],
            ..step()
        };
        assert_eq!(apply_step(&mut d, &push), Ok(true));
        assert_eq!(apply_step(&mut d, &push), Ok(false), "already there");
        let pull = Step {
            pull: vec![Pull {
                path: "list".into(),
                key: Some("k".into()),
                values: vec!["mine".into()],
            }],
            ..step()
        };
        assert_eq!(apply_step(&mut d, &pull), Ok(true));
        assert_eq!(d, doc! { "_id": 1, "list": [ { "k": "app" } ] });
    }

    #[test]
    fn overlapping_paths_and_pushes_onto_scalars_are_refused() {
        let mut d = doc! { "_id": 1, "s": "text" };
        let s = Step {
            set: vec![("a".into(), Bson::from(1)), ("a.b".into(), Bson::from(2))],
            ..step()
        };
        assert!(apply_step(&mut d, &s).is_err());
        let p = Step {
            push: vec![Push {
                path: "s".into(),
                entries: vec![Bson::from(1)],
                position: None,
            }],
            ..step()
        };
        assert!(apply_step(&mut d, &p).is_err());
        assert_eq!(d, doc! { "_id": 1, "s": "text" }, "untouched");
    }

    #[test]
    fn numeric_parts_index_arrays_and_order_numerically() {
        let mut d = doc! { "_id": 1, "a": [ { "k": 1 }, { "k": 2 } ] };
        let s = Step {
            guards: vec![Guard::is("a.1.k", Some(&Bson::Int32(2)))],
            set: vec![("a.1".into(), Bson::Document(doc! { "k": 2, "v": true }))],
            ..step()
        };
        assert_eq!(apply_step(&mut d, &s), Ok(true));
        assert_eq!(
            d,
            doc! { "_id": 1, "a": [ { "k": 1 }, { "k": 2, "v": true } ] }
        );
        assert_eq!(path_order("a.10", "a.9"), Ordering::Greater);
        assert_eq!(
            path_order("a.b", "a-c"),
            Ordering::Less,
            "by part, not by string"
        );
    }
}
