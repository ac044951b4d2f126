#!/usr/bin/env bash
# Restore drill time (issue 24), on this machine: `strata drill` of every
# source of a policy holding the seedlike files, a PostgreSQL database and
# a redis-server, with the README drill recipes (a temporary database
# loaded, queried and dropped; a spare redis-server loading the RDB).
# Checks that the drill changed nothing live: file contents, PostgreSQL
# tables by checksum, redis DEBUG DIGEST, no temporary database left.
#
#   benches/drill.sh
#
# Environment:
#   BENCH_DIR=/tmp/strata-drill-bench     work dir; WIPED at start
#   PG_DB=drill_bench                     PostgreSQL database (dropped and made again)
#   SCALE=1                               gen_seedlike.py --scale
#   REDIS_KEYS=200000                     keys loaded into redis (~100 bytes each)
#   STRATA_BIN                            a strata binary instead of `cargo build --release`
#
# Data: `gen_seedlike.py DATA --day 0 --pg PG_DB` plus a redis-server of
# REDIS_KEYS keys; the repository is a local directory. Needs PostgreSQL
# (the current user may create databases), redis-server. Report on stdout
# and in $BENCH_DIR/report.md; tool output in $BENCH_DIR/logs/.
set -euo pipefail

# before lib.sh, which has its own defaults for these two
BENCH_DIR="${BENCH_DIR:-/tmp/strata-drill-bench}"
PG_DB="${PG_DB:-drill_bench}"
# shellcheck source-path=SCRIPTDIR source=compare/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/compare/lib.sh"
# lib.sh exports STRATA_PASSWORD, which would win over the policy's
# password_file: the policy unlocks here
unset STRATA_PASSWORD
SCALE="${SCALE:-1}"
REDIS_KEYS="${REDIS_KEYS:-200000}"
GEN="${GEN:-$REPO_ROOT/../shared/bench/gen_seedlike.py}"
case "${1:-}" in -h|--help) sed -n '2,22p' "$0"; exit 0;; "") ;; *) die "unknown argument: $1";; esac
for t in redis-server redis-cli psql pg_dump createdb dropdb; do
    command -v "$t" >/dev/null || die "$t is not installed (see --help)"
done
[[ -f "$GEN" ]] || die "no $GEN"
build_strata
case "$BENCH_DIR" in /|"") die "refusing BENCH_DIR='$BENCH_DIR'";; esac
rm -rf "$BENCH_DIR"
mkdir -p "$BENCH_DIR"/{logs,home,redis,tmp}
export XDG_CACHE_HOME="$BENCH_DIR/home/cache" XDG_CONFIG_HOME="$BENCH_DIR/home/config"
DATA="$BENCH_DIR/srv/bridge"
RDIR="$BENCH_DIR/redis"
now() { date +%s.%N; }
secs() { python3 -c "print(f'{$2 - $1:.1f}')"; }
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# ---------------------------------------------------------------- services
REDIS_PORT=$(port)
SPARE_PORT=$(port)
cleanup() { redis-cli -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true; }
trap cleanup EXIT
redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --dir "$RDIR" --save '' --appendonly no \
    --enable-debug-command yes --daemonize yes --logfile "$RDIR/redis.log"
until redis-cli -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG; do sleep 0.05; done

# ---------------------------------------------------------------- data
service_data 24
# what a drill could leave behind (other databases may come and go: other benches and tests)
dbs() { psql -X -qAt -d postgres -c "SELECT count(*) FROM pg_database WHERE datname LIKE 'strata_drill%'"; }
DATA_MB=$(du -sm "$DATA" | cut -f1)
NFILES=$(find "$DATA" -type f | wc -l)

# ---------------------------------------------------------------- the policy: the README drill recipes
recipe() {  # recipe HEADING FROM=TO...: the README's toml block under HEADING, substituted
    python3 - "$REPO_ROOT/README.md" "$@" <<'PY'
import sys
text = open(sys.argv[1]).read()
rest = text[text.index(sys.argv[2]):]
b = rest.index("```toml\n") + len("```toml\n")
block = rest[b:rest.index("\n```", b) + 1]
for swap in sys.argv[3:]:
    a, z = swap.split("=", 1)
    assert a in block, (a, block)
    block = block.replace(a, z)
print(block)
PY
}
{
    echo "repository = \"$BENCH_DIR/repo\""
    echo "password_file = \"$BENCH_DIR/pass\""
    echo
    echo "[sources.files]"
    echo "paths = [\"$DATA\"]"
    echo
    recipe "#### Drill recipe: PostgreSQL" "--no-owner app=--no-owner $PG_DB"
    recipe "#### Drill recipe: redis" "6379=$REDIS_PORT" "6390=$SPARE_PORT"
} >"$BENCH_DIR/strata.toml"
echo "bench passphrase" >"$BENCH_DIR/pass"
"$STRATA" --repo "$BENCH_DIR/repo" --password-file "$BENCH_DIR/pass" init >"$BENCH_DIR/logs/init.log" 2>&1
t=$(now); "$STRATA" run --config "$BENCH_DIR/strata.toml" >"$BENCH_DIR/logs/run.log" 2>&1
log "strata run (the backup): $(secs "$t" "$(now)") s"
BEFORE="$(files_digest) $(pg_digest) $(redis_digest) $(dbs)"
sync; echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true

# ---------------------------------------------------------------- the drill
t=$(now)
TMPDIR="$BENCH_DIR/tmp" "$STRATA" drill --json --config "$BENCH_DIR/strata.toml" \
    >"$BENCH_DIR/logs/drill.json" 2>"$BENCH_DIR/logs/drill.log" ||
    { cat "$BENCH_DIR/logs/drill.log"; die "drill failed"; }
T_DRILL=$(secs "$t" "$(now)")
AFTER="$(files_digest) $(pg_digest) $(redis_digest) $(dbs)"
[[ "$AFTER" == "$BEFORE" ]] || die "the drill changed something live: $AFTER, was $BEFORE"
[[ -z "$(ls -A "$BENCH_DIR/tmp")" ]] || die "scratch directories left in $BENCH_DIR/tmp"
REPO_MB=$(du -sm "$BENCH_DIR/repo" | cut -f1)
PG_MB=$(python3 -c '
import json, re, sys
s = json.load(open(sys.argv[1]))
d = [x["detail"] for x in s["sources"] if x["source"] == "postgres"][0]
print(int(re.search(r"\((\d+) bytes", d).group(1)) >> 20)
' "$BENCH_DIR/logs/drill.json")
PER=$(python3 -c '
import json, sys
s = json.load(open(sys.argv[1]))
for x in s["sources"]:
    print("| %s | %.1f s | %s |" % (x["source"], x["seconds"], x["detail"][:110]))
' "$BENCH_DIR/logs/drill.json")
{
    echo "| \`strata drill\`: $NFILES files ($DATA_MB MiB) + PostgreSQL ($PG_MB MiB dump) + redis ($REDIS_KEYS keys), repository of $REPO_MB MiB | wall |"
    echo "|---|---|"
    echo "| every source, live data unchanged (files, tables, redis digest), no temporary database left | $T_DRILL s |"
    echo
    echo "| source | measured restore time | detail |"
    echo "|---|---|---|"
    echo "$PER"
} | tee "$BENCH_DIR/report.md"
