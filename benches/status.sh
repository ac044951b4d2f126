#!/usr/bin/env bash
# `strata status` against the number of snapshots (issue 27): one source under our users'
# retention (keep_within 24h, daily 30, weekly 12, monthly 12), snapshots five minutes apart made
# with `snapshot --time`, each with one file changed; `status` timed at each count in COUNTS:
# ROUNDS times with nothing new since the last status ("warm", from SETTLE=2.5 seconds after the
# last snapshot, as a monitor calling every minute sees it), ROUNDS times each right after one
# more snapshot ("new"), then ROUNDS times each right after the oldest snapshot was forgotten
# ("forget").
#
#   benches/status.sh [BIN...]        (default: target/release/strata)
#
# Several builds (e.g. STRATA_BASELINE and the head) are timed on the same repository, their runs
# interleaved; each build keeps its own local cache (the first status of a build fills it, then
# ROUNDS timed runs follow). Encrypted with an age identity key (no scrypt); everything in
# /dev/shm. FORGET=1 also runs `forget` with the policy after each batch (the steady state of
# ~330 snapshots instead of every snapshot kept). Rows go to stdout and $OUT (default
# /tmp/status.txt): build, snapshots in the repository, median, min and max wall seconds, peak RSS KiB.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
BINS=("$@")
[ ${#BINS[@]} -gt 0 ] || BINS=("$here/../target/release/strata")
COUNTS=${COUNTS:-100 1000 10000}
ROUNDS=${ROUNDS:-7}
OUT=${OUT:-/tmp/status.txt}
W=${W:-/dev/shm/strata-status-bench}
rm -rf "$W"; mkdir -p "$W/src"
: >"$OUT"
for i in $(seq 1 40); do printf 'line %d of a config file\n' "$i" >"$W/src/f$i.conf"; done
REPO=$W/repo
B0=${BINS[0]}
. "$here/status_repo.sh"
status_repo "$B0"
max=0; for c in $COUNTS; do [ "$c" -gt "$max" ] && max=$c; done
# every snapshot, the ROUNDS "new" ones of each count too, dated before the start: one dated
# after now is kept as "future" and makes status walk every snapshot of its source
base=$(( $(date +%s) - (max + ROUNDS * $(echo $COUNTS | wc -w) + 1) * 300 ))
made=0
for c in $COUNTS; do
    while [ "$made" -lt "$c" ]; do
        made=$((made + 1))
        echo "$made" >"$W/src/counter"
        t=$(date -u -d "@$((base + made * 300))" +%Y-%m-%dT%H:%M:%SZ)
        STRATA_CACHE_DIR=$W/cache-make "$B0" --repo "$REPO" snapshot "$W/src" --tag data --time "$t" >/dev/null
    done
    if [ "${FORGET:-0}" = 1 ]; then
        STRATA_CACHE_DIR=$W/cache-make "$B0" --repo "$REPO" forget --tag data --keep-within 24h \
            --keep-daily 30 --keep-weekly 12 --keep-monthly 12 >/dev/null
    fi
    n=$(ls "$REPO/snapshots" | wc -l)
    declare -A T=()
    for b in "${BINS[@]}"; do
        # the first status of a build at this count fills its cache; not timed
        STRATA_CACHE_DIR=$W/cache-$(echo "$b" | md5sum | cut -c1-8) "$b" status --config "$W/strata.toml" >/dev/null 2>&1 || true
    done
    # "warm": the same snapshots as the last status; "new": one snapshot more than at the last
    # status (what a monitor sees after each 5-minute backup)
    # a monitor calls a minute apart: the snapshots/ directory is then seconds old, and status
    # finds its report by the directory's stamp, saved once two seconds old (format-spec/
    # repository.md "Status report (local)"); one call past that saves it
    sleep "${SETTLE:-2.5}"
    for b in "${BINS[@]}"; do
        STRATA_CACHE_DIR=$W/cache-$(echo "$b" | md5sum | cut -c1-8) "$b" status --config "$W/strata.toml" >/dev/null 2>&1 || true
    done
    for r in $(seq 1 "$((3 * ROUNDS))"); do
        kind=warm
        if [ "$r" -gt "$((2 * ROUNDS))" ]; then
            # "forget": the oldest snapshot forgotten since the last status (`run` forgets by the
            # policy after each backup)
            kind=forget
            oldest=$(STRATA_CACHE_DIR=$W/cache-make "$B0" --repo "$REPO" snapshots --json |
                python3 -c 'import json, sys; print(min(json.load(sys.stdin), key=lambda s: s["time"])["id"])')
            STRATA_CACHE_DIR=$W/cache-make "$B0" --repo "$REPO" forget "$oldest" >/dev/null
        elif [ "$r" -gt "$ROUNDS" ]; then
            kind=new; made=$((made + 1)); echo "$made" >"$W/src/counter"
            t=$(date -u -d "@$((base + made * 300))" +%Y-%m-%dT%H:%M:%SZ)
            STRATA_CACHE_DIR=$W/cache-make "$B0" --repo "$REPO" snapshot "$W/src" --tag data --time "$t" >/dev/null
        fi
        for b in "${BINS[@]}"; do
            t0=$EPOCHREALTIME
            STRATA_CACHE_DIR=$W/cache-$(echo "$b" | md5sum | cut -c1-8) /usr/bin/time -o "$W/time" -f "%M" \
                "$b" status --config "$W/strata.toml" >/dev/null 2>&1 || true
            t1=$EPOCHREALTIME
            T[$b.$kind]="${T[$b.$kind]:-} $(python3 -c "print(f'{$t1 - $t0:.4f}')") $(tail -1 "$W/time")"
        done
    done
    for kind in warm new forget; do
        for b in "${BINS[@]}"; do
            python3 - "$b" "$n" "$kind" ${T[$b.$kind]} <<'PY' | tee -a "$OUT"
import statistics as st, sys
b, n, kind, rest = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
wall = [float(x) for x in rest[0::2]]
rss = [int(x) for x in rest[1::2]]
print(f"{b} snapshots={n} {kind}: status median {st.median(wall):.4f} s (min {min(wall):.4f}, max {max(wall):.4f}), peak RSS {max(rss)} KiB")
PY
        done
    done
    unset T
done
[ "${KEEP:-0}" = 1 ] || rm -rf "$W"
