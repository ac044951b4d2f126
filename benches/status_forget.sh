#!/usr/bin/env bash
# `strata status` right after a forget, on seedlike data (issue 27): `run` forgets by the policy
# after every backup, so a monitor's status sees a snapshot gone every 5 minutes. One source, the
# seedlike data of day 0 (gen_seedlike.py: ~30 000 files, ~120 MB), S snapshots (default 60) made
# with `snapshot --time` 5 minutes apart, each after a new event file in events/ (20 000 files)
# and a new response in responses/ (so each has new trees of those directories); then ROUNDS
# times: the oldest snapshot forgotten, and `status` timed once per build, each build with its own
# settled cache. Encrypted with an age identity key; everything in /dev/shm.
#
#   benches/status_forget.sh BIN...      (e.g. "$STRATA_BASELINE" target/release/strata)
#
# Rows go to stdout and $OUT (default /tmp/status_forget.txt): build, wall s, peak RSS KiB; then
# the median per build.
set -euo pipefail
[ $# -ge 1 ] || { sed -n '2,12p' "$0"; exit 2; }
here=$(cd "$(dirname "$0")" && pwd)
BINS=("$@")
W=${W:-/dev/shm/strata-status-forget}
S=${S:-60}
ROUNDS=${ROUNDS:-5}
OUT=${OUT:-/tmp/status_forget.txt}
GEN=${GEN:-$here/../../shared/bench/gen_seedlike.py}
rm -rf "$W"; mkdir -p "$W"
: >"$OUT"
python3 "$GEN" --day 0 "$W/src" >/dev/null
B0=${BINS[0]}
mk() { STRATA_CACHE_DIR=$W/cache-make "$B0" --repo "$W/repo" "$@"; }
. "$here/status_repo.sh"
status_repo "$B0"
base=$(( $(date +%s) - (S + 10) * 300 ))
for i in $(seq 1 "$S"); do
    echo "{\"event\": $i}" >"$W/src/events/bench-$i.json"
    echo "{\"response\": $i}" >"$W/src/responses/bench-$i.json"
    mk snapshot "$W/src" --tag data --time "$(date -u -d "@$((base + i * 300))" +%Y-%m-%dT%H:%M:%SZ)" >/dev/null
done
cache() { echo "$W/cache-$(echo "$1" | md5sum | cut -c1-8)"; }
for b in "${BINS[@]}"; do
    # the first status of a build fills its cache; not timed
    STRATA_CACHE_DIR=$(cache "$b") "$b" status --config "$W/strata.toml" >/dev/null 2>&1 || true
done
for r in $(seq 1 "$ROUNDS"); do
    oldest=$(mk snapshots --json |
        python3 -c 'import json, sys; print(min(json.load(sys.stdin), key=lambda s: s["time"])["id"])')
    mk forget "$oldest" >/dev/null
    for b in "${BINS[@]}"; do
        t0=$EPOCHREALTIME
        STRATA_CACHE_DIR=$(cache "$b") /usr/bin/time -o "$W/time" -f "%M" \
            "$b" status --config "$W/strata.toml" >/dev/null 2>&1 || true
        t1=$EPOCHREALTIME
        echo "$b $(python3 -c "print(f'{$t1 - $t0:.4f}')") $(tail -1 "$W/time")" | tee -a "$OUT"
    done
done
python3 - "$OUT" <<'PY'
import collections, statistics as st, sys
rows = collections.defaultdict(list)
for line in open(sys.argv[1]):
    b, wall, rss = line.split()
    rows[b].append((float(wall), int(rss)))
for b, v in rows.items():
    w = [x for x, _ in v]
    print(f"{b}: status after a forget, median {st.median(w):.4f} s (min {min(w):.4f}, max {max(w):.4f}), peak RSS {max(r for _, r in v)} KiB")
PY
[ "${KEEP:-0}" = 1 ] || rm -rf "$W"
