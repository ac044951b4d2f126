#!/usr/bin/env bash
# `strata check --read-data` against `restic check --read-data` on the same
# data: medians of interleaved rounds (README "Checking a repository").
#
#   benches/check.sh
#
# Two data sets: gen_seedlike.py day 0 (compressible, many small files) and
# 300 MB of random bytes (incompressible). Each is backed up once into a
# strata repository (encrypted, the default), a strata `--no-encryption`
# repository and a restic repository; then ROUNDS rounds run every check
# once each, the order rotating per round. Wall time and peak RSS by
# /usr/bin/time; the page cache is warm (every repository was just
# written and is read once before the rounds).
#
# Environment: ROUNDS=5, BENCH_DIR=/tmp/strata-check-bench (wiped),
# STRATA_BIN (else `cargo build --release`). Installs restic and time (apt)
# if missing.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS="${ROUNDS:-5}"
B="${BENCH_DIR:-/tmp/strata-check-bench}"
GEN="$PWD/../shared/bench/gen_seedlike.py"
if [[ -n "${STRATA_BIN:-}" ]]; then
  S="$STRATA_BIN"
else
  cargo build --release --quiet
  S="$PWD/target/release/strata"
fi
for tool in restic /usr/bin/time; do
  command -v "$tool" >/dev/null 2>&1 || {
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq restic time >/dev/null
  }
done
export STRATA_PASSWORD=bench RESTIC_PASSWORD=bench STRATA_CACHE_DIR="$B/cache" RESTIC_CACHE_DIR="$B/restic-cache"
case "$B" in /|"") exit 1 ;; esac
rm -rf "$B"
mkdir -p "$B/seedlike" "$B/random"
python3 "$GEN" "$B/seedlike/data" --day 0 >/dev/null
head -c 300000000 /dev/urandom >"$B/random/data"
for d in seedlike random; do
  "$S" --repo "$B/$d/senc" init >/dev/null 2>&1
  "$S" --repo "$B/$d/senc" snapshot "$B/$d/data" >/dev/null
  "$S" --repo "$B/$d/splain" init --no-encryption >/dev/null 2>&1
  "$S" --repo "$B/$d/splain" snapshot "$B/$d/data" >/dev/null
  restic init --repo "$B/$d/restic" >/dev/null 2>&1
  restic --repo "$B/$d/restic" backup "$B/$d/data" >/dev/null 2>&1
done
results="$B/results.tsv"
: >"$results"
# run NAME DATA CMD...: one timed check, appended to results
run() {
  local name="$1" data="$2"
  shift 2
  /usr/bin/time -f '%e %M' -o "$B/time" "$@" >"$B/out" 2>&1 || {
    echo "check failed: $*" >&2
    cat "$B/out" >&2
    exit 1
  }
  printf '%s\t%s\t%s\t%s\n' "$data" "$name" $(cat "$B/time") >>"$results"
}
variants=(strata strata-plain restic)
for d in seedlike random; do # warm-up, not counted
  "$S" --repo "$B/$d/senc" check --read-data >/dev/null
  restic --repo "$B/$d/restic" check --read-data >/dev/null 2>&1
done
load_start="$(cut -d' ' -f1-3 /proc/loadavg)"
for ((r = 0; r < ROUNDS; r++)); do
  for d in seedlike random; do
    for ((i = 0; i < 3; i++)); do
      case "${variants[(i + r) % 3]}" in
        strata) run strata "$d" "$S" --repo "$B/$d/senc" check --read-data ;;
        strata-plain) run strata-plain "$d" "$S" --repo "$B/$d/splain" check --read-data ;;
        restic) run restic "$d" restic --repo "$B/$d/restic" check --read-data ;;
      esac
    done
  done
done
echo "strata $("$S" --version | cut -d' ' -f2), $(restic version | cut -d' ' -f1-2); $(nproc) cores; load average at start $load_start, at end $(cut -d' ' -f1-3 /proc/loadavg); $ROUNDS interleaved rounds"
echo
echo "| data | repository | tool | wall time, median (min–max) (s) | peak RSS, max (MiB) | repository (bytes) |"
echo "|---|---|---|---:|---:|---:|"
for d in seedlike random; do
  for v in "${variants[@]}"; do
    case "$v" in strata) repo=senc enc=encrypted ;; strata-plain) repo=splain enc=unencrypted ;; restic) repo=restic enc=encrypted ;; esac
    awk -F'\t' -v d="$d" -v v="$v" '$1 == d && $2 == v {print $3}' "$results" | sort -g |
      awk -v d="$d" -v v="$v" -v e="$enc" -v rss="$(awk -F'\t' -v d="$d" -v v="$v" '$1 == d && $2 == v {print $4}' "$results" | sort -g | tail -1)" \
        -v size="$(du -sb "$B/$d/$repo" | cut -f1)" \
        '{a[NR] = $1} END {m = NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2;
          printf "| %s | %s | %s | %.2f (%.2f–%.2f) | %.0f | %s |\n", d, e, v, m, a[1], a[NR], rss / 1024, size}'
  done
done
