//! A flag step: the gates, the confirmation, the run record, the `.env`
//! edit, the restart, and one summary. `phase1 enable`, `phase3 switch` and
//! `rollback --phase 1|3` are each one call of [`flag_step`]; `phase4
//! cleanup` and `rollback --phase 4` use [`apply`] inside their own run.
//!
//! Every step is recorded in `migration_runs` (command, arguments, when,
//! gates, each change as key/old/new, the restart's exit status and
//! duration), also when the restart fails.

use crate::config::Config;
use crate::confirm::confirm;
use crate::error::{CommandError, CommandResult};
use crate::flags::{self, Change};
use crate::gates::{self, Action, Facts, Gate, Sources};
use crate::report::Output;
use crate::restart::{self, Restart};
use crate::run::{Run, RunSpec};
use crate::store::Store;
use bson::Document;
use chrono::Utc;
use serde::Serialize;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Where the flags live and how to restart the backend after a change.
#[derive(Debug, Clone)]
pub struct FlagOptions {
    /// The backend's `.env`.
    pub env_file: PathBuf,
    /// Run after the change (`sh -c`), e.g. `supervisorctl restart backend`.
    pub restart_cmd: Option<String>,
    /// Kill the restart command after this long.
    pub restart_timeout: Duration,
}

impl FlagOptions {
    /// `./.env`, no restart: what tests and the demo use.
    pub fn env_file(path: impl Into<PathBuf>) -> FlagOptions {
        FlagOptions {
            env_file: path.into(),
            restart_cmd: None,
            restart_timeout: Duration::from_secs(120),
        }
    }
}

/// What the operator allowed: no prompt (`--yes`), gates overridden (`--force --reason`).
#[derive(Debug, Clone, Default)]
pub struct Consent {
    /// Do not ask.
    pub yes: bool,
    /// Go past unmet gates, for this recorded reason.
    pub force_reason: Option<String>,
    /// Where backups live (the backup gate looks there).
    pub backup_dir: PathBuf,
}

/// The flags a step sets, and how it is asked for.
#[derive(Debug, Clone)]
pub struct FlagStep {
    /// The gated action (its command name is the run's command).
    pub action: Action,
    /// Keys and the values to give them.
    pub values: Vec<(&'static str, &'static str)>,
    /// The confirmation question, if the step asks one.
    pub question: Option<String>,
}

/// What editing the flags and restarting did.
#[derive(Debug, Clone, Serialize)]
pub struct Applied {
    /// The `.env` file edited.
    pub env_file: String,
    /// One entry per key.
    pub changes: Vec<Change>,
    /// The restart, when one was asked for.
    pub restart: Option<Restart>,
}

impl Applied {
    /// Whether a restart was asked for and failed.
    pub fn restart_failed(&self) -> bool {
        self.restart.as_ref().is_some_and(|r| !r.ok)
    }

    /// The lines that say what changed, for the text summary.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for c in &self.changes {
            let old = c.old.as_deref().unwrap_or("(absent)");
            let lines: Vec<String> = c.lines.iter().map(usize::to_string).collect();
            let what = if !c.changed {
                "unchanged".to_string()
            } else if c.appended {
                "appended".to_string()
            } else {
                format!("line {}", lines.join(", "))
            };
            out.push_str(&format!(
                "  {}: {} {old} -> {} ({what})\n",
                self.env_file, c.key, c.new
            ));
            if c.duplicate {
                out.push_str(&format!(
                    "  warning: {} is set on {} lines ({}); all of them were set. Remove the extra lines.\n",
                    c.key,
                    c.lines.len(),
                    lines.join(", ")
                ));
            }
        }
        match &self.restart {
            None if self.changes.iter().any(|c| c.changed) => {
                out.push_str("  no --restart-cmd: restart the backend so it reads the new value\n")
            }
            None => {}
            Some(r) if r.ok => out.push_str(&format!(
                "  restart: `{}` exited 0 after {:.1} s\n",
                r.command, r.seconds
            )),
            Some(r) => out.push_str(&format!(
                "  restart: `{}` FAILED ({}) after {:.1} s\n",
                r.command,
                r.error.as_deref().unwrap_or("?"),
                r.seconds
            )),
        }
        out
    }
}

/// Sets the flags (one atomic write, none when nothing changes), then runs
/// the restart command if one was given.
pub fn apply(values: &[(&str, &str)], opts: &FlagOptions) -> CommandResult<Applied> {
    let changes = flags::set_flags(&opts.env_file, values)?;
    let restart = opts
        .restart_cmd
        .as_deref()
        .map(|cmd| restart::run(cmd, opts.restart_timeout));
    Ok(Applied {
        env_file: opts.env_file.display().to_string(),
        changes,
        restart,
    })
}

/// The run summary of a flag step: gates, changes, restart.
pub fn summary(applied: Option<&Applied>, gates: &[Gate], extra: Option<Document>) -> Document {
    let mut doc = Document::new();
    if let Ok(bson::Bson::Array(g)) = bson::to_bson(gates) {
        doc.insert("gates", g);
    }
    if let Some(a) = applied {
        if let Ok(bson::Bson::Document(d)) = bson::to_bson(a) {
            doc.extend(d);
        }
    }
    if let Some(extra) = extra {
        doc.extend(extra);
    }
    doc
}

/// The facts the gates of a step read.
pub fn facts<'a>(
    store: &'a dyn Store,
    config: &'a Config,
    opts: &FlagOptions,
    consent: &Consent,
) -> Facts<'a> {
    Facts::new(
        store,
        config,
        Sources {
            env_file: opts.env_file.clone(),
            backup_dir: consent.backup_dir.clone(),
        },
        Utc::now(),
    )
}

/// The top-level entry point for the commands that only flip flags.
pub fn flag_step(
    store: &dyn Store,
    config: &Config,
    step: &FlagStep,
    opts: &FlagOptions,
    consent: &Consent,
) -> CommandResult<Output> {
    let started = Instant::now();
    let command = step.action.command();
    let gates = gates::enforce(
        step.action,
        &facts(store, config, opts, consent),
        consent.force_reason.as_deref(),
    )?;
    if let Some(question) = &step.question {
        confirm(question, consent.yes)?;
    }
    let mut run = Run::start(
        store,
        config,
        RunSpec {
            command: command.clone(),
            scope: "flags".into(),
            force_reason: consent.force_reason.clone(),
            ..RunSpec::default()
        },
    )?;
    let applied = match apply(&step.values, opts) {
        Ok(a) => a,
        Err(e) => {
            run.record_mut().summary = Some(summary(None, &gates, None));
            run.fail(&e);
            return Err(e);
        }
    };
    run.record_mut().summary = Some(summary(Some(&applied), &gates, None));
    let run_id = run.id().to_string();
    if applied.restart_failed() {
        let e = restart_failed(&command, &applied, &run_id, undo_hint(step.action));
        run.fail(&e);
        return Err(e);
    }
    run.finish("succeeded", None)?;
    Ok(render(
        &command,
        &run_id,
        &applied,
        &gates,
        consent,
        started.elapsed(),
        None,
    ))
}

/// The error for a restart that failed after the flags changed: exit 1,
/// what changed, and what to do.
pub fn restart_failed(command: &str, applied: &Applied, run_id: &str, undo: &str) -> CommandError {
    CommandError::Input(format!(
        "{command}: the flags were changed but the restart failed (run {run_id}):\n{}\
         restart the backend by hand so it reads the new values, or undo with `{undo}`",
        applied.text()
    ))
}

fn undo_hint(action: Action) -> &'static str {
    match action {
        Action::Phase1Enable => "edn-migrate rollback --phase 1 --yes",
        Action::Phase3Switch => "edn-migrate rollback --phase 3 --yes",
        Action::Rollback(1) => "edn-migrate phase1 enable",
        Action::Rollback(3) => "edn-migrate phase3 switch",
        _ => "edn-migrate status",
    }
}

/// The summary of a flag step, in both forms.
pub fn render(
    command: &str,
    run_id: &str,
    applied: &Applied,
    gates: &[Gate],
    consent: &Consent,
    took: Duration,
    extra: Option<(String, Value)>,
) -> Output {
    let seconds = took.as_secs_f64();
    let mut text = format!("{command}: done in {seconds:.3} s (run {run_id})\n");
    if let Some(reason) = &consent.force_reason {
        if gates.iter().any(|g| !g.ok) {
            text.push_str(&format!("  gates overridden with --force: {reason}\n"));
        }
    }
    for g in gates.iter().filter(|g| !g.ok) {
        text.push_str(&format!("  gate not met (forced): {}: {}\n", g.name, g.why));
    }
    text.push_str(&applied.text());
    let mut json = json!({
        "command": command,
        "run_id": run_id,
        "outcome": "succeeded",
        "seconds": seconds,
        "env_file": applied.env_file,
        "changes": applied.changes,
        "restart": applied.restart,
        "gates": gates,
        "force_reason": consent.force_reason,
    });
    if let Some((more_text, more_json)) = extra {
        text.push_str(&more_text);
        if let (Some(map), Value::Object(more)) = (json.as_object_mut(), more_json) {
            map.extend(more);
        }
    }
    Output { text, json }
}
