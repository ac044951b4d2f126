#!/usr/bin/env bash
# Benchmark strata against restic, borg, rustic, bupstash and a plain `tar | zstd -3` archive on
# the same ageing "seedlike" data set.
#
#   benches/compare.sh [--tools strata,restic,borg,rustic,bupstash,tar]
#
# Environment:
#   TOOLS=strata,restic,borg,rustic,bupstash,tar
#                                     tools to run (default: all six; --tools overrides). `tar` is
#                                     a full `tar -cf - -C DATA . | zstd -3` archive every day (so
#                                     its size accumulates one full copy per day), restored with
#                                     `zstd -d | tar -x`. `strata-plain` (not in the default) is
#                                     strata with --no-encryption even when ENCRYPTED=1, so that
#                                     one run gives both of issue 9's restore ratios:
#                                     ENCRYPTED=1 TOOLS=strata,strata-plain,restic,tar
#   DAYS=5                            days to age the data (day 0 creates it; one backup per day)
#   BENCH_DIR=/tmp/strata-bench       work dir; WIPED at start (data, repos, logs, results.tsv)
#   RESTORE_DIR=/dev/shm/strata-bench-restore
#                                     where the last day is restored: tmpfs, since file creation
#                                     on a virtual disk varies several-fold between runs; WIPED
#   RESTORE_ROUNDS=3                  restore rounds; the tools take turns within each round and
#                                     each round starts with the next tool; min and median reported
#   RESTORE_VERIFY=all                diff -r every restore against the data (`first`: round 1 only)
#   PG_DB=bench                       PostgreSQL database used by the generator; dropped and recreated
#   ENCRYPTED=0                       0: unencrypted where the tool allows it (borg -e none,
#                                     strata --no-encryption if offered; restic/rustic/bupstash
#                                     always encrypt; tar never does)
#                                     1: encrypted everywhere (borg -e repokey)
#   STRATA_INIT_ARGS=                 extra args for `strata init`, e.g. "--chunk-min 65536 ..."
#   STRATA_UNLOCK=passphrase          with ENCRYPTED=1: `passphrase` (STRATA_PASSWORD, one scrypt
#                                     2^16 per command) or `identity` (an age key made with
#                                     age-keygen: `init --recipient`, STRATA_IDENTITY)
#   STRATA_BASELINE=BIN               a second strata binary (e.g. an older commit's
#                                     target/release/strata), run as the tool `strata-base` right
#                                     after `strata` (added to TOOLS if missing), interleaved with
#                                     it day by day and restore round by restore round, set up as
#                                     strata is; the report adds each figure's ratio to it:
#                                     STRATA_BASELINE=/work/wt-base/target/release/strata TOOLS=strata
#
# Installs restic, borgbackup, zstd, postgresql, time (apt), rustic (cargo install rustic-rs) and
# bupstash (cargo install bupstash, after apt libsodium-dev and pkg-config) if missing, builds
# strata with `cargo build --release`, and prints markdown tables; raw numbers go to
# $BENCH_DIR/results.tsv (restore rows: op restore-ROUND), the tables also to $BENCH_DIR/report.md,
# tool output to $BENCH_DIR/logs/. bupstash keeps its send log and stat cache at their defaults
# (under $XDG_CACHE_HOME, which points into $BENCH_DIR/home).
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=compare/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/compare/lib.sh"

TOOLS="${TOOLS:-strata,restic,borg,rustic,bupstash,tar}"
RESTORE_DIR="${RESTORE_DIR:-/dev/shm/strata-bench-restore}"
while (($#)); do
    case "$1" in
        --tools) TOOLS="${2:?--tools needs a value}"; shift 2 ;;
        --tools=*) TOOLS="${1#--tools=}"; shift ;;
        -h|--help) sed -n '2,42p' "$0"; exit 0 ;;
        *) die "unknown argument: $1 (see --help)" ;;
    esac
done
IFS=, read -r -a TOOL_LIST <<<"$TOOLS"
if [[ -n "$STRATA_BASELINE" ]]; then
    [[ -x "$STRATA_BASELINE" ]] || die "STRATA_BASELINE=$STRATA_BASELINE is not an executable"
    if [[ " ${TOOL_LIST[*]} " != *" strata-base "* ]]; then
        # right after strata, so that the two alternate
        with=()
        for t in "${TOOL_LIST[@]}"; do with+=("$t"); [[ "$t" == strata ]] && with+=(strata-base); done
        [[ " ${with[*]} " == *" strata-base "* ]] || with=(strata-base "${with[@]}")
        TOOL_LIST=("${with[@]}")
    fi
fi
for t in "${TOOL_LIST[@]}"; do
    case "$t" in
        strata|strata-plain|restic|borg|rustic|bupstash|tar) ;;
        strata-base) [[ -n "$STRATA_BASELINE" ]] || die "tool strata-base needs STRATA_BASELINE=BIN" ;;
        *) die "unknown tool '$t' in TOOLS (strata,strata-plain,strata-base,restic,borg,rustic,bupstash,tar)";;
    esac
done
[[ "$DAYS" =~ ^[1-9][0-9]*$ ]] || die "DAYS must be a positive integer, got '$DAYS'"
[[ "$RESTORE_ROUNDS" =~ ^[1-9][0-9]*$ ]] || die "RESTORE_ROUNDS must be a positive integer, got '$RESTORE_ROUNDS'"
[[ "$RESTORE_VERIFY" == all || "$RESTORE_VERIFY" == first ]] || die "RESTORE_VERIFY must be all or first, got '$RESTORE_VERIFY'"

START=$SECONDS
LOAD_START="$(loadavg)"
ensure_deps "${TOOL_LIST[@]}"
ensure_postgres
for t in "${TOOL_LIST[@]}"; do [[ "$t" == strata* ]] && { build_strata; break; }; done
reset_workdir
results_init

declare -A STATUS B0 BSUM BN RSS REPO VERIFY GROW INIT_CMD
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
    [[ -n "$STRATA_BASELINE" ]] && INIT_CMD[$t]="${INIT_CMD[$t]/#$STRATA_BASELINE/strata-base}"
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
    # each day starts with the next tool, as restore rounds do, so that no tool always
    # backs up first (cold page cache) or right after another
    for ((i = 0; i < ${#TOOL_LIST[@]}; i++)); do
        t="${TOOL_LIST[(i + day) % ${#TOOL_LIST[@]}]}"
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
OK_TOOLS=()
for t in "${TOOL_LIST[@]}"; do
    if [[ "${STATUS[$t]}" == ok ]]; then OK_TOOLS+=("$t"); else VERIFY[$t]="-"; fi
done
if ((${#OK_TOOLS[@]})); then
    log "restoring day $LAST into $RESTORE_DIR: $RESTORE_ROUNDS round(s) of ${OK_TOOLS[*]}"
    restore_rounds "$BENCH_DIR/repos" "$RESTORE_DIR" "$LAST" "${DATA_BYTES[LAST]}" "${OK_TOOLS[@]}"
fi
for t in "${OK_TOOLS[@]}"; do
    VERIFY[$t]="${RT_VERIFY[$t]}"
    ((RT_RSS[$t] > RSS[$t])) && RSS[$t]=${RT_RSS[$t]}
    [[ "${RT_VERIFY[$t]}" == "restore failed" ]] && STATUS[$t]="restore failed"
done

enc_note="unencrypted where possible (borg -e none; strata --no-encryption if offered); restic, rustic and bupstash always encrypt, tar|zstd never"
[[ "$ENCRYPTED" == 1 ]] && enc_note="encrypted (borg -e repokey, strata default; strata unlocks with ${STRATA_UNLOCK:-passphrase}; tar|zstd is not encrypted)"
[[ " ${TOOL_LIST[*]} " == *" strata-plain "* ]] && enc_note+="; strata-plain is strata with --no-encryption"
if [[ " ${TOOL_LIST[*]} " == *" strata "* ]] && ! strata_has_flag encrypt; then
    enc_note+="; strata init has no encryption option (plaintext repository)"
fi
{
    echo
    echo "## strata vs $(for t in "${TOOL_LIST[@]}"; do [[ "$t" == strata ]] || printf '%s / ' "$(tool_label "$t")"; done | sed 's| / $||')"
    echo
    echo "Data: gen_seedlike.py, $DAYS days (day 0 creates, 1 backup per day), final size $(human "${DATA_BYTES[LAST]}") (${DATA_BYTES[LAST]} B)."
    echo "Each tool's default settings (chunking, compression) except encryption: $enc_note."
    echo "Repositories were created with:"
    echo
    for t in "${TOOL_LIST[@]}"; do
        case "$t" in
            tar) echo "  - tar: \`tar -cf - -C data . | zstd -3 -q -o dayNNNN.tar.zst\` each day (a full copy)" ;;
            bupstash) echo "  - \`bupstash new-key -o repos/bupstash.key\`, \`${INIT_CMD[$t]//$BENCH_DIR\//}\`" ;;
            *) echo "  - \`${INIT_CMD[$t]//$BENCH_DIR\//}\`" ;;
        esac
    done
    echo
    echo "Restore: the last day into tmpfs ($RESTORE_DIR), $RESTORE_ROUNDS round(s), tools interleaved (each round starts with the next tool); every restore checked with diff -r$([[ "$RESTORE_VERIFY" == first ]] && echo " in round 1"). strata restores \`latest:$DATA\` (the contents); the others as noted in benches/compare/lib.sh (tool_restore)."
    echo
    echo "Page cache not dropped between runs. Machine: $(nproc) cores, $(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo); load average (1 min) at start: $LOAD_START, at end: $(loadavg)."
    echo
    echo "Versions:"
    echo
    printf '%s' "$VERSIONS"
    echo
    echo "| tool | backup day 0 (s) | backup later days, mean (s) | restore min (s) | restore median (s) | verify | repo size (bytes) | peak RSS (MiB) | status |"
    echo "|---|---:|---:|---:|---:|---|---:|---:|---|"
    for t in "${TOOL_LIST[@]}"; do
        mean="-"; ((BN[$t] > 0)) && mean="$(awk -v s="${BSUM[$t]}" -v n="${BN[$t]}" 'BEGIN{printf "%.2f", s/n}')"
        printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$(tool_label "$t")" "${B0[$t]:--}" "$mean" \
            "$(tmin "${RT_TIMES[$t]:-}")" "$(tmedian "${RT_TIMES[$t]:-}")" "${VERIFY[$t]:--}" "${REPO[$t]:--}" "$(awk -v k="${RSS[$t]}" 'BEGIN{printf "%.1f", k/1024}')" "${STATUS[$t]}"
    done
    echo
    echo "Repository growth per day (bytes added, du -sb delta):"
    echo
    printf '| day | data size (bytes) |'; for t in "${TOOL_LIST[@]}"; do printf ' %s |' "$(tool_label "$t")"; done; echo
    printf '|---:|---:|'; for _ in "${TOOL_LIST[@]}"; do printf -- '---:|'; done; echo
    for ((day = 0; day < DAYS; day++)); do
        printf '| %d | %s |' "$day" "${DATA_BYTES[day]}"
        for t in "${TOOL_LIST[@]}"; do printf ' %s |' "${GROW[$t,$day]:--}"; done; echo
    done
    echo
    # issue 9's restore targets, from the medians: unencrypted strata within
    # 1.1x of zstd -d | tar -x, encrypted strata at most 0.34x of restic
    ratio() {
        local a b
        a="$(tmedian "${RT_TIMES[$1]:-}")"; b="$(tmedian "${RT_TIMES[$2]:-}")"
        [[ "$a" != - && "$b" != - ]] && awk -v a="$a" -v b="$b" 'BEGIN{if (b > 0) printf "%.2f", a/b; else printf "-"}' || printf -- -
    }
    plain=strata; [[ "$ENCRYPTED" == 1 ]] && plain=strata-plain
    if [[ -n "${RT_TIMES[$plain]:-}" && -n "${RT_TIMES[tar]:-}" ]]; then
        echo "Restore, unencrypted strata ($plain) against \`zstd -d | tar -x\` (medians): $(ratio "$plain" tar)x (target: at most 1.1x)."
        echo
    fi
    if [[ "$ENCRYPTED" == 1 && -n "${RT_TIMES[strata]:-}" && -n "${RT_TIMES[restic]:-}" ]]; then
        echo "Restore, encrypted strata against restic (medians): $(ratio strata restic)x (target: at most 0.34x)."
        echo
    fi
    if [[ -n "${RT_TIMES[strata]:-}" && -n "${RT_TIMES[strata-base]:-}" ]]; then
        # strata over strata-base, figure by figure (1.00 = the same; within 5% = 0.95..1.05)
        rel() { awk -v a="$1" -v b="$2" 'BEGIN{if (a != "-" && b != "-" && b > 0) printf "%.3f", a/b; else printf "-"}'; }
        mean_of() { ((BN[$1] > 0)) && awk -v s="${BSUM[$1]}" -v n="${BN[$1]}" 'BEGIN{printf "%.2f", s/n}' || printf -- -; }
        echo "strata against strata-base ($STRATA_BASELINE), same run: restore median $(tmedian "${RT_TIMES[strata]}") vs $(tmedian "${RT_TIMES[strata-base]}") s ($(rel "$(tmedian "${RT_TIMES[strata]}")" "$(tmedian "${RT_TIMES[strata-base]}")")x), restore min $(tmin "${RT_TIMES[strata]}") vs $(tmin "${RT_TIMES[strata-base]}") s ($(rel "$(tmin "${RT_TIMES[strata]}")" "$(tmin "${RT_TIMES[strata-base]}")")x), backup day 0 ${B0[strata]:--} vs ${B0[strata-base]:--} s ($(rel "${B0[strata]:--}" "${B0[strata-base]:--}")x), later days mean $(mean_of strata) vs $(mean_of strata-base) s ($(rel "$(mean_of strata)" "$(mean_of strata-base)")x)."
        echo
    fi
    echo "Raw measurements: $RESULTS; tool output: $BENCH_DIR/logs/. Total run time: $((SECONDS - START)) s."
} | tee "$BENCH_DIR/report.md"

for t in "${TOOL_LIST[@]}"; do
    if [[ "${STATUS[$t]}" != ok || "${VERIFY[$t]}" != OK ]]; then
        log "some tool failed or did not verify (see status/verify columns)"; exit 1
    fi
done
