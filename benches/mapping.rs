//! Throughput of mapping and building on realistic documents (the fixtures'
//! users), on one thread. Criterion prints `thrpt` in elements (documents)
//! per second.
//!
//! `EDN_BENCH_DATA=DIR` builds from generated data instead (a folder written
//! by `examples/gen_legacy.rs`, e.g. `target/bench/gen-default-10000` after
//! `scripts/bench_migrate.sh`), its first 2,000 users.
//!
//! Each legacy document comes with its encoded size, as migrate's reader
//! hands them to the builder (it knows them from the bytes it fetched);
//! without it the builder measures each document itself.

use std::collections::BTreeMap;

use bson::Document;
use criterion::{criterion_group, BatchSize, Criterion, Throughput};
use edn_migrate::drawer::{build, build_owned, BuildOptions, LegacyKind, LegacyUser};
use edn_migrate::mapping::FieldMap;
use edn_migrate::{encoded, extjson};

/// The binary's allocator: the builder allocates for every field it copies,
/// so timing it on the system allocator measured something that never ships.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Users taken from generated data (`EDN_BENCH_DATA`).
const GENERATED_USERS: usize = 2000;

fn read(rel: &str) -> Vec<Document> {
    let dir = std::env::var("EDN_BENCH_DATA")
        .unwrap_or_else(|_| format!("{}/fixtures/legacy", env!("CARGO_MANIFEST_DIR")));
    let path = format!("{dir}/test_database/{rel}.jsonl");
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .take(10 * GENERATED_USERS)
        .filter_map(|l| extjson::parse_line(l).ok())
        .collect()
}

fn users() -> Vec<LegacyUser> {
    let mut out: BTreeMap<String, LegacyUser> = BTreeMap::new();
    for (coll, kind) in [
        (
            "nutrition_questionnaire_submissions",
            LegacyKind::Submission,
        ),
        ("follow_up_submissions", LegacyKind::Followup),
        ("training_plans", LegacyKind::TrainingPlan),
        ("nutrition_plans", LegacyKind::NutritionPlan),
    ] {
        for d in read(coll) {
            let Ok(uid) = d.get_str("user_id") else {
                continue;
            };
            let u = out.entry(uid.to_owned()).or_insert_with(|| LegacyUser {
                user_id: uid.to_owned(),
                ..Default::default()
            });
            // Sized as the reader sizes them, from the bytes it fetched.
            let size = encoded::doc_len(&d).expect("a document that encodes");
            u.push_sized(kind, d, size);
        }
    }
    out.into_values().take(GENERATED_USERS).collect()
}

/// The same clock and run id for every build, so that runs compare.
fn options() -> BuildOptions {
    BuildOptions::new(bson::DateTime::from_millis(1_767_225_600_000), "bench")
}

fn benches(c: &mut Criterion) {
    let map = FieldMap::builtin().expect("field map");
    let responses: Vec<Document> = read("nutrition_questionnaire_submissions")
        .into_iter()
        .filter_map(|d| d.get_document("responses").ok().cloned())
        .collect();
    let mut g = c.benchmark_group("mapping");
    g.throughput(Throughput::Elements(responses.len() as u64));
    g.bench_function("to_blocks+to_flat per questionnaire", |b| {
        b.iter(|| {
            for r in &responses {
                std::hint::black_box(map.to_flat(&map.to_blocks(r)));
            }
        })
    });
    g.finish();

    let users = users();
    let docs: usize = users
        .iter()
        .map(|u| {
            u.submissions.len()
                + u.followups.len()
                + u.training_plans.len()
                + u.nutrition_plans.len()
        })
        .sum();
    let opts = options();
    let mut g = c.benchmark_group("build");
    g.throughput(Throughput::Elements(docs as u64));
    g.bench_function("build per legacy document", |b| {
        b.iter(|| {
            for u in &users {
                std::hint::black_box(build(u, None, &opts));
            }
        })
    });
    // What migration pays: the users are its own, so they move into their
    // drawers (the copy is made outside the timing; the drawers' drop is in it).
    g.bench_function("build_owned per legacy document", |b| {
        b.iter_batched(
            || users.clone(),
            |users| {
                for u in users {
                    std::hint::black_box(build_owned(u, None, &opts));
                }
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

criterion_group!(mapping, benches);

/// `EDN_BENCH_ONCE=1`: build every user once and stop, for counting the
/// builder's instructions (`valgrind --tool=callgrind
/// --toggle-collect='*build_owned*'`), which a noisy host cannot blur.
fn main() {
    if std::env::var_os("EDN_BENCH_ONCE").is_some() {
        let opts = options();
        for u in users() {
            std::hint::black_box(build_owned(u, None, &opts));
        }
        return;
    }
    mapping();
    Criterion::default().configure_from_args().final_summary();
}
