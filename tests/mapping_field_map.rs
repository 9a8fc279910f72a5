//! The field map: start-up checks, the plan's own example, lossless round trip.

use bson::{doc, Bson, Document};
use edn_migrate::mapping::{FieldMap, FieldMapError, BLOCKS};
use proptest::prelude::*;

fn map() -> &'static FieldMap {
    FieldMap::builtin().expect("the shipped field map is valid")
}

const HEADER: &str = "flat_key,block,path\n";

#[test]
fn duplicate_keys_are_refused() {
    let text = format!("{HEADER}peso,measurements,peso_kg\npeso,measurements,otro\n");
    assert!(matches!(
        FieldMap::parse(&text),
        Err(FieldMapError::DuplicateKey {
            line: 3,
            first_line: 2,
            ..
        })
    ));
}

#[test]
fn unknown_blocks_are_refused() {
    let text = format!("{HEADER}peso,measurement,peso_kg\n");
    assert!(matches!(
        FieldMap::parse(&text),
        Err(FieldMapError::UnknownBlock { line: 2, .. })
    ));
}

#[test]
fn conflicting_paths_are_refused() {
    for rows in [
        "a,health,x.y\nb,health,x.y\n",   // same place
        "a,health,x\nb,health,x.y\n",     // inside another's value
        "a,health,x.y.z\nb,health,x.y\n", // the other way round
    ] {
        let err = FieldMap::parse(&format!("{HEADER}{rows}")).unwrap_err();
        assert!(
            matches!(err, FieldMapError::ConflictingPath { line: 3, .. }),
            "{rows}: {err}"
        );
    }
    // Same path in two different blocks is fine.
    assert!(FieldMap::parse(&format!("{HEADER}a,health,x\nb,goals,x\n")).is_ok());
}

#[test]
fn reserved_unmapped_path_and_syntax_errors_are_refused() {
    assert!(matches!(
        FieldMap::parse(&format!("{HEADER}a,additional_info,unmapped.x\n")),
        Err(FieldMapError::ReservedPath { line: 2 })
    ));
    assert!(matches!(
        FieldMap::parse(&format!("{HEADER}a,health\n")),
        Err(FieldMapError::Syntax { line: 2, .. })
    ));
    assert!(matches!(
        FieldMap::parse(&format!("{HEADER}a,health,x..y\n")),
        Err(FieldMapError::Syntax { line: 2, .. })
    ));
    assert!(matches!(
        FieldMap::parse("a,health,x\n"),
        Err(FieldMapError::BadHeader { line: 1 })
    ));
    assert!(matches!(FieldMap::parse(HEADER), Err(FieldMapError::Empty)));
    // Errors print the line so a reviewer can find it.
    let err = FieldMap::parse(&format!("# c\n{HEADER}a,nope,x\n")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "line 3: unknown block `nope` (expected one of the ten blocks)"
    );
}

#[test]
fn the_plans_own_example_maps_verbatim() {
    // Plan section 4.4, test_build_hierarchical_questionnaire.
    let flat = doc! {
        "nombre_completo": "Jorge Calcerrada",
        "peso": "85",
        "altura_cm": "178",
        "objetivo_fisico": "Perder grasa",
        "dias_semana_entrenar": "4",
    };
    let blocks = map().to_blocks(&flat);
    assert_eq!(
        blocks.keys().map(String::as_str).collect::<Vec<_>>(),
        BLOCKS.to_vec()
    );
    assert_eq!(
        blocks.get_document("personal_data").unwrap(),
        &doc! { "nombre_completo": "Jorge Calcerrada" }
    );
    // Verbatim: the plan's test expects the string "85", not a number.
    assert_eq!(
        blocks.get_document("measurements").unwrap(),
        &doc! { "peso_kg": "85", "altura_cm": "178" }
    );
    assert_eq!(
        blocks.get_document("goals").unwrap(),
        &doc! { "primary_objective": "Perder grasa" }
    );
    assert_eq!(
        blocks.get_document("availability").unwrap(),
        &doc! { "training_schedule": { "days_per_week": "4" } }
    );
    assert_eq!(map().to_flat(&blocks), flat);
}

#[test]
fn unmapped_keys_are_kept_not_dropped() {
    // The reference helper logs unmapped keys and drops them.
    let flat = doc! { "peso": "80", "color_favorito": "azul", "a.b": 1, "": "", "additional_info": { "x": 1 } };
    let blocks = map().to_blocks(&flat);
    let unmapped = blocks
        .get_document("additional_info")
        .unwrap()
        .get_document("unmapped")
        .unwrap();
    assert_eq!(
        unmapped,
        &doc! { "color_favorito": "azul", "a.b": 1, "": "", "additional_info": { "x": 1 } }
    );
    assert_eq!(
        map().unmapped_keys(&flat),
        vec!["color_favorito", "a.b", "", "additional_info"]
    );
    assert_eq!(map().to_flat(&blocks), flat);
}

#[test]
fn an_empty_questionnaire_still_has_ten_blocks() {
    let blocks = map().to_blocks(&Document::new());
    assert_eq!(blocks.len(), 10);
    assert!(blocks
        .values()
        .all(|b| b.as_document().is_some_and(Document::is_empty)));
    assert_eq!(map().to_flat(&blocks), Document::new());
}

fn arb_leaf() -> impl Strategy<Value = Bson> {
    prop_oneof![
        Just(Bson::Null),
        any::<bool>().prop_map(Bson::Boolean),
        any::<i32>().prop_map(Bson::Int32),
        any::<i64>().prop_map(Bson::Int64),
        (-1e9f64..1e9).prop_map(Bson::Double),
        ".{0,12}".prop_map(Bson::String),
    ]
}

fn arb_value() -> impl Strategy<Value = Bson> {
    arb_leaf().prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Bson::Array),
            prop::collection::vec(("[a-z._]{0,6}", inner), 0..4)
                .prop_map(|kv| Bson::Document(kv.into_iter().collect())),
        ]
    })
}

/// Keys drawn from the real table, from names that collide with blocks and
/// paths, with dots, empty, and random text.
fn arb_key() -> impl Strategy<Value = String> {
    let real: Vec<String> = [
        "peso",
        "edad",
        "cintura_cm",
        "cadera_cm",
        "medicamentos",
        "comentarios_adicionales",
        "hernias_protusiones",
        "personal_data",
        "additional_info",
        "unmapped",
        "peso_kg",
        "circunferencias",
        "circunferencias.cintura_cm",
        "measurements.peso_kg",
        "",
        "additional_info.unmapped",
        "$x",
        "a.b.c",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    // BSON keys cannot hold NUL, so real documents never have one.
    prop_oneof![prop::sample::select(real), "[^\\x00]{0,10}"]
}

fn arb_flat() -> impl Strategy<Value = Document> {
    prop::collection::vec((arb_key(), arb_value()), 0..12).prop_map(|kv| kv.into_iter().collect())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn round_trip_is_lossless_for_any_flat_document(flat in arb_flat()) {
        let blocks = map().to_blocks(&flat);
        prop_assert_eq!(blocks.len(), 10);
        let back = map().to_flat(&blocks);
        // Same keys and values (bson's Document equality ignores order) …
        prop_assert_eq!(&back, &flat);
        // … and byte-equal once both are put in key order, so types are kept too.
        let sorted = |d: &Document| {
            let mut kv: Vec<_> = d.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            kv.sort_by(|a, b| a.0.cmp(&b.0));
            bson::to_vec(&kv.into_iter().collect::<Document>()).unwrap()
        };
        prop_assert_eq!(sorted(&back), sorted(&flat));
    }
}
