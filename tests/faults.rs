//! Transient faults on the way to MongoDB: dropped connections (after the
//! server ran the command, so the reply is lost) and retryable error codes.
//! `phase2 migrate all` through a wire test server injecting them must end
//! in the same state as a clean run; an outage longer than the retries stops
//! the run (exit 1) at its checkpoint, and `--resume` finishes the job.

mod common;

use bson::doc;
use common::tool::{json, tree, Tool};
use serde_json::Value;

fn export(tool: &Tool, name: &str) -> Vec<(String, Vec<u8>)> {
    let dir = tool.path(name);
    tool.ok(&["export", dir.to_str().unwrap()]);
    tree(&dir)
}

/// An export without what legitimately differs between two runs (run ids,
/// clocks, the run records and the lock), its files named without their
/// database folder: the runs compared use databases of different names.
fn normalized(files: Vec<(String, Vec<u8>)>) -> Vec<(String, String)> {
    common::exports::normalized(files)
        .into_iter()
        .map(|(name, text)| (name.rsplit('/').next().unwrap().to_string(), text))
        .collect()
}

fn prepared(tool: &Tool) {
    let dir = tool.fixtures();
    tool.ok(&["import", dir.to_str().unwrap()]);
    tool.ok(&["phase0", "prepare"]);
    tool.ok(&["phase2", "backup"]);
}

fn set_faults(url: &str, faults: bson::Document) -> i64 {
    fault_reply(url, faults).get_i64("injected").unwrap()
}

/// Sets the schedule; the reply counts the faults injected and the commands
/// run since the previous call.
fn fault_reply(url: &str, faults: bson::Document) -> bson::Document {
    let client = mongodb::sync::Client::with_uri_str(url).unwrap();
    let mut command = doc! { "ednFaults": 1 };
    command.extend(faults);
    client.database("admin").run_command(command).run().unwrap()
}

/// The newest `phase2 migrate` run record and the lock, from an export.
fn run_and_lock(tool: &Tool, name: &str) -> (Value, Value) {
    let dir = tool.path(name);
    tool.ok(&["export", dir.to_str().unwrap()]);
    let read = |file: &str| -> Vec<Value> {
        std::fs::read_to_string(dir.join(&tool.drawer_db).join(file))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let mut runs: Vec<Value> = read("migration_runs.jsonl")
        .into_iter()
        .filter(|r| r["command"] == "phase2 migrate all")
        .collect();
    runs.sort_by_key(|r| r["started_at"].as_str().unwrap_or_default().to_string());
    let lock = read("migration_lock.jsonl").remove(0);
    (runs.pop().expect("a migrate run"), lock)
}

#[test]
fn migrate_through_dropped_connections_and_retryable_errors_ends_as_a_clean_run() {
    let Some(reference) = Tool::wire("fault_ref") else {
        return;
    };
    prepared(&reference);
    reference.ok(&["phase2", "migrate", "all", "--batch-size", "5"]);
    let expected = normalized(export(&reference, "expected"));

    let Some(server) = common::wire::dedicated(&[]) else {
        return;
    };
    let victim = Tool {
        store: server.url.clone(),
        legacy_db: "fault_l".into(),
        drawer_db: "fault_d".into(),
        work: tempfile::tempdir().unwrap(),
    };
    prepared(&victim);
    set_faults(
        &server.url,
        doc! { "dropEvery": 7, "errorEvery": 11, "errorCode": 91 },
    );
    let out = victim.run(&["phase2", "migrate", "all", "--batch-size", "5", "--json"]);
    let injected = set_faults(&server.url, doc! { "dropEvery": 0, "errorEvery": 0 });
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the run survives the faults: {stderr}"
    );
    assert!(injected >= 10, "faults were injected: {injected}");
    let summary = json(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(summary["outcome"], "succeeded");
    assert_eq!(normalized(export(&victim, "faulted")), expected);
}

/// The server answers every command with a retryable error for longer than
/// the tool's bounded retries (about 6.3 s of backoff): the run stops with
/// exit 1, recorded as failed with the checkpoint of its last whole batch and
/// the lock released, and `--resume` then ends where a clean run ends.
#[test]
fn an_outage_longer_than_the_retries_stops_at_the_checkpoint_and_resume_finishes() {
    let Some(server) = common::wire::dedicated(&[]) else {
        return;
    };
    let on_server = |l: &str, d: &str| Tool {
        store: server.url.clone(),
        legacy_db: l.into(),
        drawer_db: d.into(),
        work: tempfile::tempdir().unwrap(),
    };
    let reference = on_server("ref_l", "ref_d");
    prepared(&reference);
    fault_reply(&server.url, doc! {});
    let whole = json(&reference.ok(&["phase2", "migrate", "all", "--batch-size", "2", "--json"]));
    let commands = fault_reply(&server.url, doc! {})
        .get_i64("commands")
        .unwrap();
    let expected = normalized(export(&reference, "expected"));

    let victim = on_server("out_l", "out_d");
    prepared(&victim);
    // Halfway through the same run, the server fails everything for 8 s.
    fault_reply(
        &server.url,
        doc! { "outageAfter": commands / 2, "outageMs": 8000, "errorCode": 89 },
    );
    let out = victim.run(&["phase2", "migrate", "all", "--batch-size", "2"]);
    let injected = set_faults(&server.url, doc! { "outageAfter": 0 });
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(injected > 6, "the outage outlasted the retries: {injected}");
    assert_eq!(
        out.status.code(),
        Some(1),
        "exit 1 after the retries: {stderr}"
    );
    assert!(stderr.contains("--resume"), "says how to go on: {stderr}");

    let (failed, lock) = run_and_lock(&victim, "after_outage");
    assert_eq!(failed["outcome"], "failed", "{failed}");
    assert!(
        failed["checkpoint"]["last_user_id"].is_string(),
        "the checkpoint of the batches before the outage is kept: {failed}"
    );
    assert_eq!(
        lock["released"], true,
        "no held lock after the failure: {lock}"
    );

    let done = json(&victim.ok(&["phase2", "migrate", "all", "--resume", "--json"]));
    assert_eq!(done["outcome"], "succeeded", "{done}");
    assert_eq!(done["resumed_from"], failed["_id"], "{done}");
    assert!(
        done["users"].as_u64().unwrap() < whole["users"].as_u64().unwrap(),
        "resumed after the checkpoint, not from the start: {done}"
    );
    assert_eq!(normalized(export(&victim, "resumed")), expected);
}

/// `import` (ordered batches of `insert_many`) through a server that drops
/// the connection after running every second `insert` command: a batch whose reply was
/// lost is retried, meets its own documents as duplicates and goes on after
/// them, so the store ends as a clean import leaves it.
#[test]
fn import_through_lost_replies_ends_as_a_clean_import() {
    let Some(server) = common::wire::dedicated(&[]) else {
        return;
    };
    let on_server = |l: &str, d: &str| Tool {
        store: server.url.clone(),
        legacy_db: l.into(),
        drawer_db: d.into(),
        work: tempfile::tempdir().unwrap(),
    };
    let fixtures = |tool: &Tool| tool.fixtures().to_str().unwrap().to_string();
    let reference = on_server("imp_ref_l", "imp_ref_d");
    reference.ok(&["import", &fixtures(&reference)]);
    let expected = normalized(export(&reference, "expected"));

    let victim = on_server("imp_l", "imp_d");
    set_faults(&server.url, doc! { "dropEvery": 2, "only": "insert" });
    let out = victim.run(&["import", &fixtures(&victim), "--batch-size", "10"]);
    let injected = set_faults(&server.url, doc! { "dropEvery": 0, "only": "" });
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the import survives lost replies: {stderr}"
    );
    assert!(injected >= 3, "faults were injected: {injected}");
    assert_eq!(normalized(export(&victim, "faulted")), expected);
}
