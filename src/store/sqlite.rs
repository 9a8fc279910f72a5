//! The embedded store: SQLite (bundled) holding BSON documents.
//!
//! Each collection is a table of `(k, doc)` where `doc` is the BSON of the
//! document and `k` the sort key of its `_id` (see `keys.rs`). Orders and
//! indexes use the SQL function `edn_key(doc, 'path')`, so a unique index on
//! `user_id` is a real `CREATE UNIQUE INDEX` that SQLite enforces on every
//! write. Every batch is one transaction; the database runs in WAL mode,
//! and a thread of its own copies the log into the file (`checkpoint.rs`).

use super::checkpoint::{Checkpointer, BACKSTOP_PAGES};
use super::keys::{raw_sort_key, raw_value_at_path, sort_key};
use super::patch::{self, Op, Outcome, Patch, MAX_DOCUMENT_BYTES};
use super::{
    After, DocStream, Fetched, FetchedStream, FieldUpdate, IndexSpec, Ns, Order, RawDocStream,
    Scan, Store, StoreError, StoreResult,
};
use bson::{Bson, Document, RawDocument, RawDocumentBuf};
use rusqlite::functions::FunctionFlags;
use rusqlite::{
    params, Connection, ErrorCode, OptionalExtension, Transaction, TransactionBehavior,
};
use std::cell::OnceCell;
use std::collections::VecDeque;

/// The page size of a new store file (SQLite's default is 4,096). A legacy
/// document is 1 to 5 KB as BSON, so with 4 KiB pages most of them spilled
/// into overflow pages: with 16 KiB the file is 15% smaller, and import,
/// dry run and migrate 5 to 10% faster. A file keeps the size it was made
/// with; SQLite ignores this for an existing one.
const FILE_PAGE_BYTES: i64 = 16_384;

/// A store in one SQLite file (or in memory, for tests: `sqlite::memory:`).
pub struct SqliteStore {
    conn: Connection,
    path: String,
    /// Started at the first commit; never for a store in memory.
    checkpoints: OnceCell<Option<Checkpointer>>,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS edn_collections (
    id INTEGER PRIMARY KEY,
    db TEXT NOT NULL,
    name TEXT NOT NULL,
    UNIQUE (db, name)
);
CREATE TABLE IF NOT EXISTS edn_indexes (
    coll_id INTEGER NOT NULL REFERENCES edn_collections(id),
    name TEXT NOT NULL,
    keys TEXT NOT NULL,
    is_unique INTEGER NOT NULL,
    sql_name TEXT NOT NULL UNIQUE,
    PRIMARY KEY (coll_id, name)
);
";

impl SqliteStore {
    /// Opens (creating if needed) the database file at `path`. A failure
    /// names the file and what to do about it (a missing folder, a file or
    /// folder this user cannot write).
    pub fn open(path: &str) -> StoreResult<SqliteStore> {
        if path.trim().is_empty() {
            return Err(StoreError::BadUrl(
                "--store sqlite: needs a path, e.g. --store sqlite:./edn-migrate.db".into(),
            ));
        }
        Self::connect(path).map_err(|e| explain_open_error(path, e))
    }

    fn connect(path: &str) -> StoreResult<SqliteStore> {
        owner_only(path);
        let conn = if path == ":memory:" {
            Connection::open_in_memory()?
        } else {
            Connection::open(path)?
        };
        conn.pragma_update(None, "page_size", FILE_PAGE_BYTES)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "wal_autocheckpoint", BACKSTOP_PAGES)?;
        conn.busy_timeout(std::time::Duration::from_secs(30))?;
        conn.create_scalar_function(
            "edn_key",
            2,
            FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
            |ctx| {
                let blob = ctx.get_raw(0).as_blob().map_err(user_error)?;
                let path = ctx.get_raw(1).as_str().map_err(user_error)?;
                let doc = RawDocument::from_bytes(blob).map_err(user_error)?;
                Ok(raw_sort_key(raw_value_at_path(doc, path)))
            },
        )?;
        conn.execute_batch(SCHEMA)?;
        add_spec_column(&conn)?;
        Ok(SqliteStore {
            conn,
            path: path.to_string(),
            checkpoints: OnceCell::new(),
        })
    }

    /// Every write takes SQLite's write lock up front (`BEGIN IMMEDIATE`):
    /// a second writer waits for it (busy timeout) instead of failing with
    /// SQLITE_BUSY when it tries to upgrade a read, so two racing runners
    /// meet at the migration lock and the loser gets exit 4.
    fn write_transaction(&self) -> StoreResult<Transaction<'_>> {
        Ok(Transaction::new_unchecked(
            &self.conn,
            TransactionBehavior::Immediate,
        )?)
    }

    /// Commits, then leaves copying the log into the database file to the
    /// checkpoint thread (`checkpoint.rs`).
    fn commit(&self, tx: Transaction<'_>) -> StoreResult<()> {
        tx.commit()?;
        if self.path != ":memory:" {
            let checkpoints = self
                .checkpoints
                .get_or_init(|| Checkpointer::start(&self.path));
            if let Some(c) = checkpoints {
                c.wake();
            }
        }
        Ok(())
    }

    fn collection_id(&self, ns: &Ns) -> StoreResult<Option<i64>> {
        Ok(self
            .conn
            .prepare_cached("SELECT id FROM edn_collections WHERE db = ?1 AND name = ?2")?
            .query_row(params![ns.db, ns.coll], |r| r.get(0))
            .optional()?)
    }

    fn ensure_collection(&self, ns: &Ns) -> StoreResult<(i64, bool)> {
        if let Some(id) = self.collection_id(ns)? {
            return Ok((id, false));
        }
        check_name(&ns.db)?;
        check_name(&ns.coll)?;
        self.conn.execute(
            "INSERT INTO edn_collections (db, name) VALUES (?1, ?2)",
            params![ns.db, ns.coll],
        )?;
        let id = self.conn.last_insert_rowid();
        self.conn.execute_batch(&format!(
            "CREATE TABLE {} (k BLOB NOT NULL UNIQUE, doc BLOB NOT NULL)",
            table(id)
        ))?;
        Ok((id, true))
    }

    /// The table of a collection, creating it inside the caller's transaction.
    fn table_for_write(&self, ns: &Ns) -> StoreResult<String> {
        Ok(table(self.ensure_collection(ns)?.0))
    }

    fn index_sql_name(&self, sql_name: &str) -> StoreResult<Option<String>> {
        Ok(self
            .conn
            .prepare_cached("SELECT name FROM edn_indexes WHERE sql_name = ?1")?
            .query_row(params![sql_name], |r| r.get(0))
            .optional()?)
    }

    /// Turns SQLite's "UNIQUE constraint failed" into the error MongoDB gives.
    fn duplicate_or(&self, err: rusqlite::Error, ns: &Ns, id: Option<&Bson>) -> StoreError {
        let rusqlite::Error::SqliteFailure(code, Some(message)) = &err else {
            return err.into();
        };
        if code.code != ErrorCode::ConstraintViolation || !message.contains("UNIQUE") {
            return err.into();
        }
        let index = match message.split("index '").nth(1) {
            Some(rest) => {
                let sql_name = rest.trim_end_matches('\'');
                self.index_sql_name(sql_name)
                    .ok()
                    .flatten()
                    .unwrap_or_else(|| sql_name.to_string())
            }
            None => "_id_".to_string(),
        };
        StoreError::DuplicateKey {
            ns: ns.to_string(),
            index,
            key: id.map_or_else(|| "?".into(), |v| format!("_id {v}")),
        }
    }

    /// Up to `limit` documents after `after`, and whether the page stopped
    /// early at `PAGE_BYTES` (the scan is then not done).
    fn fetch_page<T>(
        &self,
        table: &str,
        order: &Order,
        after: Option<&(Vec<u8>, Vec<u8>)>,
        limit: u32,
        convert: fn(Vec<u8>) -> StoreResult<T>,
    ) -> StoreResult<(Vec<PageRow<T>>, bool)> {
        let sql = page_sql(table, order, after.is_some());
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let (f, k) = match after {
            Some((f, k)) => (Some(f.as_slice()), Some(k.as_slice())),
            None => (None, None),
        };
        let rows = stmt.query_map(params![f, k, limit], |r| {
            Ok((
                r.get::<_, Vec<u8>>(0)?,
                r.get::<_, Vec<u8>>(1)?,
                r.get::<_, Vec<u8>>(2)?,
            ))
        })?;
        let mut page = Vec::new();
        let mut bytes = 0;
        for row in rows {
            let (f, k, blob) = row?;
            bytes += blob.len();
            page.push((f, k, convert(blob)?));
            if bytes >= PAGE_BYTES {
                return Ok((page, true));
            }
        }
        Ok((page, false))
    }

    /// A scan of `ns` yielding `convert` of every stored document (nothing
    /// when the collection does not exist).
    fn scan_as<T: 'static>(
        &self,
        ns: &Ns,
        scan: &Scan,
        convert: fn(Vec<u8>) -> StoreResult<T>,
    ) -> StoreResult<Box<dyn Iterator<Item = StoreResult<T>> + '_>> {
        let Some(id) = self.collection_id(ns)? else {
            return Ok(Box::new(std::iter::empty()));
        };
        Ok(Box::new(SqliteScan {
            store: self,
            table: table(id),
            order: scan.order.clone(),
            after: scan.after.as_ref().map(|a| after_keys(&scan.order, a)),
            batch_size: scan.batch_size.max(1),
            buffer: VecDeque::new(),
            done: false,
            convert,
        }))
    }

    fn stored_bytes(&self, table: &str, key: &[u8]) -> StoreResult<Option<Vec<u8>>> {
        Ok(self
            .conn
            .prepare_cached(&format!("SELECT doc FROM {table} WHERE k = ?1"))?
            .query_row(params![key], |r| r.get(0))
            .optional()?)
    }

    /// The row under `key` (its rowid) and its document with `update`
    /// applied, `None` for the document when that changes nothing. The
    /// stored bytes are patched where SQLite holds them, and the update
    /// then goes straight to the row: reading them out first, and finding
    /// the row again by its key, were a fifth of the plan stamps' time.
    fn patched_row(
        &self,
        table: &str,
        key: &[u8],
        update: &FieldUpdate,
    ) -> StoreResult<Option<(i64, Option<Vec<u8>>)>> {
        let mut stmt = self
            .conn
            .prepare_cached(&format!("SELECT rowid, doc FROM {table} WHERE k = ?1"))?;
        let mut rows = stmt.query(params![key])?;
        let Some(row) = rows.next()? else {
            return Ok(None);
        };
        let blob = row.get_ref(1)?.as_blob().map_err(rusqlite::Error::from)?;
        let patched = patch(blob, update)?;
        let changed = (patched != blob).then_some(patched);
        Ok(Some((row.get(0)?, changed)))
    }

    fn write_one(&self, ns: &Ns, table: &str, doc: &Document, replace: bool) -> StoreResult<()> {
        self.write_encoded(ns, table, doc.get("_id"), &encode(doc)?, replace)
    }

    fn write_encoded(
        &self,
        ns: &Ns,
        table: &str,
        id: Option<&Bson>,
        bytes: &[u8],
        replace: bool,
    ) -> StoreResult<()> {
        self.write_row(ns, table, sort_key(id), bytes, replace, &|| id.cloned())
    }

    /// Writes one encoded document under `key`, the sort key of its `_id`;
    /// `id` gives the `_id` to name in an error, only when there is one.
    fn write_row(
        &self,
        ns: &Ns,
        table: &str,
        key: Vec<u8>,
        bytes: &[u8],
        replace: bool,
        id: &dyn Fn() -> Option<Bson>,
    ) -> StoreResult<()> {
        if bytes.len() > MAX_DOCUMENT_BYTES {
            return Err(too_large(ns, id().as_ref(), bytes.len()));
        }
        self.conn
            .prepare_cached(&insert_sql(table, replace))?
            .execute(params![key, bytes])
            .map_err(|e| self.duplicate_or(e, ns, id().as_ref()))?;
        Ok(())
    }
}

fn insert_sql(table: &str, replace: bool) -> String {
    if replace {
        format!("INSERT INTO {table} (k, doc) VALUES (?1, ?2) ON CONFLICT(k) DO UPDATE SET doc = excluded.doc")
    } else {
        format!("INSERT INTO {table} (k, doc) VALUES (?1, ?2)")
    }
}

/// The query of one scan page. By `_id` it seeks the primary key alone: a
/// constant sort field in the filter would make SQLite scan and sort the
/// whole table for every page. By a field it is spelled out rather than as a
/// row value `(f, k) > (?1, ?2)`: SQLite seeks an expression index only on a
/// plain range of the expression.
fn page_sql(table: &str, order: &Order, resumed: bool) -> String {
    match (order, resumed) {
        (Order::ById, true) => {
            format!("SELECT x'', k, doc FROM {table} WHERE ?1 IS NOT NULL AND k > ?2 ORDER BY k LIMIT ?3")
        }
        (Order::ById, false) => format!(
            "SELECT x'', k, doc FROM {table} WHERE ?1 IS NULL AND ?2 IS NULL ORDER BY k LIMIT ?3"
        ),
        (Order::ByField(path), resumed) => {
            let field = format!("edn_key(doc, {})", sql_literal(path));
            let filter = if resumed {
                format!("WHERE {field} >= ?1 AND ({field} > ?1 OR k > ?2)")
            } else {
                "WHERE ?1 IS NULL AND ?2 IS NULL".to_string()
            };
            format!("SELECT {field}, k, doc FROM {table} {filter} ORDER BY {field}, k LIMIT ?3")
        }
    }
}

impl SqliteStore {
    /// Runs one patch inside the caller's transaction, one operation at a
    /// time, writing after each as MongoDB would; the first operation whose
    /// guards fail (or that is refused) stops it.
    fn patch_one(
        &self,
        ns: &Ns,
        table: &str,
        p: &Patch,
        encoded: Option<&[u8]>,
    ) -> StoreResult<Outcome> {
        let key = sort_key(Some(&p.id));
        if let Some(bytes) = encoded {
            // A new drawer, encoded beforehand: nothing to read back after it.
            if self.stored_bytes(table, &key)?.is_some() {
                return Ok(Outcome::Conflict);
            }
            let written = refusal(self.write_encoded(ns, table, Some(&p.id), bytes, false))?;
            return Ok(written.err().unwrap_or(Outcome::Applied));
        }
        let mut current = match self.stored_bytes(table, &key)? {
            Some(blob) => Some(decode(&blob)?),
            None => None,
        };
        for op in &p.ops {
            let refused = |message: String| StoreError::Refused {
                ns: ns.to_string(),
                id: p.id.to_string(),
                message,
            };
            match (op, current.as_mut()) {
                (Op::Insert(_) | Op::InsertBytes(_), Some(_)) => return Ok(Outcome::Conflict),
                (Op::InsertBytes(raw), None) => {
                    let bytes = raw.as_bytes();
                    if let Err(outcome) =
                        refusal(self.write_encoded(ns, table, Some(&p.id), bytes, false))?
                    {
                        return Ok(outcome);
                    }
                    current = Some(decode(bytes)?);
                }
                (Op::Insert(doc), None) => {
                    if let Err(outcome) = refusal(self.write_one(ns, table, doc, false))? {
                        return Ok(outcome);
                    }
                    current = Some(doc.clone());
                }
                (Op::Update(_) | Op::Delete(_), None) => return Ok(Outcome::Conflict),
                (Op::Update(step), Some(doc)) => {
                    let mut next = doc.clone();
                    match patch::apply_step(&mut next, step) {
                        Ok(false) => return Ok(Outcome::Conflict),
                        Err(message) => return Ok(Outcome::Refused(refused(message))),
                        Ok(true) => {}
                    }
                    if let Err(outcome) = refusal(self.write_one(ns, table, &next, true))? {
                        return Ok(outcome);
                    }
                    *doc = next;
                }
                (Op::Delete(guards), Some(doc)) => {
                    if !patch::guards_hold(doc, guards) {
                        return Ok(Outcome::Conflict);
                    }
                    self.conn
                        .prepare_cached(&format!("DELETE FROM {table} WHERE k = ?1"))?
                        .execute(params![key])?;
                    current = None;
                }
            }
        }
        Ok(Outcome::Applied)
    }
}

impl Store for SqliteStore {
    fn describe(&self) -> String {
        format!("sqlite:{}", self.path)
    }

    fn reader(&self) -> Option<Box<dyn Store + Send>> {
        if self.path == ":memory:" {
            return None;
        }
        let store = SqliteStore::open(&self.path).ok()?;
        Some(Box::new(store))
    }

    fn list_collections(&self, db: &str) -> StoreResult<Vec<String>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT name FROM edn_collections WHERE db = ?1 ORDER BY name")?;
        let names = stmt.query_map(params![db], |r| r.get(0))?;
        Ok(names.collect::<Result<_, _>>()?)
    }

    fn create_collection(&self, ns: &Ns) -> StoreResult<bool> {
        let tx = self.write_transaction()?;
        let (_, created) = self.ensure_collection(ns)?;
        self.commit(tx)?;
        Ok(created)
    }

    fn drop_collection(&self, ns: &Ns) -> StoreResult<bool> {
        let Some(id) = self.collection_id(ns)? else {
            return Ok(false);
        };
        let tx = self.write_transaction()?;
        tx.execute_batch(&format!("DROP TABLE IF EXISTS {}", table(id)))?;
        tx.execute("DELETE FROM edn_indexes WHERE coll_id = ?1", params![id])?;
        tx.execute("DELETE FROM edn_collections WHERE id = ?1", params![id])?;
        self.commit(tx)?;
        Ok(true)
    }

    fn rename_collection(&self, from: &Ns, to_coll: &str) -> StoreResult<()> {
        let to = Ns::new(from.db.clone(), to_coll);
        check_name(to_coll)?;
        let id = self
            .collection_id(from)?
            .ok_or_else(|| StoreError::Missing(from.to_string()))?;
        if self.collection_id(&to)?.is_some() {
            return Err(StoreError::Exists(to.to_string()));
        }
        self.conn.execute(
            "UPDATE edn_collections SET name = ?1 WHERE id = ?2",
            params![to_coll, id],
        )?;
        Ok(())
    }

    fn count(&self, ns: &Ns) -> StoreResult<u64> {
        let Some(id) = self.collection_id(ns)? else {
            return Ok(0);
        };
        let n: i64 =
            self.conn
                .query_row(&format!("SELECT COUNT(*) FROM {}", table(id)), [], |r| {
                    r.get(0)
                })?;
        Ok(n as u64)
    }

    fn scan(&self, ns: &Ns, scan: &Scan) -> StoreResult<DocStream<'_>> {
        self.scan_as(ns, scan, |blob| decode(&blob))
    }

    fn scan_raw(&self, ns: &Ns, scan: &Scan) -> StoreResult<RawDocStream<'_>> {
        self.scan_as(ns, scan, |blob| {
            RawDocumentBuf::from_bytes(blob).map_err(|e| StoreError::Encoding(e.to_string()))
        })
    }

    fn scan_fetched(&self, ns: &Ns, scan: &Scan) -> StoreResult<FetchedStream<'_>> {
        self.scan_as(ns, scan, |blob| {
            RawDocumentBuf::from_bytes(blob)
                .map(Fetched::Bytes)
                .map_err(|e| StoreError::Encoding(e.to_string()))
        })
    }

    fn writes_bson(&self) -> bool {
        true
    }

    fn get_many(&self, ns: &Ns, ids: &[Bson]) -> StoreResult<Vec<Document>> {
        let Some(id) = self.collection_id(ns)? else {
            return Ok(Vec::new());
        };
        let table = table(id);
        let mut found = Vec::with_capacity(ids.len());
        for wanted in ids {
            if let Some(blob) = self.stored_bytes(&table, &sort_key(Some(wanted)))? {
                found.push(decode(&blob)?);
            }
        }
        Ok(found)
    }

    fn insert_many(&self, ns: &Ns, docs: &[Document]) -> StoreResult<()> {
        let with_ids: Vec<std::borrow::Cow<'_, Document>> = docs
            .iter()
            .map(|doc| {
                if doc.contains_key("_id") {
                    std::borrow::Cow::Borrowed(doc)
                } else {
                    let mut with_id = bson::doc! { "_id": bson::oid::ObjectId::new() };
                    with_id.extend(doc.clone());
                    std::borrow::Cow::Owned(with_id)
                }
            })
            .collect();
        let refs: Vec<&Document> = with_ids.iter().map(|d| d.as_ref()).collect();
        // Encoded on all cores before the write lock is taken.
        let encoded = encode_all(&refs)?;
        let tx = self.write_transaction()?;
        let table = self.table_for_write(ns)?;
        for (doc, bytes) in refs.iter().zip(encoded) {
            self.write_encoded(ns, &table, doc.get("_id"), &bytes, false)?;
        }
        self.commit(tx)?;
        Ok(())
    }

    fn write_raw(&self, ns: &Ns, docs: &[RawDocumentBuf], upsert: bool) -> StoreResult<()> {
        let tx = self.write_transaction()?;
        let table = self.table_for_write(ns)?;
        for doc in docs {
            let id = doc
                .get("_id")
                .map_err(|e| StoreError::Encoding(e.to_string()))?
                .ok_or_else(no_id)?;
            let key = raw_sort_key(Some(id));
            self.write_row(ns, &table, key, doc.as_bytes(), upsert, &|| {
                Bson::try_from(id).ok()
            })?;
        }
        self.commit(tx)?;
        Ok(())
    }

    fn upsert_many(&self, ns: &Ns, docs: &[Document]) -> StoreResult<()> {
        let tx = self.write_transaction()?;
        let table = self.table_for_write(ns)?;
        let refs: Vec<&Document> = docs.iter().collect();
        for (doc, bytes) in docs.iter().zip(encode_all(&refs)?) {
            let id = require_id(doc)?;
            self.write_encoded(ns, &table, Some(id), &bytes, true)?;
        }
        self.commit(tx)?;
        Ok(())
    }

    fn patch_many(&self, ns: &Ns, patches: &[Patch]) -> StoreResult<Vec<Outcome>> {
        // New drawers are encoded on all cores before the write lock is taken.
        let new: Vec<&Document> = patches
            .iter()
            .filter_map(|p| match p.ops.as_slice() {
                [Op::Insert(doc)] => Some(doc),
                _ => None,
            })
            .collect();
        let mut encoded = encode_all(&new)?.into_iter();
        let tx = self.write_transaction()?;
        let table = self.table_for_write(ns)?;
        let mut outcomes = Vec::with_capacity(patches.len());
        for p in patches {
            let encoded_here;
            let bytes = match p.ops.as_slice() {
                [Op::Insert(_)] => {
                    encoded_here = encoded.next();
                    encoded_here.as_deref()
                }
                [Op::InsertBytes(raw)] => Some(raw.as_bytes()),
                _ => None,
            };
            outcomes.push(self.patch_one(ns, &table, p, bytes)?);
        }
        self.commit(tx)?;
        Ok(outcomes)
    }

    fn update_fields(&self, ns: &Ns, updates: &[FieldUpdate]) -> StoreResult<u64> {
        let Some(id) = self.collection_id(ns)? else {
            return Ok(0);
        };
        let table = table(id);
        let tx = self.write_transaction()?;
        let mut matched = 0;
        for update in updates {
            let Some(found) = self.patched_row(&table, &sort_key(Some(&update.id)), update)? else {
                continue;
            };
            matched += 1;
            // `None`: already so (a run over its own output), nothing to write.
            if let (rowid, Some(patched)) = found {
                self.conn
                    .prepare_cached(&format!("UPDATE {table} SET doc = ?1 WHERE rowid = ?2"))?
                    .execute(params![patched, rowid])
                    .map_err(|e| self.duplicate_or(e, ns, Some(&update.id)))?;
            }
        }
        self.commit(tx)?;
        Ok(matched)
    }

    fn delete_many(&self, ns: &Ns, ids: &[Bson]) -> StoreResult<u64> {
        let Some(id) = self.collection_id(ns)? else {
            return Ok(0);
        };
        let tx = self.write_transaction()?;
        let mut deleted = 0;
        {
            let mut stmt = self
                .conn
                .prepare_cached(&format!("DELETE FROM {} WHERE k = ?1", table(id)))?;
            for wanted in ids {
                deleted += stmt.execute(params![sort_key(Some(wanted))])? as u64;
            }
        }
        self.commit(tx)?;
        Ok(deleted)
    }

    fn create_index(&self, ns: &Ns, spec: &IndexSpec) -> StoreResult<bool> {
        if spec.keys.is_empty() {
            return Err(StoreError::BadName(spec.name.clone()));
        }
        let tx = self.write_transaction()?;
        let (coll_id, _) = self.ensure_collection(ns)?;
        if !super::index::needs_creating(&self.list_indexes(ns)?, ns, spec)? {
            return Ok(false);
        }
        let seq: i64 = self.conn.query_row(
            "SELECT COUNT(*) FROM edn_indexes WHERE coll_id = ?1",
            params![coll_id],
            |r| r.get(0),
        )?;
        let sql_name = format!("edn_ix_{coll_id}_{}", seq + 1);
        let mut columns: Vec<String> = spec
            .keys
            .iter()
            .map(|k| {
                let column = match k.as_str() {
                    "_id" => "k".to_string(),
                    path => format!("edn_key(doc, {})", sql_literal(path)),
                };
                if spec.descending.contains(k) {
                    format!("{column} DESC")
                } else {
                    column
                }
            })
            .collect();
        // Uniqueness over part of a collection (sparse, partial) is not
        // enforced here; such an index is recorded and used for order only.
        let unique = spec.unique && !spec.sparse && spec.partial_filter.is_none();
        // A non-unique index also orders by `_id` (k), so a scan ordered by
        // (field, _id) resumes with an index seek instead of a sort.
        if !unique && !columns.iter().any(|c| c == "k" || c == "k DESC") {
            columns.push("k".into());
        }
        let keyword = if unique { "UNIQUE " } else { "" };
        self.conn
            .execute_batch(&format!(
                "CREATE {keyword}INDEX {sql_name} ON {} ({})",
                table(coll_id),
                columns.join(", ")
            ))
            .map_err(|e| match self.duplicate_or(e, ns, None) {
                StoreError::DuplicateKey { ns, key, .. } => StoreError::DuplicateKey {
                    ns,
                    index: spec.name.clone(),
                    key,
                },
                other => other,
            })?;
        let definition = bson::to_vec(spec).map_err(|e| StoreError::Encoding(e.to_string()))?;
        self.conn.execute(
            "INSERT INTO edn_indexes (coll_id, name, keys, is_unique, sql_name, spec) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![coll_id, spec.name, spec.keys.join(","), unique, sql_name, definition],
        )?;
        self.commit(tx)?;
        Ok(true)
    }

    fn list_indexes(&self, ns: &Ns) -> StoreResult<Vec<IndexSpec>> {
        let Some(id) = self.collection_id(ns)? else {
            return Ok(Vec::new());
        };
        let mut stmt = self.conn.prepare_cached(
            "SELECT name, keys, is_unique, spec FROM edn_indexes WHERE coll_id = ?1 ORDER BY name",
        )?;
        let rows = stmt.query_map(params![id], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, bool>(2)?,
                r.get::<_, Option<Vec<u8>>>(3)?,
            ))
        })?;
        let mut specs = Vec::new();
        for row in rows {
            let (name, keys, unique, definition) = row?;
            let spec = match definition {
                Some(bytes) => bson::from_slice(&bytes)
                    .map_err(|e| StoreError::Encoding(format!("index {name}: {e}")))?,
                // Written before index definitions were kept whole.
                None => IndexSpec {
                    name,
                    keys: keys.split(',').map(str::to_string).collect(),
                    unique,
                    ..IndexSpec::default()
                },
            };
            specs.push(spec);
        }
        Ok(specs)
    }
}

/// One row of a page: the sort key of the ordered field, the `_id` key, the document.
type PageRow<T> = (Vec<u8>, Vec<u8>, T);

/// Pages through a table by keyset: each page starts strictly after the last
/// row of the one before, so no statement stays open between pages.
/// It yields `T`: documents decoded, or their bytes.
struct SqliteScan<'a, T> {
    store: &'a SqliteStore,
    table: String,
    order: Order,
    after: Option<(Vec<u8>, Vec<u8>)>,
    batch_size: u32,
    buffer: VecDeque<T>,
    done: bool,
    convert: fn(Vec<u8>) -> StoreResult<T>,
}

/// A page of a scan stops after this many bytes of documents, whatever its
/// batch size: a thousand large drawers decoded at once took an export over
/// 300 MB.
const PAGE_BYTES: usize = 4 * 1024 * 1024;

impl<T> Iterator for SqliteScan<'_, T> {
    type Item = StoreResult<T>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.buffer.is_empty() && !self.done {
            let (page, full) = match self.store.fetch_page(
                &self.table,
                &self.order,
                self.after.as_ref(),
                self.batch_size,
                self.convert,
            ) {
                Ok(page) => page,
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            };
            self.done = !full && page.len() < self.batch_size as usize;
            for (field, key, doc) in page {
                self.after = Some((field, key));
                self.buffer.push_back(doc);
            }
        }
        self.buffer.pop_front().map(Ok)
    }
}

fn after_keys(order: &Order, after: &After) -> (Vec<u8>, Vec<u8>) {
    let field = match order {
        Order::ById => Vec::new(),
        Order::ByField(_) => sort_key(after.field.as_ref()),
    };
    (field, sort_key(Some(&after.id)))
}

/// Files written before index definitions were kept whole lack the column.
fn add_spec_column(conn: &Connection) -> StoreResult<()> {
    let has: bool = conn
        .prepare("SELECT 1 FROM pragma_table_info('edn_indexes') WHERE name = 'spec'")?
        .exists([])?;
    if !has {
        conn.execute_batch("ALTER TABLE edn_indexes ADD COLUMN spec BLOB")?;
    }
    Ok(())
}

fn table(id: i64) -> String {
    format!("edn_docs_{id}")
}

fn sql_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

fn check_name(name: &str) -> StoreResult<()> {
    if name.is_empty() || name.contains('\0') || name.starts_with('$') {
        return Err(StoreError::BadName(name.to_string()));
    }
    Ok(())
}

fn too_large(ns: &Ns, id: Option<&Bson>, bytes: usize) -> StoreError {
    StoreError::Refused {
        ns: ns.to_string(),
        id: id.map_or_else(|| "?".into(), |v| v.to_string()),
        message: format!(
            "the document would be {bytes} bytes, over MongoDB's limit of {MAX_DOCUMENT_BYTES}"
        ),
    }
}

fn require_id(doc: &Document) -> StoreResult<&Bson> {
    doc.get("_id").ok_or_else(no_id)
}

fn no_id() -> StoreError {
    StoreError::Encoding("a document to write has no _id".into())
}

/// A write's result for a patch: a write the store refused (a unique
/// index, the size limit) is the patch's outcome, `Err(Outcome::Refused)`;
/// any other error stays an error.
fn refusal(written: StoreResult<()>) -> StoreResult<Result<(), Outcome>> {
    match written {
        Ok(()) => Ok(Ok(())),
        Err(e @ (StoreError::DuplicateKey { .. } | StoreError::Refused { .. })) => {
            Ok(Err(Outcome::Refused(e)))
        }
        Err(e) => Err(e),
    }
}

/// Encodes documents on all cores: for drawers of tens of kilobytes,
/// encoding was a fifth of the writing thread's time.
fn encode_all(docs: &[&Document]) -> StoreResult<Vec<Vec<u8>>> {
    crate::engine::cores::map_refs_on_cores(docs, |d| encode(d))
        .into_iter()
        .collect()
}

fn encode(doc: &Document) -> StoreResult<Vec<u8>> {
    crate::encoded::to_vec(doc).map_err(|e| StoreError::Encoding(e.to_string()))
}

/// Applies a field update to a stored document without decoding it: a set
/// field keeps its place (as MongoDB's `$set` does), a new one goes last.
/// The stored bytes of the fields left alone are copied as they are (the
/// plan stamps were 8% of a migration when every element was appended
/// again).
fn patch(blob: &[u8], update: &FieldUpdate) -> StoreResult<Vec<u8>> {
    let bad = |e: bson::raw::Error| StoreError::Encoding(e.to_string());
    let doc = RawDocument::from_bytes(blob).map_err(bad)?;
    let set_bytes = encode(&update.set)?;
    let set = elements(RawDocument::from_bytes(&set_bytes).map_err(bad)?).map_err(bad)?;
    let mut written = vec![false; set.len()];
    let mut out = Vec::with_capacity(blob.len() + set_bytes.len());
    out.extend_from_slice(&[0; 4]);
    for (key, element) in elements(doc).map_err(bad)? {
        if update.unset.iter().any(|u| u == key) {
            continue;
        }
        match set.iter().position(|(k, _)| *k == key) {
            Some(i) => {
                out.extend_from_slice(set[i].1);
                written[i] = true;
            }
            None => out.extend_from_slice(element),
        }
    }
    for ((_, element), _) in set.iter().zip(&written).filter(|(_, w)| !**w) {
        out.extend_from_slice(element);
    }
    crate::encoded::close_document(&mut out, 0)
        .ok_or_else(|| StoreError::Encoding("document too large".into()))?;
    Ok(out)
}

/// A document's top-level elements: each key with the element's bytes
/// (type, key and value), in order. The common types are framed straight
/// from their lengths; a document holding anything else, or anything
/// malformed, goes through the bson crate's iterator, so its error is
/// always the crate's. That iterator's checks per element were a sixth of
/// the plan stamps' instructions.
fn elements(doc: &RawDocument) -> bson::raw::Result<Vec<(&str, &[u8])>> {
    match framed_elements(doc.as_bytes()) {
        Some(elements) => Ok(elements),
        None => checked_elements(doc),
    }
}

/// [`elements`] read with `encoded`'s framing; `None` for what it leaves
/// to the crate.
fn framed_elements(bytes: &[u8]) -> Option<Vec<(&str, &[u8])>> {
    use crate::encoded::{element_head, frame_at, value_end};
    let (mut pos, last) = frame_at(bytes, 0)?;
    let mut out = Vec::with_capacity(16);
    while pos < last {
        let (kind, key, value_at) = element_head(bytes, pos, last)?;
        let end = value_end(bytes, kind, value_at).filter(|&end| end <= last)?;
        out.push((std::str::from_utf8(key).ok()?, &bytes[pos..end]));
        pos = end;
    }
    (pos == last && last + 1 == bytes.len()).then_some(out)
}

/// [`elements`] through the bson crate's iterator.
fn checked_elements(doc: &RawDocument) -> bson::raw::Result<Vec<(&str, &[u8])>> {
    let bytes = doc.as_bytes();
    let mut at = 4;
    let mut out = Vec::new();
    for element in doc.iter_elements() {
        let element = element?;
        let key = element.key();
        let end = at + 1 + key.len() + 1 + element.len();
        out.push((key, &bytes[at..end]));
        at = end;
    }
    Ok(out)
}

/// Decodes a stored document element by element (the raw API, several
/// times faster than going through serde, which dominated reading).
fn decode(blob: &[u8]) -> StoreResult<Document> {
    RawDocument::from_bytes(blob)
        .and_then(crate::encoded::from_raw)
        .map_err(|e| StoreError::Encoding(e.to_string()))
}

/// SQLite's own words ("unable to open database file", "attempt to write a
/// readonly database") with the path and the fix.
fn explain_open_error(path: &str, err: StoreError) -> StoreError {
    let StoreError::Sqlite(rusqlite::Error::SqliteFailure(code, message)) = &err else {
        return err;
    };
    let said = message.clone().unwrap_or_else(|| code.to_string());
    let folder = std::path::Path::new(path)
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    let explained = match code.code {
        ErrorCode::CannotOpen if !folder.is_dir() => format!(
            "cannot open the store {path}: the folder {} does not exist ({said}): create it, or check --store",
            folder.display()
        ),
        ErrorCode::ReadOnly | ErrorCode::CannotOpen | ErrorCode::PermissionDenied => format!(
            "cannot write the store {path} ({said}): every command records its run and lock in the store, so the file and its folder {} must be writable by this user: fix their owner or mode (chmod u+w), or work on a copy",
            folder.display()
        ),
        ErrorCode::NotADatabase => format!(
            "{path} is not an edn-migrate store ({said}): check --store"
        ),
        _ => format!("cannot open the store {path}: {said}"),
    };
    StoreError::Sqlite(rusqlite::Error::SqliteFailure(*code, Some(explained)))
}

fn user_error<E: std::error::Error + Send + Sync + 'static>(e: E) -> rusqlite::Error {
    rusqlite::Error::UserFunctionError(Box::new(e))
}

/// Creates a new store file owner-only before SQLite opens it: SQLite gives
/// its `-wal` and `-shm` files the main file's mode, so all three hold the
/// documents readable by their owner only. An existing store with a wider
/// mode is warned about, not changed. A file that cannot be created here is
/// left for SQLite's own open to report.
fn owner_only(path: &str) {
    if path == ":memory:" || path.starts_with("file:") {
        return;
    }
    let _ = crate::private::create_new_file(std::path::Path::new(path));
    for suffix in ["", "-wal", "-shm"] {
        crate::private::warn_if_shared(std::path::Path::new(&format!("{path}{suffix}")));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The field update `patch` replaced: every element appended again.
    fn patch_by_appending(blob: &[u8], update: &FieldUpdate) -> StoreResult<Vec<u8>> {
        let bad = |e: bson::raw::Error| StoreError::Encoding(e.to_string());
        let raw = |v: &Bson| {
            bson::RawBson::try_from(v.clone()).map_err(|e| StoreError::Encoding(e.to_string()))
        };
        let mut out = bson::RawDocumentBuf::new();
        for element in RawDocument::from_bytes(blob).map_err(bad)? {
            let (key, value) = element.map_err(bad)?;
            if update.unset.iter().any(|u| u == key) {
                continue;
            }
            match update.set.get(key) {
                Some(new) => out.append(key, raw(new)?),
                None => out.append_ref(key, value),
            }
        }
        for (key, value) in &update.set {
            if out.get(key).map_err(bad)?.is_none() {
                out.append(key, raw(value)?);
            }
        }
        Ok(out.into_bytes())
    }

    fn arb_field() -> impl Strategy<Value = (String, Bson)> {
        let key = prop::sample::select(vec!["_id", "a", "snapshot_id", "client_drawer_id"]);
        let leaf = prop_oneof![
            any::<i32>().prop_map(Bson::Int32),
            "[a-zñ]{0,6}".prop_map(Bson::String),
            Just(Bson::Null),
        ];
        let value = leaf.prop_recursive(2, 8, 3, |inner| {
            prop::collection::vec(("[a-c]", inner), 0..3)
                .prop_map(|fields| Bson::Document(fields.into_iter().collect()))
        });
        (key.prop_map(String::from), value)
    }

    fn arb_value() -> impl Strategy<Value = Bson> {
        let leaf = prop_oneof![
            any::<i32>().prop_map(Bson::Int32),
            any::<i64>().prop_map(Bson::Int64),
            any::<f64>().prop_map(Bson::Double),
            any::<bool>().prop_map(Bson::Boolean),
            any::<i64>().prop_map(|ms| Bson::DateTime(bson::DateTime::from_millis(ms))),
            "[a-zñ]{0,6}".prop_map(Bson::String),
            Just(Bson::Null),
            prop::collection::vec(any::<u8>(), 0..4).prop_map(|bytes| {
                Bson::Binary(bson::Binary {
                    subtype: bson::spec::BinarySubtype::Generic,
                    bytes,
                })
            }),
        ];
        leaf.prop_recursive(2, 8, 3, |inner| {
            prop_oneof![
                prop::collection::vec(("[a-c]", inner.clone()), 0..3)
                    .prop_map(|fields| Bson::Document(fields.into_iter().collect())),
                prop::collection::vec(inner, 0..3).prop_map(Bson::Array),
            ]
        })
    }

    proptest! {
        /// Any document, binary values (left to the crate) among them.
        #[test]
        fn elements_are_framed_as_the_crate_frames_them(
            fields in prop::collection::vec(("[a-dñ]{1,3}", arb_value()), 0..6),
        ) {
            let doc: Document = fields.into_iter().collect();
            let bytes = encode(&doc).unwrap();
            let raw = RawDocument::from_bytes(&bytes).unwrap();
            prop_assert_eq!(elements(raw).unwrap(), checked_elements(raw).unwrap());
        }

        /// Stored fields in any order, repeated keys included (BSON
        /// allows them), set and unset in any combination.
        #[test]
        fn a_field_update_writes_what_appending_every_element_wrote(
            stored in prop::collection::vec(arb_field(), 0..6),
            set in prop::collection::vec(arb_field(), 0..3),
            unset in prop::collection::vec(prop::sample::select(vec!["a", "snapshot_id", "b"]), 0..2),
        ) {
            let mut blob = bson::RawDocumentBuf::new();
            for (key, value) in &stored {
                blob.append(key.as_str(), bson::RawBson::try_from(value.clone()).unwrap());
            }
            let update = FieldUpdate {
                id: Bson::Null,
                set: set.into_iter().collect(),
                unset: unset.into_iter().map(String::from).collect(),
            };
            let ours = patch(blob.as_bytes(), &update).unwrap();
            prop_assert_eq!(ours, patch_by_appending(blob.as_bytes(), &update).unwrap());
        }
    }

    /// What SQLite plans for a page query, one line per step.
    fn plan(store: &SqliteStore, sql: &str) -> String {
        let mut stmt = store
            .conn
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .unwrap();
        let bound = params![vec![0u8], vec![1u8], 100];
        let rows = stmt.query_map(bound, |r| r.get::<_, String>(3)).unwrap();
        rows.map(Result::unwrap).collect::<Vec<_>>().join("\n")
    }

    #[test]
    fn every_page_query_seeks_an_index_without_sorting() {
        let store = SqliteStore::open(":memory:").unwrap();
        let ns = Ns::new("test_database", "training_plans");
        let (id, _) = store.ensure_collection(&ns).unwrap();
        let spec = IndexSpec {
            name: "user_id_1__id_1".into(),
            keys: vec!["user_id".into(), "_id".into()],
            ..IndexSpec::default()
        };
        store.create_index(&ns, &spec).unwrap();
        let orders = [Order::ById, Order::ByField("user_id".into())];
        for order in &orders {
            for resumed in [false, true] {
                let sql = page_sql(&table(id), order, resumed);
                let plan = plan(&store, &sql);
                assert!(!plan.contains("TEMP B-TREE"), "{sql}\n{plan}");
                assert!(plan.contains("INDEX"), "{sql}\n{plan}");
                if resumed {
                    assert!(plan.starts_with("SEARCH"), "{sql}\n{plan}");
                }
            }
        }
    }

    /// About `n` × 8 KiB of documents, written one commit per 50.
    fn write_documents(store: &SqliteStore, ns: &Ns, n: i32) {
        let docs: Vec<Document> = (0..n)
            .map(|i| bson::doc! { "_id": i, "text": "x".repeat(8192) })
            .collect();
        for batch in docs.chunks(50) {
            store.insert_many(ns, batch).unwrap();
        }
    }

    #[test]
    fn malformed_elements_are_left_to_the_crate() {
        let doc = bson::doc! {"a": "text", "b": {"c": 1}, "d": true};
        let good = encode(&doc).unwrap();
        assert!(framed_elements(&good).is_some());
        let at = |needle: &[u8]| {
            good.windows(needle.len())
                .position(|w| w == needle)
                .unwrap()
        };
        let mut not_utf8 = good.clone();
        not_utf8[at(b"text")] = 0xFF;
        let mut bad_bool = good.clone();
        bad_bool[good.len() - 2] = 2;
        let mut long_string = good.clone();
        long_string[at(b"a\0") + 2] = 200;
        for bad in [not_utf8, bad_bool, long_string] {
            assert_eq!(framed_elements(&bad), None);
        }
    }

    #[test]
    fn a_field_update_that_changes_nothing_writes_nothing() {
        let store = SqliteStore::open(":memory:").unwrap();
        let ns = Ns::new("db", "plans");
        store
            .insert_many(
                &ns,
                &[
                    bson::doc! {"_id": "p1", "keep": 1},
                    bson::doc! {"_id": "p2"},
                ],
            )
            .unwrap();
        let stamp = |id: &str| FieldUpdate {
            id: id.into(),
            set: bson::doc! {"snapshot_id": format!("s-{id}")},
            unset: vec![],
        };
        let updates = [stamp("p1"), stamp("p2"), stamp("missing")];
        let before = store.conn.total_changes();
        assert_eq!(store.update_fields(&ns, &updates).unwrap(), 2);
        let first = store.conn.total_changes() - before;
        assert_eq!(first, 2, "the first stamps write both rows");
        assert_eq!(store.update_fields(&ns, &updates).unwrap(), 2);
        assert_eq!(
            store.conn.total_changes() - before,
            first,
            "a re-run rewrote rows"
        );
        let p1 = store.get_many(&ns, &["p1".into()]).unwrap().remove(0);
        assert_eq!(
            p1,
            bson::doc! {"_id": "p1", "keep": 1, "snapshot_id": "s-p1"}
        );
    }

    #[test]
    fn commits_reach_the_database_file_while_the_store_is_open() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let path = dir.join("store.db");
        let store = SqliteStore::open(path.to_str().unwrap()).unwrap();
        write_documents(&store, &Ns::new("db", "c"), 300);
        // 2.4 MB is far below the writer's own backstop (4,000 pages), so
        // only the checkpoint thread can have copied it out of the log.
        let copied = (0..200).any(|_| {
            std::thread::sleep(std::time::Duration::from_millis(50));
            std::fs::metadata(&path).unwrap().len() > 2_000_000
        });
        assert!(
            copied,
            "the database file holds {} bytes",
            std::fs::metadata(&path).unwrap().len()
        );
        drop(store);
    }

    #[test]
    fn a_closed_store_leaves_no_log_and_keeps_every_document() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let path = dir.join("store.db");
        let ns = Ns::new("db", "c");
        let store = SqliteStore::open(path.to_str().unwrap()).unwrap();
        write_documents(&store, &ns, 300);
        drop(store);
        assert!(!dir.join("store.db-wal").exists());
        let again = SqliteStore::open(path.to_str().unwrap()).unwrap();
        assert_eq!(again.count(&ns).unwrap(), 300);
        drop(again);
    }

    fn page_size(path: &std::path::Path) -> i64 {
        Connection::open(path)
            .unwrap()
            .query_row("PRAGMA page_size", [], |r| r.get(0))
            .unwrap()
    }

    #[test]
    fn new_files_get_large_pages_and_old_ones_keep_theirs() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let new = dir.join("new.db");
        drop(SqliteStore::open(new.to_str().unwrap()).unwrap());
        assert_eq!(page_size(&new), FILE_PAGE_BYTES);

        let old = dir.join("old.db");
        Connection::open(&old)
            .unwrap()
            .execute_batch("PRAGMA page_size = 4096; CREATE TABLE t (x)")
            .unwrap();
        let ns = Ns::new("db", "c");
        let store = SqliteStore::open(old.to_str().unwrap()).unwrap();
        write_documents(&store, &ns, 60);
        drop(store);
        assert_eq!(page_size(&old), 4096);
        let again = SqliteStore::open(old.to_str().unwrap()).unwrap();
        assert_eq!(again.count(&ns).unwrap(), 60);
        drop(again);
    }
}
