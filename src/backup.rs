//! `phase2 backup` and `rollback --phase 2 --from-backup`: the safety net the
//! migration gates on.
//!
//! A backup is a folder in mongodump's layout, so `mongorestore` can read it
//! as well as this tool:
//!
//! ```text
//! <backup_dir>/<id>/manifest.json
//! <backup_dir>/<id>/<db>/<coll>.bson            documents in _id order, concatenated
//! <backup_dir>/<id>/<db>/<coll>.metadata.json   options and indexes
//! ```
//!
//! The manifest records, per file, its byte length, its SHA-256 and the
//! number of documents, so a backup can be checked long after it was taken.
//! Everything is written under `<id>.partial/` and renamed into place only
//! once it has been read back and verified: a folder without that suffix is
//! a complete backup, whatever happened to the process that wrote it.
//!
//! The data is personal and health data, so every folder is created 0700 and
//! every file 0600. Documents are streamed one scan batch at a time, in both
//! directions, so memory never grows with the data.
//!
//! A backup is not a point-in-time snapshot across collections (neither is
//! mongodump without `--oplog`): take it in the maintenance window, with the
//! application's writes stopped.

use crate::config::Config;
use crate::error::{CommandError, CommandResult};
use crate::report::{progress_bar, table, Output};
use crate::store::{IndexSpec, Ns, Scan, Store};
use bson::Document;
use chrono::{DateTime, SecondsFormat, Utc};
use indicatif::ProgressBar;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Component, Path, PathBuf};
use std::time::Instant;

/// The manifest's file name inside a backup folder.
pub const MANIFEST: &str = "manifest.json";
/// The suffix of a backup still being written (or abandoned by a crash).
const PARTIAL: &str = ".partial";
/// Documents per scan round trip while dumping.
const SCAN_BATCH: u32 = 1000;
/// The largest document a BSON stream may declare: MongoDB's 16 MiB limit
/// plus its internal headroom. A larger length is corruption, and refusing it
/// keeps a flipped length byte from allocating gigabytes.
const MAX_DOCUMENT_BYTES: usize = 16 * 1024 * 1024 + 16 * 1024;

/// The manifest written next to a backup (`manifest.json`): what was backed
/// up and the checksums that prove the files are still what was written.
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct Manifest {
    /// Sortable and unique: `20261123T131500Z-3fa2c1`; also the folder name.
    pub id: String,
    /// When the backup started, RFC 3339 UTC.
    pub created_at: String,
    /// The store it was taken from, password redacted.
    pub store: String,
    /// The edn-migrate version that wrote it.
    pub tool_version: String,
    /// One entry per backed-up collection, in the order they were written.
    pub collections: Vec<CollectionEntry>,
    /// When the files were last read back and matched this manifest
    /// (RFC 3339 UTC); `None` if never, or if the last check failed.
    pub verified_at: Option<String>,
    /// What the backup was taken of, for the gates (`None`: written by a
    /// version without one, which no gate accepts).
    #[serde(default)]
    pub fingerprint: Option<Fingerprint>,
}

/// What a backup was taken of: the store and the two databases. With the
/// collections and counts of the manifest, it lets a gate tell a backup of
/// *this* store and these databases from one of another store, or of a
/// misspelled database.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint {
    /// The store, as [`store_identity`] names it (no credentials).
    pub store: String,
    /// The legacy database.
    pub legacy_db: String,
    /// The drawer database.
    pub drawer_db: String,
}

impl Fingerprint {
    /// The fingerprint of a backup taken now with this configuration.
    pub fn of(config: &Config) -> Fingerprint {
        Fingerprint {
            store: store_identity(&config.store_url),
            legacy_db: config.legacy_db.clone(),
            drawer_db: config.drawer_db.clone(),
        }
    }
}

/// A store URL reduced to what identifies the data: an embedded store by its
/// absolute file path, a MongoDB deployment by its sorted hosts (user names,
/// passwords, default database and options left out, so the same deployment
/// reached with other options is the same store).
pub fn store_identity(url: &str) -> String {
    if let Some(path) = url.strip_prefix("sqlite:") {
        let path = Path::new(path);
        let absolute = std::fs::canonicalize(path)
            .or_else(|_| std::path::absolute(path))
            .unwrap_or_else(|_| path.to_path_buf());
        return format!("sqlite:{}", absolute.display());
    }
    for scheme in ["mongodb+srv://", "mongodb://"] {
        if let Some(rest) = url.strip_prefix(scheme) {
            let authority = rest.split(['/', '?']).next().unwrap_or_default();
            let hosts = authority.rsplit('@').next().unwrap_or_default();
            let mut hosts: Vec<String> = hosts.split(',').map(str::to_lowercase).collect();
            hosts.sort();
            return format!("{scheme}{}", hosts.join(","));
        }
    }
    crate::redact::redact_url(url)
}

impl Manifest {
    /// The documents in the whole backup: what the summaries report.
    pub fn documents(&self) -> u64 {
        self.collections.iter().map(|c| c.count).sum()
    }
}

/// One backed-up collection: where its files are and what they must hash to.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct CollectionEntry {
    /// The database the collection was read from (and is restored into).
    pub db: String,
    /// The collection name.
    pub name: String,
    /// Documents in the `.bson` file.
    pub count: u64,
    /// The `.bson` file, relative to the backup folder, `/`-separated.
    pub bson_file: String,
    /// The `.bson` file's length in bytes.
    pub bson_bytes: u64,
    /// The `.bson` file's SHA-256, lowercase hex.
    pub bson_sha256: String,
    /// The `.metadata.json` file, relative to the backup folder.
    pub metadata_file: String,
    /// The `.metadata.json` file's SHA-256, lowercase hex.
    pub metadata_sha256: String,
}

impl CollectionEntry {
    fn ns(&self) -> Ns {
        Ns::new(&self.db, &self.name)
    }
}

/// The top-level entry point for `phase2 backup`.
///
/// Backs up the legacy collections (`config.legacy_collections()`) and the
/// drawers (`config.drawers_ns()`) into `<backup_dir>/<id>/`, in mongodump's
/// layout, with a manifest; reads everything back against the manifest and
/// records `verified_at` before the folder gets its final name. A collection
/// that does not exist is backed up as empty files (count 0), so a restore
/// leaves it empty too. A backup that fails part-way removes its `.partial`
/// folder; one that fails verification keeps it for inspection.
pub fn create(
    store: &dyn Store,
    config: &Config,
    backup_dir: &Path,
    now: DateTime<Utc>,
) -> CommandResult<Output> {
    let started = Instant::now();
    let id = new_id(now);
    let namespaces = backed_up_namespaces(config);
    for ns in &namespaces {
        check_file_name(&ns.db)?;
        check_file_name(&ns.coll)?;
    }
    private_dir_all(backup_dir)?;
    let partial = backup_dir.join(format!("{id}{PARTIAL}"));
    private_dir(&partial)?;
    let fingerprint = Fingerprint::of(config);
    let manifest = match write_backup(
        store,
        &namespaces,
        &fingerprint,
        &partial,
        &id,
        now,
        started,
    ) {
        Ok(manifest) => manifest,
        Err(e) => {
            // Personal data should not linger in a folder nothing will use;
            // a folder that failed verification stays, for inspection.
            if !matches!(e, CommandError::Gate(_)) {
                let _ = fs::remove_dir_all(&partial);
            }
            return Err(e);
        }
    };

    let done = backup_dir.join(&id);
    fs::rename(&partial, &done).map_err(CommandError::io(format!(
        "renaming {} to {}",
        partial.display(),
        done.display()
    )))?;
    sync_dir(backup_dir);

    let closing = format!(
        "backup {id} written and verified ({} documents, {} collections)",
        manifest.documents(),
        manifest.collections.len()
    );
    Ok(Output {
        text: format!(
            "{}  path: {}\n{closing}\n",
            collections_table(&manifest),
            done.display()
        ),
        json: json!({
            "id": manifest.id,
            "path": done.display().to_string(),
            "created_at": manifest.created_at,
            "verified_at": manifest.verified_at,
            "documents": manifest.documents(),
            "collections": manifest.collections,
        }),
    })
}

/// The top-level entry point for `phase2 backup --verify [ID]` (the newest
/// backup when `id` is `None`).
///
/// Re-reads every file and compares its SHA-256, byte length and document
/// count with the manifest. On success `verified_at` is updated; on any
/// difference the command fails with a gate error naming each file and what
/// differs, and `verified_at` is cleared so the migration no longer trusts
/// the backup.
pub fn verify(backup_dir: &Path, id: Option<&str>, now: DateTime<Utc>) -> CommandResult<Output> {
    let (dir, mut manifest) = open_backup(backup_dir, id)?;
    let problems = check(&dir, &manifest);
    if !problems.is_empty() {
        let mut cleared = String::new();
        if manifest.verified_at.is_some() {
            manifest.verified_at = None;
            cleared = match write_manifest(&dir, &manifest) {
                Ok(()) => "; it no longer counts as verified".into(),
                Err(e) => format!("; marking it unverified failed too: {e}"),
            };
        }
        return Err(CommandError::Gate(format!(
            "backup {} does not verify ({}){cleared}:\n  {}\n\
             take a new backup with `edn-migrate phase2 backup`, or restore from another one (`edn-migrate phase2 backup --list`)",
            manifest.id,
            dir.display(),
            problems.join("\n  ")
        )));
    }
    manifest.verified_at = Some(stamp(now));
    write_manifest(&dir, &manifest)?;
    Ok(Output {
        text: format!(
            "{}  path: {}\nbackup {} verified: {} documents in {} collections match the manifest\n",
            collections_table(&manifest),
            dir.display(),
            manifest.id,
            manifest.documents(),
            manifest.collections.len()
        ),
        json: json!({
            "id": manifest.id,
            "path": dir.display().to_string(),
            "verified_at": manifest.verified_at,
            "documents": manifest.documents(),
            "collections": manifest.collections.len(),
        }),
    })
}

/// The top-level entry point for `phase2 backup --list`: one row per
/// complete backup, newest first, with its age measured from `now`.
pub fn list(backup_dir: &Path, now: DateTime<Utc>) -> CommandResult<Output> {
    let found = find_backups(backup_dir)?;
    let mut rows = vec![vec![
        "backup".to_string(),
        "age".to_string(),
        "documents".to_string(),
        "verified".to_string(),
    ]];
    let mut backups = Vec::new();
    for (_, manifest) in &found.complete {
        let age = parse_stamp(&manifest.created_at).map(|t| (now - t).num_seconds().max(0));
        rows.push(vec![
            manifest.id.clone(),
            age.map_or_else(|| "unknown".to_string(), age_text),
            manifest.documents().to_string(),
            manifest
                .verified_at
                .as_deref()
                .map_or_else(|| "no".to_string(), |at| format!("yes, {at}")),
        ]);
        backups.push(json!({
            "id": manifest.id,
            "created_at": manifest.created_at,
            "age_seconds": age,
            "documents": manifest.documents(),
            "verified_at": manifest.verified_at,
        }));
    }
    let mut text = if found.complete.is_empty() {
        format!(
            "no backups in {}: take one with `edn-migrate phase2 backup`\n",
            backup_dir.display()
        )
    } else {
        format!(
            "{} backup(s) in {}\n{}",
            found.complete.len(),
            backup_dir.display(),
            table(&rows)
        )
    };
    for name in &found.incomplete {
        text.push_str(&format!(
            "incomplete: {name} (an interrupted backup; never used, safe to delete)\n"
        ));
    }
    for (name, why) in &found.unreadable {
        text.push_str(&format!("ignored: {name} ({why})\n"));
    }
    Ok(Output {
        text,
        json: json!({
            "dir": backup_dir.display().to_string(),
            "backups": backups,
            "incomplete": found.incomplete,
        }),
    })
}

/// The backup gate, for `phase2 migrate` and `phase3 switch`: the newest
/// verified backup of *this* store and these databases (its fingerprint and
/// collections match `config`), no older than `max_age`, not empty when the
/// legacy database is not, with every file there at its recorded size (the
/// full SHA-256 check stays in `phase2 backup --verify`). A gate error says
/// which of these failed and what to run.
pub fn gate(
    store: &dyn Store,
    config: &Config,
    backup_dir: &Path,
    now: DateTime<Utc>,
    max_age: chrono::Duration,
) -> CommandResult<Manifest> {
    let fix = "run `edn-migrate phase2 backup` with this --store, --legacy-db and --drawer-db, or pass `--force --reason \"…\"`";
    let verified: Vec<(PathBuf, Manifest)> = find_backups(backup_dir)?
        .complete
        .into_iter()
        .filter(|(_, m)| m.verified_at.is_some())
        .collect();
    let Some((_, newest)) = verified.first() else {
        return Err(CommandError::Gate(format!(
            "no verified backup in {}: {fix}",
            backup_dir.display()
        )));
    };
    let want = Fingerprint::of(config);
    let namespaces = backed_up_namespaces(config);
    let matches = |m: &Manifest| {
        m.fingerprint.as_ref() == Some(&want)
            && m.collections.len() == namespaces.len()
            && m.collections.iter().all(|c| namespaces.contains(&c.ns()))
    };
    let Some((dir, manifest)) = verified.iter().find(|(_, m)| matches(m)) else {
        let taken_of = match &newest.fingerprint {
            Some(f) => format!(
                "{} (databases {} and {})",
                f.store, f.legacy_db, f.drawer_db
            ),
            None => {
                "an unknown store (written by an edn-migrate without backup fingerprints)".into()
            }
        };
        return Err(CommandError::Gate(format!(
            "no verified backup of this store and databases in {}: the newest, {}, was taken of {taken_of}; this run uses {} (databases {} and {}): {fix}",
            backup_dir.display(),
            newest.id,
            want.store,
            want.legacy_db,
            want.drawer_db
        )));
    };
    let taken = parse_stamp(&manifest.created_at).ok_or_else(|| {
        CommandError::Gate(format!(
            "backup {} has an unreadable date: {fix}",
            manifest.id
        ))
    })?;
    if now - taken > max_age {
        return Err(CommandError::Gate(format!(
            "backup {} is older than {} h (taken {}): {fix}",
            manifest.id,
            max_age.num_hours(),
            taken.format("%Y-%m-%d %H:%M UTC")
        )));
    }
    let in_backup: u64 = manifest
        .collections
        .iter()
        .filter(|c| c.db == config.legacy_db)
        .map(|c| c.count)
        .sum();
    if in_backup == 0 {
        let mut now_held = 0;
        for coll in config.legacy_collections() {
            now_held += store.count(&config.legacy(coll))?;
        }
        if now_held > 0 {
            return Err(CommandError::Gate(format!(
                "backup {} holds no document of {}, which now holds {now_held}: it was taken before the data was there; {fix}",
                manifest.id, config.legacy_db
            )));
        }
    }
    let missing = missing_files(dir, manifest);
    if !missing.is_empty() {
        return Err(CommandError::Gate(format!(
            "backup {} ({}) is no longer whole:\n  {}\n{fix}",
            manifest.id,
            dir.display(),
            missing.join("\n  ")
        )));
    }
    Ok(manifest.clone())
}

/// Files of a backup that are gone or no longer have their recorded size.
fn missing_files(dir: &Path, manifest: &Manifest) -> Vec<String> {
    let mut out = Vec::new();
    for entry in &manifest.collections {
        for (file, bytes) in [
            (&entry.bson_file, Some(entry.bson_bytes)),
            (&entry.metadata_file, None),
        ] {
            let size = backup_path(dir, file).and_then(|p| {
                fs::metadata(&p).map_err(|e| CommandError::Input(format!("{file}: {e}")))
            });
            match (size, bytes) {
                (Err(_), _) => out.push(format!("{file}: missing")),
                (Ok(m), Some(want)) if m.len() != want => out.push(format!(
                    "{file}: {} bytes, the manifest says {want}",
                    m.len()
                )),
                _ => {}
            }
        }
    }
    out
}

/// The newest backup whose manifest records a
/// successful verification. Interrupted (`.partial`) folders and manifests
/// without `verified_at` never count. A missing backup folder means none.
pub fn latest_verified(backup_dir: &Path) -> CommandResult<Option<Manifest>> {
    Ok(find_backups(backup_dir)?
        .complete
        .into_iter()
        .map(|(_, m)| m)
        .find(|m| m.verified_at.is_some()))
}

/// What `rollback --phase 2 --from-backup ID` brings back, and how.
#[derive(Debug, Clone)]
pub struct RestoreOptions {
    /// Restore the legacy collections too (the application is still
    /// writing them: what it wrote since the backup is lost).
    pub include_legacy: bool,
    /// Documents per insert.
    pub batch_size: u32,
    /// The reason given with `--force`, recorded with the run.
    pub force_reason: Option<String>,
}

impl Default for RestoreOptions {
    fn default() -> Self {
        RestoreOptions {
            include_legacy: false,
            batch_size: 1000,
            force_reason: None,
        }
    }
}

/// The backup's collections a restore replaces, and the ones it leaves.
fn restore_selection<'m>(
    config: &Config,
    manifest: &'m Manifest,
    include_legacy: bool,
) -> (Vec<&'m CollectionEntry>, Vec<&'m CollectionEntry>) {
    let drawer_side = drawer_side(config);
    manifest
        .collections
        .iter()
        .partition(|e| include_legacy || drawer_side.contains(&e.ns()))
}

/// What restoring backup `id` would overwrite: per collection, the documents
/// now in the store against those in the backup, and the collections it
/// leaves alone. Printed before `rollback --phase 2 --from-backup ID` asks
/// for confirmation.
pub fn restore_plan(
    store: &dyn Store,
    config: &Config,
    backup_dir: &Path,
    id: &str,
    include_legacy: bool,
) -> CommandResult<Output> {
    let (dir, manifest) = open_backup(backup_dir, Some(id))?;
    let (chosen, left) = restore_selection(config, &manifest, include_legacy);
    let mut rows = vec![vec![
        "database".to_string(),
        "collection".to_string(),
        "now".to_string(),
        "in backup".to_string(),
    ]];
    let mut collections = Vec::new();
    let mut current_total = 0;
    let mut backup_total = 0;
    for entry in &chosen {
        let current = store.count(&entry.ns())?;
        current_total += current;
        backup_total += entry.count;
        rows.push(vec![
            entry.db.clone(),
            entry.name.clone(),
            current.to_string(),
            entry.count.to_string(),
        ]);
        collections.push(json!({
            "db": entry.db,
            "collection": entry.name,
            "current": current,
            "backup": entry.count,
        }));
    }
    let verified = manifest.verified_at.as_deref().map_or_else(
        || "never verified".to_string(),
        |at| format!("verified {at}"),
    );
    let left_names: Vec<String> = left.iter().map(|e| e.ns().to_string()).collect();
    let kept = if left.is_empty() {
        String::new()
    } else {
        format!(
            "left as they are (the application's, still written): {}; pass --include-legacy to restore them too\n",
            left_names.join(", ")
        )
    };
    let text = format!(
        "restoring backup {} (taken {}, {verified}) from {}\n\
         drops and reloads these {} collections in {}:\n{}\
         {current_total} documents now in the store will be replaced by the backup's {backup_total}; anything written to them since {} is lost\n{kept}",
        manifest.id,
        manifest.created_at,
        dir.display(),
        chosen.len(),
        store.describe(),
        table(&rows),
        manifest.created_at,
    );
    Ok(Output {
        text,
        json: json!({
            "id": manifest.id,
            "created_at": manifest.created_at,
            "verified_at": manifest.verified_at,
            "path": dir.display().to_string(),
            "collections": collections,
            "left_alone": left_names,
            "current": current_total,
            "backup": backup_total,
        }),
    })
}

/// The top-level entry point for `rollback --phase 2 --from-backup ID`.
///
/// Verifies the backup first and refuses (gate) if it does not verify. Then,
/// under the phase 2 lock and with a run record, per collection of the
/// drawer side (and the legacy side with `include_legacy`): drops it,
/// reloads it from its `.bson` file in batches, and recreates the indexes
/// its metadata lists exactly (the implicit `_id_` aside). Indexes come
/// after the data, as with mongorestore, so a unique index is checked once
/// against the restored documents. A restore that stops halfway (an error,
/// or SIGINT between batches) can simply be run again: every collection is
/// dropped before it is reloaded.
pub fn restore(
    store: &dyn Store,
    config: &Config,
    backup_dir: &Path,
    id: &str,
    opts: &RestoreOptions,
) -> CommandResult<Output> {
    let (dir, manifest) = open_backup(backup_dir, Some(id))?;
    let problems = check(&dir, &manifest);
    if !problems.is_empty() {
        return Err(CommandError::Gate(format!(
            "refusing to restore backup {}: it does not verify ({}):\n  {}\n\
             nothing was changed; pick another backup (`edn-migrate phase2 backup --list`)",
            manifest.id,
            dir.display(),
            problems.join("\n  ")
        )));
    }
    let (chosen, _) = restore_selection(config, &manifest, opts.include_legacy);
    // Parse every metadata file before dropping anything, so a bad index
    // definition cannot leave the store half restored.
    let mut plans = Vec::with_capacity(chosen.len());
    for entry in chosen {
        plans.push((entry, read_indexes(&dir, entry)?));
    }
    let mut run = crate::run::Run::start(
        store,
        config,
        crate::run::RunSpec {
            force_reason: opts.force_reason.clone(),
            ..crate::run::RunSpec::locked(
                format!("rollback --phase 2 --from-backup {}", manifest.id),
                "restore",
            )
        },
    )?;
    let run_id = run.id().to_string();
    match reload(store, &dir, &manifest, &plans, opts, &mut run) {
        Ok((output, restored)) => {
            run.record_mut().tally.writes = restored;
            run.finish(
                "succeeded",
                Some(bson::doc! { "backup": &manifest.id, "restored": restored as i64 }),
            )?;
            Ok(output)
        }
        Err(e) => {
            let record = run.fail(&e);
            let message = format!(
                "{e}\nrestore {run_id} {} part-way; run `edn-migrate rollback --phase 2 --from-backup {}{}` again: every collection is dropped before it is reloaded",
                record.outcome,
                manifest.id,
                if opts.include_legacy { " --include-legacy" } else { "" }
            );
            Err(match e {
                CommandError::Interrupted(_) => CommandError::Interrupted(message),
                CommandError::LockHeld(_) => CommandError::LockHeld(message),
                CommandError::Gate(_) => CommandError::Gate(message),
                _ => CommandError::Input(message),
            })
        }
    }
}

/// Drops and reloads the chosen collections; returns the summary and how
/// many documents were restored.
fn reload(
    store: &dyn Store,
    dir: &Path,
    manifest: &Manifest,
    plans: &[(&CollectionEntry, Vec<IndexSpec>)],
    opts: &RestoreOptions,
    run: &mut crate::run::Run<'_>,
) -> CommandResult<(Output, u64)> {
    let batch_size = opts.batch_size.max(1) as usize;
    let total: u64 = plans.iter().map(|(e, _)| e.count).sum();
    let progress = progress_bar(total, "restoring");
    let mut rows = vec![vec![
        "database".to_string(),
        "collection".to_string(),
        "replaced".to_string(),
        "restored".to_string(),
        "indexes".to_string(),
    ]];
    let mut collections = Vec::new();
    let mut replaced_total = 0;
    let mut restored_total = 0;
    for (entry, indexes) in plans {
        let ns = entry.ns();
        let replaced = store.count(&ns)?;
        store.drop_collection(&ns)?;
        store.create_collection(&ns)?;
        let path = backup_path(dir, &entry.bson_file)?;
        let file =
            File::open(&path).map_err(CommandError::io(format!("reading {}", path.display())))?;
        let mut stream = BsonStream::new(BufReader::new(file), entry.bson_file.clone());
        let mut batch = Vec::with_capacity(batch_size);
        let mut restored = 0;
        loop {
            let next = stream.next_document()?;
            let done = next.is_none();
            batch.extend(next);
            if batch.len() == batch_size || (done && !batch.is_empty()) {
                run.renew_before_writes()?;
                store.insert_many(&ns, &batch)?;
                restored += batch.len() as u64;
                progress.inc(batch.len() as u64);
                batch.clear();
            }
            if done {
                break;
            }
        }
        if restored != entry.count {
            return Err(CommandError::Input(format!(
                "{}: read {restored} documents, the manifest says {}: the file changed during the restore; {ns} is incomplete",
                entry.bson_file, entry.count
            )));
        }
        for spec in indexes {
            store.create_index(&ns, spec)?;
        }
        replaced_total += replaced;
        restored_total += restored;
        rows.push(vec![
            entry.db.clone(),
            entry.name.clone(),
            replaced.to_string(),
            restored.to_string(),
            indexes.len().to_string(),
        ]);
        collections.push(json!({
            "db": entry.db,
            "collection": entry.name,
            "replaced": replaced,
            "restored": restored,
            "indexes": indexes.iter().map(|i| i.name.clone()).collect::<Vec<_>>(),
        }));
        // Between collections: a signal stops the restore here.
        run.renew()?;
    }
    progress.finish_and_clear();
    let output = Output {
        text: format!(
            "{}  path: {}\nbackup {} restored ({restored_total} documents, {} collections; {replaced_total} documents replaced; run {})\n",
            table(&rows),
            dir.display(),
            manifest.id,
            plans.len(),
            run.id()
        ),
        json: json!({
            "id": manifest.id,
            "run_id": run.id(),
            "path": dir.display().to_string(),
            "documents": restored_total,
            "replaced": replaced_total,
            "collections": collections,
        }),
    };
    Ok((output, restored_total))
}

/// Writes the files and the manifest into the `.partial` folder and reads
/// them back; the manifest returned is verified.
fn write_backup(
    store: &dyn Store,
    namespaces: &[Ns],
    fingerprint: &Fingerprint,
    partial: &Path,
    id: &str,
    now: DateTime<Utc>,
    started: Instant,
) -> CommandResult<Manifest> {
    let mut expected = 0;
    for ns in namespaces {
        expected += store.count(ns)?;
    }
    let progress = progress_bar(expected, "backing up");
    let mut collections = Vec::with_capacity(namespaces.len());
    for ns in namespaces {
        collections.push(dump_collection(store, ns, partial, &progress)?);
    }
    progress.finish_and_clear();

    let mut manifest = Manifest {
        id: id.to_string(),
        created_at: stamp(now),
        store: crate::redact::redact_url(&store.describe()),
        tool_version: env!("CARGO_PKG_VERSION").to_string(),
        collections,
        verified_at: None,
        fingerprint: Some(fingerprint.clone()),
    };
    write_manifest(partial, &manifest)?;
    let problems = check(partial, &manifest);
    if !problems.is_empty() {
        return Err(CommandError::Gate(format!(
            "backup {id} was written but does not read back as written:\n  {}\n\
             {} is kept for inspection and will never count as a backup; check the disk, then run `edn-migrate phase2 backup` again",
            problems.join("\n  "),
            partial.display()
        )));
    }
    let verified = now + chrono::Duration::from_std(started.elapsed()).unwrap_or_default();
    manifest.verified_at = Some(stamp(verified));
    write_manifest(partial, &manifest)?;

    Ok(manifest)
}

/// The collections a backup holds: the legacy ones, then the drawers, each
/// once even if a configuration names one twice.
/// The collections the migration writes: what a restore brings back by
/// default (the legacy ones are the application's, still being written).
fn drawer_side(config: &Config) -> [Ns; 3] {
    [
        config.drawers_ns(),
        config.drawer(crate::config::own::SNAPSHOT_ARCHIVE),
        config.drawer(crate::config::own::QUARANTINE),
    ]
}

fn backed_up_namespaces(config: &Config) -> Vec<Ns> {
    let mut out: Vec<Ns> = Vec::new();
    let all = config
        .legacy_collections()
        .into_iter()
        .map(|c| config.legacy(c))
        .chain(drawer_side(config));
    for ns in all {
        if !out.contains(&ns) {
            out.push(ns);
        }
    }
    out
}

fn dump_collection(
    store: &dyn Store,
    ns: &Ns,
    partial: &Path,
    progress: &ProgressBar,
) -> CommandResult<CollectionEntry> {
    let db_dir = partial.join(&ns.db);
    if !db_dir.is_dir() {
        private_dir(&db_dir)?;
    }
    let bson_file = format!("{}/{}.bson", ns.db, ns.coll);
    let bson_path = db_dir.join(format!("{}.bson", ns.coll));
    let mut out = Hashing::new(BufWriter::new(private_file(&bson_path)?));
    let writing = || CommandError::io(format!("writing {}", bson_path.display()));
    let mut count = 0;
    for doc in store.scan(ns, &Scan::by_id(SCAN_BATCH))? {
        let bytes = bson::to_vec(&doc?).map_err(|e| {
            CommandError::Input(format!("{ns}: a document cannot be encoded as BSON: {e}"))
        })?;
        out.inner.write_all(&bytes).map_err(writing())?;
        out.update(&bytes);
        count += 1;
        progress.inc(1);
    }
    let (writer, bson_bytes, bson_sha256) = out.finish();
    writer
        .into_inner()
        .map_err(|e| writing()(e.into_error()))?
        .sync_all()
        .map_err(writing())?;

    let metadata = metadata_json(&ns.coll, &store.list_indexes(ns)?);
    let metadata_file = format!("{}/{}.metadata.json", ns.db, ns.coll);
    let metadata_path = db_dir.join(format!("{}.metadata.json", ns.coll));
    write_private(&metadata_path, &metadata)?;
    Ok(CollectionEntry {
        db: ns.db.clone(),
        name: ns.coll.clone(),
        count,
        bson_file,
        bson_bytes,
        bson_sha256,
        metadata_file,
        metadata_sha256: hex(&Sha256::digest(&metadata)),
    })
}

/// mongodump's `<coll>.metadata.json`: the `_id_` index first, then every
/// other index with its keys in order and direction, and every option it
/// has (unique, sparse, TTL, partial filter), so a restore recreates it
/// exactly.
fn metadata_json(coll: &str, indexes: &[IndexSpec]) -> Vec<u8> {
    let mut list = vec![json!({"v": 2, "key": {"_id": 1}, "name": "_id_"})];
    for spec in indexes {
        list.push(crate::extjson::document_to_json(&spec.to_metadata()));
    }
    json!({
        "options": {},
        "indexes": list,
        "uuid": "",
        "collectionName": coll,
        "type": "collection",
    })
    .to_string()
    .into_bytes()
}

/// The indexes a restore recreates, read back from a metadata file. An index
/// this tool cannot recreate exactly is an error, never a silent downgrade.
fn read_indexes(dir: &Path, entry: &CollectionEntry) -> CommandResult<Vec<IndexSpec>> {
    let file = &entry.metadata_file;
    let path = backup_path(dir, file)?;
    let bytes = fs::read(&path).map_err(CommandError::io(format!("reading {}", path.display())))?;
    let bad = |why: String| CommandError::Input(format!("{file}: {why}"));
    let metadata: Value =
        serde_json::from_slice(&bytes).map_err(|e| bad(format!("not JSON: {e}")))?;
    let Some(indexes) = metadata.get("indexes").and_then(Value::as_array) else {
        return Err(bad("no \"indexes\" array".into()));
    };
    let mut specs = Vec::new();
    for (i, index) in indexes.iter().enumerate() {
        let index = crate::extjson::document_from_json(index.clone())
            .map_err(|e| bad(format!("index #{i}: {e}")))?;
        if index.get_str("name") == Ok("_id_") {
            continue;
        }
        specs.push(IndexSpec::from_metadata(&index).map_err(bad)?);
    }
    Ok(specs)
}

/// Re-reads every file of a backup against its manifest. Returns one line per
/// difference, unreadable files included (empty: the backup verifies).
fn check(dir: &Path, manifest: &Manifest) -> Vec<String> {
    let total: u64 = manifest.collections.iter().map(|c| c.bson_bytes).sum();
    let progress = progress_bar(total, "verifying");
    let mut problems = Vec::new();
    for entry in &manifest.collections {
        check_bson(dir, entry, &progress, &mut problems);
        check_metadata(dir, entry, &mut problems);
    }
    progress.finish_and_clear();
    problems
}

fn check_bson(dir: &Path, entry: &CollectionEntry, progress: &ProgressBar, out: &mut Vec<String>) {
    let file = &entry.bson_file;
    let path = match backup_path(dir, file) {
        Ok(path) => path,
        Err(e) => return out.push(e.to_string()),
    };
    let opened = match File::open(&path) {
        Ok(f) => f,
        Err(e) => return out.push(format!("{file}: cannot be read: {e}")),
    };
    let reader = Hashing::new(Counting {
        inner: BufReader::new(opened),
        progress,
    });
    let mut stream = BsonStream::new(reader, file.clone());
    let mut count = 0u64;
    let mut parsed = true;
    loop {
        match stream.next_document() {
            Ok(Some(_)) => count += 1,
            Ok(None) => break,
            Err(e) => {
                out.push(e.to_string());
                parsed = false;
                break;
            }
        }
    }
    let mut reader = stream.into_inner();
    // Hash whatever follows a malformed document too, so the report also says
    // whether the length and checksum still match.
    if let Err(e) = io::copy(&mut reader, &mut io::sink()) {
        return out.push(format!("{file}: cannot be read: {e}"));
    }
    let (_, bytes, sha256) = reader.finish();
    if bytes != entry.bson_bytes {
        out.push(format!(
            "{file}: {bytes} bytes, the manifest says {}",
            entry.bson_bytes
        ));
    }
    if sha256 != entry.bson_sha256 {
        out.push(format!(
            "{file}: SHA-256 {sha256}, the manifest says {}",
            entry.bson_sha256
        ));
    }
    if parsed && count != entry.count {
        out.push(format!(
            "{file}: {count} documents, the manifest says {}",
            entry.count
        ));
    }
}

fn check_metadata(dir: &Path, entry: &CollectionEntry, out: &mut Vec<String>) {
    let file = &entry.metadata_file;
    let path = match backup_path(dir, file) {
        Ok(path) => path,
        Err(e) => return out.push(e.to_string()),
    };
    match fs::read(&path) {
        Ok(bytes) => {
            let sha256 = hex(&Sha256::digest(&bytes));
            if sha256 != entry.metadata_sha256 {
                out.push(format!(
                    "{file}: SHA-256 {sha256}, the manifest says {}",
                    entry.metadata_sha256
                ));
            }
        }
        Err(e) => out.push(format!("{file}: cannot be read: {e}")),
    }
}

/// Reads a concatenated BSON stream (a mongodump `.bson` file) one document at
/// a time, keeping the byte offset so every error can say where it is.
pub struct BsonStream<R> {
    reader: R,
    file: String,
    offset: u64,
}

impl<R: Read> BsonStream<R> {
    /// Reads `reader` from its first byte; `file` names it in every error.
    pub fn new(reader: R, file: String) -> Self {
        BsonStream {
            reader,
            file,
            offset: 0,
        }
    }

    fn into_inner(self) -> R {
        self.reader
    }

    /// The next document; `None` at a clean end of file, an error naming the
    /// file and byte offset when the stream is truncated or malformed.
    pub fn next_document(&mut self) -> CommandResult<Option<Document>> {
        let at = self.offset;
        let mut prefix = [0u8; 4];
        let got = read_up_to(&mut self.reader, &mut prefix).map_err(|e| self.io(at, e))?;
        if got == 0 {
            return Ok(None);
        }
        if got < 4 {
            return Err(self.bad(
                at,
                format!("truncated: {got} byte(s) where a 4-byte document length should be"),
            ));
        }
        let declared = i32::from_le_bytes(prefix);
        let len = match usize::try_from(declared) {
            Ok(len) if (5..=MAX_DOCUMENT_BYTES).contains(&len) => len,
            _ => {
                return Err(self.bad(
                    at,
                    format!(
                        "malformed: a document declares length {declared} (a BSON document has 5 to {MAX_DOCUMENT_BYTES} bytes)"
                    ),
                ))
            }
        };
        let mut buf = Vec::with_capacity(len.min(64 * 1024));
        buf.extend_from_slice(&prefix);
        (&mut self.reader)
            .take(len as u64 - 4)
            .read_to_end(&mut buf)
            .map_err(|e| self.io(at, e))?;
        if buf.len() < len {
            return Err(self.bad(
                at,
                format!(
                    "truncated: the document declares {len} bytes, only {} remain",
                    buf.len()
                ),
            ));
        }
        self.offset += len as u64;
        if buf.last() != Some(&0) {
            return Err(self.bad(
                at,
                format!("malformed: the {len}-byte document does not end with a NUL byte"),
            ));
        }
        Document::from_reader(buf.as_slice())
            .map(Some)
            .map_err(|e| self.bad(at, format!("malformed document: {e}")))
    }

    fn bad(&self, at: u64, why: String) -> CommandError {
        CommandError::Input(format!("{} at byte offset {at}: {why}", self.file))
    }

    fn io(&self, at: u64, e: io::Error) -> CommandError {
        CommandError::Input(format!(
            "{} at byte offset {at}: cannot be read: {e}",
            self.file
        ))
    }
}

/// Fills `buf` as far as the reader allows: short only at end of file.
fn read_up_to(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Hashes and counts the bytes that pass through, so a file is checksummed in
/// the same single pass that writes or parses it.
struct Hashing<T> {
    inner: T,
    hasher: Sha256,
    bytes: u64,
}

impl<T> Hashing<T> {
    fn new(inner: T) -> Self {
        Hashing {
            inner,
            hasher: Sha256::new(),
            bytes: 0,
        }
    }

    fn update(&mut self, data: &[u8]) {
        self.hasher.update(data);
        self.bytes += data.len() as u64;
    }

    fn finish(self) -> (T, u64, String) {
        (self.inner, self.bytes, hex(&self.hasher.finalize()))
    }
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.update(&buf[..n]);
        Ok(n)
    }
}

/// Advances a progress bar by the bytes read.
struct Counting<'a, R> {
    inner: R,
    progress: &'a ProgressBar,
}

impl<R: Read> Read for Counting<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.progress.inc(n as u64);
        Ok(n)
    }
}

/// What a backup folder holds.
struct Found {
    /// Complete backups (folder and manifest), newest first.
    complete: Vec<(PathBuf, Manifest)>,
    /// `.partial` folders left by an interrupted backup.
    incomplete: Vec<String>,
    /// Folders with a manifest that cannot be read, and why.
    unreadable: Vec<(String, String)>,
}

fn find_backups(backup_dir: &Path) -> CommandResult<Found> {
    let mut found = Found {
        complete: Vec::new(),
        incomplete: Vec::new(),
        unreadable: Vec::new(),
    };
    let entries = match fs::read_dir(backup_dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(found),
        Err(e) => {
            return Err(CommandError::io(format!(
                "reading the backup folder {}",
                backup_dir.display()
            ))(e))
        }
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if !path.is_dir() {
            continue;
        }
        if name.ends_with(PARTIAL) {
            found.incomplete.push(name);
            continue;
        }
        if !path.join(MANIFEST).is_file() {
            continue;
        }
        match read_manifest(&path) {
            Ok(manifest) => found.complete.push((path, manifest)),
            Err(e) => found.unreadable.push((name, e.to_string())),
        }
    }
    // Newest first: by creation time, then by id (sortable by construction).
    found.complete.sort_by(|(_, a), (_, b)| {
        let key = |m: &Manifest| (parse_stamp(&m.created_at), m.id.clone());
        key(b).cmp(&key(a))
    });
    found.incomplete.sort();
    found.unreadable.sort();
    Ok(found)
}

/// The folder and manifest of backup `id`, or of the newest one.
fn open_backup(backup_dir: &Path, id: Option<&str>) -> CommandResult<(PathBuf, Manifest)> {
    match id {
        Some(id) => {
            check_id(id)?;
            let dir = backup_dir.join(id);
            if !dir.join(MANIFEST).is_file() {
                return Err(CommandError::Input(format!(
                    "no backup {id} in {}: `edn-migrate phase2 backup --list` shows the backups there (pass --backup-dir if they live elsewhere)",
                    backup_dir.display()
                )));
            }
            let manifest = read_manifest(&dir)?;
            Ok((dir, manifest))
        }
        None => find_backups(backup_dir)?
            .complete
            .into_iter()
            .next()
            .ok_or_else(|| {
                CommandError::Gate(format!(
                    "no backup in {}: take one with `edn-migrate phase2 backup` (or pass --backup-dir)",
                    backup_dir.display()
                ))
            }),
    }
}

fn read_manifest(dir: &Path) -> CommandResult<Manifest> {
    let path = dir.join(MANIFEST);
    let bytes = fs::read(&path).map_err(CommandError::io(format!("reading {}", path.display())))?;
    serde_json::from_slice(&bytes)
        .map_err(|e| CommandError::Input(format!("{}: not a backup manifest: {e}", path.display())))
}

/// Writes the manifest through a temporary file and a rename, so it is never
/// seen half written.
fn write_manifest(dir: &Path, manifest: &Manifest) -> CommandResult<()> {
    let path = dir.join(MANIFEST);
    let tmp = dir.join(format!("{MANIFEST}.tmp"));
    let mut bytes = serde_json::to_vec_pretty(manifest)
        .map_err(|e| CommandError::Input(format!("encoding the manifest: {e}")))?;
    bytes.push(b'\n');
    if tmp.exists() {
        fs::remove_file(&tmp).map_err(CommandError::io(format!("removing {}", tmp.display())))?;
    }
    write_private(&tmp, &bytes)?;
    fs::rename(&tmp, &path).map_err(CommandError::io(format!("renaming {}", tmp.display())))?;
    sync_dir(dir);
    Ok(())
}

/// A file path from a manifest, refused if it would leave the backup folder.
fn backup_path(dir: &Path, relative: &str) -> CommandResult<PathBuf> {
    let rel = Path::new(relative);
    let plain = !relative.is_empty() && rel.components().all(|c| matches!(c, Component::Normal(_)));
    if !plain {
        return Err(CommandError::Input(format!(
            "{relative}: not a path inside the backup folder; the manifest has been edited by hand"
        )));
    }
    Ok(dir.join(rel))
}

fn check_id(id: &str) -> CommandResult<()> {
    let ok = !id.is_empty()
        && !id.ends_with(PARTIAL)
        && id != "."
        && id != ".."
        && !id.contains(['/', '\\']);
    if ok {
        Ok(())
    } else {
        Err(CommandError::Input(format!(
            "{id:?} is not a backup id (e.g. 20261123T131500Z-3fa2c1): `edn-migrate phase2 backup --list` shows them"
        )))
    }
}

/// Database and collection names become file names, as in mongodump.
fn check_file_name(name: &str) -> CommandResult<()> {
    if name.is_empty() || name == "." || name == ".." || name.contains(['/', '\\', '\0']) {
        return Err(CommandError::Input(format!(
            "{name:?} cannot be backed up as a file name: rename it in the configuration (--legacy-db, --drawer-db, --*-coll)"
        )));
    }
    Ok(())
}

/// A sortable, unique backup id: the UTC second it started and 6 random hex
/// digits, e.g. `20261123T131500Z-3fa2c1`.
fn new_id(now: DateTime<Utc>) -> String {
    let random = uuid::Uuid::new_v4().simple().to_string();
    format!("{}-{}", now.format("%Y%m%dT%H%M%SZ"), &random[..6])
}

fn stamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn parse_stamp(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// An age the way an operator reads it: "12 min", "3 h", "2 d". Hours run up
/// to two days, because the phase 3 gate is about a backup younger than 24 h.
fn age_text(seconds: i64) -> String {
    match seconds {
        s if s < 60 => format!("{s} s"),
        s if s < 3600 => format!("{} min", s / 60),
        s if s < 48 * 3600 => format!("{} h", s / 3600),
        s => format!("{} d", s / 86400),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn collections_table(manifest: &Manifest) -> String {
    let mut rows = vec![vec![
        "database".to_string(),
        "collection".to_string(),
        "documents".to_string(),
        "bytes".to_string(),
    ]];
    for c in &manifest.collections {
        rows.push(vec![
            c.db.clone(),
            c.name.clone(),
            c.count.to_string(),
            c.bson_bytes.to_string(),
        ]);
    }
    table(&rows)
}

/// Creates a folder readable by its owner only (and any missing parents).
fn private_dir_all(path: &Path) -> CommandResult<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder
        .create(path)
        .map_err(CommandError::io(format!("creating {}", path.display())))
}

/// Creates a new folder readable by its owner only; fails if it exists.
fn private_dir(path: &Path) -> CommandResult<()> {
    let mut builder = fs::DirBuilder::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder
        .create(path)
        .map_err(CommandError::io(format!("creating {}", path.display())))
}

/// Creates a new file readable by its owner only; fails if it exists.
fn private_file(path: &Path) -> CommandResult<File> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options
        .open(path)
        .map_err(CommandError::io(format!("creating {}", path.display())))
}

fn write_private(path: &Path, bytes: &[u8]) -> CommandResult<()> {
    let mut file = private_file(path)?;
    file.write_all(bytes)
        .and_then(|_| file.sync_all())
        .map_err(CommandError::io(format!("writing {}", path.display())))
}

/// Makes a rename durable. Best effort: not every platform can sync a folder,
/// and the data files themselves are already synced.
fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::doc;

    fn stream_of(docs: &[Document]) -> Vec<u8> {
        docs.iter()
            .flat_map(|d| bson::to_vec(d).unwrap_or_default())
            .collect()
    }

    fn read_all(bytes: &[u8]) -> CommandResult<Vec<Document>> {
        let mut stream = BsonStream::new(bytes, "db/c.bson".into());
        let mut out = Vec::new();
        while let Some(doc) = stream.next_document()? {
            out.push(doc);
        }
        Ok(out)
    }

    #[test]
    fn a_stream_reads_back_document_by_document() {
        let docs = vec![doc! {"_id": 1, "a": "x"}, doc! {"_id": 2, "b": [1, 2]}];
        assert_eq!(read_all(&stream_of(&docs)).unwrap(), docs);
        assert!(read_all(&[]).unwrap().is_empty());
    }

    #[test]
    fn truncation_names_the_file_and_offset() {
        let docs = vec![doc! {"_id": 1}, doc! {"_id": 2, "name": "Ana"}];
        let bytes = stream_of(&docs);
        let first = bson::to_vec(&docs[0]).unwrap().len();
        let err = read_all(&bytes[..bytes.len() - 3]).unwrap_err().to_string();
        assert!(err.contains("db/c.bson"), "{err}");
        assert!(err.contains(&format!("byte offset {first}")), "{err}");
        assert!(err.contains("truncated"), "{err}");
        let err = read_all(&bytes[..first + 2]).unwrap_err().to_string();
        assert!(err.contains("4-byte document length"), "{err}");
    }

    #[test]
    fn absurd_lengths_are_refused_without_allocating() {
        let err = read_all(&[0xff, 0xff, 0xff, 0x7f, 0])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("byte offset 0") && err.contains("malformed"),
            "{err}"
        );
        let err = read_all(&[3, 0, 0, 0, 0]).unwrap_err().to_string();
        assert!(err.contains("declares length 3"), "{err}");
    }

    #[test]
    fn a_document_without_its_terminator_is_malformed() {
        let mut bytes = bson::to_vec(&doc! {"_id": 1}).unwrap();
        if let Some(last) = bytes.last_mut() {
            *last = 7;
        }
        let err = read_all(&bytes).unwrap_err().to_string();
        assert!(err.contains("NUL"), "{err}");
    }

    #[test]
    fn a_store_is_identified_without_credentials_or_options() {
        assert_eq!(
            store_identity(
                "mongodb://ops:s3cret@DB2.example.com:27017,db1.example.com/app?tls=true"
            ),
            "mongodb://db1.example.com,db2.example.com:27017"
        );
        assert_eq!(
            store_identity("mongodb+srv://u:p@cluster0.example.net/?retryWrites=true"),
            "mongodb+srv://cluster0.example.net"
        );
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("k.db");
        fs::write(&file, b"").unwrap();
        let canonical = fs::canonicalize(&file).unwrap();
        assert_eq!(
            store_identity(&format!("sqlite:{}", file.display())),
            format!("sqlite:{}", canonical.display())
        );
        assert!(!store_identity("mongodb://u:pw@h/").contains("pw"));
    }

    #[test]
    fn ages_read_like_an_operator_says_them() {
        assert_eq!(age_text(42), "42 s");
        assert_eq!(age_text(12 * 60), "12 min");
        assert_eq!(age_text(3 * 3600 + 5), "3 h");
        assert_eq!(age_text(30 * 3600), "30 h");
        assert_eq!(age_text(2 * 86400 + 10), "2 d");
    }

    #[test]
    fn ids_sort_by_time_and_differ() {
        let t = DateTime::parse_from_rfc3339("2026-11-23T13:15:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let a = new_id(t);
        assert!(a.starts_with("20261123T131500Z-"), "{a}");
        assert_eq!(a.len(), "20261123T131500Z-".len() + 6);
        assert_ne!(a, new_id(t));
        assert!(new_id(t + chrono::Duration::seconds(1)) > a);
    }

    #[test]
    fn paths_from_a_manifest_stay_inside_the_backup() {
        let dir = Path::new("/b/x");
        assert!(backup_path(dir, "db/c.bson").is_ok());
        assert!(backup_path(dir, "../etc/passwd").is_err());
        assert!(backup_path(dir, "/etc/passwd").is_err());
        assert!(check_id("../x").is_err());
        assert!(check_id("20261123T131500Z-3fa2c1.partial").is_err());
    }

    #[test]
    fn metadata_has_mongodumps_shape_and_reads_back() {
        let specs = vec![
            IndexSpec::ascending(&["user_id"], true),
            IndexSpec::ascending(&["a", "b.c"], false),
        ];
        let bytes = metadata_json("users", &specs);
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert_eq!(
            text,
            r#"{"options":{},"indexes":[{"v":2,"key":{"_id":1},"name":"_id_"},{"v":2,"key":{"user_id":1},"name":"user_id_1","unique":true},{"v":2,"key":{"a":1,"b.c":1},"name":"a_1_b.c_1"}],"uuid":"","collectionName":"users","type":"collection"}"#
        );
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("db")).unwrap();
        fs::write(dir.path().join("db/users.metadata.json"), &bytes).unwrap();
        let entry = CollectionEntry {
            db: "db".into(),
            name: "users".into(),
            count: 0,
            bson_file: "db/users.bson".into(),
            bson_bytes: 0,
            bson_sha256: String::new(),
            metadata_file: "db/users.metadata.json".into(),
            metadata_sha256: String::new(),
        };
        assert_eq!(read_indexes(dir.path(), &entry).unwrap(), specs);
    }

    #[test]
    fn canonical_extended_json_and_every_option_read_back() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("db")).unwrap();
        let entry = CollectionEntry {
            db: "db".into(),
            name: "c".into(),
            count: 0,
            bson_file: "db/c.bson".into(),
            bson_bytes: 0,
            bson_sha256: String::new(),
            metadata_file: "db/c.metadata.json".into(),
            metadata_sha256: String::new(),
        };
        let write = |indexes: Value| {
            let text = json!({"options": {}, "indexes": indexes}).to_string();
            fs::write(dir.path().join("db/c.metadata.json"), text).unwrap();
        };
        write(
            json!([{"v": 2, "key": {"user_id": {"$numberInt": "1"}, "at": {"$numberDouble": "-1.0"}},
            "name": "u_at", "unique": true, "expireAfterSeconds": {"$numberInt": "60"},
            "partialFilterExpression": {"active": true}}]),
        );
        let spec = read_indexes(dir.path(), &entry).unwrap().remove(0);
        assert_eq!(spec.keys, ["user_id", "at"]);
        assert_eq!(spec.descending, ["at"]);
        assert_eq!(spec.expire_after_seconds, Some(60));
        assert_eq!(spec.partial_filter, Some(bson::doc! {"active": true}));
        write(json!([{"v": 2, "key": {"body": "text"}, "name": "body_text"}]));
        let err = read_indexes(dir.path(), &entry).unwrap_err().to_string();
        assert!(
            err.contains("body_text") && err.contains("mongorestore"),
            "{err}"
        );
    }
}
