//! Golden tests: the fixtures' expected drawers, checked in under
//! fixtures/expected/<user_id>.json, compared as pretty relaxed Extended JSON
//! with a line diff on failure. Besides the whole-document comparison, each
//! case asserts the facts fixtures/README.md states, independently of the files.

mod common;

use bson::{Bson, Document};
use edn_migrate::drawer::{build, validate, Built, LegacyKind};

use common::plan_validator::validate_drawer;

const USERS: [&str; 20] = [
    "1730102400123401", // U01 ordinary, round-trip types
    "1730275200456702", // U02 ordinary, follow-up measurement_type "none"
    "1730448000789003", // U03 ordinary, fecha_nacimiento a BSON date before 1970
    "1730620800234504", // U04 several initial submissions
    "1730793600567805", // U05 unmapped keys
    "1730966400890106", // U06 decimal commas
    "1731139200345607", // U07 unparsable numbers
    "1731312000678908", // U08 edad ""
    "1731484800901209", // U09 edad "treinta"
    "1731657600456710", // U10 plan _id order != date order
    "1731830400789011", // U11 e<k>_output layout
    "1732003200123412", // U12 pairing by time, unpaired nutrition plan
    "1732176000456713", // U13 follow-up linking by date / none
    "1732348800789014", // U14 plans only
    "1762976907472415", // U15 dual-write drawer
    "1732521600123416", // U16 plans already stamped by the new system
    "1732694400456717", // U17 orphan follow-up only
    "1732867200789018", // U18 ObjectId plan ids
    "1733040000123419", // U19 int64 and numeric follow-up measurements
    "1733212800456720", // U20 bad documents
];

fn built(uid: &str) -> Built {
    let users = common::users();
    let existing = common::existing_drawers();
    let user = users
        .get(uid)
        .unwrap_or_else(|| panic!("no fixture user {uid}"));
    build(user, existing.get(uid), &common::opts())
}

fn diff(expected: &str, actual: &str) -> String {
    let (e, a): (Vec<&str>, Vec<&str>) = (expected.lines().collect(), actual.lines().collect());
    let mut out = String::new();
    let mut shown = 0;
    for i in 0..e.len().max(a.len()) {
        let (x, y) = (e.get(i).copied(), a.get(i).copied());
        if x != y {
            out.push_str(&format!(
                "line {}:\n  - {}\n  + {}\n",
                i + 1,
                x.unwrap_or("<end>"),
                y.unwrap_or("<end>")
            ));
            shown += 1;
            if shown == 20 {
                out.push_str("  … (more)\n");
                break;
            }
        }
    }
    out
}

#[test]
fn expected_drawers_match() {
    let mut failures = Vec::new();
    let mut plan_rejects = Vec::new();
    for uid in USERS {
        let b = built(uid);
        let actual = common::pretty(&b.drawer) + "\n";
        let path = common::root().join(format!("fixtures/expected/{uid}.json"));
        if std::env::var_os("GOLDEN_WRITE").is_some() {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &actual).unwrap();
            continue;
        }
        let expected = std::fs::read_to_string(&path).unwrap_or_default();
        if expected != actual {
            failures.push(format!("{uid}:\n{}", diff(&expected, &actual)));
        }
        assert!(
            validate(&b.drawer, &[]).is_empty(),
            "{uid}: {:?}",
            validate(&b.drawer, &[])
        );
        plan_rejects.extend(match validate_drawer(&b.drawer) {
            Ok(errors) if errors.is_empty() => None,
            Ok(errors) => Some(format!("{uid}: {errors:?}")),
            Err(raised) => Some(format!("{uid}: raises {raised}")),
        });
    }
    assert!(
        plan_rejects.is_empty(),
        "the plan's validate_drawer rejects {} of {} drawers:\n{}",
        plan_rejects.len(),
        USERS.len(),
        plan_rejects.join("\n")
    );
    assert!(
        failures.is_empty(),
        "drawers differ from fixtures/expected:\n{}",
        failures.join("\n")
    );
}

fn get<'a>(d: &'a Document, p: &str) -> &'a Bson {
    let mut cur = d.get(p.split('.').next().unwrap()).unwrap_or(&Bson::Null);
    for k in p.split('.').skip(1) {
        cur = match cur {
            Bson::Document(x) => x.get(k).unwrap_or(&Bson::Null),
            Bson::Array(a) => k
                .parse::<usize>()
                .ok()
                .and_then(|i| a.get(i))
                .unwrap_or(&Bson::Null),
            _ => &Bson::Null,
        };
    }
    cur
}

fn ids(d: &Document, p: &str, key: &str) -> Vec<String> {
    match get(d, p) {
        Bson::Array(a) => a
            .iter()
            .map(|e| get(e.as_document().unwrap(), key).to_string())
            .collect(),
        _ => vec![],
    }
}

#[test]
fn readme_facts_u04_several_submissions() {
    let d = built("1730620800234504").drawer;
    assert_eq!(
        get(&d, "services.training.questionnaires.inicial.submission_id").as_str(),
        Some("submission_1736935200000904")
    );
    assert_eq!(
        get(&d, "profile.telefono").as_str(),
        Some("+34 611 222 333")
    );
    assert_eq!(
        get(&d, "profile.profesion").as_str(),
        Some("Jefe de ventas")
    );
    assert_eq!(
        ids(&d, "services.shared_questionnaires", "submission_id").len(),
        3
    );
}

#[test]
fn readme_facts_u06_u07_numbers() {
    let d = built("1730966400890106").drawer;
    assert_eq!(
        get(&d, "services.training.measurements.0.data.peso"),
        &Bson::Double(85.5)
    );
    assert_eq!(
        get(&d, "services.training.measurements.0.data.grasa_porcentaje"),
        &Bson::Double(18.2)
    );
    assert_eq!(
        get(&d, "services.training.measurements.1.data.peso"),
        &Bson::Double(83.2)
    );
    assert_eq!(
        get(
            &d,
            "services.training.questionnaires.inicial.responses.measurements.peso_kg"
        )
        .as_str(),
        Some("85,5")
    );
    let b = built("1731139200345607");
    assert_eq!(
        get(&b.drawer, "services.training.measurements.0.data.peso"),
        &Bson::Null
    );
    assert!(b
        .warnings
        .iter()
        .any(|w| w.source_id == "submission_1730569500000001" && w.field == "responses.peso"));
    assert!(b
        .warnings
        .iter()
        .any(|w| w.field == "measurements.grasa_porcentaje"));
}

#[test]
fn readme_facts_u10_u12_u13_plans_and_links() {
    let d = built("1731657600456710").drawer;
    assert_eq!(
        ids(
            &d,
            "services.training.snapshots",
            "plans_generated.training_plan_id"
        ),
        [
            "\"training_1736700000000010\"",
            "\"training_1733000000000010\"",
            "\"training_1731400000000010\""
        ]
    );
    let d = built("1732003200123412").drawer;
    assert_eq!(
        get(
            &d,
            "services.training.snapshots.0.plans_generated.nutrition_plan_id"
        )
        .as_str(),
        Some("nutrition_1738578000000002")
    );
    assert_eq!(
        get(
            &d,
            "services.training.snapshots.1.plans_generated.nutrition_plan_id"
        )
        .as_str(),
        Some("nutrition_1740996000000002")
    );
    let unpaired = ids(&d, "services.nutrition.plans", "plan_id");
    assert!(unpaired.contains(&"\"nutrition_1744707600000002\"".to_string()));
    let d = built("1732176000456713").drawer;
    let links: Vec<(String, String)> = ["0", "1", "2"]
        .iter()
        .map(|i| {
            let f = format!("services.training.questionnaires.followups.{i}");
            (
                get(&d, &format!("{f}.snapshot_link")).to_string(),
                get(&d, &format!("{f}.previous_snapshot_id")).to_string(),
            )
        })
        .collect();
    assert_eq!(
        links,
        [
            ("\"none\"".into(), "null".into()),
            ("\"date\"".into(), "\"snapshot_legacy_v1\"".into()),
            ("\"date\"".into(), "\"snapshot_legacy_v2\"".into())
        ]
    );
}

#[test]
fn readme_facts_u14_u15_u16_u17_u20() {
    let d = built("1732348800789014").drawer;
    assert_eq!(get(&d, "meta.status").as_str(), Some("needs_review"));
    assert_eq!(
        get(&d, "services.training.questionnaires.inicial"),
        &Bson::Null
    );
    assert_eq!(
        ids(&d, "services.training.snapshots", "snapshot_id").len(),
        2
    );
    let d = built("1762976907472415").drawer;
    assert_eq!(
        ids(&d, "services.shared_questionnaires", "submission_id")
            .iter()
            .filter(|s| s.contains("submission_1762977310000001"))
            .count(),
        1
    );
    let b = built("1732521600123416");
    assert_eq!(
        ids(
            &b.drawer,
            "services.training.snapshots",
            "plans_generated.training_plan_id"
        ),
        ["\"training_1741082400000001\""]
    );
    assert!(b
        .quarantine
        .iter()
        .any(|q| q.kind == LegacyKind::TrainingPlan
            && q.id.as_str() == Some("training_1743674400000001")));
    let b = built("1732694400456717");
    assert!(
        b.created,
        "the orphan follow-up's user gets a drawer, not 'Drawer not found'"
    );
    assert_eq!(
        get(
            &b.drawer,
            "services.training.questionnaires.followups.0.snapshot_link"
        )
        .as_str(),
        Some("none")
    );
    let b = built("1733212800456720");
    let q: Vec<_> = b
        .quarantine
        .iter()
        .map(|q| q.id.as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(
        q,
        ["submission_1739268000000001", "training_1741773600000001"]
    );
}

#[test]
fn u18_objectid_plan_ids_keep_their_type() {
    let d = built("1732867200789018").drawer;
    assert!(matches!(
        get(
            &d,
            "services.training.snapshots.1.plans_generated.training_plan_id"
        ),
        Bson::ObjectId(_)
    ));
    assert!(matches!(
        get(&d, "services.training.plans.1.plan_id"),
        Bson::ObjectId(_)
    ));
}

#[test]
fn readme_facts_u01_u02_u03_u18_u19_ordinary() {
    for uid in [
        "1730102400123401",
        "1730275200456702",
        "1730448000789003",
        "1732867200789018",
        "1733040000123419",
    ] {
        let d = built(uid).drawer;
        let links = ids(
            &d,
            "services.training.questionnaires.followups",
            "snapshot_link",
        );
        assert!(!links.is_empty(), "{uid}: no follow-ups");
        assert!(links.iter().all(|l| l == "\"plan\""), "{uid}: {links:?}");
        let paired = ids(
            &d,
            "services.training.snapshots",
            "plans_generated.nutrition_plan_id",
        );
        assert!(!paired.contains(&"null".to_string()), "{uid}: {paired:?}");
        assert_eq!(get(&d, "meta.status").as_str(), Some("active"), "{uid}");
        // docs/drawer.md "Services": nutrition plans are listed, the service
        // is not activated (the plan gives it no inicial of its own).
        assert!(!ids(&d, "services.nutrition.plans", "plan_id").is_empty());
        assert_eq!(get(&d, "services.nutrition.active"), &Bson::Boolean(false));
        assert_eq!(
            get(&d, "meta.active_services"),
            &Bson::Array(vec![Bson::from("training")])
        );
    }
    let d = built("1730275200456702").drawer;
    assert_eq!(
        get(
            &d,
            "services.training.questionnaires.followups.0.measurement_type"
        )
        .as_str(),
        Some("none")
    );
}

#[test]
fn readme_facts_u03_u19_round_trip_types() {
    // U03: fecha_nacimiento is a BSON date before 1970 (1962-03-15), kept as a date.
    let d = built("1730448000789003").drawer;
    let born = Bson::DateTime(bson::DateTime::from_millis(-246_153_600_000));
    assert_eq!(get(&d, "profile.fecha_nacimiento"), &born);
    assert_eq!(
        get(
            &d,
            "services.training.questionnaires.inicial.responses.personal_data.fecha_nacimiento"
        ),
        &born
    );
    assert_eq!(
        get(
            &d,
            "services.shared_questionnaires.0.raw_payload.responses.fecha_nacimiento"
        ),
        &born
    );
    // U19: an int64 days_since_last_plan and numeric follow-up measurements.
    let d = built("1733040000123419").drawer;
    let f = "services.training.questionnaires.followups";
    assert_eq!(
        get(&d, &format!("{f}.0.followup_id")).as_str(),
        Some("followup_1741255200000001")
    );
    assert_eq!(get(&d, &format!("{f}.0.days_since_last")), &Bson::Int64(30));
    assert_eq!(get(&d, &format!("{f}.1.days_since_last")), &Bson::Int32(30));
    assert_eq!(
        get(
            &d,
            "services.shared_questionnaires.1.raw_payload.days_since_last_plan"
        ),
        &Bson::Int64(30)
    );
    assert_eq!(
        get(&d, &format!("{f}.1.measurements.peso")),
        &Bson::Double(85.0)
    );
    assert_eq!(
        get(&d, &format!("{f}.1.measurements.grasa_porcentaje")),
        &Bson::Double(18.5)
    );
    assert_eq!(
        get(&d, &format!("{f}.1.measurements.cintura_cm")),
        &Bson::Int32(90)
    );
    let m = "services.training.measurements.2";
    assert_eq!(
        get(&d, &format!("{m}.measurement_id")).as_str(),
        Some("measure_followup_followup_1743933600000001")
    );
    assert_eq!(
        get(&d, &format!("{m}.data.cintura_cm")),
        &Bson::Double(90.0)
    );
    assert_eq!(get(&d, &format!("{m}.data.peso")), &Bson::Double(85.0));
}

#[test]
fn readme_facts_u09_u16_u17_new_drawers() {
    let b = built("1731484800901209");
    assert_eq!(get(&b.drawer, "profile.edad"), &Bson::Null);
    assert!(b
        .warnings
        .iter()
        .any(|w| w.source_id == "submission_1731157200000001" && w.field == "responses.edad"));
    let b = built("1732521600123416");
    assert!(b
        .quarantine
        .iter()
        .any(|q| q.kind == LegacyKind::NutritionPlan
            && q.id.as_str() == Some("nutrition_1743674520000002")));
    assert_eq!(
        ids(&b.drawer, "services.nutrition.plans", "plan_id"),
        ["\"nutrition_1741082520000002\""]
    );
    assert_eq!(
        get(
            &b.drawer,
            "services.training.questionnaires.followups.0.previous_snapshot_id"
        )
        .as_str(),
        Some("snapshot_legacy_v1")
    );
    // U17: only an orphan follow-up; the drawer dates from it and needs review.
    let d = built("1732694400456717").drawer;
    assert_eq!(get(&d, "meta.status").as_str(), Some("needs_review"));
    assert_eq!(
        get(&d, "meta.created_at"),
        // 2025-02-14T11:00:00Z, the follow-up's submission_date
        &Bson::DateTime(bson::DateTime::from_millis(1_739_530_800_000))
    );
    assert_eq!(get(&d, "profile.nombre_completo"), &Bson::Null);
    assert_eq!(get(&d, "services.training.active"), &Bson::Boolean(false));
}

mod plan_validator_oracle {
    use super::validate_drawer;
    use bson::{doc, Bson};

    /// The plan's own `test_validate_drawer` (section 4.4), both cases.
    #[test]
    fn the_plans_own_unit_test_passes() {
        let valid = doc! {
            "_id": "client_test", "user_id": "test", "profile": {},
            "services": { "training": {
                "active": true,
                "questionnaires": { "inicial": { "version": "1.0.0" } },
                "snapshots": [
                    { "snapshot_id": "v1", "version": 1 },
                    { "snapshot_id": "v2", "version": 2, "previous_snapshot_id": "v1" },
                ],
            } },
            "meta": {},
        };
        assert_eq!(validate_drawer(&valid), Ok(vec![]));
        let invalid = doc! {
            "_id": "client_test", "user_id": "test", "profile": {},
            "services": { "training": { "active": true, "questionnaires": {} } },
            "meta": {},
        };
        let errors = validate_drawer(&invalid).unwrap();
        assert!(
            errors[0].contains("missing inicial questionnaire"),
            "{errors:?}"
        );
    }

    #[test]
    fn python_semantics_decide_the_edges() {
        // An active nutrition service needs its own inicial.
        let d = doc! { "_id": 1, "user_id": 1, "profile": {}, "meta": {},
        "services": { "training": { "active": true, "questionnaires": { "inicial": { "a": 1 } } },
                      "nutrition": { "active": true, "plans": [] } } };
        assert_eq!(
            validate_drawer(&d).unwrap(),
            vec!["nutrition is active but missing inicial questionnaire"]
        );
        // Versions compare as numbers; gaps fail; a null `questionnaires` raises.
        let d = doc! { "_id": 1, "user_id": 1, "profile": {}, "meta": {},
        "services": { "training": { "snapshots": [
            { "snapshot_id": "a", "version": 1.0 },
            { "snapshot_id": "b", "version": 3_i64, "previous_snapshot_id": "a" } ] } } };
        assert_eq!(validate_drawer(&d).unwrap().len(), 1);
        let d = doc! { "_id": 1, "user_id": 1, "profile": {}, "meta": {},
        "services": { "training": { "active": true, "questionnaires": Bson::Null } } };
        assert!(validate_drawer(&d).is_err());
        // No services at all: the snapshot loop's `drawer["services"]` raises KeyError.
        assert!(validate_drawer(&doc! { "_id": 1 }).is_err());
    }
}
