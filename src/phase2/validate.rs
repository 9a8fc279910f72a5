//! `phase2 validate`: for 100 % of users, rebuild the drawer from the legacy
//! documents, compare it entry by entry with the stored one, check that a
//! migration run would not change it (every part derived from legacy data),
//! run the validator on every drawer that exists, and account for every
//! legacy document (in its drawer, or in quarantine). Reports name ids and
//! field paths, never values.
//!
//! Nothing here can pass over nothing: no legacy document to validate, a
//! document neither in its drawer nor in quarantine, a drawer or a migrated
//! entry that no legacy document explains, a stored document over MongoDB's
//! 16 MiB limit: each fails the validation (exit 3).

use super::compare::{
    compare_user, differing_paths, render_id, render_path, source_of, unexplained_entries, Family,
    Finding, LegacyIds, Original, Source as Origin, Step,
};
use super::warnings::WarningLog;
use crate::config::{own, Config};
use crate::drawer::{self, BuildOptions, LegacyKind, LegacyUser};
use crate::engine::cores::map_on_cores;
use crate::engine::merge::{home_partition, Group, PerUser, Rejected};
use crate::error::{CommandError, CommandResult};
use crate::report::{table, Output};
use crate::run::record::all_runs;
use crate::run::{Run, RunSpec};
use crate::store::keys::{raw_sort_key, raw_value_at_path};
/// MongoDB's largest document, which validation holds every stored one to.
pub use crate::store::patch::MAX_DOCUMENT_BYTES;
use crate::store::{
    decode_raw, value_at_path, value_at_path_mut, Fetched, RawDocStream, Scan, Store,
};
use bson::raw::{RawBsonRef, RawDocument, RawDocumentBuf};
use bson::{Bson, Document};
use chrono::Utc;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::Write;
use std::iter::Peekable;
use std::path::{Path, PathBuf};

/// Failures listed per family in the report (all are counted).
const LISTED: usize = 200;
/// Users whose quarantine records are looked up in one read.
const BATCH: usize = 500;
/// Users checked together on all cores (a divisor of `BATCH`).
const CHUNK: usize = 100;
/// Documents (legacy, drawers, archived snapshots) a chunk holds at most:
/// a user of the varied bench shape has twice the documents of a default
/// one, and 100 of them per chunk took a validation's peak RSS to 291 MB.
const CHUNK_DOCUMENTS: usize = 1_000;

/// Minimum match rates, from the plan (section 6): questionnaires and
/// follow-ups 95 %, plans 90 %.
#[derive(Debug, Clone, Copy)]
pub struct Thresholds {
    /// Questionnaires, as a fraction.
    pub questionnaires: f64,
    /// Follow-ups, as a fraction.
    pub followups: f64,
    /// Plans, as a fraction.
    pub plans: f64,
}

impl Thresholds {
    fn of(&self, family: Family) -> f64 {
        match family {
            Family::Questionnaires => self.questionnaires,
            Family::Followups => self.followups,
            Family::Plans => self.plans,
        }
    }
}

/// Options of `phase2 validate`.
#[derive(Debug, Clone)]
pub struct ValidateOptions {
    /// The minimum match rates.
    pub thresholds: Thresholds,
    /// Where the JSON and Markdown reports go.
    pub report_dir: PathBuf,
    /// Print every per-document warning (`--warnings`), not only their counts.
    pub list_warnings: bool,
    /// `(i, n)`: check only the users of partition `i` of `n` (and the
    /// drawers and quarantine records that belong to them), holding that
    /// partition's lease, so each worker validates what it migrated.
    pub partition: Option<(u32, u32)>,
}

/// Counts of one family.
#[derive(Debug, Default, Clone, serde::Serialize)]
struct Rate {
    documents: u64,
    matched: u64,
    failures: Vec<Value>,
}

/// Everything the validation found.
#[derive(Debug, Default)]
struct Findings {
    rates: BTreeMap<Family, Rate>,
    legacy_documents: u64,
    in_drawers: u64,
    quarantined: u64,
    unaccounted_listed: Vec<Value>,
    drawers_checked: u64,
    drawers_invalid: u64,
    drawers_invalid_listed: Vec<Value>,
    unexplained_drawers: u64,
    unexplained_listed: Vec<Value>,
    warnings: WarningLog,
    /// Legacy documents of users outside the partition validated.
    legacy_elsewhere: u64,
}

impl Findings {
    fn unaccounted(&self) -> u64 {
        self.legacy_documents
            .saturating_sub(self.in_drawers + self.quarantined)
    }

    fn invalid(&mut self, drawer_id: &str, errors: Vec<String>) {
        if errors.is_empty() {
            return;
        }
        self.drawers_invalid += 1;
        if self.drawers_invalid_listed.len() < LISTED {
            self.drawers_invalid_listed
                .push(json!({ "drawer_id": drawer_id, "errors": errors }));
        }
    }
}

/// The top-level entry point for `phase2 validate`.
pub fn validate(
    store: &dyn Store,
    config: &Config,
    opts: &ValidateOptions,
) -> CommandResult<Output> {
    super::warn_unindexed(store, config)?;
    // Under the lock: a validation that reads while a migration writes would
    // report a half-written state and make it the "last validation".
    let mut run = Run::start(
        store,
        config,
        RunSpec::partitioned("phase2 validate", "all", opts.partition),
    )?;
    let now = run.started();
    let checked = check_all(store, config, opts, &mut run);
    let (findings, passed) = match checked {
        Ok(done) => done,
        Err(e) => {
            run.fail(&e);
            return Err(e);
        }
    };
    let mut findings = findings;
    let mut report = report_json(store, config, &findings, &opts.thresholds, passed, now);
    report["partition"] = json!(opts.partition.map(|(i, n)| format!("{i}/{n}")));
    // The verdict is recorded before any report is written, so a store that
    // refuses the record leaves no report claiming a result.
    let run_id = run.id().to_string();
    run.finish(
        if passed { "passed" } else { "failed" },
        Some(summary(&report, passed)),
    )?;
    let paths = write_reports(
        &opts.report_dir,
        &mut report,
        &mut findings.warnings,
        now,
        &run_id,
    )?;
    let text = render_text(&mut findings, &opts.thresholds, passed, &paths, opts)?;
    let mut json = report;
    if opts.list_warnings {
        json["warnings"]["listed"] = Value::Array(findings.warnings.all().map_err(spool_error)?);
    }
    let output = Output { text, json };
    if passed {
        return Ok(output);
    }
    let message = if findings.legacy_documents + findings.legacy_elsewhere == 0 {
        format!(
            "nothing to validate: {} holds no document in {}: check --legacy-db and the collection names (`edn-migrate status` shows what the store holds)",
            config.legacy_db,
            config.per_user_collections().join(", ")
        )
    } else {
        "phase 2 validation failed: fix the failures listed in the report (ids and paths), re-run `edn-migrate phase2 migrate all`, then validate again".to_string()
    };
    Err(CommandError::Failed {
        output: Box::new(output),
        message,
    })
}

/// The build options of the last successful migration (pairing window, size
/// limit), so the rebuild here derives what that run derived.
fn build_options(store: &dyn Store, config: &Config) -> CommandResult<BuildOptions> {
    let mut opts = BuildOptions::new(bson::DateTime::from_millis(0), "validate");
    let last = all_runs(store, config)?
        .into_iter()
        .rfind(|r| r.command.starts_with("phase2 migrate") && r.outcome == "succeeded");
    if let Some(summary) = last.and_then(|r| r.summary) {
        if let Ok(ms) = summary.get_i64("pairing_window_ms") {
            opts.pairing_window_ms = ms;
        }
        if let Ok(bytes) = summary.get_i64("max_drawer_bytes") {
            opts.max_drawer_bytes = usize::try_from(bytes).unwrap_or(opts.max_drawer_bytes);
        }
    }
    Ok(opts)
}

/// The stored drawers in `_id` order, walked alongside the users (in
/// `user_id` order, the same order: `client_<user_id>`), so every drawer is
/// read once and a drawer no user claims is found on the way. They stay
/// BSON bytes: most are the drawer built afresh but for a run's
/// bookkeeping, and need no decoding (`as_stored`).
struct Drawers<'a> {
    stream: Peekable<RawDocStream<'a>>,
}

impl Drawers<'_> {
    /// The drawer of `user_id`, if stored; drawers before it belong to no
    /// user and go to `orphan`.
    fn claim(
        &mut self,
        user_id: Option<&str>,
        orphan: &mut dyn FnMut(RawDocumentBuf) -> CommandResult<()>,
    ) -> CommandResult<Option<RawDocumentBuf>> {
        let Some(uid) = user_id else {
            return Ok(None);
        };
        let want = raw_sort_key(Some(RawBsonRef::String(&drawer::drawer_id(uid))));
        loop {
            let order = match self.stream.peek() {
                None => return Ok(None),
                Some(Ok(d)) => raw_sort_key(d.get("_id").ok().flatten()).cmp(&want),
                Some(Err(_)) => std::cmp::Ordering::Less,
            };
            if order == std::cmp::Ordering::Greater {
                return Ok(None);
            }
            match self.stream.next() {
                Some(Ok(d)) if order == std::cmp::Ordering::Equal => return Ok(Some(d)),
                Some(Ok(d)) => orphan(d)?,
                Some(Err(e)) => return Err(e.into()),
                None => return Ok(None),
            }
        }
    }
}

/// Reads everything and says whether it passed. Reading and decoding run on
/// a reader thread of their own when the store has one (they were two fifths
/// of a validation on one thread), a chunk ahead of the checks.
fn check_all(
    store: &dyn Store,
    config: &Config,
    opts: &ValidateOptions,
    run: &mut Run<'_>,
) -> CommandResult<(Findings, bool)> {
    let build = build_options(store, config)?;
    let mut f = Findings::default();
    for family in [Family::Questionnaires, Family::Followups, Family::Plans] {
        f.rates.insert(family, Rate::default());
    }
    let mut wanted = Vec::new();
    let mut consume = |read: Read| -> CommandResult<()> {
        match read {
            Read::Chunk(chunk) => check_chunk(config, &build, chunk, &mut wanted, &mut f),
            Read::Elsewhere(documents) => {
                f.legacy_elsewhere += documents;
                Ok(())
            }
            Read::Accounts { renew } => {
                account_quarantine(store, config, std::mem::take(&mut wanted), &mut f)?;
                if renew {
                    // A validation of a large store outlives one lease otherwise.
                    run.renew()?;
                }
                Ok(())
            }
            Read::Orphan(item) => check_chunk(config, &build, vec![item], &mut Vec::new(), &mut f),
        }
    };
    match store.reader() {
        Some(reader) => std::thread::scope(|scope| {
            // A rendezvous: one chunk read while one is checked, no more
            // (a chunk queued between them took the peak RSS over 256 MB).
            let (tx, rx) = std::sync::mpsc::sync_channel(0);
            let producer = scope.spawn(move || {
                read_all(reader.as_ref(), config, opts.partition, &mut |read| {
                    // The checks stopped: their error is the one reported.
                    tx.send(read)
                        .map_err(|_| CommandError::Input("the checks stopped".into()))
                })
            });
            for read in rx {
                consume(read)?;
            }
            producer
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })?,
        None => read_all(store, config, opts.partition, &mut consume)?,
    }
    let passed = verdict(&f, &opts.thresholds);
    Ok((f, passed))
}

/// What the reading hands the checks, in order.
enum Read {
    /// Items to check together.
    Chunk(Vec<Item>),
    /// Legacy documents of users outside the partition validated.
    Elsewhere(u64),
    /// Look the quarantine records wanted so far up (and renew the lease).
    Accounts { renew: bool },
    /// A drawer after the last user's, which no user claims.
    Orphan(Item),
}

/// Walks the users and the drawers once, doing every read of the store a
/// check needs, and hands what it read to `emit` in order.
fn read_all(
    store: &dyn Store,
    config: &Config,
    partition: Option<(u32, u32)>,
    emit: &mut dyn FnMut(Read) -> CommandResult<()>,
) -> CommandResult<()> {
    let sources = [
        config.legacy(&config.submissions),
        config.legacy(&config.followups),
        config.legacy(&config.training_plans),
        config.legacy(&config.nutrition_plans),
    ];
    let mut drawers = Drawers {
        stream: store
            .scan_raw(&config.drawers_ns(), &Scan::by_id(200))?
            .peekable(),
    };
    let mine = |user_id: Option<&Bson>| {
        partition.is_none_or(|(i, n)| home_partition(user_id.unwrap_or(&Bson::Null), n) == i)
    };
    let mut users = 0;
    let mut held = 0;
    let mut chunk: Vec<Item> = Vec::with_capacity(CHUNK);
    for group in PerUser::open(store, sources.each_ref(), 1000, None)? {
        let group = group?;
        let uid = group.user_id.as_str().filter(|u| !u.trim().is_empty());
        let stored = drawers.claim(uid, &mut |raw| {
            let d = decode(&raw)?;
            if mine(d.get("user_id")) {
                let archived = archived_of(store, config, Some(&raw))?;
                held += 1 + archived.len();
                chunk.push(Item::Orphan(d, archived));
            }
            Ok(())
        })?;
        users += 1;
        if mine(Some(&group.user_id)) {
            let archived = archived_of(store, config, stored.as_deref())?;
            held += group.len() + usize::from(stored.is_some()) + archived.len();
            chunk.push(Item::User(Box::new(group), stored, archived));
        } else {
            emit(Read::Elsewhere(group.len() as u64))?;
        }
        if chunk.len() >= CHUNK || held >= CHUNK_DOCUMENTS || users % BATCH == 0 {
            held = 0;
            emit(Read::Chunk(std::mem::replace(
                &mut chunk,
                Vec::with_capacity(CHUNK),
            )))?;
        }
        if users % BATCH == 0 {
            emit(Read::Accounts { renew: true })?;
        }
    }
    emit(Read::Chunk(chunk))?;
    emit(Read::Accounts { renew: false })?;
    for raw in drawers.stream {
        let raw = raw?;
        let d = decode(&raw)?;
        if mine(d.get("user_id")) {
            let archived = archived_of(store, config, Some(&raw))?;
            emit(Read::Orphan(Item::Orphan(d, archived)))?;
        }
    }
    Ok(())
}

fn verdict(f: &Findings, thresholds: &Thresholds) -> bool {
    let rates_ok = f
        .rates
        .iter()
        .all(|(family, r)| rate(r).is_none_or(|x| x >= thresholds.of(*family)));
    // A partition may hold no user of a small store; the store may not be empty.
    (f.legacy_documents > 0 || f.legacy_elsewhere > 0)
        && rates_ok
        && f.unaccounted() == 0
        && f.drawers_invalid == 0
        && f.unexplained_drawers == 0
}

/// The match rate of a family; `None` when it has no document (0 of 0 is not 100 %).
fn rate(r: &Rate) -> Option<f64> {
    (r.documents > 0).then(|| r.matched as f64 / r.documents as f64)
}

/// What the validation reads for one user (or one drawer no user claims):
/// the store's part is done when it is queued, the rest is pure.
enum Item {
    /// A user's documents, their stored drawer and its archived snapshots.
    User(Box<Group<Fetched>>, Option<RawDocumentBuf>, Vec<Document>),
    /// A drawer no user claims, and its archived snapshots.
    Orphan(Document, Vec<Document>),
}

/// What checking one item found, to be counted in order.
struct Checked {
    legacy_documents: u64,
    wanted: Vec<(LegacyKind, String, String)>,
    drawer: Option<Seen>,
    orphan: bool,
    user_id: String,
    findings: Vec<Finding>,
}

/// Checks a chunk of users on all cores (the checks are pure and were the
/// whole of a validation's time), then counts what they found in the
/// order they came, so the reports read as a one-thread run's.
fn check_chunk(
    config: &Config,
    build: &BuildOptions,
    chunk: Vec<Item>,
    wanted: &mut Vec<(LegacyKind, String, String)>,
    f: &mut Findings,
) -> CommandResult<()> {
    let checked = map_on_cores(chunk, |item| check_item(config, build, item));
    for c in checked {
        let c = c?;
        f.legacy_documents += c.legacy_documents;
        wanted.extend(c.wanted);
        if let Some(seen) = c.drawer {
            if c.orphan {
                f.unexplained_drawers += 1;
                if f.unexplained_listed.len() < LISTED {
                    f.unexplained_listed.push(json!({
                        "drawer_id": seen.drawer_id,
                        "user_id": seen.user_id,
                    }));
                }
            }
            f.drawers_checked += 1;
            collect_warnings(f, &seen)?;
            f.invalid(&seen.drawer_id, seen.errors);
        }
        for finding in c.findings {
            tally(f, &c.user_id, finding);
        }
    }
    Ok(())
}

fn check_item(config: &Config, build: &BuildOptions, item: Item) -> CommandResult<Checked> {
    Ok(match item {
        Item::Orphan(d, archived) => {
            let errors = drawer_errors(&d, None, &archived, Vec::new());
            Checked {
                legacy_documents: 0,
                wanted: Vec::new(),
                drawer: Some(Seen::of(&d, errors)),
                orphan: true,
                user_id: String::new(),
                findings: Vec::new(),
            }
        }
        Item::User(group, stored, archived) => {
            check_user(config, build, *group, stored, &archived)?
        }
    })
}

/// Everything about one user: their documents against their drawer.
fn check_user(
    config: &Config,
    build: &BuildOptions,
    group: Group<Fetched>,
    stored: Option<RawDocumentBuf>,
    archived: &[Document],
) -> CommandResult<Checked> {
    let legacy_documents = group.len() as u64;
    // The rebuild over a stored drawer that is not the fresh build needs
    // the documents again, after the fresh build has taken them: decoded
    // again from a copy of what was fetched (bytes, from the embedded store).
    let mut again = stored.as_ref().map(|_| group.clone());
    let Triaged {
        user,
        has_user,
        bad,
        rejected,
    } = split(config, group)?;
    let mut checked = Checked {
        legacy_documents,
        wanted: bad,
        drawer: None,
        orphan: false,
        user_id: String::new(),
        findings: Vec::new(),
    };
    // The build takes the documents; what is looked up after it needs only
    // their ids, and the comparison what `Original` keeps.
    let refs: Vec<(LegacyKind, &Document)> = user.documents().collect();
    let ids = LegacyIds::of(&refs);
    let originals: Vec<Original> = refs.iter().map(|(k, d)| Original::of(*k, d)).collect();
    let all: Vec<(LegacyKind, &Document)> = refs
        .iter()
        .copied()
        .chain(rejected.iter().map(|(kind, d, _)| (*kind, d)))
        .collect();
    let all = LegacyIds::of(&all);
    let stored_bytes = stored.as_ref().map(|raw| raw.as_bytes().len());
    if !has_user {
        if let Some(raw) = stored {
            let d = decode(&raw)?;
            let unexplained = unexplained_entries(&all, &d);
            let errors = drawer_errors(&d, stored_bytes, archived, unexplained);
            checked.drawer = Some(Seen::of(&d, errors));
        }
        return Ok(checked);
    }
    let user_id = user.user_id.clone();
    let mut built = drawer::build_owned(user, None, build);
    let skip: Vec<Bson> = built.quarantine.iter().map(|q| q.id.clone()).collect();
    for q in &built.quarantine {
        checked.wanted.push((
            q.kind,
            config.quarantine_id(q.kind, &q.id),
            render_id(&q.id),
        ));
    }
    #[cfg(debug_assertions)]
    let fresh = built.drawer.clone();
    let (mut findings, stored, as_built) = match stored {
        Some(raw) if as_stored(&mut built.drawer, &raw) => {
            // The stored drawer is `built.drawer` now; the comparison reads
            // no bookkeeping of the drawer built afresh.
            let findings = compare_user(
                &originals,
                &built.drawer,
                Some(&built.drawer),
                archived,
                &skip,
            );
            #[cfg(debug_assertions)]
            {
                let decoded = decode(&raw)?;
                assert_eq!(decoded, built.drawer);
                assert_eq!(
                    findings,
                    compare_user(&originals, &fresh, Some(&decoded), archived, &skip)
                );
            }
            (findings, Some(built.drawer), true)
        }
        Some(raw) => {
            let d = decode(&raw)?;
            let findings = compare_user(&originals, &built.drawer, Some(&d), archived, &skip);
            (findings, Some(d), false)
        }
        None => (
            compare_user(&originals, &built.drawer, None, archived, &skip),
            None,
            false,
        ),
    };
    if let Some(d) = stored {
        let mut errors = Vec::new();
        let mut user = || -> CommandResult<LegacyUser> {
            let group = again.take().unwrap_or_default();
            Ok(group.into_user(user_id.clone())?.0)
        };
        let differences = if as_built {
            debug_assert!(derived_differences(user()?, &ids, &d, build).is_empty());
            Vec::new()
        } else {
            derived_differences(user()?, &ids, &d, build)
        };
        for (path, origin) in differences {
            let finding = match &origin {
                Origin::Document(kind, key) => findings
                    .iter_mut()
                    .find(|x| x.kind == *kind && ids.renders_as(*kind, key, &x.id)),
                Origin::Drawer => None,
            };
            match finding {
                Some(finding) if !finding.paths.contains(&path) => finding.paths.push(path),
                Some(_) => {}
                None => errors.push(format!("{path}: not what the legacy documents give")),
            }
        }
        for entry in unexplained_entries(&all, &d) {
            errors.push(format!("{entry}: no legacy document explains it"));
        }
        let errors = drawer_errors(&d, stored_bytes, archived, errors);
        checked.drawer = Some(Seen::of(&d, errors));
    }
    checked.user_id = user_id;
    checked.findings = findings;
    Ok(checked)
}

/// Paths where a migration run would change the stored drawer (the parts
/// derived from legacy data that are not as derived), each with the legacy
/// document it comes from. Bookkeeping a run rewrites anyway (its run id,
/// clock, `updated_at`) is left out.
fn derived_differences(
    user: LegacyUser,
    ids: &LegacyIds,
    stored: &Document,
    build: &BuildOptions,
) -> Vec<(String, Origin)> {
    let rebuilt = drawer::build_owned(user, Some(stored), build);
    if !rebuilt.changed {
        return Vec::new();
    }
    let paths: Vec<Vec<Step>> = differing_paths(stored, &rebuilt.drawer)
        .into_iter()
        .filter(|p| {
            let p = render_path(p);
            !(RUN_BOOKKEEPING.contains(&p.as_str()) || p == "meta.migration.set")
        })
        .collect();
    if paths.is_empty() {
        return vec![("(field order)".into(), Origin::Drawer)];
    }
    paths
        .into_iter()
        .map(|p| {
            let origin = source_of(&p, ids, &rebuilt.drawer);
            (render_path(&p), origin)
        })
        .collect()
}

/// What a migration run writes whatever else it does: its run id, its
/// clock, and the drawer's `updated_at`.
const RUN_BOOKKEEPING: [&str; 3] = [
    "meta.updated_at",
    "meta.migration.run_id",
    "meta.migration.migrated_at",
];

/// Whether the stored drawer `stored` is `built` (the drawer built afresh
/// from the same legacy documents) but for `RUN_BOOKKEEPING`, found without
/// decoding it: `built` takes the stored bookkeeping, and its bytes must
/// then be the stored bytes. When they are, `built` is the stored drawer as
/// decoding would give it (decoding stored drawers was a quarter of a
/// validation's time), and rebuilding over it would change nothing (a
/// migration run over its own output writes nothing), so that second
/// build, a third of a validation, is not needed. When not, `built` is
/// left as it was and the caller decodes.
fn as_stored(built: &mut Document, stored: &RawDocument) -> bool {
    let mut taken = Vec::with_capacity(RUN_BOOKKEEPING.len());
    for path in RUN_BOOKKEEPING {
        let value = raw_value_at_path(stored, path).and_then(|v| Bson::try_from(v).ok());
        let (Some(value), Some(slot)) = (value, value_at_path_mut(built, path)) else {
            put_back(built, taken);
            return false;
        };
        taken.push(std::mem::replace(slot, value));
    }
    let same = crate::encoded::to_vec_sized(built, stored.as_bytes().len())
        .is_ok_and(|bytes| bytes == stored.as_bytes());
    if !same {
        put_back(built, taken);
    }
    same
}

/// Undoes `as_stored`'s replacements, the first `values.len()` of them.
fn put_back(built: &mut Document, values: Vec<Bson>) {
    for (path, value) in RUN_BOOKKEEPING.iter().zip(values) {
        if let Some(slot) = value_at_path_mut(built, path) {
            *slot = value;
        }
    }
}

/// The validator and the size limit on one stored drawer (and its archived
/// snapshots), after the `errors` the caller found. `bytes` is the drawer's
/// size when it was read as bytes (then it need not be measured).
fn drawer_errors(
    d: &Document,
    bytes: Option<usize>,
    archived: &[Document],
    mut errors: Vec<String>,
) -> Vec<String> {
    let ids: Vec<String> = archived
        .iter()
        .filter_map(|a| a.get_str("snapshot_id").ok().map(str::to_string))
        .collect();
    errors.extend(drawer::validate(d, &ids).iter().map(ToString::to_string));
    debug_assert!(bytes.is_none_or(|n| Some(n) == crate::encoded::doc_len(d)));
    let measure = |doc: &Document| crate::encoded::doc_len(doc).unwrap_or(usize::MAX);
    let drawer = (d, bytes.unwrap_or_else(|| measure(d)));
    for (doc, bytes) in std::iter::once(drawer).chain(archived.iter().map(|a| (a, measure(a)))) {
        if bytes > MAX_DOCUMENT_BYTES {
            errors.push(format!(
                "{}: {bytes} bytes, over MongoDB's 16 MiB ({MAX_DOCUMENT_BYTES} bytes) document limit",
                doc.get("_id").map(render_id).unwrap_or_default()
            ));
        }
    }
    errors
}

/// The per-document warnings the migration recorded in the drawer: user,
/// kind, field path and document id, never a value.
/// What the counting needs of a checked drawer, taken on the checking
/// thread so the drawer is freed there: freeing every drawer on the
/// counting thread, alone, kept the other cores waiting.
struct Seen {
    drawer_id: String,
    user_id: String,
    errors: Vec<String>,
    /// The warnings its runs recorded: kind, field, source document.
    warnings: Vec<[String; 3]>,
}

impl Seen {
    fn of(d: &Document, errors: Vec<String>) -> Seen {
        let text = |w: &Document, key: &str| w.get_str(key).unwrap_or_default().to_owned();
        let warnings = match value_at_path(d, "meta.migration.warnings") {
            Some(Bson::Array(list)) => list
                .iter()
                .filter_map(Bson::as_document)
                .map(|w| [text(w, "kind"), text(w, "field"), text(w, "source_id")])
                .collect(),
            _ => Vec::new(),
        };
        Seen {
            drawer_id: d.get("_id").map(render_id).unwrap_or_default(),
            user_id: d.get("user_id").map(render_id).unwrap_or_default(),
            errors,
            warnings,
        }
    }
}

fn collect_warnings(f: &mut Findings, seen: &Seen) -> CommandResult<()> {
    for [kind, field, document] in &seen.warnings {
        f.warnings
            .push(&json!({
                "user_id": seen.user_id,
                "kind": kind,
                "field": field,
                "document": document,
            }))
            .map_err(spool_error)?;
    }
    Ok(())
}

fn spool_error(e: std::io::Error) -> CommandError {
    CommandError::io("spooling the warnings to a temporary file".to_string())(e)
}

/// A user's documents split by triage: those that pass, moved into a
/// `LegacyUser`; the rest, with their quarantine keys.
struct Triaged {
    /// The documents that pass.
    user: LegacyUser,
    /// Whether there is a user to build a drawer for: an id, and documents
    /// that pass.
    has_user: bool,
    /// The quarantine keys of the rest: kind, quarantine id, rendered id.
    bad: Vec<(LegacyKind, String, String)>,
    /// The documents that fail triage themselves.
    rejected: Vec<Rejected>,
}

fn split(config: &Config, group: Group<Fetched>) -> CommandResult<Triaged> {
    let user_id = group.user_id.as_str().unwrap_or_default().to_string();
    let (user, rejected) = group.into_user(user_id)?;
    let bad = rejected
        .iter()
        .map(|(kind, doc, _)| {
            let id = doc.get("_id").cloned().unwrap_or(Bson::Null);
            (*kind, config.quarantine_id(*kind, &id), render_id(&id))
        })
        .collect();
    let has_user = !user.user_id.is_empty() && user.documents().next().is_some();
    Ok(Triaged {
        user,
        has_user,
        bad,
        rejected,
    })
}

/// A stored drawer decoded; a drawer that cannot be is the store's error.
fn decode(raw: &RawDocument) -> CommandResult<Document> {
    Ok(decode_raw(raw)?)
}

/// The archived snapshots a stored drawer names.
fn archived_of(
    store: &dyn Store,
    config: &Config,
    drawer: Option<&RawDocument>,
) -> CommandResult<Vec<Document>> {
    let Some(d) = drawer else {
        return Ok(Vec::new());
    };
    let drawer_id = d.get_str("_id").unwrap_or_default();
    let ids: Vec<Bson> = match raw_value_at_path(d, "meta.migration.archived_snapshot_ids") {
        Some(RawBsonRef::Array(ids)) => ids
            .into_iter()
            .filter_map(|id| id.ok()?.as_str())
            .map(|s| Bson::from(format!("{drawer_id}:{s}")))
            .collect(),
        _ => Vec::new(),
    };
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    Ok(store.get_many(&config.drawer(own::SNAPSHOT_ARCHIVE), &ids)?)
}

fn tally(f: &mut Findings, user_id: &str, finding: Finding) {
    let r = f.rates.entry(Family::of(finding.kind)).or_default();
    r.documents += 1;
    if !finding.missing {
        f.in_drawers += 1;
    }
    if finding.matches() && !finding.missing {
        r.matched += 1;
        return;
    }
    let failure = json!({ "collection": finding.kind.as_str(), "id": finding.id, "user_id": user_id, "paths": finding.paths });
    if r.failures.len() < LISTED {
        r.failures.push(failure.clone());
    }
    if finding.missing && f.unaccounted_listed.len() < LISTED {
        f.unaccounted_listed.push(failure);
    }
}

/// Documents that must be in quarantine: counted there, or unaccounted.
fn account_quarantine(
    store: &dyn Store,
    config: &Config,
    wanted: Vec<(LegacyKind, String, String)>,
    f: &mut Findings,
) -> CommandResult<()> {
    if wanted.is_empty() {
        return Ok(());
    }
    let ids: Vec<Bson> = wanted
        .iter()
        .map(|(_, key, _)| Bson::from(key.as_str()))
        .collect();
    let found: Vec<String> = store
        .get_many(&config.drawer(own::QUARANTINE), &ids)?
        .iter()
        .filter_map(|d| d.get_str("_id").ok().map(str::to_string))
        .collect();
    for (kind, key, id) in wanted {
        if found.contains(&key) {
            f.quarantined += 1;
        } else if f.unaccounted_listed.len() < LISTED {
            f.unaccounted_listed
                .push(json!({ "collection": kind.as_str(), "id": id, "paths": [own::QUARANTINE] }));
        }
    }
    Ok(())
}

fn report_json(
    store: &dyn Store,
    config: &Config,
    f: &Findings,
    t: &Thresholds,
    passed: bool,
    now: chrono::DateTime<Utc>,
) -> Value {
    let families: serde_json::Map<String, Value> = f
        .rates
        .iter()
        .map(|(family, r)| {
            let name = serde_json::to_value(family).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
            (name, json!({
                "documents": r.documents, "matched": r.matched, "rate": rate(r),
                "threshold": t.of(*family), "passed": rate(r).is_none_or(|x| x >= t.of(*family)), "failures": r.failures,
            }))
        })
        .collect();
    json!({
        "generated_at": now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "store": store.describe(),
        "legacy_db": config.legacy_db,
        "drawer_db": config.drawer_db,
        "passed": passed,
        "rates": families,
        "accounting": {
            "legacy_documents": f.legacy_documents,
            "in_drawers": f.in_drawers,
            "quarantined": f.quarantined,
            "unaccounted": f.unaccounted(),
            "unaccounted_listed": f.unaccounted_listed,
        },
        "drawers": {
            "checked": f.drawers_checked,
            "invalid": f.drawers_invalid,
            "invalid_listed": f.drawers_invalid_listed,
            "unexplained": f.unexplained_drawers,
            "unexplained_listed": f.unexplained_listed,
        },
        "warnings": { "count": f.warnings.count(), "by_kind": f.warnings.by_kind() },
    })
}

/// Writes `validate-<time>-<run>.json` and `.md`; never replaces a file, so
/// two validations in the same second keep both reports.
/// The warnings are streamed from their spool into both files.
fn write_reports(
    dir: &Path,
    report: &mut Value,
    warnings: &mut WarningLog,
    now: chrono::DateTime<Utc>,
    run_id: &str,
) -> CommandResult<(PathBuf, PathBuf)> {
    crate::private::create_dir_all(dir)
        .map_err(CommandError::io(format!("creating {}", dir.display())))?;
    let run = run_id.rsplit('-').next().unwrap_or(run_id);
    let stem = format!("validate-{}-{run}", now.format("%Y%m%dT%H%M%SZ"));
    let json_path = dir.join(format!("{stem}.json"));
    let md_path = dir.join(format!("{stem}.md"));
    // The listing goes where this marker lands in the pretty-printed report.
    const MARKER: &str = "\u{1}listed\u{1}";
    report["warnings"]["listed"] = json!(MARKER);
    let pretty = serde_json::to_string_pretty(report).unwrap_or_else(|_| report.to_string());
    if let Some(w) = report["warnings"].as_object_mut() {
        w.remove("listed");
    }
    let marker = serde_json::to_string(MARKER).unwrap_or_default();
    let (head, tail) = pretty.rsplit_once(&marker).unwrap_or((&pretty, ""));
    write_new(&json_path, |out| {
        out.write_all(head.as_bytes())?;
        let mut first = true;
        out.write_all(b"[")?;
        warnings.each(|w| {
            out.write_all(if first { b"\n        " } else { b",\n        " })?;
            first = false;
            serde_json::to_writer(&mut *out, &w)?;
            Ok(())
        })?;
        out.write_all(if first { b"]" } else { b"\n      ]" })?;
        out.write_all(tail.as_bytes())
    })?;
    write_new(&md_path, |out| {
        out.write_all(markdown(report).as_bytes())?;
        warnings.each(|item| {
            writeln!(
                out,
                "| {} | {} | {} | {} |",
                item["user_id"].as_str().unwrap_or(""),
                item["kind"].as_str().unwrap_or(""),
                item["field"].as_str().unwrap_or(""),
                item["document"].as_str().unwrap_or(""),
            )
        })
    })?;
    Ok((json_path, md_path))
}

/// Creates an owner-only file that must not exist yet, and writes it.
fn write_new(
    path: &Path,
    write: impl FnOnce(&mut std::io::BufWriter<&std::fs::File>) -> std::io::Result<()>,
) -> CommandResult<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(crate::private::FILE_MODE);
    }
    let file = options
        .open(path)
        .map_err(CommandError::io(format!("creating {}", path.display())))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let owner_only = std::fs::Permissions::from_mode(crate::private::FILE_MODE);
        file.set_permissions(owner_only)
            .map_err(CommandError::io(format!("creating {}", path.display())))?;
    }
    let mut out = std::io::BufWriter::new(&file);
    write(&mut out)
        .and_then(|_| out.flush())
        .and_then(|_| file.sync_all())
        .map_err(CommandError::io(format!("writing {}", path.display())))
}

fn percent(v: &Value) -> String {
    v.as_f64()
        .map_or_else(|| "n/a".to_string(), |x| format!("{:.1} %", x * 100.0))
}

fn markdown(report: &Value) -> String {
    let mut md = format!(
        "# Phase 2 validation\n\n- generated: {}\n- store: {}\n- result: **{}**\n\n| type | documents | matched | rate | threshold | |\n|---|---:|---:|---:|---:|---|\n",
        report["generated_at"].as_str().unwrap_or(""),
        report["store"].as_str().unwrap_or(""),
        if report["passed"] == true { "passed" } else { "FAILED" },
    );
    if let Some(rates) = report["rates"].as_object() {
        for (name, r) in rates {
            md.push_str(&format!(
                "| {name} | {} | {} | {} | {} | {} |\n",
                r["documents"],
                r["matched"],
                percent(&r["rate"]),
                percent(&r["threshold"]),
                if r["passed"] == true {
                    "ok"
                } else {
                    "**below**"
                }
            ));
        }
    }
    let a = &report["accounting"];
    let d = &report["drawers"];
    md.push_str(&format!(
        "\n## Accounting\n\n{} legacy documents: {} in drawers, {} in quarantine, {} unaccounted.\n\n## Drawers\n\n{} checked, {} invalid, {} that no legacy document explains.\n",
        a["legacy_documents"], a["in_drawers"], a["quarantined"], a["unaccounted"],
        d["checked"], d["invalid"], d["unexplained"]
    ));
    let rows = |items: &Value| -> String {
        let mut out = String::new();
        for item in items.as_array().into_iter().flatten() {
            let paths: Vec<String> = item["paths"]
                .as_array()
                .map(|p| {
                    p.iter()
                        .filter_map(|x| x.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            out.push_str(&format!(
                "| {} | {} | {} |\n",
                item["collection"].as_str().unwrap_or(""),
                item["id"].as_str().unwrap_or(""),
                paths.join(", ")
            ));
        }
        out
    };
    let mut failures = String::new();
    for r in report["rates"]
        .as_object()
        .into_iter()
        .flat_map(|m| m.values())
    {
        failures.push_str(&rows(&r["failures"]));
    }
    failures.push_str(&rows(&a["unaccounted_listed"]));
    if !failures.is_empty() {
        md.push_str("\n## Documents not as expected (ids and paths only)\n\n| collection | id | paths |\n|---|---|---|\n");
        md.push_str(&failures);
    }
    for item in d["invalid_listed"].as_array().into_iter().flatten() {
        md.push_str(&format!(
            "\n- invalid drawer {}: {}\n",
            item["drawer_id"].as_str().unwrap_or(""),
            item["errors"]
        ));
    }
    for item in d["unexplained_listed"].as_array().into_iter().flatten() {
        md.push_str(&format!(
            "\n- drawer {} (user {}): no legacy document explains it\n",
            item["drawer_id"].as_str().unwrap_or(""),
            item["user_id"].as_str().unwrap_or("")
        ));
    }
    let w = &report["warnings"];
    md.push_str(&format!(
        "\n## Warnings recorded by the migration\n\n{} in all (ids and field paths only).\n\n| user | kind | field | document |\n|---|---|---|---|\n",
        w["count"]
    ));
    md
}

/// What the run record keeps of a validation: the verdict and the rates.
fn summary(report: &Value, passed: bool) -> Document {
    bson::to_document(&json!({
        "passed": passed,
        "rates": report["rates"].as_object().map(|r| r.iter().map(|(k, v)| (k.clone(), v["rate"].clone())).collect::<serde_json::Map<_, _>>()),
        "legacy_documents": report["accounting"]["legacy_documents"],
        "unaccounted": report["accounting"]["unaccounted"],
        "drawers_invalid": report["drawers"]["invalid"],
        "drawers_unexplained": report["drawers"]["unexplained"],
    }))
    .unwrap_or_default()
}

fn render_text(
    f: &mut Findings,
    t: &Thresholds,
    passed: bool,
    paths: &(PathBuf, PathBuf),
    opts: &ValidateOptions,
) -> CommandResult<String> {
    let mut rows = vec![vec![
        "type".to_string(),
        "documents".into(),
        "matched".into(),
        "rate".into(),
        "threshold".into(),
        String::new(),
    ]];
    for (family, r) in &f.rates {
        let name = match family {
            Family::Questionnaires => "questionnaires",
            Family::Followups => "follow-ups",
            Family::Plans => "plans",
        };
        rows.push(vec![
            name.into(),
            r.documents.to_string(),
            r.matched.to_string(),
            rate(r).map_or_else(|| "n/a".to_string(), |x| format!("{:.1} %", x * 100.0)),
            format!("{:.1} %", t.of(*family) * 100.0),
            match rate(r) {
                None => "nothing to compare".into(),
                Some(x) if x >= t.of(*family) => "ok".into(),
                Some(_) => "BELOW".into(),
            },
        ]);
    }
    let mut text = format!(
        "phase2 validate{}: {}\n{}",
        opts.partition
            .map(|(i, n)| format!(" --partition {i}/{n}"))
            .unwrap_or_default(),
        if passed { "passed" } else { "FAILED" },
        table(&rows)
    );
    text.push_str(&format!(
        "  {} legacy documents: {} in drawers, {} in quarantine, {} unaccounted\n  {} drawers checked, {} invalid, {} that no legacy document explains\n",
        f.legacy_documents,
        f.in_drawers,
        f.quarantined,
        f.unaccounted(),
        f.drawers_checked,
        f.drawers_invalid,
        f.unexplained_drawers,
    ));
    if f.legacy_documents + f.legacy_elsewhere == 0 {
        text.push_str("  nothing to validate: no legacy document was found\n");
    }
    let failures = f.rates.values().flat_map(|r| &r.failures);
    for item in failures.chain(&f.unaccounted_listed).take(10) {
        text.push_str(&format!(
            "  not as expected: {} {}: {}\n",
            item["collection"].as_str().unwrap_or(""),
            item["id"].as_str().unwrap_or(""),
            item["paths"]
        ));
    }
    for item in f.drawers_invalid_listed.iter().take(10) {
        text.push_str(&format!(
            "  invalid drawer {}: {}\n",
            item["drawer_id"].as_str().unwrap_or(""),
            item["errors"]
        ));
    }
    for item in f.unexplained_listed.iter().take(10) {
        text.push_str(&format!(
            "  drawer {} (user {}): no legacy document explains it\n",
            item["drawer_id"].as_str().unwrap_or(""),
            item["user_id"].as_str().unwrap_or("")
        ));
    }
    text.push_str(&warnings_text(&mut f.warnings, opts.list_warnings)?);
    text.push_str(&format!(
        "  report: {} and {}\n",
        paths.0.display(),
        paths.1.display()
    ));
    Ok(text)
}

/// Counts by kind, or with `--warnings` one line per warning.
fn warnings_text(warnings: &mut WarningLog, list: bool) -> CommandResult<String> {
    if warnings.count() == 0 {
        return Ok("  no warnings recorded by the migration\n".into());
    }
    if !list {
        let counts: Vec<String> = warnings
            .by_kind()
            .iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        return Ok(format!(
            "  {} warnings recorded by the migration ({}): `edn-migrate phase2 validate --warnings` lists each\n",
            warnings.count(),
            counts.join(", ")
        ));
    }
    let mut rows = vec![vec![
        "user".to_string(),
        "kind".into(),
        "field".into(),
        "document".into(),
    ]];
    for w in warnings.all().map_err(spool_error)? {
        rows.push(
            ["user_id", "kind", "field", "document"]
                .iter()
                .map(|k| w[*k].as_str().unwrap_or_default().to_string())
                .collect(),
        );
    }
    Ok(format!(
        "  {} warnings recorded by the migration:\n{}",
        warnings.count(),
        table(&rows)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The comparison `as_stored` replaced, on decoded drawers: the same
    /// fields in the same order, equal but for `RUN_BOOKKEEPING`. `prefix`
    /// is the path of `a` and `b` in their drawers.
    fn same_but_bookkeeping(a: &Document, b: &Document, prefix: &str) -> bool {
        a.len() == b.len()
            && a.iter().zip(b).all(|((ka, va), (kb, vb))| {
                let path = if prefix.is_empty() {
                    ka.clone()
                } else {
                    format!("{prefix}.{ka}")
                };
                ka == kb
                    && (RUN_BOOKKEEPING.contains(&path.as_str())
                        || match (va, vb) {
                            (Bson::Document(x), Bson::Document(y))
                                if RUN_BOOKKEEPING.iter().any(|p| {
                                    p.strip_prefix(path.as_str())
                                        .is_some_and(|rest| rest.starts_with('.'))
                                }) =>
                            {
                                same_but_bookkeeping(x, y, &path)
                            }
                            _ => crate::encoded::same(va, vb),
                        })
            })
    }

    #[test]
    fn only_a_run_s_bookkeeping_may_differ_from_the_drawer_as_built() {
        let built = bson::doc! {
            "_id": "client_1", "services": { "training": { "active": true } },
            "meta": { "updated_at": 1, "status": "active",
                      "migration": { "run_id": "a", "migrated_at": 1, "set": [] } },
        };
        // `as_stored`, on the stored bytes, answers as `same_but_bookkeeping`
        // does on the decoded drawer, and leaves the built drawer as the
        // stored one when it says yes, untouched when it says no.
        let same = |edit: &dyn Fn(&mut Document)| {
            let mut stored = built.clone();
            edit(&mut stored);
            let answer = same_but_bookkeeping(&built, &stored, "");
            let mut candidate = built.clone();
            let raw = RawDocumentBuf::from_document(&stored).unwrap();
            assert_eq!(as_stored(&mut candidate, &raw), answer, "{stored}");
            let expected = if answer { &stored } else { &built };
            assert_eq!(&candidate, expected);
            assert!(crate::encoded::same_doc(&candidate, expected));
            answer
        };
        let set = |path: &'static str, v: Bson| {
            move |d: &mut Document| {
                let (parents, key) = path.rsplit_once('.').unwrap();
                let mut at = &mut *d;
                for p in parents.split('.') {
                    at = at.get_document_mut(p).unwrap();
                }
                at.insert(key, v.clone());
            }
        };
        assert!(same(&|_| {}));
        assert!(same(&|d| {
            set("meta.updated_at", Bson::Int32(2))(d);
            set("meta.migration.run_id", Bson::from("b"))(d);
            set("meta.migration.migrated_at", Bson::Int32(2))(d);
        }));
        assert!(!same(&set("meta.status", Bson::from("needs_review"))));
        assert!(!same(&set(
            "meta.migration.set",
            Bson::Array(vec![Bson::Null])
        )));
        assert!(!same(&set("services.training.active", Bson::Int32(1))));
        assert!(!same(&set("meta.extra", Bson::Null)));
        assert!(!same(&|d| {
            d.get_document_mut("meta")
                .unwrap()
                .get_document_mut("migration")
                .unwrap()
                .remove("run_id");
        }));
        assert!(!same(&|d| {
            set("meta.migration.run_id", Bson::from("b"))(d);
            set("meta.status", Bson::from("needs_review"))(d);
        }));
        assert!(!same(&|d| {
            let meta = d.remove("meta").unwrap();
            let mut reordered = bson::doc! { "meta": meta };
            reordered.extend(d.clone());
            *d = reordered;
        }));
    }

    #[test]
    fn two_validations_in_the_same_second_keep_both_reports() {
        let dir = tempfile::tempdir().unwrap();
        let now = chrono::DateTime::parse_from_rfc3339("2026-11-23T13:15:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let mut report = json!({ "passed": true });
        let mut log = WarningLog::default();
        let a = write_reports(
            dir.path(),
            &mut report,
            &mut log,
            now,
            "run-20261123T131500Z-aaaaaa",
        )
        .unwrap();
        let b = write_reports(
            dir.path(),
            &mut report,
            &mut log,
            now,
            "run-20261123T131500Z-bbbbbb",
        )
        .unwrap();
        assert_ne!(a.0, b.0);
        assert_ne!(a.1, b.1);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 4);
        // The same run id twice is refused rather than overwritten.
        assert!(write_reports(
            dir.path(),
            &mut report,
            &mut log,
            now,
            "run-20261123T131500Z-aaaaaa"
        )
        .is_err());
    }

    #[test]
    fn the_spooled_warnings_are_listed_in_both_reports() {
        let dir = tempfile::tempdir().unwrap();
        let now = Utc::now();
        let mut report = json!({ "passed": true, "warnings": { "count": 3 }, "partition": null });
        for listed in [0, 3] {
            let mut log = WarningLog::default();
            let warnings: Vec<Value> = (0..listed)
                .map(|i| json!({ "user_id": format!("u{i}"), "kind": "unmapped_field", "field": format!("responses.k{i}"), "document": format!("s{i}") }))
                .collect();
            for w in &warnings {
                log.push(w).unwrap();
            }
            let (json_path, md_path) = write_reports(
                dir.path(),
                &mut report,
                &mut log,
                now,
                &format!("run-x-{listed}"),
            )
            .unwrap();
            let written: Value =
                serde_json::from_slice(&std::fs::read(json_path).unwrap()).unwrap();
            assert_eq!(
                written["warnings"]["listed"],
                Value::Array(warnings.clone())
            );
            assert_eq!(written["warnings"]["count"], 3);
            assert_eq!(written["partition"], Value::Null);
            assert!(
                report["warnings"].get("listed").is_none(),
                "the report in memory stays without the listing"
            );
            let md = std::fs::read_to_string(md_path).unwrap();
            for i in 0..listed {
                assert!(md.contains(&format!(
                    "| u{i} | unmapped_field | responses.k{i} | s{i} |"
                )));
            }
        }
    }

    #[test]
    fn zero_of_zero_is_not_a_rate() {
        assert_eq!(rate(&Rate::default()), None);
        let f = Findings::default();
        let t = Thresholds {
            questionnaires: 0.95,
            followups: 0.95,
            plans: 0.9,
        };
        assert!(!verdict(&f, &t), "nothing to validate must not pass");
    }
}
