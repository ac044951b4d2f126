#!/usr/bin/env bash
# S3 figures for the README (issue 11), against one moto S3 server on 127.0.0.1:
#   - backup:  `strata snapshot` straight to s3://     next to `restic backup` to the same server
#   - restore: `strata restore` straight from s3://    next to `restic restore` (into /dev/shm)
#   - sync:    `strata sync` of a local repository to s3:// next to `rclone sync` of its directory
#
#   benches/s3.sh
#
# Environment:
#   ROUNDS=3                     rounds; within each the tools take turns (the first tool alternates)
#                                and moto is restarted empty; medians (and minima) reported
#   BENCH_DIR=/tmp/strata-s3-bench   work dir; WIPED at start
#   RESTORE_DIR=/dev/shm/strata-s3-restore   restore target (tmpfs); WIPED
#   BIG_MIB=200                  size of the one random file added to the seedlike data
#   JOBS=8                       uploads in flight: strata sync --jobs, rclone --transfers
#   STRATA_UNLOCK=passphrase     `identity`: strata uses an age identity key file (no scrypt), as compare.sh
#
# Data: `gen_seedlike.py DATA --day 0` (no PostgreSQL dump) plus one BIG_MIB random file. Both tools
# encrypt (strata's default, restic always). Needs moto_server (PyPI moto[server]), restic, rclone
# (apt-get install -y rclone) and /usr/bin/time; builds strata with `cargo build --release`.
# Tables on stdout and in $BENCH_DIR/report.md; tool output in $BENCH_DIR/logs/.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=compare/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/compare/lib.sh"

BENCH_DIR="${BENCH_DIR:-/tmp/strata-s3-bench}"
RESTORE_DIR="${RESTORE_DIR:-/dev/shm/strata-s3-restore}"
ROUNDS="${ROUNDS:-3}"
BIG_MIB="${BIG_MIB:-200}"
JOBS="${JOBS:-8}"
BUCKET=bench
[[ "$ROUNDS" =~ ^[1-9][0-9]*$ ]] || die "ROUNDS must be a positive integer, got '$ROUNDS'"
case "${1:-}" in -h|--help) sed -n '2,22p' "$0"; exit 0;; "") ;; *) die "unknown argument: $1";; esac

for t in moto_server restic rclone /usr/bin/time; do
    command -v "$t" >/dev/null || die "$t is not installed (see --help)"
done
build_strata
case "$BENCH_DIR" in /|"") die "refusing BENCH_DIR='$BENCH_DIR'";; esac
case "$RESTORE_DIR" in /|"") die "refusing RESTORE_DIR='$RESTORE_DIR'";; esac
rm -rf "$BENCH_DIR" "$RESTORE_DIR"
mkdir -p "$BENCH_DIR"/{logs,home} "$RESTORE_DIR"
export XDG_CACHE_HOME="$BENCH_DIR/home/cache" XDG_CONFIG_HOME="$BENCH_DIR/home/config"
DATA="$BENCH_DIR/data"
LOCAL="$BENCH_DIR/local-repo"

# ---------------------------------------------------------------- moto

MOTO_PID=""
PORT=""
stop_moto() {
    if [[ -n "$MOTO_PID" ]]; then kill "$MOTO_PID" 2>/dev/null || true; wait "$MOTO_PID" 2>/dev/null || true; fi
    MOTO_PID=""
}
trap stop_moto EXIT
# start_moto: a fresh, empty moto on a free port with bucket $BUCKET; sets PORT and the env of
# the three clients.
start_moto() {
    stop_moto
    PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
    moto_server -H 127.0.0.1 -p "$PORT" >"$BENCH_DIR/logs/moto-$PORT.log" 2>&1 &
    MOTO_PID=$!
    local i
    for i in $(seq 100); do
        curl -s -o /dev/null "http://127.0.0.1:$PORT/" && break
        sleep 0.1
    done
    curl -sf -X PUT "http://127.0.0.1:$PORT/$BUCKET" -o /dev/null || die "moto did not start"
    export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_REGION=us-east-1 \
        AWS_DEFAULT_REGION=us-east-1 AWS_ENDPOINT_URL="http://127.0.0.1:$PORT" AWS_ALLOW_HTTP=true
    export RCLONE_CONFIG_MOTO_TYPE=s3 RCLONE_CONFIG_MOTO_PROVIDER=Other \
        RCLONE_CONFIG_MOTO_ENDPOINT="http://127.0.0.1:$PORT" RCLONE_CONFIG_MOTO_ACCESS_KEY_ID=testing \
        RCLONE_CONFIG_MOTO_SECRET_ACCESS_KEY=testing RCLONE_CONFIG_MOTO_REGION=us-east-1
}

# ---------------------------------------------------------------- data

log "generating data: seedlike day 0 + ${BIG_MIB} MiB random"
python3 "$GEN" "$DATA" --day 0 >"$BENCH_DIR/logs/gen.log" 2>&1 || die "generator failed"
head -c "$((BIG_MIB << 20))" /dev/urandom >"$DATA/big-random.bin"
DATA_BYTES="$(du -sb "$DATA" | cut -f1)"
DATA_FILES="$(find "$DATA" -type f | wc -l)"
log "data: $(human "$DATA_BYTES") in $DATA_FILES files"

# STRATA_UNLOCK=identity: strata's repositories get an age identity key file instead of the
# passphrase (issue 27: the passphrase's scrypt, N=2^18, takes 256 MiB per command and hides what
# the restore itself uses); restic keeps its password.
INIT_ARGS=()
if [ "${STRATA_UNLOCK:-passphrase}" = identity ]; then
    age-keygen -o "$BENCH_DIR/strata-identity.txt" 2>/dev/null
    INIT_ARGS=(--recipient "$(age-keygen -y "$BENCH_DIR/strata-identity.txt")")
    unset STRATA_PASSWORD; export STRATA_IDENTITY="$BENCH_DIR/strata-identity.txt"
fi

# The local repository that both sync tools copy (made once; its index.sqlite, locks/ and tmp/
# are not copied by strata sync, and excluded from rclone's copy too).
STRATA_CACHE_DIR="$BENCH_DIR/cache-local" "$STRATA" --repo "$LOCAL" init "${INIT_ARGS[@]}" >"$BENCH_DIR/logs/local-init.log" 2>&1
STRATA_CACHE_DIR="$BENCH_DIR/cache-local" "$STRATA" --repo "$LOCAL" snapshot "$DATA" \
    >"$BENCH_DIR/logs/local-snapshot.log" 2>&1 || die "local snapshot failed"
SYNC_BYTES="$(du -sb --exclude='index.sqlite*' --exclude=locks --exclude=tmp "$LOCAL" | cut -f1)"
SYNC_PACKS="$(find "$LOCAL/packs" -type f | wc -l)"
log "local repository: $(human "$SYNC_BYTES") ($SYNC_PACKS packs)"

# ---------------------------------------------------------------- one measurement each

declare -A WALL RSS
add() { WALL[$1]="${WALL[$1]:-} $T_WALL"; RSS[$1]="${RSS[$1]:-} $T_RSS_KB"; }

backup() { # TOOL ROUND
    case "$1" in
        strata)
            STRATA_CACHE_DIR="$BENCH_DIR/cache-$2" "$STRATA" --repo "s3://$BUCKET/strata" init "${INIT_ARGS[@]}" \
                >"$BENCH_DIR/logs/strata-init-$2.log" 2>&1 || die "strata init failed"
            timed "strata-backup-$2" env STRATA_CACHE_DIR="$BENCH_DIR/cache-$2" \
                "$STRATA" --repo "s3://$BUCKET/strata" snapshot "$DATA" || die "strata snapshot failed"
            ;;
        restic)
            restic -r "s3:http://127.0.0.1:$PORT/$BUCKET/restic" init \
                >"$BENCH_DIR/logs/restic-init-$2.log" 2>&1 || die "restic init failed"
            timed "restic-backup-$2" restic -r "s3:http://127.0.0.1:$PORT/$BUCKET/restic" \
                backup "$DATA" || die "restic backup failed"
            ;;
    esac
    add "backup-$1"
}

restore() { # TOOL ROUND
    rm -rf "$RESTORE_DIR"; mkdir -p "$RESTORE_DIR"
    case "$1" in
        strata)
            timed "strata-restore-$2" env STRATA_CACHE_DIR="$BENCH_DIR/cache-$2" \
                "$STRATA" --repo "s3://$BUCKET/strata" restore latest --target "$RESTORE_DIR" \
                || die "strata restore failed"
            ;;
        restic)
            timed "restic-restore-$2" restic -r "s3:http://127.0.0.1:$PORT/$BUCKET/restic" \
                restore latest --target "$RESTORE_DIR" || die "restic restore failed"
            ;;
    esac
    add "restore-$1"
    if [[ "$2" == 1 ]]; then
        diff -r "$DATA" "$RESTORE_DIR$DATA" >/dev/null || die "$1: the restore differs from the data"
    fi
    rm -rf "$RESTORE_DIR"
}

sync_to() { # TOOL ROUND
    case "$1" in
        strata)
            timed "strata-sync-$2" env STRATA_CACHE_DIR="$BENCH_DIR/cache-local" \
                "$STRATA" --repo "$LOCAL" sync "s3://$BUCKET/sync-strata" --jobs "$JOBS" \
                || die "strata sync failed"
            ;;
        rclone)
            timed "rclone-sync-$2" env -u AWS_CA_BUNDLE rclone sync "$LOCAL" "moto:$BUCKET/sync-rclone" \
                --transfers "$JOBS" --exclude 'index.sqlite*' --exclude 'locks/**' --exclude 'tmp/**' \
                || die "rclone sync failed"
            ;;
    esac
    add "sync-$1"
}

# ---------------------------------------------------------------- rounds

LOAD_START="$(loadavg)"
for r in $(seq "$ROUNDS"); do
    start_moto
    if ((r % 2)); then backup_order=(strata restic); sync_order=(strata rclone)
    else backup_order=(restic strata); sync_order=(rclone strata); fi
    log "round $r/$ROUNDS (moto on port $PORT): ${backup_order[*]}"
    for t in "${backup_order[@]}"; do backup "$t" "$r"; done
    for t in "${backup_order[@]}"; do restore "$t" "$r"; done
    for t in "${sync_order[@]}"; do sync_to "$t" "$r"; done
done
stop_moto
LOAD_END="$(loadavg)"

# ---------------------------------------------------------------- report

mbs() { awk -v b="$1" -v s="$2" 'BEGIN{ if (s > 0) printf "%.0f", b / s / 1048576; else printf "-" }'; }
peak_mib() { tr ' ' '\n' <<<"$1" | awk 'NF{if($1>m)m=$1} END{printf "%.0f", m/1024}'; }
row() { # LABEL KEY BYTES
    local med; med="$(tmedian "${WALL[$2]}")"
    printf '| %s | %s | %s s | %s MiB/s | %s MiB |\n' "$1" "${WALL[$2]# }" "$med" \
        "$(mbs "$3" "$med")" "$(peak_mib "${RSS[$2]}")"
}
{
    printf '%s, %s rounds, load average %s -> %s; moto %s, %s, %s, %s.\n\n' "$(date -u +%Y-%m-%d)" \
        "$ROUNDS" "$LOAD_START" "$LOAD_END" "$(python3 -c 'import moto; print(moto.__version__)')" \
        "$("$STRATA" --version 2>/dev/null || echo strata)" "$(restic version | cut -d' ' -f1-2)" \
        "$(rclone version | head -1)"
    printf 'Data: %s in %s files (seedlike day 0 + %s MiB random); local repository for sync: %s in %s packs.\n\n' \
        "$(human "$DATA_BYTES")" "$DATA_FILES" "$BIG_MIB" "$(human "$SYNC_BYTES")" "$SYNC_PACKS"
    printf '| operation | seconds per round | median | throughput | peak RSS |\n|---|---|---|---|---|\n'
    row "strata snapshot -> s3://" backup-strata "$DATA_BYTES"
    row "restic backup -> s3:" backup-restic "$DATA_BYTES"
    row "strata restore <- s3:// (to /dev/shm)" restore-strata "$DATA_BYTES"
    row "restic restore <- s3: (to /dev/shm)" restore-restic "$DATA_BYTES"
    row "strata sync (--jobs $JOBS) local -> s3://" sync-strata "$SYNC_BYTES"
    row "rclone sync (--transfers $JOBS) local -> s3" sync-rclone "$SYNC_BYTES"
} | tee "$BENCH_DIR/report.md"
