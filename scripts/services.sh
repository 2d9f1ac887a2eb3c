#!/usr/bin/env bash
# Runs the five Messenger services locally against the infra of
# scripts/infra.sh, from already built binaries (this script never builds).
#
#   scripts/services.sh start [debug|release] [service...]   background, wait for /readyz
#   scripts/services.sh stop [service...]                    SIGTERM, 40 s, then SIGKILL
#   scripts/services.sh status [service...]                  exit 0 when all are ready
#   scripts/services.sh logs                                 tail -F of the five logs
#
# Services: auth messaging socket-gateway media delivery.
# Environment: .run/local.env (written by `scripts/infra.sh start`); a variable
# already set in the caller's environment wins over the file. A `.env` in the checkout is
# not read (the services get ENV_FILE=.run/local.env).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RUN_DIR="$ROOT/.run"
PID_DIR="$RUN_DIR/pids"
LOG_DIR="$RUN_DIR/logs"
ENV_FILE="$RUN_DIR/local.env"
READY_TIMEOUT="${SERVICES_READY_TIMEOUT:-60}"
# A service's graceful stop may take SHUTDOWN_TIMEOUT_SECONDS (20 by default) and the close of
# its broker connection after that: killed at 15 s (until the fifty-third session) a relay's
# last batch or delivery's confirm wait was cut, and its work redelivered (a review).
STOP_TIMEOUT=40

ALL_SERVICES=(auth messaging socket-gateway media delivery)

# Print a message on stderr.
say() { echo "services: $*" >&2; }

# Print an error and exit.
die() { echo "services: error: $*" >&2; exit 1; }

# shellcheck source=scripts/env.sh
source "$ROOT/scripts/env.sh"

# Name of the environment variable holding a service's admin port.
admin_port_var() {
    case "$1" in
        auth) echo AUTH_ADMIN_PORT ;;
        messaging) echo MESSAGING_ADMIN_PORT ;;
        socket-gateway) echo GATEWAY_ADMIN_PORT ;;
        media) echo MEDIA_ADMIN_PORT ;;
        delivery) echo DELIVERY_ADMIN_PORT ;;
    esac
}

# The admin port of a service (from the loaded environment).
admin_port() {
    local var
    var="$(admin_port_var "$1")"
    [[ -n "${!var:-}" ]] || die "$var is not set (is $ENV_FILE complete?)"
    echo "${!var}"
}

# Set SERVICES to the services named on the command line, or all five.
SERVICES=()
select_services() {
    local s
    if (($# == 0)); then SERVICES=("${ALL_SERVICES[@]}"); return; fi
    SERVICES=()
    for s in "$@"; do
        [[ " ${ALL_SERVICES[*]} " == *" $s "* ]] || die "unknown service '$s' (known: ${ALL_SERVICES[*]})"
        SERVICES+=("$s")
    done
}

# The pid recorded for a service, or nothing.
read_pid() {
    local f="$PID_DIR/svc-$1.pid"
    if [[ -f "$f" ]]; then head -n1 "$f" | tr -dc '0-9'; fi
}

# True when pid $2 is alive (not a zombie) and is the executable of service $1,
# so that a recycled pid is never signalled.
svc_pid_alive() {
    local name="$1" pid="$2" state argv0
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    state="$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null || true)"
    [[ -n "$state" && "$state" != Z && "$state" != X ]] || return 1
    argv0="$(tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null | head -n1 || true)"
    [[ "$(basename -- "$argv0")" == "$name" ]]
}

# True when the service with this name runs under its recorded pid.
svc_running() {
    local pid
    pid="$(read_pid "$1")"
    [[ -n "$pid" ]] && svc_pid_alive "$1" "$pid"
}

# The ports a service listens on: its admin port, and the gateway's public one.
service_ports() {
    admin_port "$1"
    if [[ "$1" == socket-gateway ]]; then echo "${PORT:-5000}"; fi
}

# True when the service's /readyz answers 200.
svc_ready() {
    local port
    port="$(admin_port "$1")"
    curl -fsS -o /dev/null -m 2 "http://127.0.0.1:$port/readyz" 2>/dev/null
}

# Print the last lines of a service's log on stderr.
show_log_tail() {
    local log="$LOG_DIR/$1.log"
    echo "----- last lines of $log -----" >&2
    if [[ -f "$log" ]]; then tail -n 40 "$log" >&2; else echo "(no log)" >&2; fi
    echo "-----" >&2
}

# Load .run/local.env or explain how to get it.
require_env() {
    [[ -f "$ENV_FILE" ]] || die "$ENV_FILE is missing: run 'scripts/infra.sh start' first"
    load_env_file "$ENV_FILE"
}

# Start the services (background) and wait until each is ready.
cmd_start() {
    local config=debug
    if [[ "${1:-}" == debug || "${1:-}" == release ]]; then config="$1"; shift; fi
    local s
    select_services "$@"
    local services=("${SERVICES[@]}")
    require_env
    local bin_dir="$ROOT/.build/$config"
    local missing=()
    for s in "${services[@]}"; do
        [[ -x "$bin_dir/$s" ]] || missing+=("$bin_dir/$s")
    done
    if ((${#missing[@]})); then
        die "missing executable(s): ${missing[*]}
  build them first: swift build$([[ $config == release ]] && echo ' -c release')"
    fi
    mkdir -p "$PID_DIR" "$LOG_DIR"

    local started=()
    for s in "${services[@]}"; do
        if svc_running "$s"; then
            say "$s: already running (pid $(read_pid "$s"))"
            continue
        fi
        # Another process on one of its ports (an instance a test left behind, another
        # program): ours would fail to bind, and that one's /readyz would answer for it.
        local port
        for port in $(service_ports "$s"); do
            if port_open "$port"; then
                die "$s: port $port is already in use by a process this checkout did not start"
            fi
        done
        [[ ! -f "$LOG_DIR/$s.log" ]] || mv -f "$LOG_DIR/$s.log" "$LOG_DIR/$s.log.1"
        # setsid: own session, so ^C in the terminal that ran make does not hit it. ENV_FILE:
        # the service reads .run/local.env as its dotenv file, never a `.env` in the checkout
        # (compose's variables, say Cloudinary's credentials, which would send the tests'
        # uploads to a real account).
        (cd "$ROOT" && ENV_FILE="$ENV_FILE" exec setsid "$bin_dir/$s" >"$LOG_DIR/$s.log" 2>&1 </dev/null) &
        echo $! >"$PID_DIR/svc-$s.pid"
        started+=("$s")
        say "$s: started (pid $!, $config)"
    done

    # Wait for every requested service (also those already running) to be ready.
    local pending=("${services[@]}") failed=() still=() deadline=$((SECONDS + READY_TIMEOUT))
    while ((${#pending[@]})); do
        still=()
        for s in "${pending[@]}"; do
            # Ready first: just after the start the child may not have become the service yet
            # (its command line is still the shell's), and would look exited. (A foreign process
            # on the port cannot answer for it: the start refuses a port already taken.)
            if svc_ready "$s"; then
                echo "$s: ready (admin http://127.0.0.1:$(admin_port "$s"))"
            elif ! svc_running "$s"; then
                say "$s: exited before becoming ready"
                failed+=("$s")
            else
                still+=("$s")
            fi
        done
        pending=("${still[@]+"${still[@]}"}")
        ((${#pending[@]})) || break
        if ((SECONDS >= deadline)); then
            for s in "${pending[@]}"; do say "$s: not ready after ${READY_TIMEOUT}s"; done
            failed+=("${pending[@]}")
            break
        fi
        sleep 0.5
    done

    if ((${#failed[@]})); then
        for s in "${failed[@]}"; do show_log_tail "$s"; done
        die "not ready: ${failed[*]} (others keep running; 'scripts/services.sh stop' stops them)"
    fi
    if [[ " ${services[*]} " == *" socket-gateway "* ]]; then
        echo "gateway listening on http://127.0.0.1:${PORT:-5000}"
    fi
}

# Stop services by pid: SIGTERM, wait up to STOP_TIMEOUT (40 s), then SIGKILL.
cmd_stop() {
    local s pid
    select_services "$@"
    local services=("${SERVICES[@]}")
    local signalled=()
    for s in "${services[@]}"; do
        pid="$(read_pid "$s")"
        if [[ -n "$pid" ]] && svc_pid_alive "$s" "$pid"; then
            kill -TERM "$pid" 2>/dev/null || true
            signalled+=("$s:$pid")
        else
            rm -f "$PID_DIR/svc-$s.pid"
        fi
    done
    local deadline=$((SECONDS + STOP_TIMEOUT)) entry alive
    while ((${#signalled[@]})); do
        alive=()
        for entry in "${signalled[@]}"; do
            if svc_pid_alive "${entry%%:*}" "${entry#*:}"; then
                alive+=("$entry")
            else
                echo "${entry%%:*}: stopped"
                rm -f "$PID_DIR/svc-${entry%%:*}.pid"
            fi
        done
        signalled=("${alive[@]+"${alive[@]}"}")
        ((${#signalled[@]})) || break
        if ((SECONDS >= deadline)); then
            for entry in "${signalled[@]}"; do
                say "${entry%%:*}: no exit ${STOP_TIMEOUT}s after SIGTERM; sending SIGKILL"
                kill -KILL "${entry#*:}" 2>/dev/null || true
                rm -f "$PID_DIR/svc-${entry%%:*}.pid"
            done
            break
        fi
        sleep 0.2
    done
}

# Report each service; exit 0 only when all asked for are ready.
cmd_status() {
    local s rc=0
    select_services "$@"
    local services=("${SERVICES[@]}")
    [[ ! -f "$ENV_FILE" ]] || load_env_file "$ENV_FILE"
    local var
    for s in "${services[@]}"; do
        var="$(admin_port_var "$s")"
        if ! svc_running "$s"; then
            echo "$s: not running"
            rc=1
        elif [[ -n "${!var:-}" ]] && svc_ready "$s"; then
            echo "$s: ready (pid $(read_pid "$s"), admin port $(admin_port "$s"))"
        else
            echo "$s: running (pid $(read_pid "$s")), not ready"
            rc=1
        fi
    done
    return "$rc"
}

# Follow the five logs.
cmd_logs() {
    local files=() s
    mkdir -p "$LOG_DIR"
    for s in "${ALL_SERVICES[@]}"; do files+=("$LOG_DIR/$s.log"); done
    exec tail -n 20 -F "${files[@]}"
}

# Print usage.
usage() { sed -n '2,12p' "$ROOT/scripts/services.sh" | sed 's/^# \{0,1\}//'; }

main() {
    local cmd="${1:-}"
    (($# == 0)) || shift
    case "$cmd" in
        start) cmd_start "$@" ;;
        stop) cmd_stop "$@" ;;
        status) cmd_status "$@" ;;
        logs) cmd_logs ;;
        -h | --help | help) usage ;;
        *) usage >&2; exit 2 ;;
    esac
}

main "$@"
