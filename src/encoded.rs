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

fn element_len(key_len: usize, value: &Bson) -> Option<usize> {
    Some(1 + key_len + 1 + value_len(value)?)
}

fn cstring(text: &str) -> Option<()> {
    (!text.as_bytes().contains(&0)).then_some(())
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

/// A document read from its bytes, nested documents converted in place:
/// the bson crate's own conversion copies every nested document's bytes
/// once per level before reading them, which made decoding stored drawers
/// and legacy documents a fifth of a migration.
pub fn from_raw(raw: &RawDocument) -> Result<Document, bson::raw::Error> {
    let mut doc = Document::new();
    for element in raw {
        let (key, value) = element?;
        doc.insert(key.to_owned(), value_from_raw(value)?);
    }
    Ok(doc)
}

fn value_from_raw(value: RawBsonRef<'_>) -> Result<Bson, bson::raw::Error> {
    Ok(match value {
        RawBsonRef::Document(d) => Bson::Document(from_raw(d)?),
        RawBsonRef::Array(items) => Bson::Array(
            items
                .into_iter()
                .map(|item| item.and_then(value_from_raw))
                .collect::<Result<_, _>>()?,
        ),
        other => Bson::try_from(other)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::oid::ObjectId;
    use bson::{doc, Binary, Decimal128, JavaScriptCodeWithScope, Regex, Timestamp};

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
    fn a_nul_in_a_key_cannot_be_encoded() {
        let d = doc! { "a\0b": 1 };
        assert!(bson::to_vec(&d).is_err());
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
}
