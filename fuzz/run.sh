#!/usr/bin/env bash
# Fuzz strata's decoders with cargo-fuzz (libFuzzer), each target for N seconds.
#
#   fuzz/run.sh [SECONDS_PER_TARGET] [TARGET...]     (default: 60 s, all targets)
#
# Needs `cargo install cargo-fuzz`. cargo-fuzz wants nightly for its
# coverage flags; on a stable toolchain RUSTC_BOOTSTRAP=1 unlocks them (set
# here). The first build compiles every dependency with coverage
# instrumentation (several minutes); all targets are built at once, and
# fuzz/target/ keeps the build for the next run.
#
# No sanitizer (`--sanitizer none`): strata and its Rust dependencies forbid
# or avoid unsafe code, so AddressSanitizer has little to find in them, and
# the C code (SQLite, zstd, aws-lc) is not instrumented by it anyway; what
# the targets look for is a panic, a hang or unbounded memory, which
# libFuzzer reports without one. It also removes LeakSanitizer, whose
# reports on the index_rebuild and repo_model targets were the thread-local
# destructors of threads alive at exit (the tokio runtime of `memory://`,
# rayon's pool), not leaks of strata's data, and a third of the build time.
# Each target reads the checked-in seeds in fuzz/seeds/<target>/ (hostile
# values written by tests/it/decoders.rs, model sequences by tests/it/repo_model.rs)
# and its local corpus fuzz/corpus/<target>/, which starts from the test
# vectors in format-spec/vectors/repo and gains the new inputs; crashes land
# in fuzz/artifacts/<target>/ (corpus and artifacts are git-ignored). A crash
# fixed goes into fuzz/seeds/<target>/ with its fix. Exits non-zero if any
# target finds a crash.
set -euo pipefail
cd "$(dirname "$0")"
secs="${1:-60}"
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(pack_trailer object_envelope tree_decode index_rebuild repo_model)
vectors=../format-spec/vectors/repo
export RUSTC_BOOTSTRAP=1

u32_at() { od -An -tu4 -j "$2" -N4 "$1" | tr -d ' '; }
u64_at() { od -An -tu8 -j "$2" -N8 "$1" | tr -d ' '; }
u8_at() { od -An -tu1 -j "$2" -N1 "$1" | tr -d ' '; }

seed() {
    mkdir -p corpus/pack_trailer corpus/object_envelope corpus/tree_decode \
        corpus/index_rebuild corpus/repo_model
    cp "$vectors"/packs/*/* corpus/pack_trailer/
    # index_rebuild: a first byte 0 = plaintext repository, 1 = encrypted
    local v
    for v in "$vectors"/packs/*/*; do
        { printf '\0'; cat "$v"; } >"corpus/index_rebuild/$(basename "$v" | cut -c1-8)-0"
        { printf '\1'; cat "$v"; } >"corpus/index_rebuild/$(basename "$v" | cut -c1-8)-1"
    done
    cp "$vectors"/config "$vectors"/snapshots/* corpus/object_envelope/
    # tree blobs stored raw (compression 0) in the vector packs (pack.md byte map)
    local p len count i e off stored kind comp
    for p in "$vectors"/packs/*/*; do
        len=$(stat -c %s "$p")
        count=$(u32_at "$p" $((len - 44)))
        for ((i = 0; i < count; i++)); do
            e=$((len - 44 - 52 * (count - i)))
            off=$(u64_at "$p" $((e + 32)))
            stored=$(u32_at "$p" $((e + 40)))
            kind=$(u8_at "$p" $((e + 48)))
            comp=$(u8_at "$p" $((e + 49)))
            if [ "$kind" = 1 ] && [ "$comp" = 0 ]; then
                tail -c +$((off + 1)) "$p" | head -c "$stored" \
                    >"corpus/tree_decode/$(basename "$p" | cut -c1-8)-$i"
            fi
        done
    done
}

seed
status=0
# FUZZ_TARGET_DIR: where the build goes (default fuzz/target); .ci/run
# points it outside the clone so that the next CI run on this machine
# reuses it. 16 codegen units: cargo-fuzz's default of 1 makes the large
# crates compile on one core.
build_opts=(--sanitizer none --codegen-units 16 --target-dir "${FUZZ_TARGET_DIR:-target}")
echo "== cargo fuzz build (every target, no sanitizer)"
cargo fuzz build "${build_opts[@]}"
mkdir -p logs
for t in "${targets[@]}"; do
    echo "== $t: ${secs}s"
    mkdir -p "seeds/$t"
    if ! cargo fuzz run "${build_opts[@]}" "$t" "corpus/$t" "seeds/$t" -- \
        -max_total_time="$secs" -rss_limit_mb=4096 -print_final_stats=1 >"logs/$t.log" 2>&1; then
        tail -40 "logs/$t.log"
        echo "== $t: FAILED (see fuzz/artifacts/$t/, fuzz/logs/$t.log)"
        status=1
    fi
    # runs and corpus size (libFuzzer's final stats)
    grep -E '^stat::(number_of_executed_units|peak_rss_mb)|^#[0-9]+ +DONE' "logs/$t.log" || true
done
exit $status
