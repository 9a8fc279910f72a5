//! The production store: MongoDB through the official driver (sync API).
//!
//! Reads stream through a server cursor in batches. Writes go through the
//! driver's own API (`insert_many`, `update_one`, `replace_one`,
//! `delete_one` …), so the write concern and retryable writes of the store
//! URL apply, and a `writeConcernError` is an error; new drawers go in
//! `insert_many` batches (unordered, an outcome per document). The one
//! exception is `update_fields` (the plan stamps): an `update` command of
//! many statements through `run_command`, carrying the URL's write concern
//! itself and reading `writeErrors` and `writeConcernError` from the reply;
//! its statements only set values, so sending it again after a transient
//! failure is safe. Guarded per-document patches run on a few threads at
//! once. Transient failures (a dropped connection, a
//! timeout, a retryable error code) are retried with exponential backoff a
//! bounded number of times; every write is safe to repeat. Nothing here
//! needs a replica set (no transactions, no change streams) or server-side
//! JavaScript, since production may be a standalone `mongod`.

use super::keys::{sort_key, value_at_path};
use super::patch::{self, Op, Outcome, Patch, MAX_DOCUMENT_BYTES};
use super::{
    decode_raw, After, DocStream, FieldUpdate, IndexSpec, Ns, Order, Scan, Store, StoreError,
    StoreResult,
};
use crate::redact::{redact_text, redact_url};
use backon::{BlockingRetryable, ExponentialBuilder};
use bson::{doc, Bson, Document};
use mongodb::error::{Error as MongoError, ErrorKind, WriteFailure};
use mongodb::options::IndexOptions;
use mongodb::sync::{Client, Collection};
use mongodb::IndexModel;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// `_id`s per `delete` statement, and statements per `update` command.
const CHUNK_DOCS: usize = 1000;
/// Bytes of statements per `update` command (MongoDB takes 48 MB messages).
const CHUNK_BYTES: usize = 8 * 1024 * 1024;
/// Per-document writes in flight at once.
const WORKERS: usize = 8;
/// A statement may exceed the document limit by this much (MongoDB's
/// internal headroom for the `q`/`u` wrapper).
const STATEMENT_HEADROOM: usize = 16 * 1024;
/// How many times a transient failure is retried before the call fails.
const RETRIES: usize = 6;
const DUPLICATE_KEY: i32 = 11000;
const NAMESPACE_NOT_FOUND: i32 = 26;
const NAMESPACE_EXISTS: i32 = 48;
/// Server error codes that mean "try again" (the drivers' retryable set:
/// not primary, shutting down, interrupted, host unreachable, timeouts).
const RETRYABLE_CODES: [i32; 13] = [
    6, 7, 89, 91, 134, 189, 262, 9001, 10107, 11600, 11602, 13435, 13436,
];

/// A connection to a MongoDB deployment.
pub struct MongoStore {
    client: Client,
    url: String,
    /// The URL's write concern as a command field, for the writes sent as
    /// commands of many statements (the driver adds it to its own).
    write_concern: Option<Document>,
}

impl MongoStore {
    /// Connects to `url` and checks the server answers a `ping`, so a wrong
    /// host fails here with a clear message rather than mid-migration.
    ///
    /// Server selection gives up after 5 s unless the URL sets
    /// `serverSelectionTimeoutMS` (the driver's 30 s is long for an operator
    /// waiting on a typo), and the failure is one line naming the hosts.
    pub fn connect(url: &str) -> StoreResult<MongoStore> {
        let mut options = mongodb::options::ClientOptions::parse(url)
            .run()
            .map_err(|e| mongo_error(e, url))?;
        let timeout = *options
            .server_selection_timeout
            .get_or_insert(DEFAULT_SERVER_SELECTION_TIMEOUT);
        let hosts: Vec<String> = options.hosts.iter().map(ToString::to_string).collect();
        let write_concern = options
            .write_concern
            .as_ref()
            .and_then(|w| bson::to_document(w).ok())
            .filter(|w| !w.is_empty());
        let client = Client::with_options(options).map_err(|e| mongo_error(e, url))?;
        client
            .database("admin")
            .run_command(doc! { "ping": 1 })
            .run()
            .map_err(|e| unreachable(&e, url, &hosts, timeout))?;
        Ok(MongoStore {
            client,
            url: url.to_string(),
            write_concern,
        })
    }

    fn coll(&self, ns: &Ns) -> Collection<Document> {
        self.client.database(&ns.db).collection(&ns.coll)
    }

    /// Runs a driver call, retrying transient failures with backoff.
    /// How many of `docs`, from the first, the collection already holds
    /// byte for byte: an ordered insert retried after its reply was lost
    /// meets its own documents as duplicates, and goes on after them. A
    /// different document under the same `_id` is a real duplicate (0), and
    /// so is any duplicate met on a first attempt (asked only after a retry).
    fn already_inserted(&self, ns: &Ns, docs: &[Document]) -> StoreResult<usize> {
        let ids: Vec<Bson> = docs.iter().filter_map(|d| d.get("_id").cloned()).collect();
        let stored: std::collections::HashSet<Vec<u8>> = self
            .get_many(ns, &ids)?
            .iter()
            .filter_map(|d| bson::to_vec(d).ok())
            .collect();
        Ok(docs
            .iter()
            .take_while(|d| bson::to_vec(d).is_ok_and(|b| stored.contains(&b)))
            .count())
    }

    fn retrying<T>(
        &self,
        what: &str,
        call: impl FnMut() -> Result<T, MongoError>,
    ) -> Result<T, MongoError> {
        call.retry(
            ExponentialBuilder::default()
                .with_min_delay(Duration::from_millis(100))
                .with_max_delay(Duration::from_secs(5))
                .with_max_times(RETRIES),
        )
        .sleep(std::thread::sleep)
        .when(transient)
        .notify(|e: &MongoError, wait: Duration| {
            tracing::warn!(
                what,
                wait_ms = wait.as_millis() as u64,
                error = %redact_text(&e.to_string()),
                "transient MongoDB failure, retrying"
            );
        })
        .call()
    }

    /// Runs `call` for every item on a few threads; results in input order.
    /// The first error wins (the other calls still finish: each is whole).
    fn in_parallel<T: Sync, R: Send>(
        &self,
        items: &[T],
        call: impl Fn(&T) -> StoreResult<R> + Sync,
    ) -> StoreResult<Vec<R>> {
        if items.len() < 2 {
            return items.iter().map(&call).collect();
        }
        let next = AtomicUsize::new(0);
        let mut results: Vec<Option<StoreResult<R>>> = (0..items.len()).map(|_| None).collect();
        let slots: Vec<std::sync::Mutex<&mut Option<StoreResult<R>>>> =
            results.iter_mut().map(std::sync::Mutex::new).collect();
        std::thread::scope(|scope| {
            for _ in 0..WORKERS.min(items.len()) {
                scope.spawn(|| loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(item) = items.get(i) else {
                        break;
                    };
                    let result = call(item);
                    if let Ok(mut slot) = slots[i].lock() {
                        **slot = Some(result);
                    }
                });
            }
        });
        drop(slots);
        results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(StoreError::Mongo("a write worker stopped".into()))))
            .collect()
    }

    fn index_specs(&self, ns: &Ns) -> StoreResult<Vec<IndexSpec>> {
        let listed = self.retrying("listIndexes", || {
            self.coll(ns)
                .list_indexes()
                .run()?
                .collect::<Result<Vec<_>, _>>()
        });
        let models = match listed {
            Ok(models) => models,
            Err(e) if command_code(&e) == Some(NAMESPACE_NOT_FOUND) => return Ok(Vec::new()),
            Err(e) => return Err(mongo_error(e, &self.url)),
        };
        let mut specs = Vec::new();
        for model in models {
            let options = model.options.unwrap_or_default();
            let name = options.name.unwrap_or_default();
            if name == "_id_" {
                continue;
            }
            specs.push(IndexSpec::listed(
                name,
                &model.keys,
                options.unique.unwrap_or(false),
                options.sparse.unwrap_or(false),
                options.expire_after.map(|d| d.as_secs() as i64),
                options.partial_filter_expression,
            ));
        }
        specs.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(specs)
    }

    /// New drawers (patches that are one insert) in `insert` commands of
    /// many documents, unordered, through the driver (its write concern and
    /// retryable writes apply). Each document's outcome comes from its own
    /// write error: a duplicate `_id` is a conflict, unless this was a retry
    /// and the stored document is exactly ours (the first attempt ran but its
    /// reply was lost); another duplicate key is refused, naming the index.
    fn insert_new(
        &self,
        ns: &Ns,
        patches: &[Patch],
        which: &[usize],
    ) -> StoreResult<Vec<(usize, Outcome)>> {
        let mut out = Vec::with_capacity(which.len());
        let mut docs: Vec<(usize, &Document)> = Vec::with_capacity(which.len());
        for &i in which {
            if let [Op::Insert(doc)] = patches[i].ops.as_slice() {
                match too_large(ns, doc) {
                    Some(too_big) => out.push((i, Outcome::Refused(too_big))),
                    None => docs.push((i, doc)),
                }
            }
        }
        if docs.is_empty() {
            return Ok(out);
        }
        let coll = self.coll(ns);
        let attempts = std::cell::Cell::new(0);
        let result = self.retrying("insert", || {
            attempts.set(attempts.get() + 1);
            coll.insert_many(docs.iter().map(|(_, d)| *d))
                .ordered(false)
                .run()
        });
        let mut failed: std::collections::HashMap<usize, (i32, String)> = Default::default();
        if let Err(e) = result {
            let ErrorKind::InsertMany(failure) = e.kind.as_ref() else {
                return Err(mongo_error(e, &self.url));
            };
            if let Some(w) = &failure.write_concern_error {
                return Err(StoreError::WriteConcern {
                    ns: ns.to_string(),
                    message: format!("{} (code {})", redact_text(&w.message), w.code),
                });
            }
            for w in failure.write_errors.iter().flatten() {
                failed.insert(w.index, (w.code, w.message.clone()));
            }
        }
        let mut retried_ids = Vec::new();
        for (k, (i, doc)) in docs.iter().enumerate() {
            let id = &patches[*i].id;
            let outcome = match failed.remove(&k) {
                None => Outcome::Applied,
                Some((DUPLICATE_KEY, message)) => match duplicate_key(ns, &message) {
                    StoreError::DuplicateKey { index, .. } if index == "_id_" => {
                        if attempts.get() > 1 {
                            retried_ids.push((*i, *doc));
                            continue;
                        }
                        Outcome::Conflict
                    }
                    refusal => Outcome::Refused(refusal),
                },
                Some((code, message)) => Outcome::Refused(refused(
                    ns,
                    id,
                    format!("{} (code {code})", redact_text(&message)),
                )),
            };
            out.push((*i, outcome));
        }
        if !retried_ids.is_empty() {
            let ids: Vec<Bson> = retried_ids
                .iter()
                .map(|(i, _)| patches[*i].id.clone())
                .collect();
            let stored = self.get_many(ns, &ids)?;
            for (i, doc) in retried_ids {
                let ours = stored.iter().any(|s| same_bytes(s, doc));
                out.push((
                    i,
                    if ours {
                        Outcome::Applied
                    } else {
                        Outcome::Conflict
                    },
                ));
            }
        }
        Ok(out)
    }

    /// One `update` command of many statements (each `_id` and its change),
    /// unordered, carrying the URL's write concern: a `writeConcernError` or
    /// a statement's write error stops the call, naming the document. Safe to
    /// send again after a transient failure (each statement sets values).
    /// Returns how many documents matched.
    fn update_command(&self, ns: &Ns, statements: &[(&Bson, Document)]) -> StoreResult<u64> {
        if statements.is_empty() {
            return Ok(0);
        }
        let updates: Vec<Bson> = statements
            .iter()
            .map(|(id, change)| {
                Bson::Document(doc! { "q": { "_id": (*id).clone() }, "u": change.clone() })
            })
            .collect();
        let mut command = doc! { "update": &ns.coll, "updates": updates, "ordered": false };
        if let Some(w) = &self.write_concern {
            command.insert("writeConcern", w.clone());
        }
        let db = self.client.database(&ns.db);
        let reply = self
            .retrying("update", || db.run_command(command.clone()).run())
            .map_err(|e| mongo_error(e, &self.url))?;
        if let Ok(errors) = reply.get_array("writeErrors") {
            if let Some(w) = errors.iter().filter_map(Bson::as_document).next() {
                let code = reply_int(w, "code");
                let message = w.get_str("errmsg").unwrap_or_default();
                let index = usize::try_from(reply_int(w, "index")).unwrap_or(0);
                let id = statements.get(index).map_or(&Bson::Null, |(id, _)| *id);
                return Err(if code == i64::from(DUPLICATE_KEY) {
                    duplicate_key(ns, message)
                } else {
                    refused(ns, id, format!("{} (code {code})", redact_text(message)))
                });
            }
        }
        if let Ok(w) = reply.get_document("writeConcernError") {
            return Err(StoreError::WriteConcern {
                ns: ns.to_string(),
                message: format!(
                    "{} (code {})",
                    redact_text(w.get_str("errmsg").unwrap_or_default()),
                    reply_int(w, "code")
                ),
            });
        }
        Ok(u64::try_from(reply_int(&reply, "n")).unwrap_or(0))
    }

    /// Runs one patch, operation by operation, until one does not apply.
    fn patch_one(&self, ns: &Ns, p: &Patch) -> StoreResult<Outcome> {
        let coll = self.coll(ns);
        for op in &p.ops {
            let done = match op {
                Op::Insert(doc) => self.insert_one(ns, &coll, p, doc)?,
                Op::InsertBytes(raw) => self.insert_one(ns, &coll, p, &decode_raw(raw)?)?,
                Op::Update(step) => {
                    if patch::statement_bytes(&p.id, step) > MAX_DOCUMENT_BYTES + STATEMENT_HEADROOM
                    {
                        return Ok(Outcome::Refused(refused(
                            ns,
                            &p.id,
                            "the update statement would exceed MongoDB's 16 MiB limit".into(),
                        )));
                    }
                    let filter = patch::filter(&p.id, &step.guards);
                    let update = patch::update(step);
                    let result = self.retrying("update", || {
                        coll.update_one(filter.clone(), update.clone()).run()
                    });
                    match result {
                        Ok(r) if r.matched_count == 0 => Outcome::Conflict,
                        Ok(_) => Outcome::Applied,
                        Err(e) => Outcome::Refused(self.per_document(ns, &p.id, e)?),
                    }
                }
                Op::Delete(guards) => {
                    let filter = patch::filter(&p.id, guards);
                    let result = self.retrying("delete", || coll.delete_one(filter.clone()).run());
                    match result {
                        Ok(r) if r.deleted_count == 0 => Outcome::Conflict,
                        Ok(_) => Outcome::Applied,
                        Err(e) => Outcome::Refused(self.per_document(ns, &p.id, e)?),
                    }
                }
            };
            if !done.applied() {
                return Ok(done);
            }
        }
        Ok(Outcome::Applied)
    }

    /// Inserts one document for a patch: a duplicate `_id` is a conflict
    /// (unless this was a retry and the stored document is exactly this
    /// one: the first attempt ran but its reply was lost), a duplicate of
    /// another unique key is refused with the index named.
    fn insert_one(
        &self,
        ns: &Ns,
        coll: &Collection<Document>,
        p: &Patch,
        doc: &Document,
    ) -> StoreResult<Outcome> {
        if let Some(too_big) = too_large(ns, doc) {
            return Ok(Outcome::Refused(too_big));
        }
        let attempts = std::cell::Cell::new(0);
        let result = self.retrying("insert", || {
            attempts.set(attempts.get() + 1);
            coll.insert_one(doc).run()
        });
        match result {
            Ok(_) => Ok(Outcome::Applied),
            Err(e) => match self.per_document(ns, &p.id, e)? {
                StoreError::DuplicateKey { index, .. } if index == "_id_" && attempts.get() > 1 => {
                    let stored = self.get_many(ns, std::slice::from_ref(&p.id))?;
                    if stored.iter().any(|s| same_bytes(s, doc)) {
                        Ok(Outcome::Applied)
                    } else {
                        Ok(Outcome::Conflict)
                    }
                }
                StoreError::DuplicateKey { index, .. } if index == "_id_" => Ok(Outcome::Conflict),
                refusal => Ok(Outcome::Refused(refusal)),
            },
        }
    }

    /// Sorts a failed write: a refusal of this one document comes back as
    /// `Ok` (the caller reports it), anything else (write concern, network
    /// after retries) as `Err`, which stops the call.
    fn per_document(&self, ns: &Ns, id: &Bson, e: MongoError) -> StoreResult<StoreError> {
        match e.kind.as_ref() {
            ErrorKind::Write(WriteFailure::WriteError(w)) if w.code == DUPLICATE_KEY => {
                Ok(duplicate_key(ns, &w.message))
            }
            ErrorKind::Write(WriteFailure::WriteError(w)) => Ok(refused(
                ns,
                id,
                format!("{} (code {})", redact_text(&w.message), w.code),
            )),
            ErrorKind::Write(WriteFailure::WriteConcernError(w)) => Err(StoreError::WriteConcern {
                ns: ns.to_string(),
                message: format!("{} (code {}) at _id {id}", redact_text(&w.message), w.code),
            }),
            _ => Err(mongo_error(e, &self.url)),
        }
    }

    /// Maps a failed whole-batch write (no per-document outcome expected).
    fn write_error(&self, ns: &Ns, id: &Bson, e: MongoError) -> StoreError {
        match self.per_document(ns, id, e) {
            Ok(refusal) | Err(refusal) => refusal,
        }
    }
}

impl Store for MongoStore {
    fn describe(&self) -> String {
        redact_url(&self.url)
    }

    fn reader(&self) -> Option<Box<dyn Store + Send>> {
        Some(Box::new(MongoStore {
            client: self.client.clone(),
            url: self.url.clone(),
            write_concern: self.write_concern.clone(),
        }))
    }

    fn list_collections(&self, db: &str) -> StoreResult<Vec<String>> {
        let mut names = self
            .retrying("listCollections", || {
                self.client.database(db).list_collection_names().run()
            })
            .map_err(|e| mongo_error(e, &self.url))?;
        names.retain(|n| !n.starts_with("system."));
        names.sort();
        Ok(names)
    }

    fn create_collection(&self, ns: &Ns) -> StoreResult<bool> {
        let db = self.client.database(&ns.db);
        match self.retrying("create", || db.create_collection(&ns.coll).run()) {
            Ok(()) => Ok(true),
            Err(e) if command_code(&e) == Some(NAMESPACE_EXISTS) => Ok(false),
            Err(e) => Err(mongo_error(e, &self.url)),
        }
    }

    fn drop_collection(&self, ns: &Ns) -> StoreResult<bool> {
        if !self.list_collections(&ns.db)?.contains(&ns.coll) {
            return Ok(false);
        }
        self.retrying("drop", || self.coll(ns).drop().run())
            .map_err(|e| mongo_error(e, &self.url))?;
        Ok(true)
    }

    fn rename_collection(&self, from: &Ns, to_coll: &str) -> StoreResult<()> {
        let to = Ns::new(from.db.clone(), to_coll);
        let command = doc! {
            "renameCollection": from.to_string(),
            "to": to.to_string(),
            "dropTarget": false,
        };
        let admin = self.client.database("admin");
        match self.retrying("renameCollection", || {
            admin.run_command(command.clone()).run()
        }) {
            Ok(_) => Ok(()),
            Err(e) if command_code(&e) == Some(NAMESPACE_EXISTS) => {
                Err(StoreError::Exists(to.to_string()))
            }
            Err(e) if command_code(&e) == Some(NAMESPACE_NOT_FOUND) => {
                Err(StoreError::Missing(from.to_string()))
            }
            Err(e) => Err(mongo_error(e, &self.url)),
        }
    }

    fn count(&self, ns: &Ns) -> StoreResult<u64> {
        self.retrying("count", || self.coll(ns).count_documents(doc! {}).run())
            .map_err(|e| mongo_error(e, &self.url))
    }

    fn scan(&self, ns: &Ns, scan: &Scan) -> StoreResult<DocStream<'_>> {
        let mut stream = MongoScan {
            store: self,
            ns: ns.clone(),
            scan: scan.clone(),
            cursor: None,
            head: None,
            arrays: VecDeque::new(),
            failures: 0,
        };
        stream.load_arrays()?;
        stream.open()?;
        Ok(Box::new(stream))
    }

    fn get_many(&self, ns: &Ns, ids: &[Bson]) -> StoreResult<Vec<Document>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let filter = doc! { "_id": { "$in": ids.to_vec() } };
        self.retrying("find", || {
            self.coll(ns)
                .find(filter.clone())
                .run()?
                .collect::<Result<Vec<_>, _>>()
        })
        .map_err(|e| mongo_error(e, &self.url))
    }

    fn insert_many(&self, ns: &Ns, docs: &[Document]) -> StoreResult<()> {
        if docs.is_empty() {
            return Ok(());
        }
        if let Some(too_big) = docs.iter().find_map(|d| too_large(ns, d)) {
            return Err(too_big);
        }
        let coll = self.coll(ns);
        let mut from = 0;
        while from < docs.len() {
            let batch = &docs[from..];
            let attempts = std::cell::Cell::new(0);
            let e = match self.retrying("insert", || {
                attempts.set(attempts.get() + 1);
                coll.insert_many(batch).ordered(true).run()
            }) {
                Ok(_) => return Ok(()),
                Err(e) => e,
            };
            let ErrorKind::InsertMany(failure) = e.kind.as_ref() else {
                return Err(mongo_error(e, &self.url));
            };
            if let Some(w) = failure.write_errors.as_ref().and_then(|w| w.first()) {
                if w.code == DUPLICATE_KEY {
                    let ours = match attempts.get() {
                        1 => 0,
                        _ => self.already_inserted(ns, &batch[w.index..])?,
                    };
                    if ours > 0 {
                        from += w.index + ours;
                        continue;
                    }
                    return Err(duplicate_key(ns, &w.message));
                }
                let id = batch.get(w.index).and_then(|d| d.get("_id")).cloned();
                return Err(refused(
                    ns,
                    &id.unwrap_or(Bson::Null),
                    format!("{} (code {})", redact_text(&w.message), w.code),
                ));
            }
            if let Some(w) = &failure.write_concern_error {
                return Err(StoreError::WriteConcern {
                    ns: ns.to_string(),
                    message: format!("{} (code {})", redact_text(&w.message), w.code),
                });
            }
            return Err(mongo_error(e, &self.url));
        }
        Ok(())
    }

    fn upsert_many(&self, ns: &Ns, docs: &[Document]) -> StoreResult<()> {
        if let Some(too_big) = docs.iter().find_map(|d| too_large(ns, d)) {
            return Err(too_big);
        }
        let coll = self.coll(ns);
        self.in_parallel(docs, |d| {
            let id = require_id(d)?;
            self.retrying("replace", || {
                coll.replace_one(doc! { "_id": id.clone() }, d)
                    .upsert(true)
                    .run()
            })
            .map(|_| ())
            .map_err(|e| self.write_error(ns, id, e))
        })?;
        Ok(())
    }

    fn patch_many(&self, ns: &Ns, patches: &[Patch]) -> StoreResult<Vec<Outcome>> {
        // The driver sends documents: inserts of bytes are decoded first.
        let decoded: Vec<Patch>;
        let patches = if patches.iter().any(inserts_bytes) {
            decoded = patches
                .iter()
                .map(with_documents)
                .collect::<StoreResult<_>>()?;
            &decoded[..]
        } else {
            patches
        };
        let is_new = |p: &Patch| matches!(p.ops.as_slice(), [Op::Insert(_)]);
        let mut outcomes: Vec<Option<Outcome>> = patches.iter().map(|_| None).collect();
        let new: Vec<usize> = (0..patches.len())
            .filter(|&i| is_new(&patches[i]))
            .collect();
        for (i, outcome) in self.insert_new(ns, patches, &new)? {
            outcomes[i] = Some(outcome);
        }
        let rest: Vec<&Patch> = patches.iter().filter(|p| !is_new(p)).collect();
        let mut done = self
            .in_parallel(&rest, |p| self.patch_one(ns, p))?
            .into_iter();
        Ok(outcomes
            .into_iter()
            .map(|o| o.or_else(|| done.next()).unwrap_or(Outcome::Conflict))
            .collect())
    }

    fn update_fields(&self, ns: &Ns, updates: &[FieldUpdate]) -> StoreResult<u64> {
        let statements: Vec<(&Bson, Document)> = updates
            .iter()
            .filter_map(|u| Some((&u.id, field_change(u)?)))
            .collect();
        let mut matched = 0;
        let mut start = 0;
        while start < statements.len() {
            let mut end = start;
            let mut bytes = 0;
            while end < statements.len()
                && end - start < CHUNK_DOCS
                && (end == start || bytes < CHUNK_BYTES)
            {
                bytes += crate::encoded::doc_len(&statements[end].1).unwrap_or(0);
                end += 1;
            }
            matched += self.update_command(ns, &statements[start..end])?;
            start = end;
        }
        Ok(matched)
    }

    fn delete_many(&self, ns: &Ns, ids: &[Bson]) -> StoreResult<u64> {
        let coll = self.coll(ns);
        let mut deleted = 0;
        for chunk in ids.chunks(CHUNK_DOCS) {
            let filter = doc! { "_id": { "$in": chunk.to_vec() } };
            deleted += self
                .retrying("delete", || coll.delete_many(filter.clone()).run())
                .map_err(|e| self.write_error(ns, &Bson::Null, e))?
                .deleted_count;
        }
        Ok(deleted)
    }

    fn create_index(&self, ns: &Ns, spec: &IndexSpec) -> StoreResult<bool> {
        if !super::index::needs_creating(&self.index_specs(ns)?, ns, spec)? {
            return Ok(false);
        }
        let options = IndexOptions::builder()
            .name(spec.name.clone())
            .unique(spec.unique.then_some(true))
            .sparse(spec.sparse.then_some(true))
            .expire_after(
                spec.expire_after_seconds
                    .map(|s| Duration::from_secs(s.max(0) as u64)),
            )
            .partial_filter_expression(spec.partial_filter.clone())
            .build();
        let model = IndexModel::builder()
            .keys(spec.key_document())
            .options(options)
            .build();
        match self.retrying("createIndexes", || {
            self.coll(ns).create_index(model.clone()).run()
        }) {
            Ok(_) => Ok(true),
            Err(e) if command_code(&e) == Some(DUPLICATE_KEY) => Err(StoreError::DuplicateKey {
                ns: ns.to_string(),
                index: spec.name.clone(),
                key: "existing documents already share a key".into(),
            }),
            Err(e) => Err(mongo_error(e, &self.url)),
        }
    }

    fn list_indexes(&self, ns: &Ns) -> StoreResult<Vec<IndexSpec>> {
        self.index_specs(ns)
    }
}

/// MongoDB's order of BSON types (canonical type classes), by `$type` alias.
const TYPE_ORDER: [&[&str]; 16] = [
    &["minKey"],
    &["null", "undefined"],
    &["double", "int", "long", "decimal"],
    &["string", "symbol"],
    &["object"],
    &["array"],
    &["binData"],
    &["objectId"],
    &["bool"],
    &["date"],
    &["timestamp"],
    &["regex"],
    &["dbPointer"],
    &["javascript"],
    &["javascriptWithScope"],
    &["maxKey"],
];

fn type_class(v: &Bson) -> usize {
    match v {
        Bson::MinKey => 0,
        Bson::Null | Bson::Undefined => 1,
        Bson::Double(_) | Bson::Int32(_) | Bson::Int64(_) | Bson::Decimal128(_) => 2,
        Bson::String(_) | Bson::Symbol(_) => 3,
        Bson::Document(_) => 4,
        Bson::Array(_) => 5,
        Bson::Binary(_) => 6,
        Bson::ObjectId(_) => 7,
        Bson::Boolean(_) => 8,
        Bson::DateTime(_) => 9,
        Bson::Timestamp(_) => 10,
        Bson::RegularExpression(_) => 11,
        Bson::DbPointer(_) => 12,
        Bson::JavaScriptCode(_) => 13,
        Bson::JavaScriptCodeWithScope(_) => 14,
        Bson::MaxKey => 15,
    }
}

/// Matches values strictly after `v` in MongoDB's sort order. `$gt` alone
/// only matches values of the same type ("type bracketing"), so a resume
/// after a string user would never read a user_id that is an ObjectId, a
/// date or a boolean: the types that sort later are added by `$type`.
fn after_value(path: &str, v: &Bson) -> Document {
    let class = type_class(v);
    let later: Vec<&str> = TYPE_ORDER[class + 1..]
        .iter()
        .flat_map(|c| c.iter().copied())
        .collect();
    let mut or = vec![Bson::Document(doc! { path: { "$gt": v.clone() } })];
    if !later.is_empty() {
        or.push(Bson::Document(doc! { path: { "$type": later } }));
    }
    if class == 0 {
        or.push(Bson::Document(doc! { path: { "$exists": false } }));
    }
    doc! { "$or": or }
}

/// The filter and sort of a scan: `_id` order, or a field then `_id`, resumed
/// strictly after the last position seen. A field scan leaves out documents
/// whose field is an array (MongoDB sorts those by their smallest element,
/// the embedded store as a whole value); [`MongoScan`] merges them in.
fn scan_filter(scan: &Scan) -> (Document, Document) {
    let (after, sort) = match (&scan.order, &scan.after) {
        (Order::ById, None) => (None, doc! { "_id": 1 }),
        (Order::ById, Some(after)) => (Some(after_value("_id", &after.id)), doc! { "_id": 1 }),
        (Order::ByField(path), None) => (None, doc! { path.as_str(): 1, "_id": 1 }),
        (Order::ByField(path), Some(after)) => {
            let value = after.field.clone().unwrap_or(Bson::Null);
            let filter = if after.id == Bson::MaxKey {
                // No `_id` is above MaxKey: only the field bound remains.
                after_value(path, &value)
            } else {
                doc! { "$or": [
                    after_value(path, &value),
                    { "$and": [ { path.as_str(): { "$eq": value } }, after_value("_id", &after.id) ] },
                ] }
            };
            (Some(filter), doc! { path.as_str(): 1, "_id": 1 })
        }
    };
    let mut clauses: Vec<Bson> = after.into_iter().map(Bson::Document).collect();
    if let Order::ByField(path) = &scan.order {
        clauses.push(Bson::Document(
            doc! { path.as_str(): { "$not": { "$type": "array" } } },
        ));
    }
    let filter = match clauses.len() {
        0 => doc! {},
        _ => doc! { "$and": clauses },
    };
    (filter, sort)
}

/// A scan that survives a dropped connection: it remembers the last
/// document it returned and, on a transient failure, opens a new cursor
/// strictly after it (a bounded number of times in a row).
struct MongoScan<'a> {
    store: &'a MongoStore,
    ns: Ns,
    scan: Scan,
    cursor: Option<mongodb::sync::Cursor<Document>>,
    head: Option<Document>,
    /// Documents whose field is an array, in the embedded store's order.
    arrays: VecDeque<Document>,
    failures: usize,
}

impl MongoScan<'_> {
    fn open(&mut self) -> StoreResult<()> {
        let (filter, sort) = scan_filter(&self.scan);
        let coll = self.store.coll(&self.ns);
        let batch = self.scan.batch_size.max(1);
        let cursor = self
            .store
            .retrying("find", || {
                coll.find(filter.clone())
                    .sort(sort.clone())
                    .batch_size(batch)
                    .allow_disk_use(true)
                    .run()
            })
            .map_err(|e| mongo_error(e, &self.store.url))?;
        self.cursor = Some(cursor);
        self.head = None;
        Ok(())
    }

    fn load_arrays(&mut self) -> StoreResult<()> {
        let Order::ByField(path) = &self.scan.order else {
            return Ok(());
        };
        let filter = doc! { path.as_str(): { "$type": "array" } };
        let coll = self.store.coll(&self.ns);
        let mut found: Vec<(Vec<u8>, Vec<u8>, Document)> = self
            .store
            .retrying("find", || {
                coll.find(filter.clone())
                    .run()?
                    .collect::<Result<Vec<_>, _>>()
            })
            .map_err(|e| mongo_error(e, &self.store.url))?
            .into_iter()
            .map(|d| {
                let (f, i) = position_key(&self.scan.order, &d);
                (f, i, d)
            })
            .collect();
        if let Some(after) = &self.scan.after {
            let bound = (sort_key(after.field.as_ref()), sort_key(Some(&after.id)));
            found.retain(|(f, i, _)| (f, i) > (&bound.0, &bound.1));
        }
        found.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
        self.arrays = found.into_iter().map(|(_, _, d)| d).collect();
        Ok(())
    }

    /// The next document of the cursor, reopening it after a transient
    /// failure.
    fn fill_head(&mut self) -> StoreResult<()> {
        while self.head.is_none() {
            let Some(cursor) = self.cursor.as_mut() else {
                return Ok(());
            };
            match cursor.next() {
                None => {
                    self.cursor = None;
                    return Ok(());
                }
                Some(Ok(doc)) => {
                    self.failures = 0;
                    self.head = Some(doc);
                }
                Some(Err(e)) if transient(&e) && self.failures < RETRIES => {
                    self.failures += 1;
                    tracing::warn!(ns = %self.ns, error = %redact_text(&e.to_string()), "scan interrupted, reopening after the last document read");
                    std::thread::sleep(Duration::from_millis(100 << self.failures.min(5)));
                    self.open()?;
                }
                Some(Err(e)) => return Err(mongo_error(e, &self.store.url)),
            }
        }
        Ok(())
    }

    /// Remembers where the scan stands, for a reopen.
    fn passed(&mut self, doc: &Document) {
        let id = doc.get("_id").cloned().unwrap_or(Bson::Null);
        let field = match &self.scan.order {
            Order::ById => None,
            Order::ByField(path) => Some(value_at_path(doc, path).cloned().unwrap_or(Bson::Null)),
        };
        self.scan.after = Some(After { field, id });
    }
}

impl Iterator for MongoScan<'_> {
    type Item = StoreResult<Document>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Err(e) = self.fill_head() {
            self.cursor = None;
            return Some(Err(e));
        }
        let take_array = match (&self.head, self.arrays.front()) {
            (_, None) => false,
            (None, Some(_)) => true,
            (Some(h), Some(a)) => {
                position_key(&self.scan.order, a) < position_key(&self.scan.order, h)
            }
        };
        let doc = if take_array {
            self.arrays.pop_front()?
        } else {
            self.head.take()?
        };
        self.passed(&doc);
        Some(Ok(doc))
    }
}

fn inserts_bytes(p: &Patch) -> bool {
    p.ops.iter().any(|op| matches!(op, Op::InsertBytes(_)))
}

/// The patch with every insert of bytes an insert of the decoded document.
fn with_documents(p: &Patch) -> StoreResult<Patch> {
    let ops = p
        .ops
        .iter()
        .map(|op| match op {
            Op::InsertBytes(raw) => decode_raw(raw).map(Op::Insert),
            other => Ok(other.clone()),
        })
        .collect::<StoreResult<_>>()?;
    Ok(Patch {
        id: p.id.clone(),
        ops,
    })
}

/// The sort position of a document in a scan, as the embedded store orders.
fn position_key(order: &Order, doc: &Document) -> (Vec<u8>, Vec<u8>) {
    let field = match order {
        Order::ById => Vec::new(),
        Order::ByField(path) => sort_key(value_at_path(doc, path)),
    };
    (field, sort_key(doc.get("_id")))
}

/// `$set` / `$unset` of a field update, `None` when it changes nothing.
fn field_change(u: &FieldUpdate) -> Option<Document> {
    let mut change = Document::new();
    if !u.set.is_empty() {
        change.insert("$set", u.set.clone());
    }
    if !u.unset.is_empty() {
        let unset: Document = u
            .unset
            .iter()
            .map(|k| (k.clone(), Bson::String(String::new())))
            .collect();
        change.insert("$unset", unset);
    }
    (!change.is_empty()).then_some(change)
}

/// An integer field of a server reply, whichever integer type it came as.
fn reply_int(reply: &Document, field: &str) -> i64 {
    match reply.get(field) {
        Some(Bson::Int32(n)) => i64::from(*n),
        Some(Bson::Int64(n)) => *n,
        Some(Bson::Double(n)) => *n as i64,
        _ => 0,
    }
}

fn same_bytes(a: &Document, b: &Document) -> bool {
    matches!((bson::to_vec(a), bson::to_vec(b)), (Ok(x), Ok(y)) if x == y)
}

fn duplicate_key(ns: &Ns, message: &str) -> StoreError {
    let index = message
        .split("index: ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or("?")
        .to_string();
    let key = message.split("dup key: ").nth(1).unwrap_or("?").to_string();
    StoreError::DuplicateKey {
        ns: ns.to_string(),
        index,
        key,
    }
}

fn require_id(doc: &Document) -> StoreResult<&Bson> {
    doc.get("_id")
        .ok_or_else(|| StoreError::Encoding("a document to write has no _id".into()))
}

fn command_code(e: &MongoError) -> Option<i32> {
    match e.kind.as_ref() {
        ErrorKind::Command(c) => Some(c.code),
        _ => None,
    }
}

/// How long `connect` waits for a server unless the URL says otherwise.
const DEFAULT_SERVER_SELECTION_TIMEOUT: Duration = Duration::from_secs(5);

/// One line for a store that does not answer: the hosts, how long it waited,
/// what to check; the driver's topology dump stays out of it.
fn unreachable(e: &MongoError, url: &str, hosts: &[String], waited: Duration) -> StoreError {
    let why = match e.kind.as_ref() {
        ErrorKind::ServerSelection { .. } => {
            format!("no server answered within {} s", waited.as_secs_f64())
        }
        _ => {
            let text = redact_text(&e.to_string()).replace(url, &redact_url(url));
            let first = text.lines().next().unwrap_or_default().to_string();
            first.chars().take(200).collect()
        }
    };
    StoreError::Mongo(format!(
        "cannot reach MongoDB at {} ({}): {why}: check that the server is up and reachable from this machine (host, port, firewall, TLS), and --store / MONGO_URL; add serverSelectionTimeoutMS=<ms> to the URL to wait longer",
        hosts.join(","),
        redact_url(url)
    ))
}

fn mongo_error(e: MongoError, url: &str) -> StoreError {
    let text = redact_text(&e.to_string()).replace(url, &redact_url(url));
    match command_code(&e) {
        Some(code) => StoreError::Mongo(format!("{text} (code {code})")),
        None => StoreError::Mongo(text),
    }
}

/// Whether a failure is worth trying again: the connection dropped or timed
/// out, no server could be selected yet, or the server answered with one of
/// the codes the drivers treat as retryable.
fn transient(e: &MongoError) -> bool {
    match e.kind.as_ref() {
        ErrorKind::Io(_)
        | ErrorKind::ConnectionPoolCleared { .. }
        | ErrorKind::ServerSelection { .. } => true,
        ErrorKind::Command(c) => RETRYABLE_CODES.contains(&c.code),
        ErrorKind::Write(WriteFailure::WriteError(w)) => RETRYABLE_CODES.contains(&w.code),
        _ => e.contains_label("RetryableWriteError") || e.contains_label("NetworkError"),
    }
}

fn refused(ns: &Ns, id: &Bson, message: String) -> StoreError {
    StoreError::Refused {
        ns: ns.to_string(),
        id: id.to_string(),
        message,
    }
}

/// The refusal MongoDB would give a document over 16 MiB, given before
/// sending it.
fn too_large(ns: &Ns, doc: &Document) -> Option<StoreError> {
    let bytes = bson::to_vec(doc).map_or(usize::MAX, |v| v.len());
    (bytes > MAX_DOCUMENT_BYTES).then(|| {
        refused(
            ns,
            doc.get("_id").unwrap_or(&Bson::Null),
            format!(
                "the document would be {bytes} bytes, over MongoDB's limit of {MAX_DOCUMENT_BYTES}"
            ),
        )
    })
}
