//! The drawer builder: one user's legacy documents + the drawer dual-write
//! may have made → the drawer to store. Rules: DESIGN.md "Mapping rules",
//! decisions: docs/drawer.md.

use std::borrow::Cow;

use bson::{doc, Bson, Document};

use super::meta::{
    ArraySpec, MigrationMeta, SetRecord, ACTIVE_SERVICES, ARRAYS, FOLLOWUPS, MEASUREMENTS,
    NUTRITION_PLANS, SHARED, SNAPSHOTS, TRAINING_PLANS,
};
use super::path;
use super::{
    drawer_id, triage, BuildOptions, Built, DeferredMeasure, LegacyKind, LegacyUser, PlanStamp,
    Quarantined,
};
use crate::mapping::{
    date_millis, doc_id_key, followup_measurement_data, id_key, initial_measurement_data,
    profile_from_responses, FieldMap, Warning, WarningKind,
};
use crate::store::patch::MAX_DOCUMENT_BYTES;

/// Legacy training outputs in plan order: `e<k>_output` is the k-th name.
const TRAINING_OUTPUTS: [&str; 12] = [
    "client_summary",
    "profile",
    "constraints",
    "prehab",
    "progress",
    "capacity",
    "adaptation",
    "mesocycle",
    "sessions",
    "safe_sessions",
    "audit",
    "bridge_for_nutrition",
];
const NUTRITION_OUTPUTS: [&str; 8] = [
    "profile",
    "metabolism",
    "energy_strategy",
    "macro_design",
    "weekly_structure",
    "timing_plan",
    "adherence_report",
    "audit",
];
/// Snapshot ids the builder owns; a plan stamped with one is re-versioned, not "already versioned".
const LEGACY_SNAPSHOT_PREFIX: &str = "snapshot_legacy_v";

fn index_of(spec: ArraySpec) -> usize {
    ARRAYS.iter().position(|a| *a == spec).unwrap_or(0)
}

/// A legacy document that passed triage, with its sort key. The builder
/// owns it so the drawer can take its content instead of a copy; what is
/// read after that (`_id`, size) is kept beside it.
struct Src {
    millis: i64,
    key: String,
    id: Bson,
    bytes: usize,
    doc: Document,
}

impl Src {
    fn id(&self) -> Bson {
        self.id.clone()
    }
    /// The document's ordering date as a BSON date, whatever type it had
    /// (triage only lets through documents whose date parses).
    fn date(&self) -> Bson {
        Bson::DateTime(bson::DateTime::from_millis(self.millis))
    }
    fn field(&self, name: &str) -> Bson {
        match self.doc.get(name) {
            Some(v) => v.clone(),
            None => Bson::Null,
        }
    }
    /// The whole document, moved out (the source is empty afterwards).
    fn take(&mut self) -> Document {
        std::mem::take(&mut self.doc)
    }
}

fn doc_bytes(d: &Document) -> Vec<u8> {
    bson::to_vec(d).unwrap_or_default()
}

fn accept(
    kind: LegacyKind,
    docs: Vec<Document>,
    sizes: Vec<usize>,
    user_id: &str,
    quarantine: &mut Vec<Quarantined>,
) -> Vec<Src> {
    let mut out: Vec<Src> = Vec::new();
    let sizes = (sizes.len() == docs.len()).then_some(sizes);
    for (i, d) in docs.into_iter().enumerate() {
        let id = d.get("_id").cloned().unwrap_or(Bson::Null);
        if let Err(reason) = triage(kind, &d) {
            quarantine.push(Quarantined { kind, id, reason });
            continue;
        }
        if d.get_str("user_id").ok() != Some(user_id) {
            quarantine.push(Quarantined {
                kind,
                id,
                reason: "user_id does not match the user being built".into(),
            });
            continue;
        }
        out.push(Src {
            millis: date_millis(d.get(kind.date_field())).unwrap_or(0),
            key: doc_id_key(&d),
            id,
            bytes: sizes.as_ref().map_or_else(|| bytes(&d), |s| s[i]),
            doc: d,
        });
    }
    // Two documents with one _id: keep one, chosen by content so input order can't matter.
    out.sort_by(|a, b| {
        a.key
            .cmp(&b.key)
            .then_with(|| doc_bytes(&a.doc).cmp(&doc_bytes(&b.doc)))
    });
    let mut kept: Vec<Src> = Vec::with_capacity(out.len());
    for s in out {
        if kept.last().is_some_and(|k| k.key == s.key) {
            quarantine.push(Quarantined {
                kind,
                id: s.id(),
                reason: "duplicate _id".into(),
            });
        } else {
            kept.push(s);
        }
    }
    kept.sort_by(|a, b| a.millis.cmp(&b.millis).then_with(|| a.key.cmp(&b.key)));
    kept
}

fn skeleton(user_id: &str, created_at: bson::DateTime, now: bson::DateTime) -> Document {
    doc! {
        "_id": drawer_id(user_id),
        "user_id": user_id,
        "profile": {
            "nombre_completo": Bson::Null, "email": Bson::Null, "fecha_nacimiento": Bson::Null,
            "edad": Bson::Null, "sexo": Bson::Null, "profesion": Bson::Null,
            "telefono": Bson::Null, "whatsapp": Bson::Null,
            "created_at": Bson::Null, "updated_at": Bson::Null,
        },
        "services": {
            "shared_questionnaires": [],
            "training": {
                "active": false,
                "enrolled_at": Bson::Null,
                "questionnaires": { "inicial": Bson::Null, "followups": [] },
                "measurements": [],
                "snapshots": [],
                "plans": [],
            },
            "nutrition": { "active": false, "plans": [] },
        },
        "meta": {
            "created_at": created_at,
            "updated_at": now,
            "active_services": [],
            "has_archived_snapshots": false,
            "status": "needs_review",
        },
    }
}

/// Containers every drawer needs before merging; absent ones are created (not recorded: empty).
fn ensure_containers(d: &mut Document) {
    path::ensure(d, "profile", Bson::Document(Document::new()));
    path::ensure(d, "services.training.questionnaires.inicial", Bson::Null);
    for spec in ARRAYS {
        if !matches!(path::get(d, spec.path), Some(Bson::Array(_))) {
            path::set(d, spec.path, Bson::Array(Vec::new()));
        }
    }
}

/// Whether a value counts as "not filled" for fill-only fields.
fn blank(v: Option<&Bson>) -> bool {
    match v {
        None | Some(Bson::Null) => true,
        Some(Bson::String(s)) => s.is_empty(),
        _ => false,
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Put {
    /// Data: written only where the drawer has nothing (or the migration wrote it).
    Fill,
    /// State derived from the drawer's content: always recomputed.
    Derive,
}

struct Ctx {
    d: Document,
    m: MigrationMeta,
    warnings: Vec<Warning>,
    drawer_id: String,
    gen: Vec<Vec<Bson>>,
}

impl Ctx {
    fn put(&mut self, how: Put, p: &str, value: Bson) {
        let current = path::get(&self.d, p);
        let owned = self.m.set_record(p).is_some();
        let may = owned
            || match how {
                Put::Fill => blank(current),
                Put::Derive => true,
            };
        if current.is_some_and(|c| path::same(c, &value)) {
            return;
        }
        if !may {
            self.warnings.push(Warning::new(
                WarningKind::ExistingValueKept,
                self.drawer_id.clone(),
                p,
            ));
            return;
        }
        if !owned {
            // Only the first change of a path keeps what was there before.
            let before = current.cloned();
            self.m.set.push(SetRecord {
                path: p.to_owned(),
                existed: before.is_some(),
                before: before.unwrap_or(Bson::Null),
            });
        }
        path::set(&mut self.d, p, value);
    }

    fn warn(&mut self, kind: WarningKind, source: &str, field: impl Into<String>) {
        self.warnings.push(Warning::new(kind, source, field));
    }

    /// Union by key: foreign entries are kept as they are and where they are;
    /// entries the migration added before are replaced in place by their
    /// regenerated form; new entries are appended in generation order.
    fn merge(&mut self, spec: ArraySpec) {
        let i = index_of(spec);
        let mut generated: Vec<Option<Bson>> = std::mem::take(&mut self.gen[i])
            .into_iter()
            .map(Some)
            .collect();
        let keys: Vec<Option<String>> = generated
            .iter()
            .map(|g| g.as_ref().and_then(|g| spec.key_of(g)).map(Cow::into_owned))
            .collect();
        let take = |generated: &mut Vec<Option<Bson>>, k: &str| -> Option<Bson> {
            let pos = keys.iter().position(|x| x.as_deref() == Some(k))?;
            generated[pos].take()
        };
        let mut out: Vec<Bson> = Vec::new();
        for entry in path::take_array(&mut self.d, spec.path) {
            let Some(k) = spec.key_of(&entry) else {
                out.push(entry);
                continue;
            };
            if self.m.owns(i, &k) {
                out.push(take(&mut generated, &k).unwrap_or(entry));
            } else {
                if let Some(g) = take(&mut generated, &k) {
                    if !path::same(&g, &entry) {
                        self.warnings.push(Warning::new(
                            WarningKind::ExistingEntryKept,
                            k.clone(),
                            spec.path,
                        ));
                    }
                }
                out.push(entry);
            }
        }
        for g in generated.into_iter().flatten() {
            if let Some(k) = spec.key_of(&g) {
                if out.iter().any(|e| spec.key_of(e).as_deref() == Some(&*k)) {
                    continue;
                }
                let key_value = match spec.key {
                    Some(field) => g.as_document().and_then(|d| d.get(field)).cloned(),
                    None => Some(g.clone()),
                };
                if let Some(kv) = key_value {
                    self.m.add(i, kv);
                }
            }
            out.push(g);
        }
        path::set(&mut self.d, spec.path, Bson::Array(out));
    }
}

/// Builds the drawer for one user. Never panics on bad data: documents that
/// can't be mapped come back in `quarantine`. For a caller that keeps the
/// user's documents; `build_owned` spares the copy.
pub fn build(user: &LegacyUser, existing: Option<&Document>, opts: &BuildOptions) -> Built {
    build_owned(user.clone(), existing, opts)
}

/// [`build`], moving the user's documents into the drawer (its raw payloads,
/// snapshots) instead of copying them: the drawer holds all of their
/// content, and copying it was a sixth of a migration's time.
pub fn build_owned(user: LegacyUser, existing: Option<&Document>, opts: &BuildOptions) -> Built {
    let LegacyUser {
        user_id,
        submissions,
        followups: followup_docs,
        training_plans,
        nutrition_plans,
        sizes: [sub_sizes, fup_sizes, tp_sizes, np_sizes],
    } = user;
    let uid = user_id.as_str();
    let did = drawer_id(uid);
    let mut quarantine = Vec::new();
    let map = FieldMap::builtin().ok();
    let mut subs = accept(
        LegacyKind::Submission,
        submissions,
        sub_sizes,
        uid,
        &mut quarantine,
    );
    if map.is_none() {
        for s in subs.drain(..) {
            quarantine.push(Quarantined {
                kind: LegacyKind::Submission,
                id: s.id(),
                reason: "the field map failed its start-up check".into(),
            });
        }
    }
    let mut fups = accept(
        LegacyKind::Followup,
        followup_docs,
        fup_sizes,
        uid,
        &mut quarantine,
    );
    let mut tplans = accept(
        LegacyKind::TrainingPlan,
        training_plans,
        tp_sizes,
        uid,
        &mut quarantine,
    );
    let mut nplans = accept(
        LegacyKind::NutritionPlan,
        nutrition_plans,
        np_sizes,
        uid,
        &mut quarantine,
    );
    let scope = opts.scope;
    let anything = (scope.questionnaires && !subs.is_empty())
        || (scope.plans && !(tplans.is_empty() && nplans.is_empty()))
        || (scope.followups && !fups.is_empty());

    let created = existing.is_none();
    if created && !anything {
        sort_quarantine(&mut quarantine);
        return Built {
            drawer: Document::new(),
            changed: false,
            created: false,
            bytes: 0,
            archived: Vec::new(),
            warnings: Vec::new(),
            quarantine,
            plan_stamps: Vec::new(),
            deferred: None,
        };
    }

    // A new drawer dates from the user's first legacy document (the plan's
    // `$setOnInsert` uses the submission date), not from the run's clock.
    let first = [&subs, &fups, &tplans, &nplans]
        .into_iter()
        .flat_map(|list| list.iter().map(|s| s.millis))
        .min()
        .map_or(opts.now, bson::DateTime::from_millis);
    let mut d = existing
        .cloned()
        .unwrap_or_else(|| skeleton(uid, first, opts.now));
    ensure_containers(&mut d);
    let mut m = MigrationMeta::read(&d);
    if let Some(e) = existing {
        m.note_containers(e, &d);
    }
    if created {
        m.created_drawer = true;
    }
    let mut ctx = Ctx {
        d,
        m,
        warnings: Vec::new(),
        drawer_id: did.clone(),
        gen: vec![Vec::new(); ARRAYS.len()],
    };

    if scope.questionnaires && !subs.is_empty() {
        if let Some(map) = map {
            questionnaires(&mut ctx, map, &mut subs);
        }
    }
    let mut plan_stamps = Vec::new();
    let mut archived_context: Vec<Document> = Vec::new();
    if scope.plans {
        plans(
            &mut ctx,
            &mut tplans,
            &mut nplans,
            opts,
            &mut plan_stamps,
            &mut quarantine,
            &mut archived_context,
        );
    }
    if scope.followups {
        followups(&mut ctx, &mut fups, &archived_context);
    }
    for spec in [
        SHARED,
        FOLLOWUPS,
        MEASUREMENTS,
        TRAINING_PLANS,
        NUTRITION_PLANS,
    ] {
        ctx.merge(spec);
    }

    // Size: move the oldest migrated snapshots out until the drawer fits.
    let mut archived = Vec::new();
    // Never aim above what MongoDB stores, whatever the configured limit.
    let limit = opts.max_drawer_bytes.min(MAX_DOCUMENT_BYTES);
    // A new drawer its caller will encode may go unmeasured (`defer_measure`).
    let defer = opts.defer_measure && created;
    // The record's weight now, which a measure taken here is checked with.
    let record = if defer {
        ctx.m.encoded_len().unwrap_or(0)
    } else {
        0
    };
    let mut measured = if defer {
        None
    } else {
        crate::encoded::doc_len(&ctx.d)
    };
    let fits = |measured: Option<usize>, ctx: &Ctx| {
        let meta = ctx.m.encoded_len().unwrap_or(0);
        debug_assert_eq!(meta, path::size(&ctx.m.to_document()));
        leaves_room(measured.unwrap_or(0), meta, limit)
    };
    if !defer && !fits(measured, &ctx) {
        let snap_i = index_of(SNAPSHOTS);
        loop {
            if fits(measured, &ctx) {
                break;
            }
            let mut snaps = path::array(&ctx.d, SNAPSHOTS.path);
            let victim = snaps.iter().position(|s| {
                SNAPSHOTS.key_of(s).is_some_and(|k| ctx.m.owns(snap_i, &k)) && !is_stub(s)
            });
            let Some(pos) = victim else {
                ctx.warn(WarningKind::DrawerTooLarge, &did, "");
                break;
            };
            let Some(snap) = snaps[pos].as_document().cloned() else {
                break;
            };
            snaps[pos] = Bson::Document(archived_stub(&snap));
            path::set(&mut ctx.d, SNAPSHOTS.path, Bson::Array(snaps));
            let sid = snap.get_str("snapshot_id").unwrap_or_default().to_owned();
            ctx.m.archived.push(sid.clone());
            archived.push(doc! {
                "_id": format!("{did}:{sid}"),
                "drawer_id": &did,
                "user_id": uid,
                "snapshot_id": &sid,
                "snapshot": snap,
                "archived_at": opts.now,
                "run_id": &opts.run_id,
            });
            measured = crate::encoded::doc_len(&ctx.d);
        }
    }
    let tail_before = tail_len(&ctx.d);

    // Derived state.
    let has_inicial = matches!(
        path::get(&ctx.d, "services.training.questionnaires.inicial"),
        Some(Bson::Document(_))
    );
    // Nutrition is never activated here: the plan gives it no `inicial` of
    // its own and its validator refuses an active service without one
    // (docs/drawer.md "Services"). A value the new system set is kept.
    ctx.put(
        Put::Derive,
        "services.training.active",
        Bson::Boolean(has_inicial),
    );
    let mut active = Vec::new();
    if has_inicial {
        active.push(Bson::from("training"));
    }
    ctx.gen[index_of(ACTIVE_SERVICES)] = active;
    ctx.merge(ACTIVE_SERVICES);
    let status = path::get(&ctx.d, "meta.status").and_then(Bson::as_str);
    if matches!(status, None | Some("active") | Some("needs_review"))
        || ctx.m.set_record("meta.status").is_some()
    {
        let s = if has_inicial {
            "active"
        } else {
            "needs_review"
        };
        ctx.put(Put::Derive, "meta.status", Bson::from(s));
    }
    if !has_inicial {
        ctx.warn(
            WarningKind::NoQuestionnaire,
            &did,
            "services.training.questionnaires.inicial",
        );
    }
    if !ctx.m.archived.is_empty() {
        ctx.put(
            Put::Derive,
            "meta.has_archived_snapshots",
            Bson::Boolean(true),
        );
    }

    // Bookkeeping, then decide whether anything changed.
    let mut warnings = std::mem::take(&mut ctx.warnings);
    warnings.sort();
    warnings.dedup();
    ctx.m.warnings.extend(warnings.iter().cloned());
    let Ctx { mut d, mut m, .. } = ctx;
    // A new drawer is always a change: its bookkeeping is written once, below.
    let changed = match existing {
        None => true,
        Some(e) => {
            path::set(&mut d, "meta.migration", Bson::Document(m.to_document()));
            !path::same_doc(&d, e)
        }
    };
    if changed {
        // Keep the drawer's own `updated_at` from before the first run that
        // changed it, so a rollback gives the drawer back byte for byte.
        if let Some(e) = existing {
            if m.set_record("meta.updated_at").is_none() && !m.created_drawer {
                let before = path::get(e, "meta.updated_at").cloned();
                m.set.push(SetRecord {
                    path: "meta.updated_at".to_owned(),
                    existed: before.is_some(),
                    before: before.unwrap_or(Bson::Null),
                });
            }
        }
        m.run_id = Some(Bson::from(opts.run_id.as_str()));
        m.migrated_at = Some(Bson::DateTime(opts.now));
        path::set(&mut d, "meta.migration", Bson::Document(m.into_document()));
        path::set(&mut d, "meta.updated_at", Bson::DateTime(opts.now));
    }
    // Unmeasured: the caller checks the encoded length with this instead.
    let deferred = defer.then(|| DeferredMeasure {
        tail_before,
        tail_after: tail_len(&d),
        record,
        limit,
    });
    let mut size = 0;
    if changed && deferred.is_none() {
        size = final_len(measured, tail_before, &d);
        let sources = [&subs, &fups, &tplans, &nplans];
        if let Some(refused) =
            refuse_oversized(&d, size, &archived, &sources, existing, quarantine.clone())
        {
            return refused;
        }
    }
    sort_quarantine(&mut quarantine);
    Built {
        drawer: d,
        changed,
        created,
        bytes: size,
        archived,
        warnings,
        quarantine,
        plan_stamps,
        deferred,
    }
}

/// Whether a drawer measured at `measured` bytes before its migration
/// record (`record` bytes) is written fits in `limit`, with a margin for
/// the derived state written after the measure.
fn leaves_room(measured: usize, record: usize, limit: usize) -> bool {
    measured + record + 1024 <= limit
}

impl DeferredMeasure {
    /// Whether a drawer encoded to `len` bytes stands as built: the measure
    /// a measured build would have taken ([`final_len`] run backwards)
    /// leaves room for the record, and MongoDB stores the drawer.
    pub fn holds(&self, len: usize) -> bool {
        let (Some(before), Some(after)) = (self.tail_before, self.tail_after) else {
            return false;
        };
        let Some(measured) = (len + before).checked_sub(after) else {
            return false;
        };
        leaves_room(measured, self.record, self.limit) && len <= MAX_DOCUMENT_BYTES
    }
}

fn bytes(d: &Document) -> usize {
    crate::encoded::doc_len(d).unwrap_or(usize::MAX)
}

/// What the derived state and the bookkeeping may change after the drawer
/// was measured for archiving. The drawer's final size is that measure plus
/// what these elements gained, instead of a second walk of the whole drawer
/// (a tenth of a migration's instructions went to measuring).
const TAIL_PATHS: [&str; 6] = [
    "services.training.active",
    ACTIVE_SERVICES.path,
    "meta.status",
    "meta.has_archived_snapshots",
    "meta.migration",
    "meta.updated_at",
];

/// The encoded length of the elements at `TAIL_PATHS`; `None` when one of
/// their parents is not a document (setting the path would create it).
fn tail_len(d: &Document) -> Option<usize> {
    TAIL_PATHS.iter().map(|p| path::element_len(d, p)).sum()
}

/// The size of the finished drawer `d`, from `measured` (its size before
/// the tail was written, when the tail weighed `before`); a walk of `d`
/// when either is unknown.
fn final_len(measured: Option<usize>, before: Option<usize>, d: &Document) -> usize {
    let size = match (measured, before, tail_len(d)) {
        (Some(m), Some(b), Some(a)) => m - b + a,
        _ => bytes(d),
    };
    debug_assert_eq!(size, bytes(d), "a drawer changed outside TAIL_PATHS");
    size
}

/// A drawer (or an archived snapshot) MongoDB would refuse, even after
/// archiving every snapshot that may be: nothing is written for the user,
/// every one of their documents goes to quarantine with a reason that names
/// the largest one and what to do, and the stored drawer (if any) stays as
/// it is. `None` when everything fits.
fn refuse_oversized(
    drawer: &Document,
    size: usize,
    archived: &[Document],
    sources: &[&Vec<Src>; 4],
    existing: Option<&Document>,
    mut quarantine: Vec<Quarantined>,
) -> Option<Built> {
    let archive_fits = archived.iter().all(|a| bytes(a) <= MAX_DOCUMENT_BYTES);
    if size <= MAX_DOCUMENT_BYTES && archive_fits {
        return None;
    }
    let kinds = [
        LegacyKind::Submission,
        LegacyKind::Followup,
        LegacyKind::TrainingPlan,
        LegacyKind::NutritionPlan,
    ];
    let docs: Vec<(LegacyKind, &Src)> = kinds
        .iter()
        .zip(sources.iter())
        .flat_map(|(k, list)| list.iter().map(move |s| (*k, s)))
        .collect();
    let mib = |b: usize| b as f64 / (1024.0 * 1024.0);
    let largest = docs.iter().map(|(k, s)| (s.bytes, *k, s.key.clone())).max();
    let named = largest.map_or_else(String::new, |(b, k, id)| {
        format!(
            " (largest document: {} {id}, {:.1} MiB)",
            k.collection(),
            mib(b)
        )
    });
    let reason = format!(
        "the user's drawer would be {:.1} MiB, over MongoDB's 16 MiB document limit even with its migrated snapshots archived{named}: make that document smaller in the legacy database (move attachments or long texts out), then run `edn-migrate phase2 migrate all` again",
        mib(size.max(archived.iter().map(bytes).max().unwrap_or(0)))
    );
    for (kind, s) in docs {
        let listed = quarantine
            .iter()
            .any(|q| q.kind == kind && id_key(&q.id) == s.key);
        if !listed {
            quarantine.push(Quarantined {
                kind,
                id: s.id(),
                reason: reason.clone(),
            });
        }
    }
    sort_quarantine(&mut quarantine);
    let drawer_id = drawer.get_str("_id").unwrap_or_default().to_owned();
    Some(Built {
        drawer: existing.cloned().unwrap_or_default(),
        changed: false,
        created: false,
        bytes: 0,
        archived: Vec::new(),
        warnings: vec![Warning::new(WarningKind::DrawerTooLarge, drawer_id, "")],
        quarantine,
        plan_stamps: Vec::new(),
        deferred: None,
    })
}

/// What stays in the drawer of a snapshot moved to the archive: everything
/// but its `client_context` (the bulk), marked `archived: true`. The version
/// chain stays whole, so the plan's validator and follow-up links still see
/// every version; the full snapshot is in `client_drawer_snapshot_archive`.
fn archived_stub(snapshot: &Document) -> Document {
    let mut stub = snapshot.clone();
    stub.remove("client_context");
    stub.insert("archived", true);
    stub
}

fn is_stub(snapshot: &Bson) -> bool {
    snapshot
        .as_document()
        .is_some_and(|s| s.get_bool("archived") == Ok(true))
}

fn sort_quarantine(q: &mut [Quarantined]) {
    q.sort_by(|a, b| (a.kind, id_key(&a.id), &a.reason).cmp(&(b.kind, id_key(&b.id), &b.reason)));
}

/// A submission's flat `responses`, or `empty` when it has none.
fn responses_of<'a>(s: &'a Src, empty: &'a Document) -> &'a Document {
    s.doc.get_document("responses").unwrap_or(empty)
}

fn questionnaires(ctx: &mut Ctx, map: &FieldMap, subs: &mut [Src]) {
    let (Some(first), Some(last)) = (subs.first(), subs.last()) else {
        return;
    };
    let empty = Document::new();
    // Read from the first and the last before their content moves into the drawer.
    let inicial = doc! {
        "submission_id": first.id(),
        "submitted_at": first.date(),
        "version": "1.0.0",
        "schema_version": "questionnaire_training_v1",
        "responses": map.to_blocks(responses_of(first, &empty)),
    };
    let (first_date, last_date, first_key) = (first.date(), last.date(), first.key.clone());
    let (profile, w) = profile_from_responses(responses_of(last, &empty), &last.key);
    let several = subs.len() > 1;
    for s in subs.iter_mut() {
        let r = responses_of(s, &empty);
        for key in map.unmapped_keys(r) {
            ctx.warn(
                WarningKind::UnmappedField,
                &s.key,
                format!("responses.{key}"),
            );
        }
        let (data, w) = initial_measurement_data(r, &s.key);
        ctx.warnings.extend(w);
        ctx.gen[index_of(MEASUREMENTS)].push(Bson::Document(doc! {
            "measurement_id": format!("measure_migrated_{}", s.key),
            "date": s.date(),
            "tipo": "inicial",
            "source": format!("migrated_from_{}", s.key),
            "data": data,
        }));
        ctx.gen[index_of(SHARED)].push(Bson::Document(doc! {
            "submission_id": s.id(),
            "submitted_at": s.date(),
            "source": "nutrition_initial",
            "raw_payload": s.take(),
        }));
    }
    if several {
        ctx.warn(WarningKind::SeveralInitialSubmissions, &first_key, "");
    }
    ctx.put(
        Put::Fill,
        "services.training.questionnaires.inicial",
        Bson::Document(inicial),
    );
    ctx.put(
        Put::Fill,
        "services.training.enrolled_at",
        first_date.clone(),
    );
    ctx.warnings.extend(w);
    for (k, v) in profile {
        ctx.put(Put::Fill, &format!("profile.{k}"), v);
    }
    ctx.put(Put::Fill, "profile.created_at", first_date);
    ctx.put(Put::Fill, "profile.updated_at", last_date);
}

/// Whether a plan is for the builder to version (no stamp, or the builder's own).
fn is_legacy(doc: &Document) -> bool {
    match doc.get("snapshot_id") {
        None | Some(Bson::Null) => true,
        Some(Bson::String(s)) => s.starts_with(LEGACY_SNAPSHOT_PREFIX),
        Some(_) => false,
    }
}

fn job_key(doc: &Document) -> Option<String> {
    match doc.get("job_id") {
        None | Some(Bson::Null) => None,
        Some(v) => Some(id_key(v)),
    }
}

/// Pairs training plans with nutrition plans: same `job_id` first, then the
/// nearest `generated_at` within the window (never across two different
/// job ids); each nutrition plan used once. Ties: earlier training plan,
/// then earlier nutrition plan (both already in canonical order).
fn pair(t: &[&Src], n: &[&Src], window: i64) -> Vec<Option<usize>> {
    let mut of_t: Vec<Option<usize>> = vec![None; t.len()];
    let mut used = vec![false; n.len()];
    let mut candidates: Vec<(u8, i64, usize, usize)> = Vec::new();
    for (ti, tp) in t.iter().enumerate() {
        for (ni, np) in n.iter().enumerate() {
            let dt = (i128::from(tp.millis) - i128::from(np.millis)).unsigned_abs();
            let dt = i64::try_from(dt).unwrap_or(i64::MAX);
            match (job_key(&tp.doc), job_key(&np.doc)) {
                (Some(a), Some(b)) if a == b => candidates.push((0, dt, ti, ni)),
                (Some(_), Some(_)) => {}
                _ if dt <= window => candidates.push((1, dt, ti, ni)),
                _ => {}
            }
        }
    }
    candidates.sort();
    for (_, _, ti, ni) in candidates {
        if of_t[ti].is_none() && !used[ni] {
            of_t[ti] = Some(ni);
            used[ni] = true;
        }
    }
    of_t
}

/// Moves the plans' outputs into the snapshot (each plan is versioned once).
fn snapshot_from_plans(
    user_id: &str,
    sid: &str,
    version: i32,
    previous: Bson,
    t: &mut Src,
    mut n: Option<&mut Src>,
) -> Document {
    let mut training = Document::new();
    for (i, name) in TRAINING_OUTPUTS.iter().enumerate() {
        if let Some(v) = t.doc.get_mut(*name) {
            training.insert(*name, std::mem::take(v));
        } else if let Some(v) = t.doc.get_mut(format!("e{}_output", i + 1)) {
            training.insert(*name, std::mem::take(v));
        }
    }
    let mut nutrition = Document::new();
    if let Some(n) = n.as_deref_mut() {
        for name in NUTRITION_OUTPUTS {
            if let Some(v) = n.doc.get_mut(name) {
                nutrition.insert(name, std::mem::take(v));
            }
        }
    }
    let n = n.as_deref();
    doc! {
        "snapshot_id": sid,
        "version": version,
        "previous_snapshot_id": previous,
        "created_at": t.date(),
        "trigger": "migrated_from_legacy",
        "client_context": {
            "meta": { "client_id": user_id, "snapshot_id": sid, "version": version },
            "training": training,
            "nutrition": nutrition,
        },
        "plans_generated": {
            "training_plan_id": t.id(),
            "nutrition_plan_id": n.map(Src::id).unwrap_or(Bson::Null),
        },
        "generation_job_id": t.field("job_id"),
    }
}

fn stamp_if_needed(out: &mut Vec<PlanStamp>, kind: LegacyKind, s: &Src, sid: &str, did: &str) {
    let has = s.doc.get_str("snapshot_id").ok() == Some(sid)
        && s.doc.get_str("client_drawer_id").ok() == Some(did);
    if !has {
        out.push(PlanStamp {
            kind,
            plan_id: s.id(),
            snapshot_id: sid.to_owned(),
            client_drawer_id: did.to_owned(),
        });
    }
}

#[allow(clippy::too_many_arguments)]
fn plans(
    ctx: &mut Ctx,
    tplans: &mut [Src],
    nplans: &mut [Src],
    opts: &BuildOptions,
    stamps: &mut Vec<PlanStamp>,
    quarantine: &mut Vec<Quarantined>,
    archived_context: &mut Vec<Document>,
) {
    let did = ctx.drawer_id.clone();
    let uid = path::get(&ctx.d, "user_id")
        .and_then(Bson::as_str)
        .map(str::to_owned)
        .unwrap_or_default();
    // Indices of the plans to version, into `tplans` and `nplans`.
    let t: Vec<usize> = (0..tplans.len())
        .filter(|&i| is_legacy(&tplans[i].doc))
        .collect();
    let n: Vec<usize> = (0..nplans.len())
        .filter(|&i| is_legacy(&nplans[i].doc))
        .collect();
    let pairs = pair(
        &t.iter().map(|&i| &tplans[i]).collect::<Vec<_>>(),
        &n.iter().map(|&i| &nplans[i]).collect::<Vec<_>>(),
        opts.pairing_window_ms,
    );

    // Foreign snapshots before the migrated block stay first; the block follows.
    let snap_i = index_of(SNAPSHOTS);
    let existing = path::array_ref(&ctx.d, SNAPSHOTS.path);
    let first_owned = existing
        .iter()
        .position(|s| SNAPSHOTS.key_of(s).is_some_and(|k| ctx.m.owns(snap_i, &k)));
    let is_owned = |s: &Bson| SNAPSHOTS.key_of(s).is_some_and(|k| ctx.m.owns(snap_i, &k));
    let (base, after): (Vec<Bson>, Vec<Bson>) = match first_owned {
        None => (existing.to_vec(), Vec::new()),
        Some(p) => (
            existing[..p]
                .iter()
                .filter(|s| !is_owned(s))
                .cloned()
                .collect(),
            existing[p..]
                .iter()
                .filter(|s| !is_owned(s))
                .cloned()
                .collect(),
        ),
    };
    let base_ids: Vec<String> = base
        .iter()
        .filter_map(|s| SNAPSHOTS.key_of(s).map(Cow::into_owned))
        .collect();
    let mut previous = base
        .last()
        .and_then(|s| s.as_document())
        .and_then(|s| s.get("snapshot_id"))
        .cloned()
        .unwrap_or(Bson::Null);
    let mut block = Vec::new();
    let mut sid_of_n: Vec<Option<String>> = vec![None; n.len()];
    for (k, &ti) in t.iter().enumerate() {
        let version = i32::try_from(base.len() + k + 1).unwrap_or(i32::MAX);
        let sid = format!("{LEGACY_SNAPSHOT_PREFIX}{version}");
        if let Some(i) = pairs[k] {
            sid_of_n[i] = Some(sid.clone());
        }
        let np = pairs[k].map(|i| &mut nplans[n[i]]);
        let snap = snapshot_from_plans(&uid, &sid, version, previous.clone(), &mut tplans[ti], np);
        let tp = &tplans[ti];
        let np = pairs[k].map(|i| &nplans[n[i]]);
        previous = Bson::from(sid.as_str());
        ctx.m.add(snap_i, Bson::from(sid.as_str()));
        if base_ids.contains(&sid) {
            archived_context.push(snap);
        } else if ctx.m.archived.contains(&sid) {
            block.push(Bson::Document(archived_stub(&snap)));
        } else {
            block.push(Bson::Document(snap));
        }
        ctx.gen[index_of(TRAINING_PLANS)].push(Bson::Document(doc! {
            "plan_id": tp.id(),
            "version": version,
            "generated_at": tp.date(),
            "snapshot_id": &sid,
            "month": tp.field("month"),
            "year": tp.field("year"),
            "status": "completed",
        }));
        ctx.m.stamped.push((LegacyKind::TrainingPlan, tp.id()));
        stamp_if_needed(stamps, LegacyKind::TrainingPlan, tp, &sid, &did);
        if let Some(np) = np {
            ctx.m.stamped.push((LegacyKind::NutritionPlan, np.id()));
            stamp_if_needed(stamps, LegacyKind::NutritionPlan, np, &sid, &did);
        }
    }
    if !t.is_empty() || first_owned.is_some() {
        let mut all = base;
        all.extend(block);
        all.extend(after);
        path::set(&mut ctx.d, SNAPSHOTS.path, Bson::Array(all));
    }
    for (i, np) in n.iter().map(|&i| &nplans[i]).enumerate() {
        if sid_of_n[i].is_none() {
            ctx.warn(WarningKind::UnpairedNutritionPlan, &np.key, "");
        }
        ctx.gen[index_of(NUTRITION_PLANS)].push(Bson::Document(doc! {
            "plan_id": np.id(),
            "generated_at": np.date(),
            "snapshot_id": sid_of_n[i].clone().map(Bson::from).unwrap_or(Bson::Null),
        }));
    }

    // Plans the new system already versioned: listed when their snapshot is here, never re-versioned.
    let snaps = path::array_ref(&ctx.d, SNAPSHOTS.path);
    let version_of = |sid: &str| -> Option<Bson> {
        snaps.iter().find_map(|s| {
            let s = s.as_document()?;
            (s.get_str("snapshot_id").ok()? == sid)
                .then(|| s.get("version").cloned().unwrap_or(Bson::Null))
        })
    };
    for (kind, list) in [
        (LegacyKind::TrainingPlan, &*tplans),
        (LegacyKind::NutritionPlan, &*nplans),
    ] {
        for s in list.iter().filter(|s| !is_legacy(&s.doc)) {
            let sid = s.doc.get_str("snapshot_id").unwrap_or_default().to_owned();
            let Some(version) = version_of(&sid) else {
                quarantine.push(Quarantined {
                    kind,
                    id: s.id(),
                    reason: "already carries a snapshot_id whose snapshot is not in this drawer; left alone".into(),
                });
                continue;
            };
            let entry = match kind {
                LegacyKind::TrainingPlan => doc! {
                    "plan_id": s.id(),
                    "version": version,
                    "generated_at": s.date(),
                    "snapshot_id": &sid,
                    "month": s.field("month"),
                    "year": s.field("year"),
                    "status": "completed",
                },
                _ => doc! {
                    "plan_id": s.id(),
                    "generated_at": s.date(),
                    "snapshot_id": &sid,
                },
            };
            let target = match kind {
                LegacyKind::TrainingPlan => TRAINING_PLANS,
                _ => NUTRITION_PLANS,
            };
            ctx.gen[index_of(target)].push(Bson::Document(entry));
        }
    }
}

struct SnapInfo {
    id: String,
    version: i64,
    created: Option<i64>,
    training_plan: Option<String>,
}

fn snap_info(s: &Document) -> Option<SnapInfo> {
    Some(SnapInfo {
        id: s.get_str("snapshot_id").ok()?.to_owned(),
        version: match s.get("version") {
            Some(Bson::Int32(v)) => i64::from(*v),
            Some(Bson::Int64(v)) => *v,
            _ => 0,
        },
        created: date_millis(s.get("created_at")),
        training_plan: path::get(s, "plans_generated.training_plan_id")
            .filter(|v| !matches!(v, Bson::Null))
            .map(id_key),
    })
}

fn followups(ctx: &mut Ctx, fups: &mut [Src], archived_context: &[Document]) {
    let mut snaps: Vec<SnapInfo> = path::array_ref(&ctx.d, SNAPSHOTS.path)
        .iter()
        .filter_map(|s| s.as_document().and_then(snap_info))
        .collect();
    snaps.extend(archived_context.iter().filter_map(snap_info));
    let empty = Document::new();
    for f in fups.iter_mut() {
        let prev_plan = match f.doc.get("previous_plan_id") {
            None | Some(Bson::Null) => None,
            Some(v) => Some(id_key(v)),
        };
        let by_plan = prev_plan.as_ref().and_then(|p| {
            snaps
                .iter()
                .find(|s| s.training_plan.as_deref() == Some(p.as_str()))
        });
        let (link, previous) = if let Some(s) = by_plan {
            ("plan", Bson::from(s.id.as_str()))
        } else {
            let by_date = snaps
                .iter()
                .filter(|s| s.created.is_some_and(|c| c < f.millis))
                .max_by(|a, b| {
                    a.created
                        .cmp(&b.created)
                        .then(a.version.cmp(&b.version))
                        .then_with(|| a.id.cmp(&b.id))
                });
            match by_date {
                Some(s) => {
                    ctx.warn(
                        WarningKind::FollowupLinkedByDate,
                        &f.key,
                        "previous_plan_id",
                    );
                    ("date", Bson::from(s.id.as_str()))
                }
                None => {
                    ctx.warn(WarningKind::FollowupUnlinked, &f.key, "previous_plan_id");
                    ("none", Bson::Null)
                }
            }
        };
        ctx.gen[index_of(FOLLOWUPS)].push(Bson::Document(doc! {
            "followup_id": f.id(),
            "submitted_at": f.date(),
            "days_since_last": f.field("days_since_last_plan"),
            "previous_snapshot_id": previous,
            "snapshot_link": link,
            "measurement_type": f.field("measurement_type"),
            "measurements": f.field("measurements"),
            "adherence": f.field("adherence"),
            "wellbeing": f.field("wellbeing"),
            "changes_perceived": f.field("changes_perceived"),
            "feedback": f.field("feedback"),
        }));
        let measurements = f.doc.get_document("measurements").unwrap_or(&empty);
        let (data, w) = followup_measurement_data(measurements, &f.key);
        ctx.warnings.extend(w);
        ctx.gen[index_of(MEASUREMENTS)].push(Bson::Document(doc! {
            "measurement_id": format!("measure_followup_{}", f.key),
            "date": f.date(),
            "tipo": "seguimiento",
            "source": format!("migrated_from_{}", f.key),
            "data": data,
        }));
        ctx.gen[index_of(SHARED)].push(Bson::Document(doc! {
            "submission_id": f.id(),
            "submitted_at": f.date(),
            "source": "followup",
            "raw_payload": f.take(),
        }));
    }
}
