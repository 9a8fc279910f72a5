//! The transform-aware comparison behind `phase2 validate`: for every legacy
//! document of a user, is it in the stored drawer as the mapping says it
//! should be? Pure logic: the caller passes the documents in.
//!
//! The expected drawer is rebuilt from the legacy documents alone; the stored
//! one may also hold dual-write entries and foreign snapshots, so the two are
//! compared entry by entry under stable keys, not as whole documents:
//! - a submission: its `shared_questionnaires` entry holds it verbatim, and
//!   if it is the user's earliest, `inicial` holds its ten blocks;
//! - a follow-up: its `followups` entry has the expected fields;
//! - a training plan: listed in `training.plans`, with a snapshot (in the
//!   drawer or its archive) whose context is the expected one;
//! - a nutrition plan: listed in `nutrition.plans`, and paired the same way.

use crate::drawer::LegacyKind;
use crate::store::value_at_path;
use bson::{Bson, Document};

/// The three match rates the plan's thresholds apply to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Family {
    /// Initial questionnaires.
    Questionnaires,
    /// Follow-ups.
    Followups,
    /// Training and nutrition plans.
    Plans,
}

impl Family {
    /// The family a legacy collection's documents are counted in.
    pub fn of(kind: LegacyKind) -> Family {
        match kind {
            LegacyKind::Submission => Family::Questionnaires,
            LegacyKind::Followup => Family::Followups,
            LegacyKind::TrainingPlan | LegacyKind::NutritionPlan => Family::Plans,
        }
    }
}

/// The verdict on one legacy document: the drawer paths that do not hold
/// what they should (empty: it matches). Paths only, never values.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    /// Which collection the document came from.
    pub kind: LegacyKind,
    /// The document's `_id`, rendered.
    pub id: String,
    /// Drawer paths that differ or are missing.
    pub paths: Vec<String>,
    /// The document's own entry (its `shared_questionnaires`, `followups` or
    /// `plans` entry) is not in the drawer at all: unless it is in
    /// quarantine, the document is unaccounted for.
    pub missing: bool,
}

impl Finding {
    /// Whether the document is in the drawer as expected.
    pub fn matches(&self) -> bool {
        self.paths.is_empty()
    }
}

/// What the comparison reads of one legacy document, taken before the
/// build moves the documents into the drawer: its kind and `_id`, the
/// `snapshot_id` a training plan carries, and a submission whole (its
/// drawer entry holds it verbatim). Copying every document whole for the
/// comparison was an eighth of a validation; submissions are a tenth of
/// the legacy bytes.
pub struct Original {
    kind: LegacyKind,
    id: Option<Bson>,
    snapshot_id: Option<Bson>,
    submission: Option<Document>,
}

impl Original {
    /// What the comparison needs of `doc`, a legacy document of this kind.
    pub fn of(kind: LegacyKind, doc: &Document) -> Original {
        Original {
            kind,
            id: doc.get("_id").cloned(),
            snapshot_id: match kind {
                LegacyKind::TrainingPlan => doc.get("snapshot_id").cloned(),
                _ => None,
            },
            submission: (kind == LegacyKind::Submission).then(|| doc.clone()),
        }
    }
}

/// Checks every legacy document of one user against the stored drawer.
/// `archived` holds the archive records of this drawer; `skip` the ids the
/// builder sends to quarantine (they are checked against the quarantine).
pub fn compare_user(
    docs: &[Original],
    expected: &Document,
    stored: Option<&Document>,
    archived: &[Document],
    skip: &[Bson],
) -> Vec<Finding> {
    let empty = Document::new();
    let stored = stored.unwrap_or(&empty);
    let snapshots = all_snapshots(stored, archived);
    docs.iter()
        .filter(|doc| !doc.id.as_ref().is_some_and(|id| skip.contains(id)))
        .map(|doc| {
            let (kind, id) = (&doc.kind, doc.id.clone().unwrap_or(Bson::Null));
            let own = match kind {
                LegacyKind::Submission => ("services.shared_questionnaires", "submission_id"),
                LegacyKind::Followup => {
                    ("services.training.questionnaires.followups", "followup_id")
                }
                LegacyKind::TrainingPlan => ("services.training.plans", "plan_id"),
                LegacyKind::NutritionPlan => ("services.nutrition.plans", "plan_id"),
            };
            let missing = entry(stored, own.0, own.1, &id).is_none();
            let paths = match kind {
                LegacyKind::Submission => {
                    check_submission(doc.submission.as_ref(), &id, expected, stored)
                }
                LegacyKind::Followup => check_followup(&id, expected, stored),
                LegacyKind::TrainingPlan => {
                    check_training_plan(doc.snapshot_id.as_ref(), &id, expected, stored, &snapshots)
                }
                LegacyKind::NutritionPlan => {
                    check_nutrition_plan(&id, expected, stored, &snapshots)
                }
            };
            Finding {
                kind: *kind,
                id: render_id(&id),
                paths,
                missing,
            }
        })
        .collect()
}

/// One step of a path into a drawer: a field, or the entry of a keyed array.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// A document field.
    Field(String),
    /// The entry of a keyed array whose key field holds this value.
    Key(Bson),
}

/// The field that keys the entries of each array the builder merges.
const ARRAY_KEYS: [(&str, &str); 6] = [
    ("services.shared_questionnaires", "submission_id"),
    ("services.training.questionnaires.followups", "followup_id"),
    ("services.training.measurements", "measurement_id"),
    ("services.training.snapshots", "snapshot_id"),
    ("services.training.plans", "plan_id"),
    ("services.nutrition.plans", "plan_id"),
];

/// Renders a path of steps: `services.training.measurements[measure_x].data`.
pub fn render_path(steps: &[Step]) -> String {
    let mut out = String::new();
    for step in steps {
        match step {
            Step::Field(f) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(f);
            }
            Step::Key(k) => out.push_str(&format!("[{}]", render_id(k))),
        }
    }
    out
}

/// Where `stored` differs from `want`, field by field and, in the keyed
/// arrays, entry by entry: paths only, never values.
pub fn differing_paths(stored: &Document, want: &Document) -> Vec<Vec<Step>> {
    let mut out = Vec::new();
    diff_docs(stored, want, &mut Vec::new(), &mut out);
    out
}

fn dotted(path: &[Step]) -> String {
    path.iter()
        .filter_map(|s| match s {
            Step::Field(f) => Some(f.as_str()),
            Step::Key(_) => None,
        })
        .collect::<Vec<_>>()
        .join(".")
}

fn diff_docs(stored: &Document, want: &Document, path: &mut Vec<Step>, out: &mut Vec<Vec<Step>>) {
    let keys = want
        .keys()
        .chain(stored.keys().filter(|k| !want.contains_key(*k)));
    for key in keys {
        path.push(Step::Field(key.clone()));
        diff_values(stored.get(key), want.get(key), path, out);
        path.pop();
    }
}

fn diff_values(
    stored: Option<&Bson>,
    want: Option<&Bson>,
    path: &mut Vec<Step>,
    out: &mut Vec<Vec<Step>>,
) {
    match (stored, want) {
        (Some(Bson::Document(a)), Some(Bson::Document(b))) => diff_docs(a, b, path, out),
        (Some(Bson::Array(a)), Some(Bson::Array(b))) if a != b => {
            let key = ARRAY_KEYS
                .iter()
                .find(|(p, _)| *p == dotted(path))
                .map(|(_, k)| *k);
            match key {
                Some(k) => diff_keyed(a, b, k, path, out),
                None => out.push(path.clone()),
            }
        }
        (a, b) if a != b => out.push(path.clone()),
        _ => {}
    }
}

fn diff_keyed(
    stored: &[Bson],
    want: &[Bson],
    key: &str,
    path: &mut Vec<Step>,
    out: &mut Vec<Vec<Step>>,
) {
    let key_of = |e: &Bson| e.as_document().and_then(|d| d.get(key)).cloned();
    let find =
        |list: &[Bson], k: &Bson| list.iter().find(|e| key_of(e).as_ref() == Some(k)).cloned();
    let mut keys: Vec<Bson> = want.iter().filter_map(key_of).collect();
    for k in stored.iter().filter_map(key_of) {
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    for k in keys {
        path.push(Step::Key(k.clone()));
        diff_values(
            find(stored, &k).as_ref(),
            find(want, &k).as_ref(),
            path,
            out,
        );
        path.pop();
    }
    let order = |list: &[Bson]| list.iter().filter_map(key_of).collect::<Vec<_>>();
    if order(stored) != order(want) && !out.iter().any(|p| p.starts_with(path)) {
        out.push(path.clone());
    }
}

/// Where a differing drawer path comes from: one legacy document, or the
/// user's documents as a whole (flags, status, services, bookkeeping).
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    /// Derived from this document (`kind`, `_id` as an id key).
    Document(LegacyKind, String),
    /// Derived from all of the user's documents.
    Drawer,
}

/// What finding a user's legacy documents by id needs, kept apart from the
/// documents themselves so that they can move into a rebuild: each one's
/// kind, id key and `_id`, and the submission the profile comes from.
pub struct LegacyIds {
    docs: Vec<(LegacyKind, String, Bson)>,
    latest_submission: Option<String>,
}

impl LegacyIds {
    /// The ids of these documents.
    pub fn of(docs: &[(LegacyKind, &Document)]) -> LegacyIds {
        LegacyIds {
            docs: docs
                .iter()
                .map(|(k, d)| {
                    let id = d.get("_id").cloned().unwrap_or(Bson::Null);
                    (*k, crate::mapping::doc_id_key(d), id)
                })
                .collect(),
            latest_submission: latest_submission(docs),
        }
    }

    /// The kind of the document of one of these kinds with this id key.
    fn kind_of(&self, kinds: &[LegacyKind], key: &str) -> Option<LegacyKind> {
        self.docs
            .iter()
            .find(|(k, d, _)| kinds.contains(k) && d == key)
            .map(|(k, _, _)| *k)
    }

    /// Whether the document of this kind and id key renders as `rendered`.
    pub fn renders_as(&self, kind: LegacyKind, key: &str, rendered: &str) -> bool {
        self.docs
            .iter()
            .any(|(k, d, id)| *k == kind && d == key && render_id(id) == rendered)
    }
}

/// Which legacy document a drawer path is derived from. `docs` are the
/// user's documents, `drawer` the drawer the builder derives (for the
/// snapshot → plan link and which submission is `inicial`).
pub fn source_of(path: &[Step], docs: &LegacyIds, drawer: &Document) -> Source {
    let find = |kinds: &[LegacyKind], key: &str| {
        docs.kind_of(kinds, key)
            .map_or(Source::Drawer, |k| Source::Document(k, key.to_string()))
    };
    let key = path.iter().find_map(|s| match s {
        Step::Key(k) => Some(crate::mapping::id_key(k)),
        Step::Field(_) => None,
    });
    let field = dotted(path);
    let subs = [LegacyKind::Submission];
    let inicial_id = value_at_path(
        drawer,
        "services.training.questionnaires.inicial.submission_id",
    )
    .map(crate::mapping::id_key);
    match (field.as_str(), key) {
        (f, Some(k)) if f.starts_with("services.shared_questionnaires") => {
            find(&[LegacyKind::Submission, LegacyKind::Followup], &k)
        }
        (f, Some(k)) if f.starts_with("services.training.questionnaires.followups") => {
            find(&[LegacyKind::Followup], &k)
        }
        (f, Some(k)) if f.starts_with("services.training.measurements") => {
            match (
                k.strip_prefix("measure_migrated_"),
                k.strip_prefix("measure_followup_"),
            ) {
                (Some(id), _) => find(&subs, id),
                (_, Some(id)) => find(&[LegacyKind::Followup], id),
                _ => Source::Drawer,
            }
        }
        (f, Some(k)) if f.starts_with("services.training.snapshots") => {
            let plan = all_snapshots(drawer, &[])
                .into_iter()
                .find(|s| s.get("snapshot_id").map(crate::mapping::id_key).as_deref() == Some(&k))
                .and_then(|s| generated(s, "training_plan_id"))
                .map(crate::mapping::id_key);
            match plan {
                Some(p) => find(&[LegacyKind::TrainingPlan], &p),
                None => Source::Drawer,
            }
        }
        (f, Some(k)) if f.starts_with("services.training.plans") => {
            find(&[LegacyKind::TrainingPlan], &k)
        }
        (f, Some(k)) if f.starts_with("services.nutrition.plans") => {
            find(&[LegacyKind::NutritionPlan], &k)
        }
        (f, _)
            if f.starts_with("services.training.questionnaires.inicial")
                || f == "services.training.enrolled_at"
                || f == "profile.created_at" =>
        {
            inicial_id.map_or(Source::Drawer, |id| find(&subs, &id))
        }
        (f, _) if f.starts_with("profile.") => match docs.latest_submission.clone() {
            Some(id) => find(&subs, &id),
            None => Source::Drawer,
        },
        _ => Source::Drawer,
    }
}

/// The id key of the submission the profile comes from: the latest by
/// `submitted_at`, then `_id` (the builder's order).
fn latest_submission(docs: &[(LegacyKind, &Document)]) -> Option<String> {
    docs.iter()
        .filter(|(k, d)| *k == LegacyKind::Submission && crate::drawer::triage(*k, d).is_ok())
        .map(|(_, d)| {
            (
                crate::mapping::date_millis(d.get("submitted_at")),
                crate::mapping::doc_id_key(d),
            )
        })
        .max()
        .map(|(_, id)| id)
}

/// Entries the migration added to the stored drawer (its
/// `meta.migration.added`) that no legacy document of the user explains any
/// more: a misspelled collection, or documents deleted since.
pub fn unexplained_entries(docs: &LegacyIds, stored: &Document) -> Vec<String> {
    let has = |kinds: &[LegacyKind], key: &str| docs.kind_of(kinds, key).is_some();
    let added = match value_at_path(stored, "meta.migration.added") {
        Some(Bson::Array(items)) => items.as_slice(),
        _ => &[],
    };
    let mut out = Vec::new();
    for record in added.iter().filter_map(Bson::as_document) {
        let Ok(array) = record.get_str("path") else {
            continue;
        };
        for key in record.get_array("keys").into_iter().flatten() {
            let k = crate::mapping::id_key(key);
            let explained = match array {
                "services.shared_questionnaires" => {
                    has(&[LegacyKind::Submission, LegacyKind::Followup], &k)
                }
                "services.training.questionnaires.followups" => has(&[LegacyKind::Followup], &k),
                "services.training.measurements" => {
                    match (
                        k.strip_prefix("measure_migrated_"),
                        k.strip_prefix("measure_followup_"),
                    ) {
                        (Some(id), _) => has(&[LegacyKind::Submission], id),
                        (_, Some(id)) => has(&[LegacyKind::Followup], id),
                        _ => false,
                    }
                }
                // A snapshot no longer in the drawer was archived by an older version.
                "services.training.snapshots" => all_snapshots(stored, &[])
                    .into_iter()
                    .find(|s| s.get("snapshot_id") == Some(key))
                    .map(|s| generated(s, "training_plan_id"))
                    .is_none_or(|p| {
                        p.is_some_and(|p| {
                            has(&[LegacyKind::TrainingPlan], &crate::mapping::id_key(p))
                        })
                    }),
                "services.training.plans" => has(&[LegacyKind::TrainingPlan], &k),
                "services.nutrition.plans" => has(&[LegacyKind::NutritionPlan], &k),
                _ => true,
            };
            if !explained {
                out.push(format!("{array}[{}]", render_id(key)));
            }
        }
    }
    out
}

fn check_submission(
    doc: Option<&Document>,
    id: &Bson,
    expected: &Document,
    stored: &Document,
) -> Vec<String> {
    let mut paths = Vec::new();
    let shared = "services.shared_questionnaires";
    match entry(stored, shared, "submission_id", id) {
        None => paths.push(format!("{shared}[{}]", render_id(id))),
        Some(e) if e.get_document("raw_payload").ok() != doc => {
            paths.push(format!("{shared}[{}].raw_payload", render_id(id)))
        }
        Some(_) => {}
    }
    let inicial = "services.training.questionnaires.inicial";
    let is_inicial =
        |d: &Document| value_at_path(d, &format!("{inicial}.submission_id")) == Some(id);
    if is_inicial(expected) {
        if !is_inicial(stored) {
            paths.push(format!("{inicial}.submission_id"));
        } else if !same_value(
            value_at_path(stored, &format!("{inicial}.responses")),
            value_at_path(expected, &format!("{inicial}.responses")),
        ) {
            paths.push(format!("{inicial}.responses"));
        }
    }
    paths
}

fn check_followup(id: &Bson, expected: &Document, stored: &Document) -> Vec<String> {
    let list = "services.training.questionnaires.followups";
    let Some(want) = entry(expected, list, "followup_id", id) else {
        return vec![format!("{list}[{}] (not built)", render_id(id))];
    };
    match entry(stored, list, "followup_id", id) {
        None => vec![format!("{list}[{}]", render_id(id))],
        Some(got) => differing_fields(want, got, &format!("{list}[{}]", render_id(id))),
    }
}

fn check_training_plan(
    snapshot_id: Option<&Bson>,
    id: &Bson,
    expected: &Document,
    stored: &Document,
    snapshots: &[&Document],
) -> Vec<String> {
    let mut paths = Vec::new();
    let list = "services.training.plans";
    if entry(stored, list, "plan_id", id).is_none() {
        paths.push(format!("{list}[{}]", render_id(id)));
    }
    let want = all_snapshots(expected, &[])
        .into_iter()
        .find(|s| generated(s, "training_plan_id") == Some(id));
    let got = snapshots
        .iter()
        .find(|s| generated(s, "training_plan_id") == Some(id));
    match (want, got) {
        (Some(_), None) => paths.push(format!(
            "services.training.snapshots[training_plan_id={}]",
            render_id(id)
        )),
        (Some(w), Some(g)) => {
            if !same_but_meta(w.get("client_context"), g.get("client_context")) {
                paths.push(format!(
                    "services.training.snapshots[{}].client_context",
                    g.get_str("snapshot_id").unwrap_or("?")
                ));
            }
            if snapshot_id != g.get("snapshot_id") {
                paths.push("legacy training plan snapshot_id".into());
            }
        }
        _ => {}
    }
    paths
}

fn check_nutrition_plan(
    id: &Bson,
    expected: &Document,
    stored: &Document,
    snapshots: &[&Document],
) -> Vec<String> {
    let list = "services.nutrition.plans";
    let mut paths = Vec::new();
    if entry(stored, list, "plan_id", id).is_none() {
        paths.push(format!("{list}[{}]", render_id(id)));
    }
    let paired = |s: &[&Document]| {
        s.iter()
            .any(|s| generated(s, "nutrition_plan_id") == Some(id))
    };
    if paired(&all_snapshots(expected, &[])) && !paired(snapshots) {
        paths.push(format!(
            "services.training.snapshots[nutrition_plan_id={}]",
            render_id(id)
        ));
    }
    paths
}

/// Fields of the expected entry that the stored entry lacks or holds differently.
fn differing_fields(want: &Document, got: &Document, prefix: &str) -> Vec<String> {
    want.iter()
        .filter(|(k, v)| !same_value(got.get(k.as_str()), Some(*v)))
        .map(|(k, _)| format!("{prefix}.{k}"))
        .collect()
}

/// `a == b`, answered at once when both are the same value in memory: a
/// stored drawer that is the fresh build is compared with itself (and so a
/// NaN it holds matches, as its bytes do).
fn same_value(a: Option<&Bson>, b: Option<&Bson>) -> bool {
    match (a, b) {
        (Some(x), Some(y)) if std::ptr::eq(x, y) => true,
        _ => a == b,
    }
}

/// Whether two snapshot contexts are equal but for their `meta` (ids and
/// versions differ when a drawer already held snapshots of the new system;
/// the validator checks those). Equal as `Bson`'s `==` has it (fields in any
/// order), without copying the contexts to drop `meta` from them.
fn same_but_meta(a: Option<&Bson>, b: Option<&Bson>) -> bool {
    match (a, b) {
        (Some(x), Some(y)) if std::ptr::eq(x, y) => true,
        (Some(Bson::Document(a)), Some(Bson::Document(b))) => {
            let fields = |d: &Document| d.keys().filter(|k| *k != "meta").count();
            fields(a) == fields(b)
                && a.iter()
                    .filter(|(k, _)| *k != "meta")
                    .all(|(k, v)| b.get(k) == Some(v))
        }
        (a, b) => a == b,
    }
}

fn generated<'a>(snapshot: &'a Document, key: &str) -> Option<&'a Bson> {
    snapshot.get_document("plans_generated").ok()?.get(key)
}

/// The drawer's snapshots, an archived one (a stub in the drawer) replaced
/// by its full form from the archive, plus archived ones with no stub.
fn all_snapshots<'a>(drawer: &'a Document, archived: &'a [Document]) -> Vec<&'a Document> {
    let full: Vec<&Document> = archived
        .iter()
        .filter_map(|a| a.get_document("snapshot").ok())
        .collect();
    let id = |s: &Document| s.get("snapshot_id").cloned();
    let mut out: Vec<&Document> = match value_at_path(drawer, "services.training.snapshots") {
        Some(Bson::Array(items)) => items
            .iter()
            .filter_map(Bson::as_document)
            .map(|s| match s.get_bool("archived") {
                Ok(true) => full.iter().copied().find(|f| id(f) == id(s)).unwrap_or(s),
                _ => s,
            })
            .collect(),
        _ => Vec::new(),
    };
    for f in full {
        if !out.iter().any(|s| id(s) == id(f)) {
            out.push(f);
        }
    }
    out
}

fn entry<'a>(drawer: &'a Document, path: &str, key: &str, id: &Bson) -> Option<&'a Document> {
    match value_at_path(drawer, path)? {
        Bson::Array(items) => items
            .iter()
            .filter_map(Bson::as_document)
            .find(|e| e.get(key) == Some(id)),
        _ => None,
    }
}

/// An id as text: strings as they are, anything else as relaxed JSON.
pub fn render_id(id: &Bson) -> String {
    match id {
        Bson::String(s) => s.clone(),
        other => crate::extjson::to_json(other).to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drawer::{build, BuildOptions, LegacyUser};
    use bson::{doc, DateTime};

    #[test]
    fn paths_are_traced_to_documents_by_their_ids_alone() {
        let sub = |id: &str, millis: i64| {
            doc! { "_id": id, "user_id": "u", "submitted_at": DateTime::from_millis(millis), "responses": {} }
        };
        let (early, late) = (sub("s1", 1_000), sub("s2", 2_000));
        let plan = doc! { "_id": 7, "user_id": "u" };
        let docs = [
            (LegacyKind::Submission, &late),
            (LegacyKind::Submission, &early),
            (LegacyKind::TrainingPlan, &plan),
        ];
        let ids = LegacyIds::of(&docs);
        let field = |f: &str| vec![Step::Field(f.to_string())];
        let drawer = Document::new();
        let profile = [field("profile"), field("edad")].concat();
        assert_eq!(
            source_of(&profile, &ids, &drawer),
            Source::Document(LegacyKind::Submission, "s2".into()),
            "the profile comes from the latest submission"
        );
        let plans = |key: Bson| {
            let mut p = [field("services"), field("training"), field("plans")].concat();
            p.push(Step::Key(key));
            p
        };
        assert_eq!(
            source_of(&plans(Bson::Int32(7)), &ids, &drawer),
            Source::Document(
                LegacyKind::TrainingPlan,
                crate::mapping::id_key(&Bson::Int32(7))
            )
        );
        assert_eq!(
            source_of(&plans(Bson::Int32(8)), &ids, &drawer),
            Source::Drawer,
            "no plan 8"
        );
        assert!(ids.renders_as(LegacyKind::Submission, "s1", "s1"));
        assert!(!ids.renders_as(LegacyKind::TrainingPlan, "s1", "s1"));
    }

    /// The comparison `same_but_meta` replaced: copy both, drop `meta`, `==`.
    fn stripped_equal(a: Option<&Bson>, b: Option<&Bson>) -> bool {
        let strip = |v: &Bson| match v {
            Bson::Document(d) => {
                let mut d = d.clone();
                d.remove("meta");
                Bson::Document(d)
            }
            other => other.clone(),
        };
        a.map(strip) == b.map(strip)
    }

    #[test]
    fn contexts_compare_as_they_did_when_copied_without_meta() {
        let contexts = [
            Bson::from(doc! {"a": 1, "meta": {"v": 1}}),
            Bson::from(doc! {"a": 1, "meta": {"v": 2}}),
            Bson::from(doc! {"meta": 3, "a": 1}),
            Bson::from(doc! {"a": 1}),
            Bson::from(doc! {"a": 2, "meta": {"v": 1}}),
            Bson::from(doc! {"b": 1, "a": 1}),
            Bson::from(doc! {"a": 1, "b": 1, "meta": null}),
            Bson::from(doc! {"a": 1, "b": 1.5}),
            Bson::from(doc! {"a": {"meta": 1}}),
            Bson::from(doc! {"a": {"meta": 2}}),
            Bson::from(doc! {}),
            Bson::from(doc! {"meta": 1}),
            Bson::from("text"),
            Bson::Null,
        ];
        for a in contexts.iter().map(Some).chain([None]) {
            for b in contexts.iter().map(Some).chain([None]) {
                assert_eq!(same_but_meta(a, b), stripped_equal(a, b), "{a:?} vs {b:?}");
            }
        }
        let with = Bson::from(doc! {"a": 1, "meta": {"v": 1}});
        let other_meta = Bson::from(doc! {"meta": {"v": 9}, "a": 1});
        assert!(same_but_meta(Some(&with), Some(&other_meta)));
        assert!(!same_but_meta(
            Some(&with),
            Some(&Bson::from(doc! {"a": 2}))
        ));
    }

    fn user() -> LegacyUser {
        let at = |ms: i64| DateTime::from_millis(1_730_000_000_000 + ms);
        LegacyUser {
            user_id: "u1".into(),
            submissions: vec![
                doc! {"_id": "s1", "user_id": "u1", "submitted_at": at(0), "responses": {"peso": "85,5", "objetivo_fisico": "Perder grasa"}},
            ],
            followups: vec![
                doc! {"_id": "f1", "user_id": "u1", "submission_date": at(90_000_000), "previous_plan_id": "t1", "measurements": {"peso": "84"}},
            ],
            training_plans: vec![
                doc! {"_id": "t1", "user_id": "u1", "job_id": "j1", "generated_at": at(1_000), "client_summary": {"a": 1}},
            ],
            nutrition_plans: vec![
                doc! {"_id": "n1", "user_id": "u1", "job_id": "j1", "generated_at": at(2_000), "metabolism": {"tdee": 2400}},
            ],
            sizes: Default::default(),
        }
    }

    fn docs(u: &LegacyUser) -> Vec<Original> {
        u.documents().map(|(k, d)| Original::of(k, d)).collect()
    }

    fn expected(u: &LegacyUser) -> Document {
        build(
            u,
            None,
            &BuildOptions::new(DateTime::from_millis(1_800_000_000_000), "run-a"),
        )
        .drawer
    }

    fn stamped(mut u: LegacyUser) -> LegacyUser {
        u.training_plans[0].insert("snapshot_id", "snapshot_legacy_v1");
        u
    }

    #[test]
    fn a_migrated_drawer_matches_every_document() {
        let u = user();
        let drawer = expected(&u);
        let u = stamped(u);
        let findings = compare_user(&docs(&u), &drawer, Some(&drawer), &[], &[]);
        assert_eq!(findings.len(), 4);
        assert!(findings.iter().all(Finding::matches), "{findings:?}");
    }

    /// A NaN is not `==` to itself, but a drawer that is the fresh build
    /// holds the very bytes the build gives: it matches.
    #[test]
    fn a_drawer_compared_with_itself_matches_where_it_holds_nan() {
        let mut u = user();
        u.followups[0].insert("measurements", doc! {"peso": f64::NAN});
        let drawer = expected(&u);
        let u = stamped(u);
        let findings = compare_user(&docs(&u), &drawer, Some(&drawer), &[], &[]);
        assert!(findings.iter().all(Finding::matches), "{findings:?}");
        let copy = drawer.clone();
        let findings = compare_user(&docs(&u), &drawer, Some(&copy), &[], &[]);
        let followup = findings.iter().find(|f| f.kind == LegacyKind::Followup);
        assert!(!followup.unwrap().matches(), "a copy is compared by value");
    }

    #[test]
    fn each_kind_of_damage_is_found_with_its_path_and_no_value() {
        let u = stamped(user());
        let mut drawer = expected(&u);
        let services = drawer.get_document_mut("services").unwrap();
        services.insert("shared_questionnaires", Bson::Array(vec![]));
        let training = services.get_document_mut("training").unwrap();
        let fup = training
            .get_document_mut("questionnaires")
            .unwrap()
            .get_array_mut("followups")
            .unwrap();
        fup[0]
            .as_document_mut()
            .unwrap()
            .insert("measurements", doc! {"peso": "99"});
        training.insert("snapshots", Bson::Array(vec![]));
        let findings = compare_user(&docs(&u), &expected(&u), Some(&drawer), &[], &[]);
        let by = |k: LegacyKind| findings.iter().find(|f| f.kind == k).unwrap().paths.clone();
        assert_eq!(
            by(LegacyKind::Submission),
            vec!["services.shared_questionnaires[s1]"]
        );
        assert_eq!(
            by(LegacyKind::Followup),
            vec!["services.training.questionnaires.followups[f1].measurements"]
        );
        assert_eq!(
            by(LegacyKind::TrainingPlan),
            vec!["services.training.snapshots[training_plan_id=t1]"]
        );
        assert_eq!(
            by(LegacyKind::NutritionPlan),
            vec!["services.training.snapshots[nutrition_plan_id=n1]"]
        );
        assert!(!format!("{findings:?}").contains("99"));
    }

    #[test]
    fn a_missing_drawer_fails_everything_and_skipped_ids_are_left_to_quarantine() {
        let u = user();
        let findings = compare_user(&docs(&u), &expected(&u), None, &[], &[Bson::from("n1")]);
        assert_eq!(findings.len(), 3);
        assert!(findings.iter().all(|f| !f.matches()));
    }
}
