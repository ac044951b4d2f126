#!/usr/bin/env bash
# The README's test command: install what the tests need when it is missing,
# start the services they talk to, then run `cargo test` (arguments are
# passed on: `./test.sh --test it battery_`). `.ci/run` calls this same
# script after its lints, so a newcomer runs exactly what CI runs.
#
# What the tests need, and which test needs it:
#   fuse3 (fusermount3, /dev/fuse)   tests/it/mount.rs
#   age, openssh-client              tests/it/encryption.rs (interop with stock age, ssh keys)
#   sqlite3, curl                    tests/it/recover.rs (the README's SQLite and Qdrant recipes)
#   PyPI moto[server]                every S3 test (a real S3 server on 127.0.0.1)
#   postgresql, redis-server         tests/it/policy.rs (`strata run` with pg_dump, redis-cli)
# Installing needs root (apt-get, pip); as another user, whatever is missing
# is reported and its tests are skipped.
#
# Once something is installed here, the STRATA_REQUIRE_* variable of its
# tests is set to 1, and those tests then fail instead of skipping when it
# does not work. Every skip is recorded in target/strata-skips.txt (emptied
# first, printed at the end). STRATA_REQUIRE_ROOT_TESTS=1 when running as
# root: the full-disk battery, chroot and run-as-nobody tests must run.
# In CI (CI=true) a failed install fails the script.
set -euo pipefail
cd "$(dirname "$0")"

ci="${CI:-}"
fail_or_warn() {
  if [ "$ci" = true ]; then
    echo "test.sh: $*" >&2
    exit 1
  fi
  echo "warning: $*; those tests will be skipped" >&2
}

root=false
[ "$(id -u)" = 0 ] && root=true
apt_updated=false
apt_install() {
  if ! $root; then
    fail_or_warn "not root: cannot apt-get install $*"
    return 1
  fi
  echo "== installing $* (apt)"
  if ! $apt_updated; then
    apt-get update -qq >/dev/null || true
    apt_updated=true
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null || {
    fail_or_warn "apt-get install $* failed"
    return 1
  }
}

# fuse3, age, ssh-keygen, sqlite3, curl
missing=()
command -v fusermount3 >/dev/null 2>&1 || missing+=(fuse3)
command -v age >/dev/null 2>&1 || missing+=(age)
command -v ssh-keygen >/dev/null 2>&1 || missing+=(openssh-client)
command -v sqlite3 >/dev/null 2>&1 || missing+=(sqlite3)
command -v curl >/dev/null 2>&1 || missing+=(curl)
if [ ${#missing[@]} -gt 0 ]; then
  apt_install "${missing[@]}" || true
fi
if command -v age >/dev/null 2>&1 && command -v ssh-keygen >/dev/null 2>&1 \
  && command -v sqlite3 >/dev/null 2>&1 && command -v curl >/dev/null 2>&1; then
  export STRATA_REQUIRE_TOOLS=1
fi
if [ -c /dev/fuse ] && command -v fusermount3 >/dev/null 2>&1; then
  export STRATA_REQUIRE_FUSE_TESTS=1
fi

# moto[server]: the S3 server the S3 tests start on 127.0.0.1
if ! command -v moto_server >/dev/null 2>&1; then
  echo "== installing moto[server] (pip)"
  if ! python3 -m pip --version >/dev/null 2>&1; then
    apt_install python3-pip || true
  fi
  # Debian's own python3 refuses system-wide installs (PEP 668) unless told
  python3 -m pip install -q 'moto[server]' >/dev/null 2>&1 \
    || python3 -m pip install -q --break-system-packages 'moto[server]' >/dev/null 2>&1 \
    || fail_or_warn "pip install moto[server] failed"
  hash -r
fi
if command -v moto_server >/dev/null 2>&1; then
  export STRATA_REQUIRE_S3_TESTS=1
fi

# PostgreSQL (a `root` role) and redis-server, started here
pkgs=()
command -v pg_ctlcluster >/dev/null 2>&1 || pkgs+=(postgresql)
command -v redis-server >/dev/null 2>&1 || pkgs+=(redis-server)
if [ ${#pkgs[@]} -gt 0 ]; then
  apt_install "${pkgs[@]}" || true
fi
if command -v pg_ctlcluster >/dev/null 2>&1 && $root; then
  # start every cluster (Debian creates `main` at install), and let root in
  pg_lsclusters -h 2>/dev/null | while read -r ver cluster _; do
    pg_ctlcluster "$ver" "$cluster" start 2>/dev/null || true
  done
  su postgres -c "psql -q -tAc \"SELECT 1 FROM pg_roles WHERE rolname = 'root'\" | grep -q 1 || createuser -s root" \
    || fail_or_warn "cannot create the PostgreSQL role root"
fi
if command -v psql >/dev/null 2>&1 && psql -X -q -d postgres -c 'SELECT 1' >/dev/null 2>&1; then
  export STRATA_REQUIRE_PG_TESTS=1
elif command -v pg_ctlcluster >/dev/null 2>&1; then
  fail_or_warn "PostgreSQL is installed but does not answer"
fi
if command -v redis-server >/dev/null 2>&1 && command -v redis-cli >/dev/null 2>&1; then
  # tests/it/policy.rs starts its own redis-server on a free port
  export STRATA_REQUIRE_REDIS_TESTS=1
fi

if $root; then
  export STRATA_REQUIRE_ROOT_TESTS=1
fi

# In CI every service must be there: a missing one fails here, not as a
# quiet skip later.
if [ "$ci" = true ]; then
  for v in STRATA_REQUIRE_TOOLS STRATA_REQUIRE_FUSE_TESTS STRATA_REQUIRE_S3_TESTS \
    STRATA_REQUIRE_PG_TESTS STRATA_REQUIRE_REDIS_TESTS STRATA_REQUIRE_ROOT_TESTS; do
    if [ "${!v:-}" != 1 ]; then
      echo "test.sh: CI needs $v=1 (its service or tool is missing)" >&2
      exit 1
    fi
  done
fi

skips="${CARGO_TARGET_DIR:-target}/strata-skips.txt"
mkdir -p "$(dirname "$skips")"
: >"$skips"
echo "== cargo test $*"
status=0
cargo test "$@" || status=$?

# every skip, and a skip whose STRATA_REQUIRE_* is set fails the run (the
# test itself fails then too; this catches one that skipped around it)
if [ -s "$skips" ]; then
  echo "== skipped tests ($skips)"
  while IFS=$'\t' read -r test require reason; do
    echo "SKIPPED $test: $reason (a failure when $require=1)"
    if [ "${!require:-}" = 1 ]; then
      echo "test.sh: $test was skipped although $require=1" >&2
      status=1
    fi
  done <"$skips"
else
  echo "== no test skipped"
fi
exit $status
