//! One legacy questionnaire against its drawer, as dual-write should have
//! left it (pure: documents in, verdict out).
//!
//! The production report shows dual-write keeping the whole legacy document
//! as `raw_payload` of the entry with the same `submission_id` in
//! `services.shared_questionnaires`. So the entry must exist, `raw_payload`
//! must equal the legacy document exactly (types and field order included:
//! MongoDB compares embedded documents that way), `source` must say which
//! collection it came from and `submitted_at` must be the same instant. Where
//! the drawer has an `inicial` that comes from this submission, every field
//! the field map places must hold the legacy answer verbatim. Mismatches are
//! field paths, never values.

use crate::drawer::LegacyKind;
use crate::mapping::{date_millis, FieldMap};
use bson::{Bson, Document};

/// The drawer path of the initial questionnaire.
pub const INICIAL: &str = "services.training.questionnaires.inicial";

/// What one legacy document's check found.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Everything agrees.
    Match,
    /// Dual-write did not write it: no drawer, or no entry with its id.
    Missing(&'static str),
    /// Written, but these paths differ (each with what differs, no values).
    Mismatch(Vec<String>),
}

/// The `source` dual-write gives each kind (production report, section 2).
pub fn source_of(kind: LegacyKind) -> &'static str {
    match kind {
        LegacyKind::Followup => "followup",
        _ => "nutrition_initial",
    }
}

/// Checks one legacy document against the user's drawer. `inicial_is_this`
/// says whether the drawer's `inicial` comes from this submission (by its
/// `submission_id`, or, when it has none as in the plan's section 5.1, by
/// being the user's latest submission).
pub fn check(
    kind: LegacyKind,
    legacy: &Document,
    drawer: Option<&Document>,
    inicial_is_this: bool,
    map: &FieldMap,
) -> Verdict {
    let Some(drawer) = drawer else {
        return Verdict::Missing("no drawer for this user");
    };
    let id = legacy.get("_id").unwrap_or(&Bson::Null);
    let Some(entry) = shared_entry(drawer, id) else {
        return Verdict::Missing(
            "no entry with this submission_id in services.shared_questionnaires",
        );
    };
    let mut paths = Vec::new();
    match entry.get("raw_payload") {
        Some(Bson::Document(raw)) => diff_docs("raw_payload", raw, legacy, &mut paths),
        Some(_) => paths.push("raw_payload: not a document".into()),
        None => paths.push("raw_payload: missing".into()),
    }
    if entry.get_str("source").ok() != Some(source_of(kind)) {
        paths.push(format!("source: not \"{}\"", source_of(kind)));
    }
    let legacy_at = date_millis(legacy.get(kind.date_field()));
    if date_millis(entry.get("submitted_at")) != legacy_at {
        paths.push(format!(
            "submitted_at: not the instant of {}",
            kind.date_field()
        ));
    }
    if kind == LegacyKind::Submission && inicial_is_this {
        if let (Some(inicial), Ok(responses)) = (inicial(drawer), legacy.get_document("responses"))
        {
            check_inicial(inicial, responses, map, &mut paths);
        }
    }
    if paths.is_empty() {
        Verdict::Match
    } else {
        Verdict::Mismatch(paths)
    }
}

/// The drawer's `inicial`, when it is a document.
pub fn inicial(drawer: &Document) -> Option<&Document> {
    let mut cur = drawer;
    for part in INICIAL.split('.') {
        cur = cur.get_document(part).ok()?;
    }
    Some(cur)
}

/// The `shared_questionnaires` entry with this `submission_id`.
fn shared_entry<'a>(drawer: &'a Document, id: &Bson) -> Option<&'a Document> {
    drawer
        .get_document("services")
        .ok()?
        .get_array("shared_questionnaires")
        .ok()?
        .iter()
        .filter_map(Bson::as_document)
        .find(|e| e.get("submission_id") == Some(id))
}

/// Every mapped answer must sit, verbatim, where the field map puts it.
fn check_inicial(inicial: &Document, flat: &Document, map: &FieldMap, paths: &mut Vec<String>) {
    let responses = inicial.get_document("responses").ok();
    for (key, value) in flat {
        let Some((block, path)) = map.target(key) else {
            continue;
        };
        let full = format!("{INICIAL}.responses.{block}.{path}");
        let stored = responses
            .and_then(|r| r.get_document(block).ok())
            .and_then(|b| get_dotted(b, &path));
        match stored {
            None => paths.push(format!("{full}: missing")),
            Some(stored) => diff(&full, stored, value, paths),
        }
    }
}

fn get_dotted<'a>(doc: &'a Document, path: &str) -> Option<&'a Bson> {
    let mut parts = path.split('.');
    let mut cur = doc.get(parts.next()?)?;
    for p in parts {
        cur = cur.as_document()?.get(p)?;
    }
    Some(cur)
}

/// Paths where `stored` differs from `legacy`: missing or extra fields,
/// another type, another value, or the same fields in another order.
pub fn diff_docs(prefix: &str, stored: &Document, legacy: &Document, out: &mut Vec<String>) {
    let before = out.len();
    for (k, v) in legacy {
        let path = format!("{prefix}.{k}");
        match stored.get(k) {
            None => out.push(format!("{path}: missing")),
            Some(s) => diff(&path, s, v, out),
        }
    }
    for k in stored.keys().filter(|k| !legacy.contains_key(k.as_str())) {
        out.push(format!("{prefix}.{k}: not in the legacy document"));
    }
    if out.len() == before && !stored.keys().eq(legacy.keys()) {
        out.push(format!("{prefix}: fields in another order"));
    }
}

fn diff(path: &str, stored: &Bson, legacy: &Bson, out: &mut Vec<String>) {
    match (stored, legacy) {
        (Bson::Document(s), Bson::Document(l)) => diff_docs(path, s, l, out),
        (Bson::Array(s), Bson::Array(l)) if s.len() == l.len() => {
            for (i, (a, b)) in s.iter().zip(l).enumerate() {
                diff(&format!("{path}.{i}"), a, b, out);
            }
        }
        (Bson::Array(_), Bson::Array(_)) => out.push(format!("{path}: another length")),
        (s, l) if s.element_type() != l.element_type() => out.push(format!(
            "{path}: {} where the legacy document has {}",
            type_name(s),
            type_name(l)
        )),
        (s, l) if !same_leaf(s, l) => out.push(format!("{path}: another value")),
        _ => {}
    }
}

fn same_leaf(a: &Bson, b: &Bson) -> bool {
    match (a, b) {
        (Bson::Double(x), Bson::Double(y)) => x.to_bits() == y.to_bits(),
        _ => a == b,
    }
}

fn type_name(v: &Bson) -> &'static str {
    match v {
        Bson::Double(_) => "a double",
        Bson::String(_) => "a string",
        Bson::Document(_) => "a document",
        Bson::Array(_) => "an array",
        Bson::Boolean(_) => "a boolean",
        Bson::Null => "null",
        Bson::Int32(_) => "an int32",
        Bson::Int64(_) => "an int64",
        Bson::DateTime(_) => "a date",
        Bson::ObjectId(_) => "an ObjectId",
        Bson::Decimal128(_) => "a decimal128",
        _ => "another type",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::doc;

    fn legacy() -> Document {
        doc! { "_id": "s1", "user_id": "u", "responses": { "peso": "80", "edad": "33" },
        "submitted_at": bson::DateTime::from_millis(1_000), "plan_id": Bson::Null }
    }

    fn drawer(raw: Document) -> Document {
        doc! { "_id": "client_u", "services": { "shared_questionnaires": [
        { "submission_id": "s1", "submitted_at": bson::DateTime::from_millis(1_000),
          "source": "nutrition_initial", "raw_payload": raw } ] } }
    }

    fn map() -> &'static FieldMap {
        FieldMap::builtin().unwrap()
    }

    #[test]
    fn the_verbatim_document_matches() {
        let d = drawer(legacy());
        assert_eq!(
            check(LegacyKind::Submission, &legacy(), Some(&d), true, map()),
            Verdict::Match
        );
    }

    #[test]
    fn types_order_and_missing_fields_are_named_without_values() {
        let mut raw = legacy();
        raw.get_document_mut("responses")
            .unwrap()
            .insert("edad", 33);
        let Verdict::Mismatch(p) = check(
            LegacyKind::Submission,
            &legacy(),
            Some(&drawer(raw)),
            false,
            map(),
        ) else {
            panic!()
        };
        assert_eq!(
            p,
            vec!["raw_payload.responses.edad: an int32 where the legacy document has a string"]
        );
        let reordered = doc! { "user_id": "u", "_id": "s1", "responses": { "peso": "80", "edad": "33" },
        "submitted_at": bson::DateTime::from_millis(1_000), "plan_id": Bson::Null };
        let Verdict::Mismatch(p) = check(
            LegacyKind::Submission,
            &legacy(),
            Some(&drawer(reordered)),
            false,
            map(),
        ) else {
            panic!()
        };
        assert_eq!(p, vec!["raw_payload: fields in another order"]);
        let mut short = legacy();
        short.remove("plan_id");
        let Verdict::Mismatch(p) = check(
            LegacyKind::Submission,
            &legacy(),
            Some(&drawer(short)),
            false,
            map(),
        ) else {
            panic!()
        };
        assert_eq!(p, vec!["raw_payload.plan_id: missing"]);
        assert!(!format!("{p:?}").contains("80"));
    }

    #[test]
    fn missing_drawer_or_entry_and_a_wrong_source() {
        assert!(matches!(
            check(LegacyKind::Submission, &legacy(), None, false, map()),
            Verdict::Missing(_)
        ));
        let mut other = legacy();
        other.insert("_id", "s2");
        assert!(matches!(
            check(
                LegacyKind::Submission,
                &other,
                Some(&drawer(legacy())),
                false,
                map()
            ),
            Verdict::Missing(_)
        ));
        let Verdict::Mismatch(p) = check(
            LegacyKind::Followup,
            &legacy(),
            Some(&drawer(legacy())),
            false,
            map(),
        ) else {
            panic!()
        };
        assert!(p.iter().any(|x| x.starts_with("source")), "{p:?}");
    }

    #[test]
    fn inicial_answers_must_sit_where_the_field_map_puts_them() {
        let mut d = drawer(legacy());
        let inicial = doc! { "submission_id": "s1", "responses": {
        "measurements": { "peso_kg": "80" }, "personal_data": { "edad": "34" } } };
        d.get_document_mut("services").unwrap().insert(
            "training",
            doc! { "questionnaires": { "inicial": inicial } },
        );
        let Verdict::Mismatch(p) = check(LegacyKind::Submission, &legacy(), Some(&d), true, map())
        else {
            panic!()
        };
        assert_eq!(
            p,
            vec!["services.training.questionnaires.inicial.responses.personal_data.edad: another value"]
        );
        assert_eq!(
            check(LegacyKind::Submission, &legacy(), Some(&d), false, map()),
            Verdict::Match,
            "an inicial from another submission is not this one's to judge"
        );
    }
}
