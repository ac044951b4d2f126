#!/usr/bin/env bash
# Peak memory and wall time of two strata builds (issue 27), interleaved (the order alternates per
# round), everything in tmpfs, with an age identity key file (no scrypt: its 64 MiB would hide the
# rest):
#   - seedlike: the first backup of DATA (default: gen_seedlike.py days 0-3 with --pg when
#     PostgreSQL runs, made into $W/seed)
#   - 1M files: backup and restore of N_DIRS x N_FILES files of 60 bytes (SMALL=0 skips it)
#
#   benches/memory.sh BASE_BIN HEAD_BIN [ROUNDS]
#
# e.g. STRATA_BASELINE=/tmp/strata-old benches/memory.sh "$STRATA_BASELINE" target/release/strata 5
# Rows go to stdout and $OUT (default /tmp/memory.txt): round, build, case, wall s, user s, peak RSS
# KiB; then medians per build and case.
set -euo pipefail
[ $# -ge 2 ] || { sed -n '2,13p' "$0"; exit 2; }
BASE=$1 HEAD=$2 N=${3:-5}
OUT=${OUT:-/tmp/memory.txt}
W=${W:-/dev/shm/strata-memory}
N_DIRS=${N_DIRS:-1000} N_FILES=${N_FILES:-1000}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$W"
: >"$OUT"
DATA=${DATA:-}
if [ -z "$DATA" ]; then
    DATA=$W/seed
    if [ ! -d "$DATA" ]; then
        pg=(); pg_isready -q 2>/dev/null && pg=(--pg strata_memory_bench)
        for d in 0 1 2 3; do python3 "$here/../../shared/bench/gen_seedlike.py" "$DATA" --day "$d" "${pg[@]}" >/dev/null; done
    fi
fi
if [ "${SMALL:-1}" = 1 ] && [ ! -d "$W/small" ]; then
    python3 - "$W/small" "$N_DIRS" "$N_FILES" <<'EOF'
import os, random, sys
root, nd, nf = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = random.Random(42)
for d in range(nd):
    dd = f"{root}/d{d:04d}"
    os.makedirs(dd)
    for f in range(nf):
        rec = f'{{"d":{d},"f":{f},"v":"{rng.getrandbits(64):016x}"}}'.ljust(59)[:59] + "\n"
        with open(f"{dd}/f{f:04d}.json", "x") as fh:
            fh.write(rec)
EOF
fi
[ -f "$W/id.txt" ] || age-keygen -o "$W/id.txt" 2>/dev/null
export STRATA_IDENTITY=$W/id.txt
unset STRATA_PASSWORD STRATA_PASSWORD_COMMAND || true
RCP=$(age-keygen -y "$W/id.txt")
# timed RUN NAME BIN ARGS...: one row
timed() {
    local round=$1 which=$2 name=$3; shift 3
    /usr/bin/time -o "$W/time" -f "%e %U %M" "$@" >/dev/null 2>&1
    echo "$round $which $name $(cat "$W/time")" | tee -a "$OUT"
}
for i in $(seq 1 "$N"); do
    order="base head"; [ $((i % 2)) = 0 ] && order="head base"
    for which in $order; do
        bin=$BASE; [ "$which" = head ] && bin=$HEAD
        rm -rf "$W/repo" "$W/cache" "$W/out"
        export STRATA_CACHE_DIR=$W/cache
        "$bin" --repo "$W/repo" init --recipient "$RCP" >/dev/null 2>&1
        timed "$i" "$which" seedlike-backup "$bin" --repo "$W/repo" snapshot "$DATA"
        if [ "${SMALL:-1}" = 1 ]; then
            rm -rf "$W/repo" "$W/cache"
            "$bin" --repo "$W/repo" init --recipient "$RCP" >/dev/null 2>&1
            timed "$i" "$which" 1M-backup "$bin" --repo "$W/repo" snapshot "$W/small"
            timed "$i" "$which" 1M-restore "$bin" --repo "$W/repo" restore latest --target "$W/out"
            n=$(find "$W/out" -type f | wc -l)
            [ "$n" = $((N_DIRS * N_FILES)) ] || { echo "restore gave $n files" >&2; exit 1; }
            rm -rf "$W/out"
        fi
    done
done
rm -rf "$W/repo" "$W/cache" "$W/out"
python3 - "$OUT" <<'PY'
import statistics as st, sys
rows = [l.split() for l in open(sys.argv[1])]
for case in dict.fromkeys(r[2] for r in rows):
    for w in ("base", "head"):
        r = [x for x in rows if x[1] == w and x[2] == case]
        wall = [float(x[3]) for x in r]; rss = [int(x[5]) / 1024 for x in r]
        print(f"{case:16} {w}: wall median {st.median(wall):.2f} s (min {min(wall):.2f}), "
              f"peak RSS median {st.median(rss):.1f} MiB (min {min(rss):.1f}, max {max(rss):.1f})")
PY
