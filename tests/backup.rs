//! Phase 2 backups: written, verified, listed and restored, on the embedded
//! SQLite store (with the legacy fixtures) and on the MongoDB backend through
//! the wire test server (with documents of every type inserted here, in
//! databases no other case uses).

mod common;

use bson::{doc, oid::ObjectId, Bson, DateTime as BsonDate, Document};
use chrono::{DateTime, Duration, Utc};
use edn_migrate::backup::{self, Manifest, RestoreOptions};
use edn_migrate::config::Config;
use edn_migrate::error::EXIT_GATE;
use edn_migrate::store::{IndexSpec, Ns, Scan, Store, StoreError};
use edn_migrate::transfer::{import, ImportOptions};
use std::fs;
use std::io::Cursor;
use std::path::{Path, PathBuf};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/legacy");

fn config(legacy_db: &str, drawer_db: &str) -> Config {
    Config::new("test", legacy_db, drawer_db)
}

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap()
        .with_timezone(&Utc)
}

fn t0() -> DateTime<Utc> {
    at("2026-11-23T13:15:00Z")
}

/// The embedded store holds the fixtures and the indexes phase 0 makes.
fn seed_fixtures(store: &dyn Store, _db: &str) -> Config {
    import(
        store,
        Path::new(FIXTURES),
        ImportOptions {
            upsert: false,
            drop: false,
            batch_size: 1000,
        },
    )
    .unwrap();
    let config = config("test_database", "edn360_app");
    add_indexes(store, &config);
    config
}

/// A wire database is shared by the whole test binary, so each case writes
/// its own documents into its own two databases. One legacy collection is
/// left missing on purpose.
fn seed_by_hand(store: &dyn Store, db: &str) -> Config {
    let config = config(&format!("{db}_l"), &format!("{db}_d"));
    let oid = |hex: &str| ObjectId::parse_str(hex).unwrap();
    store
        .insert_many(
            &config.legacy(&config.submissions),
            &[
                doc! {
                    "_id": oid("65a1b2c3d4e5f60718293a4b"),
                    "user_id": "u2",
                    "submitted_at": BsonDate::from_millis(1_736_000_000_123),
                    "responses": { "peso": 85.5_f64, "altura": 180_i32, "pasos": 9_000_000_000_i64,
                                   "alergias": null, "comidas": ["avena", 3_i32, { "hora": "08:00" }] },
                },
                doc! {
                    "_id": oid("65a1b2c3d4e5f60718293a4a"),
                    "user_id": "u1",
                    "submitted_at": BsonDate::from_millis(-300_000_000_000),
                    "responses": { "nombre_completo": "Laura Vega", "medicamentos": "ninguno" },
                },
                doc! { "_id": oid("65a1b2c3d4e5f60718293a4c"), "user_id": "u1", "ok": true },
            ],
        )
        .unwrap();
    store
        .insert_many(
            &config.legacy(&config.followups),
            &[
                doc! { "_id": "f2", "user_id": "u1", "n": 2_i32 },
                doc! { "_id": "f1", "user_id": "u1", "n": 1_i64 },
            ],
        )
        .unwrap();
    store
        .insert_many(
            &config.legacy(&config.training_plans),
            &[doc! { "_id": "t1", "user_id": "u1", "weeks": [ { "d": 1 }, { "d": 2 } ] }],
        )
        .unwrap();
    store
        .insert_many(
            &config.legacy(&config.users),
            &[
                doc! { "_id": oid("66dd75a06d6967726174001a"), "email": "a@example.com", "user_id": "u1" },
                doc! { "_id": oid("66dd75a06d6967726174001b"), "email": "b@example.com", "user_id": "u2" },
                doc! { "_id": oid("66dd75a06d6967726174001c"), "email": "c@example.com", "user_id": "u3" },
            ],
        )
        .unwrap();
    store
        .insert_many(
            &config.legacy(&config.jobs),
            &[
                doc! { "_id": "b", "mode": "legacy" },
                doc! { "_id": 3_i32, "mode": "drawer" },
                doc! { "_id": oid("66dd75a06d6967726174002a"), "mode": "legacy" },
            ],
        )
        .unwrap();
    store
        .insert_many(
            &config.drawers_ns(),
            &[
                doc! { "_id": "client_u1", "user_id": "u1", "services": { "shared_questionnaires": [] } },
                doc! { "_id": "client_u2", "user_id": "u2", "services": {} },
            ],
        )
        .unwrap();
    add_indexes(store, &config);
    config
}

fn add_indexes(store: &dyn Store, config: &Config) {
    store
        .create_index(
            &config.drawers_ns(),
            &IndexSpec::ascending(&["user_id"], true),
        )
        .unwrap();
    store
        .create_index(
            &config.legacy(&config.submissions),
            &IndexSpec::ascending(&["user_id", "submitted_at"], false),
        )
        .unwrap();
}

fn namespaces(config: &Config) -> Vec<Ns> {
    let mut out: Vec<Ns> = config
        .legacy_collections()
        .iter()
        .map(|c| config.legacy(c))
        .collect();
    out.push(config.drawers_ns());
    out.push(config.drawer("client_drawer_snapshot_archive"));
    out.push(config.drawer("migration_quarantine"));
    out
}

/// A restore of everything, legacy collections included.
fn everything(batch_size: u32) -> RestoreOptions {
    RestoreOptions {
        include_legacy: true,
        batch_size,
        force_reason: None,
    }
}

fn scan_all(store: &dyn Store, ns: &Ns) -> Vec<Document> {
    store
        .scan(ns, &Scan::by_id(7))
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap()
}

/// Every collection as bytes in `_id` order, and its indexes: equal only if
/// documents, field order and value types are all the same.
fn snapshot(store: &dyn Store, config: &Config) -> Vec<(Ns, Vec<Vec<u8>>, Vec<IndexSpec>)> {
    namespaces(config)
        .into_iter()
        .map(|ns| {
            let docs = scan_all(store, &ns)
                .iter()
                .map(|d| bson::to_vec(d).unwrap())
                .collect();
            let indexes = store.list_indexes(&ns).unwrap();
            (ns, docs, indexes)
        })
        .collect()
}

fn only_backup(dir: &Path) -> (PathBuf, Manifest) {
    let mut entries: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(entries.len(), 1, "one backup folder: {entries:?}");
    let path = entries.remove(0);
    let manifest = read_manifest(&path);
    (path, manifest)
}

fn read_manifest(backup: &Path) -> Manifest {
    serde_json::from_slice(&fs::read(backup.join("manifest.json")).unwrap()).unwrap()
}

fn write_manifest(backup: &Path, manifest: &Manifest) {
    fs::write(
        backup.join("manifest.json"),
        serde_json::to_vec_pretty(manifest).unwrap(),
    )
    .unwrap();
}

fn parse_stream(bytes: &[u8]) -> Vec<Document> {
    let mut cursor = Cursor::new(bytes);
    let mut docs = Vec::new();
    while (cursor.position() as usize) < bytes.len() {
        docs.push(Document::from_reader(&mut cursor).unwrap());
    }
    docs
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[cfg(unix)]
fn assert_private(path: &Path) {
    if path.is_dir() {
        assert_eq!(mode(path), 0o700, "{}", path.display());
        for entry in fs::read_dir(path).unwrap() {
            assert_private(&entry.unwrap().path());
        }
    } else {
        assert_eq!(mode(path), 0o600, "{}", path.display());
    }
}

fn create_writes_a_private_verified_backup(store: &dyn Store, config: &Config, dir: &Path) {
    let out = backup::create(store, config, dir, t0()).unwrap();
    let (path, manifest) = only_backup(dir);
    assert_eq!(path.file_name().unwrap().to_str().unwrap(), manifest.id);
    assert!(
        manifest.id.starts_with("20261123T131500Z-"),
        "{}",
        manifest.id
    );
    assert_eq!(manifest.created_at, "2026-11-23T13:15:00Z");
    assert!(manifest.verified_at.is_some());
    assert_eq!(manifest.store, store.describe());

    let expected = namespaces(config);
    assert_eq!(manifest.collections.len(), expected.len());
    let mut total = 0;
    for (entry, ns) in manifest.collections.iter().zip(&expected) {
        assert_eq!((&entry.db, &entry.name), (&ns.db, &ns.coll));
        assert_eq!(entry.count, store.count(ns).unwrap(), "{ns}");
        assert_eq!(
            entry.bson_file,
            format!("{}/{}.bson", ns.db, ns.coll),
            "mongodump's layout"
        );
        assert_eq!(
            entry.bson_bytes,
            fs::metadata(path.join(&entry.bson_file)).unwrap().len()
        );
        total += entry.count;
    }
    assert!(total > 0);
    assert!(
        out.text.contains(&format!(
            "backup {} written and verified ({total} documents, {} collections)",
            manifest.id,
            expected.len()
        )),
        "{}",
        out.text
    );
    assert!(
        out.text.contains(&path.display().to_string()),
        "{}",
        out.text
    );
    assert_eq!(out.json["documents"], total);
    #[cfg(unix)]
    assert_private(dir);

    let later = t0() + Duration::hours(2);
    let out = backup::verify(dir, None, later).unwrap();
    assert!(out.text.contains("verified"), "{}", out.text);
    assert_eq!(
        read_manifest(&path).verified_at.as_deref(),
        Some("2026-11-23T15:15:00Z")
    );
    backup::verify(dir, Some(&manifest.id), later).unwrap();
    let latest = backup::latest_verified(dir).unwrap().unwrap();
    assert_eq!(latest.id, manifest.id);
    #[cfg(unix)]
    assert_private(dir);
}

fn bson_files_are_mongodump_streams(store: &dyn Store, config: &Config, dir: &Path) {
    backup::create(store, config, dir, t0()).unwrap();
    let (path, manifest) = only_backup(dir);
    for entry in &manifest.collections {
        let ns = Ns::new(&entry.db, &entry.name);
        let from_file = parse_stream(&fs::read(path.join(&entry.bson_file)).unwrap());
        let from_store = scan_all(store, &ns);
        assert_eq!(from_file.len() as u64, entry.count, "{ns}");
        let bytes = |docs: &[Document]| -> Vec<Vec<u8>> {
            docs.iter().map(|d| bson::to_vec(d).unwrap()).collect()
        };
        assert_eq!(
            bytes(&from_file),
            bytes(&from_store),
            "{ns}: same documents, types, field order and _id order"
        );

        let metadata: serde_json::Value =
            serde_json::from_slice(&fs::read(path.join(&entry.metadata_file)).unwrap()).unwrap();
        assert_eq!(metadata["collectionName"], entry.name.as_str());
        assert_eq!(metadata["type"], "collection");
        assert_eq!(metadata["options"], serde_json::json!({}));
        let indexes = metadata["indexes"].as_array().unwrap();
        assert_eq!(
            indexes[0],
            serde_json::json!({"v": 2, "key": {"_id": 1}, "name": "_id_"})
        );
        let listed = store.list_indexes(&ns).unwrap();
        assert_eq!(indexes.len(), listed.len() + 1, "{ns}");
        for (json, spec) in indexes[1..].iter().zip(&listed) {
            assert_eq!(json["name"], spec.name.as_str());
            let keys: Vec<&String> = json["key"].as_object().unwrap().keys().collect();
            assert_eq!(keys, spec.keys.iter().collect::<Vec<_>>());
            assert_eq!(json["unique"].as_bool().unwrap_or(false), spec.unique);
        }
    }
    // The fixed shapes above hold for an interesting backup only.
    let submissions = &manifest.collections[0];
    assert!(submissions.count >= 3);
}

fn damaged_files_fail_verification(store: &dyn Store, config: &Config, dir: &Path) {
    backup::create(store, config, dir, t0()).unwrap();
    let (path, manifest) = only_backup(dir);
    let before = snapshot(store, config);
    let entry = manifest
        .collections
        .iter()
        .max_by_key(|c| c.bson_bytes)
        .unwrap();
    let file = path.join(&entry.bson_file);
    let original = fs::read(&file).unwrap();

    let mut flipped = original.clone();
    flipped[original.len() / 2] ^= 0x20;
    fs::write(&file, &flipped).unwrap();
    let err = backup::verify(dir, None, t0()).unwrap_err();
    assert_eq!(err.exit_code(), EXIT_GATE);
    let message = err.to_string();
    assert!(message.contains(&entry.bson_file), "{message}");
    assert!(message.contains("SHA-256"), "{message}");
    assert!(
        backup::latest_verified(dir).unwrap().is_none(),
        "a damaged backup no longer counts as verified"
    );

    let err = backup::restore(store, config, dir, &manifest.id, &everything(100)).unwrap_err();
    assert_eq!(err.exit_code(), EXIT_GATE);
    assert!(err.to_string().contains("refusing"), "{err}");
    assert_eq!(
        snapshot(store, config),
        before,
        "a refused restore changes nothing"
    );

    fs::write(&file, &original[..original.len() - 7]).unwrap();
    let err = backup::verify(dir, Some(&manifest.id), t0()).unwrap_err();
    assert_eq!(err.exit_code(), EXIT_GATE);
    let message = err.to_string();
    assert!(message.contains(&entry.bson_file), "{message}");
    assert!(message.contains("truncated"), "{message}");
    assert!(message.contains("byte offset"), "{message}");
    assert!(
        message.contains(&format!("{} bytes", original.len() - 7)),
        "{message}"
    );

    fs::write(&file, &original).unwrap();
    backup::verify(dir, None, t0()).unwrap();
    assert!(backup::latest_verified(dir).unwrap().is_some());
}

fn restore_brings_back_exactly_the_backup(store: &dyn Store, config: &Config, dir: &Path) {
    let before = snapshot(store, config);
    backup::create(store, config, dir, t0()).unwrap();
    let (_, manifest) = only_backup(dir);

    let submissions = config.legacy(&config.submissions);
    let followups = config.legacy(&config.followups);
    let users = config.legacy(&config.users);
    let drawers = config.drawers_ns();
    store
        .insert_many(&submissions, &[doc! {"_id": "added", "user_id": "zz"}])
        .unwrap();
    let first_followup = scan_all(store, &followups).remove(0);
    store
        .delete_many(&followups, &[first_followup.get("_id").unwrap().clone()])
        .unwrap();
    let mut user = scan_all(store, &users).remove(0);
    user.insert("email", "changed@example.com");
    user.insert("extra", Bson::Int64(1));
    store.upsert_many(&users, &[user]).unwrap();
    store
        .create_index(&users, &IndexSpec::ascending(&["extra"], false))
        .unwrap();
    let drawer_count = store.count(&drawers).unwrap();
    assert!(store.drop_collection(&drawers).unwrap());
    assert_ne!(snapshot(store, config), before);

    let plan = backup::restore_plan(store, config, dir, &manifest.id, true).unwrap();
    assert!(plan.text.contains(&manifest.id), "{}", plan.text);
    assert!(plan.text.contains("client_drawers"), "{}", plan.text);
    let rows = plan.json["collections"].as_array().unwrap();
    assert_eq!(rows.len(), manifest.collections.len());
    for row in rows {
        let ns = Ns::new(
            row["db"].as_str().unwrap(),
            row["collection"].as_str().unwrap(),
        );
        assert_eq!(row["current"], store.count(&ns).unwrap(), "{ns}");
        let in_backup = manifest
            .collections
            .iter()
            .find(|c| c.db == ns.db && c.name == ns.coll)
            .unwrap()
            .count;
        assert_eq!(row["backup"], in_backup, "{ns}");
    }
    let drawer_row = rows
        .iter()
        .find(|r| r["collection"] == "client_drawers")
        .unwrap();
    assert_eq!(drawer_row["current"], 0);
    assert_eq!(drawer_row["backup"], drawer_count);

    let out = backup::restore(store, config, dir, &manifest.id, &everything(2)).unwrap();
    assert!(out.text.contains("restored"), "{}", out.text);
    assert_eq!(snapshot(store, config), before);

    // The unique index is back and enforced, not merely listed.
    let existing = scan_all(store, &drawers).remove(0);
    let user_id = existing.get("user_id").unwrap().clone();
    let err = store
        .insert_many(&drawers, &[doc! {"_id": "client_dup", "user_id": user_id}])
        .unwrap_err();
    assert!(matches!(err, StoreError::DuplicateKey { .. }), "{err}");

    // Restoring twice is harmless: every collection is dropped first.
    backup::restore(store, config, dir, &manifest.id, &everything(1000)).unwrap();
    assert_eq!(snapshot(store, config), before);
}

/// Generates one `#[test]` per case for a backend and the way it is seeded.
macro_rules! backend {
    ($backend:ident, $open:path, $seed:path) => {
        mod $backend {
            use super::*;
            macro_rules! case {
                ($name:ident) => {
                    #[test]
                    fn $name() {
                        let Some((store, db)) = $open(stringify!($name)) else {
                            return;
                        };
                        let config = $seed(store.as_ref(), &db);
                        let scratch = tempfile::tempdir().unwrap();
                        super::$name(store.as_ref(), &config, &scratch.path().join("backups"));
                    }
                };
            }
            case!(create_writes_a_private_verified_backup);
            case!(bson_files_are_mongodump_streams);
            case!(damaged_files_fail_verification);
            case!(restore_brings_back_exactly_the_backup);
        }
    };
}

backend!(sqlite, common::sqlite_store, seed_fixtures);
backend!(mongo_wire, common::wire_store, seed_by_hand);

/// A SQLite store with the fixtures, for the file-level cases.
fn fixture_store() -> (Box<dyn Store>, Config) {
    let (store, db) = common::sqlite_store("files").unwrap();
    let config = seed_fixtures(store.as_ref(), &db);
    (store, config)
}

fn backup_id(out: &edn_migrate::report::Output) -> String {
    out.json["id"].as_str().unwrap().to_string()
}

#[test]
fn list_shows_newest_first_with_ages_from_now() {
    let (store, config) = fixture_store();
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path();
    let older = backup_id(
        &backup::create(store.as_ref(), &config, dir, at("2026-11-20T10:00:00Z")).unwrap(),
    );
    let newer = backup_id(
        &backup::create(store.as_ref(), &config, dir, at("2026-11-23T10:00:00Z")).unwrap(),
    );

    let out = backup::list(dir, at("2026-11-23T13:00:00Z")).unwrap();
    let backups = out.json["backups"].as_array().unwrap();
    assert_eq!(backups.len(), 2);
    assert_eq!(backups[0]["id"], newer.as_str());
    assert_eq!(backups[1]["id"], older.as_str());
    assert_eq!(backups[0]["age_seconds"], 3 * 3600);
    assert_eq!(backups[1]["age_seconds"], 3 * 86400 + 3 * 3600);
    assert_eq!(backups[0]["created_at"], "2026-11-23T10:00:00Z");
    let documents: u64 = namespaces(&config)
        .iter()
        .map(|ns| store.count(ns).unwrap())
        .sum();
    assert_eq!(backups[0]["documents"], documents);
    assert!(backups[0]["verified_at"].is_string());

    let lines: Vec<&str> = out.text.lines().collect();
    let newer_line = lines.iter().position(|l| l.contains(&newer)).unwrap();
    let older_line = lines.iter().position(|l| l.contains(&older)).unwrap();
    assert!(newer_line < older_line, "{}", out.text);
    assert!(lines[newer_line].contains("3 h"), "{}", out.text);
    assert!(lines[older_line].contains("3 d"), "{}", out.text);
    assert!(
        lines[older_line].contains(&documents.to_string()),
        "{}",
        out.text
    );
}

#[test]
fn latest_verified_skips_unverified_and_interrupted_backups() {
    let (store, config) = fixture_store();
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path();
    let verified = backup_id(
        &backup::create(store.as_ref(), &config, dir, at("2026-11-20T10:00:00Z")).unwrap(),
    );
    let unverified = backup_id(
        &backup::create(store.as_ref(), &config, dir, at("2026-11-21T10:00:00Z")).unwrap(),
    );
    let mut manifest = read_manifest(&dir.join(&unverified));
    manifest.verified_at = None;
    write_manifest(&dir.join(&unverified), &manifest);
    let crashed = backup_id(
        &backup::create(store.as_ref(), &config, dir, at("2026-11-22T10:00:00Z")).unwrap(),
    );
    fs::rename(dir.join(&crashed), dir.join(format!("{crashed}.partial"))).unwrap();

    assert_eq!(backup::latest_verified(dir).unwrap().unwrap().id, verified);

    let out = backup::list(dir, at("2026-11-23T10:00:00Z")).unwrap();
    assert_eq!(out.json["backups"].as_array().unwrap().len(), 2);
    assert!(
        out.text.contains(&format!("incomplete: {crashed}.partial")),
        "{}",
        out.text
    );
    let err = backup::verify(dir, Some(&format!("{crashed}.partial")), t0()).unwrap_err();
    assert!(err.to_string().contains("not a backup id"), "{err}");

    // Verifying with no id checks the newest complete backup, which then counts.
    let out = backup::verify(dir, None, at("2026-11-23T10:00:00Z")).unwrap();
    assert_eq!(out.json["id"], unverified.as_str());
    assert_eq!(
        backup::latest_verified(dir).unwrap().unwrap().id,
        unverified
    );
}

#[test]
fn no_backup_folder_means_no_backup() {
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path().join("never-created");
    assert!(backup::latest_verified(&dir).unwrap().is_none());
    let out = backup::list(&dir, t0()).unwrap();
    assert!(out.text.contains("no backups"), "{}", out.text);
    assert_eq!(out.json["backups"], serde_json::json!([]));
    let err = backup::verify(&dir, None, t0()).unwrap_err();
    assert_eq!(err.exit_code(), EXIT_GATE);
    assert!(
        err.to_string().contains("edn-migrate phase2 backup"),
        "{err}"
    );
    let err = backup::verify(&dir, Some("20261123T131500Z-000000"), t0()).unwrap_err();
    assert!(err.to_string().contains("--list"), "{err}");
    let (store, config) = fixture_store();
    let err = backup::restore(
        store.as_ref(),
        &config,
        &dir,
        "20261123T131500Z-000000",
        &everything(10),
    )
    .unwrap_err();
    assert!(err.to_string().contains("no backup"), "{err}");
}

#[test]
fn a_missing_collection_is_backed_up_empty_and_restored_empty() {
    let (store, db) = common::sqlite_store("missing").unwrap();
    let config = config(&format!("{db}_l"), &format!("{db}_d"));
    store
        .insert_many(&config.legacy(&config.users), &[doc! {"_id": 1}])
        .unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let out = backup::create(store.as_ref(), &config, scratch.path(), t0()).unwrap();
    assert!(
        out.text.contains("(1 documents, 9 collections)"),
        "{}",
        out.text
    );
    let (path, manifest) = only_backup(scratch.path());
    let drawers = manifest
        .collections
        .iter()
        .find(|c| c.name == "client_drawers")
        .unwrap();
    assert_eq!((drawers.count, drawers.bson_bytes), (0, 0));
    assert_eq!(fs::read(path.join(&drawers.bson_file)).unwrap(), b"");

    store
        .insert_many(&config.drawers_ns(), &[doc! {"_id": "late"}])
        .unwrap();
    backup::restore(
        store.as_ref(),
        &config,
        scratch.path(),
        &manifest.id,
        &RestoreOptions::default(),
    )
    .unwrap();
    assert_eq!(store.count(&config.drawers_ns()).unwrap(), 0);
    assert_eq!(store.count(&config.legacy(&config.users)).unwrap(), 1);
}
