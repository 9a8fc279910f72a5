//! Phase 3: plan generation reads the drawers. `phase3 switch` turns
//! `USE_CLIENT_DRAWER_READ` on behind the plan's gates (phase 2 validated
//! after the last migration or rollback, a verified backup younger than
//! 24 h, dual-write checked and on) with confirmation; `phase3 status` is
//! the plan's switch-status dashboard: generation jobs by mode and their
//! success rates, and the verdict the plan's rollback rule gives.

use crate::config::Config;
use crate::error::{CommandError, CommandResult};
use crate::flags::{EnvFile, ALL, READ};
use crate::gates::{Action, MIN_TO_BE_SUCCESS, ROLLBACK_BELOW};
use crate::mapping::date_millis;
use crate::report::{table, Output};
use crate::store::{Scan, Store};
use crate::toggle::{flag_step, Consent, FlagOptions, FlagStep};
use bson::Document;
use chrono::{DateTime, Duration, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::{json, Map, Value};
use std::path::PathBuf;

/// The top-level entry point for `phase3 switch`.
pub fn switch(
    store: &dyn Store,
    config: &Config,
    opts: &FlagOptions,
    consent: &Consent,
) -> CommandResult<Output> {
    let step = FlagStep {
        action: Action::Phase3Switch,
        values: vec![(READ, "true")],
        question: Some(format!(
            "switch plan generation to read client_drawers ({READ}=true in {})? \
             undo with `edn-migrate rollback --phase 3 --yes`",
            opts.env_file.display()
        )),
    };
    flag_step(store, config, &step, opts, consent)
}

/// Jobs of one mode and how many completed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct ModeStats {
    /// Jobs created in the window.
    pub total: u64,
    /// Of those, `status: "completed"`.
    pub completed: u64,
}

impl ModeStats {
    /// The success rate; `None` when there is no job (0 of 0 is not 100 %).
    pub fn rate(&self) -> Option<f64> {
        (self.total > 0).then(|| self.completed as f64 / self.total as f64)
    }
}

/// Generation jobs since a time, by the mode they ran in.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobStats {
    /// The window's start.
    pub since: DateTime<Utc>,
    /// TO BE: the job names a drawer (`client_drawer_id`).
    pub to_be: ModeStats,
    /// AS IS: the job names only a legacy submission (`submission_id`).
    pub as_is: ModeStats,
    /// Jobs in the window with neither field.
    pub unclassified: u64,
    /// Jobs without a usable `created_at` (outside any window).
    pub undated: u64,
}

/// Counts the generation jobs created from `since`, by mode (plan section
/// 7.3: TO BE has `client_drawer_id`; AS IS has `submission_id` and not
/// `client_drawer_id`; success is `status: "completed"`).
pub fn job_stats(
    store: &dyn Store,
    config: &Config,
    since: DateTime<Utc>,
) -> CommandResult<JobStats> {
    let mut stats = JobStats {
        since,
        to_be: ModeStats::default(),
        as_is: ModeStats::default(),
        unclassified: 0,
        undated: 0,
    };
    let since_ms = since.timestamp_millis();
    for job in store.scan(&config.legacy(&config.jobs), &Scan::by_id(1000))? {
        let job = job?;
        match date_millis(job.get("created_at")) {
            None => stats.undated += 1,
            Some(at) if at < since_ms => {}
            Some(_) => count(&mut stats, &job),
        }
    }
    Ok(stats)
}

fn count(stats: &mut JobStats, job: &Document) {
    let mode = if job.contains_key("client_drawer_id") {
        &mut stats.to_be
    } else if job.contains_key("submission_id") {
        &mut stats.as_is
    } else {
        stats.unclassified += 1;
        return;
    };
    mode.total += 1;
    if job.get_str("status").ok() == Some("completed") {
        mode.completed += 1;
    }
}

/// What `phase3 status` was asked.
#[derive(Debug, Clone)]
pub struct StatusOptions {
    /// Window start (default: 24 h ago).
    pub since: Option<DateTime<Utc>>,
    /// The backend's `.env`, for the flags.
    pub env_file: PathBuf,
    /// The TO BE success rate needed, 0 to 1.
    pub min_success: f64,
}

impl StatusOptions {
    /// The plan's window and threshold.
    pub fn new(env_file: impl Into<PathBuf>) -> StatusOptions {
        StatusOptions {
            since: None,
            env_file: env_file.into(),
            min_success: MIN_TO_BE_SUCCESS,
        }
    }
}

/// The top-level entry point for `phase3 status`: exit 3 when the TO BE
/// success rate is under the threshold (or nothing ran in TO BE mode), with
/// "rollback recommended" under 90 %.
pub fn status(store: &dyn Store, config: &Config, opts: &StatusOptions) -> CommandResult<Output> {
    let now = Utc::now();
    let since = opts.since.unwrap_or(now - Duration::hours(24));
    let stats = job_stats(store, config, since)?;
    let flags = flag_values(&opts.env_file);
    let to_be_rate = stats.to_be.rate();
    let rollback = to_be_rate.is_some_and(|r| r < ROLLBACK_BELOW);
    let healthy = to_be_rate.is_some_and(|r| r >= opts.min_success);
    let verdict = match to_be_rate {
        None => "no TO BE job in the window: nothing shows plan generation works from the drawers (is USE_CLIENT_DRAWER_READ on? widen --since?)".to_string(),
        Some(r) if rollback => format!(
            "TO BE success rate {:.1} % is under {:.0} %: rollback recommended: `edn-migrate rollback --phase 3 --yes`",
            r * 100.0,
            ROLLBACK_BELOW * 100.0
        ),
        Some(r) if !healthy => format!(
            "TO BE success rate {:.1} % is under {:.0} %: investigate the failed jobs; roll back if it keeps falling",
            r * 100.0,
            opts.min_success * 100.0
        ),
        Some(r) => format!("healthy: TO BE success rate {:.1} %", r * 100.0),
    };
    let output = render(&stats, &flags, opts, now, &verdict, healthy, rollback);
    if healthy {
        Ok(output)
    } else {
        Err(CommandError::Failed {
            output: Box::new(output),
            message: verdict,
        })
    }
}

/// The three flags as the backend reads them (`null` when the file is unreadable).
pub fn flag_values(env_file: &std::path::Path) -> Map<String, Value> {
    let file = EnvFile::read(env_file).ok();
    ALL.iter()
        .map(|k| {
            let v = file
                .as_ref()
                .map_or(Value::Null, |f| Value::Bool(f.flag(k)));
            (k.to_string(), v)
        })
        .collect()
}

fn render(
    stats: &JobStats,
    flags: &Map<String, Value>,
    opts: &StatusOptions,
    now: DateTime<Utc>,
    verdict: &str,
    healthy: bool,
    rollback: bool,
) -> Output {
    let pct = |m: &ModeStats| {
        m.rate()
            .map_or("—".to_string(), |r| format!("{:.1} %", r * 100.0))
    };
    let rows = vec![
        vec![
            "mode".to_string(),
            "jobs".into(),
            "completed".into(),
            "success rate".into(),
        ],
        vec![
            "TO BE (client_drawer_id)".into(),
            stats.to_be.total.to_string(),
            stats.to_be.completed.to_string(),
            pct(&stats.to_be),
        ],
        vec![
            "AS IS (submission_id only)".into(),
            stats.as_is.total.to_string(),
            stats.as_is.completed.to_string(),
            pct(&stats.as_is),
        ],
        vec![
            "neither".into(),
            stats.unclassified.to_string(),
            String::new(),
            String::new(),
        ],
    ];
    let since = stats.since.to_rfc3339_opts(SecondsFormat::Secs, true);
    let flag_text: Vec<String> = flags
        .iter()
        .map(|(k, v)| {
            format!(
                "{k}={}",
                if v.is_null() {
                    "?".into()
                } else {
                    v.to_string()
                }
            )
        })
        .collect();
    let text = format!(
        "phase3 status: generation jobs created since {since} (now {})\n{}flags ({}): {}\n{verdict}\n",
        now.to_rfc3339_opts(SecondsFormat::Secs, true),
        table(&rows),
        opts.env_file.display(),
        flag_text.join("  "),
    );
    let total = stats.to_be.total + stats.as_is.total + stats.unclassified;
    let json = json!({
        "since": since,
        "window": {
            "total_jobs": total,
            "to_be_jobs": stats.to_be.total,
            "as_is_jobs": stats.as_is.total,
            "unclassified_jobs": stats.unclassified,
            "to_be_completed": stats.to_be.completed,
            "as_is_completed": stats.as_is.completed,
            "to_be_success_rate": stats.to_be.rate(),
            "as_is_success_rate": stats.as_is.rate(),
        },
        "feature_flags": flags,
        "threshold": opts.min_success,
        "healthy": healthy,
        "rollback_recommended": rollback,
        "verdict": verdict,
    });
    Output { text, json }
}
