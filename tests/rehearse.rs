//! `rehearse DUMP`: the whole plan on a fresh embedded store, and its report.
//!
//! The dumps are written from the fixtures by pymongo's `bson`
//! (`tests/mongodump/make_dump.py`, the encoder tests/dump.rs uses,
//! independent of ours): folders plain and gzipped, archives plain and
//! gzipped. Each rehearsal must end with the drawers the `import` path gives
//! (fixtures imported as JSONL, then migrated), and its report must be
//! well-formed, agree with itself across formats, and hold no personal value.
//!
//! The rehearsal runs on the embedded store by design (it never opens a
//! server), so these tests have no MongoDB-backend twin.

mod common;

use bson::{Bson, Document};
use common::tool::{copy_dir, Tool, FIXTURES};
use edn_migrate::store::{sqlite::SqliteStore, Ns, Scan, Store};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The steps of a rehearsal, in order.
const STEPS: [&str; 10] = [
    "import",
    "phase0",
    "phase1",
    "backup",
    "dry_run",
    "migrate",
    "validate",
    "second_run",
    "rollback",
    "restored",
];

/// The four collections the migration reads.
const MIGRATED: [&str; 4] = [
    "nutrition_questionnaire_submissions",
    "follow_up_submissions",
    "training_plans",
    "nutrition_plans",
];

/// Writes a dump of `fixtures` (a `<db>/<coll>.jsonl` folder) with the
/// Python encoder.
fn make_dump(tool: &Tool, fixtures: &Path, layout: &str, gzip: bool) -> PathBuf {
    let name = format!("{layout}{}", if gzip { "-gz" } else { "" });
    let path = tool.path(&name);
    let indexes = tool.path("indexes.json");
    fs::write(&indexes, "{}").unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/mongodump/make_dump.py");
    let python = std::env::var("EDN_PYTHON").unwrap_or_else(|_| "python3".into());
    let mut command = Command::new(&python);
    command.arg(script).arg("--fixtures").arg(fixtures);
    command.args(["--layout", layout]);
    command.arg("--out").arg(&path);
    command.arg("--indexes").arg(&indexes);
    command
        .arg("--offsets")
        .arg(tool.path(&format!("{name}.offsets.json")));
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
    path
}

/// `edn-migrate rehearse DUMP --out OUT`, under umask 022 (a new shell's).
fn rehearse(tool: &Tool, dump: &Path, out: &str, extra: &[&str]) -> Output {
    let mut args = vec!["rehearse", dump.to_str().unwrap(), "--out", out];
    args.extend(extra);
    let inner = tool.command(&args);
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg("umask 022; exec \"$@\"")
        .arg("sh")
        .arg(inner.get_program())
        .args(inner.get_args())
        .current_dir(tool.work.path())
        .env_remove("MONGO_URL")
        .env_remove("DB_NAME")
        .env_remove("EDN360_DB_NAME");
    command.output().expect("the binary runs")
}

fn read_report(tool: &Tool, out: &str) -> Value {
    let text = fs::read_to_string(tool.path(out).join("report.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn step<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no step {name}"))
}

/// Run-specific values (run ids and the run's clock) replaced, so two runs
/// over the same data compare equal.
fn scrub(doc: &mut Document) {
    fn walk(v: &mut Bson) {
        match v {
            Bson::Document(d) => scrub(d),
            Bson::Array(items) => items.iter_mut().for_each(walk),
            _ => {}
        }
    }
    for (key, value) in doc.iter_mut() {
        if ["run_id", "migrated_at", "archived_at", "quarantined_at"].contains(&key.as_str()) {
            *value = Bson::String("<run>".into());
        } else {
            walk(value);
        }
    }
    if let Ok(meta) = doc.get_document_mut("meta") {
        if meta.contains_key("migration") {
            meta.insert("updated_at", "<run>");
        }
    }
}

/// Every document of a collection of an embedded store, scrubbed.
fn documents(store_file: &Path, ns: &Ns) -> Vec<Document> {
    assert!(store_file.is_file(), "{} is missing", store_file.display());
    let store = SqliteStore::open(store_file.to_str().unwrap()).unwrap();
    store
        .scan(ns, &Scan::by_id(500))
        .unwrap()
        .map(|d| {
            let mut d = d.unwrap();
            scrub(&mut d);
            d
        })
        .collect()
}

/// The drawers and quarantine of the `import` path: the fixtures imported
/// as JSONL, phase 0, then the migration.
fn import_path() -> (Vec<Document>, Vec<Document>) {
    let tool = Tool::sqlite();
    tool.ok(&["import", FIXTURES]);
    tool.ok(&["phase0", "prepare"]);
    tool.ok(&[
        "phase2",
        "migrate",
        "all",
        "--force",
        "--reason",
        "reference",
    ]);
    let store = tool.path("store.db");
    (
        documents(&store, &Ns::new("edn360_app", "client_drawers")),
        documents(&store, &Ns::new("edn360_app", "migration_quarantine")),
    )
}

/// The documents of one fixture collection (its JSONL line count).
fn fixture_count(db: &str, coll: &str) -> u64 {
    let text =
        fs::read_to_string(Path::new(FIXTURES).join(db).join(format!("{coll}.jsonl"))).unwrap();
    text.lines().filter(|l| !l.trim().is_empty()).count() as u64
}

#[test]
fn every_dump_layout_rehearses_to_the_drawers_of_the_import_path() {
    let (drawers, quarantine) = import_path();
    assert!(drawers.len() >= 19, "the reference migration made drawers");
    let tool = Tool::sqlite();
    for (layout, gzip) in [
        ("directory", false),
        ("directory", true),
        ("archive", false),
        ("archive", true),
    ] {
        let dump = make_dump(&tool, Path::new(FIXTURES), layout, gzip);
        let out = format!("out-{layout}-{gzip}");
        // Dual-write as it has run since October 2026 (fixtures/README.md).
        let run = rehearse(&tool, &dump, &out, &["--dual-write-since", "2026-10-01"]);
        let report = read_report(&tool, &out);
        let case = format!("{layout} gzip={gzip}");
        assert_eq!(report["dump"]["format"], layout, "{case}");
        assert_eq!(report["dump"]["gzip"], gzip, "{case}");
        for name in STEPS {
            assert_eq!(
                step(&report, name)["outcome"],
                "passed",
                "{case}: {name}: {}",
                step(&report, name)
            );
        }
        assert_eq!(
            run.status.code(),
            Some(0),
            "{case}: {}",
            String::from_utf8_lossy(&run.stderr)
        );
        assert_eq!(report["verdict"]["passed"], true, "{case}");
        // Phase 1 judged the dual-write entries the dump's drawers hold.
        let dual_write = &report["rates"][0];
        assert_eq!(dual_write["name"], "dual_write");
        assert_eq!(dual_write["documents"], 4, "{case}: U21–U23's {dual_write}");
        assert_eq!(dual_write["matched"], 4, "{case}: {dual_write}");

        let migrated = tool.path(&out).join("migrated.db");
        assert_eq!(
            documents(&migrated, &Ns::new("edn360_app", "client_drawers")),
            drawers,
            "{case}: the drawers differ from the import path's"
        );
        assert_eq!(
            documents(&migrated, &Ns::new("edn360_app", "migration_quarantine")),
            quarantine,
            "{case}: the quarantine differs from the import path's"
        );
        // After the rollback the store is the dump again.
        assert_eq!(report["restore"]["differences"], 0, "{case}");
        let rehearsal = tool.path(&out).join("rehearsal.db");
        assert_eq!(
            documents(&rehearsal, &Ns::new("edn360_app", "client_drawers")).len() as u64,
            fixture_count("edn360_app", "client_drawers"),
            "{case}: the dual-write drawers of the dump, and only them"
        );
        for coll in MIGRATED {
            assert_eq!(
                documents(&rehearsal, &Ns::new("test_database", coll)).len() as u64,
                fixture_count("test_database", coll),
                "{case}: {coll}"
            );
        }
    }
}

/// Every `data-key` of the page and the text it carries.
fn keyed(html: &str) -> BTreeMap<String, String> {
    let doc = roxmltree::Document::parse_with_options(
        html,
        roxmltree::ParsingOptions {
            allow_dtd: true,
            ..Default::default()
        },
    )
    .unwrap_or_else(|e| panic!("report.html is not well-formed: {e}"));
    let mut found = BTreeMap::new();
    for node in doc.descendants().filter(|n| n.is_element()) {
        for attr in ["src", "href"] {
            assert!(
                node.attribute(attr).is_none(),
                "<{}> fetches something",
                node.tag_name().name()
            );
        }
        assert!(
            !["script", "link", "iframe", "img", "object"].contains(&node.tag_name().name()),
            "<{}> in a self-contained report",
            node.tag_name().name()
        );
        if let Some(key) = node.attribute("data-key") {
            let text: String = node
                .descendants()
                .filter(|n| n.is_text())
                .filter_map(|n| n.text())
                .collect();
            let value = node.attribute("data-value").map_or(text, str::to_string);
            assert!(
                found.insert(key.to_string(), value).is_none(),
                "{key} twice"
            );
        }
    }
    found
}

/// What report.json says each `data-key` must show.
fn figures(report: &Value) -> BTreeMap<String, String> {
    let text = |v: &Value| match v {
        Value::Null => "–".to_string(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let mut want = BTreeMap::new();
    want.insert("verdict.passed".into(), text(&report["verdict"]["passed"]));
    for s in report["steps"].as_array().unwrap() {
        let name = s["name"].as_str().unwrap();
        let label = match s["outcome"].as_str().unwrap() {
            "passed" => "passed",
            "failed" => "FAILED",
            "error" => "ERROR",
            _ => "not run",
        };
        want.insert(format!("steps.{name}.outcome"), label.into());
        want.insert(format!("steps.{name}.documents"), text(&s["documents"]));
    }
    for r in report["rates"].as_array().unwrap() {
        let name = r["name"].as_str().unwrap();
        for f in ["documents", "matched"] {
            want.insert(format!("rates.{name}.{f}"), text(&r[f]));
        }
    }
    for c in report["collections"].as_array().unwrap() {
        let (db, coll) = (c["db"].as_str().unwrap(), c["collection"].as_str().unwrap());
        for f in ["documents", "in_drawers", "quarantined", "unaccounted"] {
            want.insert(format!("collections.{db}.{coll}.{f}"), text(&c[f]));
        }
    }
    for (i, q) in report["quarantine"].as_array().unwrap().iter().enumerate() {
        want.insert(format!("quarantine.{i}.documents"), text(&q["documents"]));
    }
    let sum = |f: &str| -> u64 {
        report["collections"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|c| c[f].as_u64())
            .sum()
    };
    want.insert("cards.in_drawers".into(), sum("in_drawers").to_string());
    want.insert("cards.quarantined".into(), sum("quarantined").to_string());
    want.insert("cards.unaccounted".into(), sum("unaccounted").to_string());
    let legacy: u64 = report["collections"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["migrated"] == true)
        .map(|c| c["documents"].as_u64().unwrap())
        .sum();
    want.insert("cards.legacy".into(), legacy.to_string());
    want.insert("warnings.count".into(), text(&report["warnings"]["count"]));
    for (kind, n) in report["warnings"]["by_kind"].as_object().unwrap() {
        want.insert(format!("warnings.by_kind.{kind}"), text(n));
    }
    let d = &report["drawers"];
    want.insert("drawers.count".into(), text(&d["count"]));
    want.insert(
        "drawers.archived_snapshots".into(),
        text(&d["archived_snapshots"]),
    );
    for x in d["largest"].as_array().unwrap() {
        let id = x["drawer_id"].as_str().unwrap();
        want.insert(format!("drawers.largest.{id}.bytes"), text(&x["bytes"]));
    }
    want.insert(
        "restore.documents".into(),
        text(&report["restore"]["documents"]),
    );
    want.insert(
        "restore.differences".into(),
        text(&report["restore"]["differences"]),
    );
    let p = &report["projection"];
    for f in ["rehearsed_documents", "production_documents"] {
        want.insert(format!("projection.{f}"), text(&p[f]));
    }
    want
}

/// Values of the fixtures' personal and health fields, long and specific
/// enough that finding one in a report can only mean it leaked.
fn personal_values() -> BTreeSet<String> {
    const FIELDS: [&str; 27] = [
        "nombre_completo",
        "nombre",
        "name",
        "email",
        "telefono",
        "whatsapp",
        "fecha_nacimiento",
        "profesion",
        "medicamentos",
        "alergias_intolerancias",
        "enfermedad_cronica",
        "hernias_protusiones",
        "hipertension",
        "lesiones_previas",
        "peso",
        "peso_kg",
        "altura_cm",
        "grasa_porcentaje",
        "cintura_cm",
        "cadera_cm",
        "suplementacion",
        "ciclo_menstrual",
        "comentarios",
        "dificultades",
        "sueno",
        "molestias",
        "comentarios_adicionales",
    ];
    fn walk(v: &Value, field: Option<&str>, out: &mut BTreeSet<String>) {
        match v {
            Value::Object(map) => map.iter().for_each(|(k, x)| walk(x, Some(k), out)),
            Value::Array(items) => items.iter().for_each(|x| walk(x, field, out)),
            Value::String(s)
                if field.is_some_and(|f| FIELDS.contains(&f))
                    && s.chars().count() >= 4
                    && s.chars().any(|c| !c.is_ascii_digit()) =>
            {
                out.insert(s.clone());
            }
            _ => {}
        }
    }
    let mut out = BTreeSet::new();
    for db in fs::read_dir(FIXTURES).unwrap() {
        for file in fs::read_dir(db.unwrap().path()).unwrap() {
            for line in fs::read_to_string(file.unwrap().path()).unwrap().lines() {
                walk(&serde_json::from_str(line).unwrap(), None, &mut out);
            }
        }
    }
    out
}

#[test]
fn the_report_is_well_formed_agrees_with_report_json_and_holds_no_personal_value() {
    let tool = Tool::sqlite();
    let dump = make_dump(&tool, Path::new(FIXTURES), "directory", true);
    let run = rehearse(&tool, &dump, "out", &[]);
    let report = read_report(&tool, "out");
    let dir = tool.path("out");
    let html = fs::read_to_string(dir.join("report.html")).unwrap();

    // From the earliest entry dual-write wrote (U15's, 2025-11-12), U15's
    // follow-up was never dual-written: 5 of 6 is below 98 %, and only that
    // step fails, so the rehearsal exits 3 naming phase 1 and the document.
    assert_eq!(
        run.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(String::from_utf8_lossy(&run.stderr).contains("Phase 1"));
    for name in STEPS {
        let want = if name == "phase1" { "failed" } else { "passed" };
        assert_eq!(step(&report, name)["outcome"], want, "{name}");
    }
    assert_eq!(report["verdict"]["passed"], false);
    assert_eq!(report["verdict"]["reasons"].as_array().unwrap().len(), 1);
    assert_eq!(report["rates"][0]["documents"], 6);
    assert_eq!(report["rates"][0]["matched"], 5);
    let finding = &report["dual_write_findings"][0];
    assert_eq!(finding["id"], "followup_1765569600000001");
    assert_eq!(finding["problem"], "missing");
    assert!(html.contains("followup_1765569600000001"));

    // Well-formed, self-contained, and every figure as report.json has it.
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(
        !html.contains("url(") && !html.contains("@import"),
        "the style fetches something"
    );
    let shown = keyed(&html);
    let want = figures(&report);
    for (key, value) in &want {
        assert_eq!(shown.get(key), Some(value), "report.html {key}");
    }
    let extra: Vec<&String> = shown.keys().filter(|k| !want.contains_key(*k)).collect();
    assert!(
        extra.iter().all(|k| *k == "cards.window"),
        "report.html shows figures report.json's check does not know: {extra:?}"
    );

    // report.json against the fixtures themselves.
    for c in report["collections"].as_array().unwrap() {
        let (db, coll) = (c["db"].as_str().unwrap(), c["collection"].as_str().unwrap());
        assert_eq!(
            c["documents"].as_u64(),
            Some(fixture_count(db, coll)),
            "{db}.{coll}"
        );
        if c["migrated"] == true {
            let parts: u64 = ["in_drawers", "quarantined", "unaccounted"]
                .iter()
                .map(|f| c[*f].as_u64().unwrap())
                .sum();
            assert_eq!(Some(parts), c["documents"].as_u64(), "{coll} adds up");
        }
    }
    let migrated: Vec<&str> = report["collections"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["migrated"] == true)
        .map(|c| c["collection"].as_str().unwrap())
        .collect();
    assert_eq!(migrated.len(), 4, "{migrated:?}");
    let w = &report["warnings"];
    let by_kind: u64 = w["by_kind"]
        .as_object()
        .unwrap()
        .values()
        .map(|n| n.as_u64().unwrap())
        .sum();
    assert_eq!(w["count"].as_u64(), Some(by_kind));
    assert_eq!(w["listed"].as_array().unwrap().len() as u64, by_kind);
    assert!(
        w["listed"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["field"] == "responses.edad"),
        "U08/U09's unparsable ages are listed by field path"
    );
    assert_eq!(report["drawers"]["count"], 23, "U01–U23");
    assert!(!report["projection"]["assumptions"]
        .as_array()
        .unwrap()
        .is_empty());

    // Three charts: documents by fate, warnings by kind, drawer sizes.
    assert_eq!(
        html.matches("<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart\"")
            .count(),
        3
    );

    // No personal or health value in any of the three files.
    let values = personal_values();
    assert!(
        values.contains("Ana García López") && values.contains("79,1"),
        "{values:?}"
    );
    for name in ["report.html", "report.json", "report.md"] {
        let text = fs::read_to_string(dir.join(name)).unwrap();
        let leaked: Vec<&String> = values
            .iter()
            .filter(|v| text.contains(v.as_str()))
            .collect();
        assert!(
            leaked.is_empty(),
            "{name} holds personal values: {leaked:?}"
        );
    }
}

#[test]
fn a_dump_under_other_names_fails_with_exit_3_until_renamed() {
    let tool = Tool::sqlite();
    let renamed = tool.path("renamed");
    copy_dir(
        &Path::new(FIXTURES).join("test_database"),
        &renamed.join("web_prod"),
    );
    copy_dir(
        &Path::new(FIXTURES).join("edn360_app"),
        &renamed.join("app_prod"),
    );
    let dump = make_dump(&tool, &renamed, "archive", false);

    let run = rehearse(&tool, &dump, "as-is", &[]);
    assert_eq!(run.status.code(), Some(3));
    let report = read_report(&tool, "as-is");
    let import = step(&report, "import");
    assert_eq!(import["outcome"], "failed");
    assert!(
        import["result"].as_str().unwrap().contains("--rename-db"),
        "{import}"
    );
    assert_eq!(
        step(&report, "validate")["outcome"],
        "failed",
        "nothing to validate is not a pass"
    );
    assert_eq!(report["verdict"]["passed"], false);

    let run = rehearse(
        &tool,
        &dump,
        "renamed-out",
        &[
            "--rename-db",
            "web_prod=test_database",
            "--rename-db",
            "app_prod=edn360_app",
        ],
    );
    let report = read_report(&tool, "renamed-out");
    assert_eq!(
        step(&report, "import")["outcome"],
        "passed",
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert_eq!(step(&report, "validate")["outcome"], "passed");
    assert_eq!(report["restore"]["differences"], 0);
}

#[test]
fn the_source_store_is_never_opened_and_the_output_is_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let tool = Tool::sqlite();
    let dump = make_dump(&tool, Path::new(FIXTURES), "directory", false);
    rehearse(&tool, &dump, "out", &[]);
    // The tool's store (--store sqlite:WORK/store.db) was never created.
    assert!(
        !tool.path("store.db").exists(),
        "the configured store was opened"
    );
    let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let out = tool.path("out");
    assert_eq!(mode(&out), 0o700);
    for name in [
        "report.html",
        "report.json",
        "report.md",
        "rehearsal.db",
        "baseline.db",
        "migrated.db",
    ] {
        assert_eq!(mode(&out.join(name)), 0o600, "{name}");
    }
    for dir in ["backups", "validation"] {
        assert_eq!(mode(&out.join(dir)), 0o700, "{dir}");
        for entry in fs::read_dir(out.join(dir)).unwrap() {
            let path = entry.unwrap().path();
            let want = if path.is_dir() { 0o700 } else { 0o600 };
            assert_eq!(mode(&path), want, "{}", path.display());
        }
    }

    // A folder that holds a rehearsal is not reused: the report would mix runs.
    let again = rehearse(&tool, &dump, "out", &[]);
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("--out"));
}
