#!/usr/bin/env bash
# Runs the official Engine.IO and Socket.IO protocol test suites against our engine
# (the socketio-conformance product). Their code is not in this repository: pass local
# copies of socketio/engine.io-protocol and socketio/socket.io-protocol.
#
#   scripts/conformance.sh /path/to/engine.io-protocol /path/to/socket.io-protocol
#
# Needs Debian's mocha and node-ws (apt-get install mocha node-ws); Node's fetch is used.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
[[ $# -eq 2 ]] || { echo "usage: $0 ENGINE_IO_PROTOCOL_DIR SOCKET_IO_PROTOCOL_DIR" >&2; exit 2; }
command -v mocha >/dev/null || { echo "conformance: install mocha and node-ws (apt-get install mocha node-ws)" >&2; exit 2; }

cd "$ROOT"
swift build --product socketio-conformance
BIN="$(swift build --show-bin-path)/socketio-conformance"
status=0

# Run one suite: $1 mode, $2 suite folder.
run_suite() {
    local mode="$1" suite="$2" work pid
    work="$(mktemp -d)"
    cp "$suite/test-suite/test-suite.js" "$work/"
    cp "$ROOT/Tests/Conformance/support/node-imports.js" "$work/"
    echo '{"type": "module"}' >"$work/package.json"
    "$BIN" --mode "$mode" --port 3000 &
    pid=$!
    for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/3000) 2>/dev/null && break; sleep 0.1; done
    echo "=== conformance: $mode"
    (cd "$work" && NODE_PATH=/usr/share/nodejs mocha --timeout 5000 test-suite.js) || status=1
    kill "$pid"
    wait "$pid" 2>/dev/null || true
    rm -rf "$work"
}

run_suite engineio "$1"
run_suite socketio "$2"
exit "$status"
