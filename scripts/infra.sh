#!/usr/bin/env bash
# Local infrastructure for the Messenger backend: RabbitMQ, PostgreSQL and
# Redis on 127.0.0.1, on non-default ports, with all data under .run/.
# No systemd needed; works as root (PostgreSQL then runs as user postgres).
#
#   scripts/infra.sh install                 apt packages + Python venv for tests
#   scripts/infra.sh start  [server...]      idempotent; servers: rabbitmq postgres redis
#   scripts/infra.sh stop   [server...]      stops only what start started here
#   scripts/infra.sh status [server...]      exit 0 when all answer
#   scripts/infra.sh env                     KEY=value lines for services and tests
#                                            (start and env create .run/keys/jwt-ed25519.pem once)
#   scripts/infra.sh rabbitmq-stop-app | rabbitmq-start-app | redis-restart
#   scripts/infra.sh rabbitmq-purge-idle QUEUE...   empties the queues that have no consumer
#   scripts/infra.sh rabbitmq-memory-alarm on|off    blocks publishers / lets them go again
#   scripts/infra.sh rabbitmq-freeze on|off          stops the broker's process (SIGSTOP) / resumes it
#   scripts/infra.sh crash rabbitmq|postgres  ends a server as a crash would (fault tests;
#                                            `start` brings it back)
#   scripts/infra.sh rabbitmqctl ARGS...      rabbitmqctl against our node, with its environment
#                                            (e.g. `list_queues name messages consumers`)
#
# Every variable printed by `env` may be overridden by the caller's
# environment. The local servers' own ports can be moved with INFRA_AMQP_PORT,
# INFRA_RABBIT_DIST_PORT, INFRA_EPMD_PORT, INFRA_PG_PORT, INFRA_REDIS_PORT;
# RabbitMQ's Erlang scheduler count with INFRA_RABBIT_SCHEDULERS.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/env.sh
source "$ROOT/scripts/env.sh"
SELF="$ROOT/scripts/infra.sh"
RUN_DIR="$ROOT/.run"
PID_DIR="$RUN_DIR/pids"
LOG_DIR="$RUN_DIR/logs"

AMQP_PORT="${INFRA_AMQP_PORT:-5673}"
RABBIT_DIST_PORT="${INFRA_RABBIT_DIST_PORT:-25673}"
EPMD_PORT="${INFRA_EPMD_PORT:-4370}"
PG_PORT="${INFRA_PG_PORT:-5433}"
REDIS_LOCAL_PORT="${INFRA_REDIS_PORT:-6380}"

RABBIT_NODE="${INFRA_RABBIT_NODE:-messenger@localhost}"
# Erlang schedulers (threads running Erlang code). One by default: RabbitMQ shares this machine's
# cores with PostgreSQL, Redis, the services and the load tool, and with one scheduler per core
# the processes behind a publish (reader, channel, queue, writer) hop between threads, each hop a
# wake-up; one scheduler took 20 % less RabbitMQ CPU per DM at the same publish ceiling
# (docs/performance-history.md, twelfth session). Set empty for Erlang's default (one per core).
RABBIT_SCHEDULERS="${INFRA_RABBIT_SCHEDULERS-1}"
RABBIT_DIR="$RUN_DIR/rabbitmq"
RABBIT_HOME="$RABBIT_DIR/home"
RABBIT_BIN=/usr/lib/rabbitmq/bin
# Erlang's cookie: whoever holds it can run code in the node, as the user who started it
# (root here), through its distribution port, which any local user reaches on loopback. So
# each checkout makes a random one in .run, readable by its owner only, unless
# INFRA_ERLANG_COOKIE names one. (Until the fifty-sixth session it was a fixed value written
# here, which also let another checkout drive this node; a review.)
ERLANG_COOKIE="${INFRA_ERLANG_COOKIE:-}"
OLD_FIXED_COOKIE=MESSENGERLOCALDEVCOOKIE

PG_LINK="$RUN_DIR/postgres" # a folder, or a link to one user postgres can reach
PG_DB=messenger

REDIS_DIR="$RUN_DIR/redis"

# zlib1g-dev: compress-nio (through Hummingbird's WebSocket compression) links zlib.
APT_PACKAGES=(librabbitmq-dev libhiredis-dev libcurl4-openssl-dev libssl-dev libpq-dev zlib1g-dev
    rabbitmq-server redis-server postgresql docker-compose
    make curl openssl pkg-config ca-certificates)
# The venv's stamp is VENV_REVISION, this list and the constraints' checksum: changing any
# reinstalls. The constraints pin every version (scripts/python-constraints.txt).
PIP_CONSTRAINTS="$ROOT/scripts/python-constraints.txt"
PIP_PACKAGES=("python-socketio[client]" aiohttp websocket-client requests redis msgpack pytest cryptography pika matplotlib)
VENV_REVISION=2
VENV="$RUN_DIR/venv"

# Ed25519 signing key of the auth service (PKCS#8 PEM), generated once.
KEY_DIR="$RUN_DIR/keys"
JWT_KEY_DEFAULT="$KEY_DIR/jwt-ed25519.pem"

# --- small helpers ----------------------------------------------------------

# Print a message on stderr.
say() { echo "infra: $*" >&2; }

# Print an error and exit.
die() { echo "infra: error: $*" >&2; exit 1; }

# Wait up to $2 seconds until port $1 accepts connections.
wait_port_open() {
    local port="$1" deadline=$((SECONDS + $2))
    until port_open "$port"; do
        ((SECONDS < deadline)) || return 1
        sleep 0.2
    done
}

# Wait up to $2 seconds until nothing listens on port $1 any more.
wait_port_closed() {
    local port="$1" deadline=$((SECONDS + $2))
    while port_open "$port"; do
        ((SECONDS < deadline)) || return 1
        sleep 0.2
    done
}

# True when pid $1 exists and is not a zombie (<defunct> ones linger here).
pid_alive() {
    local pid="$1" state
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    state="$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null || true)"
    [[ -n "$state" && "$state" != Z && "$state" != X ]]
}

# True when pid $1 is alive and runs the program named $2 (its /proc comm), so that a pid
# file left from an earlier boot never gets a recycled pid signalled.
server_pid_alive() {
    pid_alive "$1" && [[ "$(cat "/proc/$1/comm" 2>/dev/null || true)" == "$2" ]]
}

# Read a pid file ($1); prints the pid or nothing.
read_pid() {
    if [[ -f "$1" ]]; then head -n1 "$1" | tr -dc '0-9'; fi
}

# Wait up to $2 seconds for pid $1 to go away.
wait_pid_gone() {
    local pid="$1" deadline=$((SECONDS + $2))
    while pid_alive "$pid"; do
        ((SECONDS < deadline)) || return 1
        sleep 0.2
    done
}

# Set SERVERS to the servers named on the command line, or all three.
SERVERS=()
select_servers() {
    local s
    if (($# == 0)); then SERVERS=(rabbitmq postgres redis); return; fi
    SERVERS=()
    for s in "$@"; do
        case "$s" in rabbitmq | postgres | redis) SERVERS+=("$s") ;; *) die "unknown server '$s'" ;; esac
    done
}

# --- environment for services and tests -----------------------------------

# Generate the default JWT signing key once (PKCS#8 PEM Ed25519, mode 600), unless
# the caller points JWT_PRIVATE_KEY_FILE elsewhere.
ensure_jwt_key() {
    [[ -z "${JWT_PRIVATE_KEY_FILE:-}" ]] || return 0
    [[ -s "$JWT_KEY_DEFAULT" ]] && return 0
    command -v openssl >/dev/null || die "openssl not found (needed to generate $JWT_KEY_DEFAULT)"
    mkdir -p "$KEY_DIR"
    chmod 700 "$KEY_DIR"
    local tmp="$JWT_KEY_DEFAULT.tmp.$$"
    (umask 077 && openssl genpkey -algorithm ed25519 -out "$tmp" 2>/dev/null) || {
        rm -f "$tmp"
        die "openssl genpkey -algorithm ed25519 failed"
    }
    chmod 600 "$tmp"
    mv "$tmp" "$JWT_KEY_DEFAULT"
    say "generated the JWT signing key $JWT_KEY_DEFAULT"
}

# Print the KEY=value environment (caller's values win over the defaults).
# LOGIN_WINDOW_SECONDS is 5 here, not the service's default of 300, so that the
# e2e rate-limit test (Tests/e2e) can wait for the throttling window to end;
# DELIVERY_PRUNE_INTERVAL_SECONDS is 2 (default 600) and AUTH_PRUNE_INTERVAL_SECONDS
# 2 (default 3600) so that the e2e tests of the pruning jobs see expired rows go.
# SOCKET_COMMAND_RATE is 0 (no limit; default 30 a second per user): the e2e tests
# send bursts of hundreds of commands as one user, and the limit's own test starts a
# gateway of its own with a low one. REST_REQUEST_RATE is 0 (no limit; default 10 a
# second per user) for the same reason: tests page through histories and upload as one
# user. REGISTRATIONS_PER_ADDRESS is 0 (no limit; default
# 20 an hour per address): the tests register thousands of accounts from 127.0.0.1, and
# the limit's own test starts auth with a low one. LOGIN_MAX_CHECKS_PER_ADDRESS is 0 (no
# limit; default 300 per window per address) for the same reason: every test logs in from
# there; the per-login limit stays on (30 per window), with its own unit test.
print_env() {
    cat <<EOF
DATABASE_URL=${DATABASE_URL:-postgres://postgres@127.0.0.1:$PG_PORT/$PG_DB}
RABBITMQ_URI=${RABBITMQ_URI:-amqp://guest:guest@127.0.0.1:$AMQP_PORT/%2f}
REDIS_HOST=${REDIS_HOST:-127.0.0.1}
REDIS_PORT=${REDIS_PORT:-$REDIS_LOCAL_PORT}
PORT=${PORT:-5000}
GATEWAY_ADMIN_PORT=${GATEWAY_ADMIN_PORT:-9100}
AUTH_ADMIN_PORT=${AUTH_ADMIN_PORT:-9101}
MESSAGING_ADMIN_PORT=${MESSAGING_ADMIN_PORT:-9102}
MEDIA_ADMIN_PORT=${MEDIA_ADMIN_PORT:-9103}
DELIVERY_ADMIN_PORT=${DELIVERY_ADMIN_PORT:-9104}
MESSENGER_INFRA_SCRIPT=${MESSENGER_INFRA_SCRIPT:-$SELF}
JWT_PRIVATE_KEY_FILE=${JWT_PRIVATE_KEY_FILE:-$JWT_KEY_DEFAULT}
LOGIN_WINDOW_SECONDS=${LOGIN_WINDOW_SECONDS:-5}
DELIVERY_PRUNE_INTERVAL_SECONDS=${DELIVERY_PRUNE_INTERVAL_SECONDS:-2}
AUTH_PRUNE_INTERVAL_SECONDS=${AUTH_PRUNE_INTERVAL_SECONDS:-2}
SOCKET_COMMAND_RATE=${SOCKET_COMMAND_RATE:-0}
REST_REQUEST_RATE=${REST_REQUEST_RATE:-0}
REGISTRATIONS_PER_ADDRESS=${REGISTRATIONS_PER_ADDRESS:-0}
LOGIN_MAX_CHECKS_PER_ADDRESS=${LOGIN_MAX_CHECKS_PER_ADDRESS:-0}
MEDIA_DIR=${MEDIA_DIR:-$RUN_DIR/media}
GATEWAY_URL=${GATEWAY_URL:-http://127.0.0.1:${PORT:-5000}}
EOF
}

# Write .run/local.env (atomically).
write_env_file() {
    mkdir -p "$RUN_DIR"
    print_env >"$RUN_DIR/local.env.tmp"
    mv "$RUN_DIR/local.env.tmp" "$RUN_DIR/local.env"
}

# --- install ------------------------------------------------------------------

# Install missing apt packages (no prompts, no daemons started) and the venv.
cmd_install() {
    local missing=() pkg status
    for pkg in "${APT_PACKAGES[@]}"; do
        status="$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)"
        [[ "$status" == "install ok installed" ]] || missing+=("$pkg")
    done
    if ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
        missing+=(python3 python3-venv)
    fi
    if ((${#missing[@]} == 0)); then
        say "apt packages: all installed"
    else
        apt_install "${missing[@]}"
    fi
    install_venv
}

# apt-get update once, then install the given packages without recommends.
apt_install() {
    ((EUID == 0)) || die "missing packages (${*}); run 'scripts/infra.sh install' as root"
    say "apt-get install ${*}"
    export DEBIAN_FRONTEND=noninteractive
    # Keep package scripts from starting daemons (no systemd here anyway):
    # a temporary policy-rc.d denies every invoke-rc.d action.
    local policy=/usr/sbin/policy-rc.d made_policy=0
    if [[ ! -e "$policy" ]]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy"
        chmod 755 "$policy"
        made_policy=1
        # Removed even when apt is interrupted (a timeout, Ctrl-C): left behind, it would deny
        # every service start on the machine.
        trap 'rm -f /usr/sbin/policy-rc.d' EXIT
        trap 'rm -f /usr/sbin/policy-rc.d; exit 130' INT TERM
    fi
    local rc=0
    { apt-get update -q && apt-get install -y -q --no-install-recommends "$@"; } || rc=$?
    if ((made_policy == 1)); then
        rm -f "$policy"
        trap - EXIT INT TERM
    fi
    ((rc == 0)) || die "apt-get failed (exit $rc)"
}

# Create .run/venv with the Python test clients (skipped when the stamp matches).
install_venv() {
    local stamp="$VENV/.messenger-stamp" want
    want="r$VENV_REVISION ${PIP_PACKAGES[*]} $(cksum <"$PIP_CONSTRAINTS" | cut -d' ' -f1)"
    if [[ -x "$VENV/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
        say "python venv: up to date ($VENV)"
        return
    fi
    say "python venv: creating $VENV"
    mkdir -p "$RUN_DIR"
    [[ -x "$VENV/bin/python" ]] || python3 -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -c "$PIP_CONSTRAINTS" "${PIP_PACKAGES[@]}"
    echo "$want" >"$stamp"
    say "python venv: ready"
}

# --- RabbitMQ -------------------------------------------------------------------

# Environment shared by rabbitmq-server and rabbitmqctl.
rabbit_env() {
    printf '%s\n' \
        "HOME=$RABBIT_HOME" \
        "RABBITMQ_NODENAME=$RABBIT_NODE" \
        "RABBITMQ_NODE_IP_ADDRESS=127.0.0.1" \
        "RABBITMQ_NODE_PORT=$AMQP_PORT" \
        "RABBITMQ_DIST_PORT=$RABBIT_DIST_PORT" \
        "ERL_EPMD_PORT=$EPMD_PORT" \
        "ERL_EPMD_ADDRESS=127.0.0.1" \
        "RABBITMQ_MNESIA_BASE=$RABBIT_DIR/mnesia" \
        "RABBITMQ_LOG_BASE=$LOG_DIR/rabbitmq" \
        "RABBITMQ_PID_FILE=$RABBIT_DIR/rabbitmq.pid" \
        "RABBITMQ_CONFIG_FILE=$RABBIT_DIR/rabbitmq.conf" \
        "RABBITMQ_CONF_ENV_FILE=$RABBIT_DIR/rabbitmq-env.conf" \
        "RABBITMQ_ENABLED_PLUGINS_FILE=$RABBIT_DIR/enabled_plugins" \
        "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS=${RABBIT_SCHEDULERS:++S $RABBIT_SCHEDULERS:$RABBIT_SCHEDULERS }-kernel inet_dist_use_interface {127,0,0,1}"
}

# Run rabbitmqctl against our node with our environment.
rmqctl() {
    local env_lines=()
    mapfile -t env_lines < <(rabbit_env)
    env "${env_lines[@]}" "$RABBIT_BIN/rabbitmqctl" -n "$RABBIT_NODE" "$@"
}

# True when the AMQP port answers with a Connection.Start frame (type 1).
rabbit_up() {
    (
        exec 3<>"/dev/tcp/127.0.0.1/$AMQP_PORT" || exit 1
        printf 'AMQP\x00\x00\x09\x01' >&3
        IFS= read -r -N 1 -t 3 b <&3 || exit 1
        [[ "$b" == $'\x01' ]]
    ) 2>/dev/null
}

# True when our Erlang node answers (application may be stopped).
rabbit_node_up() { rmqctl ping >/dev/null 2>&1; }

# True when the node answering as $RABBIT_NODE is the one this checkout started: its OS pid
# is the beam.smp pid recorded here (by rabbit_wait, or by the node itself in our data folder),
# or, while it boots, the child of the rabbitmq-server wrapper we launched, and its data folder
# is ours. Another checkout's node has the same name on the same epmd port (and answers us when
# it shares our cookie: INFRA_ERLANG_COOKIE, or a checkout from before the cookies were
# random), so a node that answers is not enough (a stale pid file here would stop or adopt
# theirs).
rabbit_node_is_ours() {
    local wrapper candidate answer node_pid node_dir
    wrapper="$(read_pid "$PID_DIR/rabbitmq-wrapper.pid")"
    [[ -n "$(read_pid "$PID_DIR/rabbitmq.pid")$wrapper" ]] || return 1
    # {"<os pid>","<mnesia dir>"}: the data folder tells a recycled pid from ours too.
    answer="$(rmqctl eval '{os:getpid(), mnesia:system_info(directory)}.' 2>/dev/null || true)"
    node_pid="$(sed -n 's/^{"\([0-9]*\)",.*/\1/p' <<<"$answer")"
    node_dir="$(sed -n 's/^{"[0-9]*","\(.*\)"}$/\1/p' <<<"$answer")"
    [[ -n "$node_pid" && "$node_dir" == "$RABBIT_DIR/mnesia/"* ]] || return 1
    for candidate in "$(read_pid "$PID_DIR/rabbitmq.pid")" "$(read_pid "$RABBIT_DIR/rabbitmq.pid")"; do
        [[ "$candidate" == "$node_pid" ]] && server_pid_alive "$candidate" beam.smp && return 0
    done
    [[ -n "$wrapper" ]] && server_pid_alive "$wrapper" rabbitmq-server && [[ "$(parent_pid "$node_pid")" == "$wrapper" ]]
}

# The parent of pid $1 (field 4 of /proc/PID/stat, after the parenthesized name), or nothing.
parent_pid() {
    local stat
    stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 0
    stat="${stat##*) }"
    echo "${stat#* }" | cut -d' ' -f1
}

# The pids of the children of pid $1 whose name is $2.
children_named() {
    local stat pid
    for stat in /proc/[0-9]*/stat; do
        pid="${stat#/proc/}"
        pid="${pid%/stat}"
        [[ "$(parent_pid "$pid")" == "$1" ]] && server_pid_alive "$pid" "$2" && echo "$pid"
    done
    return 0
}

# Stops with an error unless the node is ours (the fault-test commands: they would otherwise
# stop, block or empty another checkout's broker).
require_our_rabbit() {
    rabbit_node_is_ours || die "rabbitmq: the node answering as $RABBIT_NODE is not the one this checkout started"
}

# Write the config files the node reads.
rabbit_prepare() {
    mkdir -p "$RABBIT_HOME" "$RABBIT_DIR/mnesia" "$LOG_DIR/rabbitmq" "$PID_DIR"
    local cookie="$RABBIT_HOME/.erlang.cookie" want="$ERLANG_COOKIE"
    if [[ -z "$want" ]]; then
        # Kept from launch to launch (the node is not running here); the old fixed one is not.
        want="$(cat "$cookie" 2>/dev/null || true)"
        if [[ -z "$want" || "$want" == "$OLD_FIXED_COOKIE" ]]; then
            want="$(head -c 32 /dev/urandom | od -An -tx1 | tr -dc '0-9a-f')"
        fi
    fi
    if [[ ! -f "$cookie" || "$(cat "$cookie")" != "$want" ]]; then
        rm -f "$cookie"
        (umask 077 && printf '%s' "$want" >"$cookie")
        chmod 400 "$cookie"
    fi
    cat >"$RABBIT_DIR/rabbitmq.conf" <<EOF
# Generated by scripts/infra.sh: local development node.
listeners.tcp.default = 127.0.0.1:$AMQP_PORT
# guest/guest works because we listen on loopback only.
log.file.level = info
# Stated, so that the fault tests can raise a memory alarm and set it back exactly.
vm_memory_high_watermark.relative = 0.4
EOF
    : >"$RABBIT_DIR/rabbitmq-env.conf" # keeps /etc/rabbitmq/rabbitmq-env.conf out
    echo '[].' >"$RABBIT_DIR/enabled_plugins"  # no management plugin
}

# Launch rabbitmq-server in the background (does not wait); sets RABBIT_LAUNCHED=1.
RABBIT_LAUNCHED=0
rabbit_launch() {
    if rabbit_up; then
        rabbit_node_is_ours || die "rabbitmq: the node on 127.0.0.1:$AMQP_PORT is not the one this checkout started; stop it, or move this checkout's ports (INFRA_AMQP_PORT, INFRA_RABBIT_DIST_PORT, INFRA_EPMD_PORT)"
        say "rabbitmq: already running on 127.0.0.1:$AMQP_PORT"
        return
    fi
    if rabbit_node_is_ours; then
        say "rabbitmq: node up with the app stopped; starting the app"
        cmd_rabbit_start_app
        return
    fi
    if port_open "$AMQP_PORT" || port_open "$RABBIT_DIST_PORT"; then
        die "port $AMQP_PORT or $RABBIT_DIST_PORT is in use by something that is not our RabbitMQ"
    fi
    [[ -x "$RABBIT_BIN/rabbitmq-server" ]] || die "RabbitMQ not installed; run 'scripts/infra.sh install'"
    rabbit_prepare
    rm -f "$RABBIT_DIR/rabbitmq.pid"
    local env_lines=()
    mapfile -t env_lines < <(rabbit_env)
    # setsid: its own session, so ^C in a terminal running make does not hit it.
    setsid env "${env_lines[@]}" "$RABBIT_BIN/rabbitmq-server" \
        >"$LOG_DIR/rabbitmq.stdout.log" 2>&1 </dev/null &
    echo $! >"$PID_DIR/rabbitmq-wrapper.pid"
    RABBIT_LAUNCHED=1
    say "rabbitmq: launched (node $RABBIT_NODE), waiting"
}

# Wait until the launched node has booted, then record its pid.
rabbit_wait() {
    local t0=$SECONDS
    if ! rmqctl wait "$RABBIT_DIR/rabbitmq.pid" --timeout 120 >/dev/null 2>&1 ||
        ! wait_port_open "$AMQP_PORT" 30; then
        say "rabbitmq: did not start; last log lines:"
        tail -n 30 "$LOG_DIR/rabbitmq.stdout.log" >&2 || true
        die "rabbitmq failed to start"
    fi
    read_pid "$RABBIT_DIR/rabbitmq.pid" >"$PID_DIR/rabbitmq.pid"
    echo >>"$PID_DIR/rabbitmq.pid"
    echo "rabbitmq: ready on amqp://127.0.0.1:$AMQP_PORT (node $RABBIT_NODE, pid $(read_pid "$PID_DIR/rabbitmq.pid"), $((SECONDS - t0))s)"
}

# Stop our RabbitMQ node and the epmd it started.
rabbit_stop() {
    local pid wrapper
    pid="$(read_pid "$PID_DIR/rabbitmq.pid")"
    wrapper="$(read_pid "$PID_DIR/rabbitmq-wrapper.pid")"
    if [[ -z "$pid$wrapper" ]]; then
        say "rabbitmq: not started by this checkout; leaving it"
        return
    fi
    if rabbit_node_is_ours; then
        rmqctl shutdown >/dev/null 2>&1 || say "rabbitmq: rabbitmqctl shutdown failed"
    elif rabbit_node_up; then
        # Ours is gone (its pid files are stale): nothing here to stop, and the epmd on our
        # port serves that other node.
        say "rabbitmq: the node answering as $RABBIT_NODE is not the one this checkout started; leaving it"
        rm -f "$PID_DIR/rabbitmq.pid" "$PID_DIR/rabbitmq-wrapper.pid" "$RABBIT_DIR/rabbitmq.pid"
        return
    fi
    # Fallback by pid: TERM (graceful), then KILL. A node still booting has no recorded pid
    # yet: it is the wrapper's beam.smp child (stopping only the wrapper would orphan it).
    local entry p booting=""
    if [[ -z "$pid" && -n "$wrapper" ]] && server_pid_alive "$wrapper" rabbitmq-server; then
        booting="$(children_named "$wrapper" beam.smp | head -n1)"
    fi
    for entry in "$pid:beam.smp" "$booting:beam.smp" "$wrapper:rabbitmq-server"; do
        p="${entry%%:*}"
        if server_pid_alive "$p" "${entry#*:}" && ! wait_pid_gone "$p" 15; then
            server_pid_alive "$p" "${entry#*:}" || continue
            say "rabbitmq: pid $p still alive; sending TERM"
            kill -TERM "$p" 2>/dev/null || true
            wait_pid_gone "$p" 15 || { server_pid_alive "$p" "${entry#*:}" && kill -KILL "$p" 2>/dev/null || true; }
        fi
    done
    ERL_EPMD_PORT="$EPMD_PORT" HOME="$RABBIT_HOME" epmd -kill >/dev/null 2>&1 || true
    wait_port_closed "$EPMD_PORT" 10 || say "rabbitmq: epmd still listens on $EPMD_PORT"
    rm -f "$PID_DIR/rabbitmq.pid" "$PID_DIR/rabbitmq-wrapper.pid" "$RABBIT_DIR/rabbitmq.pid"
    echo "rabbitmq: stopped"
}

# rabbitmqctl stop_app: the broker goes away, the node stays (for fault tests).
cmd_rabbit_stop_app() {
    require_our_rabbit
    rmqctl stop_app >/dev/null
    wait_port_closed "$AMQP_PORT" 30 || die "rabbitmq: port $AMQP_PORT still open after stop_app"
    echo "rabbitmq: app stopped"
}

# The broker's process stopped (SIGSTOP: its sockets stay open and unread, as a frozen broker's
# or a VM's paused) or running again, for fault tests.
cmd_rabbit_freeze() {
    local pid
    pid="$(read_pid "$PID_DIR/rabbitmq.pid")"
    [[ -n "$pid" ]] && server_pid_alive "$pid" beam.smp || die "rabbitmq: not running"
    case "${1:-}" in
        on) kill -STOP "$pid" ;;
        off) kill -CONT "$pid" ;;
        *) die "usage: scripts/infra.sh rabbitmq-freeze on|off" ;;
    esac
    echo "rabbitmq: frozen $1"
}

# A memory alarm on (every publishing connection is blocked) or off again, for fault tests.
cmd_rabbit_memory_alarm() {
    require_our_rabbit
    case "${1:-}" in
        on) rmqctl set_vm_memory_high_watermark 0 >/dev/null ;;
        off) rmqctl set_vm_memory_high_watermark 0.4 >/dev/null ;;
        *) die "usage: scripts/infra.sh rabbitmq-memory-alarm on|off" ;;
    esac
    echo "rabbitmq: memory alarm $1"
}

# Empty each named queue that exists and has no consumer (benchmark leftovers);
# a queue that someone consumes is left alone.
cmd_rabbit_purge_idle() {
    require_our_rabbit
    local queue consumers
    for queue in "$@"; do
        consumers="$(rmqctl list_queues -q --no-table-headers name consumers 2>/dev/null | awk -v q="$queue" '$1 == q { print $2 }')"
        if [[ "$consumers" == "0" ]]; then
            rmqctl purge_queue "$queue" >/dev/null && echo "rabbitmq: purged $queue (no consumer)"
        fi
    done
}

# rabbitmqctl start_app, then wait until AMQP answers again.
cmd_rabbit_start_app() {
    require_our_rabbit
    rmqctl start_app >/dev/null
    wait_port_open "$AMQP_PORT" 60 || die "rabbitmq: port $AMQP_PORT not open after start_app"
    local deadline=$((SECONDS + 30))
    until rabbit_up; do
        ((SECONDS < deadline)) || die "rabbitmq: no AMQP answer after start_app"
        sleep 0.2
    done
    echo "rabbitmq: app started"
}

# --- PostgreSQL -----------------------------------------------------------------

# Directory of the newest installed PostgreSQL server binaries.
pg_bin() {
    local d
    d="$(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V | tail -n1)"
    [[ -n "$d" && -x "$d/pg_ctl" ]] || die "PostgreSQL not installed; run 'scripts/infra.sh install'"
    echo "$d"
}

# Run a command as the postgres user when we are root (postgres refuses root).
as_pg() {
    if ((EUID == 0)); then runuser -u postgres -- "$@"; else "$@"; fi
}

# True when PostgreSQL answers on our port.
pg_up() { pg_isready -q -h 127.0.0.1 -p "$PG_PORT" -t 2 >/dev/null 2>&1; }

# True when this checkout's data folder names a live postmaster (one may be starting, not yet
# answering).
pg_starting() {
    local pid
    pid="$(head -n1 "$PG_DATA/postmaster.pid" 2>/dev/null | tr -dc '0-9')"
    [[ -n "$pid" && "$(cat "/proc/$pid/comm" 2>/dev/null)" == postgres ]]
}

# True when the PostgreSQL answering on our port serves this checkout's data folder (another
# checkout's server on the same port would otherwise be taken for ours, and its tests and ours
# would share one database).
pg_is_ours() {
    local dir
    dir="$(psql -X -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -tAq -c 'SHOW data_directory' 2>/dev/null)" || return 1
    [[ -n "$dir" && "$(readlink -f "$dir")" == "$(readlink -f "$PG_DATA")" ]]
}

# Set PG_BASE (the real folder behind .run/postgres), PG_DATA, PG_SOCK, PG_LOG.
pg_paths() {
    PG_BASE="$(readlink -f "$PG_LINK" 2>/dev/null || echo "$PG_LINK")"
    PG_DATA="$PG_BASE/data"
    PG_LOG="$PG_BASE/postgres.log"
    PG_SOCK="$PG_BASE/sock"
    # A Unix socket path is limited to 107 bytes: fall back to /tmp.
    if ((${#PG_SOCK} + 16 > 107)); then
        PG_SOCK="/tmp/messenger-pgsock-$(echo "$ROOT" | cksum | cut -d' ' -f1)"
    fi
}
pg_paths

# Create the data folders (owned by postgres when root) and run initdb once.
pg_prepare() {
    local bin="$1"
    mkdir -p "$PG_LINK" "$LOG_DIR" "$PID_DIR"
    pg_paths
    if ((EUID == 0)); then
        chown postgres: "$PG_BASE"
        if ! as_pg test -w "$PG_BASE"; then
            # The repo path is not reachable for user postgres (e.g. under /root):
            # keep the data in /var/tmp and link it from .run.
            local alt pid
            alt="/var/tmp/messenger-postgres-$(echo "$ROOT" | cksum | cut -d' ' -f1)"
            say "postgres: $PG_BASE not reachable for user postgres; using $alt"
            # A checkout at the same path before this one left its data there: this checkout
            # starts from an empty database, as one whose data is under .run does.
            if [[ -e "$alt" ]]; then
                pid="$(head -1 "$alt/data/postmaster.pid" 2>/dev/null || true)"
                if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
                    die "postgres: $alt is used by a running server (pid $pid); stop it first"
                fi
                say "postgres: removing $alt, left by an earlier checkout at this path"
                rm -rf "$alt"
            fi
            mkdir -p "$alt" && chown postgres: "$alt"
            rmdir "$PG_LINK" && ln -s "$alt" "$PG_LINK"
            pg_paths
        fi
    fi
    as_pg mkdir -p "$PG_SOCK"
    if [[ ! -f "$PG_DATA/PG_VERSION" ]]; then
        say "postgres: initdb $PG_DATA"
        as_pg "$bin/initdb" -D "$PG_DATA" -U postgres -A trust -E UTF8 --locale=C.UTF-8 \
            >"$LOG_DIR/postgres-initdb.log" 2>&1 || {
            cat "$LOG_DIR/postgres-initdb.log" >&2
            die "initdb failed"
        }
    fi
    as_pg touch "$PG_LOG"
    ln -sfn "$PG_LOG" "$LOG_DIR/postgres.log"
}

# Start PostgreSQL (waits), then create the database if missing.
pg_start() {
    local bin t0=$SECONDS
    if ! pg_up && pg_starting; then
        # This checkout's server, still starting (a crash recovery on a slow disk outlasting
        # pg_ctl's wait, say): wait for it rather than call it something else on the port.
        say "postgres: still starting; waiting for it"
        while ! pg_up && pg_starting && ((SECONDS - t0 < 120)); do sleep 1; done
        if ! pg_up && pg_starting; then die "postgres: still starting after 120 s (see $PG_LOG)"; fi
    fi
    if pg_up; then
        pg_is_ours || die "postgres: the server on 127.0.0.1:$PG_PORT is not this checkout's (its data is not in $PG_DATA); stop it, or move this checkout's ports (INFRA_PG_PORT)"
        # Ours: recorded, so that stop and `make down` stop it (a start that timed out left none).
        mkdir -p "$PID_DIR"
        head -n1 "$PG_DATA/postmaster.pid" >"$PID_DIR/postgres.pid" 2>/dev/null || true
        say "postgres: already running on 127.0.0.1:$PG_PORT"
    else
        if port_open "$PG_PORT"; then die "port $PG_PORT is in use by something that is not PostgreSQL"; fi
        bin="$(pg_bin)"
        pg_prepare "$bin"
        as_pg "$bin/pg_ctl" -D "$PG_DATA" -l "$PG_LOG" -w -t 60 \
            -o "-p $PG_PORT -k '$PG_SOCK' -c listen_addresses=127.0.0.1 -c max_connections=200 -c shared_preload_libraries=pg_stat_statements" \
            start >/dev/null || {
            # A server slower than the wait goes on starting: recorded, so that stop stops it.
            if [[ -f "$PG_DATA/postmaster.pid" ]]; then head -n1 "$PG_DATA/postmaster.pid" >"$PID_DIR/postgres.pid"; fi
            tail -n 30 "$PG_LOG" >&2 || true
            die "postgres failed to start"
        }
        head -n1 "$PG_DATA/postmaster.pid" >"$PID_DIR/postgres.pid"
        echo "postgres: ready on 127.0.0.1:$PG_PORT (pid $(read_pid "$PID_DIR/postgres.pid"), $((SECONDS - t0))s)"
    fi
    local exists
    exists="$(psql -X -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -tAq \
        -c "SELECT 1 FROM pg_database WHERE datname = '$PG_DB'")"
    if [[ "$exists" != 1 ]]; then
        psql -X -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -q -c "CREATE DATABASE $PG_DB" >/dev/null
        echo "postgres: created database $PG_DB"
    fi
}

# Stop our PostgreSQL with pg_ctl (fast mode).
pg_stop() {
    if [[ ! -f "$PID_DIR/postgres.pid" ]]; then
        say "postgres: not started by this checkout; leaving it"
        return
    fi
    if [[ -f "$PG_DATA/postmaster.pid" ]]; then
        as_pg "$(pg_bin)/pg_ctl" -D "$PG_DATA" -m fast -w -t 60 stop >/dev/null ||
            say "postgres: pg_ctl stop failed"
    fi
    rm -f "$PID_DIR/postgres.pid"
    echo "postgres: stopped"
}

# --- Redis -----------------------------------------------------------------------

# True when Redis answers PING on our port.
redis_up() { [[ "$(timeout 3 redis-cli -h 127.0.0.1 -p "$REDIS_LOCAL_PORT" ping 2>/dev/null)" == PONG ]]; }

# Start Redis (daemonized, no persistence) and wait for PING.
redis_start() {
    local t0=$SECONDS
    if redis_up; then
        redis_is_ours || die "redis: the server on 127.0.0.1:$REDIS_LOCAL_PORT is not the one this checkout started; stop it, or move this checkout's ports (INFRA_REDIS_PORT)"
        say "redis: already running on 127.0.0.1:$REDIS_LOCAL_PORT"
        return
    fi
    if port_open "$REDIS_LOCAL_PORT"; then die "port $REDIS_LOCAL_PORT is in use by something that is not Redis"; fi
    command -v redis-server >/dev/null || die "Redis not installed; run 'scripts/infra.sh install'"
    mkdir -p "$REDIS_DIR" "$LOG_DIR" "$PID_DIR"
    rm -f "$PID_DIR/redis.pid"
    redis-server --port "$REDIS_LOCAL_PORT" --bind 127.0.0.1 --daemonize yes \
        --dir "$REDIS_DIR" --pidfile "$PID_DIR/redis.pid" --logfile "$LOG_DIR/redis.log" \
        --save '' --appendonly no
    local deadline=$((SECONDS + 20))
    until redis_up; do
        if ((SECONDS >= deadline)); then
            tail -n 20 "$LOG_DIR/redis.log" >&2 || true
            die "redis failed to start"
        fi
        sleep 0.1
    done
    echo "redis: ready on 127.0.0.1:$REDIS_LOCAL_PORT (pid $(read_pid "$PID_DIR/redis.pid"), $((SECONDS - t0))s)"
}

# Stop our Redis with SHUTDOWN NOSAVE; wait for its pid to go.
redis_stop() {
    local pid
    pid="$(read_pid "$PID_DIR/redis.pid")"
    if [[ -z "$pid" ]]; then
        say "redis: not started by this checkout; leaving it"
        return
    fi
    if server_pid_alive "$pid" redis-server; then
        redis-cli -h 127.0.0.1 -p "$REDIS_LOCAL_PORT" shutdown nosave >/dev/null 2>&1 || true
        if ! wait_pid_gone "$pid" 15 && server_pid_alive "$pid" redis-server; then
            say "redis: pid $pid still alive; sending TERM"
            kill -TERM "$pid" 2>/dev/null || true
            wait_pid_gone "$pid" 10 || { server_pid_alive "$pid" redis-server && kill -KILL "$pid" 2>/dev/null || true; }
        fi
    fi
    rm -f "$PID_DIR/redis.pid"
    echo "redis: stopped"
}

# True when the Redis answering on our port is the one this checkout started.
redis_is_ours() {
    local pid server_pid
    pid="$(read_pid "$PID_DIR/redis.pid")"
    [[ -n "$pid" ]] && server_pid_alive "$pid" redis-server || return 1
    server_pid="$(timeout 3 redis-cli -h 127.0.0.1 -p "$REDIS_LOCAL_PORT" info server 2>/dev/null |
        tr -d '\r' | awk -F: '$1 == "process_id" { print $2 }')"
    [[ "$server_pid" == "$pid" ]]
}

# SHUTDOWN NOSAVE and start again on the same port (for fault tests); only our own server.
cmd_redis_restart() {
    redis_is_ours || die "redis: the server on port $REDIS_LOCAL_PORT is not the one this checkout started"
    redis-cli -h 127.0.0.1 -p "$REDIS_LOCAL_PORT" shutdown nosave >/dev/null 2>&1 || true
    wait_port_closed "$REDIS_LOCAL_PORT" 15 || die "redis: port $REDIS_LOCAL_PORT still open after shutdown"
    redis_start
}

# --- crashes (fault tests) ------------------------------------------------------------

# End a server the way a crash would, so that fault tests can check what survives it:
# RabbitMQ's node gets SIGKILL (what it had confirmed must be on disk); PostgreSQL stops in
# immediate mode (every server process quits at once, without a checkpoint, and the next start
# runs crash recovery from the WAL). Only servers this checkout started.
cmd_crash() {
    local pid
    case "${1:-}" in
        rabbitmq)
            pid="$(read_pid "$PID_DIR/rabbitmq.pid")"
            server_pid_alive "$pid" beam.smp || die "rabbitmq: not started by this checkout, or not running"
            kill -KILL "$pid" 2>/dev/null || true
            wait_pid_gone "$pid" 15 || die "rabbitmq: pid $pid still there after SIGKILL"
            wait_port_closed "$AMQP_PORT" 15 || die "rabbitmq: port $AMQP_PORT still open after SIGKILL"
            rm -f "$PID_DIR/rabbitmq.pid" "$RABBIT_DIR/rabbitmq.pid"
            echo "rabbitmq: killed (pid $pid)"
            ;;
        postgres)
            [[ -f "$PID_DIR/postgres.pid" ]] || die "postgres: not started by this checkout"
            as_pg "$(pg_bin)/pg_ctl" -D "$PG_DATA" -m immediate -w -t 30 stop >/dev/null ||
                die "postgres: immediate stop failed"
            rm -f "$PID_DIR/postgres.pid"
            echo "postgres: crashed (immediate stop)"
            ;;
        *) die "usage: scripts/infra.sh crash rabbitmq|postgres" ;;
    esac
}

# --- subcommands -------------------------------------------------------------------

# Start the given servers (default all); RabbitMQ boots while the others start.
cmd_start() {
    select_servers "$@"
    local servers=" ${SERVERS[*]} "
    mkdir -p "$PID_DIR" "$LOG_DIR"
    if [[ "$servers" == *" rabbitmq "* ]]; then rabbit_launch; fi
    if [[ "$servers" == *" postgres "* ]]; then pg_start; fi
    if [[ "$servers" == *" redis "* ]]; then redis_start; fi
    if ((RABBIT_LAUNCHED)); then rabbit_wait; fi
    ensure_jwt_key
    write_env_file
}

# Stop the given servers (default all), only those started from this checkout.
cmd_stop() {
    local s
    select_servers "$@"
    for s in "${SERVERS[@]}"; do
        case "$s" in
            rabbitmq) rabbit_stop ;;
            postgres) pg_stop ;;
            redis) redis_stop ;;
        esac
    done
}

# Report each server; exit 0 only when all asked for answer.
cmd_status() {
    local s rc=0
    select_servers "$@"
    for s in "${SERVERS[@]}"; do
        case "$s" in
            rabbitmq) if rabbit_up; then echo "rabbitmq: up (amqp 127.0.0.1:$AMQP_PORT)"; else echo "rabbitmq: down"; rc=1; fi ;;
            postgres) if pg_up; then echo "postgres: up (127.0.0.1:$PG_PORT)"; else echo "postgres: down"; rc=1; fi ;;
            redis) if redis_up; then echo "redis: up (127.0.0.1:$REDIS_LOCAL_PORT)"; else echo "redis: down"; rc=1; fi ;;
        esac
    done
    return "$rc"
}

# Print usage.
usage() { sed -n '2,20p' "$SELF" | sed 's/^# \{0,1\}//'; }

main() {
    local cmd="${1:-}"
    (($# == 0)) || shift
    case "$cmd" in
        install) cmd_install ;;
        start) cmd_start "$@" ;;
        stop) cmd_stop "$@" ;;
        status) cmd_status "$@" ;;
        env) ensure_jwt_key && print_env ;;
        rabbitmq-stop-app) cmd_rabbit_stop_app ;;
        rabbitmq-freeze) cmd_rabbit_freeze "$@" ;;
        rabbitmq-start-app) cmd_rabbit_start_app ;;
        redis-restart) cmd_redis_restart ;;
        rabbitmq-purge-idle) cmd_rabbit_purge_idle "$@" ;;
        rabbitmq-memory-alarm) cmd_rabbit_memory_alarm "$@" ;;
        crash) cmd_crash "$@" ;;
        rabbitmqctl) rmqctl "$@" ;;
        -h | --help | help) usage ;;
        *) usage >&2; exit 2 ;;
    esac
}

main "$@"
