//! What a BSON value weighs once encoded, and whether two values encode to
//! the same bytes, answered by walking the values instead of encoding them:
//! the builder, the planner and the engine ask both for every drawer, and
//! encoding to compare or to measure was a tenth of a migration's time.

use bson::{spec::BinarySubtype, Bson, Document, RawBsonRef, RawDocument};

/// The encoded size of a document in bytes, or `None` when it cannot be
/// encoded (a key or a regular expression holding a NUL byte).
pub fn doc_len(doc: &Document) -> Option<usize> {
    let mut total = 4 + 1;
    for (key, value) in doc {
        cstring(key)?;
        total += element_len(key.len(), value)?;
    }
    Some(total)
}

/// The encoded size of a value without its type byte and key.
pub fn value_len(value: &Bson) -> Option<usize> {
    Some(match value {
        Bson::Double(_) | Bson::DateTime(_) | Bson::Timestamp(_) | Bson::Int64(_) => 8,
        Bson::String(s) | Bson::JavaScriptCode(s) | Bson::Symbol(s) => 4 + s.len() + 1,
        Bson::Document(d) => doc_len(d)?,
        Bson::Array(items) => {
            let mut total = 4 + 1;
            for (i, item) in items.iter().enumerate() {
                total += element_len(digits(i), item)?;
            }
            total
        }
        Bson::Binary(b) => {
            let old = if b.subtype == BinarySubtype::BinaryOld {
                4
            } else {
                0
            };
            4 + 1 + old + b.bytes.len()
        }
        Bson::ObjectId(_) => 12,
        Bson::Boolean(_) => 1,
        Bson::Null | Bson::Undefined | Bson::MaxKey | Bson::MinKey => 0,
        Bson::RegularExpression(r) => {
            cstring(&r.pattern)?;
            cstring(&r.options)?;
            r.pattern.len() + 1 + r.options.len() + 1
        }
        Bson::JavaScriptCodeWithScope(c) => 4 + (4 + c.code.len() + 1) + doc_len(&c.scope)?,
        Bson::Int32(_) => 4,
        Bson::Decimal128(_) => 16,
        // Not constructible field by field; encode this rare one.
        Bson::DbPointer(_) => {
            let wrapped = bson::doc! { "v": value.clone() };
            bson::to_vec(&wrapped).ok()?.len() - 4 - 1 - 3
        }
    })
}

/// The encoded size of a document whose fields are given as the length of
/// each key and the encoded size of its value, for a document that is
/// measured without being built.
pub fn framed(fields: impl IntoIterator<Item = (usize, usize)>) -> usize {
    4 + fields
        .into_iter()
        .map(|(key, value)| 1 + key + 1 + value)
        .sum::<usize>()
        + 1
}

/// The encoded size of an array whose items encode to the given sizes.
pub fn array_of(items: impl IntoIterator<Item = usize>) -> usize {
    framed(
        items
            .into_iter()
            .enumerate()
            .map(|(i, value)| (digits(i), value)),
    )
}

/// The encoded size of an element: type byte, key, value.
pub(crate) fn element_len(key_len: usize, value: &Bson) -> Option<usize> {
    Some(1 + key_len + 1 + value_len(value)?)
}

/// Whether a key can be written as a C string. Keys are a few bytes long,
/// shorter than `memchr`'s set-up (what `contains` calls).
fn cstring(text: &str) -> Option<()> {
    no_nul(text.as_bytes()).then_some(())
}

/// Eight bytes at a time (a word has a zero byte when subtracting one from
/// each byte borrows into a byte whose top bit was clear), the rest one by
/// one: measuring a drawer checks every key it holds.
fn no_nul(bytes: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const TOPS: u64 = 0x8080_8080_8080_8080;
    let mut words = bytes.chunks_exact(8);
    for word in words.by_ref() {
        let w = u64::from_le_bytes(word.try_into().unwrap_or([1; 8]));
        if w.wrapping_sub(ONES) & !w & TOPS != 0 {
            return false;
        }
    }
    words.remainder().iter().all(|&b| b != 0)
}

fn digits(mut n: usize) -> usize {
    let mut d = 1;
    while n >= 10 {
        n /= 10;
        d += 1;
    }
    d
}

/// Whether two values encode to the same bytes: same types (an int is not a
/// double, null is not missing), same values (doubles bit for bit, so NaN
/// equals itself), embedded fields in the same order.
pub fn same(a: &Bson, b: &Bson) -> bool {
    match (a, b) {
        (Bson::Double(x), Bson::Double(y)) => x.to_bits() == y.to_bits(),
        (Bson::Document(x), Bson::Document(y)) => same_doc(x, y),
        (Bson::Array(x), Bson::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b))
        }
        (Bson::JavaScriptCodeWithScope(x), Bson::JavaScriptCodeWithScope(y)) => {
            x.code == y.code && same_doc(&x.scope, &y.scope)
        }
        _ => std::mem::discriminant(a) == std::mem::discriminant(b) && a == b,
    }
}

/// [`same`] for documents: the same fields in the same order.
pub fn same_doc(a: &Document, b: &Document) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|((ka, va), (kb, vb))| ka == kb && same(va, vb))
}

/// A document read from its bytes. The common types are read straight from
/// the bytes ([`read_document`]); a document holding anything else, or
/// anything malformed, is read again through the bson crate's iterator, so
/// the result, or the crate's error, is always the crate's. Decoding legacy
/// documents and stored drawers through that iterator alone was a fifth of
/// a migration, most of it the iterator's own checks per element.
pub fn from_raw(raw: &RawDocument) -> Result<Document, bson::raw::Error> {
    let bytes = raw.as_bytes();
    match read_document(bytes, 0) {
        Some((doc, end)) if end == bytes.len() => Ok(doc),
        _ => from_raw_checked(raw),
    }
}

/// The bson crate's reading, element by element, nested documents converted
/// in place (the crate's own conversion copies every nested document's
/// bytes once per level before reading them).
fn from_raw_checked(raw: &RawDocument) -> Result<Document, bson::raw::Error> {
    let mut doc = Document::new();
    for element in raw {
        let (key, value) = element?;
        doc.insert(key.to_owned(), value_from_raw(value)?);
    }
    Ok(doc)
}

fn value_from_raw(value: RawBsonRef<'_>) -> Result<Bson, bson::raw::Error> {
    Ok(match value {
        RawBsonRef::Document(d) => Bson::Document(from_raw_checked(d)?),
        RawBsonRef::Array(items) => Bson::Array(
            items
                .into_iter()
                .map(|item| item.and_then(value_from_raw))
                .collect::<Result<_, _>>()?,
        ),
        other => Bson::try_from(other)?,
    })
}

/// A document's bytes, as `bson::to_vec` writes them. The common types are
/// written straight into the buffer ([`write_document`]); a document holding
/// anything else, or a key with a NUL byte, is encoded again by the crate, so
/// the bytes, or the crate's error, are always the crate's. Encoding through
/// the crate's serializer cost a migration 7% more instructions.
pub fn to_vec(doc: &Document) -> bson::ser::Result<Vec<u8>> {
    to_vec_sized(doc, ENCODE_START_BYTES)
}

/// [`to_vec`] into a buffer of `expected` bytes, for a caller that knows
/// the size (a drawer the builder measured, the stored bytes it should
/// equal): the buffer is not grown and copied on the way there.
pub fn to_vec_sized(doc: &Document, expected: usize) -> bson::ser::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(expected);
    match write_document(&mut out, doc) {
        Some(()) => Ok(out),
        None => bson::to_vec(doc),
    }
}

/// The first allocation of [`to_vec`]'s buffer: most documents written are
/// drawers of tens of kilobytes, which grow into it in a few doublings.
const ENCODE_START_BYTES: usize = 4096;

/// Writes a document (length, elements, terminator); `None` for what it
/// leaves to the crate: binary, regular expression, code, timestamp,
/// pointer and symbol values, a key holding a NUL byte, a document over
/// `i32::MAX` bytes.
fn write_document(out: &mut Vec<u8>, doc: &Document) -> Option<()> {
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    for (key, value) in doc {
        write_element(out, key.as_bytes(), value)?;
    }
    close_document(out, start)
}

fn write_array(out: &mut Vec<u8>, items: &[Bson]) -> Option<()> {
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    let mut key = itoa::Buffer::new();
    for (i, item) in items.iter().enumerate() {
        write_element(out, key.format(i).as_bytes(), item)?;
    }
    close_document(out, start)
}

/// Ends the document begun at `start` (its length's place, four bytes)
/// and writes its length there; `None` over `i32::MAX` bytes.
pub(crate) fn close_document(out: &mut Vec<u8>, start: usize) -> Option<()> {
    out.push(0);
    let len = i32::try_from(out.len() - start).ok()?;
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
    Some(())
}

fn write_element(out: &mut Vec<u8>, key: &[u8], value: &Bson) -> Option<()> {
    if !no_nul(key) {
        return None;
    }
    let kind_at = out.len();
    out.push(0);
    out.extend_from_slice(key);
    out.push(0);
    out[kind_at] = write_value(out, value)?;
    Some(())
}

/// Writes a value without its type byte and key; its type byte.
fn write_value(out: &mut Vec<u8>, value: &Bson) -> Option<u8> {
    Some(match value {
        Bson::Double(x) => {
            out.extend_from_slice(&x.to_le_bytes());
            0x01
        }
        Bson::String(s) => {
            let len = i32::try_from(s.len() + 1).ok()?;
            out.extend_from_slice(&len.to_le_bytes());
            out.extend_from_slice(s.as_bytes());
            out.push(0);
            0x02
        }
        Bson::Document(d) => {
            write_document(out, d)?;
            0x03
        }
        Bson::Array(items) => {
            write_array(out, items)?;
            0x04
        }
        Bson::Undefined => 0x06,
        Bson::ObjectId(id) => {
            out.extend_from_slice(&id.bytes());
            0x07
        }
        Bson::Boolean(b) => {
            out.push(u8::from(*b));
            0x08
        }
        Bson::DateTime(d) => {
            out.extend_from_slice(&d.timestamp_millis().to_le_bytes());
            0x09
        }
        Bson::Null => 0x0A,
        Bson::Int32(n) => {
            out.extend_from_slice(&n.to_le_bytes());
            0x10
        }
        Bson::Int64(n) => {
            out.extend_from_slice(&n.to_le_bytes());
            0x12
        }
        Bson::Decimal128(d) => {
            out.extend_from_slice(&d.bytes());
            0x13
        }
        Bson::MaxKey => 0x7F,
        Bson::MinKey => 0xFF,
        _ => return None,
    })
}

/// The document framed at `at` and the offset just past it, read without
/// the crate's iterator. `None` for a type it leaves to the crate (binary,
/// regular expression, code, timestamp, pointer, symbol) and for anything
/// the crate would refuse or might read otherwise: a length out of bounds,
/// a missing terminator, a key or string that is not UTF-8, a boolean
/// other than 0 or 1. Stricter than the crate, never laxer.
fn read_document(bytes: &[u8], at: usize) -> Option<(Document, usize)> {
    let mut doc = empty_document();
    let end = read_elements(bytes, at, |key, value| {
        doc.insert(key.to_owned(), value);
    })?;
    Some((doc, end))
}

/// A new empty document. `Document::new` seeds each document's hasher from
/// one atomic counter shared by every thread (ahash's `gen_hasher_seed`):
/// 2.4% of the decoding thread's time when it decoded alone, and a cache
/// line the cores pass back and forth now that they decode together. A
/// clone of an empty document copies its seed instead.
pub(crate) fn empty_document() -> Document {
    static EMPTY: std::sync::OnceLock<Document> = std::sync::OnceLock::new();
    EMPTY.get_or_init(Document::new).clone()
}

/// An array's values in order (its keys are read, checked, and dropped, as
/// the crate does).
fn read_array(bytes: &[u8], at: usize) -> Option<(Vec<Bson>, usize)> {
    let mut items = Vec::new();
    let end = read_elements(bytes, at, |_, value| items.push(value))?;
    Some((items, end))
}

/// Walks the elements of the document framed at `at`, handing each key and
/// value to `each`; the offset just past the document.
fn read_elements(bytes: &[u8], at: usize, mut each: impl FnMut(&str, Bson)) -> Option<usize> {
    let (mut pos, last) = frame_at(bytes, at)?;
    while pos < last {
        let (kind, key, value_at) = element_head(bytes, pos, last)?;
        let (value, next) = read_value(bytes, kind, value_at)?;
        each(std::str::from_utf8(key).ok()?, value);
        pos = next;
    }
    (pos == last).then_some(last + 1)
}

/// The document framed at `at`: where its first element starts, and where
/// its terminator is. `None` when its length is out of bounds or it does
/// not end in NUL.
pub(crate) fn frame_at(bytes: &[u8], at: usize) -> Option<(usize, usize)> {
    let len = usize::try_from(read_i32(bytes, at)?).ok()?;
    let end = at.checked_add(len)?;
    if len < 5 || end > bytes.len() || bytes[end - 1] != 0 {
        return None;
    }
    Some((at + 4, end - 1))
}

/// The element that starts at `pos` in a document whose terminator is at
/// `last`: its type byte, its key (not checked as UTF-8), and where its
/// value starts. `None` when the key runs into the terminator.
pub(crate) fn element_head(bytes: &[u8], pos: usize, last: usize) -> Option<(u8, &[u8], usize)> {
    let key_at = pos + 1;
    let key_len = bytes.get(key_at..last)?.iter().position(|&b| b == 0)?;
    Some((
        bytes[pos],
        &bytes[key_at..key_at + key_len],
        key_at + key_len + 1,
    ))
}

/// The offset just past the value of type `kind` at `at`, read from its
/// length alone, for the types [`read_value`] reads; `None` for any other,
/// or when the value is malformed: a string that is not UTF-8 or not
/// NUL-terminated, a document or array whose frame is out of bounds, a
/// boolean other than 0 or 1. Nested documents are framed, not walked.
pub(crate) fn value_end(bytes: &[u8], kind: u8, at: usize) -> Option<usize> {
    let fixed = |n: usize| {
        let end = at.checked_add(n)?;
        (end <= bytes.len()).then_some(end)
    };
    match kind {
        0x01 | 0x09 | 0x12 => fixed(8),
        0x02 => {
            let (text, end) = string_at(bytes, at)?;
            std::str::from_utf8(text).ok()?;
            Some(end)
        }
        0x03 | 0x04 => frame_at(bytes, at).map(|(_, last)| last + 1),
        0x06 | 0x0A | 0x7F | 0xFF => Some(at),
        0x07 => fixed(12),
        0x08 => matches!(bytes.get(at), Some(0 | 1)).then_some(at + 1),
        0x10 => fixed(4),
        0x13 => fixed(16),
        _ => None,
    }
}

/// The value of type `kind` at `at` and the offset just past it.
fn read_value(bytes: &[u8], kind: u8, at: usize) -> Option<(Bson, usize)> {
    let fixed = |n: usize| bytes.get(at..at.checked_add(n)?);
    Some(match kind {
        0x01 => (
            Bson::Double(f64::from_le_bytes(fixed(8)?.try_into().ok()?)),
            at + 8,
        ),
        0x02 => {
            let (text, end) = string_at(bytes, at)?;
            let s = std::str::from_utf8(text).ok()?;
            (Bson::String(s.to_owned()), end)
        }
        0x03 => {
            let (doc, end) = read_document(bytes, at)?;
            (Bson::Document(doc), end)
        }
        0x04 => {
            let (items, end) = read_array(bytes, at)?;
            (Bson::Array(items), end)
        }
        0x06 => (Bson::Undefined, at),
        0x07 => {
            let id = bson::oid::ObjectId::from_bytes(fixed(12)?.try_into().ok()?);
            (Bson::ObjectId(id), at + 12)
        }
        0x08 => match fixed(1)?[0] {
            0 => (Bson::Boolean(false), at + 1),
            1 => (Bson::Boolean(true), at + 1),
            _ => return None,
        },
        0x09 => {
            let millis = i64::from_le_bytes(fixed(8)?.try_into().ok()?);
            (Bson::DateTime(bson::DateTime::from_millis(millis)), at + 8)
        }
        0x0A => (Bson::Null, at),
        0x10 => (Bson::Int32(read_i32(bytes, at)?), at + 4),
        0x12 => (
            Bson::Int64(i64::from_le_bytes(fixed(8)?.try_into().ok()?)),
            at + 8,
        ),
        0x13 => {
            let d = bson::Decimal128::from_bytes(fixed(16)?.try_into().ok()?);
            (Bson::Decimal128(d), at + 16)
        }
        0x7F => (Bson::MaxKey, at),
        0xFF => (Bson::MinKey, at),
        _ => return None,
    })
}

/// The bytes of the BSON string at `at` (without its length and its NUL)
/// and the offset just past it; `None` when its length is out of bounds or
/// it does not end in NUL. Not checked as UTF-8.
pub(crate) fn string_at(bytes: &[u8], at: usize) -> Option<(&[u8], usize)> {
    let len = usize::try_from(read_i32(bytes, at)?).ok()?;
    let text = at.checked_add(4)?;
    let end = text.checked_add(len)?;
    if len < 1 || end > bytes.len() || bytes[end - 1] != 0 {
        return None;
    }
    Some((&bytes[text..end - 1], end))
}

pub(crate) fn read_i32(bytes: &[u8], at: usize) -> Option<i32> {
    Some(i32::from_le_bytes(
        bytes.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::oid::ObjectId;
    use bson::{doc, Binary, Decimal128, JavaScriptCodeWithScope, Regex, Timestamp};
    use proptest::prelude::*;

    fn every_type() -> Document {
        doc! {
            "double": 1.5, "nan": f64::NAN, "string": "añadir", "empty": "",
            "doc": { "a": 1, "b": { "c": [1, 2, 3] } },
            "array": (0..12).map(Bson::from).collect::<Vec<_>>(),
            "generic": Binary { subtype: BinarySubtype::Generic, bytes: vec![1, 2, 3] },
            "old": Binary { subtype: BinarySubtype::BinaryOld, bytes: vec![9; 7] },
            "oid": ObjectId::from_bytes([7; 12]), "bool": true,
            "date": bson::DateTime::from_millis(1_700_000_000_000), "null": Bson::Null,
            "regex": Regex { pattern: "^a.*".into(), options: "i".into() },
            "code": Bson::JavaScriptCode("f()".into()),
            "scoped": JavaScriptCodeWithScope { code: "g()".into(), scope: doc! { "x": 1 } },
            "int": 3, "ts": Timestamp { time: 1, increment: 2 }, "long": 4_i64,
            "dec": Decimal128::from_bytes([1; 16]), "min": Bson::MinKey, "max": Bson::MaxKey,
            "undef": Bson::Undefined, "symbol": Bson::Symbol("s".into()),
        }
    }

    #[test]
    fn lengths_are_those_of_the_encoding() {
        let d = every_type();
        assert_eq!(doc_len(&d), Some(bson::to_vec(&d).unwrap().len()));
        let big =
            doc! { "list": (0..1234).map(|i| Bson::from(format!("x{i}"))).collect::<Vec<_>>() };
        assert_eq!(doc_len(&big), Some(bson::to_vec(&big).unwrap().len()));
    }

    #[test]
    fn documents_read_from_bytes_are_those_the_crate_reads() {
        let mut d = every_type();
        d.insert(
            "nested",
            doc! { "a": [{ "b": [[1, 2], { "c": every_type() }] }], "d": {} },
        );
        let bytes = bson::to_vec(&d).unwrap();
        let raw = RawDocument::from_bytes(&bytes).unwrap();
        let ours = from_raw(raw).unwrap();
        let theirs = Document::try_from(raw).unwrap();
        assert!(same_doc(&ours, &theirs));
        assert_eq!(bson::to_vec(&ours).unwrap(), bytes);
    }

    #[test]
    fn documents_are_written_as_the_crate_writes_them() {
        let common = doc! {
            "s": "añadir", "nul": "a\0b", "d": { "a": [1, { "b": 2.5 }], "e": {} },
            "many": (0..23).map(Bson::from).collect::<Vec<_>>(), "t": true, "f": false,
            "oid": ObjectId::from_bytes([7; 12]), "when": bson::DateTime::from_millis(-5),
            "long": i64::MIN, "dec": Decimal128::from_bytes([3; 16]), "n": Bson::Null,
            "u": Bson::Undefined, "min": Bson::MinKey, "max": Bson::MaxKey,
        };
        let mut ours = Vec::new();
        assert!(
            write_document(&mut ours, &common).is_some(),
            "all common types"
        );
        assert_eq!(ours, bson::to_vec(&common).unwrap());
        let every = every_type();
        assert!(
            write_document(&mut Vec::new(), &every).is_none(),
            "left to the crate"
        );
        assert_eq!(to_vec(&every).unwrap(), bson::to_vec(&every).unwrap());
    }

    #[test]
    fn a_nul_is_found_wherever_it_is() {
        for len in 0..20 {
            let clean: Vec<u8> = (0..len).map(|i| [b'a', 0x80, 0xff, 0x01][i % 4]).collect();
            assert!(no_nul(&clean), "{clean:?}");
            for at in 0..len {
                let mut with = clean.clone();
                with[at] = 0;
                assert!(!no_nul(&with), "{with:?}");
            }
        }
    }

    #[test]
    fn a_nul_in_a_key_cannot_be_encoded() {
        let d = doc! { "a\0b": 1 };
        assert!(bson::to_vec(&d).is_err());
        assert!(to_vec(&d).is_err());
        assert!(to_vec(&doc! { "x": { "y": [d.clone()] } }).is_err());
        assert_eq!(doc_len(&d), None);
    }

    #[test]
    fn same_means_the_same_bytes() {
        let d = every_type();
        assert!(same_doc(&d, &d.clone()));
        let mut reordered = Document::new();
        for (k, v) in d.iter().collect::<Vec<_>>().into_iter().rev() {
            reordered.insert(k.clone(), v.clone());
        }
        assert!(!same_doc(&d, &reordered), "field order counts");
        assert!(!same(&Bson::Int32(1), &Bson::Int64(1)));
        assert!(!same(&Bson::Double(0.0), &Bson::Double(-0.0)));
        assert!(same(&Bson::Double(f64::NAN), &Bson::Double(f64::NAN)));
        assert!(!same(&Bson::Null, &Bson::Undefined));
        let a = Bson::Document(doc! { "x": { "y": 1, "z": 2 } });
        let b = Bson::Document(doc! { "x": { "z": 2, "y": 1 } });
        assert!(!same(&a, &b), "embedded field order counts");
        for (a, b) in [(&a, &a), (&a, &b)] {
            let bytes = |v: &Bson| bson::to_vec(&doc! { "v": v.clone() }).unwrap();
            assert_eq!(same(a, b), bytes(a) == bytes(b));
        }
    }

    fn arb_value() -> impl Strategy<Value = Bson> {
        let leaf = prop_oneof![
            any::<f64>().prop_map(Bson::Double),
            "[a-zé\\x00-\\x7f]{0,6}".prop_map(Bson::String),
            any::<bool>().prop_map(Bson::Boolean),
            any::<i32>().prop_map(Bson::Int32),
            any::<i64>().prop_map(Bson::Int64),
            any::<i64>().prop_map(|m| Bson::DateTime(bson::DateTime::from_millis(m))),
            any::<[u8; 12]>().prop_map(|b| Bson::ObjectId(ObjectId::from_bytes(b))),
            any::<[u8; 16]>().prop_map(|b| Bson::Decimal128(Decimal128::from_bytes(b))),
            Just(Bson::Null),
            Just(Bson::Undefined),
            Just(Bson::MinKey),
            Just(Bson::MaxKey),
            // Left to the crate: the reader must hand these over whole.
            Just(Bson::Timestamp(Timestamp {
                time: 1,
                increment: 2
            })),
            Just(Bson::Binary(Binary {
                subtype: BinarySubtype::Generic,
                bytes: vec![1, 2]
            })),
        ];
        leaf.prop_recursive(4, 32, 5, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..5).prop_map(Bson::Array),
                prop::collection::vec(("[a-c]{1,2}", inner), 0..5)
                    .prop_map(|fields| Bson::Document(fields.into_iter().collect())),
            ]
        })
    }

    /// What the crate's iterator reads from the same bytes.
    fn checked(bytes: &[u8]) -> Option<Document> {
        from_raw_checked(RawDocument::from_bytes(bytes).ok()?).ok()
    }

    proptest! {
        #[test]
        fn any_document_reads_as_the_crate_reads_it(v in arb_value()) {
            let bytes = bson::to_vec(&doc! { "v": v }).unwrap();
            let ours = from_raw(RawDocument::from_bytes(&bytes).unwrap()).unwrap();
            prop_assert!(same_doc(&ours, &checked(&bytes).unwrap()));
            prop_assert_eq!(bson::to_vec(&ours).unwrap(), bytes);
        }

        #[test]
        fn any_document_is_written_as_the_crate_writes_it(
            v in arb_value(),
            key in "[a\\x00]{1,2}",
        ) {
            let d = doc! { key: v.clone(), "v": v };
            prop_assert_eq!(to_vec(&d).ok(), bson::to_vec(&d).ok());
        }

        /// Whatever the reader accepts from damaged bytes, the crate reads
        /// the same; where it gives up, `from_raw` is the crate's.
        #[test]
        fn damaged_bytes_read_as_the_crate_reads_them_or_not_at_all(
            v in arb_value(),
            at in any::<prop::sample::Index>(),
            byte in any::<u8>(),
        ) {
            let mut bytes = bson::to_vec(&doc! { "v": v, "w": "end" }).unwrap();
            let i = at.index(bytes.len());
            bytes[i] = byte;
            if let Some((ours, end)) = read_document(&bytes, 0) {
                prop_assert_eq!(end, bytes.len());
                let theirs = checked(&bytes);
                prop_assert!(theirs.is_some(), "the crate refuses what the reader read");
                prop_assert!(same_doc(&ours, &theirs.unwrap()));
            }
        }
    }

    #[test]
    fn the_reader_leaves_other_types_and_bad_text_to_the_crate() {
        let with_binary = bson::to_vec(&every_type()).unwrap();
        assert!(read_document(&with_binary, 0).is_none());
        let mut bad_text = bson::to_vec(&doc! { "s": "ab" }).unwrap();
        let i = bad_text.len() - 3;
        bad_text[i] = 0xFF;
        assert!(read_document(&bad_text, 0).is_none());
        assert!(from_raw(RawDocument::from_bytes(&bad_text).unwrap()).is_err());
    }
}
