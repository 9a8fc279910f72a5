//! Issue 8: gates and validation that cannot show green on a wrong state.
//! Each scenario runs the binary on the embedded store and on the MongoDB
//! backend over the wire test server (not MongoDB).

mod common;

use common::tool::{json, Tool};
use serde_json::Value;
use std::fs;
use std::process::Output;

/// Users in the fixtures (fixtures/README.md: U01–U23).
const USERS: u64 = 23;
const U01: &str = "1730102400123401";
const U02: &str = "1730275200456702";
const U03: &str = "1730448000789003";
/// U07's submission has `peso: "ochenta"` (fixtures/README.md).
const U07_SUBMISSION: &str = "submission_1730569500000001";

fn prepared(tool: &Tool) {
    let dir = tool.fixtures();
    tool.ok(&["import", dir.to_str().unwrap()]);
    tool.ok(&["phase0", "prepare"]);
    tool.ok(&["phase2", "backup"]);
}

fn migrated(tool: &Tool) {
    prepared(tool);
    tool.ok(&["phase2", "migrate", "all"]);
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Runs the binary with another legacy database name than the tool's.
fn run_on_legacy_db(tool: &Tool, legacy_db: &str, args: &[&str]) -> Output {
    run_as(tool, &tool.store, legacy_db, &tool.drawer_db, args)
}

/// Runs the binary in the tool's folder on any store and databases.
fn run_as(tool: &Tool, store: &str, legacy_db: &str, drawer_db: &str, args: &[&str]) -> Output {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_edn-migrate"));
    command
        .args(["--store", store, "--legacy-db", legacy_db])
        .args(["--drawer-db", drawer_db])
        .args(args)
        .current_dir(tool.work.path())
        .env_remove("MONGO_URL")
        .env_remove("DB_NAME")
        .env_remove("EDN360_DB_NAME")
        .env_remove("EDN_BACKUP_DIR")
        .stdin(std::process::Stdio::null());
    command.output().unwrap()
}

/// The stored drawers, as relaxed Extended JSON values, by user id.
fn drawers(tool: &Tool, name: &str) -> Vec<Value> {
    let dir = tool.path(name);
    tool.ok(&["export", dir.to_str().unwrap()]);
    let text = fs::read_to_string(dir.join(&tool.drawer_db).join("client_drawers.jsonl")).unwrap();
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn drawer<'a>(all: &'a mut [Value], user: &str) -> &'a mut Value {
    all.iter_mut().find(|d| d["user_id"] == user).unwrap()
}

/// Writes drawers back over the stored ones, as a buggy writer would.
fn put_drawers(tool: &Tool, name: &str, changed: &[&Value]) {
    let dir = tool.path(name);
    fs::create_dir_all(dir.join(&tool.drawer_db)).unwrap();
    let lines: String = changed.iter().map(|d| format!("{d}\n")).collect();
    fs::write(
        dir.join(&tool.drawer_db).join("client_drawers.jsonl"),
        lines,
    )
    .unwrap();
    tool.ok(&["import", "--upsert", dir.to_str().unwrap()]);
}

fn entry_index(list: &Value, key: &str, id: &str) -> usize {
    list.as_array()
        .unwrap()
        .iter()
        .position(|e| e[key] == id)
        .unwrap_or_else(|| panic!("no entry {key} = {id}"))
}

/// Item 2: 0 of 0 is not 100 %; every drawer is checked; drawers no legacy
/// document explains are reported.
fn validation_over_nothing_fails(tool: Tool) {
    tool.ok(&["phase0", "prepare"]);
    let empty = tool.run(&["phase2", "validate", "--json"]);
    assert_eq!(empty.status.code(), Some(3), "{}", stderr(&empty));
    assert!(
        stderr(&empty).contains("nothing to validate"),
        "{}",
        stderr(&empty)
    );
    let report = json(&stdout(&empty));
    assert_eq!(report["passed"], false);
    assert_eq!(report["rates"]["questionnaires"]["rate"], Value::Null);

    let dir = tool.fixtures();
    tool.ok(&["import", dir.to_str().unwrap()]);
    tool.ok(&["phase2", "backup"]);
    tool.ok(&["phase2", "migrate", "all"]);
    // The same store read with a misspelled legacy database.
    let typo = run_on_legacy_db(&tool, "test_databse", &["phase2", "validate", "--json"]);
    assert_eq!(typo.status.code(), Some(3), "{}", stderr(&typo));
    assert!(
        stderr(&typo).contains("nothing to validate"),
        "{}",
        stderr(&typo)
    );
    assert!(stderr(&typo).contains("test_databse"), "{}", stderr(&typo));
    let report = json(&stdout(&typo));
    assert_eq!(report["drawers"]["checked"], USERS, "{report}");
    assert_eq!(report["drawers"]["unexplained"], USERS, "{report}");
    let listed = report["drawers"]["unexplained_listed"].to_string();
    assert!(listed.contains(&format!("client_{U01}")), "{listed}");
    // With the right name the same store validates.
    let good = json(&tool.ok(&["phase2", "validate", "--json"]));
    assert_eq!(good["passed"], true, "{good}");
    assert_eq!(good["drawers"]["checked"], USERS);
    assert_eq!(good["drawers"]["unexplained"], 0);
    // Validations back to back (usually within one second) keep a report each.
    let reports = || {
        fs::read_dir(tool.path("reports"))
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .path()
                    .extension()
                    .is_some_and(|x| x == "json")
            })
            .count()
    };
    let before = reports();
    tool.ok(&["phase2", "validate"]);
    tool.ok(&["phase2", "validate"]);
    assert_eq!(reports(), before + 2, "a report was overwritten");
}

/// Item 3: every part the builder derives is compared; a document neither
/// in its drawer nor in quarantine fails whatever the thresholds.
fn validation_compares_every_derived_part(tool: Tool) {
    migrated(&tool);
    let mut all = drawers(&tool, "migrated");
    // U02: its initial measurement deleted.
    let u02 = drawer(&mut all, U02);
    let measurements = &mut u02["services"]["training"]["measurements"];
    let i = measurements
        .as_array()
        .unwrap()
        .iter()
        .position(|m| m["tipo"] == "inicial")
        .unwrap();
    let deleted = measurements[i]["measurement_id"]
        .as_str()
        .unwrap()
        .to_string();
    measurements.as_array_mut().unwrap().remove(i);
    let u02 = u02.clone();
    // U01: e-mail, age, measured weight, enrolled_at and the flags changed.
    let u01 = drawer(&mut all, U01);
    u01["profile"]["email"] = "someone.else@example.com".into();
    u01["profile"]["edad"] = 99.into();
    let training = &mut u01["services"]["training"];
    let m = entry_index(&training["measurements"], "tipo", "inicial");
    let weighed = training["measurements"][m]["measurement_id"]
        .as_str()
        .unwrap()
        .to_string();
    training["measurements"][m]["data"]["peso"] = 987.25.into();
    training["enrolled_at"] = serde_json::json!({"$date": "2030-01-01T00:00:00Z"});
    training["active"] = false.into();
    u01["meta"]["active_services"] = serde_json::json!([]);
    u01["meta"]["status"] = "needs_review".into();
    u01["services"]["nutrition"]["active"] = true.into();
    let u01 = u01.clone();
    put_drawers(&tool, "damage", &[&u01, &u02]);

    let out = tool.run(&["phase2", "validate", "--json"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let report = json(&stdout(&out));
    let failures = report["rates"]["questionnaires"]["failures"].clone();
    let paths_of = |user: &str| -> Vec<String> {
        failures
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["user_id"] == user)
            .flat_map(|f| f["paths"].as_array().unwrap().clone())
            .map(|p| p.as_str().unwrap().to_string())
            .collect()
    };
    let u02_paths = paths_of(U02);
    assert!(
        u02_paths.contains(&format!("services.training.measurements[{deleted}]")),
        "{u02_paths:?}"
    );
    let u01_paths = paths_of(U01);
    for want in [
        "profile.email".to_string(),
        "profile.edad".to_string(),
        format!("services.training.measurements[{weighed}].data.peso"),
        "services.training.enrolled_at".to_string(),
    ] {
        assert!(u01_paths.contains(&want), "{want} not in {u01_paths:?}");
    }
    let invalid = report["drawers"]["invalid_listed"].to_string();
    for want in [
        "services.training.active",
        "meta.active_services",
        "meta.status",
        "services.nutrition.active",
    ] {
        assert!(invalid.contains(want), "{want} not in {invalid}");
    }
    let text = report.to_string();
    assert!(
        !text.contains("someone.else") && !text.contains("987"),
        "values leak: {text}"
    );

    // A document that is nowhere: U03's first follow-up taken out of its drawer.
    let mut all = drawers(&tool, "damaged");
    let u03 = drawer(&mut all, U03);
    let followups = &mut u03["services"]["training"]["questionnaires"]["followups"];
    let gone = followups[0]["followup_id"].as_str().unwrap().to_string();
    followups.as_array_mut().unwrap().remove(0);
    let u03 = u03.clone();
    put_drawers(&tool, "lose", &[&u03]);
    let lenient = [
        "phase2",
        "validate",
        "--json",
        "--min-questionnaires",
        "0",
        "--min-followups",
        "0",
        "--min-plans",
        "0",
    ];
    let out = tool.run(&lenient);
    assert_eq!(
        out.status.code(),
        Some(3),
        "thresholds cannot excuse a lost document"
    );
    let report = json(&stdout(&out));
    assert!(
        report["accounting"]["unaccounted"].as_u64().unwrap() >= 1,
        "{report}"
    );
    assert!(
        report["accounting"]["unaccounted_listed"]
            .to_string()
            .contains(&gone),
        "{report}"
    );
}

/// Item 4: validate takes the phase 2 lock, and names its holder.
fn validation_refuses_while_a_migration_holds_the_lock(tool: Tool) {
    migrated(&tool);
    let locks = tool.path("locks");
    let db = locks.join(&tool.drawer_db);
    fs::create_dir_all(&db).unwrap();
    fs::write(
        db.join("migration_lock.jsonl"),
        r#"{"_id":"phase2","owner":"ops-host:4242","run_id":"run-other","acquired_at":{"$date":"2026-01-01T00:00:00Z"},"heartbeat_at":{"$date":"2099-01-01T00:00:00Z"},"expires_at":{"$date":"2099-01-01T00:05:00Z"},"released":false}
"#,
    )
    .unwrap();
    tool.ok(&["import", "--upsert", locks.to_str().unwrap()]);
    let out = tool.run(&["phase2", "validate"]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(stderr(&out).contains("ops-host:4242"), "{}", stderr(&out));
    assert!(
        !tool.path("reports").exists(),
        "a refused validation writes no report"
    );
}

/// Item 14: each per-document warning is listed: user, kind, field, document.
fn validation_lists_every_warning(tool: Tool) {
    migrated(&tool);
    let counted = tool.ok(&["phase2", "validate"]);
    assert!(counted.contains("unparsable_value"), "{counted}");
    assert!(counted.contains("--warnings"), "{counted}");
    assert!(!counted.contains(U07_SUBMISSION), "counts only: {counted}");
    let listed = tool.ok(&["phase2", "validate", "--warnings"]);
    let line = listed
        .lines()
        .find(|l| l.contains(U07_SUBMISSION) && l.contains("responses.peso"))
        .unwrap_or_else(|| panic!("no line for U07's weight:\n{listed}"));
    assert!(
        line.contains("1731139200345607") && line.contains("unparsable_value"),
        "{line}"
    );
    assert!(!listed.contains("ochenta"), "a value leaks");
    let report = json(&tool.ok(&["phase2", "validate", "--warnings", "--json"]));
    let warnings = report["warnings"]["listed"].as_array().unwrap();
    assert_eq!(
        warnings.len() as u64,
        report["warnings"]["count"].as_u64().unwrap()
    );
    assert!(warnings
        .iter()
        .any(|w| w["user_id"] == "1730620800234504" && w["kind"] == "several_initial_submissions"));
    assert!(warnings
        .iter()
        .any(|w| w["kind"] == "unmapped_field" && w["field"] == "responses.lesiones_previas"));
    // The Markdown report holds the same listing.
    let md = fs::read_dir(tool.path("reports"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .map(|p| fs::read_to_string(p).unwrap())
        .find(|t| t.contains(U07_SUBMISSION))
        .expect("a Markdown report lists the warnings");
    assert!(md.contains("responses.peso"));
}

fn refused(out: &Output, wants: &[&str]) {
    assert_eq!(out.status.code(), Some(3), "{}", stderr(out));
    for want in wants {
        assert!(stderr(out).contains(want), "{want} not in: {}", stderr(out));
    }
}

/// Item 1: the backup gate opens only for a whole, non-empty backup of this
/// store and these databases. Each case has its own backup folder.
fn backup_gate_wants_a_whole_backup_of_this_store(tool: Tool) {
    let dir = tool.fixtures();
    let folder = |name: &str| tool.path(name).to_str().unwrap().to_string();
    let migrate_with =
        |backups: &str| tool.run(&["phase2", "migrate", "all", "--backup-dir", backups]);
    // A backup taken before the data was imported: verified, but empty.
    tool.ok(&["phase0", "prepare"]);
    let empty = folder("b_empty");
    tool.ok(&["phase2", "backup", "--backup-dir", &empty]);
    tool.ok(&["import", dir.to_str().unwrap()]);
    refused(
        &migrate_with(&empty),
        &["holds no document", "edn-migrate phase2 backup"],
    );

    // Misspelled databases: a verified backup of 0 documents.
    let typo = folder("b_typo");
    let out = run_as(
        &tool,
        &tool.store,
        "test_databse",
        "edn360_ap",
        &["phase2", "backup", "--backup-dir", &typo],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    refused(
        &migrate_with(&typo),
        &["test_databse", "edn360_ap", "--legacy-db"],
    );

    // Another store: an embedded one elsewhere.
    let other = format!("sqlite:{}", tool.path("other.db").display());
    let elsewhere = folder("b_other");
    let made = run_as(
        &tool,
        &other,
        &tool.legacy_db,
        &tool.drawer_db,
        &["phase0", "prepare"],
    );
    assert!(made.status.success(), "{}", stderr(&made));
    let out = run_as(
        &tool,
        &other,
        &tool.legacy_db,
        &tool.drawer_db,
        &["phase2", "backup", "--backup-dir", &elsewhere],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    refused(&migrate_with(&elsewhere), &["other.db", "taken of"]);

    // The right backup, one of whose files is deleted afterwards.
    let gone = folder("b_gone");
    tool.ok(&["phase2", "backup", "--backup-dir", &gone]);
    let taken = fs::read_dir(&gone).unwrap().next().unwrap().unwrap().path();
    fs::remove_file(taken.join(&tool.legacy_db).join("training_plans.bson")).unwrap();
    refused(
        &migrate_with(&gone),
        &["training_plans.bson: missing", "no longer whole"],
    );

    // The right backup, one of whose files is shortened afterwards.
    let short = folder("b_short");
    tool.ok(&["phase2", "backup", "--backup-dir", &short]);
    let taken = fs::read_dir(&short)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let file = taken.join(&tool.legacy_db).join("training_plans.bson");
    let len = fs::metadata(&file).unwrap().len();
    fs::OpenOptions::new()
        .write(true)
        .open(&file)
        .unwrap()
        .set_len(len - 1)
        .unwrap();
    refused(
        &migrate_with(&short),
        &[
            &format!(
                "training_plans.bson: {} bytes, the manifest says {len}",
                len - 1
            ),
            "no longer whole",
        ],
    );

    // A whole backup of this store opens the gate.
    let good = folder("b_good");
    tool.ok(&["phase2", "backup", "--backup-dir", &good]);
    let done = json(&tool.ok(&["phase2", "migrate", "all", "--json", "--backup-dir", &good]));
    assert_eq!(done["users"], USERS);
}

/// Item 13: phase 0 is a gate of the migration, overridable with a reason.
fn migrate_without_phase0_is_gated(tool: Tool) {
    let dir = tool.fixtures();
    tool.ok(&["import", dir.to_str().unwrap()]);
    tool.ok(&["phase2", "backup"]);
    refused(
        &tool.run(&["phase2", "migrate", "all"]),
        &[
            "phase 0 is not done",
            "edn-migrate phase0 prepare",
            "--force --reason",
        ],
    );
    let forced = json(&tool.ok(&[
        "phase2",
        "migrate",
        "all",
        "--json",
        "--force",
        "--reason",
        "rehearsal without indexes",
    ]));
    assert_eq!(forced["users"], USERS);
    let runs = tool.path("runs");
    tool.ok(&["export", runs.to_str().unwrap()]);
    let record =
        fs::read_to_string(runs.join(&tool.drawer_db).join("migration_runs.jsonl")).unwrap();
    assert!(record.contains("rehearsal without indexes"));
}

/// Item 7: a user whose drawer MongoDB would refuse is quarantined with a
/// reason that says what to do; no document over 16 MiB is written; the
/// validation accounts for the user's documents in quarantine.
fn an_oversized_user_is_quarantined_not_written(tool: Tool) {
    let dir = tool.fixtures();
    let big_user = "1799999999999901";
    let submissions = dir
        .join(&tool.legacy_db)
        .join("nutrition_questionnaire_submissions.jsonl");
    let mut text = fs::read_to_string(&submissions).unwrap();
    text.push_str(&format!(
        "{{\"_id\":\"submission_big_1\",\"user_id\":\"{big_user}\",\"submitted_at\":{{\"$date\":\"2025-03-01T10:00:00Z\"}},\"responses\":{{\"comentarios_adicionales\":\"{}\"}}}}\n",
        "x".repeat(9 * 1024 * 1024)
    ));
    fs::write(&submissions, text).unwrap();
    let plans = dir.join(&tool.legacy_db).join("training_plans.jsonl");
    let mut text = fs::read_to_string(&plans).unwrap();
    text.push_str(&format!(
        "{{\"_id\":\"training_big_1\",\"user_id\":\"{big_user}\",\"generated_at\":{{\"$date\":\"2025-03-02T10:00:00Z\"}}}}\n"
    ));
    fs::write(&plans, text).unwrap();
    tool.ok(&["import", dir.to_str().unwrap()]);
    tool.ok(&["phase0", "prepare"]);
    tool.ok(&["phase2", "backup"]);
    let run = json(&tool.ok(&["phase2", "migrate", "all", "--json"]));
    assert_eq!(run["warnings"]["drawer_too_large"], 1, "{run}");
    let all = drawers(&tool, "migrated");
    assert!(
        all.iter().all(|d| d["user_id"] != big_user),
        "the drawer was written"
    );
    let out = tool.path("migrated");
    for line in fs::read_to_string(out.join(&tool.drawer_db).join("client_drawers.jsonl"))
        .unwrap()
        .lines()
    {
        let doc = edn_migrate::extjson::parse_line(line).unwrap();
        assert!(bson::to_vec(&doc).unwrap().len() <= 16 * 1024 * 1024);
    }
    let quarantine =
        fs::read_to_string(out.join(&tool.drawer_db).join("migration_quarantine.jsonl")).unwrap();
    for id in ["submission_big_1", "training_big_1"] {
        let record = quarantine
            .lines()
            .find(|l| l.contains(&format!("\"source_id\":\"{id}\"")))
            .unwrap_or_else(|| panic!("{id} is not in quarantine"));
        assert!(
            record.contains("16 MiB") && record.contains("phase2 migrate all"),
            "{record}"
        );
        assert!(!record.contains("xxxx"), "a value leaks");
    }
    let report = json(&tool.ok(&["phase2", "validate", "--json"]));
    assert_eq!(report["passed"], true, "{report}");
    assert_eq!(report["accounting"]["unaccounted"], 0);
}

/// Item 16: follow-ups migrated before the plans (the plan's order) say so
/// and name the commands that complete the links.
fn followups_before_plans_say_how_to_complete_the_links(tool: Tool) {
    prepared(&tool);
    tool.ok(&["phase2", "migrate", "questionnaires"]);
    let early = json(&tool.ok(&["phase2", "migrate", "followups", "--json"]));
    let notes = early["notes"].to_string();
    assert!(notes.contains("before the plans"), "{early}");
    assert!(notes.contains("edn-migrate phase2 migrate all"), "{notes}");
    assert!(
        notes.contains("edn-migrate phase2 migrate plans"),
        "{notes}"
    );
    let text = tool.ok(&["phase2", "migrate", "followups", "--dry-run"]);
    assert!(
        text.contains("note: follow-ups would be migrated before the plans"),
        "{text}"
    );
    tool.ok(&["phase2", "migrate", "plans"]);
    let after = json(&tool.ok(&["phase2", "migrate", "followups", "--json"]));
    assert_eq!(after["notes"], serde_json::json!([]), "{after}");
    let report = json(&tool.ok(&["phase2", "validate", "--json"]));
    assert_eq!(report["passed"], true, "{report}");
}

/// Item 15: the small edges an operator meets.
fn small_edges(tool: Tool) {
    // A unique index that cannot be built names the documents, not "?".
    let dir = tool.path("twins");
    fs::create_dir_all(dir.join(&tool.drawer_db)).unwrap();
    fs::write(
        dir.join(&tool.drawer_db).join("client_drawers.jsonl"),
        "{\"_id\":\"client_a\",\"user_id\":\"17\"}\n{\"_id\":\"client_b\",\"user_id\":\"17\"}\n",
    )
    .unwrap();
    tool.ok(&["import", dir.to_str().unwrap()]);
    let out = tool.run(&["phase0", "prepare"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("\"client_a\"")
            && err.contains("\"client_b\"")
            && err.contains("user_id \"17\""),
        "{err}"
    );
    assert!(!err.contains('?'), "{err}");
    tool.ok(&[
        "import",
        "--drop",
        "--yes",
        tool.fixtures().to_str().unwrap(),
    ]);

    // A percentage above 100 is refused.
    let out = tool.run(&["phase2", "validate", "--min-plans", "150"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("0 to 100"), "{}", stderr(&out));

    // A confirmation nobody can give is a refusal, not a question.
    let out = tool.run(&["import", "--drop", dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("pass --yes to drop every collection"), "{err}");
    assert!(
        !err.trim_end().ends_with('?') && !err.contains("?\n"),
        "{err}"
    );

    // The dry run says where quarantined documents would go, not that they are there.
    tool.ok(&["phase0", "prepare"]);
    tool.ok(&["phase2", "backup"]);
    let plan = tool.ok(&["phase2", "migrate", "all", "--dry-run"]);
    assert!(
        plan.contains("would go to") && !plan.contains("are listed in"),
        "{plan}"
    );
    assert!(!plan.contains("(1 entries)"), "{plan}");

    // Times in tables carry no nanoseconds.
    tool.ok(&["phase2", "migrate", "all"]);
    let status = tool.ok(&["status"]);
    let runs: Vec<&str> = status.lines().filter(|l| l.contains("run-")).collect();
    assert!(!runs.is_empty(), "{status}");
    for line in runs {
        assert!(!line.contains("+00:00"), "{line}");
        let fraction = line
            .split('.')
            .nth(1)
            .map(|f| f.chars().take_while(char::is_ascii_digit).count())
            .unwrap_or(0);
        assert!(fraction <= 3, "{line}");
    }

    // Each command's help shows its own flags first, the global ones apart.
    let help = tool.ok(&["phase2", "migrate", "--help"]);
    let own = help.split("Global options:").next().unwrap();
    assert!(
        own.contains("--dry-run") && !own.contains("--store"),
        "{help}"
    );
    let help = tool.ok(&["rollback", "--help"]);
    assert!(help.contains("1|2|3|4"), "{help}");
}

/// A folder to import: `<legacy db>/users.jsonl` with these lines.
fn users_file(tool: &Tool, name: &str, content: &[u8]) -> std::path::PathBuf {
    let dir = tool.path(name);
    fs::create_dir_all(dir.join(&tool.legacy_db)).unwrap();
    fs::write(dir.join(&tool.legacy_db).join("users.jsonl"), content).unwrap();
    dir
}

fn users_stored(tool: &Tool) -> u64 {
    let status = json(&tool.ok(&["status", "--json"]));
    status["collections"]["users"].as_u64().unwrap_or(0)
}

/// Items 8, 10 and 11: what import refuses before writing anything, and
/// the byte-order mark it accepts.
fn import_checks_every_line_before_writing(tool: Tool) {
    tool.ok(&["phase0", "prepare"]);
    let big = format!(
        "{{\"_id\":\"u1\",\"user_id\":\"1\"}}\n{{\"_id\":\"u2\",\"notes\":\"{}\"}}\n",
        "x".repeat(17 * 1024 * 1024)
    );
    let dir = users_file(&tool, "big", big.as_bytes());
    let out = tool.run(&["import", dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("users.jsonl:2"), "{}", stderr(&out));
    assert!(stderr(&out).contains("16 MiB"), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("nothing was imported"),
        "{}",
        stderr(&out)
    );
    assert_eq!(users_stored(&tool), 0);

    let twice = b"{\"_id\":\"u1\"}\n{\"_id\":\"u2\"}\n{\"_id\":\"u1\",\"x\":1}\n";
    let dir = users_file(&tool, "twice", twice);
    for extra in [None, Some("--upsert")] {
        let mut args = vec!["import", dir.to_str().unwrap()];
        args.extend(extra);
        let out = tool.run(&args);
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        assert!(
            stderr(&out).contains("users.jsonl:3: duplicate _id, already on line 1"),
            "{}",
            stderr(&out)
        );
        assert!(!stderr(&out).contains("already holds"), "{}", stderr(&out));
        assert_eq!(users_stored(&tool), 0, "nothing is imported ({extra:?})");
    }
    // 1 and 1.0 are one _id to MongoDB.
    let dir = users_file(&tool, "numeric", b"{\"_id\":1}\n{\"_id\":1.0}\n");
    let out = tool.run(&["import", dir.to_str().unwrap()]);
    assert!(
        stderr(&out).contains("users.jsonl:2: duplicate _id"),
        "{}",
        stderr(&out)
    );

    let bom = b"\xEF\xBB\xBF{\"_id\":\"u1\",\"user_id\":\"1\"}\n{\"_id\":\"u2\"}\n";
    let dir = users_file(&tool, "bom", bom);
    tool.ok(&["import", dir.to_str().unwrap()]);
    assert_eq!(users_stored(&tool), 2);
    let out = tool.path("bom_export");
    tool.ok(&["export", out.to_str().unwrap()]);
    let text = fs::read_to_string(out.join(&tool.legacy_db).join("users.jsonl")).unwrap();
    assert!(
        text.starts_with("{\"_id\":\"u1\",\"user_id\":\"1\"}"),
        "{text}"
    );
}

mod sqlite {
    use super::*;

    #[test]
    fn followups_before_plans_say_how_to_complete_the_links() {
        super::followups_before_plans_say_how_to_complete_the_links(Tool::sqlite());
    }
    #[test]
    fn small_edges() {
        super::small_edges(Tool::sqlite());
    }

    #[test]
    fn an_oversized_user_is_quarantined_not_written() {
        super::an_oversized_user_is_quarantined_not_written(Tool::sqlite());
    }

    #[test]
    fn import_checks_every_line_before_writing() {
        super::import_checks_every_line_before_writing(Tool::sqlite());
    }

    fn code_and_stderr(args: &[&str], cwd: &std::path::Path) -> (Option<i32>, String) {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_edn-migrate"))
            .args(args)
            .current_dir(cwd)
            .env_remove("MONGO_URL")
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        (out.status.code(), stderr(&out))
    }

    /// Item 12: store URLs and files that cannot be used say so, with the
    /// path and the fix; none creates a store by accident.
    #[test]
    fn store_urls_and_files_that_cannot_be_used_say_why() {
        let work = tempfile::tempdir().unwrap();
        let (code, err) = code_and_stderr(&["--store", "sqlite:", "status"], work.path());
        assert_eq!(code, Some(2), "{err}");
        assert!(err.contains("needs a path"), "{err}");
        let (code, err) = code_and_stderr(&["--store", "sqlit:x.db", "status"], work.path());
        assert_eq!(code, Some(2), "{err}");
        assert!(err.contains("sqlite:PATH"), "{err}");
        // A typo'd path: a command that reads refuses and creates nothing.
        for command in [&["status"][..], &["phase2", "validate"], &["export", "out"]] {
            let mut args = vec!["--store", "sqlite:typo.db"];
            args.extend_from_slice(command);
            let (code, err) = code_and_stderr(&args, work.path());
            assert_eq!(code, Some(2), "{command:?}: {err}");
            assert!(
                err.contains("no store at typo.db") && err.contains("import"),
                "{err}"
            );
            assert!(
                !work.path().join("typo.db").exists(),
                "{command:?} created a store"
            );
        }
        let missing = work.path().join("no_such_folder").join("k.db");
        let url = format!("sqlite:{}", missing.display());
        let (code, err) = code_and_stderr(&["--store", &url, "phase0", "prepare"], work.path());
        assert_eq!(code, Some(1), "{err}");
        assert!(
            err.contains(&missing.display().to_string()) && err.contains("does not exist"),
            "{err}"
        );
    }

    /// Item 12: a store this user cannot write fails at once with the path
    /// and the fix, and `validate` writes no report. As root, permission
    /// bits do not bind, so the binary then runs as `nobody` (setpriv).
    #[test]
    fn a_read_only_store_names_its_path_and_the_fix() {
        use std::os::unix::fs::PermissionsExt;
        let tool = Tool::sqlite();
        let dir = tool.fixtures();
        tool.ok(&["import", dir.to_str().unwrap()]);
        let root = std::process::Command::new("id")
            .arg("-u")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
            .unwrap_or(false);
        let folder = tool.work.path();
        for entry in fs::read_dir(folder).unwrap() {
            let path = entry.unwrap().path();
            if path.is_file() {
                fs::set_permissions(&path, fs::Permissions::from_mode(0o444)).unwrap();
            }
        }
        fs::set_permissions(folder, fs::Permissions::from_mode(0o555)).unwrap();
        let mut command = if root {
            let mut c = std::process::Command::new("setpriv");
            c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
                .arg(env!("CARGO_BIN_EXE_edn-migrate"));
            c
        } else {
            std::process::Command::new(env!("CARGO_BIN_EXE_edn-migrate"))
        };
        let out = command
            .args(["--store", &tool.store])
            .args(["phase2", "validate"])
            .current_dir(folder)
            .env_remove("MONGO_URL")
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        fs::set_permissions(folder, fs::Permissions::from_mode(0o755)).unwrap();
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{err}");
        let path = tool.store.strip_prefix("sqlite:").unwrap();
        assert!(err.contains(path) && err.contains("writable"), "{err}");
        assert!(
            !folder.join("reports").exists(),
            "a report was written: {err}"
        );
    }

    #[test]
    fn backup_gate_wants_a_whole_backup_of_this_store() {
        super::backup_gate_wants_a_whole_backup_of_this_store(Tool::sqlite());
    }
    #[test]
    fn migrate_without_phase0_is_gated() {
        super::migrate_without_phase0_is_gated(Tool::sqlite());
    }

    #[test]
    fn validation_over_nothing_fails() {
        super::validation_over_nothing_fails(Tool::sqlite());
    }
    #[test]
    fn validation_compares_every_derived_part() {
        super::validation_compares_every_derived_part(Tool::sqlite());
    }
    #[test]
    fn validation_refuses_while_a_migration_holds_the_lock() {
        super::validation_refuses_while_a_migration_holds_the_lock(Tool::sqlite());
    }
    #[test]
    fn validation_lists_every_warning() {
        super::validation_lists_every_warning(Tool::sqlite());
    }

    /// Item 7: a stored document over 16 MiB fails validation. Neither store
    /// writes one any more (both refuse it, as MongoDB does), but an embedded
    /// file from an older version or another tool may hold one: it is
    /// planted here with plain SQL. No wire twin (a MongoDB server cannot
    /// hold one).
    #[test]
    fn validation_fails_on_a_stored_document_over_16_mib() {
        use edn_migrate::store::{sort_key, sqlite::SqliteStore, Ns, Store};
        let tool = Tool::sqlite();
        migrated(&tool);
        let path = tool.store.strip_prefix("sqlite:").unwrap();
        let store = SqliteStore::open(path).unwrap();
        let ns = Ns::new(&tool.drawer_db, "client_drawers");
        let id = bson::Bson::from(format!("client_{U01}"));
        let mut d = store
            .get_many(&ns, std::slice::from_ref(&id))
            .unwrap()
            .remove(0);
        drop(store);
        let padding = "x".repeat(17 * 1024 * 1024);
        d.get_document_mut("services")
            .unwrap()
            .insert("padding", padding);
        let conn = rusqlite::Connection::open(path).unwrap();
        // The indexes are on edn_key(); plain SQL needs the same function.
        conn.create_scalar_function(
            "edn_key",
            2,
            rusqlite::functions::FunctionFlags::SQLITE_UTF8
                | rusqlite::functions::FunctionFlags::SQLITE_DETERMINISTIC,
            |ctx| {
                use edn_migrate::store::keys::{raw_sort_key, raw_value_at_path};
                let blob = ctx.get_raw(0).as_blob().unwrap_or_default();
                let path = ctx.get_raw(1).as_str().unwrap_or_default();
                let doc = bson::RawDocument::from_bytes(blob)
                    .map_err(|e| rusqlite::Error::UserFunctionError(Box::new(e)))?;
                Ok(raw_sort_key(raw_value_at_path(doc, path)))
            },
        )
        .unwrap();
        let table: i64 = conn
            .query_row(
                "SELECT id FROM edn_collections WHERE db = ?1 AND name = ?2",
                [&ns.db, &ns.coll],
                |r| r.get(0),
            )
            .unwrap();
        let changed = conn
            .execute(
                &format!("UPDATE edn_docs_{table} SET doc = ?1 WHERE k = ?2"),
                rusqlite::params![bson::to_vec(&d).unwrap(), sort_key(Some(&id))],
            )
            .unwrap();
        assert_eq!(changed, 1);
        drop(conn);
        let out = tool.run(&["phase2", "validate", "--json"]);
        assert_eq!(out.status.code(), Some(3));
        let report = json(&stdout(&out));
        let invalid = report["drawers"]["invalid_listed"].to_string();
        assert!(
            invalid.contains("16 MiB") && invalid.contains(U01),
            "{invalid}"
        );
    }
}

mod mongo_wire {
    use super::*;

    #[test]
    fn followups_before_plans_say_how_to_complete_the_links() {
        if let Some(tool) = Tool::wire("g_order") {
            super::followups_before_plans_say_how_to_complete_the_links(tool);
        }
    }
    #[test]
    fn small_edges() {
        if let Some(tool) = Tool::wire("g_edges") {
            super::small_edges(tool);
        }
    }

    #[test]
    fn an_oversized_user_is_quarantined_not_written() {
        if let Some(tool) = Tool::wire("g_big") {
            super::an_oversized_user_is_quarantined_not_written(tool);
        }
    }

    #[test]
    fn import_checks_every_line_before_writing() {
        if let Some(tool) = Tool::wire("g_import") {
            super::import_checks_every_line_before_writing(tool);
        }
    }

    /// Item 9: a MongoDB URL nobody answers fails within seconds (5 s by
    /// default, `serverSelectionTimeoutMS` in the URL to change it) with one
    /// line naming the host. Needs no server: the port is closed.
    #[test]
    fn an_unreachable_mongodb_fails_fast_in_one_line() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        for (url, waited) in [
            (format!("mongodb://ops:secret@127.0.0.1:{port}/"), "5 s"),
            (
                format!("mongodb://127.0.0.1:{port}/?serverSelectionTimeoutMS=1000"),
                "1 s",
            ),
        ] {
            let started = std::time::Instant::now();
            let out = std::process::Command::new(env!("CARGO_BIN_EXE_edn-migrate"))
                .args(["--store", &url, "status"])
                .env_remove("MONGO_URL")
                .stdin(std::process::Stdio::null())
                .output()
                .unwrap();
            let took = started.elapsed();
            let err = stderr(&out);
            assert_eq!(out.status.code(), Some(1), "{err}");
            // The driver's own default is 30 s; the tool's is 5 s.
            assert!(took < std::time::Duration::from_secs(25), "took {took:?}");
            let lines: Vec<&str> = err.lines().filter(|l| !l.contains(" WARN ")).collect();
            assert_eq!(lines.len(), 1, "{err}");
            assert!(lines[0].contains(&format!("127.0.0.1:{port}")), "{err}");
            assert!(
                lines[0].contains(waited) && lines[0].contains("serverSelectionTimeoutMS"),
                "{err}"
            );
            assert!(!err.contains("secret"), "{err}");
        }
    }

    #[test]
    fn backup_gate_wants_a_whole_backup_of_this_store() {
        if let Some(tool) = Tool::wire("g_backup") {
            super::backup_gate_wants_a_whole_backup_of_this_store(tool);
        }
    }
    #[test]
    fn migrate_without_phase0_is_gated() {
        if let Some(tool) = Tool::wire("g_phase0") {
            super::migrate_without_phase0_is_gated(tool);
        }
    }

    #[test]
    fn validation_over_nothing_fails() {
        if let Some(tool) = Tool::wire("g_nothing") {
            super::validation_over_nothing_fails(tool);
        }
    }
    #[test]
    fn validation_compares_every_derived_part() {
        if let Some(tool) = Tool::wire("g_derived") {
            super::validation_compares_every_derived_part(tool);
        }
    }
    #[test]
    fn validation_refuses_while_a_migration_holds_the_lock() {
        if let Some(tool) = Tool::wire("g_lock") {
            super::validation_refuses_while_a_migration_holds_the_lock(tool);
        }
    }
    #[test]
    fn validation_lists_every_warning() {
        if let Some(tool) = Tool::wire("g_warn") {
            super::validation_lists_every_warning(tool);
        }
    }
}
