#!/usr/bin/env bash
# Benchmark `strata forget` + `strata gc` against `restic forget --prune` and
# `borg prune` + `borg compact`, and strata gc's memory on large synthetic repositories.
#
#   benches/gc.sh
#
# Part 1 (aged data, every tool): ages the gen_seedlike.py --pg data set for DAYS days (day 0
# creates it) and takes one backup per day per tool, dated 2026-01-01 03:00 + day (strata
# `snapshot --time`, restic `backup --time`, borg `create --timestamp`). The repositories (and
# each tool's cache/config dir) are kept as a pristine copy; then each prune variant runs RUNS
# times on a fresh `cp -a` copy, interleaved across tools (the order rotates per run):
#   restic        restic forget --keep-last KEEP --prune
#   borg          borg prune --keep-last KEEP, then borg compact
#   strata        strata forget --keep-last KEEP, then strata gc with STRATA_GC_GRACE=0
#                 (deletes in the same run, as the others do)
#   strata-2phase strata forget, sleep, gc (condemns), sleep, gc (deletes), with
#                 STRATA_GC_GRACE=GRACE_SECS s; the sleeps (GRACE_SECS+1 s) are not timed
#   strata-tmpfs  as strata, with TMPDIR=STRATA_TMPFS (gc's temporary mark database on tmpfs)
# Part 2 (strata only): for each blob count in SYNTH_SIZES a repository with tiny chunks
# (64/256/1024 B) of random data, SYNTH_SNAPSHOTS snapshots of one directory (files of
# SYNTH_FILE_MIB MiB, each in its own subdirectory), then `forget --keep-last SYNTH_SNAPSHOTS/2` and `gc --json` (grace 0).
#
# Environment:
#   DAYS=60                  days to age the data (one backup per tool per day)
#   KEEP=DAYS/2              --keep-last for the prune step
#   RUNS=3                   prune repetitions per tool (fresh copy each; median reported)
#   GRACE_SECS=5             grace period of the two-phase strata run
#   SYNTH_SIZES="500000 1000000 4000000"  approximate blob counts of the synthetic repositories
#                            (empty: skip part 2)
#   SYNTH_SNAPSHOTS=8        snapshots per synthetic repository
#   SYNTH_FILE_MIB=8         size of each random file in a synthetic snapshot
#   TOOLS=strata,restic,borg tools of part 1 (empty: skip part 1)
#   STRATA_TMPFS=/dev/shm    TMPDIR of the strata-tmpfs variant (empty: no such variant)
#   BENCH_DIR=/tmp/strata-gc-bench  work dir; WIPED at start unless REUSE=1
#   REUSE=0                  1: keep $BENCH_DIR/pristine from an earlier run and skip the ageing
#   PG_DB=bench_gc           PostgreSQL database used by the generator; dropped and recreated
#   ENCRYPTED=1              1: encrypted everywhere (strata passphrase key, borg -e repokey;
#                            restic always encrypts), so that every tool does the same work;
#                            0: unencrypted where the tool allows it (strata --no-encryption,
#                            borg -e none), which is NOT like for like against restic
#   STRATA_BIN               a strata binary to use instead of `cargo build --release`
#
# Installs restic, borgbackup, postgresql, time (apt) if missing and builds strata with
# `cargo build --release`. Raw numbers: $BENCH_DIR/gc-results.tsv; report: $BENCH_DIR/gc-report.md
# (also printed); tool output: $BENCH_DIR/logs/.
set -euo pipefail

BENCH_DIR="${BENCH_DIR:-/tmp/strata-gc-bench}"
DAYS="${DAYS:-60}"
PG_DB="${PG_DB:-bench_gc}"
ENCRYPTED="${ENCRYPTED:-1}"
# shellcheck source-path=SCRIPTDIR source=compare/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/compare/lib.sh"

case "${1:-}" in
    -h|--help) sed -n '2,43p' "$0"; exit 0 ;;
    "") ;;
    *) die "unknown argument: $1 (see --help)" ;;
esac

KEEP_ARG="${KEEP:-}"
KEEP="${KEEP:-$((DAYS / 2))}"
RUNS="${RUNS:-3}"
GRACE_SECS="${GRACE_SECS:-5}"
SYNTH_SIZES="${SYNTH_SIZES-500000 1000000 4000000}"
SYNTH_SNAPSHOTS="${SYNTH_SNAPSHOTS:-8}"
SYNTH_FILE_MIB="${SYNTH_FILE_MIB:-8}"
TOOLS="${TOOLS-strata,restic,borg}"
REUSE="${REUSE:-0}"
STRATA_TMPFS="${STRATA_TMPFS-/dev/shm}"
# Stored bytes per blob with 64/256/1024-byte chunks of random data (measured: ~310 B).
SYNTH_BYTES_PER_BLOB=310

for v in DAYS KEEP RUNS GRACE_SECS SYNTH_SNAPSHOTS SYNTH_FILE_MIB; do
    [[ "${!v}" =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive integer, got '${!v}'"
done
for n in $SYNTH_SIZES; do [[ "$n" =~ ^[1-9][0-9]*$ ]] || die "SYNTH_SIZES: '$n' is not a count"; done
IFS=, read -r -a TOOL_LIST <<<"$TOOLS"
for t in "${TOOL_LIST[@]}"; do
    case "$t" in strata|restic|borg) ;; *) die "unknown tool '$t' in TOOLS (strata,restic,borg)";; esac
done
((KEEP < DAYS)) || die "KEEP ($KEEP) must be below DAYS ($DAYS)"

START=$SECONDS
LOAD_START="$(cut -d' ' -f1-3 /proc/loadavg)"
ensure_deps strata "${TOOL_LIST[@]}"
command -v python3 >/dev/null || die "python3 needed"
build_strata

PRISTINE="$BENCH_DIR/pristine"
if [[ "$REUSE" == 1 && -f "$PRISTINE/done" ]]; then
    log "REUSE=1: keeping $PRISTINE (aged $(cat "$PRISTINE/done") days)"
    DAYS="$(cat "$PRISTINE/done")"
    KEEP="${KEEP_ARG:-$((DAYS / 2))}"
    ((KEEP < DAYS)) || die "KEEP ($KEEP) must be below DAYS ($DAYS)"
    rm -rf "$BENCH_DIR/run" "$BENCH_DIR/synth"
    mkdir -p "$BENCH_DIR/logs"
    DATA="$BENCH_DIR/data"
else
    ((${#TOOL_LIST[@]} == 0)) || ensure_postgres
    reset_workdir
fi
rm -rf "${BENCH_DIR:?}/restore" "${BENCH_DIR:?}/repos" "${BENCH_DIR:?}/home"
RESULTS="$BENCH_DIR/gc-results.tsv"
printf 'part\ttool\trun\tstep\twall_s\tpeak_rss_kb\trepo_before\trepo_after\tload1\tnote\n' >"$RESULTS"
rec() { local IFS=$'\t'; printf '%s\n' "$*" >>"$RESULTS"; }

# Each tool keeps its caches and config under its own home, copied with its repository.
tool_env() {
    local h="$1"
    export XDG_CACHE_HOME="$h/cache" XDG_CONFIG_HOME="$h/config" BORG_BASE_DIR="$h/borg"
    export STRATA_CACHE_DIR="$h/cache/strata"
}
day_date() { date -u -d "2026-01-01 + $1 days" +%F; }
mib() { awk -v k="$1" 'BEGIN{printf "%.1f", k/1024}'; }

INIT_ARGS=()
[[ "$ENCRYPTED" == 1 ]] || INIT_ARGS+=(--no-encryption)

# ---------------------------------------------------------------- part 1: ageing

age_repos() {
    local t day d now
    mkdir -p "$PRISTINE"
    for t in "${TOOL_LIST[@]}"; do
        mkdir -p "$PRISTINE/$t/home"
        tool_env "$PRISTINE/$t/home"
        case "$t" in
            strata) timed strata-init "$STRATA" --repo "$PRISTINE/$t/repo" init "${INIT_ARGS[@]}" ;;
            restic) timed restic-init restic -r "$PRISTINE/$t/repo" init ;;
            borg)   local mode=none; [[ "$ENCRYPTED" == 1 ]] && mode=repokey
                    timed borg-init borg init -e "$mode" "$PRISTINE/$t/repo" ;;
        esac || die "$t init failed"
    done
    for ((day = 0; day < DAYS; day++)); do
        gen_day "$day"
        d="$(day_date "$day")"
        for t in "${TOOL_LIST[@]}"; do
            tool_env "$PRISTINE/$t/home"
            case "$t" in
                strata) timed "strata-day$day" "$STRATA" --repo "$PRISTINE/$t/repo" snapshot "$DATA" --time "$d 03:00:00" ;;
                restic) timed "restic-day$day" restic -r "$PRISTINE/$t/repo" backup --time "$d 03:00:00" "$DATA" ;;
                borg)   timed "borg-day$day" borg create --timestamp "${d}T03:00:00" "$PRISTINE/$t/repo::day$(printf %03d "$day")" "$DATA" ;;
            esac || die "$t backup of day $day failed (see $BENCH_DIR/logs)"
            now="$(repo_bytes "$PRISTINE/$t/repo")"
            rec age "$t" - "backup-day$day" "$T_WALL" "$T_RSS_KB" - "$now" "$(loadavg)" "data $(du -sb "$DATA" | cut -f1) B"
        done
        log "day $day ($d): data $(human "$(du -sb "$DATA" | cut -f1)"); repos: $(for t in "${TOOL_LIST[@]}"; do printf '%s %s  ' "$t" "$(human "$(repo_bytes "$PRISTINE/$t/repo")")"; done)"
    done
    echo "$DAYS" >"$PRISTINE/done"
}

# ---------------------------------------------------------------- part 1: pruning

# json_get FILE EXPR: a field of the last JSON line of FILE (python expression over `j`).
json_get() {
    python3 - "$1" "$2" <<'EOF'
import json, sys
lines = [l for l in open(sys.argv[1]) if l.strip().startswith("{")]
j = json.loads(lines[-1]) if lines else {}
try:
    print(eval(sys.argv[2], {}, {"j": j}))
except Exception:
    print("-")
EOF
}

# step NAME CMD...: time one prune step of $VARIANT run $RUN; adds to P_WALL, P_RSS; on failure
# sets P_OK and returns 1.
step() {
    local name="$1"; shift
    timed "$VARIANT-run$RUN-$name" "$@" || P_OK="failed at $name"
    rec prune "$VARIANT" "$RUN" "$name" "$T_WALL" "$T_RSS_KB" - - "$(loadavg)" "$P_OK"
    P_WALL="$(awk -v a="$P_WALL" -v b="$T_WALL" 'BEGIN{printf "%.2f", a+b}')"
    ((T_RSS_KB > P_RSS)) && P_RSS=$T_RSS_KB
    [[ "$P_OK" == ok ]]
}

# prune_one VARIANT RUN: copy the pristine repository and home, prune, record every step.
prune_one() {
    VARIANT="$1" RUN="$2" P_WALL=0 P_RSS=0 P_OK=ok
    local t="${1%-*}" w="$BENCH_DIR/run/$1" before after note="" load g="${GRACE_SECS}s"
    local lg="$BENCH_DIR/logs/$1-run$2"
    rm -rf "$w"; mkdir -p "$w"
    cp -a "$PRISTINE/$t/repo" "$w/repo"; cp -a "$PRISTINE/$t/home" "$w/home"
    sync
    tool_env "$w/home"
    before="$(repo_bytes "$w/repo")"
    load="$(loadavg)"
    case "$VARIANT" in
        restic)
            step forget-prune restic -r "$w/repo" forget --keep-last "$KEEP" --prune || true
            grep -iE 'remov|repack|frees|total prune|unused|keep' "$lg-forget-prune.log" | tail -n 12 >&2 || true ;;
        borg)
            if step prune borg prune --keep-last "$KEEP" "$w/repo"; then
                step compact borg compact "$w/repo" || true
            fi ;;
        strata|strata-tmpfs)
            local tmp="${TMPDIR:-/tmp}"
            [[ "$VARIANT" == strata-tmpfs ]] && tmp="$STRATA_TMPFS"
            if step forget env STRATA_GC_GRACE=0 "$STRATA" --repo "$w/repo" forget --keep-last "$KEEP"; then
                step gc env STRATA_GC_GRACE=0 TMPDIR="$tmp" "$STRATA" --repo "$w/repo" gc --json || true
                note="$(gc_note "$lg-gc.log")"
            fi ;;
        strata-2phase)
            if step forget env STRATA_GC_GRACE="$g" "$STRATA" --repo "$w/repo" forget --keep-last "$KEEP"; then
                sleep $((GRACE_SECS + 1))
                if step gc1-condemn env STRATA_GC_GRACE="$g" "$STRATA" --repo "$w/repo" gc --json; then
                    note="gc1: $(gc_note "$lg-gc1-condemn.log"); "
                    sleep $((GRACE_SECS + 1))
                    step gc2-delete env STRATA_GC_GRACE="$g" "$STRATA" --repo "$w/repo" gc --json || true
                    note+="gc2: $(gc_note "$lg-gc2-delete.log")"
                fi
            fi ;;
    esac
    after="$(repo_bytes "$w/repo")"
    rec prune "$VARIANT" "$RUN" total "$P_WALL" "$P_RSS" "$before" "$after" "$load" "$P_OK${note:+; $note}"
    log "$VARIANT run $RUN: ${P_WALL}s, peak RSS $(mib "$P_RSS") MiB, $(human "$before") -> $(human "$after") [$P_OK] $note"
    rm -rf "$w"
}

# gc_note LOG: the interesting fields of `strata gc --json`.
gc_note() {
    [[ -s "$1" ]] || { echo "no output"; return; }
    json_get "$1" '"gc %.2fs rss %.1f MiB snapshots %d trees %d reachable %d blobs; condemned %d packs; repacked %d packs -> %d written; deleted %d packs %d B; still condemned %d; pending %d B" % (j["seconds"], j["peak_rss_bytes"]/1048576, j["snapshots"], j["trees"], j["reachable_blobs"], j["condemned"]["packs"], j["repacked"]["packs"], j["written"]["packs"], j["deleted"]["packs"], j["deleted"]["bytes"], j["still_condemned"]["packs"], j["pending_free"])'
}

prune_all() {
    local variants=() run i n
    for t in "${TOOL_LIST[@]}"; do
        variants+=("$t")
        if [[ "$t" == strata ]]; then variants+=(strata-2phase); [[ -z "$STRATA_TMPFS" ]] || variants+=(strata-tmpfs); fi
    done
    n=${#variants[@]}
    for ((run = 1; run <= RUNS; run++)); do
        for ((i = 0; i < n; i++)); do
            prune_one "${variants[(i + run - 1) % n]}" "$run"
        done
    done
}

# ---------------------------------------------------------------- part 2: synthetic strata

synth_one() {
    local target="$1" repo="$BENCH_DIR/synth/repo-$1" src="$BENCH_DIR/synth/data" k f files per before after
    local fbytes=$((SYNTH_FILE_MIB * 1048576))
    per=$(( (target * SYNTH_BYTES_PER_BLOB + SYNTH_SNAPSHOTS - 1) / SYNTH_SNAPSHOTS ))
    files=$(( (per + fbytes - 1) / fbytes ))
    local tag="synth$target"
    tool_env "$BENCH_DIR/synth/home"
    timed "$tag-init" "$STRATA" --repo "$repo" init "${INIT_ARGS[@]}" --chunk-min 64 --chunk-avg 256 --chunk-max 1024 \
        || die "synthetic init failed"
    local t0=$SECONDS
    for ((k = 0; k < SYNTH_SNAPSHOTS; k++)); do
        rm -rf "$src"; mkdir -p "$src"
        for ((f = 0; f < files; f++)); do
            local sz=$fbytes
            ((f == files - 1)) && sz=$((per - fbytes * (files - 1)))
            mkdir "$src/d$f"  # one file per directory: every tree blob lists one file's chunks
            head -c "$sz" /dev/urandom >"$src/d$f/f"
        done
        timed "$tag-snap$k" "$STRATA" --repo "$repo" snapshot "$src" --time "$(day_date "$k") 03:00:00" \
            || die "synthetic snapshot $k failed"
        rec synth strata "$target" "snapshot$k" "$T_WALL" "$T_RSS_KB" - "$(repo_bytes "$repo")" "$(loadavg)" "$files files, $per B"
    done
    rm -rf "$src"
    local blobs_before
    "$STRATA" --repo "$repo" stats --json >"$BENCH_DIR/logs/$tag-stats-before.json"
    blobs_before="$(json_get "$BENCH_DIR/logs/$tag-stats-before.json" 'j["data_blobs"] + j["tree_blobs"]')"
    log "synthetic $target: $blobs_before blobs in $SYNTH_SNAPSHOTS snapshots (backups took $((SECONDS - t0)) s)"
    export STRATA_GC_GRACE=0
    timed "$tag-forget" "$STRATA" --repo "$repo" forget --keep-last $((SYNTH_SNAPSHOTS / 2)) || die "synthetic forget failed"
    rec synth strata "$target" forget "$T_WALL" "$T_RSS_KB" - - "$(loadavg)" "blobs $blobs_before"
    sync
    before="$(repo_bytes "$repo")"
    local load; load="$(loadavg)"
    timed "$tag-gc" "$STRATA" --repo "$repo" gc --json || die "synthetic gc failed"
    unset STRATA_GC_GRACE
    after="$(repo_bytes "$repo")"
    local note
    note="blobs $blobs_before; $(gc_note "$BENCH_DIR/logs/$tag-gc.log")"
    rec synth strata "$target" gc "$T_WALL" "$T_RSS_KB" "$before" "$after" "$load" "$note"
    log "synthetic $target: gc ${T_WALL}s, peak RSS $(mib "$T_RSS_KB") MiB; $note"
    rm -rf "$repo"
}

# ---------------------------------------------------------------- report

median_range() {  # values on stdin -> "median (min–max)"
    sort -g | awk '{v[NR]=$1} END{if(!NR){print "-"; exit}
        m = NR%2 ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2; printf "%.2f (%.2f–%.2f)", m, v[1], v[NR]}'
}
col() {  # col PART TOOL STEP FIELD#
    awk -F'\t' -v p="$1" -v t="$2" -v s="$3" -v c="$4" '$1==p && $2==t && $4==s {print $c}' "$RESULTS"
}

report() {
    local t v enc="unencrypted where the tool allows it (strata --no-encryption, borg -e none); restic always encrypts"
    [[ "$ENCRYPTED" == 1 ]] && enc="encrypted everywhere (strata passphrase key, borg -e repokey, restic)"
    echo
    echo "## gc: strata vs restic / borg"
    echo
    echo "Machine: $(nproc) cores, $(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo); load average (1/5/15 min) at start: $LOAD_START, at end: $(cut -d' ' -f1-3 /proc/loadavg). Repositories: $enc. Versions: $(for t in "${TOOL_LIST[@]:-strata}"; do printf "%s; " "$(tool_version "$t")"; done)"
    if ((${#TOOL_LIST[@]})); then
        echo
        echo "$DAYS daily backups of gen_seedlike.py --pg data (final $(human "$(du -sb "$DATA" 2>/dev/null | cut -f1 || echo 0)")), then keep the last $KEEP. Each prune ran $RUNS times on a fresh \`cp -a\` copy (page cache warm), tools interleaved. Times: median (min–max) of the whole prune; RSS: the highest of all steps and runs; sizes from \`du -sb\`."
        echo
        echo "| tool | commands | prune wall time (s) | peak RSS (MiB) | repo before (B) | repo after (B) | freed (B) | load (1 min) during runs |"
        echo "|---|---|---:|---:|---:|---:|---:|---|"
        local variants=()
        for t in "${TOOL_LIST[@]}"; do variants+=("$t")
        if [[ "$t" == strata ]]; then variants+=(strata-2phase); [[ -z "$STRATA_TMPFS" ]] || variants+=(strata-tmpfs); fi; done
        for v in "${variants[@]}"; do
            local cmd before after rss
            case "$v" in
                strata) cmd="\`forget --keep-last $KEEP\` + \`gc\` (STRATA_GC_GRACE=0)" ;;
                strata-tmpfs) cmd="as strata, TMPDIR=$STRATA_TMPFS (tmpfs)" ;;
                strata-2phase) cmd="\`forget\`, \`gc\` (condemn), \`gc\` (delete), grace ${GRACE_SECS}s; sleeps not counted" ;;
                restic) cmd="\`forget --keep-last $KEEP --prune\`" ;;
                borg) cmd="\`prune --keep-last $KEEP\` + \`compact\`" ;;
            esac
            before="$(col prune "$v" total 7 | head -n 1)"; after="$(col prune "$v" total 8 | sort -g | tail -n 1)"
            rss="$(col prune "$v" total 6 | sort -g | tail -n 1)"
            printf '| %s | %s | %s | %s | %s | %s | %s | %s |\n' "$v" "$cmd" "$(col prune "$v" total 5 | median_range)" \
                "$(mib "${rss:-0}")" "${before:--}" "${after:--}" "$(( ${before:-0} - ${after:-0} ))" "$(col prune "$v" total 9 | paste -sd' ')"
        done
        echo
        echo "Per step (median (min–max) s; peak RSS MiB):"
        echo
        echo "| tool | step | wall time (s) | peak RSS (MiB) |"
        echo "|---|---|---:|---:|"
        awk -F'\t' '$1=="prune" && $4!="total" {print $2"\t"$4}' "$RESULTS" | awk '!s[$0]++' | while IFS=$'\t' read -r v s; do
            printf '| %s | %s | %s | %s |\n' "$v" "$s" "$(col prune "$v" "$s" 5 | median_range)" "$(mib "$(col prune "$v" "$s" 6 | sort -g | tail -n 1)")"
        done
        echo
        echo "strata gc --json of the last run: $(awk -F'\t' '$1=="prune" && $2=="strata" && $4=="total" {n=$10} END{print n}' "$RESULTS")"
        echo
        echo "Two-phase: $(awk -F'\t' '$1=="prune" && $2=="strata-2phase" && $4=="total" {n=$10} END{print n}' "$RESULTS")"
    fi
    if [[ -n "$SYNTH_SIZES" ]]; then
        echo
        echo "Synthetic strata repositories (random data, chunks 64/256/1024 B, $SYNTH_SNAPSHOTS snapshots of $SYNTH_FILE_MIB MiB files, \`forget --keep-last $((SYNTH_SNAPSHOTS / 2))\`, then \`gc\` with STRATA_GC_GRACE=0):"
        echo
        echo "| target blobs | blobs before | repo before (B) | repo after (B) | gc wall time (s) | gc peak RSS (MiB) | load (1 min) | gc --json |"
        echo "|---:|---:|---:|---:|---:|---:|---:|---|"
        awk -F'\t' '$1=="synth" && $4=="gc"' "$RESULTS" | while IFS=$'\t' read -r _ _ n _ w r b a l note; do
            printf '| %s | %s | %s | %s | %s | %s | %s | %s |\n' "$n" "$(sed -n 's/^blobs \([0-9]*\);.*/\1/p' <<<"$note")" "$b" "$a" "$w" "$(mib "$r")" "$l" "${note#*; }"
        done
    fi
    echo
    echo "Raw: $RESULTS; tool output: $BENCH_DIR/logs/. Total run time: $((SECONDS - START)) s."
}

# ---------------------------------------------------------------- main

if ((${#TOOL_LIST[@]})); then
    [[ -f "$PRISTINE/done" ]] || age_repos
    for t in "${TOOL_LIST[@]}"; do
        [[ -d "$PRISTINE/$t/repo" ]] || die "$PRISTINE/$t/repo missing (REUSE=1 with other TOOLS?)"
    done
    prune_all
fi
for n in $SYNTH_SIZES; do synth_one "$n"; done
report | tee "$BENCH_DIR/gc-report.md"
