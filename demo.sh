#!/usr/bin/env bash
# A 30-second demo: build strata, back up a small generated tree (text files,
# a large compressible file, a symlink, a hard link, an empty dir), list the
# snapshots, change a file, back up again (incremental), restore, compare.
# The repository is encrypted (the default); the demo's passphrase comes from
# STRATA_PASSWORD (a real setup would use --password-file or a prompt).
set -euo pipefail
cd "$(dirname "$0")"
# STRATA_DEMO_PROFILE=dev uses the debug build (dependencies optimized;
# what `cargo test` already built, so CI does not build a release too)
if [ "${STRATA_DEMO_PROFILE:-release}" = dev ]; then
  cargo build --quiet
  S=$PWD/target/debug/strata
else
  cargo build --release --quiet
  S=$PWD/target/release/strata
fi
D=$(mktemp -d /tmp/strata-demo.XXXXXX)
trap 'rm -rf "$D"' EXIT
mkdir -p "$D/data/logs" "$D/data/events" "$D/data/empty"
for i in $(seq 1 500); do printf '{"id":%d,"msg":"event %d"}\n' "$i" "$i" > "$D/data/events/$i.json"; done
seq 1 2000000 | sed 's/^/INFO line /' > "$D/data/logs/app.log"
ln -s logs/app.log "$D/data/current.log"
ln "$D/data/events/1.json" "$D/data/first.json"

export STRATA_REPO="$D/repo"
export STRATA_PASSWORD="demo passphrase" STRATA_CACHE_DIR="$D/cache"
set -x
"$S" init
"$S" key list
"$S" snapshot "$D/data" --tag demo
echo "one more line" >> "$D/data/logs/app.log"
"$S" snapshot "$D/data" --tag demo
"$S" snapshots
"$S" restore latest --target "$D/restored" --verify
diff -r "$D/data" "$D/restored$D/data"    # each source under its absolute path
"$S" ls -l latest:"$D/data"
"$S" restore latest:"$D/data/logs" --target "$D/logs-only"   # the contents of one directory
cmp "$D/data/logs/app.log" "$D/logs-only/app.log"
STRATA_PASSWORD="wrong" "$S" snapshots || echo "(a wrong passphrase is refused: exit $?)"
set +x
echo "demo: restore is identical to the source ($(du -sh "$D/data" | cut -f1) of data, repository $(du -sh "$D/repo" | cut -f1))"
