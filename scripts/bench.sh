#!/usr/bin/env bash
# make bench: the end-to-end load tool against release builds of the five services.
#
# Builds everything in release, restarts the services from those builds (with production
# settings where the test environment differs), runs messenger-load with the arguments given
# (none: every scenario with its defaults, about 15 minutes), then renders the report
# (results/<stamp>/report.md with PNG plots). The services keep running release builds
# afterwards; `scripts/services.sh stop && scripts/services.sh start debug` goes back.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck source=scripts/env.sh
source "$ROOT/scripts/env.sh"
[[ -f .run/local.env ]] || { echo "bench: no .run/local.env: run make up first" >&2; exit 1; }
[[ -x .run/venv/bin/python ]] || { echo "bench: no .run/venv (the report's Python): run make up first" >&2; exit 1; }

swift build -c release
scripts/services.sh stop
# The test environment prunes every 2 s; a production deployment every 10 minutes (delivery)
# and every hour (auth). The per-user command limit stays off: the storm's one sender sends
# 100 messages a second, over the production default of 30; so does the limit on accounts
# per address: the tool registers its thousands of users from loopback; and the limits on
# password checks, per address and per login (the auth benchmark logs its users in again and
# again).
DELIVERY_PRUNE_INTERVAL_SECONDS=600 AUTH_PRUNE_INTERVAL_SECONDS=3600 SOCKET_COMMAND_RATE=0 REGISTRATIONS_PER_ADDRESS=0 \
    LOGIN_MAX_CHECKS=0 LOGIN_MAX_CHECKS_PER_ADDRESS=0 scripts/services.sh start release
if ! .run/venv/bin/python -c 'import matplotlib' 2>/dev/null; then
    .run/venv/bin/pip install -q matplotlib || echo "bench: matplotlib not installed; the report will have no plots" >&2
fi

load_env_file .run/local.env
.build/release/messenger-load --git="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)" "$@"
.run/venv/bin/python scripts/bench-report.py "$(cat results/latest)/result.json"
