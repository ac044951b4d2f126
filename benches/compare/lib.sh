# shellcheck shell=bash
# shellcheck disable=SC2034  # T_WALL, T_RSS_KB, T_CMD, V_STATUS, DATA are read by the callers
# Shared helpers for benches/compare.sh and benches/chunk_sizes.sh.
# Source it; it expects `set -euo pipefail` in the caller.

BENCH_LIB_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$BENCH_LIB_DIR/../.." && pwd)"
GEN="$REPO_ROOT/../shared/bench/gen_seedlike.py"
STRATA="$REPO_ROOT/target/release/strata"
BENCH_DIR="${BENCH_DIR:-/tmp/strata-bench}"
DAYS="${DAYS:-5}"
PG_DB="${PG_DB:-bench}"
ENCRYPTED="${ENCRYPTED:-0}"

# Passwords for the tools that always encrypt (restic, rustic) or when ENCRYPTED=1.
export RESTIC_PASSWORD=bench RUSTIC_PASSWORD=bench BORG_PASSPHRASE=bench STRATA_PASSWORD=bench
export BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes BORG_RELOCATED_REPO_ACCESS_IS_OK=yes

log()  { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die()  { log "ERROR: $*"; exit 1; }

# ---------------------------------------------------------------- setup

# ensure_deps TOOL...: install the Debian packages / crates that the listed tools need.
ensure_deps() {
    local pkgs=() t
    command -v python3 >/dev/null || pkgs+=(python3)
    [[ -x /usr/bin/time ]] || pkgs+=(time)
    { command -v pgbench && command -v pg_dump && command -v pg_ctlcluster; } >/dev/null 2>&1 || pkgs+=(postgresql)
    for t in "$@"; do
        case "$t" in
            restic) command -v restic >/dev/null || pkgs+=(restic) ;;
            borg)   command -v borg   >/dev/null || pkgs+=(borgbackup) ;;
            strata) [[ "${STRATA_UNLOCK:-passphrase}" != identity ]] || command -v age-keygen >/dev/null || pkgs+=(age) ;;
        esac
    done
    if ((${#pkgs[@]})); then
        log "installing Debian packages: ${pkgs[*]}"
        apt-get update -qq || die "apt-get update failed"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${pkgs[@]}" >/dev/null \
            || die "apt-get install ${pkgs[*]} failed"
    fi
    for t in "$@"; do
        if [[ "$t" == rustic ]] && ! command -v rustic >/dev/null; then
            [[ -x "$HOME/.cargo/bin/rustic" ]] && export PATH="$HOME/.cargo/bin:$PATH"
            if ! command -v rustic >/dev/null; then
                log "installing rustic (cargo install rustic-rs --locked; this compiles for several minutes)"
                cargo install rustic-rs --locked || die "cargo install rustic-rs failed"
                export PATH="$HOME/.cargo/bin:$PATH"
            fi
        fi
    done
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

# tool_init TOOL REPO [EXTRA STRATA INIT ARGS...]
tool_init() {
    local tool="$1" repo="$2"; shift 2
    case "$tool" in
        strata)
            local args=()
            if [[ "$ENCRYPTED" != 1 ]] && strata_has_flag --no-encryption; then args+=(--no-encryption); fi
            if [[ "$ENCRYPTED" == 1 && "${STRATA_UNLOCK:-passphrase}" == identity ]]; then
                # an age X25519 key instead of a passphrase: no scrypt per command
                local id="$BENCH_DIR/strata-identity.txt"
                rm -f "$id"; age-keygen -o "$id" 2>/dev/null
                args+=(--recipient "$(age-keygen -y "$id")")
                unset STRATA_PASSWORD; export STRATA_IDENTITY="$id"
            fi
            # shellcheck disable=SC2206
            args+=("$@" ${STRATA_INIT_ARGS:-})
            timed "$(basename "$repo")-init" "$STRATA" --repo "$repo" init "${args[@]}" ;;
        restic) timed restic-init restic -r "$repo" init ;;
        rustic) timed rustic-init rustic -r "$repo" init ;;
        borg)
            local mode=none; [[ "$ENCRYPTED" == 1 ]] && mode=repokey
            timed borg-init borg init -e "$mode" "$repo" ;;
        *) die "unknown tool $tool" ;;
    esac
}

# tool_backup TOOL REPO DAY  (backs up $DATA)
tool_backup() {
    local tool="$1" repo="$2" day="$3" name
    name="$(basename "$repo")-day$day"
    case "$tool" in
        strata) timed "$name" "$STRATA" --repo "$repo" snapshot "$DATA" ;;
        restic) timed "$name" restic -r "$repo" backup "$DATA" ;;
        rustic) timed "$name" rustic -r "$repo" backup "$DATA" ;;
        borg)   timed "$name" borg create "$repo::day$day" "$DATA" ;;
        *) die "unknown tool $tool" ;;
    esac
}

# tool_restore TOOL REPO OUT  (restores the latest snapshot into the new dir OUT)
tool_restore() {
    local tool="$1" repo="$2" out="$3" name
    name="$(basename "$repo")-restore"
    rm -rf "$out"; mkdir -p "$out"
    case "$tool" in
        strata) timed "$name" "$STRATA" --repo "$repo" restore latest --target "$out" ;;
        restic) timed "$name" restic -r "$repo" restore latest --target "$out" ;;
        rustic) timed "$name" rustic -r "$repo" restore latest "$out" ;;
        borg)
            local last
            last="$(borg list --short --last 1 "$repo")" || return 1
            timed "$name" env -C "$out" borg extract "$repo::$last" ;;
        *) die "unknown tool $tool" ;;
    esac
}

# find_restored OUT: print where the copy of $DATA landed inside OUT.
find_restored() {
    local out="$1" c
    for c in "$out/${DATA#/}" "$out/$(basename "$DATA")" "$out"; do
        if [[ -d "$c/dumps" && -d "$c/events" ]]; then printf '%s\n' "$c"; return 0; fi
    done
    return 1
}

# verify_restore TOOL OUT: diff -r against $DATA; prints OK or DIFF, sets V_STATUS.
verify_restore() {
    local tool="$1" out="$2" copy
    if ! copy="$(find_restored "$out")"; then
        V_STATUS=MISSING; log "$tool restore: no copy of $DATA found under $out"; return 0
    fi
    log "$tool restore: copy of data found at $copy"
    if diff -r "$DATA" "$copy" >"$BENCH_DIR/logs/$tool-restore.diff" 2>&1; then
        V_STATUS=OK
    else
        V_STATUS=DIFF
        log "$tool restore differs from data ($copy); first lines of logs/$tool-restore.diff:"
        head -n 10 "$BENCH_DIR/logs/$tool-restore.diff" >&2
    fi
}

tool_version() {
    case "$1" in
        strata) "$STRATA" --version 2>/dev/null || echo "strata (no --version)";;
        restic) restic version ;;
        rustic) rustic --version ;;
        borg)   borg --version ;;
    esac 2>&1 | head -n 1
}

# human BYTES -> e.g. "151.1 MB" (decimal)
human() { awk -v b="$1" 'BEGIN{split("B kB MB GB TB",u," "); i=1; while (b>=1000 && i<5){b/=1000;i++} printf (i==1?"%d %s":"%.1f %s"), b, u[i]}'; }
