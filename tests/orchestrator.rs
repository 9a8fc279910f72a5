//! The whole plan through the binary, on the embedded store and on the
//! MongoDB backend over the wire test server: phase 0 → 4 and back with
//! every rollback, asserting the store, `status --json` and the backend's
//! `.env` after each step; the dual-write check and the phase 3 dashboard on
//! the fixtures' real data, passing on a good case and failing (exit 3) on a
//! broken one; flag changes and restarts recorded in `migration_runs`.

mod common;

use common::tool::{json, tree, Tool};
use serde_json::Value;
use std::fs;
use std::process::Output;
use std::time::Instant;

/// The backend's `.env` before phase 1, as production might hold it.
const ENV: &str = "\
# EDN360 backend
CORS_ORIGINS=\"*\"

# ============================================
# FEATURE FLAGS
# ============================================
export USE_CLIENT_DRAWER_WRITE=false   # phase 1
USE_CLIENT_DRAWER_READ=\"false\"
";

fn env_with(write: &str, read: &str) -> String {
    ENV.replace("WRITE=false", &format!("WRITE={write}"))
        .replace("READ=\"false\"", &format!("READ=\"{read}\""))
}

fn run(tool: &Tool, args: &[&str]) -> (Option<i32>, String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = tool.run(args);
    (
        status.code(),
        String::from_utf8_lossy(&stdout).into_owned(),
        String::from_utf8_lossy(&stderr).into_owned(),
    )
}

/// Runs a command that must exit with `code`; returns its stderr.
fn expect(tool: &Tool, args: &[&str], code: i32) -> String {
    let (got, stdout, stderr) = run(tool, args);
    assert_eq!(
        got,
        Some(code),
        "edn-migrate {args:?}\nstdout: {stdout}\nstderr: {stderr}"
    );
    stderr
}

fn status(tool: &Tool) -> Value {
    json(&tool.ok(&["status", "--json"]))
}

fn gate(status: &Value, name: &str) -> bool {
    status["gates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["name"] == name)
        .unwrap_or_else(|| panic!("no gate {name} in {status}"))["ok"]
        .as_bool()
        .unwrap()
}

fn env_file(tool: &Tool) -> String {
    fs::read_to_string(tool.path(".env")).unwrap()
}

fn export(tool: &Tool, name: &str) -> Vec<(String, Vec<u8>)> {
    let dir = tool.path(name);
    tool.ok(&["export", dir.to_str().unwrap()]);
    tree(&dir)
}

/// An export without the tool's own records: runs, the lease, and the
/// per-document results of dual-write checks.
fn data(files: Vec<(String, Vec<u8>)>) -> Vec<(String, Vec<u8>)> {
    let own = [
        "migration_runs.jsonl",
        "migration_lock.jsonl",
        "dual_write_validations.jsonl",
    ];
    files
        .into_iter()
        .filter(|(n, _)| !own.iter().any(|o| n.ends_with(o)))
        .collect()
}

/// The run records, newest last.
fn runs(tool: &Tool) -> Vec<Value> {
    let dir = tool.path("runs");
    tool.ok(&["export", dir.to_str().unwrap()]);
    let text = fs::read_to_string(dir.join(&tool.drawer_db).join("migration_runs.jsonl"))
        .unwrap_or_default();
    let mut runs: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    runs.sort_by(|a, b| a["started_at"].as_str().cmp(&b["started_at"].as_str()));
    runs
}

fn last_run(tool: &Tool, command: &str) -> Value {
    runs(tool)
        .into_iter()
        .rev()
        .find(|r| r["command"] == command)
        .unwrap_or_else(|| panic!("no run of {command}"))
}

fn collections(tool: &Tool) -> Value {
    status(tool)["collections"].clone()
}

fn imported(tool: &Tool) {
    fs::write(tool.path(".env"), ENV).unwrap();
    let dir = tool.fixtures();
    tool.ok(&["import", dir.to_str().unwrap()]);
}

fn walk_the_plan_and_back(tool: Tool) {
    imported(&tool);
    // Phase 0 not done: enabling dual-write is refused, the file untouched.
    let s = status(&tool);
    assert_eq!(
        (s["phase"].as_u64(), s["next"].as_str()),
        (Some(0), Some("edn-migrate phase0 prepare"))
    );
    assert!(!gate(&s, "phase0_ready"));
    let err = expect(&tool, &["phase1", "enable"], 3);
    assert!(
        err.contains("phase0_ready") && err.contains("phase0 prepare"),
        "{err}"
    );
    assert_eq!(env_file(&tool), ENV);

    tool.ok(&["phase0", "prepare"]);
    let s = status(&tool);
    assert_eq!(s["phase"], 0);
    assert!(gate(&s, "phase0_ready"));
    assert_eq!(s["next"], "edn-migrate phase1 enable");
    assert_eq!(s["flags"]["USE_CLIENT_DRAWER_WRITE"], false);

    // Phase 1.
    let enabled = json(&tool.ok(&["phase1", "enable", "--json"]));
    assert_eq!(enabled["changes"][0]["old"], "false");
    assert_eq!(env_file(&tool), env_with("true", "false"));
    let s = status(&tool);
    assert_eq!(s["phase"], 1);
    assert_eq!(s["flags"]["USE_CLIENT_DRAWER_WRITE"], true);
    assert_eq!(s["next"], "edn-migrate phase1 dual-write-check");
    // Dual-write began just now: nothing of the fixtures is in range yet.
    expect(&tool, &["phase1", "dual-write-check"], 3);
    assert!(!gate(&status(&tool), "dual_write_check_passed"));
    tool.ok(&["phase1", "dual-write-check", "--since", "2026-10-01"]);
    let s = status(&tool);
    assert!(gate(&s, "dual_write_check_passed"));
    assert_eq!(s["next"], "edn-migrate phase2 backup");
    tool.ok(&["phase2", "backup"]);
    let s = status(&tool);
    assert!(s["backup_age_s"].as_i64().unwrap() < 600, "{s}");
    assert!(s["next"].as_str().unwrap().contains("phase2 migrate all"));

    // The switch before phase 2: refused, nothing changed.
    let err = expect(&tool, &["phase3", "switch", "--yes"], 3);
    assert!(err.contains("phase2_validated"), "{err}");
    assert_eq!(env_file(&tool), env_with("true", "false"));

    // Phase 2.
    let before = data(export(&tool, "before"));
    tool.ok(&["phase2", "migrate", "all"]);
    let s = status(&tool);
    for key in [
        "phase",
        "gates",
        "flags",
        "backup_age_s",
        "lock",
        "last_runs",
        "next",
    ] {
        assert!(s.get(key).is_some(), "status --json lacks {key}: {s}");
    }
    assert_eq!(s["last_runs"][0]["command"], "phase2 migrate all");
    assert_eq!(s["lock"], Value::Null, "the migration gave its lease back");
    assert_eq!(s["phase"], 2);
    assert!(!gate(&s, "phase2_validated"));
    assert_eq!(s["next"], "edn-migrate phase2 validate");
    tool.ok(&["phase2", "validate"]);
    let s = status(&tool);
    assert!(gate(&s, "phase2_validated") && gate(&s, "backup_recent"));
    assert_eq!(s["next"], "edn-migrate phase3 switch");
    // Every drawer now holds what dual-write would have written; the one
    // document phase 2 quarantined is accounted for there.
    let all = json(&tool.ok(&[
        "phase1",
        "dual-write-check",
        "--since",
        "2024-01-01",
        "--json",
    ]));
    assert_eq!(
        (
            all["counts"]["checked"].as_u64(),
            all["counts"]["quarantined"].as_u64()
        ),
        (Some(41), Some(1))
    );

    // Phase 3: asks first; a script without --yes is refused (exit 2).
    expect(&tool, &["phase3", "switch"], 2);
    assert_eq!(env_file(&tool), env_with("true", "false"));
    tool.ok(&["phase3", "switch", "--yes"]);
    assert_eq!(env_file(&tool), env_with("true", "true"));
    let s = status(&tool);
    assert_eq!(s["phase"], 3);
    assert_eq!(s["flags"]["USE_CLIENT_DRAWER_READ"], true);
    assert!(!gate(&s, "switch_held"));
    assert!(
        s["next"]
            .as_str()
            .unwrap()
            .starts_with("edn-migrate phase3 status"),
        "{s}"
    );
    tool.ok(&["phase3", "status", "--since", "2026-11-01"]);

    // Phase 4: the switch has not held 48 h; forced, with the reason recorded.
    let err = expect(&tool, &["phase4", "cleanup", "--yes"], 3);
    assert!(err.contains("switch_held"), "{err}");
    let cleanup = json(&tool.ok(&[
        "phase4",
        "cleanup",
        "--yes",
        "--json",
        "--force",
        "--reason",
        "rehearsal: 48 h simulated",
    ]));
    assert_eq!(cleanup["renamed"].as_array().unwrap().len(), 2, "{cleanup}");
    assert_eq!(
        env_file(&tool),
        format!(
            "{}DISABLE_LEGACY_ENDPOINTS=true\n",
            env_with("true", "true")
        )
    );
    assert_eq!(
        last_run(&tool, "phase4 cleanup")["force_reason"],
        "rehearsal: 48 h simulated"
    );
    let c = collections(&tool);
    assert_eq!(c["nutrition_questionnaire_submissions"], 0);
    assert_eq!(c["follow_up_submissions"], 0);
    let s = status(&tool);
    assert_eq!(s["phase"], 4);
    assert!(!gate(&s, "legacy_in_place"));
    assert!(s["next"].as_str().unwrap().starts_with("nothing"), "{s}");

    // Back: phase 3 cannot be undone while the collections are deprecated.
    let err = expect(&tool, &["rollback", "--phase", "3", "--yes"], 3);
    assert!(err.contains("rollback --phase 4"), "{err}");
    tool.ok(&["rollback", "--phase", "4", "--yes"]);
    assert_eq!(
        env_file(&tool),
        format!(
            "{}DISABLE_LEGACY_ENDPOINTS=false\n",
            env_with("true", "true")
        )
    );
    let c = collections(&tool);
    assert_eq!(c["nutrition_questionnaire_submissions"], 24);
    assert_eq!(c["follow_up_submissions"], 20);
    assert_eq!(status(&tool)["phase"], 3);

    // The incident script: one JSON object, exit 0, well under a second.
    let started = Instant::now();
    let (code, stdout, stderr) = run(&tool, &["rollback", "--phase", "3", "--yes", "--json"]);
    let took = started.elapsed();
    assert_eq!(code, Some(0), "{stderr}");
    let out = json(&stdout);
    assert_eq!(out["changes"][0]["key"], "USE_CLIENT_DRAWER_READ");
    assert_eq!(out["changes"][0]["new"], "false");
    eprintln!(
        "rollback --phase 3 on {}: {:.3} s wall clock, {:.3} s of tool time",
        tool.store.split(':').next().unwrap(),
        took.as_secs_f64(),
        out["seconds"].as_f64().unwrap()
    );
    assert_eq!(
        env_file(&tool),
        format!(
            "{}DISABLE_LEGACY_ENDPOINTS=false\n",
            env_with("true", "false")
        )
    );
    let s = status(&tool);
    assert_eq!(s["phase"], 2);
    assert_eq!(s["flags"]["USE_CLIENT_DRAWER_READ"], false);

    // Phase 2 back: the store is the one the migration started from.
    tool.ok(&["rollback", "--phase", "2", "--yes"]);
    let after = data(export(&tool, "after"));
    assert_eq!(
        after.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>(),
        before.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>()
    );
    for ((name, got), (_, want)) in after.iter().zip(&before) {
        assert!(got == want, "{name} differs after rollback --phase 2");
    }
    let s = status(&tool);
    assert_eq!(s["phase"], 1, "{s}");
    assert_eq!(s["phase2"]["rolled_back"], true);
    assert!(!gate(&s, "phase2_validated"));

    // Phase 1 back.
    tool.ok(&["rollback", "--phase", "1", "--yes"]);
    assert_eq!(
        env_file(&tool),
        format!(
            "{}DISABLE_LEGACY_ENDPOINTS=false\n",
            env_with("false", "false")
        )
    );
    let s = status(&tool);
    assert_eq!(s["phase"], 0);
    assert_eq!(s["next"], "edn-migrate phase1 enable");
    // Undoing phases not in effect changes nothing: the back-out script of
    // the runbook can run again after a failure.
    let settled = env_file(&tool);
    for phase in ["4", "3", "2", "1"] {
        tool.ok(&["rollback", "--phase", phase, "--yes"]);
    }
    assert_eq!(env_file(&tool), settled);
    assert_eq!(data(export(&tool, "again")), before);
    assert_eq!(status(&tool)["phase"], 0);
    let commands: Vec<String> = runs(&tool)
        .iter()
        .map(|r| r["command"].as_str().unwrap().to_string())
        .collect();
    for c in [
        "phase1 enable",
        "phase1 dual-write-check",
        "phase3 switch",
        "phase4 cleanup",
        "rollback --phase 4",
        "rollback --phase 3",
        "rollback --phase 2",
        "rollback --phase 1",
    ] {
        assert!(
            commands.iter().any(|x| x == c),
            "{c} not recorded: {commands:?}"
        );
    }
}

fn dual_write_check_judges_the_fixtures(tool: Tool) {
    imported(&tool);
    tool.ok(&["phase0", "prepare"]);
    // Good: U21–U23's questionnaires and U22's follow-up, dual-written verbatim.
    let good = json(&tool.ok(&[
        "phase1",
        "dual-write-check",
        "--since",
        "2026-10-01",
        "--json",
    ]));
    assert_eq!(good["passed"], true);
    assert_eq!(good["counts"]["checked"], 4);
    assert_eq!(good["match_rate"], 1.0);
    assert_eq!(good["telemetry"]["total_drawers"], 4);
    assert_eq!(good["telemetry"]["total_shared_questionnaires"], 5);
    assert_eq!(good["telemetry"]["avg_questionnaires_per_drawer"], 1.25);
    assert_eq!(collections(&tool)["client_drawers"], 4);
    // Without --since or a recorded enable: from the earliest dual-write
    // entry (U15, 2025-11-12), which takes in U15's follow-up that
    // dual-write never wrote.
    let (code, stdout, _) = run(&tool, &["phase1", "dual-write-check", "--json"]);
    assert_eq!(code, Some(3));
    let gap = json(&stdout);
    assert_eq!(gap["since"], "2025-11-12T19:55:10Z");
    assert_eq!(gap["counts"]["missing"], 1);
    assert_eq!(gap["missing"][0]["id"], "followup_1765569600000001");
    // Broken: a type changed in U21's raw_payload, U22's follow-up entry lost.
    let dir = tool.path("drawers");
    tool.ok(&["export", dir.to_str().unwrap()]);
    let file = dir.join(&tool.drawer_db).join("client_drawers.jsonl");
    let mut lines: Vec<Value> = fs::read_to_string(&file)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for d in &mut lines {
        let user = d["user_id"].as_str().unwrap().to_string();
        let shared = d["services"]["shared_questionnaires"]
            .as_array_mut()
            .unwrap();
        if user == "1790000000000421" {
            shared[0]["raw_payload"]["responses"]["edad"] = Value::from(41);
        }
        if user == "1790100000000422" {
            shared.truncate(1);
        }
    }
    let patch = tool.path("patch");
    fs::create_dir_all(patch.join(&tool.drawer_db)).unwrap();
    let text: String = lines.iter().map(|d| format!("{d}\n")).collect();
    fs::write(
        patch.join(&tool.drawer_db).join("client_drawers.jsonl"),
        text,
    )
    .unwrap();
    tool.ok(&["import", "--upsert", patch.to_str().unwrap()]);
    let (code, stdout, stderr) = run(
        &tool,
        &[
            "phase1",
            "dual-write-check",
            "--since",
            "2026-10-01",
            "--json",
        ],
    );
    assert_eq!(code, Some(3), "{stderr}");
    assert!(stderr.contains("below the threshold"), "{stderr}");
    let broken = json(&stdout);
    assert_eq!(broken["passed"], false);
    assert_eq!(broken["match_rate"], 0.5);
    assert_eq!(broken["mismatches"][0]["id"], "submission_1791194400000001");
    assert_eq!(
        broken["mismatches"][0]["what"][0],
        "raw_payload.responses.edad: an int32 where the legacy document has a string"
    );
    assert_eq!(broken["missing"][0]["id"], "followup_1794337200000001");
    assert!(
        !stdout.contains("example.com") && !stdout.contains("\"41\""),
        "values leaked: {stdout}"
    );
    // A lower threshold passes the same data; every check is recorded.
    let lenient = json(&tool.ok(&[
        "phase1",
        "dual-write-check",
        "--since",
        "2026-10-01",
        "--min-match",
        "50",
        "--json",
    ]));
    assert_eq!(lenient["passed"], true);
    assert_eq!(collections(&tool)["migration_runs"], 4);
    let out = tool.path("validations");
    tool.ok(&["export", out.to_str().unwrap()]);
    let records = fs::read_to_string(
        out.join(&tool.drawer_db)
            .join("dual_write_validations.jsonl"),
    )
    .unwrap();
    assert_eq!(
        records.lines().count(),
        4 + 6 + 4 + 4,
        "one record per document checked"
    );
    assert_eq!(
        records
            .lines()
            .filter(|l| l.contains("\"match\":false"))
            .count(),
        1 + 2 + 2
    );
}

fn phase3_status_judges_jobs_by_mode(tool: Tool) {
    imported(&tool);
    let good = json(&tool.ok(&["phase3", "status", "--since", "2026-11-01", "--json"]));
    assert_eq!(good["window"]["to_be_jobs"], 20);
    assert_eq!(good["window"]["to_be_completed"], 19);
    assert_eq!(good["window"]["as_is_jobs"], 0);
    assert_eq!(good["healthy"], true);
    assert_eq!(good["feature_flags"]["USE_CLIENT_DRAWER_READ"], false);
    let wider = json(&tool.ok(&["phase3", "status", "--since", "2026-10-01", "--json"]));
    assert_eq!(wider["window"]["as_is_jobs"], 3);
    assert_eq!(wider["window"]["as_is_completed"], 2);
    // The last 24 h of the fixtures hold nothing: no TO BE job is no verdict.
    let (code, _, stderr) = run(&tool, &["phase3", "status"]);
    assert_eq!(code, Some(3), "{stderr}");
    assert!(stderr.contains("no TO BE job"), "{stderr}");
    // One more failed job: 19 of 21 (90.5 %), under 95 %.
    let failed = |n: usize| -> String {
        (0..n)
            .map(|i| {
                format!(
                    "{{\"_id\":\"job_failed_{i}\",\"user_id\":\"1730102400123401\",\"client_drawer_id\":\"client_1730102400123401\",\"type\":\"full_plan\",\"status\":\"failed\",\"created_at\":{{\"$date\":\"2026-11-24T1{i}:00:00Z\"}}}}\n"
                )
            })
            .collect()
    };
    let patch = tool.path("jobs");
    fs::create_dir_all(patch.join(&tool.legacy_db)).unwrap();
    fs::write(
        patch.join(&tool.legacy_db).join("generation_jobs.jsonl"),
        failed(1),
    )
    .unwrap();
    tool.ok(&["import", "--upsert", patch.to_str().unwrap()]);
    let (code, stdout, stderr) = run(
        &tool,
        &["phase3", "status", "--since", "2026-11-01", "--json"],
    );
    assert_eq!(code, Some(3));
    let low = json(&stdout);
    assert_eq!(
        (
            low["healthy"].as_bool(),
            low["rollback_recommended"].as_bool()
        ),
        (Some(false), Some(false))
    );
    assert!(!stderr.contains("rollback recommended"), "{stderr}");
    // Three: 19 of 23 (82.6 %): the plan says roll back.
    fs::write(
        patch.join(&tool.legacy_db).join("generation_jobs.jsonl"),
        failed(3),
    )
    .unwrap();
    tool.ok(&["import", "--upsert", patch.to_str().unwrap()]);
    let (code, stdout, stderr) = run(&tool, &["phase3", "status", "--since", "2026-11-01"]);
    assert_eq!(code, Some(3));
    assert!(
        stdout.contains("rollback recommended") && stdout.contains("rollback --phase 3 --yes"),
        "{stdout}"
    );
    assert!(stderr.contains("rollback recommended"), "{stderr}");
}

fn flag_changes_and_restarts_are_recorded(tool: Tool) {
    imported(&tool);
    tool.ok(&["phase0", "prepare"]);
    let ok = json(&tool.ok(&[
        "phase1",
        "enable",
        "--restart-cmd",
        "echo restarted",
        "--json",
    ]));
    assert_eq!(ok["restart"]["exit_code"], 0);
    let record = last_run(&tool, "phase1 enable");
    assert_eq!(record["outcome"], "succeeded");
    let change = &record["summary"]["changes"][0];
    assert_eq!(
        (&change["key"], &change["old"], &change["new"]),
        (
            &Value::from("USE_CLIENT_DRAWER_WRITE"),
            &Value::from("false"),
            &Value::from("true")
        )
    );
    assert_eq!(record["summary"]["restart"]["command"], "echo restarted");
    // A failed restart: the flag is changed, the run says so, exit 1.
    let err = expect(
        &tool,
        &[
            "rollback",
            "--phase",
            "1",
            "--yes",
            "--restart-cmd",
            "exit 7",
        ],
        1,
    );
    assert!(
        err.contains("restart failed") && err.contains("phase1 enable"),
        "{err}"
    );
    assert_eq!(env_file(&tool), ENV);
    let record = last_run(&tool, "rollback --phase 1");
    assert_eq!(record["outcome"], "failed");
    assert_eq!(record["summary"]["restart"]["exit_code"], 7);
    assert_eq!(record["summary"]["changes"][0]["new"], "false");
    // Read-only .env: refused, untouched, nothing recorded as done.
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(tool.path(".env"), fs::Permissions::from_mode(0o444)).unwrap();
    let err = expect(&tool, &["phase1", "enable"], 1);
    assert!(err.contains("read-only"), "{err}");
    assert_eq!(env_file(&tool), ENV);
    assert_eq!(last_run(&tool, "phase1 enable")["outcome"], "failed");
}

fn status_names_the_lock_holder(tool: Tool) {
    imported(&tool);
    let locks = tool.path("locks");
    fs::create_dir_all(locks.join(&tool.drawer_db)).unwrap();
    fs::write(
        locks.join(&tool.drawer_db).join("migration_lock.jsonl"),
        r#"{"_id":"phase2","owner":"ops-host:4242","run_id":"run-other","acquired_at":{"$date":"2026-01-01T00:00:00Z"},"heartbeat_at":{"$date":"2099-01-01T00:00:00Z"},"expires_at":{"$date":"2099-01-01T00:05:00Z"},"released":false}
"#,
    )
    .unwrap();
    tool.ok(&["import", locks.to_str().unwrap()]);
    let s = status(&tool);
    assert_eq!(s["lock"]["owner"], "ops-host:4242");
    assert_eq!(s["lock"]["run_id"], "run-other");
    assert_eq!(s["lock"]["expired"], false);
    // Phase 4 takes the same lock: refused while another run holds it.
    let err = expect(
        &tool,
        &["phase4", "cleanup", "--yes", "--force", "--reason", "t"],
        4,
    );
    assert!(err.contains("ops-host:4242"), "{err}");
    assert_eq!(env_file(&tool), ENV, "nothing changed");
}

fn rollback_4_refuses_over_a_recreated_collection(tool: Tool) {
    imported(&tool);
    tool.ok(&["phase0", "prepare"]);
    tool.ok(&["phase4", "cleanup", "--yes", "--force", "--reason", "test"]);
    // The backend wrote a questionnaire after the cleanup: the name exists again.
    let patch = tool.path("late");
    fs::create_dir_all(patch.join(&tool.legacy_db)).unwrap();
    fs::write(
        patch
            .join(&tool.legacy_db)
            .join("nutrition_questionnaire_submissions.jsonl"),
        "{\"_id\":\"submission_late\",\"user_id\":\"1730102400123401\"}\n",
    )
    .unwrap();
    tool.ok(&["import", patch.to_str().unwrap()]);
    let err = expect(&tool, &["rollback", "--phase", "4", "--yes"], 3);
    assert!(
        err.contains("nutrition_questionnaire_submissions (1 documents)")
            && err.contains("_DEPRECATED_"),
        "{err}"
    );
    let s = status(&tool);
    assert_eq!(s["phase"], 4, "nothing was renamed back");
    assert_eq!(s["flags"]["DISABLE_LEGACY_ENDPOINTS"], true);
}

/// `phase4 cleanup --drop-expired` drops only the deprecated copies past the
/// 30-day retention, and only when confirmed; the drop is recorded.
fn drop_expired_drops_only_what_is_past_the_retention(tool: Tool) {
    imported(&tool);
    tool.ok(&["phase0", "prepare"]);
    let today = chrono::Utc::now().format("%Y%m%d").to_string();
    let old = "follow_up_submissions_DEPRECATED_20250101";
    let recent = format!("nutrition_questionnaire_submissions_DEPRECATED_{today}");
    let patch = tool.path("deprecated");
    fs::create_dir_all(patch.join(&tool.legacy_db)).unwrap();
    for name in [old, recent.as_str()] {
        fs::write(
            patch.join(&tool.legacy_db).join(format!("{name}.jsonl")),
            "{\"_id\":\"kept_for_30_days\"}\n",
        )
        .unwrap();
    }
    tool.ok(&["import", patch.to_str().unwrap()]);
    let legacy = |name: &str| -> Vec<String> {
        export(&tool, name)
            .into_iter()
            .map(|(n, _)| n)
            .filter(|n| n.contains("_DEPRECATED_"))
            .collect()
    };
    let both = legacy("before");
    assert_eq!(both.len(), 2, "{both:?}");

    // Without --yes (and no terminal): refused, nothing dropped.
    let err = expect(&tool, &["phase4", "cleanup", "--drop-expired"], 2);
    assert!(err.contains(old) && err.contains("--yes"), "{err}");
    assert_eq!(legacy("refused"), both);

    let out = json(&tool.ok(&["phase4", "cleanup", "--drop-expired", "--yes", "--json"]));
    assert_eq!(out["dropped"], serde_json::json!([old]), "{out}");
    let left = legacy("after");
    assert_eq!(
        left,
        vec![format!("{}/{recent}.jsonl", tool.legacy_db)],
        "the recent copy is kept"
    );
    let record = last_run(&tool, "phase4 cleanup --drop-expired");
    assert_eq!(record["outcome"], "succeeded");
    assert_eq!(record["summary"]["dropped"], serde_json::json!([old]));
    // Again: nothing is old enough, and it says what it keeps.
    let again = tool.ok(&["phase4", "cleanup", "--drop-expired", "--yes"]);
    assert!(
        again.contains("nothing is older than 30 days") && again.contains(&recent),
        "{again}"
    );
}

/// The switch wants a verified backup younger than 24 h: with the only
/// backup 25 h old it is refused (exit 3, `.env` untouched) naming the gate
/// and `phase2 backup`; a fresh backup lets it through.
fn the_switch_wants_a_backup_younger_than_24_hours(tool: Tool) {
    imported(&tool);
    tool.ok(&["phase0", "prepare"]);
    tool.ok(&["phase1", "enable"]);
    tool.ok(&["phase1", "dual-write-check", "--since", "2026-10-01"]);
    tool.ok(&["phase2", "backup"]);
    tool.ok(&["phase2", "migrate", "all"]);
    tool.ok(&["phase2", "validate"]);
    let backups: Vec<_> = fs::read_dir(tool.path("backups"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(backups.len(), 1, "{backups:?}");
    let manifest = backups[0].join("manifest.json");
    let mut m: Value = serde_json::from_str(&fs::read_to_string(&manifest).unwrap()).unwrap();
    let old = chrono::Utc::now() - chrono::Duration::hours(25);
    m["created_at"] = old.format("%Y-%m-%dT%H:%M:%SZ").to_string().into();
    fs::write(&manifest, serde_json::to_string_pretty(&m).unwrap()).unwrap();

    let s = status(&tool);
    assert!(!gate(&s, "backup_recent"), "{s}");
    assert!(gate(&s, "phase2_validated"), "{s}");
    let err = expect(&tool, &["phase3", "switch", "--yes"], 3);
    assert!(
        err.contains("backup_recent")
            && err.contains("more than 24 h")
            && err.contains("phase2 backup"),
        "{err}"
    );
    assert_eq!(env_file(&tool), env_with("true", "false"));

    tool.ok(&["phase2", "backup"]);
    assert!(gate(&status(&tool), "backup_recent"));
    tool.ok(&["phase3", "switch", "--yes"]);
    assert_eq!(env_file(&tool), env_with("true", "true"));
}

mod sqlite {
    use super::*;

    #[test]
    fn walk_the_plan_and_back() {
        super::walk_the_plan_and_back(Tool::sqlite());
    }
    #[test]
    fn dual_write_check_judges_the_fixtures() {
        super::dual_write_check_judges_the_fixtures(Tool::sqlite());
    }
    #[test]
    fn phase3_status_judges_jobs_by_mode() {
        super::phase3_status_judges_jobs_by_mode(Tool::sqlite());
    }
    #[test]
    fn flag_changes_and_restarts_are_recorded() {
        super::flag_changes_and_restarts_are_recorded(Tool::sqlite());
    }
    #[test]
    fn rollback_4_refuses_over_a_recreated_collection() {
        super::rollback_4_refuses_over_a_recreated_collection(Tool::sqlite());
    }
    #[test]
    fn status_names_the_lock_holder() {
        super::status_names_the_lock_holder(Tool::sqlite());
    }
    #[test]
    fn drop_expired_drops_only_what_is_past_the_retention() {
        super::drop_expired_drops_only_what_is_past_the_retention(Tool::sqlite());
    }
    #[test]
    fn the_switch_wants_a_backup_younger_than_24_hours() {
        super::the_switch_wants_a_backup_younger_than_24_hours(Tool::sqlite());
    }
}

mod mongo_wire {
    use super::*;

    #[test]
    fn walk_the_plan_and_back() {
        if let Some(tool) = Tool::wire("orch") {
            super::walk_the_plan_and_back(tool);
        }
    }
    #[test]
    fn dual_write_check_judges_the_fixtures() {
        if let Some(tool) = Tool::wire("dwc") {
            super::dual_write_check_judges_the_fixtures(tool);
        }
    }
    #[test]
    fn phase3_status_judges_jobs_by_mode() {
        if let Some(tool) = Tool::wire("p3s") {
            super::phase3_status_judges_jobs_by_mode(tool);
        }
    }
    #[test]
    fn flag_changes_and_restarts_are_recorded() {
        if let Some(tool) = Tool::wire("flags") {
            super::flag_changes_and_restarts_are_recorded(tool);
        }
    }
    #[test]
    fn rollback_4_refuses_over_a_recreated_collection() {
        if let Some(tool) = Tool::wire("rb4") {
            super::rollback_4_refuses_over_a_recreated_collection(tool);
        }
    }
    #[test]
    fn status_names_the_lock_holder() {
        if let Some(tool) = Tool::wire("lock") {
            super::status_names_the_lock_holder(tool);
        }
    }
    #[test]
    fn drop_expired_drops_only_what_is_past_the_retention() {
        if let Some(tool) = Tool::wire("expired") {
            super::drop_expired_drops_only_what_is_past_the_retention(tool);
        }
    }
    #[test]
    fn the_switch_wants_a_backup_younger_than_24_hours() {
        if let Some(tool) = Tool::wire("old_backup") {
            super::the_switch_wants_a_backup_younger_than_24_hours(tool);
        }
    }
}
