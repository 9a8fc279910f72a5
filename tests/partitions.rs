//! N workers on the N partitions of one migration (`--partition I/N`), as
//! real processes, on the embedded store and on the MongoDB backend over the
//! wire test server: running at once to the result of one `all` run, the
//! same partition refused twice (exit 4), another N refused while partitions
//! are unfinished (exit 3), `status` and the phase 3 gate that wait for
//! every partition, and a killed worker resumed alone.

mod common;

use common::exports::{assert_same, normalized};
use common::tool::{json, tree, Tool};
use serde_json::Value;
use std::fs;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

/// Users in the fixtures (fixtures/README.md: U01–U23).
const USERS: u64 = 23;

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

/// The export of a store where one `phase2 migrate all` ran.
fn expected_export(reference: &Tool) -> Vec<(String, String)> {
    prepared(reference);
    reference.ok(&["phase2", "migrate", "all"]);
    normalized(export(reference, "expected"))
}

fn status(tool: &Tool) -> Value {
    json(&tool.ok(&["status", "--json"]))
}

fn gate(status: &Value, name: &str) -> Value {
    status["gates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["name"] == name)
        .unwrap_or_else(|| panic!("no gate {name} in {status}"))
        .clone()
}

fn partition_state(status: &Value, i: usize) -> Value {
    status["phase2"]["partitioning"]["partitions"][i].clone()
}

fn spawn(tool: &Tool, args: &[&str]) -> Child {
    tool.command(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits for a child; its exit code, stdout and stderr.
fn finish(child: Child) -> (Option<i32>, String, String) {
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The run records of `command` (a prefix), oldest first.
fn runs(tool: &Tool, name: &str, command: &str) -> Vec<Value> {
    let dir = tool.path(name);
    tool.ok(&["export", dir.to_str().unwrap()]);
    let text = fs::read_to_string(dir.join(&tool.drawer_db).join("migration_runs.jsonl")).unwrap();
    let mut runs: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|r| {
            r["command"]
                .as_str()
                .is_some_and(|c| c.starts_with(command))
        })
        .collect();
    runs.sort_by_key(|r| r["started_at"].as_str().unwrap_or_default().to_string());
    runs
}

/// Polls `status` until `ready` holds (a worker has reached some point).
fn wait_for(tool: &Tool, what: &str, ready: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let s = status(tool);
        if ready(&s) {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {s}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn workers_on_every_partition_at_once_give_the_result_of_all(reference: Tool, tool: Tool, n: u32) {
    let expected = expected_export(&reference);
    prepared(&tool);
    let names: Vec<String> = (0..n).map(|i| format!("{i}/{n}")).collect();
    // Slowed to about a second each, so the workers overlap for certain.
    let children: Vec<Child> = names
        .iter()
        .map(|p| {
            spawn(
                &tool,
                &[
                    "phase2",
                    "migrate",
                    "all",
                    "--json",
                    "--partition",
                    p,
                    "--batch-size",
                    "2",
                    "--max-rate",
                    "120",
                ],
            )
        })
        .collect();
    let mut users = 0;
    for (p, child) in names.iter().zip(children) {
        let (code, stdout, stderr) = finish(child);
        assert_eq!(code, Some(0), "partition {p}: {stderr}");
        let out = json(&stdout);
        assert_eq!(out["outcome"], "succeeded", "{out}");
        assert_eq!(out["partition"], p.as_str());
        users += out["users"].as_u64().unwrap();
    }
    assert_eq!(users, USERS, "the partitions split the users, none twice");
    let records = runs(&tool, "runs", "phase2 migrate");
    assert_eq!(records.len(), n as usize);
    let latest_start = records
        .iter()
        .map(|r| r["started_at"].as_str().unwrap())
        .max();
    let earliest_end = records
        .iter()
        .map(|r| r["ended_at"].as_str().unwrap())
        .min();
    assert!(
        latest_start < earliest_end,
        "the workers ran at the same time: {records:?}"
    );
    assert_same(&normalized(export(&tool, "partitioned")), &expected);

    let s = status(&tool);
    assert_eq!(s["phase2"]["migrated"], true, "{}", s["phase2"]);
    assert_eq!(s["phase2"]["partitioning"]["n"], n);
    assert_eq!(s["phase2"]["partitioning"]["done"], true);
    for i in 0..n {
        let (code, _, stderr) = finish(spawn(
            &tool,
            &["phase2", "validate", "--partition", &names[i as usize]],
        ));
        assert_eq!(code, Some(0), "validate {}: {stderr}", names[i as usize]);
        let g = gate(&status(&tool), "phase2_validated");
        if i + 1 < n {
            assert_eq!(g["ok"], false, "partition {i} validated only: {g}");
            assert!(
                g["why"]
                    .as_str()
                    .unwrap()
                    .contains(&format!("{}/{n}", n - 1)),
                "names a partition not validated yet: {g}"
            );
        } else {
            assert_eq!(g["ok"], true, "every partition validated: {g}");
        }
    }
}

/// A live lease of partition 0/2 held by a worker on another host.
fn hold_partition_lease(tool: &Tool) {
    let locks = tool.path("locks");
    let db = locks.join(&tool.drawer_db);
    fs::create_dir_all(&db).unwrap();
    fs::write(
        db.join("migration_lock.jsonl"),
        r#"{"_id":"phase2:0/2","owner":"ops-host:4242","run_id":"run-other","acquired_at":{"$date":"2026-01-01T00:00:00Z"},"heartbeat_at":{"$date":"2099-01-01T00:00:00Z"},"expires_at":{"$date":"2099-01-01T00:05:00Z"},"released":false}
"#,
    )
    .unwrap();
    tool.ok(&["import", locks.to_str().unwrap()]);
}

fn a_held_partition_excludes_itself_and_whole_store_work_only(tool: Tool) {
    prepared(&tool);
    hold_partition_lease(&tool);
    let out = tool.run(&["phase2", "migrate", "all", "--partition", "0/2"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(
        stderr.contains("phase2:0/2")
            && stderr.contains("ops-host:4242")
            && stderr.contains("--break-lock"),
        "{stderr}"
    );
    let s = status(&tool);
    assert!(
        s["locks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["name"] == "phase2:0/2" && l["owner"] == "ops-host:4242"),
        "status names the partition's holder: {}",
        s["locks"]
    );
    let text = tool.ok(&["status"]);
    assert!(
        text.contains("lock phase2:0/2: held by ops-host:4242"),
        "{text}"
    );

    // The other partition runs alongside.
    let out = json(&tool.ok(&["phase2", "migrate", "all", "--partition", "1/2", "--json"]));
    assert_eq!(out["outcome"], "succeeded");

    // Whole-store work, and a partition of another N, wait for it.
    for args in [
        vec!["phase2", "migrate", "all"],
        vec!["phase2", "migrate", "all", "--partition", "0/3"],
        vec!["phase2", "validate"],
        vec!["rollback", "--phase", "2", "--yes"],
    ] {
        let out = tool.run(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(4), "{args:?}: {stderr}");
        assert!(stderr.contains("ops-host:4242"), "{args:?}: {stderr}");
    }
    assert_eq!(status(&tool)["phase2"]["migrated"], false);

    // The holder is dead: --break-lock takes its partition over, and says so.
    let out = json(&tool.ok(&[
        "phase2",
        "migrate",
        "all",
        "--partition",
        "0/2",
        "--break-lock",
        "--json",
    ]));
    assert_eq!(out["outcome"], "succeeded");
    let record = runs(&tool, "runs", "phase2 migrate").pop().unwrap();
    assert_eq!(record["partition"], "0/2");
    assert!(
        record["broken_locks"][0]
            .as_str()
            .unwrap()
            .contains("ops-host:4242"),
        "{record}"
    );
    assert_eq!(status(&tool)["phase2"]["migrated"], true);
}

fn the_same_partition_twice_at_once_is_refused(tool: Tool) {
    prepared(&tool);
    let slow = spawn(
        &tool,
        &[
            "phase2",
            "migrate",
            "all",
            "--partition",
            "0/2",
            "--batch-size",
            "1",
            "--max-rate",
            "20",
        ],
    );
    let pid = format!(":{}", slow.id());
    wait_for(&tool, "the first worker to hold its lease", |s| {
        s["locks"]
            .as_array()
            .is_some_and(|l| l.iter().any(|l| l["name"] == "phase2:0/2"))
    });
    let out = tool.run(&["phase2", "migrate", "all", "--partition", "0/2"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(stderr.contains(&pid), "names the running worker: {stderr}");
    let s = status(&tool);
    let running = partition_state(&s, 0);
    assert_eq!(running["state"], "running", "{running}");
    assert!(
        running["holder"].as_str().unwrap().ends_with(&pid),
        "{running}"
    );
    let (code, _, stderr) = finish(slow);
    assert_eq!(code, Some(0), "{stderr}");
}

fn another_n_is_refused_until_every_partition_is_done(tool: Tool) {
    prepared(&tool);
    tool.ok(&["phase2", "migrate", "all", "--partition", "0/2"]);
    let s = status(&tool);
    assert_eq!(s["phase2"]["migrated"], false, "{}", s["phase2"]);
    assert_eq!(partition_state(&s, 0)["state"], "done");
    assert_eq!(partition_state(&s, 1)["state"], "not started");
    let g = gate(&s, "phase2_validated");
    assert_eq!(g["ok"], false);
    assert!(g["why"].as_str().unwrap().contains("1/2"), "{g}");
    let text = tool.ok(&["status"]);
    assert!(
        text.contains("NOT done, 1 of 2 partitions done")
            && !text.contains("last migration succeeded"),
        "{text}"
    );

    for args in [
        vec!["phase2", "migrate", "all", "--partition", "0/3"],
        vec!["phase2", "migrate", "all"],
        vec!["phase2", "migrate", "plans", "--partition", "1/2"],
    ] {
        let out = tool.run(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{args:?}: {stderr}");
        assert!(
            stderr.contains("1/2 (not started)")
                && stderr.contains("--partition 1/2")
                && stderr.contains("rollback --phase 2"),
            "{args:?}: {stderr}"
        );
    }
    assert_eq!(
        runs(&tool, "runs_refused", "phase2 migrate").len(),
        1,
        "a refused run leaves no record"
    );

    tool.ok(&["phase2", "migrate", "all", "--partition", "1/2"]);
    let s = status(&tool);
    assert_eq!(s["phase2"]["migrated"], true, "{}", s["phase2"]);
    assert_eq!(s["phase2"]["partitioning"]["done"], true);

    // Once done, a new partitioning may start; a rollback ends one too.
    tool.ok(&["phase2", "migrate", "all", "--partition", "2/3"]);
    let s = status(&tool);
    assert_eq!(s["phase2"]["partitioning"]["n"], 3);
    assert_eq!(s["phase2"]["migrated"], false);
    tool.ok(&["rollback", "--phase", "2", "--yes"]);
    assert_eq!(status(&tool)["phase2"]["partitioning"], Value::Null);
    tool.ok(&["phase2", "migrate", "all", "--partition", "0/4"]);
}

fn a_killed_worker_is_resumed_alone(reference: Tool, victim: Tool) {
    let expected = expected_export(&reference);
    prepared(&victim);
    let slow = spawn(
        &victim,
        &[
            "phase2",
            "migrate",
            "all",
            "--partition",
            "0/2",
            "--batch-size",
            "1",
            "--max-rate",
            "15",
        ],
    );
    let other = spawn(
        &victim,
        &["phase2", "migrate", "all", "--partition", "1/2", "--json"],
    );
    let (code, stdout, stderr) = finish(other);
    assert_eq!(code, Some(0), "{stderr}");
    let other_users = json(&stdout)["users"].as_u64().unwrap();
    wait_for(&victim, "a checkpoint of partition 0/2", |s| {
        partition_state(s, 0)["checkpoint"]["last_user_id"].is_string()
    });
    let pid = slow.id();
    let mut slow = slow;
    slow.kill().unwrap(); // SIGKILL
    slow.wait().unwrap();

    let s = status(&victim);
    assert_eq!(s["phase2"]["migrated"], false);
    assert_eq!(partition_state(&s, 1)["state"], "done");
    let dead = partition_state(&s, 0);
    assert!(
        dead["holder"]
            .as_str()
            .unwrap()
            .ends_with(&format!(":{pid}")),
        "the dead worker's lease lives until it expires: {dead}"
    );
    let out = victim.run(&["phase2", "migrate", "all", "--partition", "0/2", "--resume"]);
    assert_eq!(
        out.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let done = json(&victim.ok(&[
        "phase2",
        "migrate",
        "all",
        "--partition",
        "0/2",
        "--resume",
        "--break-lock",
        "--json",
    ]));
    assert_eq!(done["outcome"], "succeeded");
    assert_eq!(done["resumed_from"], dead["run_id"], "{done}");
    assert!(
        done["users"].as_u64().unwrap() < USERS - other_users,
        "resumed after the checkpoint, not from the beginning: {done}"
    );
    assert_same(&normalized(export(&victim, "resumed")), &expected);
    assert_eq!(status(&victim)["phase2"]["migrated"], true);
}

mod sqlite {
    use super::*;

    #[test]
    fn two_workers_at_once_give_the_result_of_all() {
        super::workers_on_every_partition_at_once_give_the_result_of_all(
            Tool::sqlite(),
            Tool::sqlite(),
            2,
        );
    }
    #[test]
    fn a_held_partition_excludes_itself_and_whole_store_work_only() {
        super::a_held_partition_excludes_itself_and_whole_store_work_only(Tool::sqlite());
    }
    #[test]
    fn the_same_partition_twice_at_once_is_refused() {
        super::the_same_partition_twice_at_once_is_refused(Tool::sqlite());
    }
    #[test]
    fn another_n_is_refused_until_every_partition_is_done() {
        super::another_n_is_refused_until_every_partition_is_done(Tool::sqlite());
    }
    #[test]
    fn a_killed_worker_is_resumed_alone() {
        super::a_killed_worker_is_resumed_alone(Tool::sqlite(), Tool::sqlite());
    }
}

mod mongo_wire {
    use super::*;

    #[test]
    fn two_workers_at_once_give_the_result_of_all() {
        if let (Some(r), Some(t)) = (Tool::wire("pt2ref"), Tool::wire("pt2")) {
            super::workers_on_every_partition_at_once_give_the_result_of_all(r, t, 2);
        }
    }
    #[test]
    fn three_workers_at_once_give_the_result_of_all() {
        if let (Some(r), Some(t)) = (Tool::wire("pt3ref"), Tool::wire("pt3")) {
            super::workers_on_every_partition_at_once_give_the_result_of_all(r, t, 3);
        }
    }
    #[test]
    fn a_held_partition_excludes_itself_and_whole_store_work_only() {
        if let Some(tool) = Tool::wire("pthold") {
            super::a_held_partition_excludes_itself_and_whole_store_work_only(tool);
        }
    }
    #[test]
    fn the_same_partition_twice_at_once_is_refused() {
        if let Some(tool) = Tool::wire("pttwice") {
            super::the_same_partition_twice_at_once_is_refused(tool);
        }
    }
    #[test]
    fn another_n_is_refused_until_every_partition_is_done() {
        if let Some(tool) = Tool::wire("ptn") {
            super::another_n_is_refused_until_every_partition_is_done(tool);
        }
    }
    #[test]
    fn a_killed_worker_is_resumed_alone() {
        if let (Some(r), Some(v)) = (Tool::wire("ptkref"), Tool::wire("ptkill")) {
            super::a_killed_worker_is_resumed_alone(r, v);
        }
    }
}
