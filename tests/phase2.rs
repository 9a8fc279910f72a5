//! Phase 2 end to end through the binary, on the embedded store and on the
//! MongoDB backend over the wire test server: gate, dry run, migrate, re-run,
//! lock, rollback that keeps dual-writes, and resume after SIGKILL.

mod common;

use common::exports::{assert_same, normalized};
use common::tool::{json, tree, Tool};
use serde_json::Value;
use std::fs;
use std::path::Path;
use std::time::Duration;

/// Users in the fixtures (fixtures/README.md: U01–U23).
const USERS: u64 = 23;
/// fixtures/README.md "Bad documents" (4) plus U16's two plans stamped by the
/// new system with a snapshot this drawer does not hold (docs/drawer.md).
const QUARANTINED: u64 = 6;

fn prepared(tool: &Tool) {
    // The backend's flags: dual-write on, reads still from the legacy collections.
    fs::write(tool.path(".env"), "USE_CLIENT_DRAWER_WRITE=true\n").unwrap();
    let dir = tool.fixtures();
    tool.ok(&["import", dir.to_str().unwrap()]);
    tool.ok(&["phase0", "prepare"]);
    tool.ok(&["phase2", "backup"]);
}

fn export(tool: &Tool, name: &str) -> Vec<(String, Vec<u8>)> {
    let dir = tool.path(name);
    tool.ok(&["export", dir.to_str().unwrap()]);
    tree(&dir)
}

fn migrate_json(tool: &Tool, extra: &[&str]) -> Value {
    let mut args = vec!["phase2", "migrate", "all", "--json"];
    args.extend_from_slice(extra);
    json(&tool.ok(&args))
}

/// Every drawer in the store, read back through an export.
fn stored_drawers(tool: &Tool, name: &str) -> Vec<bson::Document> {
    let dir = tool.path(name);
    tool.ok(&["export", dir.to_str().unwrap()]);
    let text = fs::read_to_string(dir.join(&tool.drawer_db).join("client_drawers.jsonl")).unwrap();
    text.lines()
        .map(|l| edn_migrate::extjson::parse_line(l).unwrap())
        .collect()
}

fn main_job_accounts_for_every_user_and_reruns_write_nothing(tool: Tool) {
    prepared(&tool);
    let first = migrate_json(&tool, &[]);
    let drawers = stored_drawers(&tool, "migrated");
    assert_eq!(drawers.len() as u64, USERS);
    for drawer in &drawers {
        common::plan_validator::assert_plan_accepts(drawer);
    }
    let n = |k: &str| {
        first[k]
            .as_u64()
            .unwrap_or_else(|| panic!("{k} missing in {first}"))
    };
    assert_eq!(n("users"), USERS);
    assert_eq!(
        n("drawers_created") + n("drawers_updated") + n("drawers_unchanged"),
        USERS
    );
    assert_eq!(
        n("drawers_updated"),
        4,
        "U15 and U21–U23 had dual-write drawers"
    );
    assert_eq!(n("quarantined"), QUARANTINED);
    assert!(n("writes") > USERS);
    assert_eq!(first["dry_run"], false);
    let second = migrate_json(&tool, &[]);
    assert_eq!(
        second["writes"], 0,
        "a second run must write nothing: {second}"
    );
    assert_eq!(second["drawers_unchanged"], USERS);
    let report = json(&tool.ok(&["phase2", "validate", "--json"]));
    assert_eq!(report["passed"], true, "{report}");
    let accounting = &report["accounting"];
    assert_eq!(accounting["unaccounted"], 0, "{report}");
    assert_eq!(accounting["quarantined"], QUARANTINED);
    assert_eq!(
        accounting["legacy_documents"], 108,
        "fixtures/README.md: 24 + 20 + 32 + 32"
    );
    for family in ["questionnaires", "followups", "plans"] {
        assert_eq!(report["rates"][family]["rate"], 1.0, "{family}: {report}");
    }
    let reports = tool.path("reports").read_dir().unwrap().count();
    assert_eq!(reports, 2, "a JSON and a Markdown report");
    let status = json(&tool.ok(&["status", "--json"]));
    assert_eq!(
        status["collections"]["client_drawers"], 23,
        "U01–U23 each have a drawer"
    );
    assert_eq!(status["phase2"]["validated"], true, "{status}");
    assert_eq!(status["phase2"]["last_migration"]["outcome"], "succeeded");
    assert_eq!(
        status["runs"][0]["command"], "phase2 validate",
        "newest run first"
    );
    assert_eq!(status["collections"]["migration_quarantine"], QUARANTINED);
}

/// Rewrites the ordering dates of the legacy fixtures as strings (as some
/// legacy writers stored them): RFC 3339, a space instead of `T`, a bare day.
fn dates_as_strings(dir: &Path, tool: &Tool) {
    // Documents dual-write copied into a drawer keep their BSON dates there.
    let drawers =
        fs::read_to_string(dir.join(&tool.drawer_db).join("client_drawers.jsonl")).unwrap();
    let dual_written: Vec<Value> = drawers
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .flat_map(|d| {
            d["services"]["shared_questionnaires"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .map(|e| e["submission_id"].clone())
        .collect();
    for (file, field) in [
        ("nutrition_questionnaire_submissions", "submitted_at"),
        ("follow_up_submissions", "submission_date"),
        ("training_plans", "generated_at"),
        ("nutrition_plans", "generated_at"),
    ] {
        let path = dir.join(&tool.legacy_db).join(format!("{file}.jsonl"));
        let text = fs::read_to_string(&path).unwrap();
        let mut out = String::new();
        for (i, line) in text.lines().enumerate() {
            let mut v: Value = serde_json::from_str(line).unwrap();
            let dual_written = dual_written.contains(&v["_id"]);
            if let Some(at) = v[field]["$date"]
                .as_str()
                .filter(|_| !dual_written)
                .map(str::to_string)
            {
                v[field] = Value::String(match i % 3 {
                    0 => at,
                    1 => at.replace('T', " ").trim_end_matches('Z').to_string(),
                    _ => at[..10].to_string(),
                });
            }
            out.push_str(&format!("{v}\n"));
        }
        fs::write(&path, out).unwrap();
    }
}

fn string_dates_are_stored_as_bson_dates(tool: Tool) {
    let dir = tool.fixtures();
    dates_as_strings(&dir, &tool);
    tool.ok(&["import", dir.to_str().unwrap()]);
    tool.ok(&["phase0", "prepare"]);
    tool.ok(&["phase2", "backup"]);
    migrate_json(&tool, &[]);
    let drawers = stored_drawers(&tool, "migrated");
    assert_eq!(drawers.len() as u64, USERS);
    let mut strings_in_raw_payload = 0;
    for drawer in &drawers {
        common::assert_dates_are_bson_dates(drawer);
        common::plan_validator::assert_plan_accepts(drawer);
        for raw in common::values_at(drawer, "services.shared_questionnaires[].raw_payload") {
            let raw = raw.as_document().unwrap();
            for field in ["submitted_at", "submission_date"] {
                if matches!(raw.get(field), Some(bson::Bson::String(_))) {
                    strings_in_raw_payload += 1;
                }
            }
        }
    }
    assert!(
        strings_in_raw_payload > 20,
        "raw_payload keeps the legacy strings verbatim ({strings_in_raw_payload})"
    );
    let report = json(&tool.ok(&["phase2", "validate", "--json"]));
    assert_eq!(report["passed"], true, "{report}");
}

fn validate_fails_with_exit_3_and_names_paths(tool: Tool) {
    prepared(&tool);
    migrate_json(&tool, &[]);
    // Damage one migrated follow-up in its drawer, as a buggy writer would.
    let out = tool.path("damaged");
    tool.ok(&["export", out.to_str().unwrap()]);
    let mut drawer = drawer_of(&out, &tool, "1730102400123401").unwrap();
    drawer["services"]["training"]["questionnaires"]["followups"][0]["measurements"] =
        serde_json::json!({"peso": "1"});
    let patch = tool.path("patch");
    fs::create_dir_all(patch.join(&tool.drawer_db)).unwrap();
    fs::write(
        patch.join(&tool.drawer_db).join("client_drawers.jsonl"),
        format!("{drawer}\n"),
    )
    .unwrap();
    tool.ok(&["import", "--upsert", patch.to_str().unwrap()]);
    let failed = tool.run(&["phase2", "validate", "--json"]);
    assert_eq!(failed.status.code(), Some(3));
    let report = json(&String::from_utf8_lossy(&failed.stdout));
    assert_eq!(report["passed"], false);
    let listed = report["rates"]["followups"]["failures"].to_string();
    assert!(
        listed.contains("followup_1730577600000001") && listed.contains(".measurements"),
        "{listed}"
    );
    assert!(
        !report.to_string().contains("ana.garcia"),
        "the report leaks personal data"
    );
    // 18 of 19 follow-ups (94.7 %) misses the plan's 95 %; a 90 % threshold passes.
    assert_eq!(report["rates"]["followups"]["matched"], 18);
    let lenient = json(&tool.ok(&["phase2", "validate", "--json", "--min-followups", "90"]));
    assert_eq!(lenient["passed"], true);
}

fn dry_run_leaves_the_store_byte_identical(tool: Tool) {
    prepared(&tool);
    let before = export(&tool, "before");
    let plan = migrate_json(&tool, &["--dry-run"]);
    assert_eq!(plan["dry_run"], true);
    assert!(
        plan["writes"].as_u64().unwrap() > 0,
        "the plan announces writes: {plan}"
    );
    assert!(!plan["samples"].as_array().unwrap().is_empty());
    let text = serde_json::to_string(&plan["samples"]).unwrap();
    assert!(
        !text.contains("example.com"),
        "sample diffs leak personal data: {text}"
    );
    assert_eq!(
        export(&tool, "after"),
        before,
        "a dry run changed the store"
    );
}

/// A dry run over drawers that exist shows updates, read off the drawers
/// as built, whichever batch they were built in (a dry run frees the
/// drawers no sample can take where they were built).
fn dry_run_samples_are_updates_as_built(tool: Tool) {
    prepared(&tool);
    tool.ok(&[
        "phase2",
        "migrate",
        "questionnaires",
        "--force",
        "--reason",
        "test",
    ]);
    let plan = migrate_json(&tool, &["--dry-run", "--batch-size", "1"]);
    let samples = plan["samples"].as_array().unwrap();
    assert_eq!(samples.len(), 3, "{plan}");
    for sample in samples {
        assert_eq!(
            sample["created"], false,
            "existing drawers are updates: {sample}"
        );
        let changes: Vec<&str> = sample["changes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap())
            .collect();
        assert!(!changes.is_empty(), "{sample}");
        assert!(
            changes.iter().all(|c| !c.starts_with("- ")),
            "an update that adds plans and follow-ups removes nothing: {sample}"
        );
    }
}

fn migrate_refuses_without_a_verified_backup(tool: Tool) {
    let dir = tool.fixtures();
    tool.ok(&["import", dir.to_str().unwrap()]);
    tool.ok(&["phase0", "prepare"]);
    let out = tool.run(&["phase2", "migrate", "all"]);
    assert_eq!(out.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("edn-migrate phase2 backup") && stderr.contains("--force --reason"),
        "{stderr}"
    );
    let forced = migrate_json(&tool, &["--force", "--reason", "rehearsal on a copy"]);
    assert_eq!(forced["users"], USERS);
    let runs = export(&tool, "runs");
    let record = runs
        .iter()
        .find(|(name, _)| name.ends_with("migration_runs.jsonl"))
        .unwrap();
    assert!(String::from_utf8_lossy(&record.1).contains("rehearsal on a copy"));
}

fn a_second_runner_is_refused_with_exit_4(tool: Tool) {
    prepared(&tool);
    let locks = tool.path("locks");
    let db = locks.join(&tool.drawer_db);
    fs::create_dir_all(&db).unwrap();
    fs::write(
        db.join("migration_lock.jsonl"),
        r#"{"_id":"phase2","owner":"ops-host:4242","run_id":"run-other","acquired_at":{"$date":"2026-01-01T00:00:00Z"},"heartbeat_at":{"$date":"2099-01-01T00:00:00Z"},"expires_at":{"$date":"2099-01-01T00:05:00Z"},"released":false}
"#,
    )
    .unwrap();
    tool.ok(&["import", locks.to_str().unwrap()]);
    let out = tool.run(&["phase2", "migrate", "all"]);
    assert_eq!(out.status.code(), Some(4));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("ops-host:4242") && stderr.contains("--break-lock"),
        "{stderr}"
    );
    assert_eq!(migrate_json(&tool, &["--break-lock"])["users"], USERS);
}

/// A drawer line of an export, by user id.
fn drawer_of(dir: &Path, tool: &Tool, user: &str) -> Option<Value> {
    let text = fs::read_to_string(dir.join(&tool.drawer_db).join("client_drawers.jsonl")).unwrap();
    text.lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|d| d["user_id"] == user)
}

fn rollback_keeps_what_dual_write_wrote_after_the_migration(tool: Tool) {
    prepared(&tool);
    let original = export(&tool, "original");
    migrate_json(&tool, &[]);
    // Dual-write lands for U01 after the migration: a new submission in the
    // legacy collection and its entry in the drawer the migration created.
    let user = "1730102400123401";
    let after = tool.path("after_migration");
    tool.ok(&["export", after.to_str().unwrap()]);
    let mut drawer = drawer_of(&after, &tool, user).expect("U01 has a drawer");
    let entry = serde_json::json!({
        "submission_id": "submission_dualwrite_after",
        "submitted_at": {"$date": "2026-11-23T10:00:00Z"},
        "source": "nutrition_initial",
        "raw_payload": {"_id": "submission_dualwrite_after", "user_id": user, "responses": {"peso": "80"}},
    });
    drawer["services"]["shared_questionnaires"]
        .as_array_mut()
        .unwrap()
        .push(entry.clone());
    let patch = tool.path("patch");
    fs::create_dir_all(patch.join(&tool.drawer_db)).unwrap();
    fs::write(
        patch.join(&tool.drawer_db).join("client_drawers.jsonl"),
        format!("{drawer}\n"),
    )
    .unwrap();
    tool.ok(&["import", "--upsert", patch.to_str().unwrap()]);

    let undone = json(&tool.ok(&["rollback", "--phase", "2", "--yes", "--json"]));
    assert_eq!(
        undone["undone"]["drawers_restored"], 5,
        "U01 (dual-write since), U15 and U21–U23: {undone}"
    );
    assert_eq!(undone["undone"]["drawers_deleted"], USERS - 5);
    let rolled = tool.path("rolled");
    tool.ok(&["export", rolled.to_str().unwrap()]);
    let kept =
        drawer_of(&rolled, &tool, user).expect("U01's drawer is kept: it holds a dual-write");
    assert_eq!(
        kept["services"]["shared_questionnaires"],
        serde_json::json!([entry])
    );
    assert!(kept["meta"].get("migration").is_none());
    // The legacy collections are as they were: the plan stamps are gone.
    let legacy = |files: &[(String, Vec<u8>)]| -> Vec<(String, Vec<u8>)> {
        files
            .iter()
            .filter(|(n, _)| n.starts_with(&tool.legacy_db))
            .cloned()
            .collect()
    };
    assert_eq!(legacy(&tree(&rolled)), legacy(&original));
    // U15's dual-write drawer is given back exactly as it was.
    let u15_before = drawer_of(&tool.path("original"), &tool, "1762976907472415").unwrap();
    let u15_after = drawer_of(&rolled, &tool, "1762976907472415").unwrap();
    assert_eq!(u15_after, u15_before);
}

fn killed_runs_resume_to_the_uninterrupted_result(reference: Tool, victim: Tool, kills_ms: &[u64]) {
    prepared(&reference);
    migrate_json(&reference, &["--batch-size", "2"]);
    let expected = normalized(export(&reference, "expected"));

    prepared(&victim);
    let slow = [
        "phase2",
        "migrate",
        "all",
        "--batch-size",
        "1",
        "--max-rate",
        "40",
    ];
    let mut first = true;
    for (n, &ms) in kills_ms.iter().enumerate() {
        let mut args = slow.to_vec();
        if !first {
            args.extend(["--resume", "--break-lock"]);
        }
        first = false;
        let mut child = victim
            .command(&args)
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(ms));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let killed = newest_run(&victim, &format!("after_kill_{n}"));
        assert_eq!(
            killed["outcome"], "running",
            "SIGKILL leaves no outcome: {killed}"
        );
        assert!(
            killed["checkpoint"]["last_user_id"].is_string(),
            "a checkpoint existed before the kill (kill later, or slow the run): {killed}"
        );
    }
    let done = migrate_json(&victim, &["--resume", "--break-lock"]);
    assert_eq!(done["outcome"], "succeeded");
    assert!(
        done["resumed_from"].is_string(),
        "the last run resumed a killed one: {done}"
    );
    assert!(
        done["users"].as_u64().unwrap() < USERS,
        "the resumed run started after the checkpoint, not from the beginning: {done}"
    );
    assert_same(&normalized(export(&victim, "resumed")), &expected);
}

/// The newest `phase2 migrate` run record of an export.
fn newest_run(tool: &Tool, name: &str) -> Value {
    let dir = tool.path(name);
    tool.ok(&["export", dir.to_str().unwrap()]);
    let text = fs::read_to_string(dir.join(&tool.drawer_db).join("migration_runs.jsonl")).unwrap();
    let mut runs: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|r| {
            r["command"]
                .as_str()
                .is_some_and(|c| c.starts_with("phase2 migrate"))
        })
        .collect();
    runs.sort_by_key(|r| r["started_at"].as_str().unwrap_or_default().to_string());
    runs.pop().expect("a migrate run was recorded")
}

/// The lock document of an export.
fn lock_of(tool: &Tool, name: &str) -> Value {
    let dir = tool.path(name);
    tool.ok(&["export", dir.to_str().unwrap()]);
    let text = fs::read_to_string(dir.join(&tool.drawer_db).join("migration_lock.jsonl")).unwrap();
    serde_json::from_str(text.lines().next().expect("a lock document")).unwrap()
}

/// Two runners started at the same moment: one runs, the other is refused
/// with exit 4 (never a store error such as SQLITE_BUSY, exit 1).
fn racing_runners_meet_at_the_lock(tool: Tool) {
    prepared(&tool);
    for round in 0..3 {
        let children: Vec<_> = (0..2)
            .map(|_| {
                tool.command(&["phase2", "migrate", "all"])
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        let codes: Vec<(Option<i32>, String)> = children
            .into_iter()
            .map(|c| {
                let out = c.wait_with_output().unwrap();
                (
                    out.status.code(),
                    String::from_utf8_lossy(&out.stderr).into_owned(),
                )
            })
            .collect();
        for (code, stderr) in &codes {
            assert!(
                matches!(code, Some(0) | Some(4)),
                "round {round}: exit {code:?}: {stderr}"
            );
        }
        assert!(
            codes.iter().any(|(c, _)| *c == Some(0)),
            "round {round}: someone ran"
        );
    }
}

fn sigint_stops_after_the_batch_and_releases_the_lock(tool: Tool) {
    prepared(&tool);
    let slow = [
        "phase2",
        "migrate",
        "all",
        "--batch-size",
        "1",
        "--max-rate",
        "30",
    ];
    let child = tool
        .command(&slow)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1200));
    // SAFETY: kill(2) on the pid of a child this test spawned and still owns.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGINT) }, 0);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(
        stderr.contains("--resume"),
        "says how to continue: {stderr}"
    );
    let lock = lock_of(&tool, "after_sigint");
    assert_eq!(lock["released"], true, "no held lock after SIGINT: {lock}");
    let stopped = newest_run(&tool, "runs_after_sigint");
    assert_eq!(stopped["outcome"], "interrupted", "{stopped}");
    assert!(
        stopped["checkpoint"]["last_user_id"].is_string(),
        "{stopped}"
    );
    // No --break-lock needed: the next run takes the lock and resumes.
    let done = migrate_json(&tool, &["--resume"]);
    assert_eq!(done["resumed_from"], stopped["_id"], "{done}");
    assert!(done["users"].as_u64().unwrap() < USERS, "{done}");
}

/// Legacy documents whose `user_id` is not a string (a number, an ObjectId,
/// a boolean, a date, an object) sort before and after the string users on
/// MongoDB; each is read, quarantined with a reason naming the field, and
/// accounted for by validation.
fn users_of_every_id_type_are_quarantined_with_a_reason(tool: Tool) {
    fs::write(tool.path(".env"), "USE_CLIENT_DRAWER_WRITE=true\n").unwrap();
    let dir = tool.fixtures();
    let file = dir
        .join(&tool.legacy_db)
        .join("nutrition_questionnaire_submissions.jsonl");
    let odd = [
        ("odd_number", r#"{"$numberInt":"5"}"#),
        ("odd_double", r#"{"$numberDouble":"2.5"}"#),
        ("odd_oid", r#"{"$oid":"65a1b2c3d4e5f60718293a4b"}"#),
        ("odd_bool", "true"),
        ("odd_date", r#"{"$date":"2025-01-03T00:00:00Z"}"#),
        ("odd_object", r#"{"id":"1730102400123401"}"#),
    ];
    let mut text = fs::read_to_string(&file).unwrap();
    for (id, user) in odd {
        text.push_str(&format!(
            "{{\"_id\":\"{id}\",\"user_id\":{user},\"submitted_at\":{{\"$date\":\"2025-03-01T10:00:00Z\"}},\"responses\":{{\"peso\":\"80\"}}}}\n"
        ));
    }
    fs::write(&file, text).unwrap();
    tool.ok(&["import", dir.to_str().unwrap()]);
    tool.ok(&["phase0", "prepare"]);
    tool.ok(&["phase2", "backup"]);
    let run = migrate_json(&tool, &["--batch-size", "2"]);
    assert_eq!(run["users"], USERS, "{run}");
    let out = tool.path("quarantined");
    tool.ok(&["export", out.to_str().unwrap()]);
    let quarantine =
        fs::read_to_string(out.join(&tool.drawer_db).join("migration_quarantine.jsonl")).unwrap();
    assert_eq!(
        quarantine.lines().count() as u64,
        QUARANTINED + odd.len() as u64
    );
    for (id, _) in odd {
        let record = quarantine
            .lines()
            .find(|l| l.contains(&format!("\"source_id\":\"{id}\"")))
            .unwrap_or_else(|| panic!("{id} was never read: {quarantine}"));
        assert!(record.contains("user_id is not a string"), "{record}");
    }
    let report = json(&tool.ok(&["phase2", "validate", "--json"]));
    assert_eq!(report["passed"], true, "{report}");
    assert_eq!(report["accounting"]["unaccounted"], 0, "{report}");
}

/// A store where phase 0 never ran: each legacy collection without the
/// per-user index is named, with the fix, before the run; none once phase 0
/// has created them.
fn a_store_without_phase0_indexes_is_named_before_the_run(tool: Tool) {
    let dir = tool.fixtures();
    tool.ok(&["import", dir.to_str().unwrap()]);
    let stderr = |args: &[&str]| String::from_utf8(tool.run(args).stderr).unwrap();
    let before = stderr(&["phase2", "migrate", "all", "--dry-run"]);
    for coll in [
        "nutrition_questionnaire_submissions",
        "follow_up_submissions",
        "training_plans",
        "nutrition_plans",
    ] {
        let named = format!("{}.{coll} has no index on user_id, _id", tool.legacy_db);
        assert!(before.contains(&named), "{named} not in:\n{before}");
    }
    assert!(
        before.contains("run `edn-migrate phase0 prepare` first"),
        "{before}"
    );
    tool.ok(&["phase0", "prepare"]);
    let after = stderr(&["phase2", "migrate", "all", "--dry-run"]);
    assert!(!after.contains("has no index"), "{after}");
}

mod sqlite {
    use super::*;

    #[test]
    fn dry_run_samples_are_updates_as_built() {
        super::dry_run_samples_are_updates_as_built(Tool::sqlite());
    }

    #[test]
    fn a_store_without_phase0_indexes_is_named_before_the_run() {
        super::a_store_without_phase0_indexes_is_named_before_the_run(Tool::sqlite());
    }

    #[test]
    fn users_of_every_id_type_are_quarantined_with_a_reason() {
        super::users_of_every_id_type_are_quarantined_with_a_reason(Tool::sqlite());
    }

    #[test]
    fn sigint_stops_after_the_batch_and_releases_the_lock() {
        super::sigint_stops_after_the_batch_and_releases_the_lock(Tool::sqlite());
    }
    #[test]
    fn racing_runners_meet_at_the_lock() {
        super::racing_runners_meet_at_the_lock(Tool::sqlite());
    }

    #[test]
    fn main_job_accounts_for_every_user_and_reruns_write_nothing() {
        super::main_job_accounts_for_every_user_and_reruns_write_nothing(Tool::sqlite());
    }
    #[test]
    fn dry_run_leaves_the_store_byte_identical() {
        super::dry_run_leaves_the_store_byte_identical(Tool::sqlite());
    }
    #[test]
    fn string_dates_are_stored_as_bson_dates() {
        super::string_dates_are_stored_as_bson_dates(Tool::sqlite());
    }
    #[test]
    fn validate_fails_with_exit_3_and_names_paths() {
        super::validate_fails_with_exit_3_and_names_paths(Tool::sqlite());
    }
    #[test]
    fn migrate_refuses_without_a_verified_backup() {
        super::migrate_refuses_without_a_verified_backup(Tool::sqlite());
    }
    #[test]
    fn a_second_runner_is_refused_with_exit_4() {
        super::a_second_runner_is_refused_with_exit_4(Tool::sqlite());
    }
    #[test]
    fn rollback_keeps_what_dual_write_wrote_after_the_migration() {
        super::rollback_keeps_what_dual_write_wrote_after_the_migration(Tool::sqlite());
    }
    #[test]
    fn killed_runs_resume_to_the_uninterrupted_result() {
        super::killed_runs_resume_to_the_uninterrupted_result(
            Tool::sqlite(),
            Tool::sqlite(),
            &[500, 700, 900],
        );
    }
}

mod mongo_wire {
    use super::*;

    #[test]
    fn a_store_without_phase0_indexes_is_named_before_the_run() {
        if let Some(tool) = Tool::wire("p2noidx") {
            super::a_store_without_phase0_indexes_is_named_before_the_run(tool);
        }
    }

    #[test]
    fn users_of_every_id_type_are_quarantined_with_a_reason() {
        if let Some(tool) = Tool::wire("p2types") {
            super::users_of_every_id_type_are_quarantined_with_a_reason(tool);
        }
    }

    #[test]
    fn sigint_stops_after_the_batch_and_releases_the_lock() {
        if let Some(tool) = Tool::wire("p2sigint") {
            super::sigint_stops_after_the_batch_and_releases_the_lock(tool);
        }
    }

    #[test]
    fn main_job_accounts_for_every_user_and_reruns_write_nothing() {
        if let Some(tool) = Tool::wire("p2main") {
            super::main_job_accounts_for_every_user_and_reruns_write_nothing(tool);
        }
    }
    #[test]
    fn dry_run_leaves_the_store_byte_identical() {
        if let Some(tool) = Tool::wire("p2dry") {
            super::dry_run_leaves_the_store_byte_identical(tool);
        }
    }
    #[test]
    fn string_dates_are_stored_as_bson_dates() {
        if let Some(tool) = Tool::wire("p2dates") {
            super::string_dates_are_stored_as_bson_dates(tool);
        }
    }
    #[test]
    fn validate_fails_with_exit_3_and_names_paths() {
        if let Some(tool) = Tool::wire("p2val") {
            super::validate_fails_with_exit_3_and_names_paths(tool);
        }
    }
    #[test]
    fn migrate_refuses_without_a_verified_backup() {
        if let Some(tool) = Tool::wire("p2gate") {
            super::migrate_refuses_without_a_verified_backup(tool);
        }
    }
    #[test]
    fn a_second_runner_is_refused_with_exit_4() {
        if let Some(tool) = Tool::wire("p2lock") {
            super::a_second_runner_is_refused_with_exit_4(tool);
        }
    }
    #[test]
    fn rollback_keeps_what_dual_write_wrote_after_the_migration() {
        if let Some(tool) = Tool::wire("p2undo") {
            super::rollback_keeps_what_dual_write_wrote_after_the_migration(tool);
        }
    }
    #[test]
    fn killed_runs_resume_to_the_uninterrupted_result() {
        if let (Some(reference), Some(victim)) = (Tool::wire("p2ref"), Tool::wire("p2kill")) {
            super::killed_runs_resume_to_the_uninterrupted_result(reference, victim, &[800, 1200]);
        }
    }
}
