//! Phase 4: retire the legacy questionnaire collections. `phase4 cleanup`
//! (behind its gates: the switch has held 48 h and TO BE jobs are healthy)
//! turns `DISABLE_LEGACY_ENDPOINTS` on, so nothing writes the legacy
//! collections any more, then renames them `<name>_DEPRECATED_YYYYMMDD`
//! (plan section 8.1): nothing is deleted, and `rollback --phase 4` renames
//! them back. `--drop-expired` drops deprecated collections past the 30-day
//! retention (plan section 3), only with confirmation.
//!
//! Which collections: the two the plan deprecates, the initial
//! questionnaires and the follow-ups, whose documents every drawer holds
//! verbatim (`raw_payload`). Users, plans and generation jobs stay: the
//! backend still reads and writes them in the TO BE model.

use crate::config::Config;
use crate::confirm::confirm;
use crate::error::{CommandError, CommandResult};
use crate::flags::{EnvFile, DISABLE_LEGACY};
use crate::gates::{self, Action};
use crate::report::Output;
use crate::run::{Run, RunSpec};
use crate::store::Store;
use crate::toggle::{self, apply, Consent, FlagOptions};
use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use serde_json::json;
use std::time::Instant;

/// Days a deprecated collection is kept before `--drop-expired` may drop it.
pub const RETENTION_DAYS: i64 = 30;
/// What `cleanup` appends to a collection's name, before the date.
pub const SUFFIX: &str = "_DEPRECATED_";

/// A legacy collection renamed by `phase4 cleanup`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Deprecated {
    /// The name the backend used.
    pub original: String,
    /// Its name now.
    pub name: String,
    /// The day it was renamed (from the name).
    pub date: NaiveDate,
}

impl Deprecated {
    /// Whether it has been kept longer than `days`.
    pub fn expired(&self, now: DateTime<Utc>, days: i64) -> bool {
        (now.date_naive() - self.date).num_days() > days
    }
}

/// The collections phase 4 retires (plan section 8.1).
pub fn targets(config: &Config) -> [&str; 2] {
    [&config.submissions, &config.followups]
}

/// Every deprecated copy of a target collection in the legacy database.
pub fn deprecated(store: &dyn Store, config: &Config) -> CommandResult<Vec<Deprecated>> {
    let mut found = Vec::new();
    for name in store.list_collections(&config.legacy_db)? {
        for original in targets(config) {
            let date = name
                .strip_prefix(original)
                .and_then(|rest| rest.strip_prefix(SUFFIX))
                .filter(|d| d.len() == 8 && d.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|d| NaiveDate::parse_from_str(d, "%Y%m%d").ok());
            if let Some(date) = date {
                found.push(Deprecated {
                    original: original.to_string(),
                    name: name.clone(),
                    date,
                });
            }
        }
    }
    Ok(found)
}

/// What `phase4 cleanup` was asked.
#[derive(Debug, Clone)]
pub struct CleanupOptions {
    /// Drop deprecated collections past the retention instead of renaming.
    pub drop_expired: bool,
    /// The retention in days.
    pub retention_days: i64,
}

/// The top-level entry point for `phase4 cleanup`.
pub fn cleanup(
    store: &dyn Store,
    config: &Config,
    opts: &CleanupOptions,
    flags: &FlagOptions,
    consent: &Consent,
) -> CommandResult<Output> {
    if opts.drop_expired {
        return drop_expired(store, config, opts.retention_days, consent);
    }
    let started = Instant::now();
    let facts = toggle::facts(store, config, flags, consent);
    let gates = gates::enforce(
        Action::Phase4Cleanup,
        &facts,
        consent.force_reason.as_deref(),
    )?;
    EnvFile::read(&flags.env_file)?;
    let existing = store.list_collections(&config.legacy_db)?;
    let day = facts.now.format("%Y%m%d");
    let renames: Vec<(String, String)> = targets(config)
        .into_iter()
        .filter(|t| existing.iter().any(|e| e == t))
        .map(|t| (t.to_string(), format!("{t}{SUFFIX}{day}")))
        .collect();
    if renames.is_empty() {
        return Err(CommandError::Input(format!(
            "none of {} exists in {}: nothing to deprecate (already done? see `edn-migrate status`)",
            targets(config).join(", "),
            config.legacy_db
        )));
    }
    if let Some((_, taken)) = renames.iter().find(|(_, to)| existing.contains(to)) {
        return Err(CommandError::Gate(format!(
            "{taken} already exists in {}: nothing was changed. Undo the earlier cleanup with `edn-migrate rollback --phase 4`, then run this again",
            config.legacy_db
        )));
    }
    let list: Vec<String> = renames.iter().map(|(f, t)| format!("{f} -> {t}")).collect();
    confirm(
        &format!(
            "set {DISABLE_LEGACY}=true, then rename {} in {}?",
            list.join(", "),
            config.legacy_db
        ),
        consent.yes,
    )?;
    let mut run = Run::start(
        store,
        config,
        RunSpec {
            force_reason: consent.force_reason.clone(),
            ..RunSpec::locked("phase4 cleanup", "legacy")
        },
    )?;
    let applied = match apply(&[(DISABLE_LEGACY, "true")], flags) {
        Ok(a) => a,
        Err(e) => {
            run.fail(&e);
            return Err(e);
        }
    };
    let run_id = run.id().to_string();
    if applied.restart_failed() {
        run.record_mut().summary = Some(toggle::summary(Some(&applied), &gates, None));
        let e = toggle::restart_failed(
            "phase4 cleanup",
            &applied,
            &run_id,
            "edn-migrate rollback --phase 4 --yes",
        );
        run.fail(&e);
        return Err(CommandError::Input(format!(
            "{e}\nno collection was renamed"
        )));
    }
    let mut done = Vec::new();
    for (from, to) in &renames {
        if let Err(e) = store.rename_collection(&config.legacy(from), to) {
            let e = CommandError::from(e);
            run.record_mut().summary = Some(toggle::summary(
                Some(&applied),
                &gates,
                Some(bson::doc! { "renamed": renamed_bson(&done) }),
            ));
            run.fail(&e);
            return Err(CommandError::Input(format!(
                "{e}\nrenamed so far: {}; undo with `edn-migrate rollback --phase 4 --yes`",
                if done.is_empty() {
                    "none".to_string()
                } else {
                    pairs(&done)
                }
            )));
        }
        done.push((from.clone(), to.clone()));
    }
    run.record_mut().summary = Some(toggle::summary(
        Some(&applied),
        &gates,
        Some(bson::doc! { "renamed": renamed_bson(&done) }),
    ));
    run.finish("succeeded", None)?;
    let text = format!(
        "  renamed in {}: {}\n  kept {RETENTION_DAYS} days; roll back with `edn-migrate rollback --phase 4 --yes`\n",
        config.legacy_db,
        pairs(&done)
    );
    Ok(toggle::render(
        "phase4 cleanup",
        &run_id,
        &applied,
        &gates,
        consent,
        started.elapsed(),
        Some((text, json!({ "renamed": renamed_json(&done) }))),
    ))
}

/// `a -> b, c -> d`.
pub fn pairs(list: &[(String, String)]) -> String {
    list.iter()
        .map(|(f, t)| format!("{f} -> {t}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Renames as `[{from, to}]` for run records.
pub fn renamed_bson(list: &[(String, String)]) -> Vec<bson::Bson> {
    list.iter()
        .map(|(f, t)| bson::Bson::Document(bson::doc! { "from": f, "to": t }))
        .collect()
}

/// Renames as `[{from, to}]` for `--json`.
pub fn renamed_json(list: &[(String, String)]) -> serde_json::Value {
    list.iter()
        .map(|(f, t)| json!({ "from": f, "to": t }))
        .collect()
}

fn drop_expired(
    store: &dyn Store,
    config: &Config,
    retention_days: i64,
    consent: &Consent,
) -> CommandResult<Output> {
    let now = Utc::now();
    let all = deprecated(store, config)?;
    let expired: Vec<&Deprecated> = all
        .iter()
        .filter(|d| d.expired(now, retention_days))
        .collect();
    if expired.is_empty() {
        let kept: Vec<String> = all
            .iter()
            .map(|d| format!("{} (since {})", d.name, d.date))
            .collect();
        return Ok(Output {
            text: format!(
                "phase4 cleanup --drop-expired: nothing is older than {retention_days} days{}\n",
                if kept.is_empty() {
                    String::new()
                } else {
                    format!("; kept: {}", kept.join(", "))
                }
            ),
            json: json!({ "dropped": [], "kept": all }),
        });
    }
    let names: Vec<&str> = expired.iter().map(|d| d.name.as_str()).collect();
    confirm(
        &format!(
            "drop {} from {} for good (deprecated more than {retention_days} days ago)?",
            names.join(", "),
            config.legacy_db
        ),
        consent.yes,
    )?;
    let mut run = Run::start(
        store,
        config,
        RunSpec::locked("phase4 cleanup --drop-expired", "legacy"),
    )?;
    for d in &expired {
        if let Err(e) = store.drop_collection(&config.legacy(&d.name)) {
            let e = CommandError::from(e);
            run.fail(&e);
            return Err(e);
        }
    }
    run.record_mut().summary = Some(bson::doc! { "dropped": &names });
    let run_id = run.id().to_string();
    run.finish("succeeded", None)?;
    Ok(Output {
        text: format!(
            "phase4 cleanup --drop-expired: dropped {} (run {run_id})\n",
            names.join(", ")
        ),
        json: json!({ "run_id": run_id, "dropped": names }),
    })
}
