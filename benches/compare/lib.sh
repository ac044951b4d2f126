# shellcheck shell=bash
# shellcheck disable=SC2034  # T_WALL, T_RSS_KB, T_CMD, V_STATUS, DATA are read by the callers
# Shared helpers for benches/compare.sh, benches/small_files.sh, benches/chunk_sizes.sh and
# benches/gc.sh. Source it; it expects `set -euo pipefail` in the caller.
#
# Tools: strata, restic, borg, rustic, bupstash, tar (a full `tar -cf - | zstd -3` archive per
# backup). A tool's repository is a directory REPO; bupstash keeps its key beside it (REPO.key).

BENCH_LIB_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$BENCH_LIB_DIR/../.." && pwd)"
GEN="$REPO_ROOT/../shared/bench/gen_seedlike.py"
# STRATA_BIN: a strata binary to use instead of building target/release/strata
STRATA="${STRATA_BIN:-$REPO_ROOT/target/release/strata}"
# STRATA_BASELINE=BIN: a second strata build, run as the tool `strata-base`
STRATA_BASELINE="${STRATA_BASELINE:-}"
BENCH_DIR="${BENCH_DIR:-/tmp/strata-bench}"
DAYS="${DAYS:-5}"
PG_DB="${PG_DB:-bench}"
ENCRYPTED="${ENCRYPTED:-0}"
NEED_PG="${NEED_PG:-1}"            # 0: ensure_deps leaves PostgreSQL alone (small_files.sh)
RESTORE_ROUNDS="${RESTORE_ROUNDS:-3}"
RESTORE_VERIFY="${RESTORE_VERIFY:-all}"   # all: diff -r every restore round; first: round 1 only
DATA_MARKERS="${DATA_MARKERS:-dumps events}"  # entries that identify a restored copy of $DATA

# Passwords for the tools that always encrypt (restic, rustic) or when ENCRYPTED=1.
export RESTIC_PASSWORD=bench RUSTIC_PASSWORD=bench BORG_PASSPHRASE=bench STRATA_PASSWORD=bench
# cargo-installed tools (rustic, bupstash)
[[ ":$PATH:" == *":$HOME/.cargo/bin:"* ]] || export PATH="$PATH:$HOME/.cargo/bin"
export BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes BORG_RELOCATED_REPO_ACCESS_IS_OK=yes

log()  { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die()  { log "ERROR: $*"; exit 1; }

# ---------------------------------------------------------------- setup

# ensure_deps TOOL...: install the Debian packages / crates that the listed tools need
# (PostgreSQL too unless NEED_PG=0).
ensure_deps() {
    local pkgs=() t
    command -v python3 >/dev/null || pkgs+=(python3)
    [[ -x /usr/bin/time ]] || pkgs+=(time)
    if [[ "$NEED_PG" != 0 ]]; then
        { command -v pgbench && command -v pg_dump && command -v pg_ctlcluster; } >/dev/null 2>&1 || pkgs+=(postgresql)
    fi
    for t in "$@"; do
        case "$t" in
            restic) command -v restic >/dev/null || pkgs+=(restic) ;;
            borg)   command -v borg   >/dev/null || pkgs+=(borgbackup) ;;
            tar)    command -v zstd   >/dev/null || pkgs+=(zstd) ;;
            strata|strata-plain|strata-base) [[ "${STRATA_UNLOCK:-passphrase}" != identity ]] || command -v age-keygen >/dev/null || pkgs+=(age) ;;
            bupstash)
                # cargo install bupstash links libsodium through pkg-config
                if ! command -v bupstash >/dev/null; then
                    dpkg -s libsodium-dev >/dev/null 2>&1 || pkgs+=(libsodium-dev)
                    command -v pkg-config >/dev/null || pkgs+=(pkg-config)
                fi ;;
        esac
    done
    if ((${#pkgs[@]})); then
        log "installing Debian packages: ${pkgs[*]}"
        apt-get update -qq || die "apt-get update failed"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${pkgs[@]}" >/dev/null \
            || die "apt-get install ${pkgs[*]} failed"
    fi
    for t in "$@"; do
        case "$t" in
            rustic)   cargo_tool rustic rustic-rs ;;
            bupstash) cargo_tool bupstash bupstash ;;
        esac
    done
}

# cargo_tool BINARY CRATE: cargo install CRATE unless BINARY is on PATH.
cargo_tool() {
    command -v "$1" >/dev/null && return 0
    log "installing $1 (cargo install $2 --locked; this compiles for several minutes)"
    cargo install "$2" --locked || die "cargo install $2 failed"
    command -v "$1" >/dev/null || die "$1 not on PATH after cargo install $2"
}

# ensure_postgres: start the cluster, make root a superuser, (re)create an empty $PG_DB.
ensure_postgres() {
    local ver
    ver="$(pg_lsclusters -h 2>/dev/null | awk '$2=="main"{print $1; exit}')"
    ver="${ver:-15}"
    if ! pg_lsclusters -h | awk -v v="$ver" '$1==v && $2=="main" && $4=="online"{f=1} END{exit !f}'; then
        log "starting PostgreSQL $ver/main"
        pg_ctlcluster "$ver" main start || die "pg_ctlcluster $ver main start failed"
    fi
    local out
    if ! out="$(su postgres -c "createuser -s root" 2>&1)"; then
        [[ "$out" == *"already exists"* ]] || die "createuser -s root: $out"
    fi
    log "recreating database $PG_DB"
    dropdb --if-exists "$PG_DB" || die "dropdb $PG_DB failed"
    createdb "$PG_DB" || die "createdb $PG_DB failed"
}

build_strata() {
    if [[ -n "${STRATA_BIN:-}" ]]; then
        [[ -x "$STRATA" ]] || die "STRATA_BIN=$STRATA is not executable"
        log "using $STRATA (STRATA_BIN), not building"
        return
    fi
    log "building strata (cargo build --release)"
    (cd "$REPO_ROOT" && cargo build --release) || die "cargo build --release failed"
    [[ -x "$STRATA" ]] || die "$STRATA not found after build"
}

# reset_workdir: wipe $BENCH_DIR and point every tool's cache/config at it, so runs repeat.
reset_workdir() {
    case "$BENCH_DIR" in /|"") die "refusing BENCH_DIR='$BENCH_DIR'";; esac
    log "resetting work dir $BENCH_DIR"
    rm -rf "$BENCH_DIR"
    mkdir -p "$BENCH_DIR"/{repos,logs,restore,home}
    DATA="$BENCH_DIR/data"
    export XDG_CACHE_HOME="$BENCH_DIR/home/cache" XDG_CONFIG_HOME="$BENCH_DIR/home/config"
    export BORG_BASE_DIR="$BENCH_DIR/home/borg"
}

# gen_day DAY: age $DATA to DAY (day 0 creates it).
gen_day() {
    log "generating data: day $1"
    python3 "$GEN" "$DATA" --day "$1" --pg "$PG_DB" || die "generator failed for day $1"
}

# ---------------------------------------------------------------- measuring

# timed LOGNAME CMD...: run CMD under /usr/bin/time -v, output in logs/LOGNAME.log.
# Sets T_WALL (seconds) and T_RSS_KB. Returns CMD's exit status.
timed() {
    local name="$1"; shift
    local lf="$BENCH_DIR/logs/$name.log" tf="$BENCH_DIR/logs/$name.time" rc=0
    T_CMD="$*"
    /usr/bin/time -v -o "$tf" "$@" >"$lf" 2>&1 || rc=$?
    T_WALL="$(sed -n 's/.*Elapsed (wall clock) time[^)]*): //p' "$tf" \
        | awk -F: '{s=0; for(i=1;i<=NF;i++) s=s*60+$i; printf "%.2f", s}')"
    T_RSS_KB="$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$tf")"
    T_WALL="${T_WALL:-0}"; T_RSS_KB="${T_RSS_KB:-0}"
    if ((rc)); then
        log "FAILED ($rc): $* -- last lines of $lf:"
        tail -n 15 "$lf" >&2
    fi
    return "$rc"
}

loadavg() { cut -d' ' -f1 /proc/loadavg; }
repo_bytes() { du -sb "$1" | cut -f1; }

# record TOOL DAY OP WALL RSS_KB REPO_BYTES DATA_BYTES STATUS  -> results.tsv
RESULTS=""
results_init() {
    RESULTS="$BENCH_DIR/results.tsv"
    printf 'tool\tday\top\twall_s\tpeak_rss_kb\trepo_bytes\tdata_bytes\tstatus\n' >"$RESULTS"
}
record() { local IFS=$'\t'; printf '%s\n' "$*" >>"$RESULTS"; }

# ---------------------------------------------------------------- per-tool commands

strata_has_flag() { "$STRATA" init --help 2>&1 | grep -q -- "$1"; }

# strata_bin TOOL: the binary of strata, strata-plain (this tree's build) or strata-base
# ($STRATA_BASELINE).
# An unencrypted strata repository refuses a passphrase (a storage that
# swapped in a plaintext config must not get new data written in the
# clear: threat-model.md "Downgrade"), and STRATA_PASSWORD is exported
# above for the tools that encrypt: unencrypted strata runs through a
# wrapper without it.
strata_bin() {
    local bin="$STRATA"
    [[ "$1" == strata-base ]] && bin="$STRATA_BASELINE"
    if [[ "$ENCRYPTED" != 1 || "$1" == strata-plain ]]; then
        local w="$BENCH_DIR/bin/$1-plain"
        if [[ ! -x "$w" ]]; then
            mkdir -p "$BENCH_DIR/bin"
            printf '#!/bin/sh\nunset STRATA_PASSWORD\nexec %q "$@"\n' "$bin" >"$w"
            chmod +x "$w"
        fi
        bin="$w"
    fi
    printf '%s' "$bin"
}

# restic_has_subfolder: restic >= 0.15 restores `latest:/path` (the contents of /path).
restic_has_subfolder() {
    local v
    v="$(restic version 2>/dev/null | awk '{print $2; exit}')"
    [[ -n "$v" && "$(printf '%s\n0.15.0\n' "$v" | sort -V | head -n 1)" == 0.15.0 ]]
}

# tool_label TOOL: the name shown in tables.
tool_label() { case "$1" in tar) printf 'tar\\|zstd -3';; *) printf '%s' "$1";; esac; }

# tool_init TOOL REPO [EXTRA STRATA INIT ARGS...]
tool_init() {
    local tool="$1" repo="$2"; shift 2
    case "$tool" in
        strata|strata-plain|strata-base)
            # strata-plain: always unencrypted (beside an encrypted strata in one run);
            # strata-base: the baseline build, set up as strata is
            local args=()
            if [[ "$ENCRYPTED" != 1 || "$tool" == strata-plain ]] && strata_has_flag --no-encryption; then args+=(--no-encryption); fi
            if [[ "$ENCRYPTED" == 1 && "$tool" != strata-plain && "${STRATA_UNLOCK:-passphrase}" == identity ]]; then
                # an age X25519 key instead of a passphrase: no scrypt per command (one key
                # for strata and strata-base)
                local id="$BENCH_DIR/strata-identity.txt"
                [[ -s "$id" ]] || age-keygen -o "$id" 2>/dev/null
                args+=(--recipient "$(age-keygen -y "$id")")
                unset STRATA_PASSWORD; export STRATA_IDENTITY="$id"
            fi
            # shellcheck disable=SC2206
            args+=("$@" ${STRATA_INIT_ARGS:-})
            timed "$(basename "$repo")-init" "$(strata_bin "$tool")" --repo "$repo" init "${args[@]}" ;;
        restic) timed restic-init restic -r "$repo" init ;;
        rustic) timed rustic-init rustic -r "$repo" init ;;
        borg)
            local mode=none; [[ "$ENCRYPTED" == 1 ]] && mode=repokey
            timed borg-init borg init -e "$mode" "$repo" ;;
        bupstash)
            # always encrypted; the key lives beside the repository, not in it
            rm -f "$repo.key"
            bupstash new-key -o "$repo.key" || return 1
            timed bupstash-init bupstash init -r "$repo" ;;
        tar)
            # a directory of full archives, one per backup
            timed tar-init mkdir -p "$repo" ;;
        *) die "unknown tool $tool" ;;
    esac
}

# tool_backup TOOL REPO DAY  (backs up $DATA)
tool_backup() {
    local tool="$1" repo="$2" day="$3" name
    name="$(basename "$repo")-day$day"
    case "$tool" in
        strata|strata-plain|strata-base) timed "$name" "$(strata_bin "$tool")" --repo "$repo" snapshot "$DATA" ;;
        restic) timed "$name" restic -r "$repo" backup "$DATA" ;;
        rustic) timed "$name" rustic -r "$repo" backup "$DATA" ;;
        borg)   timed "$name" borg create "$repo::day$day" "$DATA" ;;
        bupstash)
            # put prints the new item's id on stdout (last line of the log); restore uses it
            timed "$name" env BUPSTASH_KEY="$repo.key" BUPSTASH_REPOSITORY="$repo" \
                bupstash put "day=$day" "$DATA" || return 1
            local id
            id="$(grep -Eo '^[0-9a-f]{32}$' "$BENCH_DIR/logs/$name.log" | tail -n 1)"
            [[ -n "$id" ]] || { log "bupstash put printed no id (logs/$name.log)"; return 1; }
            printf '%s\n' "$id" >"$repo.last-id" ;;
        tar)
            # the whole tree every time, as `tar -cf - DATA | zstd -3` does
            # shellcheck disable=SC2016  # $1 $2 belong to the inner bash
            timed "$name" bash -c 'set -o pipefail; tar -cf - -C "$1" . | zstd -3 -q -o "$2"' _ \
                "$DATA" "$repo/day$(printf %04d "$day").tar.zst" ;;
        *) die "unknown tool $tool" ;;
    esac
}

# tool_restore TOOL REPO OUT  (restores the latest backup into the new dir OUT; where the tool
# allows it the contents of $DATA land in OUT itself, otherwise find_restored looks deeper)
tool_restore() {
    local tool="$1" repo="$2" out="$3" name
    name="$(basename "$repo")-restore"
    rm -rf "$out"; mkdir -p "$out"
    case "$tool" in
        # strata and restic store the absolute path; SNAPSHOT:PATH restores its contents
        strata|strata-plain|strata-base) timed "$name" "$(strata_bin "$tool")" --repo "$repo" restore "latest:$DATA" --target "$out" ;;
        restic)
            if restic_has_subfolder; then
                timed "$name" restic -r "$repo" restore "latest:$DATA" --target "$out"
            else  # restic < 0.15: OUT/abs/path/data/...
                timed "$name" restic -r "$repo" restore latest --target "$out"
            fi ;;
        rustic) timed "$name" rustic -r "$repo" restore latest "$out" ;;
        borg)
            # borg stores DATA without its leading /; strip those components
            local last strip
            last="$(borg list --short --last 1 "$repo")" || return 1
            strip="$(awk -F/ '{print NF}' <<<"${DATA#/}")"
            timed "$name" env -C "$out" borg extract --strip-components "$strip" "$repo::$last" ;;
        bupstash)
            local id
            id="$(cat "$repo.last-id")" || return 1
            timed "$name" env BUPSTASH_KEY="$repo.key" BUPSTASH_REPOSITORY="$repo" \
                bupstash restore --into "$out" "id=$id" ;;
        tar)
            local last
            last="$(find "$repo" -maxdepth 1 -name 'day*.tar.zst' | sort | tail -n 1)"
            [[ -n "$last" ]] || { log "tar: no archive in $repo"; return 1; }
            # shellcheck disable=SC2016  # $1 $2 belong to the inner bash
            timed "$name" bash -c 'set -o pipefail; zstd -dc -q -- "$1" | tar -xf - -C "$2"' _ "$last" "$out" ;;
        *) die "unknown tool $tool" ;;
    esac
}

# find_restored OUT: print where the copy of $DATA landed inside OUT (the candidate that holds
# every entry named in DATA_MARKERS).
find_restored() {
    local out="$1" c m ok
    for c in "$out" "$out/${DATA#/}" "$out/$(basename "$DATA")"; do
        ok=1
        for m in $DATA_MARKERS; do [[ -e "$c/$m" ]] || { ok=0; break; }; done
        if ((ok)); then printf '%s\n' "$c"; return 0; fi
    done
    return 1
}

# verify_restore TOOL OUT: diff -r against $DATA; prints OK or DIFF, sets V_STATUS.
verify_restore() {
    local tool="$1" out="$2" copy
    if ! copy="$(find_restored "$out")"; then
        V_STATUS=MISSING; log "$tool restore: no copy of $DATA found under $out"; return 0
    fi
    [[ "$copy" == "$out" ]] || log "$tool restore: copy of data found at $copy"
    if diff -r "$DATA" "$copy" >"$BENCH_DIR/logs/$tool-restore.diff" 2>&1; then
        V_STATUS=OK
    else
        V_STATUS=DIFF
        log "$tool restore differs from data ($copy); first lines of logs/$tool-restore.diff:"
        head -n 10 "$BENCH_DIR/logs/$tool-restore.diff" >&2
    fi
}

# restore_rounds REPOS OUT_ROOT DAY DATA_BYTES TOOL...: restore the latest backup of each TOOL
# (repository REPOS/TOOL) into OUT_ROOT/TOOL, RESTORE_ROUNDS times. The tools take turns within
# a round, and each round starts one tool further along (round 1: a b c, round 2: b c a, ...),
# so no tool always runs first or right after the same neighbour. Every restore is checked
# with diff -r (RESTORE_VERIFY=all) or only round 1's (first), and removed before the next
# restore (not timed). Records restore-ROUND rows; sets RT_TIMES[TOOL] (space-separated
# seconds), RT_RSS[TOOL] (max KiB), RT_VERIFY[TOOL] (OK, DIFF, MISSING, restore failed).
declare -A RT_TIMES RT_RSS RT_VERIFY
restore_rounds() {
    local repos="$1" root="$2" day="$3" dbytes="$4"; shift 4
    local tools=("$@") n=$# r i t out st
    [[ "$RESTORE_ROUNDS" =~ ^[1-9][0-9]*$ ]] || die "RESTORE_ROUNDS must be a positive integer, got '$RESTORE_ROUNDS'"
    case "${root%/}" in ""|/dev/shm|/tmp|/dev|/run) die "refusing to wipe restore root '$root' (give a dedicated subdirectory)";; esac
    rm -rf "$root"; mkdir -p "$root"
    local avail
    avail="$(df -B1 --output=avail "$root" | tail -n 1 | tr -d ' ')"
    ((avail > dbytes * 2)) || log "WARNING: $root has $(human "$avail") free for restores of $(human "$dbytes")"
    for t in "${tools[@]}"; do RT_TIMES[$t]=""; RT_RSS[$t]=0; RT_VERIFY[$t]=""; done
    for ((r = 1; r <= RESTORE_ROUNDS; r++)); do
        for ((i = 0; i < n; i++)); do
            t="${tools[(i + r - 1) % n]}"
            [[ "${RT_VERIFY[$t]}" == "restore failed" ]] && continue
            out="$root/$t"
            T_WALL=0; T_RSS_KB=0   # a restore that fails before its timed command records zeros
            if tool_restore "$t" "$repos/$t" "$out"; then
                RT_TIMES[$t]+="$T_WALL "
                ((T_RSS_KB > RT_RSS[$t])) && RT_RSS[$t]=$T_RSS_KB
                st=unverified
                if [[ "$RESTORE_VERIFY" == all ]] || ((r == 1)); then
                    verify_restore "$t" "$out"; st=$V_STATUS
                    # the worst result of any round sticks
                    [[ "${RT_VERIFY[$t]}" == "" || "${RT_VERIFY[$t]}" == OK ]] && RT_VERIFY[$t]=$st
                fi
                log "$t restore round $r: ${T_WALL}s, peak RSS $((T_RSS_KB / 1024)) MiB, verify $st"
            else
                st=failed; RT_VERIFY[$t]="restore failed"
            fi
            record "$t" "$day" "restore-$r" "$T_WALL" "$T_RSS_KB" "$(repo_bytes "$repos/$t")" "$dbytes" "$st"
            rm -rf "$out"
        done
    done
    rm -rf "$root"
}

# tmin / tmedian "S S S ...": the minimum / median of a list of seconds ("-" if empty).
tmin() { tr ' ' '\n' <<<"$1" | awk 'NF{if(n==0||$1<m)m=$1; n++} END{if(n) printf "%.2f", m; else printf "-"}'; }
tmedian() {
    tr ' ' '\n' <<<"$1" | awk 'NF' | sort -g \
        | awk '{v[n++]=$1} END{if(!n){printf "-"; exit} if(n%2) printf "%.2f", v[(n-1)/2]; else printf "%.2f", (v[n/2-1]+v[n/2])/2}'
}

tool_version() {
    case "$1" in
        strata|strata-plain|strata-base) "$(strata_bin "$1")" --version 2>/dev/null || echo "strata (no --version)";;
        restic)   restic version ;;
        rustic)   rustic --version ;;
        borg)     borg --version ;;
        bupstash) bupstash version ;;
        tar)      printf '%s; %s\n' "$(tar --version | sed -n 1p)" "$(zstd --version | sed 's/^[* ]*//; s/[* ,]*$//')" ;;
    esac 2>&1 | sed -n 1p   # sed reads all input: no SIGPIPE for the tool under pipefail
}

# human BYTES -> e.g. "151.1 MB" (decimal)
human() { awk -v b="$1" 'BEGIN{split("B kB MB GB TB",u," "); i=1; while (b>=1000 && i<5){b/=1000;i++} printf (i==1?"%d %s":"%.1f %s"), b, u[i]}'; }

# service_data: the data of benches/recover.sh and benches/drill.sh: the
# seedlike files at $DATA (day 0, --scale $SCALE), the database $PG_DB
# the generator fills, and $REDIS_KEYS keys of ~100 bytes in the redis on
# $REDIS_PORT (seeded by $1, so a run repeats).
service_data() {
    log "data: gen_seedlike.py --day 0 --scale $SCALE --pg $PG_DB, redis $REDIS_KEYS keys"
    dropdb --if-exists "$PG_DB" >/dev/null 2>&1 || true
    createdb "$PG_DB"
    python3 "$GEN" "$DATA" --day 0 --scale "$SCALE" --pg "$PG_DB" >"$BENCH_DIR/logs/gen.log" 2>&1
    python3 - "$REDIS_KEYS" "$1" <<'PY' | redis-cli -p "$REDIS_PORT" --pipe >"$BENCH_DIR/logs/redis-load.log"
import sys, random
r = random.Random(int(sys.argv[2]))
out = sys.stdout
for i in range(int(sys.argv[1])):
    k, v = f"session:{i:08d}", "".join(r.choice("abcdefghijklmnop") for _ in range(90))
    out.write(f"*3\r\n$3\r\nSET\r\n${len(k)}\r\n{k}\r\n${len(v)}\r\n{v}\r\n")
PY
}

# Digests that say "identical": the files under $DATA, every table of
# $PG_DB (row count and checksum), the redis on $REDIS_PORT.
files_digest() { (cd "$DATA" && find . -type f -print0 | sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16); }
pg_digest() {
    psql -X -qAt -d "$PG_DB" -c "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1" |
        while read -r t; do
            psql -X -qAt -d "$PG_DB" -c "SELECT '$t ' || count(*) || ' ' || md5(coalesce(string_agg(x::text, ',' ORDER BY x::text), '')) FROM \"$t\" x"
        done | sha256sum | cut -c1-16
}
redis_digest() { redis-cli -p "$REDIS_PORT" debug digest; }
