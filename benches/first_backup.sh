#!/usr/bin/env bash
# First backup and restore of one data set by two strata builds, interleaved (the order alternates
# per round), each into a fresh repository and cache in tmpfs; medians of wall time.
#
#   benches/first_backup.sh BASE_BIN HEAD_BIN DATA [ROUNDS]
#
# e.g. with a build of an older commit:
#   git worktree add --detach /tmp/base bd99dfe && (cd /tmp/base && CARGO_TARGET_DIR=/tmp/base-target cargo build --release)
#   python3 ../shared/bench/gen_seedlike.py /dev/shm/pg0 --day 0 --pg bench
#   benches/first_backup.sh /tmp/base-target/release/strata target/release/strata /dev/shm/pg0 8
#
# Unencrypted repositories in /dev/shm (file creation on this VM's disk varies several-fold).
# Rows go to stdout and $OUT (default /tmp/first_backup.txt): round, build, backup wall/user/sys
# seconds and peak RSS KiB, the same for the restore, repository bytes. Run it on a quiet machine:
# other CPU load shows up directly in the medians.
set -euo pipefail
[ $# -ge 3 ] || { sed -n '2,8p' "$0"; exit 2; }
BASE=$1 HEAD=$2 DATA=$3 N=${4:-5}
OUT=${OUT:-/tmp/first_backup.txt}
W=/dev/shm/strata-first-backup
: >"$OUT"
for i in $(seq 1 "$N"); do
  order="base head"; [ $((i % 2)) = 0 ] && order="head base"
  for which in $order; do
    bin=$BASE; [ "$which" = head ] && bin=$HEAD
    rm -rf "$W"; mkdir -p "$W"
    export STRATA_CACHE_DIR=$W/cache
    "$bin" --repo "$W/repo" init --no-encryption >/dev/null 2>&1
    sync
    b=$({ /usr/bin/time -f "%e %U %S %M" "$bin" --repo "$W/repo" snapshot "$DATA" >/dev/null; } 2>&1 | tail -1)
    r=$({ /usr/bin/time -f "%e %U %S %M" "$bin" --repo "$W/repo" restore latest --target "$W/out" >/dev/null; } 2>&1 | tail -1)
    echo "$i $which backup $b restore $r repo $(du -sb "$W/repo" | cut -f1)" | tee -a "$OUT"
  done
done
rm -rf "$W"
python3 - "$OUT" <<'PY'
import statistics as st, sys
rows = [l.split() for l in open(sys.argv[1])]
for w in ("base", "head"):
    b = [float(r[3]) for r in rows if r[1] == w]
    r = [float(r[8]) for r in rows if r[1] == w]
    size = [int(r[13]) for r in rows if r[1] == w]
    print(f"{w}: backup median {st.median(b):.3f} s, restore median {st.median(r):.3f} s, "
          f"repository median {st.median(size)} B ({len(b)} runs)")
PY
