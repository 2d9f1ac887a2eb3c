#!/usr/bin/env bash
# Shared by scripts/infra.sh, scripts/services.sh, scripts/test.sh and `make e2e`: source it.

# True when something accepts TCP connections on 127.0.0.1:$1.
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Export KEY=value lines of $1, keeping values the caller already set.
load_env_file() {
    local line key
    while IFS= read -r line || [[ -n "$line" ]]; do
        [[ "$line" =~ ^([A-Za-z_][A-Za-z0-9_]*)= ]] || continue
        key="${BASH_REMATCH[1]}"
        [[ -n "${!key+x}" ]] || export "${line?}"
    done <"$1"
}
