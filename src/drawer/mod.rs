//! Drawer builder, validator and undo. Pure: documents in, documents out; the
//! clock comes in as `BuildOptions::now`. The rules are in docs/drawer.md.

mod build;
mod meta;
mod path;
mod undo;
mod validate;

use bson::{Bson, Document};

pub use crate::mapping::{Warning, WarningKind};
pub use build::{build, build_owned};
pub use undo::{added_by_migration, archive_ids_to_undo, stamps_to_undo, undo, Undo};
pub use validate::{validate, ValidationError};

/// The legacy collections the builder reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LegacyKind {
    Submission,
    Followup,
    TrainingPlan,
    NutritionPlan,
}

impl LegacyKind {
    /// The production collection name.
    pub fn collection(self) -> &'static str {
        match self {
            LegacyKind::Submission => "nutrition_questionnaire_submissions",
            LegacyKind::Followup => "follow_up_submissions",
            LegacyKind::TrainingPlan => "training_plans",
            LegacyKind::NutritionPlan => "nutrition_plans",
        }
    }

    /// Stable snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            LegacyKind::Submission => "submission",
            LegacyKind::Followup => "followup",
            LegacyKind::TrainingPlan => "training_plan",
            LegacyKind::NutritionPlan => "nutrition_plan",
        }
    }

    pub fn from_collection(name: &str) -> Option<LegacyKind> {
        [
            LegacyKind::Submission,
            LegacyKind::Followup,
            LegacyKind::TrainingPlan,
            LegacyKind::NutritionPlan,
        ]
        .into_iter()
        .find(|k| k.collection() == name)
    }

    /// The date field that orders documents of this kind.
    pub fn date_field(self) -> &'static str {
        match self {
            LegacyKind::Submission => "submitted_at",
            LegacyKind::Followup => "submission_date",
            LegacyKind::TrainingPlan | LegacyKind::NutritionPlan => "generated_at",
        }
    }
}

/// One user's legacy documents (any order).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LegacyUser {
    pub user_id: String,
    pub submissions: Vec<Document>,
    pub followups: Vec<Document>,
    pub training_plans: Vec<Document>,
    pub nutrition_plans: Vec<Document>,
    /// Each document's size in bytes as the store holds it, per kind in the
    /// order of that kind's list, where the reader knew it (the bytes it
    /// fetched). A list that does not have one size per document is not
    /// used: the builder measures those documents itself. Only an
    /// oversized-drawer error reads them (it names the largest document),
    /// and measuring every document again was 3% of a migration.
    pub sizes: [Vec<usize>; 4],
}

impl LegacyUser {
    /// Adds a document to the list of its kind.
    pub fn push(&mut self, kind: LegacyKind, doc: Document) {
        self.list_mut(kind).push(doc);
    }

    /// Adds a document and its stored size (see `sizes`).
    pub fn push_sized(&mut self, kind: LegacyKind, doc: Document, size: usize) {
        self.list_mut(kind).push(doc);
        self.sizes[kind as usize].push(size);
    }

    fn list_mut(&mut self, kind: LegacyKind) -> &mut Vec<Document> {
        match kind {
            LegacyKind::Submission => &mut self.submissions,
            LegacyKind::Followup => &mut self.followups,
            LegacyKind::TrainingPlan => &mut self.training_plans,
            LegacyKind::NutritionPlan => &mut self.nutrition_plans,
        }
    }

    /// Every document with its kind: submissions, follow-ups, training
    /// plans, then nutrition plans.
    pub fn documents(&self) -> impl Iterator<Item = (LegacyKind, &Document)> {
        [
            (LegacyKind::Submission, &self.submissions),
            (LegacyKind::Followup, &self.followups),
            (LegacyKind::TrainingPlan, &self.training_plans),
            (LegacyKind::NutritionPlan, &self.nutrition_plans),
        ]
        .into_iter()
        .flat_map(|(kind, docs)| docs.iter().map(move |d| (kind, d)))
    }
}

/// Which legacy collections a run migrates (`phase2 migrate questionnaires|plans|followups|all`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scope {
    pub questionnaires: bool,
    pub plans: bool,
    pub followups: bool,
}

impl Scope {
    pub fn all() -> Scope {
        Scope {
            questionnaires: true,
            plans: true,
            followups: true,
        }
    }
    pub fn questionnaires() -> Scope {
        Scope {
            questionnaires: true,
            plans: false,
            followups: false,
        }
    }
    pub fn plans() -> Scope {
        Scope {
            questionnaires: false,
            plans: true,
            followups: false,
        }
    }
    pub fn followups() -> Scope {
        Scope {
            questionnaires: false,
            plans: false,
            followups: true,
        }
    }
}

impl Default for Scope {
    fn default() -> Self {
        Scope::all()
    }
}

/// Default nutrition ↔ training pairing window: one hour.
pub const DEFAULT_PAIRING_WINDOW_MS: i64 = 3_600_000;
/// Default drawer size limit: 12 MiB (MongoDB refuses 16 MiB).
pub const DEFAULT_MAX_DRAWER_BYTES: usize = 12 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq)]
pub struct BuildOptions {
    pub now: bson::DateTime,
    pub run_id: String,
    pub pairing_window_ms: i64,
    pub max_drawer_bytes: usize,
    pub scope: Scope,
    /// Leave a new drawer unmeasured, for a caller that encodes it anyway:
    /// measuring was a sixth of the builder, and the encoded length tells
    /// the same. The caller must then check that length with
    /// [`Built::deferred`] and build again without this when the check
    /// fails (the drawer needed archiving, or cannot be stored).
    pub defer_measure: bool,
}

impl BuildOptions {
    /// Defaults for everything but the clock and the run id.
    pub fn new(now: bson::DateTime, run_id: impl Into<String>) -> BuildOptions {
        BuildOptions {
            now,
            run_id: run_id.into(),
            pairing_window_ms: DEFAULT_PAIRING_WINDOW_MS,
            max_drawer_bytes: DEFAULT_MAX_DRAWER_BYTES,
            scope: Scope::all(),
            defer_measure: false,
        }
    }
}

/// A legacy document that cannot be migrated, and why (no personal values).
#[derive(Debug, Clone, PartialEq)]
pub struct Quarantined {
    pub kind: LegacyKind,
    pub id: Bson,
    pub reason: String,
}

/// A legacy plan that was versioned and must carry `snapshot_id` and `client_drawer_id`.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanStamp {
    pub kind: LegacyKind,
    pub plan_id: Bson,
    pub snapshot_id: String,
    pub client_drawer_id: String,
}

/// What [`build`] returns.
#[derive(Debug, Clone, PartialEq)]
pub struct Built {
    /// The drawer to store (equal to `existing` when nothing changed; empty when
    /// no drawer exists and none is needed).
    pub drawer: Document,
    /// False when `drawer` is `existing` unchanged (or no drawer is needed): write nothing.
    pub changed: bool,
    /// True when there was no drawer and this build creates one.
    pub created: bool,
    /// The encoded size of `drawer` when `changed` (measured for MongoDB's
    /// 16 MiB limit, so a caller need not walk the drawer again); 0 otherwise.
    pub bytes: usize,
    /// Snapshots moved out of the drawer, for `client_drawer_snapshot_archive`.
    pub archived: Vec<Document>,
    pub warnings: Vec<Warning>,
    pub quarantine: Vec<Quarantined>,
    /// Stamps to write on legacy plans (only those not already carrying them).
    pub plan_stamps: Vec<PlanStamp>,
    /// Set when a new drawer was left unmeasured (`defer_measure`): `bytes`
    /// is then 0, and this checks the encoded length instead.
    pub deferred: Option<DeferredMeasure>,
}

/// What a new drawer left unmeasured must satisfy once encoded for the
/// build to stand: the measure the builder would have taken (the encoded
/// length less what the derived state and the bookkeeping added) leaves
/// room for the migration record, and the drawer is one MongoDB stores.
/// Then nothing would have been archived or refused, and the drawer is
/// the one a measured build makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeferredMeasure {
    /// The encoded length of the tail paths before and after they were
    /// written; `None` when a parent on the way was no document.
    pub(crate) tail_before: Option<usize>,
    pub(crate) tail_after: Option<usize>,
    /// The migration record's encoded length when the builder would have measured.
    pub(crate) record: usize,
    /// The size the drawer had to fit in.
    pub(crate) limit: usize,
}

/// The arrays whose entries are keyed (array path, key field; `None`: an
/// entry is its own key), so a write can add and remove entries by key and
/// keep the ones another writer adds.
pub fn keyed_arrays() -> Vec<(&'static str, Option<&'static str>)> {
    meta::ARRAYS.iter().map(|a| (a.path, a.key)).collect()
}

/// Where a drawer keeps the migration's own record of what it did
/// (docs/drawer.md); no other writer touches it.
pub const LEDGER: &str = "meta.migration";

/// The drawer `_id` of a user.
pub fn drawer_id(user_id: &str) -> String {
    format!("client_{user_id}")
}

/// Checks one legacy document before it is grouped by user. `Err(reason)`
/// means quarantine; the reason names fields, never values.
pub fn triage(kind: LegacyKind, doc: &Document) -> Result<(), String> {
    match doc.get("_id") {
        None | Some(Bson::Null) => return Err("no _id".into()),
        _ => {}
    }
    match doc.get("user_id") {
        None | Some(Bson::Null) => return Err("no user_id".into()),
        Some(Bson::String(s)) if s.trim().is_empty() => return Err("empty user_id".into()),
        Some(Bson::String(_)) => {}
        Some(_) => return Err("user_id is not a string".into()),
    }
    let date = kind.date_field();
    if crate::mapping::date_millis(doc.get(date)).is_none() {
        return Err(match kind {
            LegacyKind::TrainingPlan => {
                format!("no usable {date}: it cannot be placed in the version order")
            }
            _ => format!("{date} missing or not a date"),
        });
    }
    match kind {
        LegacyKind::Submission => match doc.get("responses") {
            Some(Bson::Document(_)) => {}
            None | Some(Bson::Null) => return Err("no responses".into()),
            Some(_) => return Err("responses is not an object".into()),
        },
        LegacyKind::Followup => match doc.get("measurements") {
            None | Some(Bson::Null) | Some(Bson::Document(_)) => {}
            Some(_) => return Err("measurements is not an object".into()),
        },
        LegacyKind::TrainingPlan | LegacyKind::NutritionPlan => {}
    }
    Ok(())
}
