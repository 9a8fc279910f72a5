//! Phase 2: migrate the historical data into the drawers.
//!
//! `migrate` is the main job: gate on a verified backup, take the lock, record
//! the run, stream and build, checkpoint every batch, and end with a summary
//! that adds up. `--dry-run` runs the same pass on a read-only store.

pub mod compare;
pub mod diff;
pub mod migrate;
pub mod partitions;
pub mod validate;
mod warnings;

use crate::backup;
use crate::config::{own, Config};
use crate::drawer::{BuildOptions, Scope};
use crate::error::{CommandError, CommandResult};
use crate::report::{table, Output};
use crate::run::record::{new_run_id, resumable, RunRecord};
use crate::run::{Run, RunSpec, Supervisor, Unsupervised};
use crate::store::readonly::ReadOnly;
use crate::store::{needs_creating, Store};
use chrono::{DateTime, Duration, Utc};
use indicatif::{ProgressBar, ProgressStyle};
use migrate::{run_pass, Pass, PassResult};
use serde_json::json;
use std::path::PathBuf;

/// A backup older than this does not satisfy the migrate gate.
pub const BACKUP_MAX_AGE_HOURS: i64 = 24;

/// Which part of phase 2 to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// Initial questionnaires (shared_questionnaires, inicial, profile, measurements).
    Questionnaires,
    /// Training and nutrition plans (snapshots, plans, stamps).
    Plans,
    /// Follow-ups (linked to the snapshots, so after plans).
    Followups,
    /// All three, in the right order.
    All,
}

impl Part {
    /// The builder scope of this part.
    pub fn scope(self) -> Scope {
        match self {
            Part::Questionnaires => Scope::questionnaires(),
            Part::Plans => Scope::plans(),
            Part::Followups => Scope::followups(),
            Part::All => Scope::all(),
        }
    }

    /// The name used in run records and output.
    pub fn name(self) -> &'static str {
        match self {
            Part::Questionnaires => "questionnaires",
            Part::Plans => "plans",
            Part::Followups => "followups",
            Part::All => "all",
        }
    }
}

/// Everything `phase2 migrate` was asked.
#[derive(Debug, Clone)]
pub struct MigrateOptions {
    /// What to migrate.
    pub part: Part,
    /// Plan only; guaranteed to write nothing.
    pub dry_run: bool,
    /// Continue the last unfinished run of the same part and partition.
    pub resume: bool,
    /// `(i, n)`: this process takes partition `i` of `n`.
    pub partition: Option<(u32, u32)>,
    /// Users per batch.
    pub batch_size: u32,
    /// Legacy documents per second at most.
    pub max_rate: Option<f64>,
    /// Take the lock from another run.
    pub break_lock: bool,
    /// Run without a recent verified backup, for this recorded reason.
    pub force_reason: Option<String>,
    /// Where backups live.
    pub backup_dir: PathBuf,
    /// Nutrition ↔ training pairing window.
    pub pairing_window_ms: i64,
    /// Drawer size limit before snapshots are archived.
    pub max_drawer_bytes: usize,
}

/// The top-level entry point for `phase2 migrate`.
pub fn migrate(store: &dyn Store, config: &Config, opts: &MigrateOptions) -> CommandResult<Output> {
    let now = Utc::now();
    warn_unindexed(store, config)?;
    let before_plans = followups_before_plans(store, config, opts)?;
    if opts.dry_run {
        let run_id = new_run_id(now);
        let result = pass(
            &ReadOnly(store),
            config,
            opts,
            &run_id,
            now,
            None,
            &mut Unsupervised,
        )?;
        let notes = notes(opts, &result, before_plans);
        return Ok(render(
            config, opts, &run_id, "planned", &result, None, now, &notes,
        ));
    }
    check_gates(store, config, opts, now)?;
    let mut run = Run::start(
        store,
        config,
        RunSpec {
            break_lock: opts.break_lock,
            force_reason: opts.force_reason.clone(),
            admit: Some(partitions::admit),
            ..RunSpec::partitioned(
                format!("phase2 migrate {}", opts.part.name()),
                opts.part.name(),
                opts.partition,
            )
        },
    )?;
    let after = if opts.resume {
        match resume_point(store, config, opts, run.id()) {
            Ok(Some(previous)) => {
                let record = run.record_mut();
                record.resumed_from = Some(previous.run_id);
                // A resumed run that dies before its first batch must still
                // resume at the right user: it starts from this checkpoint.
                record.checkpoint = previous.checkpoint;
                record.checkpoint.as_ref().map(|c| c.last_user_id.clone())
            }
            Ok(None) => None,
            Err(e) => {
                run.fail(&e);
                return Err(e);
            }
        }
    } else {
        None
    };
    let run_id = run.id().to_string();
    let outcome = pass(
        store,
        config,
        opts,
        &run_id,
        now,
        after.as_deref(),
        &mut run,
    );
    finish(opts, run, outcome, now, before_plans)
}

/// Warns about each legacy collection that lacks the per-user index phase 0
/// creates: without it every page the merge reads sorts the whole
/// collection (a dry run of 10k users took 46 s instead of 4 on the
/// embedded store), and nothing else would say why the run is slow. An
/// index phase 0 would refuse as different is left for phase 0 to report.
pub(crate) fn warn_unindexed(store: &dyn Store, config: &Config) -> CommandResult<()> {
    let wanted = crate::phase0::IndexPlan::builtin()?.legacy_per_user;
    let present = store.list_collections(&config.legacy_db)?;
    for coll in config.per_user_collections() {
        if !present.iter().any(|c| c == coll) {
            continue;
        }
        let ns = config.legacy(coll);
        let have = store.list_indexes(&ns)?;
        for want in &wanted {
            if matches!(needs_creating(&have, &ns, want), Ok(true)) {
                tracing::warn!(
                    "{ns} has no index on {}: this run sorts the whole collection for every page it reads; run `edn-migrate phase0 prepare` first",
                    want.keys.join(", ")
                );
            }
        }
    }
    Ok(())
}

/// Whether this is a `followups` run while the plans were never migrated
/// (the plan's own order): follow-ups then cannot link to their plan's
/// snapshot, and the operator must hear how to complete the links.
fn followups_before_plans(
    store: &dyn Store,
    config: &Config,
    opts: &MigrateOptions,
) -> CommandResult<bool> {
    if opts.part != Part::Followups || store.count(&config.legacy(&config.training_plans))? == 0 {
        return Ok(false);
    }
    let plans_done = crate::run::record::all_runs(store, config)?
        .iter()
        .any(|r| {
            r.command.starts_with("phase2 migrate")
                && (r.scope == Part::Plans.name() || r.scope == Part::All.name())
                && r.outcome == "succeeded"
        });
    Ok(!plans_done)
}

/// What the operator must know besides the counts.
fn notes(opts: &MigrateOptions, result: &PassResult, before_plans: bool) -> Vec<String> {
    let mut notes = Vec::new();
    if before_plans {
        let w = &result.tally.warnings;
        let unlinked = w.get("followup_linked_by_date").copied().unwrap_or(0)
            + w.get("followup_unlinked").copied().unwrap_or(0);
        notes.push(format!(
            "follow-ups {} before the plans: {unlinked} of them could not be linked to their plan's snapshot, which does not exist yet. \
             Complete the links with `edn-migrate phase2 migrate plans` and then `edn-migrate phase2 migrate followups`, \
             or run `edn-migrate phase2 migrate all` (it migrates the plans first)",
            if opts.dry_run { "would be migrated" } else { "were migrated" }
        ));
    }
    notes
}

/// Ends the run and renders the summary, or the error saying what was done
/// and how to continue.
fn finish(
    opts: &MigrateOptions,
    mut run: Run<'_>,
    outcome: CommandResult<PassResult>,
    started: DateTime<Utc>,
    before_plans: bool,
) -> CommandResult<Output> {
    let config = run.config();
    match outcome {
        Ok(result) => {
            run.record_mut().tally = result.tally.clone();
            // `phase2 validate` rebuilds with the options this run built with.
            let options = bson::doc! {
                "pairing_window_ms": opts.pairing_window_ms,
                "max_drawer_bytes": i64::try_from(opts.max_drawer_bytes).unwrap_or(i64::MAX),
            };
            let record = run.finish("succeeded", Some(options))?;
            let notes = notes(opts, &result, before_plans);
            Ok(render(
                config,
                opts,
                &record.run_id,
                "succeeded",
                &result,
                record.resumed_from.as_deref(),
                started,
                &notes,
            ))
        }
        Err(e) => {
            let record = run.fail(&e);
            let done = match &record.checkpoint {
                Some(c) => format!(
                    "{} batches were written and checkpointed (last user {})",
                    c.batches, c.last_user_id
                ),
                None => "no batch was completed".to_string(),
            };
            let message = format!(
                "{e}\nrun {} {}: {done}; what was written is consistent and stamped with the run id.\n\
                 continue with `edn-migrate phase2 migrate {}{} --resume`, or undo it with `edn-migrate rollback --phase 2`",
                record.run_id,
                record.outcome,
                opts.part.name(),
                partition_name(opts)
                    .map(|p| format!(" --partition {p}"))
                    .unwrap_or_default()
            );
            Err(match e {
                CommandError::LockHeld(_) => CommandError::LockHeld(message),
                CommandError::Gate(_) => CommandError::Gate(message),
                CommandError::Interrupted(_) => CommandError::Interrupted(message),
                _ => CommandError::Input(message),
            })
        }
    }
}

fn pass(
    store: &dyn Store,
    config: &Config,
    opts: &MigrateOptions,
    run_id: &str,
    now: DateTime<Utc>,
    after: Option<&str>,
    on_batch: &mut dyn Supervisor,
) -> CommandResult<PassResult> {
    let mut build = BuildOptions::new(bson::DateTime::from_chrono(now), run_id);
    build.scope = opts.part.scope();
    build.pairing_window_ms = opts.pairing_window_ms;
    build.max_drawer_bytes = opts.max_drawer_bytes;
    let pass = Pass {
        batch_size: opts.batch_size,
        partition: opts.partition,
        max_rate: opts.max_rate,
        dry_run: opts.dry_run,
        samples: if opts.dry_run { 3 } else { 0 },
        build,
    };
    let progress = progress_bar(store, config)?;
    let result = run_pass(store, config, &pass, after, &progress, on_batch);
    progress.finish_and_clear();
    result
}

fn progress_bar(store: &dyn Store, config: &Config) -> CommandResult<ProgressBar> {
    let mut total = 0;
    for coll in config.per_user_collections() {
        total += store.count(&config.legacy(coll))?;
    }
    let bar = ProgressBar::new(total);
    if let Ok(style) = ProgressStyle::with_template(
        "migrating [{bar:30}] {pos}/{len} documents {per_sec} eta {eta}",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    Ok(bar)
}

/// The gates, each overridable only with `--force --reason` (recorded):
/// phase 0 done (the unique `user_id` index on the drawers), and a verified
/// backup of this store and these databases younger than 24 h.
fn check_gates(
    store: &dyn Store,
    config: &Config,
    opts: &MigrateOptions,
    now: DateTime<Utc>,
) -> CommandResult<()> {
    let phase0 = phase0_done(store, config);
    let backup = phase0.and_then(|()| {
        backup::gate(
            store,
            config,
            &opts.backup_dir,
            now,
            Duration::hours(BACKUP_MAX_AGE_HOURS),
        )
        .map(|_| ())
    });
    match (backup, &opts.force_reason) {
        (Ok(()), _) => Ok(()),
        (Err(e), Some(reason)) => {
            tracing::warn!(reason = %reason, gate = %e, "gate overridden with --force");
            Ok(())
        }
        (Err(e), None) => Err(e),
    }
}

/// Phase 0 is done when the drawers carry a unique index on `user_id`: the
/// index that keeps two drawers from ever claiming one user.
fn phase0_done(store: &dyn Store, config: &Config) -> CommandResult<()> {
    let ns = config.drawers_ns();
    let unique_user_id = store
        .list_indexes(&ns)?
        .iter()
        .any(|i| i.unique && i.keys == ["user_id"]);
    if unique_user_id {
        return Ok(());
    }
    Err(CommandError::Gate(format!(
        "phase 0 is not done: {ns} has no unique index on user_id: run `edn-migrate phase0 prepare`, or pass `--force --reason \"…\"`"
    )))
}

/// The run `--resume` continues, if there is one.
fn resume_point(
    store: &dyn Store,
    config: &Config,
    opts: &MigrateOptions,
    current: &str,
) -> CommandResult<Option<RunRecord>> {
    let previous = resumable(
        store,
        config,
        opts.part.name(),
        &partition_name(opts),
        current,
    )?;
    if previous.is_none() {
        tracing::info!("--resume: no unfinished run of this part; starting from the beginning");
    }
    Ok(previous)
}

fn partition_name(opts: &MigrateOptions) -> Option<String> {
    opts.partition.map(|(i, n)| format!("{i}/{n}"))
}

#[allow(clippy::too_many_arguments)]
fn render(
    config: &Config,
    opts: &MigrateOptions,
    run_id: &str,
    outcome: &str,
    result: &PassResult,
    resumed_from: Option<&str>,
    started: DateTime<Utc>,
    notes: &[String],
) -> Output {
    let t = &result.tally;
    let seconds = (Utc::now() - started).num_milliseconds() as f64 / 1000.0;
    let rows: Vec<Vec<String>> = [
        ("users", t.users),
        ("drawers created", t.drawers_created),
        ("drawers updated", t.drawers_updated),
        ("drawers unchanged", t.drawers_unchanged),
        ("snapshots added", t.snapshots),
        ("follow-ups added", t.followups),
        ("quarantined documents", t.quarantined),
        ("legacy documents read", t.documents),
        (
            if opts.dry_run {
                "documents to write"
            } else {
                "documents written"
            },
            t.writes,
        ),
    ]
    .iter()
    .map(|(k, v)| vec![k.to_string(), v.to_string()])
    .collect();
    let mut text = if opts.dry_run {
        format!(
            "phase2 migrate {} --dry-run: nothing was written; this is the plan (run {run_id})\n",
            opts.part.name()
        )
    } else {
        format!(
            "phase2 migrate {}: {outcome} in {seconds:.1} s (run {run_id})\n",
            opts.part.name()
        )
    };
    if let Some(previous) = resumed_from {
        text.push_str(&format!("resumed from run {previous}\n"));
    }
    text.push_str(&table(&rows));
    if !t.warnings.is_empty() {
        text.push_str("warnings by kind\n");
        let rows: Vec<Vec<String>> = t
            .warnings
            .iter()
            .map(|(k, v)| vec![k.clone(), v.to_string()])
            .collect();
        text.push_str(&table(&rows));
    }
    for sample in &result.samples {
        text.push_str(&format!(
            "sample: {} ({})\n",
            sample.drawer_id,
            if sample.created {
                "would be created"
            } else {
                "would change"
            }
        ));
        for line in &sample.changes {
            text.push_str(&format!("    {line}\n"));
        }
    }
    if t.quarantined > 0 && opts.dry_run {
        text.push_str(&format!(
            "{} documents would go to {}.{} (nothing was written)\n",
            t.quarantined,
            config.drawer_db,
            own::QUARANTINE
        ));
    } else if t.quarantined > 0 {
        text.push_str(&format!(
            "quarantined documents are listed in {}.{} with their reason\n",
            config.drawer_db,
            own::QUARANTINE
        ));
    }
    for note in notes {
        text.push_str(&format!("note: {note}\n"));
    }
    let json = json!({
        "run_id": run_id,
        "dry_run": opts.dry_run,
        "outcome": outcome,
        "part": opts.part.name(),
        "partition": partition_name(opts),
        "resumed_from": resumed_from,
        "seconds": seconds,
        "users": t.users,
        "drawers_created": t.drawers_created,
        "drawers_updated": t.drawers_updated,
        "drawers_unchanged": t.drawers_unchanged,
        "snapshots": t.snapshots,
        "followups": t.followups,
        "quarantined": t.quarantined,
        "documents": t.documents,
        "retried": t.retried,
        "warnings": t.warnings,
        "writes": t.writes,
        "samples": result.samples,
        "notes": notes,
    });
    Output { text, json }
}
