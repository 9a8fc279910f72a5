//! `phase2 migrate`: stream the legacy collections user by user, build each
//! drawer with the mapping library, write what changed in batches.
//!
//! Order of writes inside a batch: archived snapshots, then drawers (each a
//! guarded patch of only what changed, `engine::plan`: a dual-write that
//! lands meanwhile is kept by construction, or trips a guard and the user is
//! re-read and rebuilt), then plan stamps, then quarantine records, then the
//! checkpoint. Redoing a batch after a crash writes nothing new, which is
//! what makes `--resume` safe.

use super::diff::diff_paths;
use crate::config::{own, Config};
use crate::drawer::{self, BuildOptions, Built, LegacyKind, LegacyUser};
use crate::engine::cores::map_on_cores;
use crate::engine::merge::{home_partition, Group, PerUser, Rejected};
use crate::engine::plan::plan_write;
use crate::error::{CommandError, CommandResult};
use crate::run::record::{Checkpoint, Tally};
use crate::run::Supervisor;
use crate::store::patch::{Op, MAX_DOCUMENT_BYTES};
use crate::store::{Fetched, FieldUpdate, Ns, Outcome, Patch, Store, StoreError, StoreResult};
use bson::{doc, Bson, Document};
use indicatif::ProgressBar;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

/// How many times a drawer that changed under us is re-read and rebuilt.
const MAX_RETRIES: usize = 3;

/// Legacy documents a batch holds at most, whatever its number of users.
/// Users with many documents (the varied bench shape averages 19, the
/// default 10) would otherwise make a batch of 100 users twice as large and
/// push the peak memory of migrate over its 256 MB budget.
const BATCH_DOCUMENTS: usize = 1_200;

/// Whether a batch of these groups is full: `batch_size` users, or
/// `BATCH_DOCUMENTS` legacy documents.
fn batch_full<D>(pass: &Pass, groups: &[Group<D>]) -> bool {
    groups.len() >= pass.batch_size as usize
        || groups.iter().map(Group::len).sum::<usize>() >= BATCH_DOCUMENTS
}

/// What one migrate pass needs besides the store and the configuration.
#[derive(Debug, Clone)]
pub struct Pass {
    /// Users per write batch (and per checkpoint); a batch also closes at
    /// `BATCH_DOCUMENTS` legacy documents.
    pub batch_size: u32,
    /// `(i, n)`: only users whose hash falls in partition `i` of `n`.
    pub partition: Option<(u32, u32)>,
    /// Legacy documents per second at most.
    pub max_rate: Option<f64>,
    /// Plan without writing.
    pub dry_run: bool,
    /// How many sample diffs a dry run keeps.
    pub samples: usize,
    /// The build options (clock, run id, limits).
    pub build: BuildOptions,
}

/// A dry-run sample: one drawer's changed paths, no values.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Sample {
    /// The drawer id.
    pub drawer_id: String,
    /// Whether the run would create it.
    pub created: bool,
    /// Changed paths, one per line.
    pub changes: Vec<String>,
}

/// The outcome of a pass.
#[derive(Debug, Default)]
pub struct PassResult {
    /// Everything counted.
    pub tally: Tally,
    /// Sample diffs (dry run).
    pub samples: Vec<Sample>,
}

/// Runs one pass over all users after `after_user`. The supervisor renews
/// the lease before each batch writes, checkpoints each batch once fully
/// written (and may stop the pass there), and paces `--max-rate`.
pub fn run_pass(
    store: &dyn Store,
    config: &Config,
    pass: &Pass,
    after_user: Option<&str>,
    progress: &ProgressBar,
    run: &mut dyn Supervisor,
) -> CommandResult<PassResult> {
    let wanted = SampleWants::default();
    wanted.narrow(&[], pass.samples);
    let wanted = &wanted;
    let mut batcher = Batcher {
        store,
        config,
        pass,
        wanted,
        result: PassResult::default(),
        started: Instant::now(),
        batches: 0,
        dropper: None,
        garbage: Vec::new(),
    };
    match store.reader().zip(store.reader()) {
        // Reading runs on a thread of its own; decoding and building on all
        // cores, a batch ahead of the writes; writing on this thread.
        Some((reader, lookup)) => std::thread::scope(|scope| {
            let (read_tx, read_rx) = std::sync::mpsc::sync_channel(1);
            let (ready_tx, ready_rx) = std::sync::mpsc::sync_channel(0);
            let producer = scope
                .spawn(move || read_groups(reader.as_ref(), config, pass, after_user, &read_tx));
            let preparer = scope.spawn(move || {
                let mut batches = Batches::new(lookup.as_ref(), config, pass, progress, wanted);
                for groups in read_rx {
                    let groups = match groups {
                        Ok(groups) => groups,
                        Err(e) => {
                            let _ = ready_tx.send(Err(e.into()));
                            return;
                        }
                    };
                    for batch in groups.into_iter().filter_map(|g| batches.push(g)) {
                        if ready_tx.send(batch).is_err() {
                            return; // the writes stopped; they report why
                        }
                    }
                }
                if let Some(last) = batches.finish() {
                    let _ = ready_tx.send(last);
                }
            });
            for batch in ready_rx {
                batcher.write(batch?, run)?;
            }
            preparer
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            producer
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })?,
        None => {
            let sources = sources(config);
            let after = after_user.map(Bson::from);
            let mut batches = Batches::new(store, config, pass, progress, wanted);
            for group in PerUser::open(store, sources.each_ref(), read_batch(pass), after.as_ref())?
            {
                if let Some(batch) = batches.push(group?) {
                    batcher.write(batch?, run)?;
                }
            }
            if let Some(last) = batches.finish() {
                batcher.write(last?, run)?;
            }
        }
    }
    Ok(batcher.result)
}

/// Gathers a pass's groups into batches and readies each: `batch_size`
/// users of the pass's partition, or `BATCH_DOCUMENTS` legacy documents.
struct Batches<'a> {
    store: &'a dyn Store,
    config: &'a Config,
    pass: &'a Pass,
    progress: &'a ProgressBar,
    wanted: &'a SampleWants,
    pending: Vec<Group<Fetched>>,
}

impl<'a> Batches<'a> {
    fn new(
        store: &'a dyn Store,
        config: &'a Config,
        pass: &'a Pass,
        progress: &'a ProgressBar,
        wanted: &'a SampleWants,
    ) -> Self {
        Batches {
            store,
            config,
            pass,
            progress,
            wanted,
            pending: Vec::new(),
        }
    }

    /// Takes a user's group; a full batch comes back ready to write.
    fn push(&mut self, group: Group<Fetched>) -> Option<CommandResult<Ready>> {
        self.progress.inc(group.len() as u64);
        if let Some((i, n)) = self.pass.partition {
            if home_partition(&group.user_id, n) != i {
                return None;
            }
        }
        self.pending.push(group);
        if !batch_full(self.pass, &self.pending) {
            return None;
        }
        let batch = std::mem::take(&mut self.pending);
        Some(ready(
            self.store,
            self.config,
            self.pass,
            self.wanted,
            batch,
        ))
    }

    /// The last batch, unless it is empty.
    fn finish(&mut self) -> Option<CommandResult<Ready>> {
        let batch = std::mem::take(&mut self.pending);
        (!batch.is_empty()).then(|| ready(self.store, self.config, self.pass, self.wanted, batch))
    }
}

/// A batch whose users' stored drawers were read and whose groups were
/// decoded, built and planned: what is left is to count it and write it.
struct Ready {
    /// The last user of the batch, for its checkpoint.
    last_user: Option<String>,
    /// The batch's stored drawers, by drawer id.
    existing: HashMap<String, Document>,
    /// Each group, in order.
    prepared: Vec<Prepared>,
}

/// The stored drawers of these users, by drawer id.
fn stored_drawers<'u>(
    store: &dyn Store,
    config: &Config,
    user_ids: impl Iterator<Item = &'u str>,
) -> CommandResult<HashMap<String, Document>> {
    let ids: Vec<Bson> = user_ids.map(|u| Bson::from(drawer::drawer_id(u))).collect();
    let found = store.get_many(&config.drawers_ns(), &ids)?;
    Ok(found
        .into_iter()
        .filter_map(|d| Some((d.get_str("_id").ok()?.to_string(), d)))
        .collect())
}

/// Readies a batch: reads its stored drawers, then decodes, builds and
/// plans its groups on all cores (`prepare`). `store` is the store the
/// batch is written to, or a second handle on it (`Store::reader`).
fn ready(
    store: &dyn Store,
    config: &Config,
    pass: &Pass,
    wanted: &SampleWants,
    groups: Vec<Group<Fetched>>,
) -> CommandResult<Ready> {
    let users: Vec<String> = groups
        .iter()
        .filter(|g| is_user(g))
        .map(|g| bson_string(&g.user_id))
        .collect();
    let existing = stored_drawers(store, config, users.iter().map(String::as_str))?;
    let last_user = users.last().cloned();
    // A drawer is freed on the thread that built it (freeing it on another
    // cost more than building it): a dry run frees those no sample wants; a
    // store that writes BSON gets new drawers encoded.
    let encode = store.writes_bson();
    let finish = |planned: &mut Planned| {
        if pass.dry_run {
            if !wanted.takes(planned.built.created) {
                planned.forget_drawer();
            }
        } else if encode {
            planned.encode_insert();
        }
    };
    let opts = &pass.build;
    // New drawers are encoded here anyway: the encoded length measures them.
    let unmeasured = (encode && !pass.dry_run).then(|| BuildOptions {
        defer_measure: true,
        ..opts.clone()
    });
    let builds = Builds {
        opts,
        unmeasured: unmeasured.as_ref(),
    };
    let prepared = map_on_cores(groups, |group| prepare(group, &existing, &builds, &finish))
        .into_iter()
        .collect::<StoreResult<Vec<Prepared>>>()?;
    Ok(Ready {
        last_user,
        existing,
        prepared,
    })
}

/// Documents per read round trip.
fn read_batch(pass: &Pass) -> u32 {
    pass.batch_size.max(100)
}

/// Streams the per-user groups to the engine in chunks of one batch.
fn read_groups(
    store: &dyn Store,
    config: &Config,
    pass: &Pass,
    after_user: Option<&str>,
    tx: &std::sync::mpsc::SyncSender<StoreResult<Vec<Group<Fetched>>>>,
) -> CommandResult<()> {
    let sources = sources(config);
    let after = after_user.map(Bson::from);
    let mut chunk = Vec::with_capacity(pass.batch_size as usize);
    for group in PerUser::open(store, sources.each_ref(), read_batch(pass), after.as_ref())? {
        match group {
            Ok(group) => chunk.push(group),
            Err(e) => {
                let _ = tx.send(Err(e));
                return Ok(());
            }
        }
        if batch_full(pass, &chunk) && tx.send(Ok(std::mem::take(&mut chunk))).is_err() {
            return Ok(()); // the engine stopped; it reports why
        }
    }
    let _ = tx.send(Ok(chunk));
    Ok(())
}

/// The four per-user collections, in the merge order of `Source`.
fn sources(config: &Config) -> [Ns; 4] {
    [
        config.legacy(&config.submissions),
        config.legacy(&config.followups),
        config.legacy(&config.training_plans),
        config.legacy(&config.nutrition_plans),
    ]
}

fn is_user<D>(group: &Group<D>) -> bool {
    matches!(&group.user_id, Bson::String(s) if !s.trim().is_empty())
}

/// Everything a batch will write, gathered before anything is written.
/// A drawer to write and what it adds, counted only once it is written.
struct PendingDrawer {
    id: String,
    patch: Patch,
    created: bool,
    snapshots: u64,
    followups: u64,
}

/// What is left of a pending drawer once its patch went to the store.
struct Written {
    id: String,
    created: bool,
    snapshots: u64,
    followups: u64,
}

impl PendingDrawer {
    fn split(self) -> (Patch, Written) {
        let PendingDrawer {
            id,
            patch,
            created,
            snapshots,
            followups,
        } = self;
        (
            patch,
            Written {
                id,
                created,
                snapshots,
                followups,
            },
        )
    }
}

/// A build and, when it changed the drawer and fits in a document, the
/// patch that writes it (`None`: over 16 MiB) and what it adds.
struct Planned {
    built: Built,
    patch: Option<Patch>,
    snapshots: u64,
    followups: u64,
}

/// Counts what a changed drawer adds and plans its patch:
/// pure, so it runs on the builder threads beside the build instead of on
/// the writing thread. A new drawer moves into its insert (no copy); the
/// built drawer is then empty and the patch holds it.
fn plan(mut built: Built, found: Option<&Document>) -> Planned {
    let mut planned = Planned {
        patch: None,
        snapshots: 0,
        followups: 0,
        built: Built {
            drawer: Document::new(),
            ..built
        },
    };
    if !planned.built.changed {
        planned.built.drawer = std::mem::take(&mut built.drawer);
        return planned;
    }
    let drawer = std::mem::take(&mut built.drawer);
    planned.snapshots =
        added(found, &drawer, "snapshots", "snapshot_id") + planned.built.archived.len() as u64;
    planned.followups = added(found, &drawer, "followups", "followup_id");
    if planned.built.bytes > MAX_DOCUMENT_BYTES {
        planned.built.drawer = drawer;
    } else if found.is_none() {
        planned.patch = Some(Patch::insert(drawer));
    } else {
        planned.patch = Some(plan_write(found, &drawer));
        planned.built.drawer = drawer;
    }
    planned
}

impl Planned {
    /// Frees the drawer and its patch's content (a dry run that will not
    /// show it); what it adds stays counted.
    fn forget_drawer(&mut self) {
        self.built.drawer = Document::new();
        if let Some(patch) = &mut self.patch {
            patch.ops.clear();
        }
    }

    /// Turns the insert of a new drawer into an insert of its bytes, and
    /// frees the drawer here. A drawer that does not encode stays as it is,
    /// for the store to refuse with its own error.
    fn encode_insert(&mut self) {
        let Some(patch) = &mut self.patch else {
            return;
        };
        let [Op::Insert(doc)] = patch.ops.as_slice() else {
            return;
        };
        // Unmeasured (`defer_measure`): grown from the usual start instead.
        let encoded = match self.built.bytes {
            0 => crate::encoded::to_vec(doc),
            known => crate::encoded::to_vec_sized(doc, known),
        };
        let Ok(bytes) = encoded else {
            return;
        };
        if let Ok(raw) = bson::RawDocumentBuf::from_bytes(bytes) {
            patch.ops = vec![Op::InsertBytes(raw)];
        }
    }

    /// Whether the drawer's size is known and the build stands: always for
    /// a measured build; for an unmeasured one (`defer_measure`), once its
    /// encoded length passes the check the builder left (`bytes` then takes
    /// that length).
    fn measured(&mut self) -> bool {
        let Some(check) = self.built.deferred.take() else {
            return true;
        };
        let len = match self.patch.as_ref().map(|p| p.ops.as_slice()) {
            Some([Op::InsertBytes(raw)]) => raw.as_bytes().len(),
            _ => return false,
        };
        self.built.bytes = len;
        check.holds(len)
    }

    /// The drawer as built, wherever it is now (empty once encoded or
    /// forgotten: only a dry run's samples read it, and a dry run encodes
    /// none and forgets none a sample takes).
    fn drawer(&self) -> &Document {
        match self.patch.as_ref().map(|p| p.ops.as_slice()) {
            Some([Op::Insert(doc)]) => doc,
            _ => &self.built.drawer,
        }
    }
}

/// What is left of a user once their documents have moved into the
/// drawer: their ids per collection, for the retry path to read them again.
struct Sources {
    user_id: String,
    ids: Vec<(LegacyKind, Vec<Bson>)>,
}

impl Sources {
    fn of(user: &LegacyUser) -> Sources {
        let mut ids: Vec<(LegacyKind, Vec<Bson>)> = Vec::new();
        for (kind, doc) in user.documents() {
            let id = doc.get("_id").cloned().unwrap_or(Bson::Null);
            match ids.last_mut() {
                Some((k, list)) if *k == kind => list.push(id),
                _ => ids.push((kind, vec![id])),
            }
        }
        Sources {
            user_id: user.user_id.clone(),
            ids,
        }
    }
}

#[derive(Default)]
struct Writes {
    drawers: Vec<PendingDrawer>,
    archived: Vec<Document>,
    stamps: BTreeMap<LegacyKind, Vec<FieldUpdate>>,
    quarantine: Vec<Document>,
}

/// Which drawers a dry run's sample diffs may still take: the rule
/// `keep_sample` follows, and what the writing thread (which keeps the
/// samples) tells the batch being readied ahead of it. It only narrows (any drawer, then updates only, then
/// none: samples are never removed, and an update is never replaced), so
/// the batch ahead, reading it a batch late, keeps at least every drawer
/// the samples may take.
#[derive(Default)]
struct SampleWants(AtomicU8);

impl SampleWants {
    const ANY: u8 = 0;
    const UPDATES: u8 = 1;
    const NONE: u8 = 2;

    /// Whether a drawer (created, or an update) may become a sample.
    fn takes(&self, created: bool) -> bool {
        match self.0.load(Ordering::Relaxed) {
            Self::ANY => true,
            Self::UPDATES => !created,
            _ => false,
        }
    }

    /// The rule for the samples kept so far (at most `limit`): room left
    /// takes any drawer; a full set takes an update in place of a creation
    /// while it holds only creations; nothing else.
    fn narrow(&self, samples: &[Sample], limit: usize) {
        let wants = if limit == 0 {
            Self::NONE
        } else if samples.len() < limit {
            Self::ANY
        } else if samples.iter().all(|s| s.created) {
            Self::UPDATES
        } else {
            Self::NONE
        };
        self.0.store(wants, Ordering::Relaxed);
    }
}

struct Batcher<'a> {
    store: &'a dyn Store,
    config: &'a Config,
    pass: &'a Pass,
    wanted: &'a SampleWants,
    result: PassResult,
    started: Instant,
    batches: u64,
    /// The thread freeing the previous batch's documents.
    dropper: Option<std::thread::JoinHandle<()>>,
    /// What the batch being written no longer needs, freed once it is done.
    garbage: Vec<Box<dyn Send>>,
}

impl Batcher<'_> {
    /// Counts a ready batch, writes it, checkpoints it.
    fn write(&mut self, batch: Ready, run: &mut dyn Supervisor) -> CommandResult<()> {
        let Ready {
            last_user,
            existing,
            prepared,
        } = batch;
        let mut tally = Tally::default();
        let mut writes = Writes::default();
        let mut built = Vec::with_capacity(prepared.len());
        for p in prepared {
            tally.documents += p.documents;
            for (kind, doc, reason) in p.rejected {
                writes.quarantine.push(self.quarantine_doc(
                    kind,
                    doc.get("_id"),
                    doc.get("user_id"),
                    &reason,
                ));
            }
            if let Some(user) = p.user {
                tally.users += 1;
                built.push(user);
            }
        }
        let mut sources = Vec::with_capacity(built.len());
        for (user, planned) in built {
            let found = existing.get(&drawer::drawer_id(&user.user_id));
            self.account(&user.user_id, found, planned, &mut writes, &mut tally);
            sources.push(user);
        }
        if !self.pass.dry_run {
            run.before_writes()?;
        }
        self.write_drawers(&sources, &mut writes, &mut tally)?;
        self.write_side_effects(&mut writes, &mut tally)?;
        self.discard(existing);
        self.free_garbage();
        self.result.tally.absorb(&tally);
        self.batches += 1;
        if let Some(last_user_id) = last_user {
            run.checkpoint(
                &self.result.tally,
                &Checkpoint {
                    last_user_id,
                    batches: self.batches,
                },
            )?;
        }
        if let Some(wait) = self.throttle() {
            run.pause(wait)?;
        }
        Ok(())
    }

    /// Sets aside what the batch no longer needs, for [`Self::free_garbage`].
    fn discard<T: Send + 'static>(&mut self, garbage: T) {
        self.garbage.push(Box::new(garbage));
    }

    /// Frees the batch's garbage on another thread while the next batch is
    /// built (freeing the batch's documents was a sixth of the writing
    /// thread's time), one batch at a time so memory stays bounded: the
    /// previous batch's must be freed first.
    fn free_garbage(&mut self) {
        if let Some(previous) = self.dropper.take() {
            let _ = previous.join();
        }
        let garbage = std::mem::take(&mut self.garbage);
        self.dropper = std::thread::Builder::new()
            .name("discard".into())
            .spawn(move || drop(garbage))
            .ok();
    }

    /// Counts a build and queues what it writes.
    fn account(
        &mut self,
        user_id: &str,
        found: Option<&Document>,
        planned: Planned,
        writes: &mut Writes,
        tally: &mut Tally,
    ) {
        let built = &planned.built;
        for w in &built.warnings {
            *tally
                .warnings
                .entry(w.kind.as_str().to_string())
                .or_default() += 1;
        }
        for q in &built.quarantine {
            writes.quarantine.push(self.quarantine_doc(
                q.kind,
                Some(&q.id),
                Some(&Bson::from(user_id)),
                &q.reason,
            ));
        }
        for stamp in &built.plan_stamps {
            writes.stamps.entry(stamp.kind).or_default().push(FieldUpdate {
                id: stamp.plan_id.clone(),
                set: doc! { "snapshot_id": &stamp.snapshot_id, "client_drawer_id": &stamp.client_drawer_id },
                unset: Vec::new(),
            });
        }
        if !built.changed {
            tally.drawers_unchanged += 1;
            return;
        }
        let id = drawer::drawer_id(user_id);
        if planned.patch.is_none() {
            let bytes = planned.built.bytes;
            // Neither store takes it: say so and go on with the others; the
            // validation reports this user until the drawer is made smaller.
            tracing::error!(drawer_id = %id, bytes, "drawer over 16 MiB even after archiving: not written");
            *tally
                .warnings
                .entry("drawer_over_16_mib_not_written".into())
                .or_default() += 1;
            return;
        }
        self.keep_sample(user_id, found, built.created, planned.drawer());
        let Planned {
            built,
            patch: Some(patch),
            snapshots,
            followups,
            ..
        } = planned
        else {
            return;
        };
        writes.drawers.push(PendingDrawer {
            snapshots,
            followups,
            created: built.created,
            patch,
            id,
        });
        writes.archived.extend(built.archived);
    }

    /// Keeps a few sample diffs, preferring updates of existing drawers (the
    /// interesting case) over creations: which drawer it takes is
    /// `SampleWants`' rule, told the new samples after each one taken.
    fn keep_sample(
        &mut self,
        user_id: &str,
        found: Option<&Document>,
        created: bool,
        drawer: &Document,
    ) {
        if !self.wanted.takes(created) {
            return;
        }
        let samples = &mut self.result.samples;
        if samples.len() >= self.pass.samples {
            samples.pop();
        }
        let sample = Sample {
            drawer_id: drawer::drawer_id(user_id),
            created,
            changes: diff_paths(found, drawer),
        };
        if created {
            samples.push(sample);
        } else {
            samples.insert(0, sample);
        }
        self.wanted.narrow(samples, self.pass.samples);
    }

    /// Writes archived snapshots then drawers; a drawer whose patch tripped
    /// a guard (the application wrote what the patch would change) is
    /// re-read and rebuilt, never clobbered. A drawer the store refuses (a
    /// clash on `user_id` with another drawer, a path it cannot write) stops
    /// the run after the rest of the batch is written, naming it.
    fn write_drawers(
        &mut self,
        users: &[Sources],
        writes: &mut Writes,
        tally: &mut Tally,
    ) -> CommandResult<()> {
        let ns = self.config.drawers_ns();
        let mut refused = Vec::new();
        for attempt in 0..=MAX_RETRIES {
            self.write_archive(writes, tally)?;
            let (patches, pending): (Vec<Patch>, Vec<Written>) =
                std::mem::take(&mut writes.drawers)
                    .into_iter()
                    .map(PendingDrawer::split)
                    .unzip();
            let outcomes = if self.pass.dry_run || patches.is_empty() {
                patches.iter().map(|_| Outcome::Applied).collect()
            } else {
                self.store.patch_many(&ns, &patches)?
            };
            self.discard(patches);
            let mut lost = Vec::new();
            for (p, outcome) in pending.into_iter().zip(outcomes) {
                match outcome {
                    Outcome::Applied => count_written(p.created, p.snapshots, p.followups, tally),
                    Outcome::Conflict => lost.push(p.id),
                    Outcome::Refused(e) => refused.push(refusal(&p.id, e)),
                }
            }
            if lost.is_empty() {
                break;
            }
            if attempt == MAX_RETRIES {
                return Err(CommandError::Gate(format!(
                    "{} drawer(s) kept changing while this run wrote them ({}): the application is writing heavily; run again with --resume in a quieter moment",
                    lost.len(),
                    lost.join(", ")
                )));
            }
            tally.retried += lost.len() as u64;
            self.rebuild(users, &lost, writes, tally)?;
        }
        if refused.is_empty() {
            Ok(())
        } else {
            Err(CommandError::Input(format!(
                "{} drawer(s) could not be written:\n  {}",
                refused.len(),
                refused.join("\n  ")
            )))
        }
    }

    /// Builds the lost drawers again, over what the store holds now, from
    /// their users' documents read again (the first build moved them into
    /// the drawer).
    fn rebuild(
        &mut self,
        users: &[Sources],
        lost: &[String],
        writes: &mut Writes,
        tally: &mut Tally,
    ) -> CommandResult<()> {
        let again: Vec<&Sources> = users
            .iter()
            .filter(|u| lost.contains(&drawer::drawer_id(&u.user_id)))
            .collect();
        let existing = stored_drawers(
            self.store,
            self.config,
            again.iter().map(|u| u.user_id.as_str()),
        )?;
        for sources in again {
            let user = self.read_again(sources)?;
            let found = existing.get(&drawer::drawer_id(&user.user_id));
            let built = drawer::build_owned(user, found, &self.pass.build);
            // Only the drawer is redone: warnings, stamps and quarantine were queued already.
            let built = Built {
                warnings: Vec::new(),
                quarantine: Vec::new(),
                plan_stamps: Vec::new(),
                ..built
            };
            self.account(&sources.user_id, found, plan(built, found), writes, tally);
        }
        Ok(())
    }

    /// A user's documents as the store holds them now.
    fn read_again(&self, sources: &Sources) -> CommandResult<LegacyUser> {
        let mut user = LegacyUser {
            user_id: sources.user_id.clone(),
            ..LegacyUser::default()
        };
        for (kind, ids) in &sources.ids {
            let ns = self.config.legacy(self.config.collection_of(*kind));
            for doc in self.store.get_many(&ns, ids)? {
                user.push(*kind, doc);
            }
        }
        Ok(user)
    }

    fn write_archive(&self, writes: &mut Writes, tally: &mut Tally) -> CommandResult<()> {
        if writes.archived.is_empty() {
            return Ok(());
        }
        if !self.pass.dry_run {
            self.store
                .upsert_many(&self.config.drawer(own::SNAPSHOT_ARCHIVE), &writes.archived)?;
        }
        tally.writes += writes.archived.len() as u64;
        writes.archived.clear();
        Ok(())
    }

    /// Plan stamps and quarantine records, skipping quarantine records that
    /// are already stored as they are (so a re-run writes nothing).
    fn write_side_effects(&self, writes: &mut Writes, tally: &mut Tally) -> CommandResult<()> {
        for (kind, updates) in std::mem::take(&mut writes.stamps) {
            if !self.pass.dry_run {
                self.store.update_fields(
                    &self.config.legacy(self.config.collection_of(kind)),
                    &updates,
                )?;
            }
            tally.writes += updates.len() as u64;
        }
        let quarantine = std::mem::take(&mut writes.quarantine);
        tally.quarantined += quarantine.len() as u64;
        let ns = self.config.drawer(own::QUARANTINE);
        let ids: Vec<Bson> = quarantine
            .iter()
            .filter_map(|d| d.get("_id").cloned())
            .collect();
        let stored = self.store.get_many(&ns, &ids)?;
        let fresh: Vec<Document> = quarantine
            .into_iter()
            .filter(|q| {
                !stored
                    .iter()
                    .any(|s| s.get("_id") == q.get("_id") && s.get("reason") == q.get("reason"))
            })
            .collect();
        if !fresh.is_empty() && !self.pass.dry_run {
            self.store.upsert_many(&ns, &fresh)?;
        }
        tally.writes += fresh.len() as u64;
        Ok(())
    }

    /// A quarantine record: which document, from where, why. No content.
    fn quarantine_doc(
        &self,
        kind: LegacyKind,
        id: Option<&Bson>,
        user_id: Option<&Bson>,
        reason: &str,
    ) -> Document {
        let collection = self.config.collection_of(kind);
        let id = id.cloned().unwrap_or(Bson::Null);
        doc! {
            "_id": self.config.quarantine_id(kind, &id),
            "source_collection": collection,
            "source_id": id,
            "user_id": user_id.cloned().unwrap_or(Bson::Null),
            "reason": reason,
            "run_id": &self.pass.build.run_id,
            "quarantined_at": self.pass.build.now,
        }
    }

    /// How long to wait to stay under `--max-rate`, if at all.
    fn throttle(&self) -> Option<Duration> {
        let rate = self.pass.max_rate.filter(|r| *r > 0.0)?;
        let due = Duration::from_secs_f64(self.result.tally.documents as f64 / rate);
        due.checked_sub(self.started.elapsed())
    }
}

/// One group of a batch, decoded, triaged, built and planned: pure, so it
/// runs on all cores (`map_on_cores`), and for one group from decoding to
/// the patch on one thread, while its documents are in that core's cache.
struct Prepared {
    /// Legacy documents read.
    documents: u64,
    /// Documents that failed triage, each with its kind and why.
    rejected: Vec<Rejected>,
    /// A named user's document ids and their planned drawer.
    user: Option<(Sources, Planned)>,
}

/// How a batch builds: `unmeasured`, when set, leaves new drawers
/// unmeasured (`BuildOptions::defer_measure`), since they are encoded
/// before they are written.
struct Builds<'a> {
    opts: &'a BuildOptions,
    unmeasured: Option<&'a BuildOptions>,
}

fn prepare(
    group: Group<Fetched>,
    existing: &HashMap<String, Document>,
    builds: &Builds<'_>,
    finish: &(dyn Fn(&mut Planned) + Sync),
) -> StoreResult<Prepared> {
    let documents = group.len() as u64;
    let named = is_user(&group);
    let user_id = bson_string(&group.user_id);
    let found = existing.get(&drawer::drawer_id(&user_id));
    // An unmeasured build keeps the group's bytes, to build again measured
    // when its encoded length says it needed archiving (rare).
    let unmeasured = builds.unmeasured.filter(|_| named && found.is_none());
    let again = unmeasured.map(|_| group.clone());
    let (user, rejected) = group.into_user(user_id.clone())?;
    let user = match named {
        false => None,
        true => {
            let sources = Sources::of(&user);
            let opts = unmeasured.unwrap_or(builds.opts);
            let mut planned = plan(drawer::build_owned(user, found, opts), found);
            finish(&mut planned);
            // Only an unmeasured build can fail its check, and it kept its group.
            if let (false, Some(again)) = (planned.measured(), again) {
                let (user, _) = again.into_user(user_id)?;
                planned = plan(drawer::build_owned(user, found, builds.opts), found);
                finish(&mut planned);
            }
            Some((sources, planned))
        }
    };
    Ok(Prepared {
        documents,
        rejected,
        user,
    })
}

/// What to tell the operator about a drawer the store refused.
fn refusal(id: &str, e: StoreError) -> String {
    match e {
        StoreError::DuplicateKey { index, key, .. } => format!(
            "{id}: another drawer already has this user's key in the unique index {index} ({key}); \
             two drawers claim one client: find the other with `edn-migrate export DIR`, merge or remove it, then run again with --resume"
        ),
        other => format!("{id}: {other}"),
    }
}

fn count_written(created: bool, snapshots: u64, followups: u64, tally: &mut Tally) {
    if created {
        tally.drawers_created += 1;
    } else {
        tally.drawers_updated += 1;
    }
    tally.snapshots += snapshots;
    tally.followups += followups;
    tally.writes += 1;
}

/// How many entries of `services.training…<array>` the new drawer has that
/// the old one did not, by key.
fn added(old: Option<&Document>, new: &Document, array: &str, key: &str) -> u64 {
    let keys = |d: &Document| -> Vec<Bson> {
        let training = d
            .get_document("services")
            .and_then(|s| s.get_document("training"));
        let list = match array {
            "followups" => training
                .and_then(|t| t.get_document("questionnaires"))
                .and_then(|q| q.get_array("followups")),
            _ => training.and_then(|t| t.get_array(array)),
        };
        list.map(|l| {
            l.iter()
                .filter_map(|e| e.as_document()?.get(key).cloned())
                .collect()
        })
        .unwrap_or_default()
    };
    let before = old.map(keys).unwrap_or_default();
    keys(new).iter().filter(|k| !before.contains(k)).count() as u64
}

fn bson_string(value: &Bson) -> String {
    match value {
        Bson::String(s) => s.clone(),
        Bson::Null => String::new(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pass(batch_size: u32) -> Pass {
        Pass {
            batch_size,
            partition: None,
            max_rate: None,
            dry_run: false,
            samples: 0,
            build: BuildOptions::new(bson::DateTime::from_millis(0), "run"),
        }
    }

    /// `users` groups of `each` follow-ups.
    fn groups(users: usize, each: usize) -> Vec<Group> {
        let group = Group {
            user_id: Bson::from("u"),
            docs: [vec![], vec![Document::new(); each], vec![], vec![]],
        };
        vec![group; users]
    }

    #[test]
    fn a_batch_closes_at_its_user_count() {
        assert!(!batch_full(&pass(100), &groups(99, 10)));
        assert!(batch_full(&pass(100), &groups(100, 10)));
    }

    #[test]
    fn a_batch_of_heavy_users_closes_at_the_document_cap() {
        assert!(!batch_full(&pass(100), &groups(1, BATCH_DOCUMENTS - 1)));
        assert!(batch_full(&pass(100), &groups(40, BATCH_DOCUMENTS / 40)));
        assert!(batch_full(&pass(100), &groups(1, 5_000)));
    }

    fn sample(created: bool) -> Sample {
        Sample {
            drawer_id: String::new(),
            created,
            changes: Vec::new(),
        }
    }

    #[test]
    fn a_dry_run_keeps_drawers_while_a_sample_may_take_them() {
        let wants = SampleWants::default();
        wants.narrow(&[], 2);
        assert!(wants.takes(true) && wants.takes(false));
        wants.narrow(&[sample(true)], 2);
        assert!(
            wants.takes(true),
            "room left: a creation may still be shown"
        );
        wants.narrow(&[sample(true), sample(true)], 2);
        assert!(!wants.takes(true), "full: a creation never replaces one");
        assert!(wants.takes(false), "an update replaces a creation");
        wants.narrow(&[sample(false), sample(true)], 2);
        assert!(!wants.takes(true) && !wants.takes(false));
        wants.narrow(&[], 0);
        assert!(
            !wants.takes(true) && !wants.takes(false),
            "no samples asked"
        );
    }
}
