//! `import --from-dump` end to end, on SQLite and on the MongoDB backend
//! through the wire test server (mongomock behind the wire protocol, not
//! MongoDB).
//!
//! The dumps are written from the fixtures by pymongo's `bson`
//! (`tests/mongodump/make_dump.py`), an encoder independent of ours: folders
//! plain and gzipped, archives plain and gzipped. Each must load exactly the
//! documents the JSONL import loads, with the indexes its metadata defines;
//! a damaged one must name the file and byte offset and import nothing; and a
//! backup written by `phase2 backup` must load back.

mod common;

use common::tool::{json, Tool, FIXTURES};
use edn_migrate::store::{self, IndexSpec, Ns};
use serde_json::Value;
use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The index definitions the dumps carry: some the store creates, some it
/// cannot create as defined and must report.
const INDEXES: &str = r#"{
  "test_database.users": [
    {"name": "user_id_1", "key": [["user_id", 1]], "unique": true},
    {"name": "created_at_-1", "key": [["created_at", -1]]}
  ],
  "test_database.training_plans": [
    {"name": "user_id_1_generated_at_1", "key": [["user_id", 1], ["generated_at", 1]], "background": true}
  ],
  "test_database.nutrition_plans": [
    {"name": "user_id_1", "key": [["user_id", 1]], "sparse": false}
  ],
  "test_database.generation_jobs": [
    {"name": "ttl", "key": [["created_at", 1]], "expireAfterSeconds": 86400}
  ],
  "edn360_app.client_drawers": [
    {"name": "user_id_1", "key": [["user_id", 1]], "unique": true},
    {"name": "meta.active_services_1", "key": [["meta.active_services", 1]]},
    {"name": "profile_text", "key": [["_fts", "text"], ["_ftsx", 1]], "weights": {"profile.profesion": 1}}
  ]
}"#;

/// What the store must hold after loading a dump: (database, collection) →
/// indexes, with the dump's database names.
fn expected_indexes() -> Vec<(&'static str, &'static str, Vec<IndexSpec>)> {
    vec![
        (
            "test_database",
            "users",
            vec![IndexSpec::ascending(&["user_id"], true)],
        ),
        (
            "test_database",
            "training_plans",
            vec![IndexSpec::ascending(&["user_id", "generated_at"], false)],
        ),
        (
            "test_database",
            "nutrition_plans",
            vec![IndexSpec::ascending(&["user_id"], false)],
        ),
        ("test_database", "generation_jobs", vec![]),
        ("test_database", "follow_up_submissions", vec![]),
        (
            "edn360_app",
            "client_drawers",
            vec![
                IndexSpec::ascending(&["meta.active_services"], false),
                IndexSpec::ascending(&["user_id"], true),
            ],
        ),
    ]
}

/// The indexes the summary must report as not created.
const SKIPPED_INDEXES: [(&str, &str); 3] = [
    ("client_drawers", "profile_text"),
    ("generation_jobs", "ttl"),
    ("users", "created_at_-1"),
];

#[derive(Clone, Copy)]
enum Backend {
    Sqlite,
    Wire,
}

impl Backend {
    fn tool(self, case: &str) -> Option<Tool> {
        match self {
            Backend::Sqlite => Some(Tool::sqlite()),
            Backend::Wire => Tool::wire(case),
        }
    }
}

/// A dump written by the Python encoder, and where its documents start.
struct Dump {
    path: PathBuf,
    offsets: Value,
}

fn make_dump(tool: &Tool, layout: &str, gzip: bool) -> Dump {
    let name = format!("{layout}{}", if gzip { "-gz" } else { "" });
    let path = tool.path(&name);
    let indexes = tool.path("indexes.json");
    fs::write(&indexes, INDEXES).unwrap();
    let offsets = tool.path(&format!("{name}.offsets.json"));
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/mongodump/make_dump.py");
    let python = std::env::var("EDN_PYTHON").unwrap_or_else(|_| "python3".into());
    let mut command = Command::new(&python);
    command.args([script, "--fixtures", FIXTURES, "--layout", layout]);
    command.arg("--out").arg(&path);
    command.arg("--indexes").arg(&indexes);
    command.arg("--offsets").arg(&offsets);
    if gzip {
        command.arg("--gzip");
    }
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {python} {script}: {e}"));
    assert!(
        out.status.success(),
        "make_dump.py failed (pymongo is installed by tests/wire_server/requirements.txt):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let offsets = serde_json::from_slice(&fs::read(&offsets).unwrap()).unwrap();
    Dump { path, offsets }
}

/// `import --from-dump PATH`, renaming the dump's databases to the tool's.
fn import_args(tool: &Tool, path: &Path, from: (&str, &str)) -> Vec<String> {
    let mut args = vec![
        "import".to_string(),
        "--from-dump".to_string(),
        path.display().to_string(),
    ];
    for (dump_db, store_db) in [(from.0, &tool.legacy_db), (from.1, &tool.drawer_db)] {
        if dump_db != store_db {
            args.push("--rename-db".into());
            args.push(format!("{dump_db}={store_db}"));
        }
    }
    args
}

fn import_dump(tool: &Tool, path: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = import_args(tool, path, ("test_database", "edn360_app"));
    args.extend(extra.iter().map(|a| a.to_string()));
    tool.run(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

/// Every exported file, with the tool's database names replaced by their
/// roles, so stores with different database names compare.
fn exported(tool: &Tool, name: &str) -> Vec<(String, Vec<u8>)> {
    let dir = tool.path(name);
    tool.ok(&["export", dir.to_str().unwrap()]);
    let mut files = Vec::new();
    for (db, role) in [(&tool.legacy_db, "legacy"), (&tool.drawer_db, "drawer")] {
        let Ok(entries) = fs::read_dir(dir.join(db)) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            let file = path.file_name().unwrap().to_string_lossy().into_owned();
            files.push((format!("{role}/{file}"), fs::read(&path).unwrap()));
        }
    }
    files.sort();
    files
}

fn store_db(tool: &Tool, dump_db: &str) -> String {
    match dump_db {
        "test_database" => tool.legacy_db.clone(),
        _ => tool.drawer_db.clone(),
    }
}

fn indexes(tool: &Tool, db: &str, coll: &str) -> Vec<IndexSpec> {
    let store = store::open(&tool.store).unwrap();
    let mut list = store.list_indexes(&Ns::new(db, coll)).unwrap();
    list.sort_by(|a, b| a.name.cmp(&b.name));
    list
}

fn assert_nothing_imported(tool: &Tool, why: &str) {
    let store = store::open(&tool.store).unwrap();
    for db in [&tool.legacy_db, &tool.drawer_db] {
        let collections = store.list_collections(db).unwrap();
        assert!(
            collections.is_empty(),
            "{why}: {db} holds {collections:?} after a refused import"
        );
    }
}

fn fixture_documents() -> u64 {
    let mut n = 0;
    for db in fs::read_dir(FIXTURES).unwrap() {
        for file in fs::read_dir(db.unwrap().path()).unwrap() {
            let text = fs::read_to_string(file.unwrap().path()).unwrap();
            n += text.lines().filter(|l| !l.trim().is_empty()).count() as u64;
        }
    }
    n
}

fn loads_like_the_jsonl_import(backend: Backend) {
    let Some(reference) = backend.tool("ref") else {
        return;
    };
    reference.ok(&["import", reference.fixtures().to_str().unwrap()]);
    let want = exported(&reference, "reference");
    assert_eq!(want.len(), 8, "the fixtures hold 8 collections");

    for (layout, gzip) in [
        ("directory", false),
        ("directory", true),
        ("archive", false),
        ("archive", true),
    ] {
        let case = format!("{layout} gzip={gzip}");
        let Some(tool) = backend.tool(layout) else {
            return;
        };
        let dump = make_dump(&tool, layout, gzip);
        let mut args = import_args(&tool, &dump.path, ("test_database", "edn360_app"));
        args.push("--json".into());
        let summary = json(&tool.ok(&args.iter().map(String::as_str).collect::<Vec<_>>()));
        assert_eq!(summary["documents"], fixture_documents(), "{case}");
        assert_eq!(summary["format"], layout, "{case}");
        assert_eq!(summary["gzip"], gzip, "{case}");
        assert!(
            exported(&tool, "out") == want,
            "{case}: the store holds other documents than after the JSONL import"
        );

        for (db, coll, specs) in expected_indexes() {
            assert_eq!(
                indexes(&tool, &store_db(&tool, db), coll),
                specs,
                "{case}: indexes of {db}.{coll}"
            );
        }
        let skipped: BTreeSet<(String, String)> = summary["collections"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|c| {
                let coll = c["collection"].as_str().unwrap().to_string();
                c["skipped_indexes"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(move |s| (coll.clone(), s["name"].as_str().unwrap().to_string()))
            })
            .collect();
        let want_skipped: BTreeSet<(String, String)> = SKIPPED_INDEXES
            .iter()
            .map(|(c, n)| (c.to_string(), n.to_string()))
            .collect();
        assert_eq!(skipped, want_skipped, "{case}");
        let not_loaded: BTreeSet<&str> = summary["skipped"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["namespace"].as_str().unwrap())
            .collect();
        assert_eq!(
            not_loaded,
            BTreeSet::from(["admin.system.version", "edn360_app.active_users"]),
            "{case}"
        );
    }
}

/// One way to damage a dump, and what the refusal must say.
struct Damage {
    case: &'static str,
    layout: &'static str,
    gzip: bool,
    /// Damages the dump; returns the texts the error must contain.
    apply: fn(&Dump) -> Vec<String>,
}

fn offsets(dump: &Dump, key: &str) -> Vec<u64> {
    let list = dump.offsets.pointer(key).unwrap_or_else(|| panic!("{key}"));
    list.as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect()
}

fn truncate(path: &Path, len: u64) {
    let file = fs::OpenOptions::new().write(true).open(path).unwrap();
    file.set_len(len).unwrap();
}

fn damages() -> Vec<Damage> {
    vec![
        Damage {
            case: "bson cut inside a document",
            layout: "directory",
            gzip: false,
            apply: |dump| {
                let at = offsets(dump, "/test_database~1training_plans.bson")[3];
                truncate(
                    &dump.path.join("test_database/training_plans.bson"),
                    at + 10,
                );
                vec![format!(
                    "test_database/training_plans.bson at byte offset {at}: truncated"
                )]
            },
        },
        Damage {
            case: "bson length overwritten",
            layout: "directory",
            gzip: false,
            apply: |dump| {
                let at = offsets(dump, "/test_database~1nutrition_plans.bson")[2];
                let path = dump.path.join("test_database/nutrition_plans.bson");
                let mut bytes = fs::read(&path).unwrap();
                let at_usize = at as usize;
                bytes[at_usize..at_usize + 4].copy_from_slice(&[0xff, 0xff, 0xff, 0x7f]);
                fs::write(&path, bytes).unwrap();
                vec![format!(
                    "test_database/nutrition_plans.bson at byte offset {at}: malformed"
                )]
            },
        },
        Damage {
            case: "metadata not JSON",
            layout: "directory",
            gzip: false,
            apply: |dump| {
                fs::write(
                    dump.path.join("test_database/users.metadata.json"),
                    "{\"indexes\": [",
                )
                .unwrap();
                vec!["test_database/users.metadata.json: not JSON".into()]
            },
        },
        Damage {
            case: "gzipped bson cut short",
            layout: "directory",
            gzip: true,
            apply: |dump| {
                let path = dump.path.join("test_database/training_plans.bson.gz");
                let len = fs::metadata(&path).unwrap().len();
                truncate(&path, len * 6 / 10);
                vec!["test_database/training_plans.bson.gz (uncompressed) at byte offset ".into()]
            },
        },
        Damage {
            case: "archive cut inside a document",
            layout: "archive",
            gzip: false,
            apply: |dump| {
                let at = offsets(dump, "/documents/test_database.training_plans")[5];
                truncate(&dump.path, at + 7);
                vec![format!(
                    "{} at byte offset {at}: truncated",
                    dump.path.display()
                )]
            },
        },
        Damage {
            case: "archive document changed",
            layout: "archive",
            gzip: false,
            apply: |dump| {
                // Still well-formed BSON, so only the namespace's CRC-64 can
                // tell: one letter of the first user's role ("client").
                let start = offsets(dump, "/documents/test_database.users")[0] as usize;
                let mut bytes = fs::read(&dump.path).unwrap();
                let at = start
                    + bytes[start..]
                        .windows(6)
                        .position(|w| w == b"client")
                        .unwrap();
                bytes[at] = b'C';
                fs::write(&dump.path, bytes).unwrap();
                let eof = dump.offsets["eof"]["test_database.users"].as_u64().unwrap();
                vec![
                    format!("{} at byte offset {eof}:", dump.path.display()),
                    "CRC-64".into(),
                    "test_database.users".into(),
                ]
            },
        },
        Damage {
            case: "gzipped archive cut short",
            layout: "archive",
            gzip: true,
            apply: |dump| {
                let len = fs::metadata(&dump.path).unwrap().len();
                truncate(&dump.path, len * 7 / 10);
                vec![format!(
                    "{} (uncompressed) at byte offset ",
                    dump.path.display()
                )]
            },
        },
        Damage {
            case: "not an archive",
            layout: "archive",
            gzip: false,
            apply: |dump| {
                fs::write(&dump.path, b"_id,user_id\n1,2\n").unwrap();
                vec!["not a mongodump archive".into()]
            },
        },
    ]
}

fn damaged_dumps_import_nothing(backend: Backend) {
    for damage in damages() {
        let Some(tool) = backend.tool("damaged") else {
            return;
        };
        let dump = make_dump(&tool, damage.layout, damage.gzip);
        let wanted = (damage.apply)(&dump);
        let out = import_dump(&tool, &dump.path, &[]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{}: {stderr}", damage.case);
        for text in wanted {
            assert!(
                stderr.contains(&text),
                "{}: {text:?} missing from:\n{stderr}",
                damage.case
            );
        }
        if damage.case != "not an archive" {
            assert!(
                stderr.contains("nothing was imported"),
                "{}: {stderr}",
                damage.case
            );
        }
        assert_nothing_imported(&tool, damage.case);
    }
}

/// The gzipped cut lands inside the data: the offset named is where a
/// document starts, as the encoder laid them out.
fn gzip_offsets_are_document_starts(backend: Backend) {
    let Some(tool) = backend.tool("gzcut") else {
        return;
    };
    let dump = make_dump(&tool, "directory", true);
    let path = dump.path.join("test_database/training_plans.bson.gz");
    let len = fs::metadata(&path).unwrap().len();
    truncate(&path, len / 2);
    let out = import_dump(&tool, &dump.path, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let marker = "training_plans.bson.gz (uncompressed) at byte offset ";
    let at: u64 = stderr
        .split(marker)
        .nth(1)
        .and_then(|rest| rest.split(':').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no offset in {stderr}"));
    let starts = offsets(&dump, "/test_database~1training_plans.bson");
    assert!(
        starts.contains(&at),
        "{at} is not a document start: {stderr}"
    );
    assert_nothing_imported(&tool, "gzip cut");
}

fn a_backup_loads_back(backend: Backend) {
    let (Some(source), Some(target), Some(third)) = (
        backend.tool("bk_src"),
        backend.tool("bk_dst"),
        backend.tool("bk_cut"),
    ) else {
        return;
    };
    source.ok(&["import", source.fixtures().to_str().unwrap()]);
    source.ok(&["phase0", "prepare"]);
    let backup = json(&source.ok(&["phase2", "backup", "--json"]));
    let path = source.work.path().join(backup["path"].as_str().unwrap());
    let collections = backup["collections"].as_array().unwrap().len();

    let from = (source.legacy_db.as_str(), source.drawer_db.as_str());
    let args = import_args(&target, &path, from);
    target.ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let mut loaded = exported(&target, "out");
    assert_eq!(loaded.len(), collections, "every backed-up collection");
    // A collection the source never had (the snapshot archive, the
    // quarantine before any run) is backed up empty and loads back empty.
    let present: BTreeSet<String> = exported(&source, "out")
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    loaded.retain(|(name, bytes)| present.contains(name) || !bytes.is_empty());
    let names: BTreeSet<&String> = loaded.iter().map(|(name, _)| name).collect();
    let original: Vec<(String, Vec<u8>)> = exported(&source, "out")
        .into_iter()
        .filter(|(name, _)| names.contains(name))
        .collect();
    assert!(
        loaded == original,
        "the backup loads other documents than were backed up"
    );
    for (name, _) in &loaded {
        let (role, file) = name.split_once('/').unwrap();
        let coll = file.strip_suffix(".jsonl").unwrap();
        let (src_db, dst_db) = match role {
            "legacy" => (&source.legacy_db, &target.legacy_db),
            _ => (&source.drawer_db, &target.drawer_db),
        };
        assert_eq!(
            indexes(&target, dst_db, coll),
            indexes(&source, src_db, coll),
            "indexes of {name}"
        );
    }
    assert_eq!(
        indexes(&target, &target.drawer_db, "client_drawers").len(),
        4,
        "phase 0's drawer indexes came back"
    );

    // A cut between two documents still frames well; the manifest's counts
    // and checksums catch it.
    let users = path.join(&source.legacy_db).join("users.bson");
    let bytes = fs::read(&users).unwrap();
    let mut last = 0;
    let mut at = 0;
    while at < bytes.len() {
        last = at;
        at += u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
    }
    truncate(&users, last as u64);
    let args = import_args(&third, &path, from);
    let out = third.run(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("users.bson: 21 documents, manifest.json says 22"),
        "{stderr}"
    );
    assert_nothing_imported(&third, "backup cut between documents");
}

fn import_options_apply_to_dumps(backend: Backend) {
    let Some(tool) = backend.tool("opts") else {
        return;
    };
    let dump = make_dump(&tool, "archive", false);
    assert!(import_dump(&tool, &dump.path, &[]).status.success());
    let first = exported(&tool, "first");

    let again = import_dump(&tool, &dump.path, &[]);
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("--upsert"));

    let upsert = import_dump(&tool, &dump.path, &["--upsert"]);
    assert!(upsert.status.success(), "{:?}", upsert);
    assert!(
        exported(&tool, "upserted") == first,
        "--upsert changed data"
    );

    let unconfirmed = import_dump(&tool, &dump.path, &["--drop"]);
    assert_eq!(unconfirmed.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&unconfirmed.stderr).contains("--yes"));

    let dropped = import_dump(&tool, &dump.path, &["--drop", "--yes"]);
    assert!(dropped.status.success(), "{:?}", dropped);
    assert!(exported(&tool, "dropped") == first, "--drop changed data");

    let Some(only) = backend.tool("only") else {
        return;
    };
    let out = import_dump(&only, &dump.path, &["--only-db", "edn360_app"]);
    assert!(out.status.success(), "{out:?}");
    let files: Vec<String> = exported(&only, "only").into_iter().map(|f| f.0).collect();
    assert_eq!(files, vec!["drawer/client_drawers.jsonl".to_string()]);

    let typo = import_dump(&only, &dump.path, &["--only-db", "edn360"]);
    assert_eq!(typo.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&typo.stderr).contains("no database \"edn360\""));
}

mod sqlite {
    use super::*;

    #[test]
    fn loads_like_the_jsonl_import() {
        super::loads_like_the_jsonl_import(Backend::Sqlite);
    }

    #[test]
    fn damaged_dumps_import_nothing() {
        super::damaged_dumps_import_nothing(Backend::Sqlite);
    }

    #[test]
    fn gzip_offsets_are_document_starts() {
        super::gzip_offsets_are_document_starts(Backend::Sqlite);
    }

    #[test]
    fn a_backup_loads_back() {
        super::a_backup_loads_back(Backend::Sqlite);
    }

    #[test]
    fn import_options_apply_to_dumps() {
        super::import_options_apply_to_dumps(Backend::Sqlite);
    }
}

mod mongo_wire {
    use super::*;

    #[test]
    fn loads_like_the_jsonl_import() {
        super::loads_like_the_jsonl_import(Backend::Wire);
    }

    #[test]
    fn damaged_dumps_import_nothing() {
        super::damaged_dumps_import_nothing(Backend::Wire);
    }

    #[test]
    fn gzip_offsets_are_document_starts() {
        super::gzip_offsets_are_document_starts(Backend::Wire);
    }

    #[test]
    fn a_backup_loads_back() {
        super::a_backup_loads_back(Backend::Wire);
    }

    #[test]
    fn import_options_apply_to_dumps() {
        super::import_options_apply_to_dumps(Backend::Wire);
    }
}
