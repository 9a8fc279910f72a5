//! Typed values derived from verbatim answers: numbers, ages, dates, ids.
//!
//! Answers stay verbatim in `responses`; these helpers only derive the typed
//! copies the TO BE model needs (`profile.edad`, measurement `data`). A value
//! that cannot be parsed becomes `None` and the caller records a warning.

use std::borrow::Cow;

use bson::{Bson, Document};
use chrono::{DateTime, NaiveDate, NaiveDateTime};

/// Outcome of deriving a typed value from an answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Parsed<T> {
    /// The answer is absent or null: not answered, no warning.
    Missing,
    /// The typed value.
    Value(T),
    /// The answer is there but is not a value of the wanted type: null + warning.
    Unparsable,
}

impl<T> Parsed<T> {
    /// The value, if any.
    pub fn value(self) -> Option<T> {
        match self {
            Parsed::Value(v) => Some(v),
            _ => None,
        }
    }
}

/// A number from an answer: `85`, `85.5`, `"85,5"`, `" 85.5 kg "`, `"-3"`.
/// Accepts one decimal separator (`,` or `.`), an optional sign and an
/// optional trailing unit `kg`, `cm` or `%`. Thousands separators are refused
/// (`"1.234,5"` is ambiguous).
pub fn parse_number(value: Option<&Bson>) -> Parsed<f64> {
    match value {
        None | Some(Bson::Null) => Parsed::Missing,
        Some(Bson::Int32(n)) => Parsed::Value(f64::from(*n)),
        Some(Bson::Int64(n)) => Parsed::Value(*n as f64),
        Some(Bson::Double(x)) if x.is_finite() => Parsed::Value(*x),
        Some(Bson::String(s)) => parse_number_text(s),
        Some(_) => Parsed::Unparsable,
    }
}

fn parse_number_text(s: &str) -> Parsed<f64> {
    // An empty answer where a number is needed is reported like any other
    // unparsable one (the reference script's `int("")` crashed on it).
    let mut t = s.trim();
    if t.is_empty() {
        return Parsed::Unparsable;
    }
    let lower = t.to_ascii_lowercase();
    for unit in ["kg", "cm", "%"] {
        if lower.ends_with(unit) {
            t = t[..t.len() - unit.len()].trim_end();
            break;
        }
    }
    let body = t.strip_prefix(['-', '+']).unwrap_or(t);
    let separators = body.chars().filter(|c| *c == ',' || *c == '.').count();
    let digits_ok = body
        .chars()
        .all(|c| c.is_ascii_digit() || c == ',' || c == '.');
    let has_digit = body.chars().any(|c| c.is_ascii_digit());
    if !digits_ok || !has_digit || separators > 1 {
        return Parsed::Unparsable;
    }
    match t.replace(',', ".").parse::<f64>() {
        Ok(x) if x.is_finite() => Parsed::Value(x),
        _ => Parsed::Unparsable,
    }
}

/// A whole number (an age): `34`, `"34"`, `34.0`, `" 34 "`. `"34,5"` is unparsable.
pub fn parse_int(value: Option<&Bson>) -> Parsed<i32> {
    match parse_number(value) {
        Parsed::Value(x)
            if x.fract() == 0.0 && x >= f64::from(i32::MIN) && x <= f64::from(i32::MAX) =>
        {
            Parsed::Value(x as i32)
        }
        Parsed::Value(_) | Parsed::Unparsable => Parsed::Unparsable,
        Parsed::Missing => Parsed::Missing,
    }
}

/// Milliseconds since the epoch of a date-like value: a BSON date, an RFC 3339
/// string, `YYYY-MM-DDTHH:MM:SS[.fff]` or `YYYY-MM-DD HH:MM:SS` (read as UTC),
/// or `YYYY-MM-DD` (midnight UTC). Anything else is `None`.
pub fn date_millis(value: Option<&Bson>) -> Option<i64> {
    match value? {
        Bson::DateTime(d) => Some(d.timestamp_millis()),
        Bson::String(s) => {
            let s = s.trim();
            if let Ok(d) = DateTime::parse_from_rfc3339(s) {
                return Some(d.timestamp_millis());
            }
            for fmt in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
                if let Ok(d) = NaiveDateTime::parse_from_str(s, fmt) {
                    return Some(d.and_utc().timestamp_millis());
                }
            }
            NaiveDate::parse_from_str(s, "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .map(|d| d.and_utc().timestamp_millis())
        }
        _ => None,
    }
}

/// A BSON date from a date-like answer (the shapes [`date_millis`] reads):
/// what every date field of the drawer holds, whatever type the legacy
/// document used. `""` and text in another shape are unparsable.
pub fn parse_date(value: Option<&Bson>) -> Parsed<bson::DateTime> {
    match value {
        None | Some(Bson::Null) => Parsed::Missing,
        v => match date_millis(v) {
            Some(ms) => Parsed::Value(bson::DateTime::from_millis(ms)),
            None => Parsed::Unparsable,
        },
    }
}

/// A stable text form of an id, used to match entries by key and to break
/// ties: a string as is, an ObjectId as its hex, an integer in decimal,
/// anything else as canonical Extended JSON.
pub fn id_key(id: &Bson) -> String {
    match id {
        Bson::String(s) => s.clone(),
        Bson::ObjectId(o) => o.to_hex(),
        Bson::Int32(n) => n.to_string(),
        Bson::Int64(n) => n.to_string(),
        other => other.clone().into_canonical_extjson().to_string(),
    }
}

/// [`id_key`] borrowed where the id is a string, as most are: for matching
/// and sorting by key without copying each key.
pub fn id_key_ref(id: &Bson) -> Cow<'_, str> {
    match id {
        Bson::String(s) => Cow::Borrowed(s),
        other => Cow::Owned(id_key(other)),
    }
}

/// The `_id` of a document as an id key (`""` when it has none).
pub fn doc_id_key(doc: &Document) -> String {
    doc.get("_id").map(id_key).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::oid::ObjectId;

    #[test]
    fn comma_decimals_and_units_parse() {
        assert_eq!(parse_number(Some(&Bson::from("85,5"))), Parsed::Value(85.5));
        assert_eq!(
            parse_number(Some(&Bson::from(" 85.5 kg "))),
            Parsed::Value(85.5)
        );
        assert_eq!(parse_number(Some(&Bson::from("22%"))), Parsed::Value(22.0));
        assert_eq!(parse_number(Some(&Bson::Int32(85))), Parsed::Value(85.0));
        assert_eq!(parse_number(Some(&Bson::from(""))), Parsed::Unparsable);
        assert_eq!(parse_number(None), Parsed::Missing);
        assert_eq!(
            parse_number(Some(&Bson::from("ochenta"))),
            Parsed::Unparsable
        );
        assert_eq!(
            parse_number(Some(&Bson::from("1.234,5"))),
            Parsed::Unparsable
        );
        assert_eq!(parse_number(Some(&Bson::from("NaN"))), Parsed::Unparsable);
        assert_eq!(parse_number(Some(&Bson::from("inf"))), Parsed::Unparsable);
        assert_eq!(parse_number(Some(&Bson::Boolean(true))), Parsed::Unparsable);
    }

    #[test]
    fn ages_are_whole_numbers() {
        assert_eq!(parse_int(Some(&Bson::from("34"))), Parsed::Value(34));
        assert_eq!(parse_int(Some(&Bson::Double(34.0))), Parsed::Value(34));
        assert_eq!(parse_int(Some(&Bson::from("34,5"))), Parsed::Unparsable);
        // The reference script's `int(edad)` crashes on "": here it is null + warning.
        assert_eq!(parse_int(Some(&Bson::from(""))), Parsed::Unparsable);
        assert_eq!(parse_int(None), Parsed::Missing);
        assert_eq!(
            parse_int(Some(&Bson::from("9999999999"))),
            Parsed::Unparsable
        );
    }

    #[test]
    fn dates_in_the_shapes_legacy_data_uses() {
        let d = date_millis(Some(&Bson::from("2025-01-02"))).unwrap();
        assert_eq!(d, 1_735_776_000_000);
        assert_eq!(
            date_millis(Some(&Bson::from("2025-01-02T00:00:00Z"))),
            Some(d)
        );
        assert_eq!(
            date_millis(Some(&Bson::from("2025-01-02T01:00:00+01:00"))),
            Some(d)
        );
        assert_eq!(
            date_millis(Some(&Bson::DateTime(bson::DateTime::from_millis(d)))),
            Some(d)
        );
        assert_eq!(
            date_millis(Some(&Bson::from("2025-01-02 00:00:00"))),
            Some(d)
        );
        assert_eq!(
            date_millis(Some(&Bson::from("2025-01-02T00:00:00.000"))),
            Some(d)
        );
        assert_eq!(
            parse_date(Some(&Bson::from("2025-01-02"))),
            Parsed::Value(bson::DateTime::from_millis(d))
        );
        assert_eq!(parse_date(Some(&Bson::from(""))), Parsed::Unparsable);
        assert_eq!(
            parse_date(Some(&Bson::from("02/01/2025"))),
            Parsed::Unparsable
        );
        assert_eq!(parse_date(Some(&Bson::Null)), Parsed::Missing);
        assert_eq!(date_millis(Some(&Bson::from("ayer"))), None);
        assert_eq!(date_millis(Some(&Bson::Int64(5))), None);
    }

    #[test]
    fn id_keys() {
        let oid = ObjectId::parse_str("65a1b2c3d4e5f60718293a4b").unwrap();
        assert_eq!(id_key(&Bson::ObjectId(oid)), "65a1b2c3d4e5f60718293a4b");
        assert_eq!(id_key(&Bson::from("abc")), "abc");
        assert_eq!(id_key(&Bson::Int64(7)), "7");
    }
}
