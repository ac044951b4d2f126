#!/usr/bin/env bash
# How strata's chunk-size settings affect repository growth on the ageing "seedlike" data set.
#
#   benches/chunk_sizes.sh
#
# Environment:
#   DAYS=5                          days to age the data (day 0 creates it; one snapshot per day)
#   BENCH_DIR=/tmp/strata-chunk-bench   work dir; WIPED at start
#   PG_DB=bench                     PostgreSQL database used by the generator; dropped and recreated
#   CHUNK_SETTINGS="min/avg/max ..."  byte triples to compare; "default" = strata init without chunk flags
#       default: "default 16384/65536/262144 65536/262144/1048576 131072/524288/2097152
#                 262144/1048576/4194304 524288/1048576/8388608"
#   ENCRYPTED=0                     0: pass --no-encryption to init if strata offers it
#
# The data is generated once per day and snapshotted into one strata repo per setting
# (`strata init --chunk-min N --chunk-avg N --chunk-max N`). Prints markdown tables; raw numbers
# go to $BENCH_DIR/results.tsv, the tables also to $BENCH_DIR/report.md.
set -euo pipefail

BENCH_DIR="${BENCH_DIR:-/tmp/strata-chunk-bench}"
# shellcheck source-path=SCRIPTDIR source=compare/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/compare/lib.sh"
unset STRATA_INIT_ARGS   # the chunk flags come from CHUNK_SETTINGS here

CHUNK_SETTINGS="${CHUNK_SETTINGS:-default 16384/65536/262144 65536/262144/1048576 131072/524288/2097152 262144/1048576/4194304 524288/1048576/8388608}"
[[ "${1:-}" == -h || "${1:-}" == --help ]] && { sed -n '2,19p' "$0"; exit 0; }
(($# == 0)) || die "no arguments expected (configure with environment variables, see --help)"
[[ "$DAYS" =~ ^[1-9][0-9]*$ ]] || die "DAYS must be a positive integer, got '$DAYS'"

# k SIZE -> 16K / 1M style label
k() { local b=$1; if ((b % 1048576 == 0)); then echo "$((b / 1048576))M"; elif ((b % 1024 == 0)); then echo "$((b / 1024))K"; else echo "$b"; fi; }

LABELS=() ; declare -A ARGS
for s in $CHUNK_SETTINGS; do
    if [[ "$s" == default ]]; then
        LABELS+=(default); ARGS[default]=""
    elif [[ "$s" =~ ^([0-9]+)/([0-9]+)/([0-9]+)$ ]]; then
        l="$(k "${BASH_REMATCH[1]}")/$(k "${BASH_REMATCH[2]}")/$(k "${BASH_REMATCH[3]}")"
        LABELS+=("$l"); ARGS[$l]="--chunk-min ${BASH_REMATCH[1]} --chunk-avg ${BASH_REMATCH[2]} --chunk-max ${BASH_REMATCH[3]}"
    else
        die "bad CHUNK_SETTINGS entry '$s' (want min/avg/max in bytes, or 'default')"
    fi
done

START=$SECONDS
LOAD_START="$(loadavg)"
# shellcheck disable=SC2119
ensure_deps
ensure_postgres
build_strata
reset_workdir
results_init
log "strata: $(tool_version strata); settings: ${LABELS[*]}; days: $DAYS"

declare -A STATUS REPO GROW SNAP RSS DIRS
DATA_BYTES=()
for l in "${LABELS[@]}"; do
    DIRS[$l]="$BENCH_DIR/repos/strata-${l//\//-}"
    STATUS[$l]=ok; RSS[$l]=0; SNAP[$l]=0
    log "init $l"
    # shellcheck disable=SC2086
    if tool_init strata "${DIRS[$l]}" ${ARGS[$l]}; then
        REPO[$l]="$(repo_bytes "${DIRS[$l]}")"
        record "$l" - init "$T_WALL" "$T_RSS_KB" "${REPO[$l]}" 0 ok
    else
        STATUS[$l]="init failed"; record "$l" - init "$T_WALL" "$T_RSS_KB" 0 0 failed
    fi
done

for ((day = 0; day < DAYS; day++)); do
    gen_day "$day"
    DATA_BYTES[day]="$(du -sb "$DATA" | cut -f1)"
    for l in "${LABELS[@]}"; do
        [[ "${STATUS[$l]}" == ok ]] || continue
        if tool_backup strata "${DIRS[$l]}" "$day"; then st=ok; else st=failed; STATUS[$l]="snapshot day $day failed"; fi
        now="$(repo_bytes "${DIRS[$l]}")"
        GROW[$l,$day]=$((now - REPO[$l])); REPO[$l]=$now
        ((T_RSS_KB > RSS[$l])) && RSS[$l]=$T_RSS_KB
        SNAP[$l]="$(awk -v a="${SNAP[$l]}" -v b="$T_WALL" 'BEGIN{printf "%.2f", a+b}')"
        record "$l" "$day" backup "$T_WALL" "$T_RSS_KB" "$now" "${DATA_BYTES[day]}" "$st"
        log "$l day $day: ${T_WALL}s, repo +$(human "${GROW[$l,$day]}") -> $(human "$now") [$st]"
    done
done

{
    echo
    echo "## strata chunk sizes (min/avg/max)"
    echo
    echo "Data: gen_seedlike.py, $DAYS days, final size $(human "${DATA_BYTES[DAYS-1]}"). $(tool_version strata)."
    echo "Load average (1 min) at start: $LOAD_START, at end: $(loadavg)."
    echo
    echo "Repository growth per day (bytes added, du -sb delta):"
    echo
    printf '| day | data size (bytes) |'; for l in "${LABELS[@]}"; do printf ' %s |' "$l"; done; echo
    printf '|---:|---:|'; for _ in "${LABELS[@]}"; do printf -- '---:|'; done; echo
    for ((day = 0; day < DAYS; day++)); do
        printf '| %d | %s |' "$day" "${DATA_BYTES[day]}"
        for l in "${LABELS[@]}"; do printf ' %s |' "${GROW[$l,$day]:--}"; done; echo
    done
    printf '| later days, sum | |'
    for l in "${LABELS[@]}"; do
        s=0; for ((day = 1; day < DAYS; day++)); do s=$((s + ${GROW[$l,$day]:-0})); done; printf ' %s |' "$s"
    done; echo
    printf '| final repo size | |'; for l in "${LABELS[@]}"; do printf ' %s |' "${REPO[$l]:--}"; done; echo
    printf '| snapshot time, all days (s) | |'; for l in "${LABELS[@]}"; do printf ' %s |' "${SNAP[$l]}"; done; echo
    printf '| peak RSS (MiB) | |'; for l in "${LABELS[@]}"; do printf ' %s |' "$(awk -v k="${RSS[$l]}" 'BEGIN{printf "%.1f", k/1024}')"; done; echo
    printf '| status | |'; for l in "${LABELS[@]}"; do printf ' %s |' "${STATUS[$l]}"; done; echo
    echo
    echo "Raw measurements: $RESULTS. Total run time: $((SECONDS - START)) s."
} | tee "$BENCH_DIR/report.md"

for l in "${LABELS[@]}"; do [[ "${STATUS[$l]}" == ok ]] || exit 1; done
