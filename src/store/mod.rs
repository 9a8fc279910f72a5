//! The one seam between the migration and a database.
//!
//! Everything above this module (phases, engine, validation, rollback) is
//! written once against [`Store`]; `sqlite.rs` and `mongo.rs` only translate.
//! If a phase ever needs to ask which backend it runs on, this trait is
//! missing a verb.

mod checkpoint;
mod index;
pub mod keys;
pub mod mongo;
pub mod patch;
pub mod readonly;
pub mod sqlite;

use bson::{Bson, Document, RawDocumentBuf};
use std::fmt;

pub(crate) use index::needs_creating;
pub use index::IndexSpec;
pub use keys::{sort_key, value_at_path, value_at_path_mut};
pub use patch::{Guard, Op, Outcome, Patch, Pull, Push, Step};

/// A collection inside a database: the unit every store verb acts on.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ns {
    /// The database name, e.g. `test_database`.
    pub db: String,
    /// The collection name, e.g. `training_plans`.
    pub coll: String,
}

impl Ns {
    /// Names a collection in a database.
    pub fn new(db: impl Into<String>, coll: impl Into<String>) -> Ns {
        Ns {
            db: db.into(),
            coll: coll.into(),
        }
    }
}

impl fmt::Display for Ns {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.db, self.coll)
    }
}

/// The order of a scan. Both backends order values the way MongoDB does
/// (numbers before strings before documents …), so a scan is stable across
/// stores and across runs, which is what makes checkpoints meaningful.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Order {
    /// By `_id` ascending.
    ById,
    /// By the value at a dotted field path ascending, then `_id`: the order
    /// the engine needs to merge several collections per user.
    ByField(String),
}

/// Where a scan starts: everything strictly after this position, so a resumed
/// run neither repeats nor skips a document.
#[derive(Debug, Clone, PartialEq)]
pub struct After {
    /// The sort value of the last document already seen (for `ByField`).
    pub field: Option<Bson>,
    /// The `_id` of the last document already seen; `Bson::MaxKey` skips
    /// every document with that field value (a whole user, for `--resume`).
    pub id: Bson,
}

/// What a scan reads: the order, an optional resume position and how many
/// documents travel per round trip.
#[derive(Debug, Clone)]
pub struct Scan {
    /// The order documents come back in.
    pub order: Order,
    /// Start strictly after this position (`None`: from the beginning).
    pub after: Option<After>,
    /// Documents per round trip; memory is bounded by this, not the data.
    pub batch_size: u32,
}

impl Scan {
    /// A full scan in `_id` order.
    pub fn by_id(batch_size: u32) -> Scan {
        Scan {
            order: Order::ById,
            after: None,
            batch_size,
        }
    }

    /// A full scan ordered by a field, then `_id`.
    pub fn by_field(path: &str, batch_size: u32) -> Scan {
        Scan {
            order: Order::ByField(path.to_string()),
            after: None,
            batch_size,
        }
    }
}

/// An in-place change of some fields of one document, for the few writes the
/// migration makes to legacy documents (the plan stamps). Never a whole
/// replacement: the application may be writing other fields meanwhile.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldUpdate {
    /// The `_id` of the document to change.
    pub id: Bson,
    /// Top-level fields to set.
    pub set: Document,
    /// Top-level fields to remove.
    pub unset: Vec<String>,
}

/// Why a store call failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A write broke a unique index.
    #[error("duplicate key in {ns}: index {index} already holds {key}")]
    DuplicateKey {
        /// The collection written to.
        ns: String,
        /// The index that refused the write.
        index: String,
        /// The key value, rendered for the operator.
        key: String,
    },
    /// The store URL is not one this tool understands.
    #[error("{0}")]
    BadUrl(String),
    /// A collection or database name the store cannot hold.
    #[error("invalid name {0:?}: names may not be empty or contain NUL, '$' or '.' in a collection prefix")]
    BadName(String),
    /// The collection to rename or create already exists.
    #[error("collection {0} already exists")]
    Exists(String),
    /// The collection a command needs does not exist.
    #[error("collection {0} does not exist")]
    Missing(String),
    /// A document could not be encoded or decoded.
    #[error("document encoding: {0}")]
    Encoding(String),
    /// The embedded SQLite store failed.
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The MongoDB driver failed (connection, command, server error).
    #[error("mongodb: {0}")]
    Mongo(String),
    /// The store refused a write to one document (not a duplicate key): a
    /// document over 16 MiB, a path that cannot be written, a validation.
    #[error("write to {ns} refused for _id {id}: {message}; nothing was written for that document, fix it (or quarantine it) and run again with --resume")]
    Refused {
        /// The collection written to.
        ns: String,
        /// The document's `_id`, rendered.
        id: String,
        /// What the server said (or the embedded store's equivalent).
        message: String,
    },
    /// The server applied a write but could not confirm the write concern
    /// the store URL asks for.
    #[error("write to {ns} not confirmed by the write concern: {message}; the data may not be durable yet, check the replica set and run again with --resume")]
    WriteConcern {
        /// The collection written to.
        ns: String,
        /// What the server said.
        message: String,
    },
    /// An index of that name exists with other keys or options.
    #[error("{ns} already has an index named {name} with other keys or options (it is {existing}; wanted {wanted}): check that nothing relies on it, drop it (db.{coll}.dropIndex(\"{name}\")), then run the command again")]
    IndexConflict {
        /// The collection.
        ns: String,
        /// Its bare collection name.
        coll: String,
        /// The index name.
        name: String,
        /// The index as it is.
        existing: String,
        /// The index as asked for.
        wanted: String,
    },
    /// A write was attempted through the read-only wrapper of a dry run.
    #[error("dry run: refused a write ({0}); this is a bug, please report it")]
    ReadOnly(String),
}

/// Result of a store call.
pub type StoreResult<T> = Result<T, StoreError>;

/// A stream of documents in scan order. Each item may fail on its own (a
/// network error mid-stream), so the caller decides whether to stop.
pub type DocStream<'a> = Box<dyn Iterator<Item = StoreResult<Document>> + 'a>;

/// A stream of documents as their BSON bytes, for commands that only move
/// documents (`import`, `export`) and need not decode them.
pub type RawDocStream<'a> = Box<dyn Iterator<Item = StoreResult<RawDocumentBuf>> + 'a>;

/// A document as a stream fetched it: its BSON bytes where the store holds
/// BSON, to be decoded later on whichever thread needs it (decoding on the
/// reader thread made that thread the slowest stage of a migration), or
/// already decoded where the store's driver decodes.
#[derive(Debug, Clone)]
pub enum Fetched {
    /// The document's bytes, framing checked, content not yet.
    Bytes(RawDocumentBuf),
    /// The document, decoded by the store.
    Decoded(Document),
}

impl Fetched {
    /// The sort key of a top-level field's value, as [`keys::sort_key`] gives it.
    pub fn sort_key_of(&self, field: &str) -> Vec<u8> {
        match self {
            Fetched::Bytes(raw) => keys::raw_sort_key(raw.get(field).ok().flatten()),
            Fetched::Decoded(doc) => keys::sort_key(doc.get(field)),
        }
    }

    /// A top-level field's value; `None` when it is missing or cannot be read.
    pub fn field(&self, field: &str) -> Option<Bson> {
        match self {
            Fetched::Bytes(raw) => raw
                .get(field)
                .ok()
                .flatten()
                .and_then(|v| Bson::try_from(v.to_raw_bson()).ok()),
            Fetched::Decoded(doc) => doc.get(field).cloned(),
        }
    }

    /// The document, decoded.
    pub fn decode(self) -> StoreResult<Document> {
        match self {
            Fetched::Bytes(raw) => decode_raw(&raw),
            Fetched::Decoded(doc) => Ok(doc),
        }
    }
}

/// A document from its BSON bytes; bytes that do not decode are an
/// encoding error.
pub(crate) fn decode_raw(raw: &bson::RawDocument) -> StoreResult<Document> {
    crate::encoded::from_raw(raw).map_err(|e| StoreError::Encoding(e.to_string()))
}

/// A stream of [`Fetched`] documents in scan order.
pub type FetchedStream<'a> = Box<dyn Iterator<Item = StoreResult<Fetched>> + 'a>;

/// The verbs the phases need from a database, and nothing else.
///
/// Documents are plain `bson::Document`s; `_id` is whatever the application
/// stored (strings and ObjectIds both occur in production).
pub trait Store {
    /// Where this store points, with any password redacted: safe to print.
    fn describe(&self) -> String;

    /// A second, independent handle for a reader thread, so reading can run
    /// ahead of writing; `None` where the data cannot be shared (in memory).
    fn reader(&self) -> Option<Box<dyn Store + Send>>;

    /// The collections of a database, sorted by name.
    fn list_collections(&self, db: &str) -> StoreResult<Vec<String>>;

    /// Creates an empty collection; `Ok(false)` when it already existed.
    fn create_collection(&self, ns: &Ns) -> StoreResult<bool>;

    /// Drops a collection and its indexes; `Ok(false)` when it did not exist.
    fn drop_collection(&self, ns: &Ns) -> StoreResult<bool>;

    /// Renames a collection inside its database. Fails if `to` exists.
    fn rename_collection(&self, from: &Ns, to_coll: &str) -> StoreResult<()>;

    /// The number of documents in a collection (0 when it does not exist).
    fn count(&self, ns: &Ns) -> StoreResult<u64>;

    /// Streams a collection in a stable order, `batch_size` documents per
    /// round trip. A missing collection streams nothing.
    fn scan(&self, ns: &Ns, scan: &Scan) -> StoreResult<DocStream<'_>>;

    /// [`Store::scan`], each document as its BSON bytes. The default
    /// encodes what `scan` decoded; a store holding BSON hands it over.
    fn scan_raw(&self, ns: &Ns, scan: &Scan) -> StoreResult<RawDocStream<'_>> {
        Ok(Box::new(self.scan(ns, scan)?.map(|doc| {
            RawDocumentBuf::from_document(&doc?).map_err(|e| StoreError::Encoding(e.to_string()))
        })))
    }

    /// [`Store::scan`], each document as the store has it: bytes where it
    /// holds BSON (its decoding left to the caller), decoded otherwise.
    fn scan_fetched(&self, ns: &Ns, scan: &Scan) -> StoreResult<FetchedStream<'_>> {
        Ok(Box::new(
            self.scan(ns, scan)?.map(|doc| doc.map(Fetched::Decoded)),
        ))
    }

    /// Whether the store writes BSON bytes as it is handed them, so that an
    /// insert of bytes (`Op::InsertBytes`) costs it nothing more than one of
    /// a document. The MongoDB driver encodes documents itself.
    fn writes_bson(&self) -> bool {
        false
    }

    /// Reads documents by `_id`; missing ids are simply absent from the result.
    fn get_many(&self, ns: &Ns, ids: &[Bson]) -> StoreResult<Vec<Document>>;

    /// Inserts new documents in one batch; a duplicate `_id` or unique key
    /// fails the call and (on SQLite) writes nothing.
    fn insert_many(&self, ns: &Ns, docs: &[Document]) -> StoreResult<()>;

    /// Replaces or inserts documents by `_id`, in one batch.
    fn upsert_many(&self, ns: &Ns, docs: &[Document]) -> StoreResult<()>;

    /// [`Store::insert_many`] (`upsert` false) or [`Store::upsert_many`] of
    /// documents given as BSON bytes, each with an `_id`. The default
    /// decodes them; a store holding BSON writes the bytes as they are.
    fn write_raw(&self, ns: &Ns, docs: &[RawDocumentBuf], upsert: bool) -> StoreResult<()> {
        let decoded = docs
            .iter()
            .map(|raw| crate::encoded::from_raw(raw))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| StoreError::Encoding(e.to_string()))?;
        if upsert {
            self.upsert_many(ns, &decoded)
        } else {
            self.insert_many(ns, &decoded)
        }
    }

    /// Applies guarded patches, each to one document: operations run in
    /// order, each atomic, each only while its guards hold. Whatever a patch
    /// does not name is kept, so a concurrent writer's change survives. The
    /// outcome of every patch comes back in order; only a failure of the
    /// store itself (connection, I/O) is an `Err`.
    fn patch_many(&self, ns: &Ns, patches: &[Patch]) -> StoreResult<Vec<Outcome>>;

    /// Sets and unsets top-level fields of existing documents in one batch;
    /// returns how many documents matched.
    fn update_fields(&self, ns: &Ns, updates: &[FieldUpdate]) -> StoreResult<u64>;

    /// Deletes documents by `_id`; returns how many were deleted.
    fn delete_many(&self, ns: &Ns, ids: &[Bson]) -> StoreResult<u64>;

    /// Creates an index (and the collection if needed). `Ok(false)` when an
    /// index of that name already exists. A unique index is enforced on every
    /// later write, and creating it fails if the data already breaks it.
    fn create_index(&self, ns: &Ns, spec: &IndexSpec) -> StoreResult<bool>;

    /// The indexes of a collection other than the implicit `_id` one, by name.
    fn list_indexes(&self, ns: &Ns) -> StoreResult<Vec<IndexSpec>>;
}

/// Opens the store a URL names: `sqlite:PATH`, `mongodb://…` or `mongodb+srv://…`.
/// An embedded store that does not exist yet is created.
pub fn open(url: &str) -> StoreResult<Box<dyn Store>> {
    open_for(url, true)
}

/// Opens a store that must already hold data: a command that only reads or
/// works on existing data refuses a `sqlite:` path with no file behind it
/// (a typo would otherwise create a new, empty store and report on nothing).
pub fn open_existing(url: &str) -> StoreResult<Box<dyn Store>> {
    open_for(url, false)
}

fn open_for(url: &str, create: bool) -> StoreResult<Box<dyn Store>> {
    if let Some(path) = url.strip_prefix("sqlite:") {
        let new =
            path != ":memory:" && !path.trim().is_empty() && !std::path::Path::new(path).exists();
        if new && !create {
            return Err(StoreError::BadUrl(format!(
                "no store at {path}: check --store (a typo would create a new, empty store); `edn-migrate import DIR` or `edn-migrate phase0 prepare` creates one"
            )));
        }
        Ok(Box::new(sqlite::SqliteStore::open(path)?))
    } else if url.starts_with("mongodb://") || url.starts_with("mongodb+srv://") {
        Ok(Box::new(mongo::MongoStore::connect(url)?))
    } else {
        Err(StoreError::BadUrl(format!(
            "unsupported store URL {}: use sqlite:PATH, mongodb://HOST or mongodb+srv://HOST (--store or MONGO_URL)",
            crate::redact::redact_url(url)
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::{doc, oid::ObjectId};

    /// Whatever type `user_id` has, a document fetched as bytes sorts,
    /// reads and decodes as the same document fetched decoded.
    #[test]
    fn fetched_bytes_read_as_the_decoded_document() {
        let values = [
            Bson::from("u1"),
            Bson::Int32(7),
            Bson::Int64(-3),
            Bson::Double(2.5),
            Bson::Null,
            Bson::ObjectId(ObjectId::from_bytes([1; 12])),
            Bson::Document(doc! {"a": 1}),
            Bson::Array(vec![Bson::from("x"), Bson::Int32(1)]),
            Bson::DateTime(bson::DateTime::from_millis(1_700_000_000_000)),
        ];
        let mut docs: Vec<Document> = values
            .into_iter()
            .map(|v| doc! {"_id": 1, "user_id": v, "rest": {"k": [1, "two"]}})
            .collect();
        docs.push(doc! {"_id": 2});
        for d in docs {
            let bytes = Fetched::Bytes(RawDocumentBuf::from_document(&d).unwrap());
            let decoded = Fetched::Decoded(d.clone());
            assert_eq!(bytes.sort_key_of("user_id"), decoded.sort_key_of("user_id"));
            assert_eq!(bytes.field("user_id"), decoded.field("user_id"), "{d}");
            assert_eq!(bytes.decode().unwrap(), d);
        }
    }

    #[test]
    fn fetched_bytes_that_do_not_decode_fail_with_an_encoding_error() {
        let mut bytes = RawDocumentBuf::from_document(&doc! {"user_id": "u1", "s": "ab"})
            .unwrap()
            .into_bytes();
        let at = bytes.len() - 3; // the "b" of the last string
        bytes[at] = 0xff;
        let fetched = Fetched::Bytes(RawDocumentBuf::from_bytes(bytes).unwrap());
        assert_eq!(fetched.field("user_id"), Some(Bson::from("u1")));
        assert!(matches!(fetched.decode(), Err(StoreError::Encoding(_))));
    }
}
