//! Transient faults on the way to MongoDB: dropped connections (after the
//! server ran the command, so the reply is lost) and retryable error codes.
//! `phase2 migrate all` through a wire test server injecting them must end
//! in the same state as a clean run.

mod common;

use bson::doc;
use common::tool::{json, tree, Tool};
use serde_json::Value;

fn export(tool: &Tool, name: &str) -> Vec<(String, Vec<u8>)> {
    let dir = tool.path(name);
    tool.ok(&["export", dir.to_str().unwrap()]);
    tree(&dir)
}

/// An export without what legitimately differs between two runs: run ids,
/// clocks, the run records and the lock.
fn normalized(files: Vec<(String, Vec<u8>)>) -> Vec<(String, String)> {
    fn scrub(v: &mut Value) {
        match v {
            Value::Object(map) => {
                for (k, item) in map.iter_mut() {
                    if ["run_id", "migrated_at", "quarantined_at", "archived_at"]
                        .contains(&k.as_str())
                    {
                        *item = Value::String("<run>".into());
                    } else {
                        scrub(item);
                    }
                }
                if let Some(Value::Object(meta)) = map.get_mut("meta") {
                    if meta.contains_key("migration") {
                        meta.insert("updated_at".into(), Value::String("<run>".into()));
                    }
                }
            }
            Value::Array(items) => items.iter_mut().for_each(scrub),
            _ => {}
        }
    }
    files
        .into_iter()
        .filter(|(name, _)| {
            !name.ends_with("migration_runs.jsonl") && !name.ends_with("migration_lock.jsonl")
        })
        .map(|(name, bytes)| {
            let text = String::from_utf8(bytes).unwrap();
            let lines: Vec<String> = text
                .lines()
                .map(|l| {
                    let mut v: Value = serde_json::from_str(l).unwrap();
                    scrub(&mut v);
                    v.to_string()
                })
                .collect();
            (
                name.rsplit('/').next().unwrap().to_string(),
                lines.join("\n"),
            )
        })
        .collect()
}

fn prepared(tool: &Tool) {
    let dir = tool.fixtures();
    tool.ok(&["import", dir.to_str().unwrap()]);
    tool.ok(&["phase0", "prepare"]);
    tool.ok(&["phase2", "backup"]);
}

fn set_faults(url: &str, faults: bson::Document) -> i64 {
    let client = mongodb::sync::Client::with_uri_str(url).unwrap();
    let mut command = doc! { "ednFaults": 1 };
    command.extend(faults);
    let reply = client.database("admin").run_command(command).run().unwrap();
    reply.get_i64("injected").unwrap()
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
