//! The plan's own `MigrationHelper.validate_drawer` (reference 000_…, section
//! 4.3), ported line by line as a test oracle: every drawer the tool builds or
//! writes must pass it unchanged, as well as our own validator.
//!
//! Python semantics are kept where they decide the outcome: truthiness
//! (`None`, `False`, `0`, `""`, `[]`, `{}` are false), `==` between numbers
//! of different types (`1 == 1.0 == True`), and exceptions: a `KeyError` or
//! `AttributeError` in the plan's code is returned as `Err`, because the
//! plan's validation script would stop there.

use bson::{Bson, Document};

/// A Python exception raised inside `validate_drawer`.
pub type Raised = String;

/// `dict.get(key)`: `AttributeError` when `obj` is not a dict.
fn get<'a>(obj: &'a Bson, key: &str) -> Result<Option<&'a Bson>, Raised> {
    match obj {
        Bson::Document(d) => Ok(d.get(key)),
        other => Err(format!(
            "AttributeError: {:?} object has no attribute 'get'",
            other.element_type()
        )),
    }
}

/// `obj[key]`: `KeyError` when absent, `TypeError` when not subscriptable by a string.
fn index<'a>(obj: &'a Bson, key: &str) -> Result<&'a Bson, Raised> {
    match obj {
        Bson::Document(d) => d.get(key).ok_or_else(|| format!("KeyError: '{key}'")),
        other => Err(format!(
            "TypeError: {:?} indices must be integers",
            other.element_type()
        )),
    }
}

/// Python truthiness of a decoded BSON value.
fn truthy(v: Option<&Bson>) -> bool {
    match v {
        None | Some(Bson::Null) | Some(Bson::Undefined) => false,
        Some(Bson::Boolean(b)) => *b,
        Some(Bson::Int32(n)) => *n != 0,
        Some(Bson::Int64(n)) => *n != 0,
        Some(Bson::Double(x)) => *x != 0.0,
        Some(Bson::String(s)) => !s.is_empty(),
        Some(Bson::Array(a)) => !a.is_empty(),
        Some(Bson::Document(d)) => !d.is_empty(),
        Some(_) => true,
    }
}

fn number(v: &Bson) -> Option<f64> {
    match v {
        Bson::Boolean(b) => Some(f64::from(u8::from(*b))),
        Bson::Int32(n) => Some(f64::from(*n)),
        Bson::Int64(n) => Some(*n as f64),
        Bson::Double(x) => Some(*x),
        _ => None,
    }
}

/// Python `a == b` for decoded BSON values (numbers by value).
fn py_eq(a: Option<&Bson>, b: Option<&Bson>) -> bool {
    let none = |v: Option<&Bson>| v.is_none() || matches!(v, Some(Bson::Null));
    match (a, b) {
        _ if none(a) || none(b) => none(a) && none(b),
        (Some(x), Some(y)) => match (number(x), number(y)) {
            (Some(p), Some(q)) => p == q,
            (None, None) => match (x, y) {
                (Bson::Array(p), Bson::Array(q)) => {
                    p.len() == q.len() && p.iter().zip(q).all(|(i, j)| py_eq(Some(i), Some(j)))
                }
                (Bson::Document(p), Bson::Document(q)) => {
                    p.len() == q.len() && p.iter().all(|(k, v)| py_eq(Some(v), q.get(k)))
                }
                _ => x == y,
            },
            _ => false,
        },
        _ => false,
    }
}

fn repr(v: Option<&Bson>) -> String {
    match v {
        None | Some(Bson::Null) => "None".into(),
        Some(Bson::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

/// `MigrationHelper.validate_drawer(drawer)`: the list of errors (empty when
/// the plan accepts the drawer), or the exception the plan's code raises.
pub fn validate_drawer(drawer: &Document) -> Result<Vec<String>, Raised> {
    let root = Bson::Document(drawer.clone());
    let mut errors = Vec::new();

    // Validar estructura básica
    let required_keys = ["_id", "user_id", "profile", "services", "meta"];
    for key in required_keys {
        if !drawer.contains_key(key) {
            errors.push(format!("Missing required key: {key}"));
        }
    }

    // Validar servicios activos
    if drawer.contains_key("services") {
        for service_name in ["training", "nutrition"] {
            let service = get(index(&root, "services")?, service_name)?;
            if truthy(service) && truthy(get(service.unwrap_or(&Bson::Null), "active")?) {
                let service = service.unwrap_or(&Bson::Null);
                // service.get("questionnaires", {}).get("inicial")
                let empty = Bson::Document(Document::new());
                let questionnaires = get(service, "questionnaires")?.unwrap_or(&empty);
                if !truthy(get(questionnaires, "inicial")?) {
                    errors.push(format!(
                        "{service_name} is active but missing inicial questionnaire"
                    ));
                }
            }
        }
    }

    // Validar coherencia de snapshots
    for service_name in ["training", "nutrition"] {
        let service = get(index(&root, "services")?, service_name)?;
        if !(truthy(service) && truthy(get(service.unwrap_or(&Bson::Null), "snapshots")?)) {
            continue;
        }
        let snapshots = match index(service.unwrap_or(&Bson::Null), "snapshots")? {
            Bson::Array(items) => items,
            other => {
                return Err(format!(
                    "TypeError: iterating {:?} yields no snapshot dicts",
                    other.element_type()
                ))
            }
        };

        // Verificar versionado secuencial
        let mut versions = Vec::new();
        for s in snapshots {
            versions.push(index(s, "version")?.clone());
        }
        // versions != list(range(1, len(versions) + 1)): same length by construction.
        let equal = versions
            .iter()
            .zip(1_i64..)
            .all(|(v, n)| py_eq(Some(v), Some(&Bson::Int64(n))));
        if !equal {
            let shown: Vec<String> = versions.iter().map(|v| repr(Some(v))).collect();
            errors.push(format!(
                "{service_name} snapshots have non-sequential versions: [{}]",
                shown.join(", ")
            ));
        }

        // Verificar previous_snapshot_id
        for (i, snapshot) in snapshots.iter().enumerate() {
            if i == 0 {
                if truthy(get(snapshot, "previous_snapshot_id")?) {
                    errors.push(format!(
                        "{service_name} first snapshot has previous_snapshot_id"
                    ));
                }
            } else {
                let expected_prev = index(&snapshots[i - 1], "snapshot_id")?;
                let actual_prev = get(snapshot, "previous_snapshot_id")?;
                if !py_eq(actual_prev, Some(expected_prev)) {
                    errors.push(format!(
                        "{service_name} snapshot v{} has wrong previous_snapshot_id: {} (expected {})",
                        repr(Some(index(snapshot, "version")?)),
                        repr(actual_prev),
                        repr(Some(expected_prev))
                    ));
                }
            }
        }
    }

    Ok(errors)
}

/// Panics with the drawer id and the plan's errors unless the plan's
/// validator accepts the drawer. An empty document (no drawer needed) passes.
pub fn assert_plan_accepts(drawer: &Document) {
    if drawer.is_empty() {
        return;
    }
    let id = drawer.get("_id").map(|v| v.to_string()).unwrap_or_default();
    match validate_drawer(drawer) {
        Ok(errors) if errors.is_empty() => {}
        Ok(errors) => panic!("the plan's validate_drawer rejects {id}: {errors:?}"),
        Err(raised) => panic!("the plan's validate_drawer raises on {id}: {raised}"),
    }
}
