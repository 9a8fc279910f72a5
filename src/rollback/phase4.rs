//! `rollback --phase 4`: rename the deprecated collections back, then turn
//! the legacy endpoints on again (in that order, so the endpoints find their
//! collections). Refused, naming them, when a collection of an original name
//! exists again: the backend wrote to it after the cleanup, and renaming
//! over it would lose those documents.

use crate::config::Config;
use crate::confirm::confirm;
use crate::error::{CommandError, CommandResult};
use crate::flags::{EnvFile, DISABLE_LEGACY};
use crate::phase4::{deprecated, pairs, renamed_bson, renamed_json, Deprecated};
use crate::report::Output;
use crate::run::{Run, RunSpec};
use crate::store::Store;
use crate::toggle::{self, apply, Consent, FlagOptions};
use serde_json::json;
use std::time::Instant;

/// Undoes `phase4 cleanup`.
pub fn rollback(
    store: &dyn Store,
    config: &Config,
    flags: &FlagOptions,
    consent: &Consent,
) -> CommandResult<Output> {
    let started = Instant::now();
    EnvFile::read(&flags.env_file)?;
    let mut newest: Vec<Deprecated> = Vec::new();
    for d in deprecated(store, config)? {
        match newest.iter_mut().find(|n| n.original == d.original) {
            Some(n) if n.date < d.date => *n = d,
            Some(_) => {}
            None => newest.push(d),
        }
    }
    let existing = store.list_collections(&config.legacy_db)?;
    let back: Vec<(String, String)> = newest
        .iter()
        .map(|d| (d.name.clone(), d.original.clone()))
        .collect();
    let clashes: Vec<String> = back
        .iter()
        .filter(|(_, original)| existing.contains(original))
        .map(|(dep, original)| {
            let n = store.count(&config.legacy(original)).unwrap_or(0);
            format!("{original} ({n} documents) beside {dep}")
        })
        .collect();
    if !clashes.is_empty() {
        return Err(CommandError::Gate(format!(
            "refusing to rename back: {} in {} exists again (written after the cleanup?): {}\n\
             nothing was renamed. Move those documents into the deprecated collection (or drop the new \
             collection if it holds nothing you need), then run `edn-migrate rollback --phase 4` again",
            if clashes.len() == 1 { "a collection" } else { "collections" },
            config.legacy_db,
            clashes.join("; ")
        )));
    }
    let question = if back.is_empty() {
        format!("no deprecated collection to rename back; set {DISABLE_LEGACY}=false?")
    } else {
        format!(
            "rename {} in {}, then set {DISABLE_LEGACY}=false?",
            pairs(&back),
            config.legacy_db
        )
    };
    confirm(&question, consent.yes)?;
    let mut run = Run::start(
        store,
        config,
        RunSpec {
            force_reason: consent.force_reason.clone(),
            ..RunSpec::locked("rollback --phase 4", "legacy")
        },
    )?;
    let run_id = run.id().to_string();
    let mut done = Vec::new();
    for (from, to) in &back {
        if let Err(e) = store.rename_collection(&config.legacy(from), to) {
            let e = CommandError::from(e);
            run.record_mut().summary = Some(bson::doc! { "renamed": renamed_bson(&done) });
            run.fail(&e);
            return Err(CommandError::Input(format!(
                "{e}\nrenamed back so far: {}; run `edn-migrate rollback --phase 4 --yes` again to finish",
                if done.is_empty() { "none".to_string() } else { pairs(&done) }
            )));
        }
        done.push((from.clone(), to.clone()));
    }
    let extra = bson::doc! { "renamed": renamed_bson(&done) };
    let applied = match apply(&[(DISABLE_LEGACY, "false")], flags) {
        Ok(a) => a,
        Err(e) => {
            run.record_mut().summary = Some(extra);
            run.fail(&e);
            return Err(e);
        }
    };
    run.record_mut().summary = Some(toggle::summary(Some(&applied), &[], Some(extra)));
    if applied.restart_failed() {
        let e = toggle::restart_failed(
            "rollback --phase 4",
            &applied,
            &run_id,
            "edn-migrate phase4 cleanup",
        );
        run.fail(&e);
        return Err(e);
    }
    run.finish("succeeded", None)?;
    let text = if done.is_empty() {
        "  no deprecated collection was found: nothing renamed\n".to_string()
    } else {
        format!("  renamed back in {}: {}\n", config.legacy_db, pairs(&done))
    };
    Ok(toggle::render(
        "rollback --phase 4",
        &run_id,
        &applied,
        &[],
        consent,
        started.elapsed(),
        Some((text, json!({ "renamed": renamed_json(&done) }))),
    ))
}
