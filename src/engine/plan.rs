//! Plans the guarded patch that turns a stored drawer into the one the
//! builder (or the undo) wants, naming only what differs.
//!
//! The rule (docs/architecture.md, "Writing beside the application"): a
//! write names the paths it changes and carries, for each, a guard on what
//! it read there; array entries are added and removed by their key, never by
//! rewriting the array. So a field, an entry or a value the application
//! writes between our read and our write is either untouched by the patch
//! (kept by construction) or trips a guard (the engine re-reads and builds
//! again). Pure: documents in, a [`Patch`] out.

use crate::drawer;
use crate::store::keys::sort_key;
use crate::store::patch::{self, Guard, Op, Patch, Pull, Push, Step, MAX_DOCUMENT_BYTES};
use bson::{Bson, Document};
use std::collections::HashMap;

/// What one step may weigh: the statement (filter and update) must stay
/// under MongoDB's document limit plus its small headroom.
const STEP_BUDGET: usize = MAX_DOCUMENT_BYTES - 64 * 1024;

/// When the migration's own record (the ledger) is written relative to the
/// rest of the patch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ledger {
    /// With the first step: it lists what the later steps add, so an
    /// interrupted patch can still be undone.
    First,
    /// With the last step: removing it ends an undo.
    Last,
    /// Not at all (a delete that follows decides).
    Keep,
}

/// The patch that writes `wanted` over `stored` (absent: insert it).
pub fn plan_write(stored: Option<&Document>, wanted: &Document) -> Patch {
    match stored {
        None => Patch::insert(wanted.clone()),
        Some(s) => Patch {
            id: id_of(s),
            ops: diff(s, wanted, Ledger::First),
        },
    }
}

/// The patch that takes a stored drawer back to `wanted` (an undo): the
/// ledger goes last, so a rollback that stops halfway can run again.
pub fn plan_undo(stored: &Document, wanted: &Document) -> Patch {
    Patch {
        id: id_of(stored),
        ops: diff(stored, wanted, Ledger::Last),
    }
}

/// The patch that empties a stored drawer down to `hollow` (keeping the
/// ledger) and then deletes it, but only if it is then exactly what the
/// patch left: a write the application made meanwhile keeps the drawer.
pub fn plan_delete(stored: &Document, hollow: &Document) -> Patch {
    let mut ops = diff(stored, hollow, Ledger::Keep);
    let mut predicted = stored.clone();
    for op in &ops {
        if let Op::Update(step) = op {
            if patch::apply_step(&mut predicted, step) != Ok(true) {
                return Patch {
                    id: id_of(stored),
                    ops,
                };
            }
        }
    }
    let mut guards: Vec<Guard> = predicted
        .iter()
        .filter(|(k, _)| k.as_str() != "_id")
        .map(|(k, v)| Guard::is(k.clone(), Some(v)))
        .collect();
    guards.push(Guard::Fields(predicted.len()));
    ops.push(Op::Delete(guards));
    Patch {
        id: id_of(stored),
        ops,
    }
}

fn id_of(d: &Document) -> Bson {
    d.get("_id").cloned().unwrap_or(Bson::Null)
}

/// One change to one path, with the guards it needs and when it may run.
struct Atom {
    /// Ordering class: 0 sets and in-place replacements, 1 pulls, 2.. push
    /// runs; the ledger goes first or last.
    phase: u32,
    path: String,
    guards: Vec<Guard>,
    change: Change,
    bytes: usize,
}

enum Change {
    Set(Bson),
    Unset,
    Push(Vec<Bson>, Option<u32>),
    Pull(Option<String>, Vec<Bson>),
}

const FIRST: u32 = 0;
const LAST: u32 = u32::MAX;

struct Planner {
    arrays: Vec<(&'static str, Option<&'static str>)>,
    ledger: Ledger,
    atoms: Vec<Atom>,
}

fn diff(stored: &Document, wanted: &Document, ledger: Ledger) -> Vec<Op> {
    let mut planner = Planner {
        arrays: drawer::keyed_arrays(),
        ledger,
        atoms: Vec::new(),
    };
    planner.walk_doc("", stored, wanted);
    pack(planner.atoms)
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_string()
    } else {
        format!("{prefix}.{key}")
    }
}

impl Planner {
    fn walk_doc(&mut self, prefix: &str, stored: &Document, wanted: &Document) {
        for (k, want) in wanted {
            let path = join(prefix, k);
            match stored.get(k) {
                None => self.set(path, want, None),
                Some(had) if same(had, want) => {}
                Some(had) => self.walk_value(path, had, want),
            }
        }
        for (k, had) in stored {
            if !wanted.contains_key(k) {
                let path = join(prefix, k);
                if path == drawer::LEDGER {
                    self.ledger_atom(path, Change::Unset);
                } else {
                    let guards = vec![Guard::is(path.clone(), Some(had))];
                    self.push_atom(FIRST, path, guards, Change::Unset);
                }
            }
        }
    }

    fn walk_value(&mut self, path: String, had: &Bson, want: &Bson) {
        let keyed = self
            .arrays
            .iter()
            .find(|(p, _)| *p == path)
            .map(|(_, k)| *k);
        match (had, want, keyed) {
            _ if path == drawer::LEDGER => self.set(path, want, Some(had)),
            (Bson::Array(s), Bson::Array(t), Some(key)) => self.array(&path, key, s, t),
            (Bson::Document(s), Bson::Document(t), None) => self.walk_doc(&path, s, t),
            _ => self.set(path, want, Some(had)),
        }
    }

    fn set(&mut self, path: String, value: &Bson, had: Option<&Bson>) {
        if path == drawer::LEDGER {
            self.ledger_atom(path, Change::Set(value.clone()));
            return;
        }
        let guards = vec![Guard::is(path.clone(), had)];
        self.push_atom(FIRST, path, guards, Change::Set(value.clone()));
    }

    fn ledger_atom(&mut self, path: String, change: Change) {
        let phase = match self.ledger {
            Ledger::First => FIRST,
            Ledger::Last => LAST,
            Ledger::Keep => return,
        };
        self.push_atom(phase, path, Vec::new(), change);
    }

    fn push_atom(&mut self, phase: u32, path: String, guards: Vec<Guard>, change: Change) {
        let bytes = weight(&path, &guards, &change);
        self.atoms.push(Atom {
            phase,
            path,
            guards,
            change,
            bytes,
        });
    }

    /// A keyed array: pull what `wanted` lacks, replace changed entries in
    /// place, insert new (or moved) entries in runs, each guarded by key.
    fn array(&mut self, path: &str, key: Option<&'static str>, s: &[Bson], t: &[Bson]) {
        let key_of = |e: &Bson| -> Option<Bson> {
            match key {
                None => Some(e.clone()),
                Some(k) => e.as_document()?.get(k).cloned(),
            }
        };
        let (Some(s_keys), Some(t_keys)) = (unique_keys(s, &key_of), unique_keys(t, &key_of))
        else {
            self.positional(path, key, s, t, &key_of);
            return;
        };
        let in_stored: HashMap<Vec<u8>, usize> = s_keys
            .iter()
            .enumerate()
            .map(|(i, (id, _))| (id.clone(), i))
            .collect();
        let in_wanted: HashMap<&Vec<u8>, usize> = t_keys
            .iter()
            .enumerate()
            .map(|(j, (id, _))| (id, j))
            .collect();
        // Entries both have, in wanted's order, with their stored index; the
        // longest run that keeps stored order stays where it is.
        let common: Vec<(usize, usize)> = t_keys
            .iter()
            .enumerate()
            .filter_map(|(j, (id, _))| in_stored.get(id).map(|&i| (j, i)))
            .collect();
        let stays = longest_increasing(&common.iter().map(|(_, i)| *i).collect::<Vec<_>>());
        let mut staying = vec![false; t.len()];
        let mut pulls: Vec<Bson> = s_keys
            .iter()
            .filter(|(id, _)| !in_wanted.contains_key(id))
            .map(|(_, k)| k.clone())
            .collect();
        for (n, &(j, i)) in common.iter().enumerate() {
            if stays.contains(&n) {
                staying[j] = true;
                if !same(&s[i], &t[j]) {
                    self.replace(path, key, i, &s[i], &t[j]);
                }
            } else {
                pulls.push(s_keys[i].1.clone());
            }
        }
        if !pulls.is_empty() {
            let change = Change::Pull(key.map(str::to_string), pulls);
            self.push_atom(1, path.to_string(), Vec::new(), change);
        }
        let mut run_start = None;
        let mut phase = 2;
        for j in 0..=t.len() {
            let moving = j < t.len() && !staying[j];
            match (moving, run_start) {
                (true, None) => run_start = Some(j),
                (false, Some(start)) => {
                    let keys = t_keys[start..j].iter().map(|(_, k)| k.clone()).collect();
                    let position = (j < t.len()).then_some(start as u32);
                    self.insert_run(path, key, &t[start..j], keys, position, phase);
                    phase += 1;
                    run_start = None;
                }
                _ => {}
            }
        }
    }

    /// An entry changed in place, guarded by the key (or, for an entry
    /// without one, the value) read at that index.
    fn replace(&mut self, path: &str, key: Option<&str>, index: usize, had: &Bson, want: &Bson) {
        let at = format!("{path}.{index}");
        let by_key = key.and_then(|k| Some((k, had.as_document()?.get(k)?)));
        let guard = match by_key {
            Some((k, value)) => Guard::is(format!("{at}.{k}"), Some(value)),
            None => Guard::is(at.clone(), Some(had)),
        };
        self.push_atom(FIRST, at, vec![guard], Change::Set(want.clone()));
    }

    /// New entries inserted together, in chunks that fit one step each.
    fn insert_run(
        &mut self,
        path: &str,
        key: Option<&str>,
        entries: &[Bson],
        keys: Vec<Bson>,
        position: Option<u32>,
        phase: u32,
    ) {
        let mut start = 0;
        while start < entries.len() {
            let mut end = start;
            let mut bytes = 0;
            while end < entries.len()
                && (end == start || bytes + size(&entries[end]) < STEP_BUDGET / 2)
            {
                bytes += size(&entries[end]);
                end += 1;
            }
            let guard = Guard::NoneOf {
                path: path.to_string(),
                key: key.map(str::to_string),
                values: keys[start..end].to_vec(),
            };
            let at = position.map(|p| p + start as u32);
            let change = Change::Push(entries[start..end].to_vec(), at);
            self.push_atom(phase, path.to_string(), vec![guard], change);
            start = end;
        }
    }

    /// An array whose keys repeat or are missing: in-place changes and an
    /// appended tail by position (guarded by the length read), else the
    /// whole array guarded by its value.
    fn positional(
        &mut self,
        path: &str,
        key: Option<&str>,
        s: &[Bson],
        t: &[Bson],
        key_of: &dyn Fn(&Bson) -> Option<Bson>,
    ) {
        let in_place = t.len() >= s.len()
            && s.iter().zip(t).all(|(a, b)| {
                same(a, b) || matches!((key_of(a), key_of(b)), (Some(x), Some(y)) if same(&x, &y))
            });
        if !in_place {
            let had = Bson::Array(s.to_vec());
            self.set(path.to_string(), &Bson::Array(t.to_vec()), Some(&had));
            return;
        }
        for (i, (a, b)) in s.iter().zip(t).enumerate() {
            if !same(a, b) {
                self.replace(path, key, i, a, b);
            }
        }
        if t.len() > s.len() {
            let guard = Guard::Len {
                path: path.to_string(),
                len: s.len(),
            };
            let change = Change::Push(t[s.len()..].to_vec(), None);
            self.push_atom(2, path.to_string(), vec![guard], change);
        }
    }
}

/// The keys of an array's entries with their identity (MongoDB equality),
/// or `None` when an entry has no key or two entries share one.
fn unique_keys(
    items: &[Bson],
    key_of: &dyn Fn(&Bson) -> Option<Bson>,
) -> Option<Vec<(Vec<u8>, Bson)>> {
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::with_capacity(items.len());
    for e in items {
        let k = key_of(e)?;
        let id = sort_key(Some(&k));
        if !seen.insert(id.clone()) {
            return None;
        }
        out.push((id, k));
    }
    Some(out)
}

/// Indexes (into `seq`) of one longest strictly increasing subsequence.
fn longest_increasing(seq: &[usize]) -> Vec<usize> {
    let mut tails: Vec<usize> = Vec::new();
    let mut prev = vec![usize::MAX; seq.len()];
    for (i, &x) in seq.iter().enumerate() {
        let at = tails.partition_point(|&t| seq[t] < x);
        if at > 0 {
            prev[i] = tails[at - 1];
        }
        if at == tails.len() {
            tails.push(i);
        } else {
            tails[at] = i;
        }
    }
    let mut out = Vec::with_capacity(tails.len());
    let mut at = tails.last().copied().unwrap_or(usize::MAX);
    while at != usize::MAX {
        out.push(at);
        at = prev[at];
    }
    out.reverse();
    out
}

/// Packs atoms into as few steps as the rules allow: in phase order, a step
/// never touches one path twice (nor a path inside another) and stays
/// under the statement budget.
fn pack(mut atoms: Vec<Atom>) -> Vec<Op> {
    let ledger_rank = |a: &Atom| match (a.path == drawer::LEDGER, a.phase) {
        (true, FIRST) => 0,
        (true, _) => 2,
        _ => 1,
    };
    atoms.sort_by_key(|a| (a.phase, ledger_rank(a)));
    let mut steps: Vec<(Step, usize)> = Vec::new();
    for atom in atoms {
        let fits = steps.last().is_some_and(|(step, bytes)| {
            bytes + atom.bytes <= STEP_BUDGET
                && step.paths().all(|p| !patch::overlaps(p, &atom.path))
        });
        if !fits {
            steps.push((Step::default(), 0));
        }
        let Some((step, bytes)) = steps.last_mut() else {
            continue;
        };
        *bytes += atom.bytes;
        step.guards.extend(atom.guards);
        match atom.change {
            Change::Set(v) => step.set.push((atom.path, v)),
            Change::Unset => step.unset.push(atom.path),
            Change::Push(entries, position) => step.push.push(Push {
                path: atom.path,
                entries,
                position,
            }),
            Change::Pull(key, values) => step.pull.push(Pull {
                path: atom.path,
                key,
                values,
            }),
        }
    }
    steps
        .into_iter()
        .map(|(step, _)| Op::Update(step))
        .collect()
}

fn weight(path: &str, guards: &[Guard], change: &Change) -> usize {
    let guard_bytes: usize = guards
        .iter()
        .map(|g| match g {
            Guard::Is { value, .. } => value.as_ref().map_or(16, size),
            Guard::NoneOf { values, .. } => values.iter().map(size).sum(),
            Guard::Len { .. } | Guard::Fields(_) => 16,
        })
        .sum();
    let change_bytes = match change {
        Change::Set(v) => size(v),
        Change::Unset => 8,
        Change::Push(entries, _) => entries.iter().map(size).sum(),
        Change::Pull(_, values) => values.iter().map(size).sum(),
    };
    2 * path.len() + guard_bytes + change_bytes + 96
}

/// The encoded size of `{v: value}` (0 when it cannot be encoded).
fn size(value: &Bson) -> usize {
    crate::encoded::value_len(value).map_or(0, |n| n + 8)
}

/// Same type, same value, same field order.
fn same(a: &Bson, b: &Bson) -> bool {
    crate::encoded::same(a, b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::doc;

    fn apply(stored: &Document, p: &Patch) -> Document {
        let mut d = stored.clone();
        for op in &p.ops {
            match op {
                Op::Update(step) => assert_eq!(patch::apply_step(&mut d, step), Ok(true)),
                other => panic!("unexpected {other:?}"),
            }
        }
        d
    }

    fn drawer(shared: Vec<Bson>) -> Document {
        doc! {
            "_id": "client_1",
            "user_id": "1",
            "profile": { "sexo": Bson::Null },
            "services": { "shared_questionnaires": shared },
            "meta": { "updated_at": 1 },
        }
    }

    fn entry(id: &str) -> Bson {
        Bson::Document(doc! { "submission_id": id, "v": 1 })
    }

    #[test]
    fn the_plan_reproduces_the_wanted_drawer_and_names_only_changes() {
        let stored = drawer(vec![entry("app")]);
        let mut wanted = drawer(vec![entry("app"), entry("mine")]);
        wanted
            .get_document_mut("profile")
            .unwrap()
            .insert("sexo", "Mujer");
        wanted
            .get_document_mut("meta")
            .unwrap()
            .insert("migration", doc! { "run_id": "r" });
        let p = plan_write(Some(&stored), &wanted);
        assert_eq!(p.ops.len(), 1, "one step: {p:?}");
        assert_eq!(apply(&stored, &p), wanted);
        let Op::Update(step) = &p.ops[0] else {
            unreachable!()
        };
        assert!(
            step.set.iter().all(|(k, _)| k != "services"),
            "no array rewrite"
        );
    }

    #[test]
    fn an_application_write_between_read_and_write_survives_or_trips_a_guard() {
        let stored = drawer(vec![entry("app")]);
        let mut wanted = drawer(vec![entry("app"), entry("mine")]);
        wanted
            .get_document_mut("profile")
            .unwrap()
            .insert("sexo", "Mujer");
        let p = plan_write(Some(&stored), &wanted);
        let Op::Update(step) = &p.ops[0] else {
            unreachable!()
        };
        let mut concurrent = stored.clone();
        concurrent.insert("app_field", true);
        concurrent
            .get_document_mut("services")
            .unwrap()
            .get_array_mut("shared_questionnaires")
            .unwrap()
            .push(entry("app2"));
        assert_eq!(patch::apply_step(&mut concurrent, step), Ok(true));
        assert_eq!(concurrent.get_bool("app_field"), Ok(true));
        let ids: Vec<&str> = concurrent
            .get_document("services")
            .unwrap()
            .get_array("shared_questionnaires")
            .unwrap()
            .iter()
            .map(|e| e.as_document().unwrap().get_str("submission_id").unwrap())
            .collect();
        assert_eq!(ids, ["app", "app2", "mine"]);
        let mut changed = stored.clone();
        changed
            .get_document_mut("profile")
            .unwrap()
            .insert("sexo", "Otro");
        assert_eq!(patch::apply_step(&mut changed, step), Ok(false));
    }

    #[test]
    fn moved_and_removed_entries_are_pulled_and_reinserted_in_place() {
        let snap = |id: &str| Bson::Document(doc! { "snapshot_id": id });
        let path = |d: &mut Document, items: Vec<Bson>| {
            d.insert("services", doc! { "training": { "snapshots": items } });
        };
        let mut stored = drawer(vec![]);
        path(
            &mut stored,
            vec![snap("f1"), snap("o1"), snap("f2"), snap("o2"), snap("gone")],
        );
        let mut wanted = stored.clone();
        path(
            &mut wanted,
            vec![snap("f1"), snap("o1"), snap("o2"), snap("o3"), snap("f2")],
        );
        let p = plan_write(Some(&stored), &wanted);
        assert_eq!(apply(&stored, &p), wanted);
    }

    #[test]
    fn a_delete_is_guarded_by_what_the_undo_leaves() {
        let mut stored = drawer(vec![entry("mine")]);
        stored
            .get_document_mut("meta")
            .unwrap()
            .insert("migration", doc! { "created_drawer": true });
        let hollow = drawer(vec![]);
        let p = plan_delete(&stored, &hollow);
        let Some(Op::Delete(guards)) = p.ops.last() else {
            panic!("{p:?}")
        };
        let left = {
            let mut d = stored.clone();
            for op in &p.ops[..p.ops.len() - 1] {
                let Op::Update(step) = op else { unreachable!() };
                assert_eq!(patch::apply_step(&mut d, step), Ok(true));
            }
            d
        };
        assert!(patch::guards_hold(&left, guards));
        assert!(left.get_document("meta").unwrap().contains_key("migration"));
        let mut later = left.clone();
        later.insert("app_field", 1);
        assert!(!patch::guards_hold(&later, guards), "a new field keeps it");
    }
}
