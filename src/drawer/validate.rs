//! The drawer validator: one drawer → the list of what is wrong with it.
//! Messages name paths, ids and versions, never personal values.

use std::collections::HashSet;

use bson::{Bson, Document};

use super::meta::{
    ArraySpec, ARRAYS, FOLLOWUPS, NUTRITION_PLANS, SHARED, SNAPSHOTS, TRAINING_PLANS,
};
use super::path;
use crate::mapping::{id_key, BLOCKS};

/// One problem, at one field path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationError {
    pub path: String,
    pub message: String,
}

impl std::fmt::Display for ValidationError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

struct V(Vec<ValidationError>);

impl V {
    fn err(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(ValidationError {
            path: path.into(),
            message: message.into(),
        });
    }
}

fn entries<'a>(d: &'a Document, spec: ArraySpec, v: &mut V) -> Vec<&'a Document> {
    match path::get(d, spec.path) {
        None => Vec::new(),
        Some(Bson::Array(items)) => {
            let mut out = Vec::new();
            for (i, e) in items.iter().enumerate() {
                match e.as_document() {
                    Some(doc) => out.push(doc),
                    None => v.err(format!("{}[{i}]", spec.path), "entry is not an object"),
                }
            }
            out
        }
        Some(_) => {
            v.err(spec.path, "not an array");
            Vec::new()
        }
    }
}

/// Checks one drawer. `archived_snapshot_ids` are snapshots moved to the
/// archive collection (the drawer's own `meta.migration.archived_snapshot_ids`
/// are added to them); references to them are valid.
pub fn validate(drawer: &Document, archived_snapshot_ids: &[String]) -> Vec<ValidationError> {
    let mut v = V(Vec::new());
    for key in ["_id", "user_id", "profile", "services", "meta"] {
        if !drawer.contains_key(key) {
            v.err(key, "required key missing");
        }
    }
    match (drawer.get("_id"), drawer.get("user_id")) {
        (Some(Bson::String(id)), Some(Bson::String(uid))) if *id != format!("client_{uid}") => {
            v.err("_id", "is not client_<user_id>");
        }
        (_, Some(Bson::String(_))) | (_, None) => {}
        (_, Some(_)) => v.err("user_id", "not a string"),
    }
    for key in ["profile", "services", "meta"] {
        if drawer.get(key).is_some_and(|x| x.as_document().is_none()) {
            v.err(key, "not an object");
        }
    }
    match path::get(drawer, "profile.edad") {
        None | Some(Bson::Null) | Some(Bson::Int32(_)) | Some(Bson::Int64(_)) => {}
        Some(_) => v.err("profile.edad", "not an integer or null"),
    }

    // Keyed arrays: every entry has its key, keys unique.
    for spec in ARRAYS.iter().filter(|s| s.key.is_some()) {
        let mut seen = HashSet::new();
        for (i, e) in entries(drawer, *spec, &mut v).iter().enumerate() {
            let field = spec.key.unwrap_or_default();
            match e.get(field) {
                None | Some(Bson::Null) => v.err(format!("{}[{i}].{field}", spec.path), "missing"),
                Some(k) => {
                    if !seen.insert(id_key(k)) {
                        v.err(
                            format!("{}[{i}].{field}", spec.path),
                            format!("duplicate id {}", id_key(k)),
                        );
                    }
                }
            }
        }
    }
    for (i, e) in entries(drawer, SHARED, &mut v).iter().enumerate() {
        if !matches!(
            e.get_str("source"),
            Ok("nutrition_initial") | Ok("followup")
        ) {
            v.err(
                format!("{}[{i}].source", SHARED.path),
                "not nutrition_initial or followup",
            );
        }
    }
    let measurements = super::meta::MEASUREMENTS;
    for (i, e) in entries(drawer, measurements, &mut v).iter().enumerate() {
        if !matches!(e.get_str("tipo"), Ok("inicial") | Ok("seguimiento")) {
            v.err(
                format!("{}[{i}].tipo", measurements.path),
                "not inicial or seguimiento",
            );
        }
    }

    // An active service needs its own initial questionnaire (the plan's rule).
    let inicial = path::get(drawer, "services.training.questionnaires.inicial");
    for service in ["training", "nutrition"] {
        let active = path::get(drawer, &format!("services.{service}.active"));
        if matches!(active, Some(Bson::Boolean(true))) {
            let own = path::get(
                drawer,
                &format!("services.{service}.questionnaires.inicial"),
            );
            if !matches!(own, Some(Bson::Document(d)) if !d.is_empty()) {
                v.err(
                    format!("services.{service}.active"),
                    format!("service is active but services.{service}.questionnaires.inicial is missing"),
                );
            }
            let listed = path::array(drawer, "meta.active_services")
                .iter()
                .any(|s| s.as_str() == Some(service));
            if !listed {
                v.err(
                    "meta.active_services",
                    format!("active service {service} not listed"),
                );
            }
        }
    }
    if let Some(Bson::Document(q)) = inicial {
        match q.get_document("responses") {
            Ok(r) => {
                for b in BLOCKS {
                    if !matches!(r.get(b), Some(Bson::Document(_))) {
                        v.err(
                            format!("services.training.questionnaires.inicial.responses.{b}"),
                            "block missing",
                        );
                    }
                }
            }
            Err(_) => v.err(
                "services.training.questionnaires.inicial.responses",
                "missing",
            ),
        }
    }
    match path::get(drawer, "meta.status") {
        Some(Bson::String(s)) if s == "active" || s == "needs_review" => {}
        _ => v.err("meta.status", "not active or needs_review"),
    }

    // Snapshots: versions exactly 1..n in order, v1 without a previous, each
    // later one pointing at its predecessor (the plan's rule; an archived
    // snapshot leaves a stub in place, so there are no gaps).
    let mut archived: HashSet<String> = archived_snapshot_ids.iter().cloned().collect();
    for id in path::array(drawer, "meta.migration.archived_snapshot_ids") {
        if let Some(s) = id.as_str() {
            archived.insert(s.to_owned());
        }
    }
    let snaps = entries(drawer, SNAPSHOTS, &mut v);
    let mut ids: HashSet<String> = HashSet::new();
    for s in &snaps {
        if let Some(id) = s.get("snapshot_id") {
            ids.insert(id_key(id));
        }
    }
    let mut prev: Option<String> = None;
    for (i, s) in snaps.iter().enumerate() {
        let p = format!("{}[{i}]", SNAPSHOTS.path);
        let sid = s.get("snapshot_id").map(id_key).unwrap_or_default();
        match s.get("version") {
            Some(Bson::Int32(x)) if i64::from(*x) == i as i64 + 1 => {}
            Some(Bson::Int64(x)) if *x == i as i64 + 1 => {}
            Some(Bson::Int32(_)) | Some(Bson::Int64(_)) => v.err(
                format!("{p}.version"),
                format!(
                    "snapshot versions are not 1..n (snapshot {sid} at position {})",
                    i + 1
                ),
            ),
            _ => v.err(format!("{p}.version"), "missing or not an integer"),
        }
        let actual_prev = match s.get("previous_snapshot_id") {
            None | Some(Bson::Null) => None,
            Some(x) => Some(id_key(x)),
        };
        if actual_prev != prev {
            v.err(
                format!("{p}.previous_snapshot_id"),
                format!(
                    "snapshot {sid} points at {} (expected {})",
                    actual_prev.as_deref().unwrap_or("none"),
                    prev.as_deref().unwrap_or("none")
                ),
            );
        }
        prev = Some(sid);
    }

    let known = |id: &str| ids.contains(id) || archived.contains(id);
    for (i, f) in entries(drawer, FOLLOWUPS, &mut v).iter().enumerate() {
        let p = format!("{}[{i}]", FOLLOWUPS.path);
        let previous = match f.get("previous_snapshot_id") {
            None | Some(Bson::Null) => None,
            Some(x) => Some(id_key(x)),
        };
        if let Some(prev) = &previous {
            if !known(prev) {
                v.err(
                    format!("{p}.previous_snapshot_id"),
                    format!("snapshot {prev} is not in the drawer or its archive"),
                );
            }
        }
        match (f.get_str("snapshot_link"), &previous) {
            (Ok("none"), None) | (Ok("plan"), Some(_)) | (Ok("date"), Some(_)) => {}
            (Ok("none"), Some(_)) => v.err(
                format!("{p}.snapshot_link"),
                "none but previous_snapshot_id is set",
            ),
            (Ok("plan"), None) | (Ok("date"), None) => v.err(
                format!("{p}.snapshot_link"),
                "linked but previous_snapshot_id is null",
            ),
            _ => v.err(format!("{p}.snapshot_link"), "not plan, date or none"),
        }
    }
    for spec in [TRAINING_PLANS, NUTRITION_PLANS] {
        for (i, plan) in entries(drawer, spec, &mut v).iter().enumerate() {
            match plan.get("snapshot_id") {
                None | Some(Bson::Null) if spec == NUTRITION_PLANS => {}
                None | Some(Bson::Null) => {
                    v.err(format!("{}[{i}].snapshot_id", spec.path), "missing")
                }
                Some(s) => {
                    let s = id_key(s);
                    if !known(&s) {
                        v.err(
                            format!("{}[{i}].snapshot_id", spec.path),
                            format!("snapshot {s} is not in the drawer or its archive"),
                        );
                    }
                }
            }
        }
    }
    v.0
}
