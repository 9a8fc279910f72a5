//! A collection's metadata as mongodump records it (`<coll>.metadata.json`,
//! or the `metadata` string of an archive's prelude): its name, its kind and
//! its index definitions, in Extended JSON (canonical in mongodump 100.x,
//! `{"v": {"$numberInt": "2"}, …}`; plain numbers in older versions).
//!
//! The `Store` trait creates ascending indexes, unique or not. An index it
//! cannot create as defined (descending or special keys, TTL, partial,
//! sparse, collation …) is not an error: it is left out and reported, so a
//! rehearsal on the embedded store still loads every document. The data
//! already satisfies every index the dump had, so leaving one out changes
//! nothing that was loaded; only later writes go unchecked by it.

use crate::extjson;
use crate::store::IndexSpec;
use bson::{Bson, Document};

/// What kind of namespace the metadata describes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// A collection of documents (also when an older dump does not say).
    Collection,
    /// Anything else (`view`, `timeseries` …): nothing to load into a store.
    Other(String),
}

/// The parts of a metadata file the import uses.
#[derive(Debug, Clone, PartialEq)]
pub struct Metadata {
    /// The collection's real name; mongodump escapes and may shorten the
    /// file name, never this.
    pub name: Option<String>,
    /// A collection, a view, a time series …
    pub kind: Kind,
    /// The indexes the store will create (the implicit `_id_` aside).
    pub indexes: Vec<IndexSpec>,
    /// The indexes left out, each with the reason.
    pub skipped: Vec<SkippedIndex>,
}

impl Metadata {
    /// A collection with no metadata file: mongorestore falls back to
    /// defaults (no indexes but `_id`), and so does this.
    pub fn none() -> Metadata {
        Metadata {
            name: None,
            kind: Kind::Collection,
            indexes: Vec::new(),
            skipped: Vec::new(),
        }
    }
}

/// An index of the dump that is not created, and why: reported in the
/// summary, so nobody is surprised that it is missing.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SkippedIndex {
    /// The index name in the dump.
    pub name: String,
    /// Why the store cannot create it as defined.
    pub reason: String,
}

/// Options of an index definition that change nothing the store enforces.
const PLAIN_OPTIONS: [&str; 6] = ["v", "key", "name", "ns", "unique", "background"];

/// Parses metadata JSON; the error says what is wrong, without the file name.
pub fn parse(bytes: &[u8]) -> Result<Metadata, String> {
    let json: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| format!("not JSON: {e}"))?;
    let doc = extjson::document_from_json(json).map_err(|e| format!("not a metadata file: {e}"))?;
    let name = match doc.get("collectionName") {
        None | Some(Bson::Null) => None,
        Some(Bson::String(s)) if !s.is_empty() => Some(s.clone()),
        Some(other) => return Err(format!("collectionName is {other}, not a name")),
    };
    let kind = match doc.get("type") {
        None | Some(Bson::Null) => Kind::Collection,
        Some(Bson::String(s)) if s == "collection" => Kind::Collection,
        Some(Bson::String(s)) => Kind::Other(s.clone()),
        Some(other) => return Err(format!("type is {other}, not a string")),
    };
    let list = match doc.get("indexes") {
        None | Some(Bson::Null) => Vec::new(),
        Some(Bson::Array(list)) => list.clone(),
        Some(_) => return Err("\"indexes\" is not an array".into()),
    };
    let mut metadata = Metadata {
        name,
        kind,
        indexes: Vec::new(),
        skipped: Vec::new(),
    };
    for (i, index) in list.iter().enumerate() {
        let Bson::Document(index) = index else {
            return Err(format!("index #{i} is not a document"));
        };
        let name = match index.get("name") {
            Some(Bson::String(name)) if !name.is_empty() => name.clone(),
            _ => return Err(format!("index #{i} has no name")),
        };
        if name == "_id_" {
            continue;
        }
        match index_spec(&name, index)? {
            Ok(spec) => metadata.indexes.push(spec),
            Err(reason) => metadata.skipped.push(SkippedIndex { name, reason }),
        }
    }
    Ok(metadata)
}

/// The store's index for one definition; the inner error is a reason to
/// leave it out, the outer one a malformed definition.
fn index_spec(name: &str, index: &Document) -> Result<Result<IndexSpec, String>, String> {
    let key = match index.get("key") {
        Some(Bson::Document(key)) if !key.is_empty() => key,
        _ => return Err(format!("index {name} has no key document")),
    };
    let unique = match index.get("unique") {
        None | Some(Bson::Null) => false,
        Some(Bson::Boolean(b)) => *b,
        Some(n) => match number(n) {
            Some(n) => n != 0.0,
            None => return Err(format!("index {name}: unique is {n}")),
        },
    };
    let changes_enforcement = |(option, value): &(&String, &Bson)| {
        let off = matches!(option.as_str(), "sparse" | "hidden") && **value == Bson::Boolean(false);
        !PLAIN_OPTIONS.contains(&option.as_str()) && !off
    };
    if let Some((option, _)) = index.iter().find(changes_enforcement) {
        return Ok(Err(format!(
            "option {option} is not supported by the store"
        )));
    }
    let mut keys = Vec::with_capacity(key.len());
    for (field, direction) in key {
        match number(direction) {
            Some(n) if n > 0.0 => keys.push(field.clone()),
            Some(n) if n < 0.0 => {
                return Ok(Err(format!(
                    "key {field} is descending; the store creates ascending indexes only"
                )))
            }
            Some(_) => return Ok(Err(format!("key {field} has direction 0"))),
            None => {
                return Ok(Err(format!(
                    "key {field} is a {direction} index; the store creates ascending indexes only"
                )))
            }
        }
    }
    Ok(Ok(IndexSpec {
        name: name.to_string(),
        keys,
        unique,
        ..IndexSpec::default()
    }))
}

fn number(value: &Bson) -> Option<f64> {
    match value {
        Bson::Int32(n) => Some(f64::from(*n)),
        Bson::Int64(n) => Some(*n as f64),
        Bson::Double(n) => Some(*n),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_metadata_of_mongodump_100_reads() {
        let text = r#"{"indexes":[{"v":{"$numberInt":"2"},"key":{"_id":{"$numberInt":"1"}},"name":"_id_"},
            {"v":{"$numberInt":"2"},"unique":true,"key":{"user_id":{"$numberInt":"1"}},"name":"user_id_1"},
            {"v":{"$numberInt":"2"},"key":{"a":{"$numberDouble":"1.0"},"b.c":{"$numberLong":"1"}},"name":"a_1_b.c_1","background":true}],
            "uuid":"4d7a2b1c9e8f4a3b8c2d1e0f9a8b7c6d","collectionName":"client_drawers","type":"collection"}"#;
        let m = parse(text.as_bytes()).unwrap();
        assert_eq!(m.name.as_deref(), Some("client_drawers"));
        assert_eq!(m.kind, Kind::Collection);
        assert_eq!(
            m.indexes,
            vec![
                IndexSpec::ascending(&["user_id"], true),
                IndexSpec::ascending(&["a", "b.c"], false)
            ]
        );
        assert!(m.skipped.is_empty());
    }

    #[test]
    fn legacy_metadata_without_type_or_name_reads() {
        let text = r#"{"options":{},"indexes":[{"v":1,"key":{"_id":1},"name":"_id_","ns":"db.c"},{"v":1,"key":{"user_id":1},"name":"user_id_1","ns":"db.c","unique":1}]}"#;
        let m = parse(text.as_bytes()).unwrap();
        assert_eq!(m.name, None);
        assert_eq!(m.kind, Kind::Collection);
        assert_eq!(m.indexes, vec![IndexSpec::ascending(&["user_id"], true)]);
    }

    #[test]
    fn indexes_the_store_cannot_create_are_skipped_with_a_reason() {
        let text = r#"{"indexes":[
            {"v":2,"key":{"created_at":-1},"name":"created_at_-1"},
            {"v":2,"key":{"notes":"text"},"name":"notes_text","weights":{"notes":1}},
            {"v":2,"key":{"at":1},"name":"ttl","expireAfterSeconds":3600},
            {"v":2,"key":{"email":1},"name":"email_1","unique":true,"sparse":true},
            {"v":2,"key":{"plain":1},"name":"plain_1","sparse":false}],"type":"collection"}"#;
        let m = parse(text.as_bytes()).unwrap();
        assert_eq!(m.indexes, vec![IndexSpec::ascending(&["plain"], false)]);
        let reasons: Vec<(&str, &str)> = m
            .skipped
            .iter()
            .map(|s| (s.name.as_str(), s.reason.as_str()))
            .collect();
        assert_eq!(reasons.len(), 4, "{reasons:?}");
        assert!(reasons[0].1.contains("descending"), "{reasons:?}");
        assert!(reasons[1].1.contains("weights"), "{reasons:?}");
        assert!(reasons[2].1.contains("expireAfterSeconds"), "{reasons:?}");
        assert!(reasons[3].1.contains("sparse"), "{reasons:?}");
    }

    #[test]
    fn views_are_not_collections() {
        let m = parse(br#"{"options":{"viewOn":"c","pipeline":[]},"indexes":[],"type":"view"}"#)
            .unwrap();
        assert_eq!(m.kind, Kind::Other("view".into()));
    }

    #[test]
    fn malformed_metadata_is_an_error() {
        assert!(parse(b"{").unwrap_err().contains("not JSON"));
        assert!(parse(br#"{"indexes":{}}"#)
            .unwrap_err()
            .contains("not an array"));
        assert!(parse(br#"{"indexes":[{"key":{"a":1}}]}"#)
            .unwrap_err()
            .contains("no name"));
        assert!(parse(br#"{"indexes":[{"name":"a_1","key":{}}]}"#)
            .unwrap_err()
            .contains("no key"));
        assert!(
            parse(br#"{"indexes":[{"name":"a_1","key":{"a":1},"unique":"yes"}]}"#)
                .unwrap_err()
                .contains("unique")
        );
    }
}
