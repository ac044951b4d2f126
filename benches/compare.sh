#!/usr/bin/env bash
# Benchmark strata against restic, borg and rustic on the same ageing "seedlike" data set.
#
#   benches/compare.sh [--tools strata,restic,borg,rustic]
#
# Environment:
#   TOOLS=strata,restic,borg,rustic   tools to run (default: all four; --tools overrides)
#   DAYS=5                            days to age the data (day 0 creates it; one backup per day)
#   BENCH_DIR=/tmp/strata-bench       work dir; WIPED at start (data, repos, logs, results.tsv)
#   PG_DB=bench                       PostgreSQL database used by the generator; dropped and recreated
#   ENCRYPTED=0                       0: unencrypted where the tool allows it (borg -e none,
#                                     strata --no-encryption if offered; restic/rustic always encrypt)
#                                     1: encrypted everywhere (borg -e repokey)
#   STRATA_INIT_ARGS=                 extra args for `strata init`, e.g. "--chunk-min 65536 ..."
#   STRATA_UNLOCK=passphrase          with ENCRYPTED=1: `passphrase` (STRATA_PASSWORD, one scrypt
#                                     2^16 per command) or `identity` (an age key made with
#                                     age-keygen: `init --recipient`, STRATA_IDENTITY)
#
# Installs restic, borgbackup, postgresql, time (apt) and rustic (cargo install rustic-rs) if
# missing, builds strata with `cargo build --release`, and prints markdown tables; raw numbers go
# to $BENCH_DIR/results.tsv, the tables also to $BENCH_DIR/report.md, tool output to $BENCH_DIR/logs/.
set -euo pipefail

# shellcheck source=compare/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/compare/lib.sh"

TOOLS="${TOOLS:-strata,restic,borg,rustic}"
while (($#)); do
    case "$1" in
        --tools) TOOLS="${2:?--tools needs a value}"; shift 2 ;;
        --tools=*) TOOLS="${1#--tools=}"; shift ;;
        -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
        *) die "unknown argument: $1 (see --help)" ;;
    esac
done
IFS=, read -r -a TOOL_LIST <<<"$TOOLS"
for t in "${TOOL_LIST[@]}"; do
    case "$t" in strata|restic|borg|rustic) ;; *) die "unknown tool '$t' in TOOLS (strata,restic,borg,rustic)";; esac
done
[[ "$DAYS" =~ ^[1-9][0-9]*$ ]] || die "DAYS must be a positive integer, got '$DAYS'"

START=$SECONDS
LOAD_START="$(loadavg)"
ensure_deps "${TOOL_LIST[@]}"
ensure_postgres
for t in "${TOOL_LIST[@]}"; do [[ "$t" == strata ]] && build_strata; done
reset_workdir
results_init

declare -A STATUS B0 BSUM BN RESTORE RSS REPO VERIFY GROW INIT_CMD
DATA_BYTES=()

log "tools: ${TOOL_LIST[*]}; days: $DAYS; work dir: $BENCH_DIR"
VERSIONS=""
for t in "${TOOL_LIST[@]}"; do VERSIONS+="  - $t: $(tool_version "$t")"$'\n'; done
printf 'versions:\n%s' "$VERSIONS" >&2

for t in "${TOOL_LIST[@]}"; do
    STATUS[$t]=ok; RSS[$t]=0; BSUM[$t]=0; BN[$t]=0
    log "$t: init"
    ok=0; tool_init "$t" "$BENCH_DIR/repos/$t" || ok=$?
    INIT_CMD[$t]="${T_CMD/#$STRATA/strata}"
    if ((ok == 0)); then
        REPO[$t]="$(repo_bytes "$BENCH_DIR/repos/$t")"
        record "$t" - init "$T_WALL" "$T_RSS_KB" "${REPO[$t]}" 0 ok
    else
        STATUS[$t]="init failed"; record "$t" - init "$T_WALL" "$T_RSS_KB" 0 0 failed
    fi
done

for ((day = 0; day < DAYS; day++)); do
    gen_day "$day"
    DATA_BYTES[day]="$(du -sb "$DATA" | cut -f1)"
    nfiles="$(find "$DATA" -type f | wc -l)"
    log "day $day: data $(human "${DATA_BYTES[day]}") in $nfiles files"
    for t in "${TOOL_LIST[@]}"; do
        [[ "${STATUS[$t]}" == ok ]] || continue
        if tool_backup "$t" "$BENCH_DIR/repos/$t" "$day"; then
            st=ok
        else
            st=failed; STATUS[$t]="backup day $day failed"
        fi
        now="$(repo_bytes "$BENCH_DIR/repos/$t")"
        GROW[$t,$day]=$((now - REPO[$t])); REPO[$t]=$now
        ((T_RSS_KB > RSS[$t])) && RSS[$t]=$T_RSS_KB
        if ((day == 0)); then B0[$t]=$T_WALL; else
            BSUM[$t]="$(awk -v a="${BSUM[$t]}" -v b="$T_WALL" 'BEGIN{printf "%.2f", a+b}')"; BN[$t]=$((BN[$t] + 1))
        fi
        record "$t" "$day" backup "$T_WALL" "$T_RSS_KB" "$now" "${DATA_BYTES[day]}" "$st"
        log "$t day $day: ${T_WALL}s, peak RSS $((T_RSS_KB / 1024)) MiB, repo +$(human "${GROW[$t,$day]}") -> $(human "$now") [$st]"
    done
done

LAST=$((DAYS - 1))
for t in "${TOOL_LIST[@]}"; do
    [[ "${STATUS[$t]}" == ok ]] || { VERIFY[$t]="-"; continue; }
    out="$BENCH_DIR/restore/$t"
    log "$t: restore latest into $out"
    if tool_restore "$t" "$BENCH_DIR/repos/$t" "$out"; then
        RESTORE[$t]=$T_WALL
        ((T_RSS_KB > RSS[$t])) && RSS[$t]=$T_RSS_KB
        verify_restore "$t" "$out"
        VERIFY[$t]=$V_STATUS
        record "$t" "$LAST" restore "$T_WALL" "$T_RSS_KB" "${REPO[$t]}" "${DATA_BYTES[LAST]}" "$V_STATUS"
        log "$t restore: ${T_WALL}s, verify $V_STATUS"
    else
        VERIFY[$t]="restore failed"; STATUS[$t]="restore failed"
        record "$t" "$LAST" restore "$T_WALL" "$T_RSS_KB" "${REPO[$t]}" "${DATA_BYTES[LAST]}" failed
    fi
    rm -rf "$out"
done

enc_note="unencrypted where possible (borg -e none; strata --no-encryption if offered); restic and rustic always encrypt"
[[ "$ENCRYPTED" == 1 ]] && enc_note="encrypted (borg -e repokey, strata default; strata unlocks with ${STRATA_UNLOCK:-passphrase})"
if [[ " ${TOOL_LIST[*]} " == *" strata "* ]] && ! strata_has_flag encrypt; then
    enc_note+="; strata init has no encryption option (plaintext repository)"
fi
{
    echo
    echo "## strata vs restic / borg / rustic"
    echo
    echo "Data: gen_seedlike.py, $DAYS days (day 0 creates, 1 backup per day), final size $(human "${DATA_BYTES[LAST]}") (${DATA_BYTES[LAST]} B)."
    echo "Each tool's default settings (chunking, compression) except encryption: $enc_note."
    echo "Repositories were created with:"
    echo
    for t in "${TOOL_LIST[@]}"; do echo "  - \`${INIT_CMD[$t]//$BENCH_DIR\//}\`"; done
    echo
    echo "Page cache not dropped between runs. Machine: $(nproc) cores, $(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo); load average (1 min) at start: $LOAD_START, at end: $(loadavg)."
    echo
    echo "Versions:"
    echo
    printf '%s' "$VERSIONS"
    echo
    echo "| tool | backup day 0 (s) | backup later days, mean (s) | restore (s) | verify | repo size (bytes) | peak RSS (MiB) | status |"
    echo "|---|---:|---:|---:|---|---:|---:|---|"
    for t in "${TOOL_LIST[@]}"; do
        mean="-"; ((BN[$t] > 0)) && mean="$(awk -v s="${BSUM[$t]}" -v n="${BN[$t]}" 'BEGIN{printf "%.2f", s/n}')"
        printf '| %s | %s | %s | %s | %s | %s | %s | %s |\n' "$t" "${B0[$t]:--}" "$mean" "${RESTORE[$t]:--}" \
            "${VERIFY[$t]:--}" "${REPO[$t]:--}" "$(awk -v k="${RSS[$t]}" 'BEGIN{printf "%.1f", k/1024}')" "${STATUS[$t]}"
    done
    echo
    echo "Repository growth per day (bytes added, du -sb delta):"
    echo
    printf '| day | data size (bytes) |'; for t in "${TOOL_LIST[@]}"; do printf ' %s |' "$t"; done; echo
    printf '|---:|---:|'; for _ in "${TOOL_LIST[@]}"; do printf -- '---:|'; done; echo
    for ((day = 0; day < DAYS; day++)); do
        printf '| %d | %s |' "$day" "${DATA_BYTES[day]}"
        for t in "${TOOL_LIST[@]}"; do printf ' %s |' "${GROW[$t,$day]:--}"; done; echo
    done
    echo
    echo "Raw measurements: $RESULTS; tool output: $BENCH_DIR/logs/. Total run time: $((SECONDS - START)) s."
} | tee "$BENCH_DIR/report.md"

for t in "${TOOL_LIST[@]}"; do
    if [[ "${STATUS[$t]}" != ok || "${VERIFY[$t]}" != OK ]]; then
        log "some tool failed or did not verify (see status/verify columns)"; exit 1
    fi
done
