//! The production store: MongoDB through the official driver (sync API).
//!
//! Reads stream through a server cursor in batches; writes go as `insert`,
//! `update` and `delete` commands of many statements each, one round trip per
//! chunk. Nothing here needs a replica set (no transactions, no change
//! streams) or server-side JavaScript, since production may be a standalone
//! `mongod`.

use super::{
    DocStream, FieldUpdate, IndexSpec, Ns, Order, Precondition, Scan, Store, StoreError,
    StoreResult,
};
use crate::redact::{redact_text, redact_url};
use bson::{doc, Bson, Document};
use mongodb::error::{Error as MongoError, ErrorKind};
use mongodb::options::IndexOptions;
use mongodb::sync::{Client, Collection};
use mongodb::IndexModel;

/// A command body stays well under MongoDB's 16 MiB document limit.
const CHUNK_BYTES: usize = 8 * 1024 * 1024;
/// And under the server's write batch limit.
const CHUNK_DOCS: usize = 1000;
const DUPLICATE_KEY: i32 = 11000;
const NAMESPACE_NOT_FOUND: i32 = 26;
const NAMESPACE_EXISTS: i32 = 48;

/// A connection to a MongoDB deployment.
pub struct MongoStore {
    client: Client,
    url: String,
}

impl MongoStore {
    /// Connects to `url` and checks the server answers a `ping`, so a wrong
    /// host fails here with a clear message rather than mid-migration.
    pub fn connect(url: &str) -> StoreResult<MongoStore> {
        let client = Client::with_uri_str(url).map_err(|e| mongo_error(e, url))?;
        client
            .database("admin")
            .run_command(doc! { "ping": 1 })
            .run()
            .map_err(|e| {
                StoreError::Mongo(format!(
                    "cannot reach {}: {} (check --store / MONGO_URL and that the server is up)",
                    redact_url(url),
                    redact_text(&e.to_string())
                ))
            })?;
        Ok(MongoStore {
            client,
            url: url.to_string(),
        })
    }

    fn coll(&self, ns: &Ns) -> Collection<Document> {
        self.client.database(&ns.db).collection(&ns.coll)
    }

    fn command(&self, db: &str, command: Document) -> StoreResult<Document> {
        self.client
            .database(db)
            .run_command(command)
            .run()
            .map_err(|e| mongo_error(e, &self.url))
    }

    /// Runs a write command (`insert`, `update`, `delete`) over `items` in
    /// chunks; returns the replies. Write errors come back to the caller.
    fn write_chunks(
        &self,
        ns: &Ns,
        verb: &str,
        field: &str,
        items: Vec<Document>,
    ) -> StoreResult<Vec<ChunkReply>> {
        let mut replies = Vec::new();
        let mut start = 0;
        for chunk in chunks(items) {
            let len = chunk.len();
            let command = doc! {
                verb: &ns.coll,
                field: chunk.into_iter().map(Bson::Document).collect::<Vec<_>>(),
                "ordered": false,
            };
            let reply = self.command(&ns.db, command)?;
            replies.push(ChunkReply { start, len, reply });
            start += len;
        }
        Ok(replies)
    }

    fn index_specs(&self, ns: &Ns) -> StoreResult<Vec<IndexSpec>> {
        let cursor = match self.coll(ns).list_indexes().run() {
            Ok(cursor) => cursor,
            Err(e) if command_code(&e) == Some(NAMESPACE_NOT_FOUND) => return Ok(Vec::new()),
            Err(e) => return Err(mongo_error(e, &self.url)),
        };
        let mut specs = Vec::new();
        for model in cursor {
            let model = model.map_err(|e| mongo_error(e, &self.url))?;
            let options = model.options.unwrap_or_default();
            let name = options.name.unwrap_or_default();
            if name == "_id_" {
                continue;
            }
            specs.push(IndexSpec {
                name,
                keys: model.keys.keys().cloned().collect(),
                unique: options.unique.unwrap_or(false),
            });
        }
        specs.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(specs)
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
        }))
    }

    fn list_collections(&self, db: &str) -> StoreResult<Vec<String>> {
        let mut names = self
            .client
            .database(db)
            .list_collection_names()
            .run()
            .map_err(|e| mongo_error(e, &self.url))?;
        names.retain(|n| !n.starts_with("system."));
        names.sort();
        Ok(names)
    }

    fn create_collection(&self, ns: &Ns) -> StoreResult<bool> {
        let command = doc! { "create": &ns.coll };
        match self.client.database(&ns.db).run_command(command).run() {
            Ok(_) => Ok(true),
            Err(e) if command_code(&e) == Some(NAMESPACE_EXISTS) => Ok(false),
            Err(e) => Err(mongo_error(e, &self.url)),
        }
    }

    fn drop_collection(&self, ns: &Ns) -> StoreResult<bool> {
        if !self.list_collections(&ns.db)?.contains(&ns.coll) {
            return Ok(false);
        }
        self.coll(ns)
            .drop()
            .run()
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
        match self.client.database("admin").run_command(command).run() {
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
        self.coll(ns)
            .count_documents(doc! {})
            .run()
            .map_err(|e| mongo_error(e, &self.url))
    }

    fn scan(&self, ns: &Ns, scan: &Scan) -> StoreResult<DocStream<'_>> {
        let (filter, sort) = scan_filter(scan);
        let cursor = self
            .coll(ns)
            .find(filter)
            .sort(sort)
            .batch_size(scan.batch_size.max(1))
            .allow_disk_use(true)
            .run()
            .map_err(|e| mongo_error(e, &self.url))?;
        let url = self.url.clone();
        Ok(Box::new(
            cursor.map(move |item| item.map_err(|e| mongo_error(e, &url))),
        ))
    }

    fn get_many(&self, ns: &Ns, ids: &[Bson]) -> StoreResult<Vec<Document>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let cursor = self
            .coll(ns)
            .find(doc! { "_id": { "$in": ids.to_vec() } })
            .run()
            .map_err(|e| mongo_error(e, &self.url))?;
        cursor
            .map(|d| d.map_err(|e| mongo_error(e, &self.url)))
            .collect()
    }

    fn insert_many(&self, ns: &Ns, docs: &[Document]) -> StoreResult<()> {
        let replies = self.write_chunks(ns, "insert", "documents", docs.to_vec())?;
        for chunk in replies {
            check_write_errors(ns, &chunk.reply)?;
        }
        Ok(())
    }

    fn upsert_many(&self, ns: &Ns, docs: &[Document]) -> StoreResult<()> {
        let mut statements = Vec::with_capacity(docs.len());
        for d in docs {
            let id = require_id(d)?;
            statements.push(doc! { "q": { "_id": id.clone() }, "u": d.clone(), "upsert": true });
        }
        for chunk in self.write_chunks(ns, "update", "updates", statements)? {
            check_write_errors(ns, &chunk.reply)?;
        }
        Ok(())
    }

    fn put_if(&self, ns: &Ns, writes: &[(Document, Precondition)]) -> StoreResult<Vec<bool>> {
        let mut done = vec![false; writes.len()];
        let mut inserts = Vec::new();
        let mut insert_slots = Vec::new();
        let mut updates = Vec::new();
        let mut update_slots = Vec::new();
        for (slot, (d, condition)) in writes.iter().enumerate() {
            let id = require_id(d)?.clone();
            match condition {
                Precondition::Absent => {
                    inserts.push(d.clone());
                    insert_slots.push(slot);
                }
                Precondition::Unchanged(expected) => {
                    let q = exactly(&id, expected);
                    updates.push(doc! { "q": q, "u": d.clone(), "upsert": false });
                    update_slots.push(slot);
                }
            }
        }
        for chunk in self.write_chunks(ns, "insert", "documents", inserts)? {
            let refused = failed_indexes(ns, &chunk.reply, true)?;
            for i in (0..chunk.len).filter(|i| !refused.contains(i)) {
                done[insert_slots[chunk.start + i]] = true;
            }
        }
        if !updates.is_empty() {
            let replies = self.write_chunks(ns, "update", "updates", updates)?;
            for chunk in &replies {
                check_write_errors(ns, &chunk.reply)?;
            }
            let all_matched = replies
                .iter()
                .all(|c| c.reply.get_i32("n").unwrap_or(0) as usize == c.len);
            if all_matched {
                for slot in &update_slots {
                    done[*slot] = true;
                }
            } else {
                // The reply counts matches but does not say which: ask the
                // store which documents now hold exactly what was written.
                let ids: Vec<Bson> = update_slots
                    .iter()
                    .filter_map(|s| writes[*s].0.get("_id").cloned())
                    .collect();
                let stored = self.get_many(ns, &ids)?;
                for slot in &update_slots {
                    let wanted = &writes[*slot].0;
                    done[*slot] = stored.iter().any(|s| same_bytes(s, wanted));
                }
            }
        }
        Ok(done)
    }

    fn update_fields(&self, ns: &Ns, updates: &[FieldUpdate]) -> StoreResult<u64> {
        let statements: Vec<Document> = updates
            .iter()
            .map(|u| {
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
                doc! { "q": { "_id": u.id.clone() }, "u": change, "upsert": false }
            })
            .filter(|s| s.get_document("u").map(|u| !u.is_empty()).unwrap_or(false))
            .collect();
        let mut matched = 0;
        for chunk in self.write_chunks(ns, "update", "updates", statements)? {
            check_write_errors(ns, &chunk.reply)?;
            matched += chunk.reply.get_i32("n").unwrap_or(0) as u64;
        }
        Ok(matched)
    }

    fn delete_many(&self, ns: &Ns, ids: &[Bson]) -> StoreResult<u64> {
        let statements: Vec<Document> = ids
            .chunks(CHUNK_DOCS)
            .map(|chunk| doc! { "q": { "_id": { "$in": chunk.to_vec() } }, "limit": 0 })
            .collect();
        let mut deleted = 0;
        for chunk in self.write_chunks(ns, "delete", "deletes", statements)? {
            check_write_errors(ns, &chunk.reply)?;
            deleted += chunk.reply.get_i32("n").unwrap_or(0) as u64;
        }
        Ok(deleted)
    }

    fn delete_if_unchanged(&self, ns: &Ns, docs: &[Document]) -> StoreResult<Vec<bool>> {
        let ids: Vec<Bson> = docs.iter().filter_map(|d| d.get("_id").cloned()).collect();
        let before = self.get_many(ns, &ids)?;
        let mut statements = Vec::new();
        for d in docs {
            statements.push(doc! { "q": exactly(require_id(d)?, d), "limit": 1 });
        }
        for chunk in self.write_chunks(ns, "delete", "deletes", statements)? {
            check_write_errors(ns, &chunk.reply)?;
        }
        // The reply counts deletions but does not say which: a document was
        // deleted if it was stored exactly as given and is gone now.
        let after = self.get_many(ns, &ids)?;
        Ok(docs
            .iter()
            .map(|d| {
                before.iter().any(|s| same_bytes(s, d))
                    && !after.iter().any(|s| s.get("_id") == d.get("_id"))
            })
            .collect())
    }

    fn create_index(&self, ns: &Ns, spec: &IndexSpec) -> StoreResult<bool> {
        if self.index_specs(ns)?.iter().any(|s| s.name == spec.name) {
            return Ok(false);
        }
        let keys: Document = spec
            .keys
            .iter()
            .map(|k| (k.clone(), Bson::Int32(1)))
            .collect();
        let options = IndexOptions::builder()
            .name(spec.name.clone())
            .unique(spec.unique)
            .build();
        let model = IndexModel::builder().keys(keys).options(options).build();
        match self.coll(ns).create_index(model).run() {
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

/// The filter and sort of a scan: `_id` order, or a field then `_id`, resumed
/// strictly after the last position seen.
fn scan_filter(scan: &Scan) -> (Document, Document) {
    match (&scan.order, &scan.after) {
        (Order::ById, None) => (doc! {}, doc! { "_id": 1 }),
        (Order::ById, Some(after)) => (
            doc! { "_id": { "$gt": after.id.clone() } },
            doc! { "_id": 1 },
        ),
        (Order::ByField(path), None) => (doc! {}, doc! { path.as_str(): 1, "_id": 1 }),
        (Order::ByField(path), Some(after)) if after.id == Bson::MaxKey => (
            // No `_id` is above MaxKey: only the field bound remains (and
            // servers need not compare MaxKey at all).
            doc! { path.as_str(): { "$gt": after.field.clone().unwrap_or(Bson::Null) } },
            doc! { path.as_str(): 1, "_id": 1 },
        ),
        (Order::ByField(path), Some(after)) => {
            let value = after.field.clone().unwrap_or(Bson::Null);
            (
                doc! { "$or": [
                    { path.as_str(): { "$gt": value.clone() } },
                    { path.as_str(): value, "_id": { "$gt": after.id.clone() } },
                ] },
                doc! { path.as_str(): 1, "_id": 1 },
            )
        }
    }
}

/// A filter that matches the document `_id` only while every top-level field
/// still equals `expected` (embedded documents compare exactly, field order
/// included, as MongoDB's equality does).
fn exactly(id: &Bson, expected: &Document) -> Document {
    let mut q = doc! { "_id": id.clone() };
    for (k, v) in expected {
        if k != "_id" {
            q.insert(k.clone(), doc! { "$eq": v.clone() });
        }
    }
    q
}

/// Splits statements into chunks bounded by count and encoded size.
fn chunks(items: Vec<Document>) -> Vec<Vec<Document>> {
    let mut out = Vec::new();
    let mut current = Vec::new();
    let mut bytes = 0;
    for item in items {
        let size = bson::to_vec(&item).map(|v| v.len()).unwrap_or(0);
        if !current.is_empty() && (bytes + size > CHUNK_BYTES || current.len() >= CHUNK_DOCS) {
            out.push(std::mem::take(&mut current));
            bytes = 0;
        }
        bytes += size;
        current.push(item);
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// The reply to one chunk of a write command, with the statements it answers.
struct ChunkReply {
    start: usize,
    len: usize,
    reply: Document,
}

fn same_bytes(a: &Document, b: &Document) -> bool {
    matches!((bson::to_vec(a), bson::to_vec(b)), (Ok(x), Ok(y)) if x == y)
}

/// The statement indexes a write command refused; duplicate keys are
/// expected (and returned) only when `duplicates_ok`.
fn failed_indexes(ns: &Ns, reply: &Document, duplicates_ok: bool) -> StoreResult<Vec<usize>> {
    let Ok(errors) = reply.get_array("writeErrors") else {
        return Ok(Vec::new());
    };
    let mut indexes = Vec::new();
    for error in errors.iter().filter_map(Bson::as_document) {
        let code = error.get_i32("code").unwrap_or(0);
        let message = error.get_str("errmsg").unwrap_or("");
        if code == DUPLICATE_KEY && duplicates_ok {
            indexes.push(error.get_i32("index").unwrap_or(0) as usize);
        } else if code == DUPLICATE_KEY {
            return Err(duplicate_key(ns, message));
        } else {
            return Err(StoreError::Mongo(format!(
                "write to {ns} failed: {} (code {code})",
                redact_text(message)
            )));
        }
    }
    Ok(indexes)
}

fn check_write_errors(ns: &Ns, reply: &Document) -> StoreResult<()> {
    failed_indexes(ns, reply, false).map(|_| ())
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

fn mongo_error(e: MongoError, url: &str) -> StoreError {
    let text = redact_text(&e.to_string()).replace(url, &redact_url(url));
    match command_code(&e) {
        Some(code) => StoreError::Mongo(format!("{text} (code {code})")),
        None => StoreError::Mongo(text),
    }
}
