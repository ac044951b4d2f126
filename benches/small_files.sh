#!/usr/bin/env bash
# Many small files: backup time, repository size, restore time and restore memory for strata
# against a plain `tar | zstd -3` archive (optionally restic, bupstash, borg, rustic), with the
# data, the repositories and the restores all in tmpfs so the disk does not blur the figures.
#
#   benches/small_files.sh [--tools strata,tar,...] [--slow]
#
# Environment:
#   N_DIRS=1000                       directories
#   N_FILES=1000                      files per directory (default 1000 x 1000 = 1M files)
#   FILE_SIZE=60                      bytes per file: a distinct JSON record per file, padded
#   TOOLS=strata,tar                  tools to run (--tools overrides); any of strata, tar,
#                                     restic, bupstash, borg, rustic. --slow adds restic and
#                                     bupstash, which take many minutes on 1M files
#   SHM_DIR=/dev/shm/strata-small     data, repositories, restores and the tools' caches; WIPED at
#                                     start and removed at exit unless KEEP_SHM=1. tmpfs gives
#                                     every file a 4 KiB page: 1M files take ~4 GiB per copy, and
#                                     the data plus one restore exist at a time (~9 GiB with inodes)
#   BENCH_DIR=/tmp/strata-small-bench logs, results.tsv and report.md; WIPED at start
#   RESTORE_ROUNDS=1                  restores per tool, interleaved as in compare.sh; min and
#                                     median reported
#   RESTORE_VERIFY=all                diff -r every restore against the data (`first`: round 1)
#   ENCRYPTED=0                       0: strata init --no-encryption, borg -e none (restic and
#                                     bupstash always encrypt); 1: strata's default encryption
#   KEEP_SHM=0                        1: leave $SHM_DIR in place at exit (data, repositories)
#
# Each tool makes one backup of the data, then restores it into $SHM_DIR/restore/TOOL under
# /usr/bin/time -v (wall time, "Maximum resident set size"), checked with diff -r and removed.
# Builds strata with `cargo build --release`, installs missing tools as compare.sh does, prints a
# markdown table; raw figures go to $BENCH_DIR/results.tsv, the table also to $BENCH_DIR/report.md.
set -euo pipefail

BENCH_DIR="${BENCH_DIR:-/tmp/strata-small-bench}"
RESTORE_ROUNDS="${RESTORE_ROUNDS:-1}"
NEED_PG=0
DATA_MARKERS="d0000"
# shellcheck source-path=SCRIPTDIR source=compare/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/compare/lib.sh"

N_DIRS="${N_DIRS:-1000}"
N_FILES="${N_FILES:-1000}"
FILE_SIZE="${FILE_SIZE:-60}"
SHM_DIR="${SHM_DIR:-/dev/shm/strata-small}"
KEEP_SHM="${KEEP_SHM:-0}"
TOOLS="${TOOLS:-strata,tar}"
SLOW=0
while (($#)); do
    case "$1" in
        --tools) TOOLS="${2:?--tools needs a value}"; shift 2 ;;
        --tools=*) TOOLS="${1#--tools=}"; shift ;;
        --slow) SLOW=1; shift ;;
        -h|--help) sed -n '2,30p' "$0"; exit 0 ;;
        *) die "unknown argument: $1 (see --help)" ;;
    esac
done
((SLOW)) && TOOLS+=",restic,bupstash"
IFS=, read -r -a TOOL_LIST <<<"$TOOLS"
declare -A SEEN
UNIQ=()
for t in "${TOOL_LIST[@]}"; do
    case "$t" in strata|tar|restic|bupstash|borg|rustic) ;; *) die "unknown tool '$t' (strata,tar,restic,bupstash,borg,rustic)";; esac
    [[ -n "${SEEN[$t]:-}" ]] || UNIQ+=("$t"); SEEN[$t]=1
done
TOOL_LIST=("${UNIQ[@]}")
for v in N_DIRS N_FILES FILE_SIZE RESTORE_ROUNDS; do
    [[ "${!v}" =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive integer, got '${!v}'"
done
((N_DIRS <= 10000 && N_FILES <= 10000)) || die "N_DIRS and N_FILES are at most 10000 (4-digit names)"
[[ "$RESTORE_VERIFY" == all || "$RESTORE_VERIFY" == first ]] || die "RESTORE_VERIFY must be all or first, got '$RESTORE_VERIFY'"
for d in "$BENCH_DIR" "$SHM_DIR"; do case "${d%/}" in ""|/dev/shm|/tmp|/dev|/run) die "refusing to wipe '$d'";; esac; done

START=$SECONDS
LOAD_START="$(loadavg)"
ensure_deps "${TOOL_LIST[@]}"
for t in "${TOOL_LIST[@]}"; do [[ "$t" == strata ]] && build_strata; done

log "resetting $BENCH_DIR and $SHM_DIR"
rm -rf "$BENCH_DIR" "$SHM_DIR"
mkdir -p "$BENCH_DIR/logs" "$SHM_DIR"/{repos,home}
cleanup() { [[ "$KEEP_SHM" == 1 ]] || rm -rf "$SHM_DIR"; }
trap cleanup EXIT
DATA="$SHM_DIR/data"
export XDG_CACHE_HOME="$SHM_DIR/home/cache" XDG_CONFIG_HOME="$SHM_DIR/home/config"
export BORG_BASE_DIR="$SHM_DIR/home/borg"
results_init

NFILES=$((N_DIRS * N_FILES))
log "generating $N_DIRS x $N_FILES files of $FILE_SIZE bytes into $DATA"
gen_start=$SECONDS
python3 - "$DATA" "$N_DIRS" "$N_FILES" "$FILE_SIZE" <<'EOF' || die "generating the data failed"
import os, random, sys
root, nd, nf, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
rng = random.Random(42)
flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
for d in range(nd):
    dd = f"{root}/d{d:04d}"
    os.makedirs(dd)
    for f in range(nf):
        rec = f'{{"d":{d},"f":{f},"v":"{rng.getrandbits(64):016x}"}}'.ljust(size - 1)[: size - 1] + "\n"
        fd = os.open(f"{dd}/f{f:04d}.json", flags, 0o644)
        os.write(fd, rec.encode())
        os.close(fd)
EOF
GEN_S=$((SECONDS - gen_start))
DATA_BYTES="$(du -sb "$DATA" | cut -f1)"
log "data: $NFILES files, $((NFILES * FILE_SIZE)) bytes of content, du -sb $DATA_BYTES, generated in ${GEN_S}s"

VERSIONS=""
for t in "${TOOL_LIST[@]}"; do VERSIONS+="  - $t: $(tool_version "$t")"$'\n'; done
printf 'versions:\n%s' "$VERSIONS" >&2

declare -A STATUS BACKUP BRSS REPO
OK_TOOLS=()
for t in "${TOOL_LIST[@]}"; do
    STATUS[$t]=ok
    repo="$SHM_DIR/repos/$t"
    log "$t: init and backup"
    if ! tool_init "$t" "$repo"; then
        STATUS[$t]="init failed"; record "$t" 0 init "$T_WALL" "$T_RSS_KB" 0 "$DATA_BYTES" failed; continue
    fi
    if tool_backup "$t" "$repo" 0; then st=ok; else st=failed; STATUS[$t]="backup failed"; fi
    BACKUP[$t]=$T_WALL; BRSS[$t]=$T_RSS_KB; REPO[$t]="$(repo_bytes "$repo")"
    record "$t" 0 backup "$T_WALL" "$T_RSS_KB" "${REPO[$t]}" "$DATA_BYTES" "$st"
    log "$t backup: ${T_WALL}s, peak RSS $((T_RSS_KB / 1024)) MiB, repository $(human "${REPO[$t]}") [$st]"
    [[ "$st" == ok ]] && OK_TOOLS+=("$t")
done

if ((${#OK_TOOLS[@]})); then
    log "restoring into $SHM_DIR/restore: $RESTORE_ROUNDS round(s) of ${OK_TOOLS[*]}"
    restore_rounds "$SHM_DIR/repos" "$SHM_DIR/restore" 0 "$DATA_BYTES" "${OK_TOOLS[@]}"
fi
for t in "${OK_TOOLS[@]}"; do
    [[ "${RT_VERIFY[$t]}" == "restore failed" ]] && STATUS[$t]="restore failed"
done

mib() { awk -v k="$1" 'BEGIN{printf "%.1f", k/1024}'; }
{
    echo
    echo "## Small files: $N_DIRS directories x $N_FILES files of $FILE_SIZE bytes ($NFILES files)"
    echo
    echo "Data, repositories and restores in tmpfs ($SHM_DIR); data generated in ${GEN_S} s, du -sb $DATA_BYTES bytes ($((NFILES * FILE_SIZE)) bytes of file content)."
    echo
    for t in "${TOOL_LIST[@]}"; do
        case "$t" in
            strata) echo "  - strata: \`init$([[ "$ENCRYPTED" != 1 ]] && strata_has_flag --no-encryption && echo " --no-encryption")\`, \`snapshot DATA\`, \`restore latest:DATA --target OUT\`" ;;
            tar) echo "  - tar|zstd: \`tar -cf - -C DATA . | zstd -3\`, restore \`zstd -d | tar -x\`" ;;
            *) echo "  - $t: see tool_init / tool_backup / tool_restore in benches/compare/lib.sh" ;;
        esac
    done
    echo
    echo "Restore: $RESTORE_ROUNDS round(s), tools interleaved; verified with diff -r$([[ "$RESTORE_VERIFY" == first ]] && echo " in round 1"). Wall time and peak RSS from /usr/bin/time -v."
    echo "Machine: $(nproc) cores, $(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo); load average (1 min) at start: $LOAD_START, at end: $(loadavg)."
    echo
    echo "Versions:"
    echo
    printf '%s' "$VERSIONS"
    echo
    echo "| tool | backup (s) | backup peak RSS (MiB) | repository (bytes) | restore min (s) | restore median (s) | restore peak RSS (MiB) | verify | status |"
    echo "|---|---:|---:|---:|---:|---:|---:|---|---|"
    for t in "${TOOL_LIST[@]}"; do
        rrss="-"; [[ -n "${RT_TIMES[$t]:-}" ]] && rrss="$(mib "${RT_RSS[$t]}")"
        printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$(tool_label "$t")" "${BACKUP[$t]:--}" \
            "$(mib "${BRSS[$t]:-0}")" "${REPO[$t]:--}" "$(tmin "${RT_TIMES[$t]:-}")" "$(tmedian "${RT_TIMES[$t]:-}")" \
            "$rrss" "${RT_VERIFY[$t]:--}" "${STATUS[$t]}"
    done
    echo
    echo "Raw measurements: $RESULTS; tool output: $BENCH_DIR/logs/. Total run time: $((SECONDS - START)) s."
} | tee "$BENCH_DIR/report.md"

for t in "${TOOL_LIST[@]}"; do
    if [[ "${STATUS[$t]}" != ok || "${RT_VERIFY[$t]:-}" != OK ]]; then
        log "some tool failed or did not verify (see the status and verify columns)"; exit 1
    fi
done
