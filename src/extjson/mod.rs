//! Relaxed Extended JSON, the line format of `import`, `export` and the fixtures.
//!
//! This is what `mongoexport` writes, with one deliberate difference: a 64-bit
//! integer small enough to fit in 32 bits is written in its canonical form
//! (`{"$numberLong": "5"}`). Plain relaxed JSON would read it back as a 32-bit
//! integer, and a round trip must keep every type.

use bson::{Bson, Document};
use serde_json::{Map, Value};

mod raw;
pub use raw::{parse_line_raw, to_line_raw, write_line_raw};

/// Why a line of Extended JSON could not become a document.
#[derive(Debug, thiserror::Error)]
pub enum ExtJsonError {
    /// The text is not JSON at all.
    #[error("not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// The JSON is valid but uses an Extended JSON key wrongly (`{"$oid": 1}`).
    #[error("not valid Extended JSON: {0}")]
    ExtJson(#[from] bson::extjson::de::Error),
    /// The top level of a line must be an object, since a line is one document.
    #[error("a line must hold one JSON object, found {0}")]
    NotAnObject(&'static str),
    /// The document cannot be written as BSON (a key holding a NUL byte).
    #[error("cannot be stored as BSON: {0}")]
    Bson(#[from] bson::ser::Error),
}

/// Converts one value to relaxed Extended JSON that reads back to the same type.
pub fn to_json(value: &Bson) -> Value {
    match value {
        Bson::Int64(n) if i32::try_from(*n).is_ok() => {
            let mut m = Map::new();
            m.insert("$numberLong".into(), Value::String(n.to_string()));
            Value::Object(m)
        }
        Bson::Document(doc) => document_to_json(doc),
        Bson::Array(items) => Value::Array(items.iter().map(to_json).collect()),
        other => other.clone().into_relaxed_extjson(),
    }
}

/// Converts a document to a JSON object, keeping field order.
pub fn document_to_json(doc: &Document) -> Value {
    Value::Object(doc.iter().map(|(k, v)| (k.clone(), to_json(v))).collect())
}

/// Reads a JSON object (already parsed) as a document.
pub fn document_from_json(value: Value) -> Result<Document, ExtJsonError> {
    match value {
        Value::Object(map) => Ok(Document::try_from(map)?),
        Value::Array(_) => Err(ExtJsonError::NotAnObject("an array")),
        Value::String(_) => Err(ExtJsonError::NotAnObject("a string")),
        Value::Number(_) => Err(ExtJsonError::NotAnObject("a number")),
        Value::Bool(_) => Err(ExtJsonError::NotAnObject("a boolean")),
        Value::Null => Err(ExtJsonError::NotAnObject("null")),
    }
}

/// Parses one line of a `.jsonl` file into a document.
pub fn parse_line(line: &str) -> Result<Document, ExtJsonError> {
    document_from_json(serde_json::from_str(line)?)
}

/// Formats a document as one line of a `.jsonl` file (no trailing newline).
pub fn to_line(doc: &Document) -> String {
    document_to_json(doc).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::{doc, oid::ObjectId, DateTime};

    #[test]
    fn every_type_survives_a_round_trip() {
        let original = doc! {
            "_id": ObjectId::parse_str("65a1b2c3d4e5f60718293a4b").unwrap(),
            "small_long": 5_i64,
            "big_long": 9_000_000_000_i64,
            "int": 7_i32,
            "whole_double": 85.0_f64,
            "double": 85.5_f64,
            "when": DateTime::from_millis(1_736_000_000_123),
            "before_epoch": DateTime::from_millis(-300_000_000_000),
            "nested": { "list": [1_i32, "dos", { "tres": 3_i64 }, [4.5_f64]] },
            "nothing": null,
        };
        let line = to_line(&original);
        let back = parse_line(&line).unwrap();
        assert_eq!(back, original);
        assert_eq!(to_line(&back), line);
    }

    #[test]
    fn a_line_that_is_not_an_object_is_refused() {
        assert!(matches!(
            parse_line("[1,2]"),
            Err(ExtJsonError::NotAnObject("an array"))
        ));
        assert!(matches!(parse_line("{\"a\":"), Err(ExtJsonError::Json(_))));
    }
}
