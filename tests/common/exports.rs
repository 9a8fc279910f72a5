//! Comparing exports of two stores: the data, without what differs between
//! any two runs (run ids, the runs' clocks, the tool's run records and leases).

use serde_json::Value;

/// An export with the run-specific values (run ids and timestamps of the run)
/// replaced, and the tool's own run records and lock left out.
pub fn normalized(files: Vec<(String, Vec<u8>)>) -> Vec<(String, String)> {
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
                    // A drawer the migration changed carries the run's clock here.
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
            (name, lines.join("\n"))
        })
        .collect()
}

/// Compares two normalized exports and names the first line that differs.
pub fn assert_same(got: &[(String, String)], want: &[(String, String)]) {
    let names = |v: &[(String, String)]| {
        v.iter()
            .map(|(n, _)| n.rsplit('/').next().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(names(got), names(want), "different collections");
    for ((name, a), (_, b)) in got.iter().zip(want) {
        for (i, (x, y)) in a.lines().zip(b.lines()).enumerate() {
            if x != y {
                let at = x.bytes().zip(y.bytes()).take_while(|(a, b)| a == b).count();
                let from = at.saturating_sub(200);
                panic!(
                    "{name}: line {} differs at byte {at}\n got: …{}\nwant: …{}",
                    i + 1,
                    &x[from..(at + 200).min(x.len())],
                    &y[from..(at + 200).min(y.len())]
                );
            }
        }
        assert_eq!(
            a.lines().count(),
            b.lines().count(),
            "{name}: line counts differ"
        );
    }
}
