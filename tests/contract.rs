//! The store contract: the same cases against the embedded SQLite store and
//! against the MongoDB backend talking to the wire test server.
//!
//! Every case gets a fresh database name, so cases may share one server.

mod common;

use bson::{doc, oid::ObjectId, Bson, DateTime, Document, RawDocumentBuf};
use edn_migrate::engine::plan::plan_write;
use edn_migrate::store::{
    After, FieldUpdate, Guard, IndexSpec, Ns, Op, Outcome, Patch, Pull, Push, Scan, Step, Store,
    StoreError,
};

fn ids(docs: &[Document]) -> Vec<Bson> {
    docs.iter()
        .map(|d| d.get("_id").cloned().unwrap_or(Bson::Null))
        .collect()
}

fn scan_all(store: &dyn Store, ns: &Ns, scan: &Scan) -> Vec<Document> {
    store
        .scan(ns, scan)
        .expect("scan starts")
        .collect::<Result<Vec<_>, _>>()
        .expect("scan reads")
}

fn collections_are_created_listed_and_dropped(store: &dyn Store, db: &str) {
    let a = Ns::new(db, "a");
    assert!(store.create_collection(&a).unwrap());
    assert!(
        !store.create_collection(&a).unwrap(),
        "second create reports no change"
    );
    store
        .insert_many(&Ns::new(db, "b"), &[doc! {"_id": 1}])
        .unwrap();
    assert_eq!(store.list_collections(db).unwrap(), vec!["a", "b"]);
    assert!(store.drop_collection(&a).unwrap());
    assert!(!store.drop_collection(&a).unwrap());
    assert_eq!(store.list_collections(db).unwrap(), vec!["b"]);
    assert_eq!(store.count(&a).unwrap(), 0);
    assert!(scan_all(store, &a, &Scan::by_id(10)).is_empty());
}

fn documents_keep_every_type_and_field_order(store: &dyn Store, db: &str) {
    let ns = Ns::new(db, "types");
    let original = doc! {
        "_id": ObjectId::parse_str("65a1b2c3d4e5f60718293a4b").unwrap(),
        "zeta": 1_i32,
        "alpha": 5_i64,
        "big": 9_000_000_000_i64,
        "weight": 85.0_f64,
        "when": DateTime::from_millis(1_736_000_000_123),
        "born": DateTime::from_millis(-300_000_000_000),
        "nested": { "b": [1_i32, "dos", { "tres": 3_i64 }], "a": null },
    };
    store
        .insert_many(&ns, std::slice::from_ref(&original))
        .unwrap();
    let back = store
        .get_many(&ns, &ids(std::slice::from_ref(&original)))
        .unwrap();
    assert_eq!(back.len(), 1);
    assert_eq!(
        bson::to_vec(&back[0]).unwrap(),
        bson::to_vec(&original).unwrap()
    );
}

fn duplicate_ids_are_refused(store: &dyn Store, db: &str) {
    let ns = Ns::new(db, "dups");
    store
        .insert_many(&ns, &[doc! {"_id": "x", "v": 1}])
        .unwrap();
    let err = store
        .insert_many(&ns, &[doc! {"_id": "x", "v": 2}])
        .unwrap_err();
    assert!(matches!(err, StoreError::DuplicateKey { .. }), "{err}");
    let stored = store.get_many(&ns, &[Bson::from("x")]).unwrap();
    assert_eq!(
        stored[0].get_i32("v").unwrap(),
        1,
        "the first document stays"
    );
}

fn scans_follow_id_order_across_batches(store: &dyn Store, db: &str) {
    let ns = Ns::new(db, "ordered");
    let oid = ObjectId::parse_str("65a1b2c3d4e5f60718293a4b").unwrap();
    let docs = vec![
        doc! {"_id": "b"},
        doc! {"_id": oid},
        doc! {"_id": 3_i64},
        doc! {"_id": "a"},
        doc! {"_id": 1_i32},
        doc! {"_id": 2.5_f64},
        doc! {"_id": "ab"},
    ];
    store.insert_many(&ns, &docs).unwrap();
    let seen = ids(&scan_all(store, &ns, &Scan::by_id(2)));
    let expected: Vec<Bson> = vec![
        1_i32.into(),
        2.5_f64.into(),
        3_i64.into(),
        "a".into(),
        "ab".into(),
        "b".into(),
        oid.into(),
    ];
    assert_eq!(seen, expected);
    assert_eq!(store.count(&ns).unwrap(), 7);
}

fn scans_by_field_resume_strictly_after_a_position(store: &dyn Store, db: &str) {
    let ns = Ns::new(db, "by_user");
    let docs: Vec<Document> = [
        ("p3", "u2"),
        ("p1", "u1"),
        ("p5", "u3"),
        ("p2", "u2"),
        ("p4", "u1"),
    ]
    .iter()
    .map(|(id, user)| doc! {"_id": *id, "user_id": *user})
    .collect();
    store.insert_many(&ns, &docs).unwrap();
    store
        .create_index(&ns, &IndexSpec::ascending(&["user_id"], false))
        .unwrap();
    let all = scan_all(store, &ns, &Scan::by_field("user_id", 2));
    assert_eq!(
        ids(&all),
        vec![
            Bson::from("p1"),
            "p4".into(),
            "p2".into(),
            "p3".into(),
            "p5".into()
        ]
    );
    let mut scan = Scan::by_field("user_id", 1);
    scan.after = Some(After {
        field: Some("u2".into()),
        id: "p2".into(),
    });
    assert_eq!(
        ids(&scan_all(store, &ns, &scan)),
        vec![Bson::from("p3"), "p5".into()]
    );
    let mut by_id = Scan::by_id(1);
    by_id.after = Some(After {
        field: None,
        id: "p3".into(),
    });
    assert_eq!(
        ids(&scan_all(store, &ns, &by_id)),
        vec![Bson::from("p4"), "p5".into()]
    );
}

fn upserts_replace_or_insert(store: &dyn Store, db: &str) {
    let ns = Ns::new(db, "up");
    store
        .insert_many(&ns, &[doc! {"_id": "a", "old": true}])
        .unwrap();
    store
        .upsert_many(&ns, &[doc! {"_id": "a", "v": 1}, doc! {"_id": "b", "v": 2}])
        .unwrap();
    let got = store.get_many(&ns, &["a".into(), "b".into()]).unwrap();
    let a = got.iter().find(|d| d.get_str("_id") == Ok("a")).unwrap();
    assert_eq!(
        a,
        &doc! {"_id": "a", "v": 1},
        "a replacement drops old fields"
    );
    assert_eq!(store.count(&ns).unwrap(), 2);
}

fn one(store: &dyn Store, ns: &Ns, patch: Patch) -> Outcome {
    store.patch_many(ns, &[patch]).unwrap().remove(0)
}

fn get(store: &dyn Store, ns: &Ns, id: impl Into<Bson>) -> Document {
    store.get_many(ns, &[id.into()]).unwrap().remove(0)
}

fn step(guards: Vec<Guard>, set: Vec<(&str, Bson)>) -> Step {
    Step {
        guards,
        set: set.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
        ..Step::default()
    }
}

fn patches_change_only_what_they_name(store: &dyn Store, db: &str) {
    let ns = Ns::new(db, "patched");
    let first = doc! {"_id": "d", "owner": "a", "n": 1_i32, "z": null, "e": {"a": 1, "b": 2}};
    assert!(one(store, &ns, Patch::insert(first.clone())).applied());
    assert!(
        matches!(one(store, &ns, Patch::insert(first)), Outcome::Conflict),
        "an insert over an existing _id is a conflict"
    );
    let d = Bson::from("d");
    let set_owner =
        |guard: Guard| Patch::update(d.clone(), step(vec![guard], vec![("owner", "b".into())]));
    for stale in [
        Guard::is("owner", Some(&"z".into())),
        Guard::is("gone", Some(&Bson::Null)),
        Guard::is("z", None),
        Guard::is("n", Some(&Bson::Double(1.0))),
        Guard::is("n", Some(&Bson::Int64(1))),
        Guard::is("e", Some(&Bson::Document(doc! {"b": 2, "a": 1}))),
    ] {
        assert!(
            matches!(one(store, &ns, set_owner(stale.clone())), Outcome::Conflict),
            "{stale:?} must not hold"
        );
    }
    // Another writer adds a field; a guarded write that does not name it keeps it.
    assert!(one(
        store,
        &ns,
        Patch::update(d.clone(), step(vec![], vec![("app", true.into())]))
    )
    .applied());
    let guard = Guard::is("e", Some(&Bson::Document(doc! {"a": 1, "b": 2})));
    assert!(one(store, &ns, set_owner(guard)).applied());
    let mut nested = step(vec![Guard::is("z", Some(&Bson::Null))], vec![]);
    nested.set = vec![("e.y".into(), 1.into()), ("e.c".into(), 2.into())];
    assert!(one(store, &ns, Patch::update(d.clone(), nested)).applied());
    let got = get(store, &ns, "d");
    assert_eq!(got.get_str("owner").unwrap(), "b");
    assert!(got.get_bool("app").unwrap());
    let order: Vec<&String> = got.get_document("e").unwrap().keys().collect();
    assert_eq!(
        order,
        ["a", "b", "c", "y"],
        "new fields land in path order, as MongoDB 5+ adds them"
    );

    let push = |key: &str| {
        Patch::update(
            d.clone(),
            Step {
                guards: vec![Guard::NoneOf {
                    path: "list".into(),
                    key: Some("k".into()),
                    values: vec![key.into()],
                }],
                push: vec![Push {
                    path: "list".into(),
                    entries: vec![Bson::Document(doc! {"k": key})],
                    position: None,
                }],
                ..Step::default()
            },
        )
    };
    assert!(one(store, &ns, push("app")).applied());
    assert!(one(store, &ns, push("mine")).applied());
    assert!(
        matches!(one(store, &ns, push("mine")), Outcome::Conflict),
        "keyed: never twice"
    );
    let pull = Step {
        pull: vec![Pull {
            path: "list".into(),
            key: Some("k".into()),
            values: vec!["mine".into()],
        }],
        ..Step::default()
    };
    assert!(one(store, &ns, Patch::update(d.clone(), pull)).applied());
    assert_eq!(
        get(store, &ns, "d").get_array("list").unwrap(),
        &vec![Bson::Document(doc! {"k": "app"})]
    );
    assert!(matches!(
        one(
            store,
            &ns,
            Patch::update("missing".into(), step(vec![], vec![("x", 1.into())]))
        ),
        Outcome::Conflict
    ));
}

fn guarded_deletes_spare_changed_documents(store: &dyn Store, db: &str) {
    let ns = Ns::new(db, "drawers");
    store
        .insert_many(
            &ns,
            &[
                doc! {"_id": "a", "v": 1},
                doc! {"_id": "b", "v": 1, "extra": true},
            ],
        )
        .unwrap();
    let delete = |id: &str| Patch {
        id: id.into(),
        ops: vec![Op::Delete(vec![
            Guard::is("v", Some(&Bson::Int32(1))),
            Guard::Fields(2),
        ])],
    };
    let outcomes = store
        .patch_many(&ns, &[delete("a"), delete("b"), delete("gone")])
        .unwrap();
    let applied: Vec<bool> = outcomes.iter().map(Outcome::applied).collect();
    assert_eq!(applied, vec![true, false, false], "{outcomes:?}");
    assert_eq!(
        ids(&scan_all(store, &ns, &Scan::by_id(10))),
        vec![Bson::from("b")]
    );
}

/// A drawer of about 10 MiB: twenty questionnaires of half a MiB.
fn big_drawer(entries: usize) -> Document {
    let shared: Vec<Bson> = (0..entries)
        .map(|i| {
            Bson::Document(doc! {
                "submission_id": format!("s{i}"),
                "raw_payload": { "notes": "x".repeat(512 * 1024) },
            })
        })
        .collect();
    doc! {
        "_id": "client_big",
        "user_id": "big",
        "profile": { "sexo": null },
        "services": { "shared_questionnaires": shared },
        "meta": { "updated_at": DateTime::from_millis(1) },
    }
}

fn a_10_mib_drawer_is_updated(store: &dyn Store, db: &str) {
    let ns = Ns::new(db, "client_drawers");
    let stored = big_drawer(20);
    assert!(bson::to_vec(&stored).unwrap().len() > 10 * 1024 * 1024);
    store
        .insert_many(&ns, std::slice::from_ref(&stored))
        .unwrap();
    let mut wanted = big_drawer(21);
    wanted
        .get_document_mut("profile")
        .unwrap()
        .insert("sexo", "Mujer");
    wanted
        .get_document_mut("meta")
        .unwrap()
        .insert("migration", doc! { "run_id": "r1" });
    let patch = plan_write(Some(&stored), &wanted);
    let outcome = one(store, &ns, patch);
    assert!(outcome.applied(), "{outcome:?}");
    let back = get(store, &ns, "client_big");
    assert_eq!(bson::to_vec(&back).unwrap(), bson::to_vec(&wanted).unwrap());
}

fn a_write_error_other_than_a_duplicate_key_is_refused(store: &dyn Store, db: &str) {
    let ns = Ns::new(db, "refusals");
    store
        .insert_many(&ns, &[doc! {"_id": 1, "s": "text"}, doc! {"_id": 2}])
        .unwrap();
    let onto_text = Patch::update(
        1.into(),
        Step {
            push: vec![Push {
                path: "s".into(),
                entries: vec![1.into()],
                position: None,
            }],
            ..Step::default()
        },
    );
    let fine = Patch::update(2.into(), step(vec![], vec![("ok", true.into())]));
    let outcomes = store.patch_many(&ns, &[onto_text, fine]).unwrap();
    match &outcomes[0] {
        Outcome::Refused(e @ StoreError::Refused { ns: at, id, .. }) => {
            assert_eq!(at, &ns.to_string());
            assert_eq!(id, "1");
            assert!(e.to_string().contains("--resume"), "says what to do: {e}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert!(outcomes[1].applied(), "the other document is written");
    assert_eq!(get(store, &ns, 1), doc! {"_id": 1, "s": "text"});
    // A change that would take a document past 16 MiB is refused too.
    let big = "y".repeat(9 * 1024 * 1024);
    store
        .insert_many(&ns, &[doc! {"_id": 3, "a": big.clone()}])
        .unwrap();
    let grow = Patch::update(3.into(), step(vec![], vec![("b", big.into())]));
    assert!(matches!(
        one(store, &ns, grow),
        Outcome::Refused(StoreError::Refused { .. })
    ));
    assert!(!get(store, &ns, 3).contains_key("b"));
}

fn a_user_id_clash_is_refused_with_the_index_named(store: &dyn Store, db: &str) {
    let ns = Ns::new(db, "client_drawers");
    store
        .create_index(&ns, &IndexSpec::ascending(&["user_id"], true))
        .unwrap();
    store
        .insert_many(&ns, &[doc! {"_id": "client_1", "user_id": "1"}])
        .unwrap();
    let clash = Patch::insert(doc! {"_id": "client_x", "user_id": "1"});
    match one(store, &ns, clash) {
        Outcome::Refused(StoreError::DuplicateKey { index, .. }) => assert_eq!(index, "user_id_1"),
        other => panic!("expected a user_id clash, got {other:?}"),
    }
    let same_id = Patch::insert(doc! {"_id": "client_1", "user_id": "1", "v": 2});
    assert!(
        matches!(one(store, &ns, same_id), Outcome::Conflict),
        "same _id: a race, not a clash"
    );
}

/// An insert of a document's bytes (what migrate sends a store that writes
/// BSON) stores, conflicts and clashes exactly as an insert of the document.
fn an_insert_of_bytes_is_an_insert(store: &dyn Store, db: &str) {
    let ns = Ns::new(db, "client_drawers");
    store
        .create_index(&ns, &IndexSpec::ascending(&["user_id"], true))
        .unwrap();
    let bytes = |d: &Document| RawDocumentBuf::from_document(d).unwrap();
    let first = doc! {"_id": "client_1", "user_id": "1", "n": 1_i32, "when": DateTime::from_millis(5), "e": {"b": 2, "a": [1, "x"]}};
    let insert = |d: &Document| Patch::insert_bytes(d.get("_id").unwrap().clone(), bytes(d));
    assert!(one(store, &ns, insert(&first)).applied());
    assert_eq!(
        get(store, &ns, "client_1"),
        first,
        "stored as given, field order kept"
    );
    assert!(matches!(one(store, &ns, insert(&first)), Outcome::Conflict));
    assert!(matches!(
        one(store, &ns, Patch::insert(first.clone())),
        Outcome::Conflict
    ));
    let clash = doc! {"_id": "client_x", "user_id": "1"};
    match one(store, &ns, insert(&clash)) {
        Outcome::Refused(StoreError::DuplicateKey { index, .. }) => assert_eq!(index, "user_id_1"),
        other => panic!("expected a user_id clash, got {other:?}"),
    }
    let second = doc! {"_id": "client_2", "user_id": "2", "n": 1_i32};
    let then = step(
        vec![Guard::is("n", Some(&Bson::Int32(1)))],
        vec![("n", 2_i32.into())],
    );
    let both = Patch {
        id: "client_2".into(),
        ops: vec![Op::InsertBytes(bytes(&second)), Op::Update(then)],
    };
    assert!(one(store, &ns, both).applied());
    assert_eq!(get(store, &ns, "client_2").get_i32("n"), Ok(2));
    let mut outcomes = store
        .patch_many(
            &ns,
            &[
                insert(&doc! {"_id": "client_3", "user_id": "3"}),
                insert(&first),
            ],
        )
        .unwrap()
        .into_iter();
    assert!(outcomes.next().unwrap().applied());
    assert!(matches!(outcomes.next().unwrap(), Outcome::Conflict));
}

fn field_updates_touch_only_named_fields(store: &dyn Store, db: &str) {
    let ns = Ns::new(db, "plans");
    store
        .insert_many(
            &ns,
            &[doc! {"_id": "p1", "keep": 1, "drop": 2}, doc! {"_id": "p2"}],
        )
        .unwrap();
    let matched = store
        .update_fields(
            &ns,
            &[
                FieldUpdate {
                    id: "p1".into(),
                    set: doc! {"snapshot_id": "s1"},
                    unset: vec!["drop".into()],
                },
                FieldUpdate {
                    id: "missing".into(),
                    set: doc! {"x": 1},
                    unset: vec![],
                },
            ],
        )
        .unwrap();
    assert_eq!(matched, 1);
    let p1 = store.get_many(&ns, &["p1".into()]).unwrap().remove(0);
    assert_eq!(p1, doc! {"_id": "p1", "keep": 1, "snapshot_id": "s1"});
}

fn deletes_remove_only_named_ids(store: &dyn Store, db: &str) {
    let ns = Ns::new(db, "del");
    store
        .insert_many(&ns, &[doc! {"_id": 1}, doc! {"_id": 2}, doc! {"_id": 3}])
        .unwrap();
    assert_eq!(
        store
            .delete_many(&ns, &[1.into(), 3.into(), 9.into()])
            .unwrap(),
        2
    );
    assert_eq!(
        ids(&scan_all(store, &ns, &Scan::by_id(10))),
        vec![Bson::Int32(2)]
    );
}

fn unique_indexes_are_enforced(store: &dyn Store, db: &str) {
    let ns = Ns::new(db, "client_drawers");
    let spec = IndexSpec::ascending(&["user_id"], true);
    assert!(store.create_index(&ns, &spec).unwrap());
    assert!(
        !store.create_index(&ns, &spec).unwrap(),
        "second create reports no change"
    );
    let nested = IndexSpec::ascending(&["services.training.active"], false);
    assert!(store.create_index(&ns, &nested).unwrap());
    store
        .insert_many(&ns, &[doc! {"_id": "client_1", "user_id": "1"}])
        .unwrap();
    let err = store
        .insert_many(&ns, &[doc! {"_id": "client_x", "user_id": "1"}])
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::DuplicateKey { index, .. } if index == "user_id_1"),
        "{err}"
    );
    let err = store
        .upsert_many(&ns, &[doc! {"_id": "client_y", "user_id": "1"}])
        .unwrap_err();
    assert!(matches!(err, StoreError::DuplicateKey { .. }), "{err}");
    let names: Vec<String> = store
        .list_indexes(&ns)
        .unwrap()
        .into_iter()
        .map(|i| i.name)
        .collect();
    assert_eq!(names, vec!["services.training.active_1", "user_id_1"]);
    let listed = store.list_indexes(&ns).unwrap();
    assert!(listed
        .iter()
        .any(|i| i.name == "user_id_1" && i.unique && i.keys == ["user_id"]));

    let dirty = Ns::new(db, "dirty");
    store
        .insert_many(
            &dirty,
            &[doc! {"_id": 1, "k": "same"}, doc! {"_id": 2, "k": "same"}],
        )
        .unwrap();
    let err = store
        .create_index(&dirty, &IndexSpec::ascending(&["k"], true))
        .unwrap_err();
    assert!(matches!(err, StoreError::DuplicateKey { .. }), "{err}");
}

fn renames_move_data_and_refuse_to_clobber(store: &dyn Store, db: &str) {
    let from = Ns::new(db, "follow_up_submissions");
    store.insert_many(&from, &[doc! {"_id": "f1"}]).unwrap();
    store
        .insert_many(&Ns::new(db, "taken"), &[doc! {"_id": "t"}])
        .unwrap();
    let err = store.rename_collection(&from, "taken").unwrap_err();
    assert!(matches!(err, StoreError::Exists(_)), "{err}");
    store
        .rename_collection(&from, "follow_up_submissions_DEPRECATED_20261123")
        .unwrap();
    assert_eq!(store.count(&from).unwrap(), 0);
    let renamed = Ns::new(db, "follow_up_submissions_DEPRECATED_20261123");
    assert_eq!(store.count(&renamed).unwrap(), 1);
    let err = store.rename_collection(&from, "again").unwrap_err();
    assert!(matches!(err, StoreError::Missing(_)), "{err}");
}

fn every_user_id_type_is_scanned_and_resumed(store: &dyn Store, db: &str) {
    let ns = Ns::new(db, "mixed");
    let oid = ObjectId::parse_str("65a1b2c3d4e5f60718293a4b").unwrap();
    let docs = vec![
        doc! {"_id": "s1", "user_id": "u1"},
        doc! {"_id": "s2", "user_id": "u2"},
        doc! {"_id": "n1", "user_id": 5_i32},
        doc! {"_id": "n2", "user_id": 2.5_f64},
        doc! {"_id": "o1", "user_id": oid},
        doc! {"_id": "b1", "user_id": true},
        doc! {"_id": "d1", "user_id": DateTime::from_millis(1_700_000_000_000)},
        doc! {"_id": "e1", "user_id": {"a": 1}},
        doc! {"_id": "a1", "user_id": ["x"]},
        doc! {"_id": "z1", "user_id": null},
        doc! {"_id": "m1"},
    ];
    store.insert_many(&ns, &docs).unwrap();
    store
        .create_index(&ns, &IndexSpec::ascending(&["user_id", "_id"], false))
        .unwrap();
    let order = |after: Option<After>| -> Vec<String> {
        let mut scan = Scan::by_field("user_id", 2);
        scan.after = after;
        scan_all(store, &ns, &scan)
            .iter()
            .map(|d| d.get_str("_id").unwrap().to_string())
            .collect()
    };
    // Missing and null first, then numbers, strings, documents, arrays,
    // ObjectIds, booleans, dates: MongoDB's order of types.
    assert_eq!(
        order(None),
        ["m1", "z1", "n2", "n1", "s1", "s2", "e1", "a1", "o1", "b1", "d1"]
    );
    let after_user = |user: &str, id: Bson| {
        Some(After {
            field: Some(user.into()),
            id,
        })
    };
    assert_eq!(
        order(after_user("u1", Bson::MaxKey)),
        ["s2", "e1", "a1", "o1", "b1", "d1"],
        "a resume after a string user reads every later type"
    );
    assert_eq!(
        order(after_user("u2", "s2".into())),
        ["e1", "a1", "o1", "b1", "d1"]
    );
    let after_null = Some(After {
        field: Some(Bson::Null),
        id: "m1".into(),
    });
    assert_eq!(
        order(after_null),
        ["z1", "n2", "n1", "s1", "s2", "e1", "a1", "o1", "b1", "d1"]
    );
}

fn an_index_is_the_same_only_if_keys_and_options_are(store: &dyn Store, db: &str) {
    let ns = Ns::new(db, "client_drawers");
    let plain = IndexSpec::ascending(&["user_id"], false);
    assert!(store.create_index(&ns, &plain).unwrap());
    assert!(
        !store.create_index(&ns, &plain).unwrap(),
        "the same index again: nothing to do"
    );
    let unique = IndexSpec::ascending(&["user_id"], true);
    let err = store.create_index(&ns, &unique).unwrap_err();
    assert!(
        matches!(&err, StoreError::IndexConflict { name, .. } if name == "user_id_1"),
        "a non-unique user_id_1 is reported, not accepted: {err}"
    );
    assert!(
        err.to_string().contains("dropIndex"),
        "says what to do: {err}"
    );
    let renamed = IndexSpec {
        name: "uid".into(),
        ..plain.clone()
    };
    assert!(matches!(
        store.create_index(&ns, &renamed).unwrap_err(),
        StoreError::IndexConflict { .. }
    ));
    let listed = store.list_indexes(&ns).unwrap();
    assert_eq!(listed, vec![plain]);
}

fn indexes_and_the_drawer_side_come_back_from_a_backup(store: &dyn Store, db: &str) {
    use edn_migrate::backup::{self, RestoreOptions};
    use edn_migrate::config::Config;
    let config = Config::new("contract", &format!("{db}_l"), &format!("{db}_d"));
    let drawers = config.drawers_ns();
    let submissions = config.legacy(&config.submissions);
    store
        .insert_many(&drawers, &[doc! {"_id": "client_1", "user_id": "1"}])
        .unwrap();
    store
        .insert_many(&submissions, &[doc! {"_id": "s1", "user_id": "1"}])
        .unwrap();
    let specs = [
        IndexSpec::ascending(&["user_id"], true),
        IndexSpec {
            name: "recent".into(),
            keys: vec!["meta.updated_at".into(), "user_id".into()],
            descending: vec!["meta.updated_at".into()],
            ..IndexSpec::default()
        },
        IndexSpec {
            name: "expiring".into(),
            keys: vec!["meta.expires_at".into()],
            expire_after_seconds: Some(3600),
            ..IndexSpec::default()
        },
        IndexSpec {
            name: "active_only".into(),
            keys: vec!["services.training.active".into()],
            partial_filter: Some(doc! {"services.training.active": true}),
            ..IndexSpec::default()
        },
        IndexSpec {
            name: "email_sparse".into(),
            keys: vec!["profile.email".into()],
            sparse: true,
            ..IndexSpec::default()
        },
    ];
    for spec in &specs {
        store.create_index(&drawers, spec).unwrap();
    }
    let before = store.list_indexes(&drawers).unwrap();
    let mut wanted = specs.to_vec();
    wanted.sort_by(|a, b| a.name.cmp(&b.name));
    assert_eq!(before, wanted, "the store keeps every option it was given");
    let dir = tempfile::tempdir().unwrap();
    backup::create(store, &config, dir.path(), chrono::Utc::now()).unwrap();
    let id = backup::latest_verified(dir.path()).unwrap().unwrap().id;

    store.drop_collection(&drawers).unwrap();
    store
        .insert_many(&submissions, &[doc! {"_id": "s2", "user_id": "2"}])
        .unwrap();
    let plan = backup::restore_plan(store, &config, dir.path(), &id, false).unwrap();
    assert!(
        plan.text.contains("--include-legacy") && plan.text.contains("client_drawers"),
        "says what it overwrites and what it leaves: {}",
        plan.text
    );
    backup::restore(store, &config, dir.path(), &id, &RestoreOptions::default()).unwrap();
    assert_eq!(
        store.list_indexes(&drawers).unwrap(),
        before,
        "indexes come back exactly"
    );
    assert_eq!(store.count(&drawers).unwrap(), 1);
    assert_eq!(
        store.count(&submissions).unwrap(),
        2,
        "the legacy side (the application's) is left alone by default"
    );
    let lock = store
        .get_many(&config.drawer("migration_lock"), &["phase2".into()])
        .unwrap();
    assert_eq!(
        lock[0].get_bool("released"),
        Ok(true),
        "restored under the lock"
    );
    let runs = scan_all(store, &config.drawer("migration_runs"), &Scan::by_id(10));
    assert!(
        runs.iter().any(|r| r.get_str("outcome") == Ok("succeeded")
            && r.get_str("command")
                .is_ok_and(|c| c.contains("--from-backup"))),
        "the restore has a run record: {runs:?}"
    );
}

/// Generates one `#[test]` per contract case for a backend.
macro_rules! contract {
    ($backend:ident, $open:path) => {
        mod $backend {
            use super::*;
            macro_rules! case {
                ($name:ident) => {
                    #[test]
                    fn $name() {
                        let Some((store, db)) = $open(stringify!($name)) else {
                            return;
                        };
                        super::$name(store.as_ref(), &db);
                    }
                };
            }
            case!(collections_are_created_listed_and_dropped);
            case!(documents_keep_every_type_and_field_order);
            case!(duplicate_ids_are_refused);
            case!(scans_follow_id_order_across_batches);
            case!(scans_by_field_resume_strictly_after_a_position);
            case!(upserts_replace_or_insert);
            case!(patches_change_only_what_they_name);
            case!(guarded_deletes_spare_changed_documents);
            case!(a_10_mib_drawer_is_updated);
            case!(a_write_error_other_than_a_duplicate_key_is_refused);
            case!(a_user_id_clash_is_refused_with_the_index_named);
            case!(an_insert_of_bytes_is_an_insert);
            case!(every_user_id_type_is_scanned_and_resumed);
            case!(an_index_is_the_same_only_if_keys_and_options_are);
            case!(indexes_and_the_drawer_side_come_back_from_a_backup);
            case!(field_updates_touch_only_named_fields);
            case!(deletes_remove_only_named_ids);
            case!(unique_indexes_are_enforced);
            case!(renames_move_data_and_refuse_to_clobber);
        }
    };
}

contract!(sqlite, common::sqlite_store);
contract!(mongo_wire, common::wire_store);
