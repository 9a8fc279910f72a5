//! A store that cannot write: what `--dry-run` runs on.
//!
//! The engine in a dry run does not try to write, but the guarantee should not
//! rest on every code path remembering that. Every write verb here fails, so a
//! missed branch is an error in the dry run, never a change to production.

use super::{
    DocStream, FetchedStream, FieldUpdate, IndexSpec, Ns, Outcome, Patch, RawDocStream, Scan,
    Store, StoreError, StoreResult,
};
use bson::{Bson, Document, RawDocumentBuf};

/// Wraps a store, forwarding reads and refusing writes.
pub struct ReadOnly<'a>(pub &'a dyn Store);

/// The reader handle of a read-only store: read-only as well.
struct ReadOnlyReader(Box<dyn Store + Send>);

fn refuse<T>(verb: &str, ns: &Ns) -> StoreResult<T> {
    Err(StoreError::ReadOnly(format!("{verb} on {ns}")))
}

macro_rules! read_only {
    ($wrapper:ty) => {
        impl Store for $wrapper {
            fn describe(&self) -> String {
                self.0.describe()
            }
            fn reader(&self) -> Option<Box<dyn Store + Send>> {
                // The second handle refuses writes too: the guarantee must not rest
                // on the reader thread never writing.
                let reader = self.0.reader()?;
                Some(Box::new(ReadOnlyReader(reader)))
            }
            fn list_collections(&self, db: &str) -> StoreResult<Vec<String>> {
                self.0.list_collections(db)
            }
            fn create_collection(&self, ns: &Ns) -> StoreResult<bool> {
                refuse("create_collection", ns)
            }
            fn drop_collection(&self, ns: &Ns) -> StoreResult<bool> {
                refuse("drop_collection", ns)
            }
            fn rename_collection(&self, from: &Ns, _to: &str) -> StoreResult<()> {
                refuse("rename_collection", from)
            }
            fn count(&self, ns: &Ns) -> StoreResult<u64> {
                self.0.count(ns)
            }
            fn scan(&self, ns: &Ns, scan: &Scan) -> StoreResult<DocStream<'_>> {
                self.0.scan(ns, scan)
            }
            fn scan_raw(&self, ns: &Ns, scan: &Scan) -> StoreResult<RawDocStream<'_>> {
                self.0.scan_raw(ns, scan)
            }
            fn scan_fetched(&self, ns: &Ns, scan: &Scan) -> StoreResult<FetchedStream<'_>> {
                self.0.scan_fetched(ns, scan)
            }
            fn writes_bson(&self) -> bool {
                self.0.writes_bson()
            }
            fn get_many(&self, ns: &Ns, ids: &[Bson]) -> StoreResult<Vec<Document>> {
                self.0.get_many(ns, ids)
            }
            fn insert_many(&self, ns: &Ns, _docs: &[Document]) -> StoreResult<()> {
                refuse("insert_many", ns)
            }
            fn upsert_many(&self, ns: &Ns, _docs: &[Document]) -> StoreResult<()> {
                refuse("upsert_many", ns)
            }
            fn write_raw(
                &self,
                ns: &Ns,
                _docs: &[RawDocumentBuf],
                _upsert: bool,
            ) -> StoreResult<()> {
                refuse("write_raw", ns)
            }
            fn patch_many(&self, ns: &Ns, _patches: &[Patch]) -> StoreResult<Vec<Outcome>> {
                refuse("patch_many", ns)
            }
            fn update_fields(&self, ns: &Ns, _updates: &[FieldUpdate]) -> StoreResult<u64> {
                refuse("update_fields", ns)
            }
            fn delete_many(&self, ns: &Ns, _ids: &[Bson]) -> StoreResult<u64> {
                refuse("delete_many", ns)
            }
            fn create_index(&self, ns: &Ns, _spec: &IndexSpec) -> StoreResult<bool> {
                refuse("create_index", ns)
            }
            fn list_indexes(&self, ns: &Ns) -> StoreResult<Vec<IndexSpec>> {
                self.0.list_indexes(ns)
            }
        }
    };
}

read_only!(ReadOnly<'_>);
read_only!(ReadOnlyReader);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sqlite::SqliteStore;

    #[test]
    fn the_reader_of_a_read_only_store_refuses_writes_too() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ro.db");
        let store = SqliteStore::open(path.to_str().unwrap()).unwrap();
        let guarded = ReadOnly(&store);
        let reader = guarded.reader().expect("a file store has a reader");
        let ns = Ns::new("d", "c");
        let err = reader
            .insert_many(&ns, &[bson::doc! {"_id": 1}])
            .unwrap_err();
        assert!(matches!(err, StoreError::ReadOnly(_)), "{err}");
        assert_eq!(store.count(&ns).unwrap(), 0);
    }
}
