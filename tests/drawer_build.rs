//! Builder rules, the defects of the reference scripts, undo, and properties
//! (idempotence, input-order independence, scope composition, validator
//! acceptance) over the fixture users and generated ones.

mod common;

use bson::{doc, Bson, Document};
use common::build_checked as build;
use edn_migrate::drawer::{
    triage, undo, validate, BuildOptions, LegacyKind, LegacyUser, Scope, Undo,
};
use proptest::prelude::*;

fn later(o: &BuildOptions) -> BuildOptions {
    let mut o = o.clone();
    o.now = bson::DateTime::from_millis(common::NOW_MS + 86_400_000);
    o.run_id = "run_test_0002".into();
    o
}

fn at(ms: i64) -> Bson {
    Bson::DateTime(bson::DateTime::from_millis(ms))
}

const DAY: i64 = 86_400_000;
const T0: i64 = 1_735_689_600_000; // 2025-01-01

fn user() -> LegacyUser {
    LegacyUser {
        sizes: Default::default(),
        user_id: "u1".into(),
        submissions: vec![
            doc! { "_id": "s1", "user_id": "u1", "submitted_at": at(T0), "responses": { "edad": "", "peso": "80,5", "nombre_completo": "X" } },
        ],
        followups: vec![
            doc! { "_id": "f1", "user_id": "u1", "submission_date": at(T0 + 40 * DAY), "previous_plan_id": "t2", "measurements": { "peso": "79" } },
        ],
        training_plans: vec![
            doc! { "_id": "t2", "user_id": "u1", "generated_at": at(T0 + 30 * DAY), "job_id": "j2" },
            doc! { "_id": "t1", "user_id": "u1", "generated_at": at(T0 + DAY), "job_id": "j1", "e1_output": { "a": 1 } },
        ],
        nutrition_plans: vec![
            doc! { "_id": "n1", "user_id": "u1", "generated_at": at(T0 + DAY + 1000) },
            doc! { "_id": "n2", "user_id": "u1", "generated_at": at(T0 + 30 * DAY), "job_id": "j2" },
        ],
    }
}

fn arr<'a>(d: &'a Document, p: &str) -> &'a Vec<Bson> {
    let mut cur: &Document = d;
    let parts: Vec<&str> = p.split('.').collect();
    for k in &parts[..parts.len() - 1] {
        cur = cur.get_document(k).unwrap();
    }
    cur.get_array(parts[parts.len() - 1]).unwrap()
}

#[test]
fn rerun_does_not_duplicate_the_initial_measurement() {
    // Reference defect: `$push` of the measurement on every run.
    let b1 = build(&user(), None, &common::opts());
    let b2 = build(&user(), Some(&b1.drawer), &later(&common::opts()));
    assert!(!b2.changed);
    assert_eq!(b2.drawer, b1.drawer);
    assert_eq!(arr(&b2.drawer, "services.training.measurements").len(), 2);
    assert!(b2.plan_stamps.is_empty() || b2.plan_stamps == b1.plan_stamps);
}

#[test]
fn snapshots_chain_and_version_by_date_not_cursor_order() {
    // Reference defects: no previous_snapshot_id; cursor-order versions.
    let d = build(&user(), None, &common::opts()).drawer;
    let s = arr(&d, "services.training.snapshots");
    let s1 = s[0].as_document().unwrap();
    let s2 = s[1].as_document().unwrap();
    assert_eq!(
        s1.get_document("plans_generated")
            .unwrap()
            .get_str("training_plan_id")
            .unwrap(),
        "t1"
    );
    assert_eq!(s1.get("previous_snapshot_id"), Some(&Bson::Null));
    assert_eq!(
        s2.get_str("previous_snapshot_id").unwrap(),
        "snapshot_legacy_v1"
    );
    assert_eq!(
        s1.get_document("client_context")
            .unwrap()
            .get_document("training")
            .unwrap(),
        &doc! { "client_summary": { "a": 1 } }
    );
    assert!(validate(&d, &[]).is_empty());
}

#[test]
fn followups_link_to_snapshots_built_in_the_same_run() {
    // Reference defect: follow-ups migrated before their snapshots exist.
    let d = build(&user(), None, &common::opts()).drawer;
    let f = arr(&d, "services.training.questionnaires.followups")[0]
        .as_document()
        .unwrap();
    assert_eq!(f.get_str("snapshot_link").unwrap(), "plan");
    assert_eq!(
        f.get_str("previous_snapshot_id").unwrap(),
        "snapshot_legacy_v2"
    );
}

#[test]
fn nutrition_pairs_within_the_window_not_by_equal_timestamps() {
    // Reference defect: exact generated_at equality (n1 is one second later).
    let d = build(&user(), None, &common::opts()).drawer;
    let s1 = arr(&d, "services.training.snapshots")[0]
        .as_document()
        .unwrap();
    assert_eq!(
        s1.get_document("plans_generated")
            .unwrap()
            .get_str("nutrition_plan_id")
            .unwrap(),
        "n1"
    );
    let mut o = common::opts();
    o.pairing_window_ms = 500;
    let d = build(&user(), None, &o).drawer;
    let s1 = arr(&d, "services.training.snapshots")[0]
        .as_document()
        .unwrap();
    assert_eq!(
        s1.get_document("plans_generated")
            .unwrap()
            .get("nutrition_plan_id"),
        Some(&Bson::Null)
    );
    assert_eq!(
        arr(&d, "services.nutrition.plans").len(),
        2,
        "unpaired plan still listed"
    );
}

#[test]
fn unmapped_fields_are_kept_and_empty_edad_does_not_crash() {
    let mut u = user();
    u.submissions[0]
        .get_document_mut("responses")
        .unwrap()
        .insert("nuevo", "x");
    let b = build(&u, None, &common::opts());
    let inicial = b
        .drawer
        .get_document("services")
        .unwrap()
        .get_document("training")
        .unwrap()
        .get_document("questionnaires")
        .unwrap()
        .get_document("inicial")
        .unwrap();
    let unmapped = inicial
        .get_document("responses")
        .unwrap()
        .get_document("additional_info")
        .unwrap()
        .get_document("unmapped")
        .unwrap();
    assert_eq!(unmapped, &doc! { "nuevo": "x" });
    assert_eq!(
        b.drawer.get_document("profile").unwrap().get("edad"),
        Some(&Bson::Null)
    );
    assert!(b
        .warnings
        .iter()
        .any(|w| w.field == "responses.edad" && w.source_id == "s1"));
}

#[test]
fn plans_without_a_drawer_or_questionnaire_still_get_one() {
    // Reference defect: "Drawer not found" → skipped.
    let mut u = user();
    u.submissions.clear();
    let b = build(&u, None, &common::opts());
    assert!(b.created && b.changed);
    assert_eq!(
        b.drawer
            .get_document("meta")
            .unwrap()
            .get_str("status")
            .unwrap(),
        "needs_review"
    );
    assert!(
        validate(&b.drawer, &[]).is_empty(),
        "{:?}",
        validate(&b.drawer, &[])
    );
}

#[test]
fn triage_reasons_never_hold_values() {
    assert_eq!(
        triage(
            LegacyKind::Submission,
            &doc! { "_id": "a", "submitted_at": at(T0), "responses": {} }
        ),
        Err("no user_id".into())
    );
    let r = triage(
        LegacyKind::Submission,
        &doc! { "_id": "a", "user_id": "u", "submitted_at": at(T0), "responses": "{\"secret\":1}" },
    );
    assert_eq!(r, Err("responses is not an object".into()));
    assert!(triage(
        LegacyKind::TrainingPlan,
        &doc! { "_id": "a", "user_id": "u" }
    )
    .is_err());
}

#[test]
fn dual_write_entries_survive_merge_and_undo() {
    let users = common::users();
    let existing = common::existing_drawers();
    let uid = "1762976907472415";
    let b = build(&users[uid], existing.get(uid), &common::opts());
    // A questionnaire dual-written after the migration.
    let mut d = b.drawer.clone();
    d.get_document_mut("services").unwrap().get_array_mut("shared_questionnaires").unwrap().push(Bson::Document(
        doc! { "submission_id": "submission_after", "source": "nutrition_initial", "raw_payload": {} },
    ));
    let Undo::Replace(restored) = undo(&d) else {
        panic!("expected Replace")
    };
    let mut want = existing[uid].clone();
    want.get_document_mut("services").unwrap().get_array_mut("shared_questionnaires").unwrap().push(Bson::Document(
        doc! { "submission_id": "submission_after", "source": "nutrition_initial", "raw_payload": {} },
    ));
    // Everything but the timestamp the migration bumped is back as dual-write left it.
    let strip = |mut x: Document| {
        x.get_document_mut("meta").unwrap().remove("updated_at");
        x.get_document_mut("services")
            .unwrap()
            .get_document_mut("training")
            .unwrap()
            .remove("enrolled_at");
        x
    };
    assert_eq!(strip(restored), strip(want));
}

#[test]
fn undo_deletes_a_drawer_the_migration_created() {
    let b = build(&user(), None, &common::opts());
    assert_eq!(undo(&b.drawer), Undo::Delete);
    let mut d = b.drawer.clone();
    d.get_document_mut("services")
        .unwrap()
        .get_array_mut("shared_questionnaires")
        .unwrap()
        .push(Bson::Document(doc! { "submission_id": "new" }));
    assert!(matches!(undo(&d), Undo::Replace(_)));
    assert_eq!(
        undo(&common::existing_drawers()["1762976907472415"]),
        Undo::Unchanged
    );
}

#[test]
fn scopes_compose_to_the_same_drawer_as_all() {
    let users = common::users();
    let existing = common::existing_drawers();
    for (uid, u) in &users {
        let all = build(u, existing.get(uid), &common::opts()).drawer;
        let mut cur = existing.get(uid).cloned();
        for scope in [
            Scope::questionnaires(),
            Scope::plans(),
            Scope::followups(),
            Scope::all(),
        ] {
            let mut o = common::opts();
            o.scope = scope;
            let b = build(u, cur.as_ref(), &o);
            if b.changed {
                cur = Some(b.drawer);
            }
        }
        assert_eq!(common::pretty(&cur.unwrap()), common::pretty(&all), "{uid}");
    }
}

#[test]
fn validator_rejects_broken_variants() {
    let d = build(&user(), None, &common::opts()).drawer;
    type Breaker = Box<dyn Fn(&mut Document)>;
    let broken: Vec<(&str, Breaker)> = vec![
        (
            "version",
            Box::new(|d| {
                snap(d, 1).insert("version", 3);
            }),
        ),
        (
            "previous",
            Box::new(|d| {
                snap(d, 1).insert("previous_snapshot_id", "nope");
            }),
        ),
        (
            "first prev",
            Box::new(|d| {
                snap(d, 0).insert("previous_snapshot_id", "x");
            }),
        ),
        (
            "inicial",
            Box::new(|d| {
                d.get_document_mut("services")
                    .unwrap()
                    .get_document_mut("training")
                    .unwrap()
                    .get_document_mut("questionnaires")
                    .unwrap()
                    .insert("inicial", Bson::Null);
            }),
        ),
        (
            "dup id",
            Box::new(|d| {
                let a = d
                    .get_document_mut("services")
                    .unwrap()
                    .get_document_mut("training")
                    .unwrap()
                    .get_array_mut("measurements")
                    .unwrap();
                let x = a[0].clone();
                a.push(x);
            }),
        ),
        (
            "plan snapshot",
            Box::new(|d| {
                d.get_document_mut("services")
                    .unwrap()
                    .get_document_mut("training")
                    .unwrap()
                    .get_array_mut("plans")
                    .unwrap()[0]
                    .as_document_mut()
                    .unwrap()
                    .insert("snapshot_id", "ghost");
            }),
        ),
        (
            "followup snapshot",
            Box::new(|d| {
                d.get_document_mut("services")
                    .unwrap()
                    .get_document_mut("training")
                    .unwrap()
                    .get_document_mut("questionnaires")
                    .unwrap()
                    .get_array_mut("followups")
                    .unwrap()[0]
                    .as_document_mut()
                    .unwrap()
                    .insert("previous_snapshot_id", "ghost");
            }),
        ),
        (
            "required",
            Box::new(|d| {
                d.remove("meta");
            }),
        ),
        (
            "edad",
            Box::new(|d| {
                d.get_document_mut("profile").unwrap().insert("edad", "34");
            }),
        ),
    ];
    assert!(validate(&d, &[]).is_empty());
    for (name, f) in broken {
        let mut x = d.clone();
        f(&mut x);
        let errs = validate(&x, &[]);
        assert!(!errs.is_empty(), "{name} accepted");
        assert!(!errs.iter().any(|e| e.to_string().contains("80,5")));
    }
}

fn snap(d: &mut Document, i: usize) -> &mut Document {
    d.get_document_mut("services")
        .unwrap()
        .get_document_mut("training")
        .unwrap()
        .get_array_mut("snapshots")
        .unwrap()[i]
        .as_document_mut()
        .unwrap()
}

#[test]
fn oversized_drawers_archive_their_oldest_migrated_snapshots() {
    let mut o = common::opts();
    o.max_drawer_bytes = 1;
    let b = build(&user(), None, &o);
    assert_eq!(b.archived.len(), 2);
    assert_eq!(
        b.archived[0].get_str("_id").unwrap(),
        "client_u1:snapshot_legacy_v1"
    );
    assert!(b
        .drawer
        .get_document("meta")
        .unwrap()
        .get_bool("has_archived_snapshots")
        .unwrap());
    assert!(
        validate(&b.drawer, &[]).is_empty(),
        "{:?}",
        validate(&b.drawer, &[])
    );
    // The archived snapshots leave stubs: the chain v1, v2 stays whole (the
    // plan's validator refuses gaps) and only the bulk moved to the archive.
    let snaps = arr(&b.drawer, "services.training.snapshots");
    assert_eq!(snaps.len(), 2);
    for (i, s) in snaps.iter().enumerate() {
        let s = s.as_document().unwrap();
        assert_eq!(s.get_i32("version").unwrap(), i as i32 + 1);
        assert_eq!(s.get_bool("archived"), Ok(true));
        assert!(s.get("client_context").is_none());
        let full = b.archived[i].get_document("snapshot").unwrap();
        assert!(full.get_document("client_context").is_ok());
        assert_eq!(full.get("snapshot_id"), s.get("snapshot_id"));
    }
    common::plan_validator::assert_plan_accepts(&b.drawer);
    let again = build(&user(), Some(&b.drawer), &later(&o));
    assert!(!again.changed && again.archived.is_empty());
}

fn shuffled(u: &LegacyUser, seed: u64) -> LegacyUser {
    fn mix<T: Clone>(v: &[T], seed: u64) -> Vec<T> {
        let mut v = v.to_vec();
        let mut s = seed | 1;
        for i in (1..v.len()).rev() {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            v.swap(i, (s % (i as u64 + 1)) as usize);
        }
        v
    }
    LegacyUser {
        sizes: Default::default(),
        user_id: u.user_id.clone(),
        submissions: mix(&u.submissions, seed),
        followups: mix(&u.followups, seed + 1),
        training_plans: mix(&u.training_plans, seed + 2),
        nutrition_plans: mix(&u.nutrition_plans, seed + 3),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn fixture_users_idempotent_order_independent_and_valid(seed in any::<u64>()) {
        let users = common::users();
        let existing = common::existing_drawers();
        for (uid, u) in &users {
            let b = build(u, existing.get(uid), &common::opts());
            prop_assert!(validate(&b.drawer, &[]).is_empty(), "{}: {:?}", uid, validate(&b.drawer, &[]));
            common::plan_validator::assert_plan_accepts(&b.drawer);
            let s = build(&shuffled(u, seed), existing.get(uid), &common::opts());
            prop_assert_eq!(common::pretty(&s.drawer), common::pretty(&b.drawer));
            let again = build(&shuffled(u, seed ^ 0xabc), Some(&b.drawer), &later(&common::opts()));
            prop_assert!(!again.changed, "{} changed on re-run", uid);
            prop_assert_eq!(common::pretty(&again.drawer), common::pretty(&b.drawer));
        }
    }

    #[test]
    fn generated_users_never_panic_and_build_valid_idempotent_drawers(
        subs in prop::collection::vec((0i64..400, prop::option::of("[0-9,.a ]{0,5}"), any::<bool>()), 0..4),
        plans in prop::collection::vec((0i64..400, prop::option::of(0u8..3), any::<bool>()), 0..5),
        nplans in prop::collection::vec((0i64..400, prop::option::of(0u8..3)), 0..5),
        fups in prop::collection::vec((0i64..400, prop::option::of(0usize..6)), 0..4),
        seed in any::<u64>(),
    ) {
        let h = 3_600_000i64;
        let u = LegacyUser {
            sizes: Default::default(),
            user_id: "p".into(),
            submissions: subs.iter().enumerate().map(|(i, (t, peso, good))| {
                let mut d = doc! { "_id": format!("s{i}"), "user_id": "p", "submitted_at": at(T0 + t * h) };
                d.insert("responses", if *good { Bson::Document(doc! { "peso": peso.clone(), "edad": peso.clone() }) } else { Bson::from("bad") });
                d
            }).collect(),
            training_plans: plans.iter().enumerate().map(|(i, (t, job, dated))| {
                let mut d = doc! { "_id": format!("t{i}"), "user_id": "p", "job_id": job.map(|j| format!("j{j}")) };
                if *dated { d.insert("generated_at", at(T0 + t * h)); }
                d
            }).collect(),
            nutrition_plans: nplans.iter().enumerate().map(|(i, (t, job))| doc! {
                "_id": format!("n{i}"), "user_id": "p", "generated_at": at(T0 + t * h), "job_id": job.map(|j| format!("j{j}")),
            }).collect(),
            followups: fups.iter().enumerate().map(|(i, (t, prev))| doc! {
                "_id": format!("f{i}"), "user_id": "p", "submission_date": at(T0 + t * h),
                "previous_plan_id": prev.map(|p| format!("t{p}")), "measurements": { "peso": "7,5" },
            }).collect(),
        };
        let b = build(&u, None, &common::opts());
        prop_assert!(validate(&b.drawer, &[]).is_empty() || b.drawer.is_empty(), "{:?}", validate(&b.drawer, &[]));
        common::plan_validator::assert_plan_accepts(&b.drawer);
        let s = build(&shuffled(&u, seed), None, &common::opts());
        prop_assert_eq!(common::pretty(&s.drawer), common::pretty(&b.drawer));
        if !b.drawer.is_empty() {
            let again = build(&u, Some(&b.drawer), &later(&common::opts()));
            prop_assert!(!again.changed);
            prop_assert_eq!(undo(&b.drawer), Undo::Delete);
        }
    }
}

/// The fixture users with every ordering date written as a string, in the
/// shapes legacy data holds (RFC 3339 with `Z` or an offset, a space instead
/// of `T`, a bare day at midnight).
fn with_string_dates(u: &LegacyUser) -> LegacyUser {
    let restate = |docs: &[Document], field: &str| -> Vec<Document> {
        docs.iter()
            .enumerate()
            .map(|(i, d)| {
                let mut d = d.clone();
                if let Ok(at) = d.get_datetime(field) {
                    let t = at.to_chrono();
                    let text = match i % 4 {
                        0 => t.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
                        1 => (t + chrono::Duration::hours(1))
                            .format("%Y-%m-%dT%H:%M:%S+01:00")
                            .to_string(),
                        2 => t.format("%Y-%m-%d %H:%M:%S").to_string(),
                        _ => t.format("%Y-%m-%dT%H:%M:%S%.3f").to_string(),
                    };
                    d.insert(field, text);
                }
                d
            })
            .collect()
    };
    LegacyUser {
        sizes: Default::default(),
        user_id: u.user_id.clone(),
        submissions: restate(&u.submissions, "submitted_at"),
        followups: restate(&u.followups, "submission_date"),
        training_plans: restate(&u.training_plans, "generated_at"),
        nutrition_plans: restate(&u.nutrition_plans, "generated_at"),
    }
}

/// A drawer without what stays verbatim (`raw_payload`), for comparison.
fn without_raw_payloads(d: &Document) -> Document {
    let mut d = d.clone();
    if let Ok(services) = d.get_document_mut("services") {
        if let Ok(shared) = services.get_array_mut("shared_questionnaires") {
            for e in shared.iter_mut() {
                if let Some(e) = e.as_document_mut() {
                    e.remove("raw_payload");
                }
            }
        }
    }
    d
}

#[test]
fn legacy_string_dates_become_bson_dates_and_raw_payload_stays_verbatim() {
    // Without U15's dual-write drawer: its entry holds the legacy document
    // with BSON dates, which a string-dated copy rightly no longer equals.
    for (uid, u) in &common::users() {
        let stringly = with_string_dates(u);
        let typed = build(u, None, &common::opts());
        let b = build(&stringly, None, &common::opts());
        common::assert_dates_are_bson_dates(&b.drawer);
        common::plan_validator::assert_plan_accepts(&b.drawer);
        assert!(
            without_raw_payloads(&b.drawer) == without_raw_payloads(&typed.drawer),
            "{uid}: string dates give another drawer"
        );
        for entry in common::values_at(&b.drawer, "services.shared_questionnaires[].raw_payload") {
            let raw = entry.as_document().unwrap();
            let id = raw.get("_id").unwrap();
            let source = stringly
                .submissions
                .iter()
                .chain(&stringly.followups)
                .find(|d| d.get("_id") == Some(id));
            if let Some(source) = source {
                assert_eq!(raw, source, "{uid}: raw_payload is not verbatim");
            }
        }
    }
}

#[test]
fn an_unparsable_birth_date_is_null_with_a_warning_naming_field_and_document() {
    let mut u = user();
    u.submissions[0]
        .get_document_mut("responses")
        .unwrap()
        .insert("fecha_nacimiento", "el 3 de mayo");
    let b = build(&u, None, &common::opts());
    assert_eq!(
        b.drawer
            .get_document("profile")
            .unwrap()
            .get("fecha_nacimiento"),
        Some(&Bson::Null)
    );
    let w = b
        .warnings
        .iter()
        .find(|w| w.field == "responses.fecha_nacimiento")
        .expect("a warning for the birth date");
    assert_eq!(w.source_id, "s1");
    assert!(!format!("{b:?}").contains("warnings") || !w.to_string().contains("mayo"));
    // The answer itself stays verbatim in inicial.responses.
    let answer = common::values_at(
        &b.drawer,
        "services.training.questionnaires.inicial.responses.personal_data.fecha_nacimiento",
    );
    assert_eq!(answer, vec![&Bson::from("el 3 de mayo")]);
}

/// A legal 9 MiB submission: its drawer would be 18 MiB.
fn user_with_a_9_mib_submission() -> LegacyUser {
    let mut u = user();
    u.submissions[0]
        .get_document_mut("responses")
        .unwrap()
        .insert("comentarios_adicionales", "x".repeat(9 * 1024 * 1024));
    u
}

/// The sizes the reader fetched (`LegacyUser::sizes`) name the largest
/// document of an oversized drawer; a list without one size per document is
/// not used, and those documents are measured.
#[test]
fn the_largest_document_is_named_from_the_sizes_fetched() {
    let mut u = user_with_a_9_mib_submission();
    let stored = |docs: &[Document]| -> Vec<usize> {
        docs.iter()
            .map(|d| bson::to_vec(d).unwrap().len())
            .collect()
    };
    u.sizes = [
        stored(&u.submissions),
        stored(&u.followups),
        stored(&u.training_plans),
        stored(&u.nutrition_plans),
    ];
    // As if the first training plan had been stored larger than the submission.
    u.sizes[2][0] = 12 * 1024 * 1024;
    let plan = u.training_plans[0].get_str("_id").unwrap().to_string();
    let b = build(&u, None, &common::opts());
    let reason = &b.quarantine[0].reason;
    assert!(
        reason.contains(&format!("training_plans {plan}, 12.0 MiB")),
        "{reason}"
    );
    u.sizes[2].push(1);
    let b = build(&u, None, &common::opts());
    let reason = &b.quarantine[0].reason;
    assert!(
        reason.contains("nutrition_questionnaire_submissions s1"),
        "{reason}"
    );
}

/// Issue 8, item 7: a legal 9 MiB submission would make an 18 MiB drawer
/// (raw payload plus the ten blocks). Nothing is written for the user; every
/// document of theirs goes to quarantine with a reason that says what to do.
#[test]
fn a_drawer_mongodb_would_refuse_is_never_built() {
    let u = user_with_a_9_mib_submission();
    let b = build(&u, None, &common::opts());
    assert!(!b.changed && !b.created && b.drawer.is_empty());
    assert!(b.archived.is_empty() && b.plan_stamps.is_empty());
    let ids: Vec<String> = b
        .quarantine
        .iter()
        .map(|q| q.id.as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(ids.len(), 6, "every document of the user: {ids:?}");
    for q in &b.quarantine {
        assert!(q.reason.contains("16 MiB"), "{}", q.reason);
        assert!(
            q.reason.contains("nutrition_questionnaire_submissions s1"),
            "{}",
            q.reason
        );
        assert!(
            q.reason.contains("edn-migrate phase2 migrate all"),
            "{}",
            q.reason
        );
        assert!(!q.reason.contains("xxxx"), "a value leaks");
    }
    assert!(b
        .warnings
        .iter()
        .any(|w| w.kind == edn_migrate::drawer::WarningKind::DrawerTooLarge));
    // A drawer dual-write already made stays as it is.
    let small = build(&user(), None, &common::opts()).drawer;
    let again = build(&u, Some(&small), &later(&common::opts()));
    assert!(!again.changed);
    assert_eq!(again.drawer, small);
    // A configured limit above MongoDB's is no way around it.
    let mut o = common::opts();
    o.max_drawer_bytes = 64 * 1024 * 1024;
    assert!(build(&u, None, &o).drawer.is_empty());
}

/// `defer_measure` leaves a new drawer unmeasured: the drawer is the one a
/// measured build makes, and the check it leaves holds for its encoded
/// length exactly when the measured build archived and refused nothing.
#[test]
fn an_unmeasured_build_stands_only_where_a_measured_one_archives_nothing() {
    for limit in [common::opts().max_drawer_bytes, 1] {
        let mut measured_opts = common::opts();
        measured_opts.max_drawer_bytes = limit;
        let unmeasured_opts = BuildOptions {
            defer_measure: true,
            ..measured_opts.clone()
        };
        let mut users: Vec<LegacyUser> = common::fixtures::users().into_values().collect();
        users.push(user());
        for u in users {
            let measured = edn_migrate::drawer::build(&u, None, &measured_opts);
            let unmeasured = edn_migrate::drawer::build(&u, None, &unmeasured_opts);
            if !measured.changed {
                assert_eq!(unmeasured.deferred, None, "{}", u.user_id);
                continue;
            }
            let check = unmeasured.deferred.expect("a new drawer left unmeasured");
            let len = bson::to_vec(&unmeasured.drawer).unwrap().len();
            let plain = measured.archived.is_empty()
                && !measured
                    .warnings
                    .iter()
                    .any(|w| w.kind == edn_migrate::drawer::WarningKind::DrawerTooLarge);
            assert_eq!(check.holds(len), plain, "{} at limit {limit}", u.user_id);
            if plain {
                assert_eq!(unmeasured.drawer, measured.drawer, "{}", u.user_id);
                assert_eq!(len, measured.bytes, "{}", u.user_id);
            }
            assert_eq!(measured.deferred, None);
        }
    }
}
