//! Phase 0: create `client_drawers` and its indexes, and the `user_id`
//! indexes that let phase 2 stream the legacy collections in user order.
//!
//! Additive and idempotent: a second run creates nothing and says so.

use crate::config::Config;
use crate::error::{CommandError, CommandResult};
use crate::report::{table, Output};
use crate::store::{sort_key, value_at_path, IndexSpec, Ns, Scan, Store};
use serde::Deserialize;
use serde_json::json;

/// The reviewed index definitions in `migrations/indexes.json`.
#[derive(Debug, Deserialize)]
pub struct IndexPlan {
    /// Indexes of the drawer collection.
    pub drawers: Vec<IndexSpec>,
    /// Indexes of each legacy collection merged per user.
    pub legacy_per_user: Vec<IndexSpec>,
}

impl IndexPlan {
    /// The definitions shipped with the binary.
    pub fn builtin() -> CommandResult<IndexPlan> {
        serde_json::from_str(include_str!("../migrations/indexes.json"))
            .map_err(|e| CommandError::Input(format!("migrations/indexes.json is invalid: {e}")))
    }
}

/// One step of `prepare` and whether it changed anything.
struct Step {
    what: &'static str,
    ns: Ns,
    name: String,
    created: bool,
}

/// The top-level entry point for `phase0 prepare`.
pub fn prepare(store: &dyn Store, config: &Config, legacy_indexes: bool) -> CommandResult<Output> {
    let plan = IndexPlan::builtin()?;
    let drawers = config.drawers_ns();
    let mut steps = vec![Step {
        what: "collection",
        name: drawers.coll.clone(),
        created: store.create_collection(&drawers)?,
        ns: drawers.clone(),
    }];
    for spec in &plan.drawers {
        steps.push(index_step(store, &drawers, spec)?);
    }
    if legacy_indexes {
        for coll in config.per_user_collections() {
            let ns = config.legacy(coll);
            if store.list_collections(&ns.db)?.iter().any(|c| c == coll) {
                for spec in &plan.legacy_per_user {
                    steps.push(index_step(store, &ns, spec)?);
                }
            }
        }
    }
    Ok(render(store, &steps))
}

fn index_step(store: &dyn Store, ns: &Ns, spec: &IndexSpec) -> CommandResult<Step> {
    let created = match store.create_index(ns, spec) {
        Ok(created) => created,
        Err(crate::store::StoreError::DuplicateKey { .. }) => {
            let which = first_duplicate(store, ns, spec)?;
            return Err(CommandError::Gate(format!(
                "{ns} cannot take the unique index {}: {which}; make them one document (or give each its own value), then run `edn-migrate phase0 prepare` again",
                spec.name
            )));
        }
        Err(e @ crate::store::StoreError::IndexConflict { .. }) => {
            return Err(CommandError::Gate(e.to_string()))
        }
        Err(e) => return Err(e.into()),
    };
    Ok(Step {
        what: "index",
        ns: ns.clone(),
        name: spec.name.clone(),
        created,
    })
}

/// The first two documents that share a value of a unique index's keys,
/// by `_id`, and that value (an id such as a `user_id`, not personal data).
fn first_duplicate(store: &dyn Store, ns: &Ns, spec: &IndexSpec) -> CommandResult<String> {
    let [key] = spec.keys.as_slice() else {
        return Ok(format!(
            "two documents share a value of {}",
            spec.keys.join(", ")
        ));
    };
    let value = |d: &bson::Document| value_at_path(d, key).cloned().unwrap_or(bson::Bson::Null);
    let mut previous: Option<bson::Document> = None;
    for doc in store.scan(ns, &Scan::by_field(key, 1000))? {
        let doc = doc?;
        if let Some(p) = &previous {
            if sort_key(Some(&value(p))) == sort_key(Some(&value(&doc))) {
                let id = |d: &bson::Document| {
                    d.get("_id")
                        .map(|v| crate::extjson::to_json(v).to_string())
                        .unwrap_or_default()
                };
                return Ok(format!(
                    "documents {} and {} both hold {key} {}",
                    id(p),
                    id(&doc),
                    crate::extjson::to_json(&value(&doc))
                ));
            }
        }
        previous = Some(doc);
    }
    Ok(format!(
        "two documents share a value of {}",
        spec.keys.join(", ")
    ))
}

fn render(store: &dyn Store, steps: &[Step]) -> Output {
    let changed = steps.iter().filter(|s| s.created).count();
    let mut rows = vec![vec![
        "kind".into(),
        "namespace".into(),
        "name".into(),
        "state".into(),
    ]];
    rows.extend(steps.iter().map(|s| {
        let state = if s.created {
            "created"
        } else {
            "already present"
        };
        vec![
            s.what.into(),
            s.ns.to_string(),
            s.name.clone(),
            state.into(),
        ]
    }));
    let headline = if changed == 0 {
        "phase 0: nothing to do, everything was already in place".to_string()
    } else {
        format!("phase 0: created {changed} of {} items", steps.len())
    };
    let text = format!("{headline} ({})\n{}", store.describe(), table(&rows));
    let json = json!({
        "store": store.describe(),
        "changed": changed > 0,
        "created": changed,
        "steps": steps.iter().map(|s| json!({
            "kind": s.what, "namespace": s.ns.to_string(), "name": s.name, "created": s.created,
        })).collect::<Vec<_>>(),
    });
    Output { text, json }
}
