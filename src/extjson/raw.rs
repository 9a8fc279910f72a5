//! Extended JSON straight to BSON bytes and back, for `import` and `export`.
//!
//! Going through `serde_json::Value` and `bson::Document` built two trees of
//! hash maps and strings for every line, and that was nearly all of an
//! import or an export. Here the JSON parser writes BSON as it reads, and
//! stored BSON is written as JSON as it is read.
//!
//! The result is the slow path's, byte for byte, by construction: whatever
//! this path does not handle itself (an Extended JSON wrapper other than a
//! lone `$oid` or `$date` string, a repeated key, a key holding NUL, a
//! malformed line) makes it give up and run the slow path on the whole line
//! or document, errors included.

use super::{parse_line, to_json, to_line, ExtJsonError};
use bson::raw::{RawBsonRef, RawDocument, RawDocumentBuf};
use bson::spec::ElementType;
use bson::{Bson, Document};
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::fmt;

/// Parses one line of a `.jsonl` file into a BSON document, as
/// `bson::to_vec(&parse_line(line)?)` would.
pub fn parse_line_raw(line: &str) -> Result<RawDocumentBuf, ExtJsonError> {
    if let Some(bytes) = fast_parse(line) {
        if let Ok(doc) = RawDocumentBuf::from_bytes(bytes) {
            return Ok(doc);
        }
    }
    let doc = parse_line(line)?;
    let bytes = bson::to_vec(&doc)?;
    Ok(RawDocumentBuf::from_bytes(bytes).expect("bson::to_vec writes a whole document"))
}

/// Formats a stored document as one line of a `.jsonl` file, as
/// `to_line(&document)` would.
pub fn to_line_raw(doc: &RawDocument) -> Result<String, bson::raw::Error> {
    let mut out = Vec::with_capacity(doc.as_bytes().len() + doc.as_bytes().len() / 4);
    if write_document(doc, &mut out).is_ok() {
        if let Ok(text) = String::from_utf8(out) {
            return Ok(text);
        }
    }
    Ok(to_line(&crate::encoded::from_raw(doc)?))
}

fn fast_parse(line: &str) -> Option<Vec<u8>> {
    let mut de = serde_json::Deserializer::from_str(line);
    let mut out = Vec::with_capacity(line.len());
    let kind = ValueSeed { out: &mut out }.deserialize(&mut de).ok()?;
    de.end().ok()?;
    (kind == ElementType::EmbeddedDocument).then_some(out)
}

/// The keys that make `bson` read an object as an Extended JSON wrapper,
/// wherever they stand in it.
const WRAPPERS: [&str; 16] = [
    "$oid",
    "$symbol",
    "$regularExpression",
    "$numberInt",
    "$numberLong",
    "$numberDouble",
    "$numberDecimal",
    "$binary",
    "$uuid",
    "$code",
    "$timestamp",
    "$date",
    "$minKey",
    "$maxKey",
    "$dbPointer",
    "$undefined",
];

fn is_wrapper(key: &str) -> bool {
    key.starts_with('$') && WRAPPERS.contains(&key)
}

/// Writes one JSON value as the bytes of a BSON value and says its type.
struct ValueSeed<'a> {
    out: &'a mut Vec<u8>,
}

impl<'de> DeserializeSeed<'de> for ValueSeed<'_> {
    type Value = ElementType;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<ElementType, D::Error> {
        d.deserialize_any(self)
    }
}

/// Why the fast path gave up; the slow path then runs on the whole line.
fn give_up<E: de::Error>() -> E {
    E::custom("left to the slow path")
}

impl<'de> Visitor<'de> for ValueSeed<'_> {
    type Value = ElementType;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<ElementType, E> {
        self.out.push(u8::from(v));
        Ok(ElementType::Boolean)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<ElementType, E> {
        Ok(match i32::try_from(v) {
            Ok(small) => {
                self.out.extend_from_slice(&small.to_le_bytes());
                ElementType::Int32
            }
            Err(_) => {
                self.out.extend_from_slice(&v.to_le_bytes());
                ElementType::Int64
            }
        })
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<ElementType, E> {
        match i64::try_from(v) {
            Ok(signed) => self.visit_i64(signed),
            Err(_) => self.visit_f64(v as f64),
        }
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<ElementType, E> {
        if !v.is_finite() {
            return Err(give_up());
        }
        self.out.extend_from_slice(&v.to_le_bytes());
        Ok(ElementType::Double)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<ElementType, E> {
        write_string(self.out, v)?;
        Ok(ElementType::String)
    }

    fn visit_unit<E: de::Error>(self) -> Result<ElementType, E> {
        Ok(ElementType::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<ElementType, A::Error> {
        let start = open_document(self.out);
        let mut index = 0usize;
        loop {
            let at = self.out.len();
            self.out.push(0);
            write_cstring(self.out, itoa::Buffer::new().format(index))?;
            match seq.next_element_seed(ValueSeed { out: self.out })? {
                Some(kind) => self.out[at] = kind as u8,
                None => {
                    self.out.truncate(at);
                    break;
                }
            }
            index += 1;
        }
        close_document(self.out, start)?;
        Ok(ElementType::Array)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ElementType, A::Error> {
        let Some(first) = map.next_key_seed(KeySeed)? else {
            let start = open_document(self.out);
            close_document(self.out, start)?;
            return Ok(ElementType::EmbeddedDocument);
        };
        if is_wrapper(&first) {
            return wrapper(first, map, self.out);
        }
        let start = open_document(self.out);
        let mut keys: Vec<(usize, usize)> = Vec::new();
        let mut key = Some(first);
        while let Some(name) = key {
            if is_wrapper(&name) {
                return Err(give_up());
            }
            let at = self.out.len();
            self.out.push(0);
            let key_at = self.out.len();
            write_cstring(self.out, &name)?;
            if repeats(self.out, &keys, key_at) {
                return Err(give_up());
            }
            keys.push((key_at, self.out.len() - 1));
            self.out[at] = map.next_value_seed(ValueSeed { out: self.out })? as u8;
            key = map.next_key_seed(KeySeed)?;
        }
        close_document(self.out, start)?;
        Ok(ElementType::EmbeddedDocument)
    }
}

/// Whether the key just written (from `key_at` to the NUL at the end of
/// `out`) is one of `keys` (spans of `out`). Documents have few keys.
fn repeats(out: &[u8], keys: &[(usize, usize)], key_at: usize) -> bool {
    let new = &out[key_at..out.len() - 1];
    keys.iter().any(|&(from, to)| &out[from..to] == new)
}

/// An object whose first key is an Extended JSON wrapper: a lone `$oid` or
/// `$date` string is written here; any other goes through `bson`'s reading
/// of that one object.
fn wrapper<'de, A: MapAccess<'de>>(
    first: Cow<'de, str>,
    mut map: A,
    out: &mut Vec<u8>,
) -> Result<ElementType, A::Error> {
    let value: Value = map.next_value()?;
    let mut object = Map::new();
    object.insert(first.into_owned(), value);
    while let Some((key, value)) = map.next_entry::<String, Value>()? {
        if object.insert(key, value).is_some() {
            return Err(give_up());
        }
    }
    if let Some(kind) = lone_oid_or_date(&object, out) {
        return Ok(kind);
    }
    let bson = Bson::try_from(object).map_err(|_| give_up())?;
    write_bson_value(&bson, out)
}

fn lone_oid_or_date(object: &Map<String, Value>, out: &mut Vec<u8>) -> Option<ElementType> {
    if object.len() != 1 {
        return None;
    }
    let (key, Value::String(text)) = object.iter().next()? else {
        return None;
    };
    match key.as_str() {
        "$oid" => {
            let id = bson::oid::ObjectId::parse_str(text).ok()?;
            out.extend_from_slice(&id.bytes());
            Some(ElementType::ObjectId)
        }
        "$date" => {
            let at = bson::DateTime::parse_rfc3339_str(text).ok()?;
            out.extend_from_slice(&at.timestamp_millis().to_le_bytes());
            Some(ElementType::DateTime)
        }
        _ => None,
    }
}

/// The bytes of one value as `bson` encodes it inside a document.
fn write_bson_value<E: de::Error>(value: &Bson, out: &mut Vec<u8>) -> Result<ElementType, E> {
    let mut holder = Document::new();
    holder.insert("", value.clone());
    let bytes = bson::to_vec(&holder).map_err(|_| give_up())?;
    // 4 bytes of length, the type, the empty key's NUL, the value, the end NUL.
    let kind = ElementType::from(bytes[4]).ok_or_else(give_up)?;
    out.extend_from_slice(&bytes[6..bytes.len() - 1]);
    Ok(kind)
}

/// Reads an object key, borrowed from the line where it has no escapes.
struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Cow<'de, str>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_string()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v))
    }
}

fn open_document(out: &mut Vec<u8>) -> usize {
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    start
}

fn close_document<E: de::Error>(out: &mut Vec<u8>, start: usize) -> Result<(), E> {
    out.push(0);
    let len = i32::try_from(out.len() - start).map_err(|_| give_up())?;
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
    Ok(())
}

fn write_string<E: de::Error>(out: &mut Vec<u8>, text: &str) -> Result<(), E> {
    let len = i32::try_from(text.len() + 1).map_err(|_| give_up())?;
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(text.as_bytes());
    out.push(0);
    Ok(())
}

fn write_cstring<E: de::Error>(out: &mut Vec<u8>, text: &str) -> Result<(), E> {
    if text.contains('\0') {
        return Err(give_up());
    }
    out.extend_from_slice(text.as_bytes());
    out.push(0);
    Ok(())
}

/// Why the JSON writer gave up; the document then goes the slow path.
struct Unhandled;

impl From<bson::raw::Error> for Unhandled {
    fn from(_: bson::raw::Error) -> Unhandled {
        Unhandled
    }
}

impl From<std::io::Error> for Unhandled {
    fn from(_: std::io::Error) -> Unhandled {
        Unhandled
    }
}

impl From<serde_json::Error> for Unhandled {
    fn from(_: serde_json::Error) -> Unhandled {
        Unhandled
    }
}

fn write_document(doc: &RawDocument, out: &mut Vec<u8>) -> Result<(), Unhandled> {
    out.push(b'{');
    let mut seen: Vec<&str> = Vec::new();
    for element in doc {
        let (key, value) = element?;
        if seen.contains(&key) {
            return Err(Unhandled);
        }
        if !seen.is_empty() {
            out.push(b',');
        }
        seen.push(key);
        serde_json::to_writer(&mut *out, key)?;
        out.push(b':');
        write_value(value, out)?;
    }
    out.push(b'}');
    Ok(())
}

fn write_value(value: RawBsonRef<'_>, out: &mut Vec<u8>) -> Result<(), Unhandled> {
    match value {
        RawBsonRef::Document(doc) => write_document(doc, out)?,
        RawBsonRef::Array(items) => {
            out.push(b'[');
            for (i, item) in items.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(item?, out)?;
            }
            out.push(b']');
        }
        RawBsonRef::String(text) => serde_json::to_writer(&mut *out, text)?,
        RawBsonRef::Int32(n) => out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes()),
        RawBsonRef::Boolean(b) => out.extend_from_slice(if b { b"true" } else { b"false" }),
        RawBsonRef::Null => out.extend_from_slice(b"null"),
        other => {
            let bson = Bson::try_from(other)?;
            serde_json::to_writer(&mut *out, &to_json(&bson))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// What the slow path makes of a line: the BSON bytes, or the error text.
    fn slow(line: &str) -> Result<Vec<u8>, String> {
        let doc = parse_line(line).map_err(|e| e.to_string())?;
        bson::to_vec(&doc).map_err(|e| ExtJsonError::from(e).to_string())
    }

    fn fast(line: &str) -> Result<Vec<u8>, String> {
        parse_line_raw(line)
            .map(|d| d.into_bytes())
            .map_err(|e| e.to_string())
    }

    fn fixture_lines() -> Vec<String> {
        let mut lines = Vec::new();
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/legacy");
        for db in std::fs::read_dir(root).unwrap() {
            for file in std::fs::read_dir(db.unwrap().path()).unwrap() {
                let text = std::fs::read_to_string(file.unwrap().path()).unwrap();
                lines.extend(
                    text.lines()
                        .filter(|l| !l.trim().is_empty())
                        .map(String::from),
                );
            }
        }
        lines
    }

    #[test]
    fn every_fixture_line_reads_and_writes_as_the_slow_path_does() {
        let lines = fixture_lines();
        assert!(lines.len() > 50, "found only {} fixture lines", lines.len());
        for line in &lines {
            assert_eq!(fast(line), slow(line), "{line}");
            let doc = parse_line_raw(line).unwrap();
            let expected = to_line(&parse_line(line).unwrap());
            assert_eq!(to_line_raw(&doc).unwrap(), expected);
        }
    }

    #[test]
    fn lines_the_fast_path_leaves_alone_read_as_the_slow_path_reads_them() {
        let cases = [
            r#"{"_id": 1, "a": 1, "a": 2}"#,
            r#"{"_id": 1, "d": {"x": 1, "$date": "2024-01-01T00:00:00Z"}}"#,
            r#"{"_id": {"$oid": "0123456789abcdef01234567", "x": 1}}"#,
            r#"{"_id": {"$oid": "not hex"}}"#,
            r#"{"_id": {"$date": "yesterday"}}"#,
            r#"{"_id": 1, "t": {"$date": {"$numberLong": "1700000000000"}}}"#,
            r#"{"_id": 1, "n": {"$numberLong": "5"}, "i": {"$numberInt": "7"}}"#,
            r#"{"_id": 1, "r": {"$regularExpression": {"pattern": "a", "options": "i"}}}"#,
            r#"{"_id": 1, "b": {"$binary": {"base64": "AAE=", "subType": "00"}}}"#,
            r#"{"_id": 1, "k\u0000ey": 1}"#,
            r#"{"_id": 1, "s": "nul \u0000 inside a string is fine"}"#,
            r#"{"_id": 1, "big": 18446744073709551615, "neg": -9223372036854775808}"#,
            r#"{"_id": 1, "f": 1.0, "e": 1e300, "z": -0.0, "zero": -0}"#,
            r#"{"_id": 1, "$scope": 1, "$type": "x"}"#,
            r#"{"_id": 1, "e": {}, "a": [], "n": null, "nested": [[1, {"a": [true]}]]}"#,
            r#"{"_id": 1} trailing"#,
            r#"[1, 2]"#,
            r#""text""#,
            r#"{"_id": 1, "x": 1e400}"#,
            r#"{"_id": "\ud83d\ude00 \"quoted\" \\ back"}"#,
        ];
        for line in cases {
            assert_eq!(fast(line), slow(line), "{line}");
        }
    }

    /// JSON text of a value, often with the shapes the fast path handles
    /// itself and sometimes with those it must leave to the slow path.
    fn json_text() -> impl Strategy<Value = String> {
        let key = prop_oneof![
            "[a-c]{1,2}",
            Just("$oid".to_string()),
            Just("$date".to_string()),
            Just("$numberLong".to_string()),
            Just("$x".to_string()),
            Just("k\\u00e9\\n".to_string()),
        ];
        let leaf = prop_oneof![
            any::<i64>().prop_map(|n| n.to_string()),
            any::<u64>().prop_map(|n| n.to_string()),
            any::<f64>()
                .prop_filter("JSON numbers are finite", |f| f.is_finite())
                .prop_map(|f| format!("{f:e}")),
            Just("true".to_string()),
            Just("null".to_string()),
            "[ -~]{0,8}".prop_map(|s| serde_json::to_string(&s).unwrap()),
            Just(r#"{"$oid": "65a1b2c3d4e5f60718293a4b"}"#.to_string()),
            Just(r#"{"$date": "2024-05-06T07:08:09.123Z"}"#.to_string()),
            Just(r#"{"$numberLong": "42"}"#.to_string()),
        ];
        leaf.prop_recursive(4, 32, 5, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..5)
                    .prop_map(|items| format!("[{}]", items.join(","))),
                prop::collection::vec((key.clone(), inner), 0..5).prop_map(|fields| {
                    let body: Vec<String> =
                        fields.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
                    format!("{{{}}}", body.join(","))
                }),
            ]
        })
    }

    proptest! {
        #[test]
        fn any_line_reads_as_the_slow_path_reads_it(value in json_text()) {
            let line = format!("{{\"_id\":1,\"v\":{value}}}");
            prop_assert_eq!(fast(&line), slow(&line), "{}", line);
            if let Ok(doc) = parse_line_raw(&line) {
                let expected = to_line(&parse_line(&line).unwrap());
                prop_assert_eq!(to_line_raw(&doc).unwrap(), expected);
            }
        }
    }

    #[test]
    fn stored_documents_of_every_type_write_as_the_slow_path_writes_them() {
        use bson::{doc, oid::ObjectId, Binary, DateTime, Regex, Timestamp};
        let doc = doc! {
            "_id": ObjectId::new(), "s": "é \"q\" \n", "i": 5, "l": 5_i64, "L": 1_i64 << 40,
            "d": 1.5, "w": 2.0, "nan": f64::NAN, "inf": f64::NEG_INFINITY, "b": false,
            "n": null, "t": DateTime::from_millis(1_700_000_000_000),
            "old": DateTime::from_millis(-5_000_000_000_000),
            "ts": Timestamp { time: 1, increment: 2 },
            "bin": Binary { subtype: bson::spec::BinarySubtype::Generic, bytes: vec![0, 1] },
            "re": Regex { pattern: "a".into(), options: "i".into() },
            "arr": [1, "x", { "deep": [null] }], "empty": {},
        };
        let raw = RawDocumentBuf::from_document(&doc).unwrap();
        assert_eq!(to_line_raw(&raw).unwrap(), to_line(&doc));
    }

    #[test]
    fn a_stored_document_with_a_repeated_key_writes_as_the_slow_path_writes_it() {
        let mut raw = RawDocumentBuf::new();
        raw.append("_id", 1);
        raw.append("a", 1);
        raw.append("a", "two");
        let expected = to_line(&crate::encoded::from_raw(&raw).unwrap());
        assert_eq!(to_line_raw(&raw).unwrap(), expected);
    }
}
