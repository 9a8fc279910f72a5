//! `import --from-dump PATH`: load what `mongodump` writes into any store,
//! so a production dump can be rehearsed on a laptop (the plan's "Fase 0.5").
//!
//! PATH is a dump folder (`<db>/<coll>.bson` + `<coll>.metadata.json`,
//! gzipped or not: [`dir`]) — this tool's own backups are such folders — or
//! one `mongodump --archive` file, gzipped or not ([`archive`]). Documents
//! load under their own database names unless renamed; the indexes in the
//! metadata are created through the `Store` trait once the data is in, as
//! mongorestore does ([`metadata`] says which ones it can create).
//!
//! Like the JSONL import, everything is read and checked before the first
//! write: a truncated or corrupt file (named with its byte offset) imports
//! nothing. The data is then read a second time to write it, one batch at a
//! time, so memory never grows with the dump. A plain `.bson` file cut
//! exactly between two documents cannot be told from a shorter one (mongodump
//! records no counts); gzip trailers, the archive's CRC and a backup's
//! manifest can, and are checked.

pub mod archive;
pub mod dir;
pub mod metadata;

use crate::backup::{Manifest, MANIFEST};
use crate::error::{CommandError, CommandResult};
use crate::report::{progress_bar, table, Output};
use crate::store::{Ns, Store};
use crate::transfer::{write_batch, ImportOptions};
use archive::{Archive, Event};
use bson::Document;
use dir::DumpFile;
use flate2::read::MultiGzDecoder;
use indicatif::ProgressBar;
use metadata::{Kind, Metadata, SkippedIndex};
use serde_json::json;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Component, Path};

/// MongoDB's limit on a document, the tool's one constant for it (also
/// mongo-tools' `db.MaxBSONSize`): a dump cannot hold a larger document, and
/// a length beyond it is corruption.
pub(crate) use crate::phase2::validate::MAX_DOCUMENT_BYTES;

/// Databases that belong to the server, never to the application.
const SERVER_DATABASES: [&str; 3] = ["admin", "config", "local"];

/// How a dump is loaded: the JSONL import's options, plus which databases
/// and under which names.
#[derive(Debug, Clone)]
pub struct DumpOptions {
    /// `--upsert`, `--drop` and the batch size, as for a JSONL import.
    pub import: ImportOptions,
    /// Dump database → store database; others keep their own name.
    pub rename: BTreeMap<String, String>,
    /// Only these dump databases (before renaming); empty: all of them.
    pub databases: BTreeSet<String>,
}

impl DumpOptions {
    /// Every database under its own name, with these import options.
    pub fn new(import: ImportOptions) -> DumpOptions {
        DumpOptions {
            import,
            rename: BTreeMap::new(),
            databases: BTreeSet::new(),
        }
    }
}

/// What a dump load did, for the summary and for callers such as a
/// rehearsal that go on from there.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Loaded {
    /// The dump folder or archive file.
    pub path: String,
    /// `directory` or `archive`.
    pub format: &'static str,
    /// Whether any of it was gzipped.
    pub gzip: bool,
    /// The collections loaded, in load order.
    pub collections: Vec<LoadedCollection>,
    /// What the dump holds that was not loaded, and why.
    pub skipped: Vec<SkippedNamespace>,
}

impl Loaded {
    /// Documents written, all collections together.
    pub fn documents(&self) -> u64 {
        self.collections.iter().map(|c| c.documents).sum()
    }
}

/// One collection loaded into the store.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LoadedCollection {
    /// Where it came from in the dump (`db.collection`).
    pub source: String,
    /// The store database it went to.
    pub db: String,
    /// The collection name.
    pub collection: String,
    /// Documents written.
    pub documents: u64,
    /// Indexes created (or already there), by name.
    pub indexes: Vec<String>,
    /// Indexes of the dump the store could not create as defined.
    pub skipped_indexes: Vec<SkippedIndex>,
}

/// A namespace of the dump that was not loaded.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SkippedNamespace {
    /// `db.collection` in the dump.
    pub namespace: String,
    /// Why not.
    pub reason: String,
}

/// The top-level entry point for `import --from-dump PATH`.
pub fn import(store: &dyn Store, path: &Path, opts: &DumpOptions) -> CommandResult<Output> {
    load(store, path, opts).map(|loaded| summary(&loaded))
}

/// Loads a dump folder or archive into `store`; checks all of it first, so
/// an error before the first write leaves the store untouched.
pub fn load(store: &dyn Store, path: &Path, opts: &DumpOptions) -> CommandResult<Loaded> {
    if path.is_dir() {
        load_dir(store, path, opts)
    } else if path.is_file() {
        load_archive(store, path, opts)
    } else {
        Err(CommandError::Input(format!(
            "{} does not exist: pass a mongodump folder, a backup folder (backups/<id>) or a `mongodump --archive` file",
            path.display()
        )))
    }
}

/// A collection that passed the check, and how it will be loaded.
struct Planned {
    from: Ns,
    to: Ns,
    metadata: Metadata,
    data: Option<DumpFile>,
    documents: u64,
}

fn load_dir(store: &dyn Store, path: &Path, opts: &DumpOptions) -> CommandResult<Loaded> {
    let (planned, skipped) = check_dir(path, opts)?;
    let progress = progress_bar(planned.iter().map(|p| p.documents).sum(), "importing");
    let mut loaded = Vec::with_capacity(planned.len());
    for p in &planned {
        start_collection(store, p, opts)?;
        let mut written = 0;
        if let Some(file) = &p.data {
            let mut docs = file.documents()?;
            let mut batch = Vec::with_capacity(opts.import.batch_size as usize);
            while let Some(doc) = docs.next_document().map_err(|e| changed(e, p))? {
                batch.push(doc);
                if batch.len() >= opts.import.batch_size as usize {
                    written += flush(store, p, &mut batch, opts, &progress)?;
                }
            }
            written += flush(store, p, &mut batch, opts, &progress)?;
        }
        loaded.push(finish_collection(store, p, written)?);
    }
    progress.finish_and_clear();
    Ok(Loaded {
        path: path.display().to_string(),
        format: "directory",
        gzip: planned
            .iter()
            .any(|p| p.data.as_ref().is_some_and(|f| f.gzip)),
        collections: loaded,
        skipped,
    })
}

/// Reads every file of a dump folder; any problem fails the whole import.
fn check_dir(
    path: &Path,
    opts: &DumpOptions,
) -> CommandResult<(Vec<Planned>, Vec<SkippedNamespace>)> {
    let collections = dir::find(path)?;
    if collections.is_empty() {
        return Err(CommandError::Input(format!(
            "{} holds no DATABASE/COLLECTION.bson files: expected e.g. {} (a mongodump folder or a backup folder)",
            path.display(),
            path.join("test_database").join("users.bson").display()
        )));
    }
    let found: BTreeSet<String> = collections.iter().map(|c| c.db.clone()).collect();
    check_names(&found, opts)?;
    let progress = progress_bar(collections.len() as u64, "checking");
    let mut problems = Vec::new();
    let mut planned = Vec::new();
    let mut skipped = Vec::new();
    for c in collections {
        progress.inc(1);
        let metadata = match &c.metadata {
            None => Metadata::none(),
            Some(file) => match read_metadata(file) {
                Ok(m) => m,
                Err(e) => {
                    problems.push(e);
                    continue;
                }
            },
        };
        let coll = match &metadata.name {
            // mongodump shortens very long names and marks them with `$`.
            Some(name) if c.coll.contains('$') => name.clone(),
            _ => c.coll.clone(),
        };
        let from = Ns::new(c.db.clone(), coll);
        let to = match target(&from, &metadata.kind, opts) {
            Ok(to) => to,
            Err(reason) => {
                skipped.push(SkippedNamespace {
                    namespace: from.to_string(),
                    reason,
                });
                continue;
            }
        };
        let documents = match &c.data {
            None => 0,
            Some(file) => match count(file) {
                Ok(n) => n,
                Err(e) => {
                    problems.push(e.to_string());
                    continue;
                }
            },
        };
        planned.push(Planned {
            from,
            to,
            metadata,
            data: c.data,
            documents,
        });
    }
    progress.finish_and_clear();
    problems.extend(check_manifest(path, &planned, &skipped));
    problems.extend(shared_targets(&planned));
    refuse_if_any(path, problems)?;
    Ok((planned, skipped))
}

fn read_metadata(file: &DumpFile) -> Result<Metadata, String> {
    let bytes = file.read_all().map_err(|e| e.to_string())?;
    metadata::parse(&bytes).map_err(|why| format!("{}: {why}", file.label))
}

fn count(file: &DumpFile) -> CommandResult<u64> {
    let mut docs = file.documents()?;
    let mut n = 0;
    while docs.next_document()?.is_some() {
        n += 1;
    }
    Ok(n)
}

/// A backup written by this tool carries a manifest: its counts and
/// checksums catch what the `.bson` framing cannot (a cut between documents).
fn check_manifest(path: &Path, planned: &[Planned], skipped: &[SkippedNamespace]) -> Vec<String> {
    let file = path.join(MANIFEST);
    if !file.is_file() {
        return Vec::new();
    }
    let manifest: Manifest = match std::fs::read(&file)
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
    {
        Ok(m) => m,
        Err(e) => return vec![format!("{MANIFEST}: not a backup manifest: {e}")],
    };
    let mut problems = Vec::new();
    for entry in &manifest.collections {
        let ns = Ns::new(&entry.db, &entry.name);
        let Some(p) = planned.iter().find(|p| p.from == ns) else {
            if !skipped.iter().any(|s| s.namespace == ns.to_string()) {
                problems.push(format!(
                    "{}: listed in {MANIFEST} but missing from the folder",
                    entry.bson_file
                ));
            }
            continue;
        };
        if p.documents != entry.count {
            problems.push(format!(
                "{}: {} documents, {MANIFEST} says {}",
                entry.bson_file, p.documents, entry.count
            ));
        }
        let plain = Path::new(&entry.bson_file)
            .components()
            .all(|c| matches!(c, Component::Normal(_)));
        let digest = if plain {
            sha256(&path.join(&entry.bson_file))
        } else {
            Err(io::Error::other("not a path inside the backup folder"))
        };
        match digest {
            Ok((bytes, sha)) if bytes == entry.bson_bytes && sha == entry.bson_sha256 => {}
            Ok((bytes, sha)) => problems.push(format!(
                "{}: {bytes} bytes with SHA-256 {sha}, {MANIFEST} says {} bytes with SHA-256 {}",
                entry.bson_file, entry.bson_bytes, entry.bson_sha256
            )),
            Err(e) => problems.push(format!("{}: cannot be read: {e}", entry.bson_file)),
        }
    }
    problems
}

fn sha256(path: &Path) -> io::Result<(u64, String)> {
    let mut file = BufReader::new(File::open(path)?);
    let mut hasher = Sha256::new();
    let mut bytes = 0;
    loop {
        let chunk = file.fill_buf()?;
        if chunk.is_empty() {
            break;
        }
        hasher.update(chunk);
        let n = chunk.len();
        bytes += n as u64;
        file.consume(n);
    }
    let hex = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Ok((bytes, hex))
}

fn load_archive(store: &dyn Store, path: &Path, opts: &DumpOptions) -> CommandResult<Loaded> {
    let (planned, skipped, gzip) = check_archive(path, opts)?;
    let (mut archive, _) = open_archive(path)?;
    let targets: HashMap<&Ns, usize> = planned
        .iter()
        .enumerate()
        .map(|(i, p)| (&p.from, i))
        .collect();
    for p in &planned {
        start_collection(store, p, opts)?;
    }
    let progress = progress_bar(planned.iter().map(|p| p.documents).sum(), "importing");
    let mut batch = Vec::with_capacity(opts.import.batch_size as usize);
    let mut written = vec![0; planned.len()];
    // Segments never interleave inside, so one batch at a time is enough:
    // it is written when full and at the end of its segment.
    while let Some(event) = archive.next_event().map_err(|e| changed_archive(e, path))? {
        let (index, doc) = match event {
            Event::Document(index, doc) => (index, Some(doc)),
            Event::SegmentEnd(index) => (index, None),
        };
        let Some(&p) = targets.get(archive.namespace(index)) else {
            continue;
        };
        let full = match doc {
            Some(doc) => {
                batch.push(doc);
                batch.len() >= opts.import.batch_size as usize
            }
            None => true,
        };
        if full {
            written[p] += flush(store, &planned[p], &mut batch, opts, &progress)?;
        }
    }
    progress.finish_and_clear();
    let mut loaded = Vec::with_capacity(planned.len());
    for (p, n) in planned.iter().zip(written) {
        loaded.push(finish_collection(store, p, n)?);
    }
    Ok(Loaded {
        path: path.display().to_string(),
        format: "archive",
        gzip,
        collections: loaded,
        skipped,
    })
}

/// Reads the whole archive once: framing, documents, CRCs, metadata.
fn check_archive(
    path: &Path,
    opts: &DumpOptions,
) -> CommandResult<(Vec<Planned>, Vec<SkippedNamespace>, bool)> {
    let nothing = |e: CommandError| {
        CommandError::Input(format!(
            "nothing was imported: {e}\nthe archive is damaged or incomplete: take the dump again (`mongodump --archive=FILE`)"
        ))
    };
    let (mut archive, gzip) = open_archive(path).map_err(nothing)?;
    let found: BTreeSet<String> = archive.prelude().iter().map(|e| e.ns.db.clone()).collect();
    check_names(&found, opts)?;
    let mut problems = Vec::new();
    let mut planned = Vec::new();
    let mut skipped = Vec::new();
    for entry in archive.prelude() {
        let metadata = if entry.metadata.is_empty() {
            Metadata::none()
        } else {
            match metadata::parse(entry.metadata.as_bytes()) {
                Ok(m) => m,
                Err(why) => {
                    problems.push(format!(
                        "{}: the metadata of {} in the prelude: {why}",
                        path.display(),
                        entry.ns
                    ));
                    continue;
                }
            }
        };
        let kind = match entry.kind.as_str() {
            "" => metadata.kind.clone(),
            "collection" => Kind::Collection,
            other => Kind::Other(other.to_string()),
        };
        match target(&entry.ns, &kind, opts) {
            Ok(to) => planned.push(Planned {
                from: entry.ns.clone(),
                to,
                metadata,
                data: None,
                documents: 0,
            }),
            Err(reason) => skipped.push(SkippedNamespace {
                namespace: entry.ns.to_string(),
                reason,
            }),
        }
    }
    let announced: BTreeSet<Ns> = archive.prelude().iter().map(|e| e.ns.clone()).collect();
    let planned_at: HashMap<Ns, usize> = planned
        .iter()
        .enumerate()
        .map(|(i, p)| (p.from.clone(), i))
        .collect();
    let mut unannounced = BTreeSet::new();
    while let Some(event) = archive.next_event().map_err(nothing)? {
        if let Event::Document(index, _) = event {
            let ns = archive.namespace(index);
            if let Some(&p) = planned_at.get(ns) {
                planned[p].documents += 1;
            } else if !announced.contains(ns) && target(ns, &Kind::Collection, opts).is_ok() {
                // Time series data (system.buckets.*) and the oplog are
                // unannounced too, but never loaded.
                unannounced.insert(ns.to_string());
            }
        }
    }
    for ns in unannounced {
        problems.push(format!(
            "{}: {ns} has documents but the prelude does not announce it",
            path.display()
        ));
    }
    problems.extend(shared_targets(&planned));
    refuse_if_any(path, problems)?;
    Ok((planned, skipped, gzip))
}

/// Opens an archive file, gzipped or not (told by gzip's magic bytes).
fn open_archive(path: &Path) -> CommandResult<(Archive<Box<dyn Read>>, bool)> {
    let file = File::open(path).map_err(CommandError::io(format!("reading {}", path.display())))?;
    let mut reader = BufReader::new(file);
    let head = reader
        .fill_buf()
        .map_err(CommandError::io(format!("reading {}", path.display())))?;
    let gzip = head.starts_with(&[0x1f, 0x8b]);
    let (inner, label): (Box<dyn Read>, String) = if gzip {
        (
            Box::new(BufReader::new(MultiGzDecoder::new(reader))),
            format!("{} (uncompressed)", path.display()),
        )
    } else {
        (Box::new(reader), path.display().to_string())
    };
    Ok((Archive::open(inner, label)?, gzip))
}

/// `--rename-db` and `--only-db` must name databases the dump holds: a typo
/// would otherwise load everything under the wrong name, or nothing.
fn check_names(found: &BTreeSet<String>, opts: &DumpOptions) -> CommandResult<()> {
    let named = opts.rename.keys().chain(opts.databases.iter());
    if let Some(missing) = named.into_iter().find(|db| !found.contains(*db)) {
        let list: Vec<&str> = found.iter().map(String::as_str).collect();
        return Err(CommandError::Input(format!(
            "the dump has no database {missing:?} (it has: {}): check --rename-db and --only-db",
            list.join(", ")
        )));
    }
    Ok(())
}

/// Where a dump namespace loads, or why it does not.
fn target(from: &Ns, kind: &Kind, opts: &DumpOptions) -> Result<Ns, String> {
    if let Kind::Other(kind) = kind {
        return Err(format!("a {kind}, not a collection: nothing to load"));
    }
    if from.db.is_empty() {
        return Err("the oplog (mongodump --oplog) is not replayed".into());
    }
    if SERVER_DATABASES.contains(&from.db.as_str()) {
        return Err(format!("the {} database belongs to the server", from.db));
    }
    if from.coll.starts_with("system.") {
        return Err("a system collection".into());
    }
    if !opts.databases.is_empty() && !opts.databases.contains(&from.db) {
        return Err("database not selected (--only-db)".into());
    }
    let db = opts.rename.get(&from.db).unwrap_or(&from.db);
    Ok(Ns::new(db.clone(), from.coll.clone()))
}

/// Two dump namespaces renamed onto one collection would mix their data.
fn shared_targets(planned: &[Planned]) -> Vec<String> {
    let mut seen: HashMap<&Ns, &Ns> = HashMap::new();
    let mut problems = Vec::new();
    for p in planned {
        if let Some(first) = seen.insert(&p.to, &p.from) {
            problems.push(format!(
                "{first} and {} would both load into {}: change --rename-db",
                p.from, p.to
            ));
        }
    }
    problems
}

fn refuse_if_any(path: &Path, problems: Vec<String>) -> CommandResult<()> {
    if problems.is_empty() {
        return Ok(());
    }
    Err(CommandError::Input(format!(
        "nothing was imported: {} problem(s) in {}\n  {}\nfix or replace these files (or take the dump again) and run the import again",
        problems.len(),
        path.display(),
        problems.join("\n  ")
    )))
}

fn start_collection(store: &dyn Store, p: &Planned, opts: &DumpOptions) -> CommandResult<()> {
    if opts.import.drop {
        store.drop_collection(&p.to)?;
    }
    store.create_collection(&p.to)?;
    Ok(())
}

fn flush(
    store: &dyn Store,
    p: &Planned,
    batch: &mut Vec<Document>,
    opts: &DumpOptions,
    progress: &ProgressBar,
) -> CommandResult<u64> {
    let n = write_batch(store, &p.to, batch, opts.import.upsert)?;
    progress.inc(n);
    Ok(n)
}

/// Checks the second read found what the first did, then creates the
/// indexes: after the data, as mongorestore does, so each is built once.
fn finish_collection(
    store: &dyn Store,
    p: &Planned,
    written: u64,
) -> CommandResult<LoadedCollection> {
    if written != p.documents {
        return Err(CommandError::Input(format!(
            "{}: {written} documents on the second read, {} on the first: the dump changed while importing; \
             {} is incomplete, run the import again with --drop --yes",
            p.from, p.documents, p.to
        )));
    }
    for spec in &p.metadata.indexes {
        store.create_index(&p.to, spec)?;
    }
    Ok(LoadedCollection {
        source: p.from.to_string(),
        db: p.to.db.clone(),
        collection: p.to.coll.clone(),
        documents: written,
        indexes: p.metadata.indexes.iter().map(|i| i.name.clone()).collect(),
        skipped_indexes: p.metadata.skipped.clone(),
    })
}

fn changed(e: CommandError, p: &Planned) -> CommandError {
    CommandError::Input(format!(
        "{e}\nthe dump changed while importing: {} is incomplete, run the import again with --drop --yes",
        p.to
    ))
}

fn changed_archive(e: CommandError, path: &Path) -> CommandError {
    CommandError::Input(format!(
        "{e}\n{} changed while importing: some collections are incomplete, run the import again with --drop --yes",
        path.display()
    ))
}

fn summary(loaded: &Loaded) -> Output {
    let mut rows = vec![vec![
        "database".to_string(),
        "collection".to_string(),
        "documents".to_string(),
        "indexes".to_string(),
    ]];
    let mut databases: BTreeMap<&str, BTreeMap<&str, u64>> = BTreeMap::new();
    for c in &loaded.collections {
        rows.push(vec![
            c.db.clone(),
            c.collection.clone(),
            c.documents.to_string(),
            c.indexes.len().to_string(),
        ]);
        databases
            .entry(&c.db)
            .or_default()
            .insert(&c.collection, c.documents);
    }
    let gzip = if loaded.gzip { ", gzip" } else { "" };
    let mut text = format!(
        "imported {} documents in {} collections from {} ({}{gzip})\n{}",
        loaded.documents(),
        loaded.collections.len(),
        loaded.path,
        loaded.format,
        table(&rows)
    );
    for s in &loaded.skipped {
        text.push_str(&format!("not loaded: {} ({})\n", s.namespace, s.reason));
    }
    for c in &loaded.collections {
        for s in &c.skipped_indexes {
            text.push_str(&format!(
                "index not created: {}.{} {} ({})\n",
                c.db, c.collection, s.name, s.reason
            ));
        }
    }
    Output {
        text,
        json: json!({
            "from": loaded.path,
            "format": loaded.format,
            "gzip": loaded.gzip,
            "databases": databases,
            "documents": loaded.documents(),
            "collections": loaded.collections,
            "skipped": loaded.skipped,
        }),
    }
}
