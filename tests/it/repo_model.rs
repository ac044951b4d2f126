//! The model-based repository check of `tests/model` (also the fuzz target
//! `repo_model`) in `cargo test`: seeded random step sequences — edits,
//! snapshot, forget, gc, restore, check, with injected backend faults — on
//! `memory://`, each compared with the model after every step. More
//! sequences: `STRATA_MODEL_RUNS=500 cargo test --test it repo_model::`.

use crate::model;
use crate::support;

use support::Rng;

/// The library reads the user's cache directory and the gc grace period
/// from the environment, which a test cannot change in its own process:
/// each test body runs in a child of the test binary with
/// `STRATA_CACHE_DIR=""` and `STRATA_GC_GRACE=0s` (what tests/model needs).
const MODEL_ENV: &[(&str, &str)] = &[("STRATA_GC_GRACE", "0s")];

/// The input of sequence `seed`: 8..128 random bytes.
fn input_for(seed: u64) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    let len = 8 + rng.below(120) as usize;
    rng.bytes(len)
}

fn run_seed(seed: u64) -> model::Summary {
    let input = input_for(seed);
    let dir = tempfile::tempdir().unwrap();
    match model::run(&input, dir.path()) {
        Ok(s) => s,
        Err(e) => panic!("seed {seed} (input {input:02x?}): {e}"),
    }
}

#[test]
fn random_sequences_match_the_model() {
    if !support::in_child_without_cache("repo_model::random_sequences_match_the_model", MODEL_ENV) {
        return;
    }
    let runs: u64 = std::env::var("STRATA_MODEL_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let mut total = model::Summary::default();
    for seed in 0..runs {
        let s = run_seed(seed);
        total.steps += s.steps;
        total.faults += s.faults;
        total.failed += s.failed;
        total.adopted += s.adopted;
        total.snapshots += s.snapshots;
    }
    eprintln!("{runs} sequences: {total:?}");
    // the sequences did reach the repository, with faults that bit
    assert!(
        total.steps > 5 * runs as usize && total.snapshots > 0,
        "{total:?}"
    );
    assert!(total.failed > 0, "{total:?}");
}

#[test]
fn a_sequence_replays_identically() {
    if !support::in_child_without_cache("repo_model::a_sequence_replays_identically", MODEL_ENV) {
        return;
    }
    // deterministic for a given input (what a fuzz crash reproducer needs)
    let a = run_seed(7);
    let b = run_seed(7);
    assert_eq!(format!("{a:?}"), format!("{b:?}"));
}

/// The first sequences are the checked-in seeds of the fuzz target
/// (`fuzz/seeds/repo_model/`); `STRATA_WRITE_FUZZ_SEEDS=1 cargo test --test
/// it repo_model::fuzz_seeds` writes them after a change.
#[test]
fn fuzz_seeds_hold_model_sequences() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/repo_model");
    let write = std::env::var_os("STRATA_WRITE_FUZZ_SEEDS").is_some();
    for seed in 0..8 {
        let p = dir.join(format!("seq-{seed}"));
        let b = input_for(seed);
        if write {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&p, &b).unwrap();
        }
        assert!(
            std::fs::read(&p).unwrap_or_default() == b,
            "{} differs: run STRATA_WRITE_FUZZ_SEEDS=1 cargo test --test it repo_model::fuzz_seeds",
            p.display()
        );
    }
}

/// `STRATA_MODEL_SEED=N cargo test --test it repo_model::one_seed -- --ignored`
/// (with `STRATA_MODEL_TRACE=1` to see the steps).
#[test]
#[ignore]
fn one_seed() {
    if !support::in_child_without_cache("repo_model::one_seed", MODEL_ENV) {
        return;
    }
    let seed = std::env::var("STRATA_MODEL_SEED").unwrap().parse().unwrap();
    eprintln!("{:?}", run_seed(seed));
}
