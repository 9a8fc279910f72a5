//! Loading the fixture dataset for golden and property tests.

use std::collections::BTreeMap;
use std::path::Path;

use bson::{Bson, Document};
use edn_migrate::drawer::{BuildOptions, LegacyUser};
use edn_migrate::extjson;

pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

pub fn read_jsonl(rel: &str) -> Vec<Document> {
    let text = std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| extjson::parse_line(l).unwrap_or_else(|e| panic!("{rel}: {e}")))
        .collect()
}

/// Legacy documents grouped by user_id (documents without one are left out).
pub fn users() -> BTreeMap<String, LegacyUser> {
    let mut out: BTreeMap<String, LegacyUser> = BTreeMap::new();
    let base = "fixtures/legacy/test_database";
    for (coll, pick) in [
        ("nutrition_questionnaire_submissions", 0),
        ("follow_up_submissions", 1),
        ("training_plans", 2),
        ("nutrition_plans", 3),
    ] {
        for d in read_jsonl(&format!("{base}/{coll}.jsonl")) {
            let Ok(uid) = d.get_str("user_id") else {
                continue;
            };
            let u = out.entry(uid.to_owned()).or_insert_with(|| LegacyUser {
                user_id: uid.to_owned(),
                ..Default::default()
            });
            match pick {
                0 => u.submissions.push(d),
                1 => u.followups.push(d),
                2 => u.training_plans.push(d),
                _ => u.nutrition_plans.push(d),
            }
        }
    }
    out
}

pub fn existing_drawers() -> BTreeMap<String, Document> {
    read_jsonl("fixtures/legacy/edn360_app/client_drawers.jsonl")
        .into_iter()
        .filter_map(|d| Some((d.get_str("user_id").ok()?.to_owned(), d)))
        .collect()
}

pub const NOW_MS: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z

pub fn opts() -> BuildOptions {
    BuildOptions::new(bson::DateTime::from_millis(NOW_MS), "run_test_0001")
}

pub fn pretty(d: &Document) -> String {
    serde_json::to_string_pretty(&extjson::document_to_json(d)).unwrap_or_default()
}

pub fn s(v: &str) -> Bson {
    Bson::from(v)
}
