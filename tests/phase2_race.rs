//! A dual-write that lands between the engine's read of a drawer and its
//! write: the conditional write must fail, the engine must re-read and
//! rebuild, and the drawer must end with both the dual-write entry and the
//! migration's additions.
//!
//! The store is the real embedded SQLite store; the wrapper only performs the
//! application's write at the worst moment, just before the engine's first
//! drawer write.

use bson::{doc, Bson, Document};
use edn_migrate::config::Config;
use edn_migrate::drawer::BuildOptions;
use edn_migrate::phase2::migrate::{run_pass, Pass};
use edn_migrate::store::sqlite::SqliteStore;
use edn_migrate::store::{
    DocStream, FieldUpdate, IndexSpec, Ns, Precondition, Scan, Store, StoreResult,
};
use edn_migrate::transfer::{import, ImportOptions};
use std::cell::Cell;

const U15: &str = "client_1762976907472415";

/// Forwards everything to SQLite, and once, right before the first drawer
/// write, appends a questionnaire to U15's drawer as dual-write would.
struct DualWriteRace {
    inner: SqliteStore,
    drawers: Ns,
    fired: Cell<bool>,
}

impl DualWriteRace {
    fn dual_write(&self) {
        let mut drawer = self
            .inner
            .get_many(&self.drawers, &[U15.into()])
            .unwrap()
            .remove(0);
        let services = drawer.get_document_mut("services").unwrap();
        let shared = services.get_array_mut("shared_questionnaires").unwrap();
        shared.push(Bson::Document(doc! {
            "submission_id": "submission_dualwrite_race",
            "submitted_at": bson::DateTime::from_millis(1_800_000_000_000),
            "source": "nutrition_initial",
            "raw_payload": { "_id": "submission_dualwrite_race", "user_id": "1762976907472415" },
        }));
        self.inner.upsert_many(&self.drawers, &[drawer]).unwrap();
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
    fn put_if(&self, ns: &Ns, writes: &[(Document, Precondition)]) -> StoreResult<Vec<bool>> {
        if *ns == self.drawers && !self.fired.replace(true) {
            self.dual_write();
        }
        self.inner.put_if(ns, writes)
    }
    fn update_fields(&self, ns: &Ns, updates: &[FieldUpdate]) -> StoreResult<u64> {
        self.inner.update_fields(ns, updates)
    }
    fn delete_many(&self, ns: &Ns, ids: &[Bson]) -> StoreResult<u64> {
        self.inner.delete_many(ns, ids)
    }
    fn delete_if_unchanged(&self, ns: &Ns, docs: &[Document]) -> StoreResult<Vec<bool>> {
        self.inner.delete_if_unchanged(ns, docs)
    }
    fn create_index(&self, ns: &Ns, spec: &IndexSpec) -> StoreResult<bool> {
        self.inner.create_index(ns, spec)
    }
    fn list_indexes(&self, ns: &Ns) -> StoreResult<Vec<IndexSpec>> {
        self.inner.list_indexes(ns)
    }
}

fn config() -> Config {
    Config::default()
}

#[test]
fn a_drawer_changed_by_dual_write_mid_run_is_rebuilt_not_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("race.db");
    let inner = SqliteStore::open(path.to_str().unwrap()).unwrap();
    let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/legacy");
    let opts = ImportOptions {
        upsert: false,
        drop: false,
        batch_size: 1000,
    };
    import(&inner, std::path::Path::new(fixtures), opts).unwrap();
    let config = config();
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
    let result = run_pass(&store, &config, &pass, None, &progress, &mut |_, _| Ok(())).unwrap();

    assert!(store.fired.get(), "the dual-write happened");
    assert_eq!(
        result.tally.retried, 1,
        "exactly U15's write lost the race and was redone"
    );
    assert_eq!(
        result.tally.drawers_created
            + result.tally.drawers_updated
            + result.tally.drawers_unchanged,
        result.tally.users
    );
    let drawer = store
        .get_many(&config.drawers_ns(), &[U15.into()])
        .unwrap()
        .remove(0);
    let ids: Vec<&str> = drawer
        .get_document("services")
        .unwrap()
        .get_array("shared_questionnaires")
        .unwrap()
        .iter()
        .filter_map(|e| e.as_document()?.get_str("submission_id").ok())
        .collect();
    assert!(
        ids.contains(&"submission_dualwrite_race"),
        "the dual-write survived: {ids:?}"
    );
    assert!(
        ids.iter().any(|id| id.starts_with("followup_")),
        "the migration's additions are there: {ids:?}"
    );
    let run = drawer
        .get_document("meta")
        .unwrap()
        .get_document("migration")
        .unwrap();
    assert_eq!(run.get_str("run_id").unwrap(), "run-race");
}
