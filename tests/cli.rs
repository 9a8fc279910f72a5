//! The binary end to end: import, export, phase 0 and status, on the embedded
//! store and on the MongoDB backend through the wire test server.

mod common;

use common::tool::{copy_dir, json, tree, Tool};
use std::fs;
use std::process::Command;

fn round_trip_is_exact(first: Tool, second: Tool) {
    let fixtures = first.fixtures();
    first.ok(&["import", fixtures.to_str().unwrap()]);
    let out1 = first.path("out1");
    first.ok(&["export", out1.to_str().unwrap()]);
    // The fixtures are written as export writes them: nothing may change.
    assert_eq!(
        tree(&out1),
        tree(&fixtures),
        "export differs from the imported files"
    );

    let copy = second.path("copy");
    fs::create_dir_all(&copy).unwrap();
    copy_dir(&out1.join(&first.legacy_db), &copy.join(&second.legacy_db));
    copy_dir(&out1.join(&first.drawer_db), &copy.join(&second.drawer_db));
    second.ok(&["import", copy.to_str().unwrap()]);
    let out2 = second.path("out2");
    second.ok(&["export", out2.to_str().unwrap()]);
    assert_eq!(
        tree(&out2),
        tree(&copy),
        "a second round trip changed the files"
    );
}

fn malformed_lines_import_nothing(tool: Tool) {
    let dir = tool.fixtures();
    let bad = dir.join(&tool.legacy_db).join("training_plans.jsonl");
    let mut text = fs::read_to_string(&bad).unwrap();
    text.push_str("{\"_id\": \"broken\", \"user_id\": \n");
    fs::write(&bad, text).unwrap();
    let out = tool.run(&["import", dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("training_plans.jsonl:33:"),
        "no file:line in {stderr}"
    );
    assert!(stderr.contains("nothing was imported"), "{stderr}");
    let status = json(&tool.ok(&["status", "--json"]));
    assert_eq!(status["collections"]["training_plans"], 0);
    assert_eq!(
        status["collections"]["users"], 0,
        "other files were not imported either"
    );
    // Nor is anything left of the files read before the malformed one.
    let out = tool.path("after");
    tool.ok(&["export", out.to_str().unwrap()]);
    let left: Vec<String> = tree(&out).into_iter().map(|(name, _)| name).collect();
    assert!(left.is_empty(), "left in the store: {left:?}");
}

fn prepare_is_idempotent_and_status_lists_indexes(tool: Tool) {
    let dir = tool.fixtures();
    tool.ok(&["import", dir.to_str().unwrap()]);
    let first = json(&tool.ok(&["phase0", "prepare", "--json"]));
    assert_eq!(first["changed"], true);
    let second = json(&tool.ok(&["phase0", "prepare", "--json"]));
    assert_eq!(
        second["changed"], false,
        "second run must change nothing: {second}"
    );
    let text = tool.ok(&["phase0", "prepare"]);
    assert!(text.contains("nothing to do"), "{text}");

    let status = json(&tool.ok(&["status", "--json"]));
    let mut indexes: Vec<String> = status["indexes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    indexes.sort();
    assert_eq!(
        indexes,
        [
            "meta.active_services_1",
            "services.nutrition.active_1",
            "services.training.active_1",
            "user_id_1"
        ]
    );
    assert_eq!(status["collections"]["client_drawers"], 4);
    assert_eq!(
        status["collections"]["nutrition_questionnaire_submissions"],
        24
    );
    assert!(status["store"].is_string());
}

mod sqlite {
    use super::*;

    #[test]
    fn round_trip_is_exact() {
        super::round_trip_is_exact(Tool::sqlite(), Tool::sqlite());
    }

    #[test]
    fn malformed_lines_import_nothing() {
        super::malformed_lines_import_nothing(Tool::sqlite());
    }

    #[test]
    fn prepare_is_idempotent_and_status_lists_indexes() {
        super::prepare_is_idempotent_and_status_lists_indexes(Tool::sqlite());
    }

    #[test]
    fn importing_twice_names_the_fix() {
        let tool = Tool::sqlite();
        let dir = tool.fixtures();
        tool.ok(&["import", dir.to_str().unwrap()]);
        let out = tool.run(&["import", dir.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&out.stderr).contains("--upsert"));
        tool.ok(&["import", "--upsert", dir.to_str().unwrap()]);
        // The store holds the files once, and nothing of the imports' own.
        let out = tool.path("out");
        tool.ok(&["export", out.to_str().unwrap()]);
        assert_eq!(tree(&out), tree(&dir));
    }

    #[test]
    fn destructive_import_needs_yes_without_a_terminal() {
        let tool = Tool::sqlite();
        let dir = tool.fixtures();
        let out = tool.run(&["import", "--drop", dir.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&out.stderr).contains("--yes"));
        tool.ok(&["import", "--drop", "--yes", dir.to_str().unwrap()]);
    }

    #[test]
    fn usage_errors_exit_2_and_bad_urls_name_the_flag() {
        let tool = Tool::sqlite();
        assert_eq!(tool.run(&["no-such-command"]).status.code(), Some(2));
        let out = Command::new(env!("CARGO_BIN_EXE_edn-migrate"))
            .args(["--store", "postgres://u:secret@h/db", "status"])
            .output()
            .unwrap();
        // A store URL the tool cannot use is a usage error (issue 8, item 12).
        assert_eq!(out.status.code(), Some(2));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("--store"), "{stderr}");
        assert!(!stderr.contains("secret"), "password leaked: {stderr}");
    }

    #[test]
    fn settings_come_from_dot_env_when_not_given() {
        let tool = Tool::sqlite();
        tool.ok(&["phase0", "prepare"]);
        fs::write(
            tool.path(".env"),
            "DB_NAME=from_dotenv\nEDN360_DB_NAME=drawers_dotenv\n",
        )
        .unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_edn-migrate"))
            .args(["--store", &tool.store, "status", "--json"])
            .current_dir(tool.work.path())
            .env_remove("DB_NAME")
            .env_remove("EDN360_DB_NAME")
            .output()
            .unwrap();
        let status = json(&String::from_utf8(out.stdout).unwrap());
        assert_eq!(status["databases"]["legacy"], "from_dotenv");
        let out = Command::new(env!("CARGO_BIN_EXE_edn-migrate"))
            .args([
                "--store",
                &tool.store,
                "--legacy-db",
                "from_flag",
                "status",
                "--json",
            ])
            .current_dir(tool.work.path())
            .env("DB_NAME", "from_env")
            .output()
            .unwrap();
        let status = json(&String::from_utf8(out.stdout).unwrap());
        assert_eq!(
            status["databases"]["legacy"], "from_flag",
            "flags beat the environment"
        );
        assert_eq!(status["databases"]["drawer"], "drawers_dotenv");
    }
}

mod mongo_wire {
    use super::*;

    #[test]
    fn round_trip_is_exact() {
        let (Some(first), Some(second)) = (Tool::wire("rt1"), Tool::wire("rt2")) else {
            return;
        };
        super::round_trip_is_exact(first, second);
    }

    #[test]
    fn round_trip_crosses_stores() {
        let Some(mongo) = Tool::wire("cross") else {
            return;
        };
        super::round_trip_is_exact(Tool::sqlite(), mongo);
    }

    #[test]
    fn malformed_lines_import_nothing() {
        if let Some(tool) = Tool::wire("bad") {
            super::malformed_lines_import_nothing(tool);
        }
    }

    #[test]
    fn prepare_is_idempotent_and_status_lists_indexes() {
        if let Some(tool) = Tool::wire("prep") {
            super::prepare_is_idempotent_and_status_lists_indexes(tool);
        }
    }
}
