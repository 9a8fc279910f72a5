//! Drawer diffs for the dry-run plan: which paths a run would add, change or
//! remove, and how many array entries, never the values themselves, so a plan
//! can be pasted into a ticket without leaking personal or health data.

use bson::{Bson, Document};

/// The most lines one sample shows.
const MAX_LINES: usize = 16;

/// Paths that differ between the stored drawer (if any) and the new one.
pub fn diff_paths(old: Option<&Document>, new: &Document) -> Vec<String> {
    let empty = Document::new();
    let mut lines = Vec::new();
    walk(old.unwrap_or(&empty), new, "", &mut lines);
    if lines.len() > MAX_LINES {
        let more = lines.len() - MAX_LINES;
        lines.truncate(MAX_LINES);
        lines.push(format!("… and {more} more paths"));
    }
    lines
}

fn walk(old: &Document, new: &Document, prefix: &str, out: &mut Vec<String>) {
    for (key, value) in new {
        let path = join(prefix, key);
        match (old.get(key), value) {
            (None, Bson::Document(d)) if has_structure(d) && path.matches('.').count() < 2 => {
                walk(&Document::new(), d, &path, out)
            }
            (None, v) => out.push(format!("+ {path}{}", shape(v))),
            (Some(Bson::Document(a)), Bson::Document(b)) => walk(a, b, &path, out),
            (Some(Bson::Array(a)), Bson::Array(b)) if a != b => {
                let added = b.iter().filter(|x| !a.contains(x)).count();
                let removed = a.iter().filter(|x| !b.contains(x)).count();
                out.push(format!(
                    "~ {path} (+{added} -{removed} {})",
                    entries(added + removed)
                ));
            }
            (Some(a), b) if a != b => out.push(format!("~ {path}")),
            _ => {}
        }
    }
    for key in old.keys().filter(|k| !new.contains_key(*k)) {
        out.push(format!("- {}", join(prefix, key)));
    }
}

/// Whether a new sub-document is worth opening (it holds arrays or documents)
/// rather than summarising as "(n fields)"; only the top three levels open.
fn has_structure(d: &Document) -> bool {
    d.values()
        .any(|v| matches!(v, Bson::Document(_) | Bson::Array(_)))
}

fn shape(value: &Bson) -> String {
    match value {
        Bson::Array(items) => format!(" ({} {})", items.len(), entries(items.len())),
        Bson::Document(d) if d.len() == 1 => " (1 field)".to_string(),
        Bson::Document(d) => format!(" ({} fields)", d.len()),
        _ => String::new(),
    }
}

fn entries(n: usize) -> &'static str {
    if n == 1 {
        "entry"
    } else {
        "entries"
    }
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_string()
    } else {
        format!("{prefix}.{key}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::doc;

    #[test]
    fn paths_and_counts_are_shown_but_never_values() {
        let old = doc! { "profile": { "telefono": "+34 600 000 001", "email": "a@example.com" },
        "services": { "shared_questionnaires": [ { "submission_id": "s1" } ] } };
        let new = doc! { "profile": { "telefono": "+34 699 999 999", "email": "a@example.com" },
        "services": { "shared_questionnaires": [ { "submission_id": "s1" }, { "submission_id": "s2" } ],
                      "training": { "snapshots": [ {}, {} ] } } };
        let lines = diff_paths(Some(&old), &new);
        assert_eq!(
            lines,
            vec![
                "~ profile.telefono",
                "~ services.shared_questionnaires (+1 -0 entry)",
                "+ services.training.snapshots (2 entries)",
            ]
        );
        assert!(lines.iter().all(|l| !l.contains("699")));
        let one = doc! { "services": { "training": { "plans": [ { "plan_id": "p" } ] } } };
        assert_eq!(
            diff_paths(None, &one),
            vec!["+ services.training.plans (1 entry)"]
        );
        assert_eq!(diff_paths(Some(&new), &new), Vec::<String>::new());
    }
}
