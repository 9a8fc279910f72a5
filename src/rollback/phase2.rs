//! `rollback --phase 2`: remove exactly what the migration runs added and
//! keep everything dual-write wrote, before or after.
//!
//! Each drawer carries its own undo record (`meta.migration`, see
//! docs/drawer.md); this module applies `drawer::undo` to every drawer as a
//! guarded patch of what the runs added (`engine::plan`), so a dual-write
//! that lands meanwhile is kept, then removes the plan stamps and archived
//! snapshots the runs wrote.
//! `--from-backup ID` restores a backup instead, after saying what it
//! overwrites.

use crate::backup;
use crate::config::{own, Config};
use crate::confirm::confirm;
use crate::drawer::{self, LegacyKind, Undo};
use crate::engine::plan::plan_undo;
use crate::error::{CommandError, CommandResult};
use crate::report::{table, Output};
use crate::run::record::Tally;
use crate::run::{Run, RunSpec};
use crate::store::patch::{Guard, Op};
use crate::store::{After, FieldUpdate, Ns, Order, Outcome, Patch, Scan, Store, StoreResult};
use bson::{Bson, Document};
use serde_json::json;
use std::collections::BTreeMap;
use std::path::Path;

/// How many times a drawer that changed under the rollback is re-read.
const MAX_RETRIES: usize = 5;
/// Drawers per batch: the migration's own batch (100 users), so a rollback
/// holds no more drawers in memory than the migration did (a few pages in
/// flight between the reader and the writer).
const BATCH: u32 = 100;

/// What the surgical rollback did.
#[derive(Debug, Default, serde::Serialize)]
pub struct Undone {
    /// Drawers the migration created and that held nothing else: deleted.
    pub drawers_deleted: u64,
    /// Drawers that existed (or received dual-writes): migration entries removed.
    pub drawers_restored: u64,
    /// Drawers no migration touched.
    pub drawers_untouched: u64,
    /// Legacy plans whose `snapshot_id` / `client_drawer_id` were removed.
    pub stamps_removed: u64,
    /// Archived snapshots deleted.
    pub archived_removed: u64,
    /// Quarantine records deleted.
    pub quarantine_removed: u64,
    /// Drawers re-read because the application changed them meanwhile.
    pub retried: u64,
}

/// `rollback --phase 2`: surgical, or from a backup.
pub fn phase2(
    store: &dyn Store,
    config: &Config,
    from_backup: Option<&str>,
    backup_dir: &Path,
    yes: bool,
) -> CommandResult<Output> {
    phase2_forced(store, config, from_backup, false, backup_dir, yes, None)
}

/// [`phase2`], recording the reason its gates were overridden.
pub fn phase2_forced(
    store: &dyn Store,
    config: &Config,
    from_backup: Option<&str>,
    include_legacy: bool,
    backup_dir: &Path,
    yes: bool,
    force_reason: Option<&str>,
) -> CommandResult<Output> {
    if let Some(id) = from_backup {
        let plan = backup::restore_plan(store, config, backup_dir, id, include_legacy)?;
        eprint!("{}", plan.text);
        confirm(
            &format!("restore backup {id}? this overwrites the collections above, including whatever dual-write wrote to them since the backup"),
            yes,
        )?;
        let opts = backup::RestoreOptions {
            include_legacy,
            force_reason: force_reason.map(str::to_string),
            ..backup::RestoreOptions::default()
        };
        return backup::restore(store, config, backup_dir, id, &opts);
    }
    confirm("undo every phase 2 migration run (drawers they created, entries they added, plan stamps they set)?", yes)?;
    let mut run = Run::start(
        store,
        config,
        RunSpec {
            force_reason: force_reason.map(str::to_string),
            ..RunSpec::locked("rollback --phase 2", "all")
        },
    )?;
    let run_id = run.id().to_string();
    match undo_all(store, config, &mut run) {
        Ok(undone) => {
            run.record_mut().tally = Tally {
                writes: undone.drawers_deleted + undone.drawers_restored + undone.stamps_removed,
                ..Tally::default()
            };
            run.finish("succeeded", None)?;
            Ok(render(&run_id, &undone))
        }
        Err(e) => {
            run.fail(&e);
            Err(CommandError::Input(format!(
                "{e}\nrollback {run_id} stopped part-way; what it undid is consistent. Run `edn-migrate rollback --phase 2 --yes` again to finish"
            )))
        }
    }
}

/// One pass over the drawers in `_id` order, a page at a time: each page
/// is read once, undone and written. Reading and decoding run ahead on a
/// second store handle when the store has one (as the migration's do), so
/// the writes never wait for them; memory holds a few pages.
fn undo_all(store: &dyn Store, config: &Config, run: &mut Run<'_>) -> CommandResult<Undone> {
    let ns = config.drawers_ns();
    let mut undone = Undone::default();
    let mut consume = |page: Vec<Document>| -> CommandResult<()> {
        let migrated: Vec<Document> = page
            .into_iter()
            .filter(|d| {
                let touched = d
                    .get_document("meta")
                    .is_ok_and(|m| m.contains_key("migration"));
                if !touched {
                    undone.drawers_untouched += 1;
                }
                touched
            })
            .collect();
        undo_page(store, config, migrated, &mut undone)?;
        run.renew()
    };
    match store.reader() {
        Some(reader) => std::thread::scope(|scope| {
            let (tx, rx) = std::sync::mpsc::sync_channel(2);
            let ns = ns.clone();
            let producer = scope.spawn(move || -> StoreResult<()> {
                let mut page = Vec::with_capacity(BATCH as usize);
                for d in reader.scan(&ns, &Scan::by_id(BATCH))? {
                    page.push(d?);
                    if page.len() == BATCH as usize && tx.send(std::mem::take(&mut page)).is_err() {
                        return Ok(());
                    }
                }
                if !page.is_empty() {
                    let _ = tx.send(page);
                }
                Ok(())
            });
            for page in rx {
                consume(page)?;
            }
            producer
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))?;
            CommandResult::Ok(())
        })?,
        None => {
            let mut after: Option<Bson> = None;
            loop {
                let page = read_page(store, &ns, after.take())?;
                let Some(last) = page.last().and_then(|d| d.get("_id")).cloned() else {
                    break;
                };
                consume(page)?;
                after = Some(last);
            }
        }
    }
    let quarantine = config.drawer(own::QUARANTINE);
    undone.quarantine_removed = store.count(&quarantine)?;
    store.drop_collection(&quarantine)?;
    Ok(undone)
}

/// The page of drawers strictly after `after` in `_id` order: a fresh scan
/// each time, so no cursor runs over what the previous page deleted.
fn read_page(store: &dyn Store, ns: &Ns, after: Option<Bson>) -> CommandResult<Vec<Document>> {
    let scan = Scan {
        order: Order::ById,
        after: after.map(|id| After { field: None, id }),
        batch_size: BATCH,
    };
    let mut page = Vec::with_capacity(BATCH as usize);
    for d in store.scan(ns, &scan)?.take(BATCH as usize) {
        page.push(d?);
    }
    Ok(page)
}

/// Undoes one page of drawers as read; a drawer the application changed
/// meanwhile trips a guard and is re-read and undone again.
fn undo_page(
    store: &dyn Store,
    config: &Config,
    mut drawers: Vec<Document>,
    undone: &mut Undone,
) -> CommandResult<()> {
    let ns = config.drawers_ns();
    for attempt in 0..=MAX_RETRIES {
        if drawers.is_empty() {
            return Ok(());
        }
        if attempt > 0 {
            undone.retried += drawers.len() as u64;
        }
        let mut patches: Vec<(Patch, bool)> = Vec::new();
        let mut stamps: BTreeMap<LegacyKind, Vec<FieldUpdate>> = BTreeMap::new();
        let mut archive_ids = Vec::new();
        for d in drawers {
            for (kind, plan_id) in drawer::stamps_to_undo(&d) {
                stamps.entry(kind).or_default().push(FieldUpdate {
                    id: plan_id,
                    set: Document::new(),
                    unset: vec!["snapshot_id".into(), "client_drawer_id".into()],
                });
            }
            archive_ids.extend(drawer::archive_ids_to_undo(&d).into_iter().map(Bson::from));
            match drawer::undo(&d) {
                Undo::Delete => patches.push((delete_as_read(d), true)),
                Undo::Replace(new) => patches.push((plan_undo(&d, &new), false)),
                Undo::Unchanged => undone.drawers_untouched += 1,
            }
        }
        // Legacy stamps and archived snapshots first: if the rollback dies
        // after this, the drawers still hold the record of what to undo.
        for (kind, updates) in stamps {
            undone.stamps_removed +=
                store.update_fields(&config.legacy(config.collection_of(kind)), &updates)?;
        }
        if !archive_ids.is_empty() {
            undone.archived_removed +=
                store.delete_many(&config.drawer(own::SNAPSHOT_ARCHIVE), &archive_ids)?;
        }
        let (only, deletes): (Vec<Patch>, Vec<bool>) = patches.into_iter().unzip();
        let outcomes = store.patch_many(&ns, &only)?;
        let mut changed = Vec::new();
        for ((p, delete), outcome) in only.into_iter().zip(deletes).zip(outcomes) {
            match outcome {
                Outcome::Applied if delete => undone.drawers_deleted += 1,
                Outcome::Applied => undone.drawers_restored += 1,
                Outcome::Conflict => changed.push(p.id),
                Outcome::Refused(e) => return Err(e.into()),
            }
        }
        drawers = if changed.is_empty() {
            Vec::new()
        } else {
            store.get_many(&ns, &changed)?
        };
    }
    if drawers.is_empty() {
        Ok(())
    } else {
        Err(CommandError::Gate(format!(
            "{} drawer(s) kept changing during the rollback",
            drawers.len()
        )))
    }
}

/// Deletes a drawer the migration created and nothing else wrote to, in
/// one guarded step: only while it is still exactly as read (every field
/// the same, none added). A write the application made since fails the
/// guard; the drawer is then re-read, and its undo keeps that write.
fn delete_as_read(d: Document) -> Patch {
    let id = d.get("_id").cloned().unwrap_or(Bson::Null);
    let fields = d.len();
    let mut guards: Vec<Guard> = d
        .into_iter()
        .filter(|(k, _)| k != "_id")
        .map(|(path, v)| Guard::Is {
            path,
            value: Some(v),
        })
        .collect();
    guards.push(Guard::Fields(fields));
    Patch {
        id,
        ops: vec![Op::Delete(guards)],
    }
}

fn render(run_id: &str, u: &Undone) -> Output {
    let rows: Vec<Vec<String>> = [
        (
            "drawers deleted (created by the migration, nothing else in them)",
            u.drawers_deleted,
        ),
        (
            "drawers restored (migration entries removed, the rest kept)",
            u.drawers_restored,
        ),
        ("drawers untouched", u.drawers_untouched),
        ("plan stamps removed", u.stamps_removed),
        ("archived snapshots removed", u.archived_removed),
        ("quarantine records removed", u.quarantine_removed),
    ]
    .iter()
    .map(|(k, v)| vec![k.to_string(), v.to_string()])
    .collect();
    Output {
        text: format!("rollback --phase 2: done (run {run_id})\n{}", table(&rows)),
        json: json!({ "run_id": run_id, "phase": 2, "undone": u }),
    }
}
