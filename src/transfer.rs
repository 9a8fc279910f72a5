//! `import DIR` and `export DIR`: whole databases as
//! `DIR/<database>/<collection>.jsonl`, one relaxed Extended JSON document
//! per line, the format `mongoexport` writes and `mongoimport` reads.
//!
//! Import reads each file once, into a collection of its own beside the one
//! it loads (`<collection>.edn-import`); only when every file has been read
//! without fault do they take the place of, or join, their collections, so
//! a malformed line leaves the store as it was. Export writes in `_id` order through a
//! temporary file and a rename, so a file on disk is never half written.

use crate::engine::cores::map_refs_on_cores;
use crate::error::{CommandError, CommandResult};
use crate::extjson;
use crate::report::{progress_bar, table, Output};
use crate::store::keys::raw_sort_key;
use crate::store::patch::MAX_DOCUMENT_BYTES;
use crate::store::{Ns, Scan, Store, StoreError};
use bson::RawDocumentBuf;
use indicatif::ProgressBar;
use serde_json::json;
use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

/// How `import` treats documents already in the store.
#[derive(Debug, Clone, Copy)]
pub struct ImportOptions {
    /// Replace documents whose `_id` exists instead of failing on them.
    pub upsert: bool,
    /// Drop each collection first (the caller has confirmed).
    pub drop: bool,
    /// Documents per write batch.
    pub batch_size: u32,
}

/// One `.jsonl` file and the collection it loads into.
struct Source {
    path: PathBuf,
    ns: Ns,
    bytes: u64,
}

/// The top-level entry point for `import DIR`.
pub fn import(store: &dyn Store, dir: &Path, opts: ImportOptions) -> CommandResult<Output> {
    let sources = find_sources(dir)?;
    let progress = progress_bar(sources.iter().map(|s| s.bytes).sum(), "importing");
    let mut staged: Vec<(&Source, u64)> = Vec::new();
    let mut problems = Vec::new();
    for source in &sources {
        // After a malformed file, the rest are only checked, to name every
        // malformed file at once.
        if !problems.is_empty() {
            problems.extend(check_file(&source.path).err());
            continue;
        }
        match stage_file(store, source, opts.batch_size, &progress) {
            Ok(n) => staged.push((source, n)),
            Err(Staging::Malformed(problem)) => problems.push(problem),
            Err(Staging::Failed(e)) => {
                unstage(store, &sources);
                return Err(e);
            }
        }
    }
    progress.finish_and_clear();
    if !problems.is_empty() {
        unstage(store, &sources);
        return Err(CommandError::Input(format!(
            "nothing was imported: {} file(s) are malformed\n  {}\nfix or remove these lines and run the import again",
            problems.len(),
            problems.join("\n  ")
        )));
    }
    let mut counts: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    for (source, n) in staged {
        let n = land(store, source, n, opts).inspect_err(|_| unstage(store, &sources))?;
        counts
            .entry(source.ns.db.clone())
            .or_default()
            .insert(source.ns.coll.clone(), n);
    }
    Ok(summary("imported", dir, &counts))
}

/// The top-level entry point for `export DIR`.
pub fn export(
    store: &dyn Store,
    dbs: &[&str],
    dir: &Path,
    batch_size: u32,
) -> CommandResult<Output> {
    let mut counts: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    let progress = progress_bar(0, "exporting");
    crate::private::create_dir_all(dir)
        .map_err(CommandError::io(format!("creating {}", dir.display())))?;
    for db in dbs {
        let db_dir = dir.join(db);
        crate::private::create_dir_all(&db_dir)
            .map_err(CommandError::io(format!("creating {}", db_dir.display())))?;
        let collections = store.list_collections(db)?;
        remove_stale_files(&db_dir, &collections)?;
        let entry = counts.entry(db.to_string()).or_default();
        for coll in collections {
            let ns = Ns::new(*db, coll.as_str());
            let n = export_collection(
                store,
                &ns,
                &db_dir.join(format!("{coll}.jsonl")),
                batch_size,
                &progress,
            )?;
            entry.insert(coll, n);
        }
    }
    progress.finish_and_clear();
    Ok(summary("exported", dir, &counts))
}

fn find_sources(dir: &Path) -> CommandResult<Vec<Source>> {
    let mut sources = Vec::new();
    for db_dir in sorted_entries(dir)? {
        if !db_dir.is_dir() {
            continue;
        }
        let db = file_name(&db_dir);
        for file in sorted_entries(&db_dir)? {
            if file.extension().and_then(|e| e.to_str()) != Some("jsonl") {
                continue;
            }
            let coll = file
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or_default()
                .to_string();
            let bytes = fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
            sources.push(Source {
                ns: Ns::new(db.clone(), coll),
                path: file,
                bytes,
            });
        }
    }
    if sources.is_empty() {
        return Err(CommandError::Input(format!(
            "{} holds no DATABASE/COLLECTION.jsonl files: expected e.g. {}",
            dir.display(),
            dir.join("test_database").join("users.jsonl").display()
        )));
    }
    Ok(sources)
}

/// The lines of a JSONL file, numbered from 1, with a UTF-8 byte-order mark
/// at the start of the file dropped (editors on Windows write one).
fn numbered_lines(file: File) -> impl Iterator<Item = (usize, std::io::Result<String>)> {
    BufReader::new(file)
        .lines()
        .enumerate()
        .map(|(index, line)| {
            let line = match line {
                Ok(l) if index == 0 => {
                    Ok(l.strip_prefix('\u{feff}').map(str::to_string).unwrap_or(l))
                }
                other => other,
            };
            (index + 1, line)
        })
}

/// Lines read and parsed together, on all cores.
const PARSE_CHUNK: usize = 2048;
/// Documents formatted together on one thread: at most this many, and no
/// more once they weigh this many bytes of BSON.
const FORMAT_CHUNK: usize = 256;
const FORMAT_BYTES: usize = 1 << 20;
/// Chunks formatted at once while the next is read.
const CHUNKS_IN_FLIGHT: usize = 2;

/// One line of a JSONL file: its length, and its document (`None` for a
/// blank line).
struct ParsedLine {
    bytes: usize,
    doc: Option<Result<RawDocumentBuf, extjson::ExtJsonError>>,
}

/// The numbered lines of a file, parsed a chunk at a time on all cores
/// (parsing Extended JSON was nearly all of an import), in file order. A
/// thread reads and parses the next chunk while the caller works on this one.
fn parsed_lines(file: File) -> impl Iterator<Item = (usize, std::io::Result<ParsedLine>)> {
    let (send, receive) = std::sync::mpsc::sync_channel(1);
    std::thread::spawn(move || {
        let mut lines = numbered_lines(file);
        loop {
            let mut chunk = Vec::with_capacity(PARSE_CHUNK);
            let mut failed = None;
            for (number, line) in lines.by_ref() {
                match line {
                    Ok(text) => chunk.push((number, text)),
                    Err(e) => {
                        failed = Some((number, Err(e)));
                        break;
                    }
                }
                if chunk.len() == PARSE_CHUNK {
                    break;
                }
            }
            let last = chunk.len() < PARSE_CHUNK;
            let mut ready: Vec<_> = parse_chunk(chunk)
                .into_iter()
                .map(|(n, l)| (n, Ok(l)))
                .collect();
            ready.extend(failed);
            // The reader stopped early (an error): nothing more is wanted.
            if send.send(ready).is_err() || last {
                return;
            }
        }
    });
    receive.into_iter().flatten()
}

fn parse_chunk(chunk: Vec<(usize, String)>) -> Vec<(usize, ParsedLine)> {
    map_refs_on_cores(&chunk, |(number, text)| {
        let doc = (!text.trim().is_empty()).then(|| extjson::parse_line_raw(text));
        (
            *number,
            ParsedLine {
                bytes: text.len(),
                doc,
            },
        )
    })
}

/// The next documents of a scan, up to [`FORMAT_CHUNK`] of them or
/// [`FORMAT_BYTES`] of BSON, and the read error that ended them early.
fn read_chunk(
    docs: &mut impl Iterator<Item = crate::store::StoreResult<RawDocumentBuf>>,
) -> (Vec<RawDocumentBuf>, Option<StoreError>) {
    let mut chunk = Vec::with_capacity(FORMAT_CHUNK);
    let mut bytes = 0;
    while chunk.len() < FORMAT_CHUNK && bytes < FORMAT_BYTES {
        match docs.next() {
            Some(Ok(doc)) => {
                bytes += doc.as_bytes().len();
                chunk.push(doc);
            }
            Some(Err(e)) => return (chunk, Some(e)),
            None => break,
        }
    }
    (chunk, None)
}

/// The lines of a chunk of documents, each ending in a newline, and how
/// many there are; the first document that cannot be formatted is the error.
fn format_chunk(docs: Vec<RawDocumentBuf>) -> Result<(u64, Vec<u8>), bson::raw::Error> {
    let bytes: usize = docs.iter().map(|d| d.as_bytes().len()).sum();
    let mut out = Vec::with_capacity(bytes + bytes / 4);
    for doc in &docs {
        extjson::write_line_raw(doc, &mut out)?;
        out.push(b'\n');
    }
    Ok((docs.len() as u64, out))
}

/// The collection a file is read into before it joins its own.
fn staging(ns: &Ns) -> Ns {
    Ns::new(ns.db.clone(), format!("{}.edn-import", ns.coll))
}

/// Drops the staging collections, as far as it can: the import failed, and
/// that is the error to report. The next import drops what is left.
fn unstage(store: &dyn Store, sources: &[Source]) {
    for source in sources {
        let _ = store.drop_collection(&staging(&source.ns));
    }
}

/// Why a file was not staged.
enum Staging {
    /// A line is not a document the store can take: where, and why.
    Malformed(String),
    /// Reading the file or writing the store failed.
    Failed(CommandError),
}

impl From<crate::store::StoreError> for Staging {
    fn from(e: crate::store::StoreError) -> Staging {
        Staging::Failed(e.into())
    }
}

/// Reads a file into its staging collection, checking every line (see
/// `LineCheck`); the number of documents.
fn stage_file(
    store: &dyn Store,
    source: &Source,
    batch_size: u32,
    progress: &ProgressBar,
) -> Result<u64, Staging> {
    let stage = staging(&source.ns);
    store.drop_collection(&stage)?;
    store.create_collection(&stage)?;
    let file = File::open(&source.path)
        .map_err(|e| Staging::Malformed(format!("{}: {e}", source.path.display())))?;
    let mut check = LineCheck::new(&source.path);
    let mut batch = Vec::with_capacity(batch_size as usize);
    let mut count = 0;
    for (number, line) in parsed_lines(file) {
        let (bytes, doc) = check.line(number, line).map_err(Staging::Malformed)?;
        progress.inc(bytes as u64 + 1);
        batch.extend(doc);
        if batch.len() == batch_size as usize {
            count += write_raw_batch(store, &stage, &mut batch, false).map_err(Staging::Failed)?;
        }
    }
    count += write_raw_batch(store, &stage, &mut batch, false).map_err(Staging::Failed)?;
    Ok(count)
}

/// Reads every line of a file once, without keeping it; the first bad line
/// is the error (see `LineCheck`).
fn check_file(path: &Path) -> Result<(), String> {
    let file = File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut check = LineCheck::new(path);
    for (number, line) in parsed_lines(file) {
        check.line(number, line)?;
    }
    Ok(())
}

/// What every line of a file must be: JSON, with an `_id` no earlier line
/// has (MongoDB would refuse the second), within MongoDB's 16 MiB limit.
struct LineCheck<'a> {
    path: &'a Path,
    /// The store's key of every `_id` so far, with its line.
    seen: HashMap<Vec<u8>, usize>,
}

impl LineCheck<'_> {
    fn new(path: &Path) -> LineCheck<'_> {
        LineCheck {
            path,
            seen: HashMap::new(),
        }
    }

    /// The line's length and its document (`None` for a blank line), or
    /// what is wrong with it, with where.
    fn line(
        &mut self,
        number: usize,
        line: std::io::Result<ParsedLine>,
    ) -> Result<(usize, Option<RawDocumentBuf>), String> {
        let at = || format!("{}:{number}", self.path.display());
        let line = line.map_err(|e| format!("{}: {e}", at()))?;
        let Some(doc) = line.doc else {
            return Ok((line.bytes, None));
        };
        let doc = doc.map_err(|e| format!("{}: {e}", at()))?;
        let bytes = doc.as_bytes().len();
        if bytes > MAX_DOCUMENT_BYTES {
            return Err(format!(
                "{}: the document is {bytes} bytes as BSON, over MongoDB's 16 MiB limit ({MAX_DOCUMENT_BYTES} bytes); split or trim it",
                at()
            ));
        }
        let Ok(Some(id)) = doc.get("_id") else {
            return Err(format!("{}: the document has no _id", at()));
        };
        // The store's key: equal for ids MongoDB holds equal (1 and 1.0).
        if let Some(first) = self.seen.insert(raw_sort_key(Some(id)), number) {
            return Err(format!(
                "{}: duplicate _id, already on line {first}; remove one of the two",
                at()
            ));
        }
        Ok((line.bytes, Some(doc)))
    }
}

/// A staged collection takes its collection's place (dropped first with
/// `--drop`), or joins it when it exists (inserted, or upserted with
/// `--upsert`); the number of documents imported.
fn land(
    store: &dyn Store,
    source: &Source,
    staged: u64,
    opts: ImportOptions,
) -> CommandResult<u64> {
    let stage = staging(&source.ns);
    if opts.drop {
        store.drop_collection(&source.ns)?;
    }
    if !store
        .list_collections(&source.ns.db)?
        .contains(&source.ns.coll)
    {
        store.rename_collection(&stage, &source.ns.coll)?;
        return Ok(staged);
    }
    let mut batch = Vec::with_capacity(opts.batch_size as usize);
    let mut count = 0;
    for doc in store.scan_raw(&stage, &Scan::by_id(opts.batch_size))? {
        batch.push(doc?);
        if batch.len() == opts.batch_size as usize {
            count += write_raw_batch(store, &source.ns, &mut batch, opts.upsert)?;
        }
    }
    count += write_raw_batch(store, &source.ns, &mut batch, opts.upsert)?;
    store.drop_collection(&stage)?;
    Ok(count)
}

/// Writes and empties one batch of documents as BSON bytes.
fn write_raw_batch(
    store: &dyn Store,
    ns: &Ns,
    batch: &mut Vec<RawDocumentBuf>,
    upsert: bool,
) -> CommandResult<u64> {
    write_and_clear(batch, |docs| store.write_raw(ns, docs, upsert))
}

/// Writes and empties one batch; shared with the dump import so both
/// honour `--upsert` and name the flag that fixes a duplicate.
pub(crate) fn write_batch(
    store: &dyn Store,
    ns: &Ns,
    batch: &mut Vec<bson::Document>,
    upsert: bool,
) -> CommandResult<u64> {
    write_and_clear(batch, |docs| {
        if upsert {
            store.upsert_many(ns, docs)
        } else {
            store.insert_many(ns, docs)
        }
    })
}

/// Writes a batch (nothing when it is empty), empties it and says how many
/// documents it held.
fn write_and_clear<T>(
    batch: &mut Vec<T>,
    write: impl FnOnce(&[T]) -> crate::store::StoreResult<()>,
) -> CommandResult<u64> {
    if batch.is_empty() {
        return Ok(0);
    }
    write(batch).map_err(name_the_flags)?;
    let n = batch.len() as u64;
    batch.clear();
    Ok(n)
}

/// A duplicate `_id` names the flags that get past it.
fn name_the_flags(e: crate::store::StoreError) -> CommandError {
    match e {
        crate::store::StoreError::DuplicateKey { .. } => CommandError::Input(format!(
            "{e}\nthe store already holds some of these documents: pass --upsert to replace them, or --drop to reload the collections"
        )),
        other => other.into(),
    }
}

fn export_collection(
    store: &dyn Store,
    ns: &Ns,
    path: &Path,
    batch_size: u32,
    progress: &ProgressBar,
) -> CommandResult<u64> {
    let tmp = path.with_extension("jsonl.tmp");
    let file = crate::private::create_file(&tmp)
        .map_err(CommandError::io(format!("creating {}", tmp.display())))?;
    let mut out = BufWriter::new(file);
    let mut count = 0;
    let mut docs = store.scan_raw(ns, &Scan::by_id(batch_size))?;
    let writing = |e| CommandError::io(format!("writing {}", tmp.display()))(e);
    // Formatting was most of an export: each chunk is formatted on a thread
    // of its own while this one reads the next chunks from the store, and
    // the chunks are written in order.
    std::thread::scope(|scope| -> CommandResult<()> {
        let mut pending = std::collections::VecDeque::new();
        loop {
            let (chunk, failed) = read_chunk(&mut docs);
            let done = failed.is_some() || chunk.is_empty();
            if !chunk.is_empty() {
                pending.push_back(scope.spawn(move || format_chunk(chunk)));
            }
            while pending.len() >= CHUNKS_IN_FLIGHT || (done && !pending.is_empty()) {
                let formatted = pending
                    .pop_front()
                    .expect("a chunk is pending")
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
                let (n, lines) = formatted
                    .map_err(|e| CommandError::from(StoreError::Encoding(e.to_string())))?;
                out.write_all(&lines).map_err(writing)?;
                count += n;
                progress.inc(n);
            }
            if let Some(e) = failed {
                return Err(e.into());
            }
            if done {
                return Ok(());
            }
        }
    })?;
    out.into_inner()
        .map_err(|e| CommandError::io(format!("writing {}", tmp.display()))(e.into_error()))?
        .sync_all()
        .map_err(CommandError::io(format!("writing {}", tmp.display())))?;
    fs::rename(&tmp, path).map_err(CommandError::io(format!("renaming {}", tmp.display())))?;
    Ok(count)
}

/// Removes `.jsonl` files of collections that no longer exist, so importing
/// the folder again gives back exactly the exported databases.
fn remove_stale_files(db_dir: &Path, collections: &[String]) -> CommandResult<()> {
    for file in sorted_entries(db_dir)? {
        let is_jsonl = file.extension().and_then(|e| e.to_str()) == Some("jsonl");
        let stem = file
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default();
        if is_jsonl && !collections.iter().any(|c| c == stem) {
            fs::remove_file(&file).map_err(CommandError::io(format!(
                "removing stale {}",
                file.display()
            )))?;
        }
    }
    Ok(())
}

fn sorted_entries(dir: &Path) -> CommandResult<Vec<PathBuf>> {
    let entries = fs::read_dir(dir).map_err(CommandError::io(format!(
        "reading folder {}",
        dir.display()
    )))?;
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    Ok(paths)
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
        .to_string()
}

fn summary(verb: &str, dir: &Path, counts: &BTreeMap<String, BTreeMap<String, u64>>) -> Output {
    let total: u64 = counts.values().flat_map(|c| c.values()).sum();
    let mut rows = vec![vec![
        "database".into(),
        "collection".into(),
        "documents".into(),
    ]];
    for (db, colls) in counts {
        for (coll, n) in colls {
            rows.push(vec![db.clone(), coll.clone(), n.to_string()]);
        }
    }
    let text = format!(
        "{verb} {total} documents in {} collections ({})\n{}",
        rows.len() - 1,
        dir.display(),
        table(&rows)
    );
    Output {
        text,
        json: json!({ "dir": dir.display().to_string(), "databases": counts, "documents": total }),
    }
}
