# Sourced by benches/status.sh and benches/status_forget.sh: an age identity in $W/id.txt (no
# scrypt), a strata.toml in $W with one source `data` ($W/src, every 5 minutes) under our users'
# retention, and the repository $W/repo made with the build $1 and the cache $W/cache-make.
status_repo() {
    age-keygen -o "$W/id.txt" 2>/dev/null
    export STRATA_IDENTITY="$W/id.txt"
    unset STRATA_PASSWORD STRATA_PASSWORD_COMMAND || true
    cat >"$W/strata.toml" <<EOF
repository = "$W/repo"
identity = "$W/id.txt"

[sources.data]
paths = ["$W/src"]
every = "5m"

[retention]
keep_within = "24h"
keep_daily = 30
keep_weekly = 12
keep_monthly = 12
EOF
    STRATA_CACHE_DIR=$W/cache-make "$1" --repo "$W/repo" init \
        --recipient "$(age-keygen -y "$W/id.txt")" >/dev/null 2>&1
}
