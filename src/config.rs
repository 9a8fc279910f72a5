//! The resolved settings a command runs with.
//!
//! The binary's `cli.rs` says where each setting comes from (flags >
//! environment > `.env` > defaults) and builds a [`Config`]; tests build one
//! directly. This module turns the names into namespaces, so no command
//! spells a collection name of its own, and the library never sees clap.

use crate::drawer::LegacyKind;
use crate::extjson;
use crate::redact::redact_url;
use crate::store::Ns;

/// Collections the tool itself owns, all in the drawer database.
pub mod own {
    /// Legacy documents that could not be migrated, with the reason.
    pub const QUARANTINE: &str = "migration_quarantine";
    /// One record per run: arguments, counts, outcome.
    pub const RUNS: &str = "migration_runs";
    /// The lease that keeps two runs from overlapping.
    pub const LOCK: &str = "migration_lock";
    /// Snapshots moved out of drawers that grew past the size limit.
    pub const SNAPSHOT_ARCHIVE: &str = "client_drawer_snapshot_archive";
}

/// Everything a command needs to know about where data lives.
#[derive(Debug, Clone)]
pub struct Config {
    /// The store URL as given (may hold a password: print `store_display`).
    pub store_url: String,
    /// The legacy database name.
    pub legacy_db: String,
    /// The drawer database name.
    pub drawer_db: String,
    /// Legacy initial questionnaires.
    pub submissions: String,
    /// Legacy follow-ups.
    pub followups: String,
    /// Legacy training plans.
    pub training_plans: String,
    /// Legacy nutrition plans.
    pub nutrition_plans: String,
    /// Legacy users.
    pub users: String,
    /// Legacy generation jobs.
    pub jobs: String,
    /// The drawers.
    pub drawers: String,
}

/// The store a newcomer gets: the embedded one, in the working directory.
pub const DEFAULT_STORE: &str = "sqlite:./edn-migrate.db";

impl Default for Config {
    /// The production names (from the production report) on the default store.
    fn default() -> Config {
        Config {
            store_url: DEFAULT_STORE.into(),
            legacy_db: "test_database".into(),
            drawer_db: "edn360_app".into(),
            submissions: "nutrition_questionnaire_submissions".into(),
            followups: "follow_up_submissions".into(),
            training_plans: "training_plans".into(),
            nutrition_plans: "nutrition_plans".into(),
            users: "users".into(),
            jobs: "generation_jobs".into(),
            drawers: "client_drawers".into(),
        }
    }
}

impl Config {
    /// The production names on another store and databases: what tests use.
    pub fn new(store_url: &str, legacy_db: &str, drawer_db: &str) -> Config {
        Config {
            store_url: store_url.into(),
            legacy_db: legacy_db.into(),
            drawer_db: drawer_db.into(),
            ..Config::default()
        }
    }

    /// The store URL with any password replaced by `****`.
    pub fn store_display(&self) -> String {
        redact_url(&self.store_url)
    }

    /// A collection of the legacy database.
    pub fn legacy(&self, coll: &str) -> Ns {
        Ns::new(&self.legacy_db, coll)
    }

    /// A collection of the drawer database.
    pub fn drawer(&self, coll: &str) -> Ns {
        Ns::new(&self.drawer_db, coll)
    }

    /// The drawers collection.
    pub fn drawers_ns(&self) -> Ns {
        self.drawer(&self.drawers)
    }

    /// The configured collection that holds documents of a kind.
    pub fn collection_of(&self, kind: LegacyKind) -> &str {
        match kind {
            LegacyKind::Submission => &self.submissions,
            LegacyKind::Followup => &self.followups,
            LegacyKind::TrainingPlan => &self.training_plans,
            LegacyKind::NutritionPlan => &self.nutrition_plans,
        }
    }

    /// The `_id` of a document's record in `migration_quarantine`: the
    /// migration writes it, validation looks it up.
    pub fn quarantine_id(&self, kind: LegacyKind, id: &bson::Bson) -> String {
        format!("{}:{}", self.collection_of(kind), extjson::to_json(id))
    }

    /// The legacy collections the migration reads, in the order of a status
    /// report: the four the engine merges, then users and jobs.
    pub fn legacy_collections(&self) -> [&str; 6] {
        [
            &self.submissions,
            &self.followups,
            &self.training_plans,
            &self.nutrition_plans,
            &self.users,
            &self.jobs,
        ]
    }

    /// The legacy collections merged per user, which want a `user_id` index.
    pub fn per_user_collections(&self) -> [&str; 4] {
        [
            &self.submissions,
            &self.followups,
            &self.training_plans,
            &self.nutrition_plans,
        ]
    }
}
