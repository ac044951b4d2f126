#!/usr/bin/env bash
# A write-only host against a full-key host on the seedlike data (issue 25,
# format-spec/write-only.md "Finding the parent…", "Deduplication…"): the
# first backup (day 0), the incremental one (day 1: the write-only host
# reads unchanged small files again, as its cache holds no inline contents),
# and the write-only host's day-1 backup after its local records are lost
# (`sent-*.sqlite` and `last.json`: everything is read and stored again).
# Each round makes two fresh repositories in tmpfs, one per kind of host,
# with age identity files (no scrypt); the order of the two alternates.
#
#   benches/write_only.sh BIN [ROUNDS]
#
# Rows go to stdout and $OUT (default /tmp/write_only.txt): round, host,
# case, wall/user/sys seconds, peak RSS KiB, bytes read, added and stored
# (the snapshot's summary). Medians at the end.
set -euo pipefail
[ $# -ge 1 ] || { sed -n '2,13p' "$0"; exit 2; }
BIN=$1 N=${2:-3}
OUT=${OUT:-/tmp/write_only.txt}
W=/dev/shm/strata-write-only
GEN=$(dirname "$0")/../../shared/bench/gen_seedlike.py
: >"$OUT"
rm -rf "$W"; mkdir -p "$W"
python3 "$GEN" "$W/day0" --day 0 >/dev/null
DATA=$W/data

# snapshot HOST CASE REPO CACHE IDENTITY: one timed snapshot of $DATA
snap() {
  local host=$1 case=$2 repo=$3 cache=$4 id=$5 t j
  t=$( { /usr/bin/time -f "%e %U %S %M" env STRATA_CACHE_DIR="$cache" \
        "$BIN" --repo "$repo" --identity "$id" snapshot "$DATA" --json >"$W/out.json"; } 2>&1 | tail -1)
  j=$(python3 -c 'import json,sys; s=json.load(open(sys.argv[1]))["summary"]; print(s["bytes_read"], s["bytes_added"], s["stored_added"])' "$W/out.json")
  echo "$round $host $case $t $j" | tee -a "$OUT"
}

for round in $(seq 1 "$N"); do
  order="full write-only"; [ $((round % 2)) = 0 ] && order="write-only full"
  for host in $order; do
    R=$W/$host; rm -rf "$R"; mkdir -p "$R"
    age-keygen -o "$R/full.key" 2>/dev/null
    STRATA_CACHE_DIR=$R/full-cache "$BIN" --repo "$R/repo" init \
      --recipient "$(age-keygen -y "$R/full.key")" >/dev/null 2>&1
    key=$R/full.key cache=$R/full-cache
    if [ "$host" = write-only ]; then
      age-keygen -o "$R/host.key" 2>/dev/null
      STRATA_CACHE_DIR=$R/full-cache "$BIN" --repo "$R/repo" --identity "$R/full.key" \
        key add --write-only --recipient "$(age-keygen -y "$R/host.key")" >/dev/null 2>&1
      key=$R/host.key cache=$R/host-cache
    fi
    rm -rf "$DATA"; cp -a "$W/day0" "$DATA"; sync
    snap "$host" first "$R/repo" "$cache" "$key"
    # day 1 applied in place, as the service changes its files
    python3 "$GEN" "$DATA" --day 1 >/dev/null; sync
    snap "$host" incremental "$R/repo" "$cache" "$key"
    if [ "$host" = write-only ]; then
      # the records lost: the next snapshot reads and stores everything
      rm -rf "$cache"/*/write-only "$cache"/*/index/*/sent-*
      snap "$host" records-lost "$R/repo" "$cache" "$key"
    fi
  done
done
rm -rf "$W"
python3 - "$OUT" <<'PY'
import statistics as st, sys
rows = [l.split() for l in open(sys.argv[1])]
print("host        case          wall s  user s  peak MiB  read MB  added MB  stored MB  (medians)")
for host in ("full", "write-only"):
    for case in ("first", "incremental", "records-lost"):
        r = [x for x in rows if x[1] == host and x[2] == case]
        if not r:
            continue
        m = lambda i: st.median(float(x[i]) for x in r)
        print(f"{host:<11} {case:<13} {m(3):6.2f}  {m(4):6.2f}  {m(6)/1024:8.1f}  {m(7)/1e6:7.1f}  {m(8)/1e6:8.1f}  {m(9)/1e6:9.2f}")
PY
