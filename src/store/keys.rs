//! Byte strings that sort the way MongoDB sorts values.
//!
//! The embedded store keeps documents as BSON blobs; to order, resume and
//! index them it compares these keys with plain `memcmp`. The encoding
//! follows MongoDB's comparison order of types (null < numbers < strings <
//! documents < arrays < binary < ObjectId < booleans < dates < timestamps <
//! regexes), so a scan returns documents in the same order on both backends.
//! Numbers compare by value across int32, int64 and double; integers beyond
//! 2^53 may tie where MongoDB would not, which no field we order by holds.

use bson::{Bson, Document, RawBsonRef, RawDocument, RawDocumentBuf};

const MIN_KEY: u8 = 0x01;
const NULL: u8 = 0x05;
const NUMBER: u8 = 0x10;
const STRING: u8 = 0x20;
const DOCUMENT: u8 = 0x30;
const ARRAY: u8 = 0x35;
const BINARY: u8 = 0x40;
const OBJECT_ID: u8 = 0x45;
const BOOLEAN: u8 = 0x50;
const DATE: u8 = 0x55;
const TIMESTAMP: u8 = 0x5a;
const REGEX: u8 = 0x60;
const OTHER: u8 = 0x70;
const MAX_KEY: u8 = 0x7f;
const END: u8 = 0x00;

/// The sort key of a value (missing and null share a key, as in MongoDB).
pub fn sort_key(value: Option<&Bson>) -> Vec<u8> {
    let Some(value) = value else {
        return vec![NULL];
    };
    let holder = bson::doc! { "v": value.clone() };
    match RawDocumentBuf::from_document(&holder) {
        Ok(raw) => match raw.get("v") {
            Ok(Some(v)) => raw_sort_key(Some(v)),
            _ => vec![NULL],
        },
        Err(_) => vec![NULL],
    }
}

/// The sort key of a raw value, without decoding the document around it.
pub fn raw_sort_key(value: Option<RawBsonRef<'_>>) -> Vec<u8> {
    let mut out = Vec::with_capacity(24);
    push_value(&mut out, value);
    out
}

/// The raw value at a dotted path (`services.training.active`), if any.
pub fn raw_value_at_path<'a>(doc: &'a RawDocument, path: &str) -> Option<RawBsonRef<'a>> {
    let mut current = doc;
    let mut parts = path.split('.').peekable();
    while let Some(part) = parts.next() {
        let value = current.get(part).ok().flatten()?;
        if parts.peek().is_none() {
            return Some(value);
        }
        match value {
            RawBsonRef::Document(inner) => current = inner,
            _ => return None,
        }
    }
    None
}

/// The value at a dotted path of a decoded document, to change in place
/// (its field keeps its position).
pub fn value_at_path_mut<'a>(doc: &'a mut Document, path: &str) -> Option<&'a mut Bson> {
    let mut parts = path.split('.');
    let mut current = doc.get_mut(parts.next()?)?;
    for part in parts {
        current = match current {
            Bson::Document(inner) => inner.get_mut(part)?,
            _ => return None,
        };
    }
    Some(current)
}

/// The value at a dotted path of a decoded document, if any.
pub fn value_at_path<'a>(doc: &'a Document, path: &str) -> Option<&'a Bson> {
    let mut current = doc;
    let mut parts = path.split('.').peekable();
    while let Some(part) = parts.next() {
        let value = current.get(part)?;
        if parts.peek().is_none() {
            return Some(value);
        }
        match value {
            Bson::Document(inner) => current = inner,
            _ => return None,
        }
    }
    None
}

fn push_value(out: &mut Vec<u8>, value: Option<RawBsonRef<'_>>) {
    let Some(value) = value else {
        out.push(NULL);
        return;
    };
    match value {
        RawBsonRef::MinKey => out.push(MIN_KEY),
        RawBsonRef::Null | RawBsonRef::Undefined => out.push(NULL),
        RawBsonRef::Double(f) => push_number(out, f),
        RawBsonRef::Int32(i) => push_number(out, f64::from(i)),
        RawBsonRef::Int64(i) => push_number(out, i as f64),
        RawBsonRef::Decimal128(d) => push_number(out, d.to_string().parse().unwrap_or(f64::NAN)),
        RawBsonRef::String(s) | RawBsonRef::Symbol(s) => {
            out.push(STRING);
            push_escaped(out, s.as_bytes());
        }
        RawBsonRef::Document(d) => {
            out.push(DOCUMENT);
            for (key, item) in d.iter().flatten() {
                push_escaped(out, key.as_bytes());
                push_value(out, Some(item));
            }
            out.push(END);
        }
        RawBsonRef::Array(a) => {
            out.push(ARRAY);
            for item in a.into_iter().flatten() {
                push_value(out, Some(item));
            }
            out.push(END);
        }
        RawBsonRef::Binary(b) => {
            out.push(BINARY);
            out.extend_from_slice(&(b.bytes.len() as u32).to_be_bytes());
            out.push(u8::from(b.subtype));
            out.extend_from_slice(b.bytes);
        }
        RawBsonRef::ObjectId(id) => {
            out.push(OBJECT_ID);
            out.extend_from_slice(&id.bytes());
        }
        RawBsonRef::Boolean(b) => {
            out.push(BOOLEAN);
            out.push(u8::from(b));
        }
        RawBsonRef::DateTime(d) => {
            out.push(DATE);
            out.extend_from_slice(&order_i64(d.timestamp_millis()));
        }
        RawBsonRef::Timestamp(t) => {
            out.push(TIMESTAMP);
            out.extend_from_slice(&t.time.to_be_bytes());
            out.extend_from_slice(&t.increment.to_be_bytes());
        }
        RawBsonRef::RegularExpression(r) => {
            out.push(REGEX);
            push_escaped(out, r.pattern.as_bytes());
            push_escaped(out, r.options.as_bytes());
        }
        RawBsonRef::MaxKey => out.push(MAX_KEY),
        RawBsonRef::JavaScriptCode(_)
        | RawBsonRef::JavaScriptCodeWithScope(_)
        | RawBsonRef::DbPointer(_) => out.push(OTHER),
    }
}

/// Doubles as big-endian bytes whose unsigned order is numeric order;
/// NaN sorts below every number, as in MongoDB.
fn push_number(out: &mut Vec<u8>, f: f64) {
    out.push(NUMBER);
    let f = if f == 0.0 { 0.0 } else { f }; // -0.0 and 0.0 are equal
    let bits = if f.is_nan() {
        0
    } else if f.is_sign_negative() {
        !f.to_bits()
    } else {
        f.to_bits() ^ (1 << 63)
    };
    out.extend_from_slice(&bits.to_be_bytes());
}

fn order_i64(n: i64) -> [u8; 8] {
    ((n as u64) ^ (1 << 63)).to_be_bytes()
}

/// Writes bytes so that a shorter string sorts before its extensions even
/// when more bytes follow: 0x00 becomes 0x00 0xff, and 0x00 0x00 ends it.
fn push_escaped(out: &mut Vec<u8>, bytes: &[u8]) {
    for &b in bytes {
        out.push(b);
        if b == 0 {
            out.push(0xff);
        }
    }
    out.extend_from_slice(&[0, 0]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::{doc, oid::ObjectId, DateTime};

    #[test]
    fn a_value_changed_in_place_keeps_its_place() {
        let mut d = doc! { "a": 1, "meta": { "x": 1, "run_id": "a", "z": 2 }, "b": "s" };
        *value_at_path_mut(&mut d, "meta.run_id").unwrap() = Bson::from("b");
        assert_eq!(
            d,
            doc! { "a": 1, "meta": { "x": 1, "run_id": "b", "z": 2 }, "b": "s" }
        );
        let keys: Vec<&String> = d.get_document("meta").unwrap().keys().collect();
        assert_eq!(keys, ["x", "run_id", "z"]);
        *value_at_path_mut(&mut d, "a").unwrap() = Bson::Null;
        assert_eq!(d.keys().next().map(String::as_str), Some("a"));
        assert!(value_at_path_mut(&mut d, "meta.absent").is_none());
        assert!(
            value_at_path_mut(&mut d, "b.x").is_none(),
            "through a string"
        );
        assert!(value_at_path_mut(&mut d, "absent.x").is_none());
    }

    fn key(v: Bson) -> Vec<u8> {
        sort_key(Some(&v))
    }

    #[test]
    fn types_sort_in_mongodb_order() {
        let ordered = [
            key(Bson::Null),
            key(Bson::Int32(-5)),
            key(Bson::Double(2.5)),
            key(Bson::Int64(3)),
            key(Bson::String(String::new())),
            key(Bson::String("a".into())),
            key(Bson::Document(doc! {})),
            key(Bson::Array(vec![])),
            key(Bson::ObjectId(ObjectId::from_bytes([0; 12]))),
            key(Bson::Boolean(false)),
            key(Bson::Boolean(true)),
            key(Bson::DateTime(DateTime::from_millis(-1))),
            key(Bson::DateTime(DateTime::from_millis(1))),
        ];
        for pair in ordered.windows(2) {
            assert!(pair[0] < pair[1], "{:?} !< {:?}", pair[0], pair[1]);
        }
    }

    #[test]
    fn numbers_compare_by_value_across_types() {
        assert_eq!(key(Bson::Int32(7)), key(Bson::Int64(7)));
        assert_eq!(key(Bson::Int32(7)), key(Bson::Double(7.0)));
        assert!(key(Bson::Double(-1e300)) < key(Bson::Int64(i64::MIN / 2)));
        assert!(key(Bson::Double(-0.5)) < key(Bson::Int32(0)));
        assert!(key(Bson::Int32(0)) < key(Bson::Double(f64::MIN_POSITIVE)));
        assert!(key(Bson::Double(f64::NAN)) < key(Bson::Double(f64::NEG_INFINITY)));
    }

    #[test]
    fn strings_sort_bytewise_with_prefixes_first() {
        assert!(key("ab".into()) < key("abc".into()));
        assert!(key("a\0".into()) > key("a".into()));
        assert!(key("1762".into()) < key("1763".into()));
        assert!(key(Bson::Null) == sort_key(None));
    }

    #[test]
    fn paths_reach_into_nested_documents() {
        let d = doc! { "a": { "b": { "c": 1 } }, "x": [1] };
        assert_eq!(value_at_path(&d, "a.b.c"), Some(&Bson::Int32(1)));
        assert_eq!(value_at_path(&d, "a.z"), None);
        assert_eq!(value_at_path(&d, "x.0"), None);
        let raw = RawDocumentBuf::from_document(&d).unwrap();
        assert_eq!(raw_value_at_path(&raw, "a.b.c"), Some(RawBsonRef::Int32(1)));
    }
}
