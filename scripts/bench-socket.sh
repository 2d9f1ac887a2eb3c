#!/usr/bin/env bash
# make bench-socket: socket-load (10k idle WebSocket clients, then a broadcast) against the
# running gateway, then the same against a stock python-socketio (aiohttp) server started here
# (Tests/Benchmarks/socketio_reference_server.py), stopped by its pid afterwards.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/env.sh
source "$ROOT/scripts/env.sh"
load_env_file "$ROOT/.run/local.env"
CLIENTS="${CLIENTS:-10000}"
BROADCASTS="${BROADCASTS:-20}"
LOAD="$ROOT/.build/release/socket-load"

echo "=== the gateway"
"$LOAD" --clients="$CLIENTS" --broadcasts="$BROADCASTS"

echo "=== python-socketio $("$ROOT/.run/venv/bin/python" -c 'import importlib.metadata as m; print(m.version("python-socketio"))') on aiohttp"
PORT=5099
"$ROOT/.run/venv/bin/python" "$ROOT/Tests/Benchmarks/socketio_reference_server.py" "$PORT" &
REFERENCE=$!
trap 'kill "$REFERENCE" 2>/dev/null || true' EXIT
echo "$REFERENCE" >"$ROOT/.run/pids/bench-socketio-reference.pid"
for _ in $(seq 1 100); do
    curl -fsS -o /dev/null "http://127.0.0.1:$PORT/socket.io/?EIO=4&transport=polling" 2>/dev/null && break
    sleep 0.1
done
"$LOAD" --clients="$CLIENTS" --broadcasts="$BROADCASTS" --server-url="http://127.0.0.1:$PORT" \
    --trigger-url="http://127.0.0.1:$PORT/broadcast" --server-pid-file="$ROOT/.run/pids/bench-socketio-reference.pid"
