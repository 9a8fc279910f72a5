//! The application writes a drawer between the engine's read of it and the
//! engine's write: a new top-level field, a new `shared_questionnaires`
//! entry and a changed profile field (one the migration would fill). All
//! three must survive, next to the migration's own additions, on both
//! stores.
//!
//! The stores are the real ones (embedded SQLite, and the MongoDB backend
//! over the wire test server); the wrapper only performs the application's
//! write, through the store itself, at the worst moment: just before the
//! engine's first drawer write.

mod common;

use bson::{doc, Bson, Document};
use common::tool::copy_dir;
use edn_migrate::config::Config;
use edn_migrate::drawer::BuildOptions;
use edn_migrate::phase2::migrate::{run_pass, Pass};
use edn_migrate::run::Unsupervised;
use edn_migrate::store::sqlite::SqliteStore;
use edn_migrate::store::{
    DocStream, FieldUpdate, IndexSpec, Ns, Outcome, Patch, Push, Scan, Step, Store, StoreResult,
};
use edn_migrate::transfer::{import, ImportOptions};
use std::cell::Cell;
use std::path::Path;

const U15: &str = "client_1762976907472415";

/// Forwards everything to a real store, and once, right before the first
/// drawer write, changes U15's drawer as the application would.
struct DualWriteRace {
    inner: Box<dyn Store>,
    drawers: Ns,
    fired: Cell<bool>,
}

impl DualWriteRace {
    fn dual_write(&self) {
        let entry = doc! {
            "submission_id": "submission_dualwrite_race",
            "submitted_at": bson::DateTime::from_millis(1_800_000_000_000),
            "source": "nutrition_initial",
            "raw_payload": { "_id": "submission_dualwrite_race", "user_id": "1762976907472415" },
        };
        let write = Step {
            set: vec![
                ("app_source".into(), Bson::from("dual-write")),
                ("profile.sexo".into(), Bson::from("Otro")),
            ],
            push: vec![Push {
                path: "services.shared_questionnaires".into(),
                entries: vec![Bson::Document(entry)],
                position: None,
            }],
            ..Step::default()
        };
        let done = self
            .inner
            .patch_many(&self.drawers, &[Patch::update(U15.into(), write)])
            .unwrap();
        assert!(done[0].applied(), "the application's write: {done:?}");
    }
}

impl Store for DualWriteRace {
    fn describe(&self) -> String {
        self.inner.describe()
    }
    fn reader(&self) -> Option<Box<dyn Store + Send>> {
        self.inner.reader()
    }
    fn list_collections(&self, db: &str) -> StoreResult<Vec<String>> {
        self.inner.list_collections(db)
    }
    fn create_collection(&self, ns: &Ns) -> StoreResult<bool> {
        self.inner.create_collection(ns)
    }
    fn drop_collection(&self, ns: &Ns) -> StoreResult<bool> {
        self.inner.drop_collection(ns)
    }
    fn rename_collection(&self, from: &Ns, to: &str) -> StoreResult<()> {
        self.inner.rename_collection(from, to)
    }
    fn count(&self, ns: &Ns) -> StoreResult<u64> {
        self.inner.count(ns)
    }
    fn scan(&self, ns: &Ns, scan: &Scan) -> StoreResult<DocStream<'_>> {
        self.inner.scan(ns, scan)
    }
    fn get_many(&self, ns: &Ns, ids: &[Bson]) -> StoreResult<Vec<Document>> {
        self.inner.get_many(ns, ids)
    }
    fn insert_many(&self, ns: &Ns, docs: &[Document]) -> StoreResult<()> {
        self.inner.insert_many(ns, docs)
    }
    fn upsert_many(&self, ns: &Ns, docs: &[Document]) -> StoreResult<()> {
        self.inner.upsert_many(ns, docs)
    }
    fn patch_many(&self, ns: &Ns, patches: &[Patch]) -> StoreResult<Vec<Outcome>> {
        if *ns == self.drawers && !self.fired.replace(true) {
            self.dual_write();
        }
        self.inner.patch_many(ns, patches)
    }
    fn update_fields(&self, ns: &Ns, updates: &[FieldUpdate]) -> StoreResult<u64> {
        self.inner.update_fields(ns, updates)
    }
    fn delete_many(&self, ns: &Ns, ids: &[Bson]) -> StoreResult<u64> {
        self.inner.delete_many(ns, ids)
    }
    fn create_index(&self, ns: &Ns, spec: &IndexSpec) -> StoreResult<bool> {
        self.inner.create_index(ns, spec)
    }
    fn list_indexes(&self, ns: &Ns) -> StoreResult<Vec<IndexSpec>> {
        self.inner.list_indexes(ns)
    }
}

fn dual_writes_between_read_and_write_survive(inner: Box<dyn Store>, config: Config) {
    let fixtures = tempfile::tempdir().unwrap();
    let root = Path::new(common::tool::FIXTURES);
    copy_dir(
        &root.join("test_database"),
        &fixtures.path().join(&config.legacy_db),
    );
    copy_dir(
        &root.join("edn360_app"),
        &fixtures.path().join(&config.drawer_db),
    );
    let opts = ImportOptions {
        upsert: false,
        drop: false,
        batch_size: 1000,
    };
    import(inner.as_ref(), fixtures.path(), opts).unwrap();
    let store = DualWriteRace {
        inner,
        drawers: config.drawers_ns(),
        fired: Cell::new(false),
    };
    let pass = Pass {
        batch_size: 100,
        partition: None,
        max_rate: None,
        dry_run: false,
        samples: 0,
        build: BuildOptions::new(bson::DateTime::from_millis(1_900_000_000_000), "run-race"),
    };
    let progress = indicatif::ProgressBar::hidden();
    let result = run_pass(&store, &config, &pass, None, &progress, &mut Unsupervised).unwrap();

    assert!(store.fired.get(), "the dual-write happened");
    assert_eq!(
        result.tally.retried, 1,
        "U15's write tripped its guard on profile.sexo and was rebuilt once"
    );
    let t = &result.tally;
    assert_eq!(
        t.drawers_created + t.drawers_updated + t.drawers_unchanged,
        t.users
    );
    let drawer = store
        .get_many(&config.drawers_ns(), &[U15.into()])
        .unwrap()
        .remove(0);
    assert_eq!(
        drawer.get_str("app_source").unwrap(),
        "dual-write",
        "a top-level field added meanwhile survives"
    );
    let profile = drawer.get_document("profile").unwrap();
    assert_eq!(
        profile.get_str("sexo").unwrap(),
        "Otro",
        "the application's profile value survives (the migration would have written another)"
    );
    assert_eq!(
        profile.get_str("profesion").unwrap(),
        "Periodista",
        "the migration still fills what was empty"
    );
    let ids: Vec<&str> = drawer
        .get_document("services")
        .unwrap()
        .get_array("shared_questionnaires")
        .unwrap()
        .iter()
        .filter_map(|e| e.as_document()?.get_str("submission_id").ok())
        .collect();
    assert_eq!(
        ids.iter()
            .filter(|id| **id == "submission_dualwrite_race")
            .count(),
        1,
        "the questionnaire added meanwhile survives, once: {ids:?}"
    );
    assert!(
        ids.iter().any(|id| id.starts_with("followup_")),
        "the migration's additions are there: {ids:?}"
    );
    // The first build moved U15's documents into a drawer that was never
    // written; the rebuild read them again, whole.
    let mut payloads = 0;
    for entry in drawer
        .get_document("services")
        .unwrap()
        .get_array("shared_questionnaires")
        .unwrap()
        .iter()
        .filter_map(Bson::as_document)
    {
        let coll = match entry.get_str("source") {
            Ok("nutrition_initial") => &config.submissions,
            Ok("followup") => &config.followups,
            _ => continue,
        };
        let id = entry.get("submission_id").unwrap().clone();
        if id.as_str() == Some("submission_dualwrite_race") {
            continue; // the application's own entry
        }
        let legacy = store.get_many(&config.legacy(coll), &[id]).unwrap();
        assert_eq!(legacy.len(), 1);
        assert_eq!(
            entry.get_document("raw_payload").unwrap(),
            &legacy[0],
            "the raw payload is the whole legacy document"
        );
        payloads += 1;
    }
    assert!(payloads >= 2, "U15 has a questionnaire and a follow-up");
    let run = drawer
        .get_document("meta")
        .unwrap()
        .get_document("migration")
        .unwrap();
    assert_eq!(run.get_str("run_id").unwrap(), "run-race");
}

#[test]
fn sqlite_dual_writes_between_read_and_write_survive() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("race.db");
    let store = SqliteStore::open(path.to_str().unwrap()).unwrap();
    dual_writes_between_read_and_write_survive(Box::new(store), Config::default());
}

#[test]
fn mongo_wire_dual_writes_between_read_and_write_survive() {
    let Some((store, db)) = common::wire_store("race") else {
        return;
    };
    let config = Config::new(&store.describe(), &format!("{db}_l"), &format!("{db}_d"));
    dual_writes_between_read_and_write_survive(store, config);
}
