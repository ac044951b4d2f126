#!/usr/bin/env bash
# Recovery time (issue 22), in one run on this machine: a bare-machine
#   strata --identity RECOVERY-KEY recover --all --from s3://… --yes
# from an empty HOME and cache (the repository on a moto S3 server on
# 127.0.0.1), against the users' way: `tar -x` of a .tar.zst of the files
# plus `psql` of the dump plus redis's dump.rdb put back. Both end
# identical to the data before the disaster (checked: file contents,
# PostgreSQL tables by checksum, redis DEBUG DIGEST).
#
#   benches/recover.sh
#
# Environment:
#   BENCH_DIR=/tmp/strata-recover-bench   work dir; WIPED at start
#   PG_DB=recover_bench                   PostgreSQL database (dropped and made again)
#   SCALE=1                               gen_seedlike.py --scale
#   REDIS_KEYS=200000                     keys loaded into redis (~100 bytes each)
#   STRATA_BIN                            a strata binary instead of `cargo build --release`
#
# Data: `gen_seedlike.py DATA --day 0 --pg PG_DB` (the files, and the
# database it fills) plus a redis-server of REDIS_KEYS keys. Needs
# PostgreSQL (the current user may create databases), redis-server,
# moto_server (PyPI moto[server]), zstd. Report on stdout and in
# $BENCH_DIR/report.md; tool output in $BENCH_DIR/logs/.
set -euo pipefail

# before lib.sh, which has its own defaults for these two
BENCH_DIR="${BENCH_DIR:-/tmp/strata-recover-bench}"
PG_DB="${PG_DB:-recover_bench}"
# shellcheck source-path=SCRIPTDIR source=compare/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/compare/lib.sh"
# lib.sh exports the peers' passwords and STRATA_PASSWORD, which would
# win over the policy's password_file: the policy unlocks here
unset STRATA_PASSWORD
SCALE="${SCALE:-1}"
REDIS_KEYS="${REDIS_KEYS:-200000}"
GEN="${GEN:-$REPO_ROOT/../shared/bench/gen_seedlike.py}"
case "${1:-}" in -h|--help) sed -n '2,24p' "$0"; exit 0;; "") ;; *) die "unknown argument: $1";; esac
for t in moto_server redis-server redis-cli psql pg_dump zstd; do
    command -v "$t" >/dev/null || die "$t is not installed (see --help)"
done
[[ -f "$GEN" ]] || die "no $GEN"
build_strata
case "$BENCH_DIR" in /|"") die "refusing BENCH_DIR='$BENCH_DIR'";; esac
rm -rf "$BENCH_DIR"
mkdir -p "$BENCH_DIR"/{logs,home,redis,bare-home,bare-cwd}
export XDG_CACHE_HOME="$BENCH_DIR/home/cache" XDG_CONFIG_HOME="$BENCH_DIR/home/config"
DATA="$BENCH_DIR/srv/bridge"
RDIR="$BENCH_DIR/redis"
now() { date +%s.%N; }
secs() { python3 -c "print(f'{$2 - $1:.1f}')"; }

# ---------------------------------------------------------------- services
MOTO_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
REDIS_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
moto_server -H 127.0.0.1 -p "$MOTO_PORT" >"$BENCH_DIR/logs/moto.log" 2>&1 &
MOTO_PID=$!
REDIS_START="redis-server --bind 127.0.0.1 --port $REDIS_PORT --dir $RDIR --dbfilename dump.rdb --save '' --appendonly no --enable-debug-command yes --daemonize yes --pidfile $RDIR/redis.pid --logfile $RDIR/redis.log"
cleanup() {
    redis-cli -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true
    kill "$MOTO_PID" 2>/dev/null || true
}
trap cleanup EXIT
export AWS_ENDPOINT_URL="http://127.0.0.1:$MOTO_PORT" AWS_ALLOW_HTTP=true \
    AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench AWS_REGION=us-east-1
for _ in $(seq 100); do curl -sf "$AWS_ENDPOINT_URL" >/dev/null 2>&1 && break; sleep 0.1; done
curl -sf -X PUT "$AWS_ENDPOINT_URL/bench" >/dev/null
redis_wait() { until redis-cli -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG; do sleep 0.05; done; }
sh -c "$REDIS_START"; redis_wait

# ---------------------------------------------------------------- data
service_data 22
WANT="$(files_digest) $(pg_digest) $(redis_digest)"
DATA_MB=$(du -sm "$DATA" | cut -f1)
NFILES=$(find "$DATA" -type f | wc -l)
log "data: $NFILES files, $DATA_MB MiB; digests $WANT"

# ---------------------------------------------------------------- backups
cat >"$BENCH_DIR/strata.toml" <<TOML
repository = "s3://bench/strata"
password_file = "$BENCH_DIR/pass"

[sources.files]
paths = ["$DATA"]

[sources.postgres]
command = "pg_dump --clean --if-exists --no-owner $PG_DB"
name = "postgres.sql"
restore_command = "psql -X -q -v ON_ERROR_STOP=1 --single-transaction -d $PG_DB"
health_check = "psql -X -tA -d $PG_DB -c 'SELECT 1'"

[sources.redis]
command = "redis-cli -p $REDIS_PORT --rdb -"
name = "dump.rdb"
before_restore = "redis-cli -p $REDIS_PORT shutdown nosave"
restore_command = "cat > $RDIR/dump.rdb.new && mv $RDIR/dump.rdb.new $RDIR/dump.rdb"
after_restore = "$REDIS_START"
health_check = "until redis-cli -p $REDIS_PORT ping | grep -q PONG; do sleep 0.05; done"
TOML
echo "bench passphrase" >"$BENCH_DIR/pass"
STRATA_PASSWORD="bench passphrase" "$STRATA" --repo s3://bench/strata init >"$BENCH_DIR/logs/init.log" 2>&1
t=$(now); "$STRATA" run --config "$BENCH_DIR/strata.toml" >"$BENCH_DIR/logs/run.log" 2>&1
log "strata run (backup to moto): $(secs "$t" "$(now)") s"
"$STRATA" --repo s3://bench/strata --password-file "$BENCH_DIR/pass" key export-recovery \
    >"$BENCH_DIR/recovery.txt" 2>/dev/null
# the users' way: a .tar.zst of the files, the dump, dump.rdb
t=$(now)
tar -C / -cf - "${DATA#/}" | zstd -q -T0 -3 >"$BENCH_DIR/files.tar.zst"
pg_dump --clean --if-exists --no-owner "$PG_DB" >"$BENCH_DIR/postgres.sql"
redis-cli -p "$REDIS_PORT" --rdb "$BENCH_DIR/dump.rdb" >/dev/null 2>&1
log "users' backup (tar | zstd, pg_dump, redis-cli --rdb): $(secs "$t" "$(now)") s"

# ---------------------------------------------------------------- the disaster
disaster() {
    rm -rf "$BENCH_DIR/srv"
    dropdb "$PG_DB"; createdb "$PG_DB"     # a new machine: PostgreSQL installed, the database made
    redis-cli -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true
    rm -f "$RDIR/dump.rdb"; sh -c "$REDIS_START"; redis_wait
    sync; echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true
}
check() {
    local got; got="$(files_digest) $(pg_digest) $(redis_digest)"
    [[ "$got" == "$WANT" ]] || die "$1: not identical: $got, want $WANT"
    log "$1: identical ($got)"
}

# strata, from a bare machine: an empty HOME and cache, no strata.toml, no passphrase
disaster
t=$(now)
env -i PATH="$PATH" HOME="$BENCH_DIR/bare-home" AWS_ENDPOINT_URL="$AWS_ENDPOINT_URL" AWS_ALLOW_HTTP=true \
    AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench AWS_REGION=us-east-1 \
    sh -c "cd '$BENCH_DIR/bare-cwd' && '$STRATA' --identity '$BENCH_DIR/recovery.txt' recover --all --from s3://bench/strata --yes" \
    >"$BENCH_DIR/logs/recover.log" 2>&1 || { cat "$BENCH_DIR/logs/recover.log"; die "recover failed"; }
T_STRATA=$(secs "$t" "$(now)")
check "strata recover --all --from s3://"
STEPS=$(grep -E '^(files|postgres|redis) ' "$BENCH_DIR/logs/recover.log" || true)

# the users' way, from local files
disaster
t=$(now); tar -I zstd -xf "$BENCH_DIR/files.tar.zst" -C /; T_TAR=$(secs "$t" "$(now)")
t=$(now); psql -X -q -v ON_ERROR_STOP=1 --single-transaction -d "$PG_DB" <"$BENCH_DIR/postgres.sql" >/dev/null 2>"$BENCH_DIR/logs/psql.log"; T_PSQL=$(secs "$t" "$(now)")
t=$(now)
redis-cli -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true
cp "$BENCH_DIR/dump.rdb" "$RDIR/dump.rdb"; sh -c "$REDIS_START"; redis_wait
T_REDIS=$(secs "$t" "$(now)")
T_USERS=$(python3 -c "print(f'{$T_TAR + $T_PSQL + $T_REDIS:.1f}')")
check "tar -x + psql + dump.rdb"

{
    echo "| recovery of $NFILES files ($DATA_MB MiB) + PostgreSQL ($(du -h "$BENCH_DIR/postgres.sql" | cut -f1) dump) + redis ($REDIS_KEYS keys, $(du -h "$BENCH_DIR/dump.rdb" | cut -f1) rdb) | wall |"
    echo "|---|---|"
    echo "| \`strata recover --all --from s3://…\` (moto), empty HOME and cache, safety snapshots included | $T_STRATA s |"
    echo "| users' way: \`tar -I zstd -xf\` ($T_TAR s) + \`psql\` of the dump ($T_PSQL s) + dump.rdb put back ($T_REDIS s), from local files | $T_USERS s |"
    echo
    echo '```'
    echo "$STEPS"
    echo '```'
} | tee "$BENCH_DIR/report.md"
