#!/usr/bin/env bash
# shellcheck disable=SC2317  # functions reached through traps and `step`
# Full test run, as CI does it (.ci/run -> make test):
#   1. install what is missing and start the servers that are not running
#   2. swift build --build-tests
#   3. start the services that are not running
#   4. swift test --skip FaultTests
#   5. python -m pytest Tests/e2e       (REST end-to-end, against the running services)
#   6. swift test --filter FaultTests   (restarts RabbitMQ/Redis: runs alone, last)
#   7. docker-compose -f compose.yaml config -q
# On exit it stops only the servers and services it started itself. Every step
# runs even after a failure (except those that need the build); the exit status
# is the first failing step's.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT" || exit 1
INFRA="$ROOT/scripts/infra.sh"
SVC="$ROOT/scripts/services.sh"

STARTED_SERVERS=()
STARTED_SERVICES=()
FAILED_STEPS=()
FIRST_RC=0

# Run one named step; record and announce its failure.
step() {
    local name="$1" rc
    shift
    echo
    echo "=== test.sh: $name"
    "$@"
    rc=$?
    if ((rc != 0)); then
        echo "=== test.sh: FAILED: $name (exit $rc)" >&2
        FAILED_STEPS+=("$name")
        ((FIRST_RC != 0)) || FIRST_RC=$rc
    fi
    return "$rc"
}

# Record a step that could not run because an earlier one failed.
skipped() {
    echo "=== test.sh: SKIPPED: $1 ($2)" >&2
    FAILED_STEPS+=("$1 (skipped)")
    ((FIRST_RC != 0)) || FIRST_RC=1
}

# shellcheck source=scripts/env.sh
source "$ROOT/scripts/env.sh"

# Run `swift test` with the given arguments, keeping its output in a log.
TEST_LOGS=()
swift_test() {
    local log
    log="$ROOT/.run/logs/swift-test-$((${#TEST_LOGS[@]} + 1)).log"
    mkdir -p "$ROOT/.run/logs"
    TEST_LOGS+=("$log")
    swift test "$@" 2>&1 | tee "$log"
}

# Run the pytest end-to-end suite (Tests/e2e) with the venv's Python, keeping its output
# in a log. Exit status 5 (no tests collected) is a failure like any other non-zero one.
PYTEST_LOGS=()
pytest_e2e() {
    local log="$ROOT/.run/logs/pytest-e2e.log" python="$ROOT/.run/venv/bin/python" rc
    mkdir -p "$ROOT/.run/logs"
    PYTEST_LOGS+=("$log")
    if [[ ! -x "$python" ]]; then
        echo "pytest: $python is missing (scripts/infra.sh install creates it)" | tee "$log" >&2
        return 1
    fi
    "$python" -m pytest Tests/e2e -q -ra -p no:cacheprovider 2>&1 | tee "$log"
    rc=${PIPESTATUS[0]}
    if ((rc == 5)); then echo "=== test.sh: pytest collected no tests" >&2; fi
    return "$rc"
}

# Counts of pytest's closing line ("3 failed, 40 passed, 2 skipped, 1 error in 12.3s"), as
# "passed failed" where failed includes errors; "0 0" when the log has no such line.
pytest_counts() {
    local line passed=0 failed=0 n word
    line="$(grep -E '(^|[ =])[0-9]+ (passed|failed|errors?|skipped|deselected|xfailed|xpassed|warnings?)(,| in )|(^|[ =])no tests ran in ' "$@" 2>/dev/null | tail -n 1 || true)"
    while read -r n word; do
        case "$word" in
            passed) passed=$((passed + n)) ;;
            failed | error | errors) failed=$((failed + n)) ;;
        esac
    done < <(grep -oE '[0-9]+ (passed|failed|errors?)\b' <<<"$line" || true)
    echo "$passed $failed"
}

# Print "tests: N passed, N failed" counted from the per-test result lines of
# XCTest ("Test Case '...' passed (") and Swift Testing ("Test x() passed after"),
# plus the closing line of each pytest run (its errors count as failed).
summarize_tests() {
    ((${#TEST_LOGS[@]} + ${#PYTEST_LOGS[@]})) || return 0
    local passed=0 failed=0 log p f
    if ((${#TEST_LOGS[@]})); then
        passed="$(cat "${TEST_LOGS[@]}" 2>/dev/null | grep -vE 'Test run with' | grep -cE "Test Case '.*' passed \(|Test .+ passed after [0-9.]+ seconds" || true)"
        failed="$(cat "${TEST_LOGS[@]}" 2>/dev/null | grep -vE 'Test run with' | grep -cE "Test Case '.*' failed \(|Test .+ failed after [0-9.]+ seconds" || true)"
    fi
    for log in "${PYTEST_LOGS[@]}"; do
        read -r p f < <(pytest_counts "$log")
        passed=$((passed + p))
        failed=$((failed + f))
    done
    if ((passed + failed > 0)); then echo "tests: $passed passed, $failed failed"; fi
}

# On exit: stop what this run started, print the summary, keep the status.
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if ((${#STARTED_SERVICES[@]})); then
        echo "=== test.sh: stopping services it started: ${STARTED_SERVICES[*]}"
        "$SVC" stop "${STARTED_SERVICES[@]}" || true
    fi
    if ((${#STARTED_SERVERS[@]})); then
        echo "=== test.sh: stopping servers it started: ${STARTED_SERVERS[*]}"
        "$INFRA" stop "${STARTED_SERVERS[@]}" || true
    fi
    ((rc != 0 || FIRST_RC == 0)) || rc=$FIRST_RC
    ((rc == 0 || ${#FAILED_STEPS[@]})) || FAILED_STEPS+=("interrupted")
    echo
    summarize_tests
    if ((${#FAILED_STEPS[@]})); then
        echo "=== test.sh: FAILED steps:" >&2
        printf '  - %s\n' "${FAILED_STEPS[@]}" >&2
    else
        echo "=== test.sh: all steps passed"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# 1. Servers: install (cheap when done) and start those that are down.
step "install (apt packages, python venv)" "$INFRA" install
down=()
for s in rabbitmq postgres redis; do
    "$INFRA" status "$s" >/dev/null 2>&1 || down+=("$s")
done
infra_ok=1
# `start` starts those that are down and checks that those already up are this checkout's
# (another checkout's on our ports would run our tests against its data); it also writes
# .run/local.env. Until the fifty-seventh session the servers found up were not checked.
STARTED_SERVERS=("${down[@]}") # recorded first: a half start is cleaned up too
if ((${#down[@]} == 0)); then echo "=== test.sh: servers already running; they stay running afterwards"; fi
step "start servers${down[*]:+: ${down[*]}} (and check the others are ours)" "$INFRA" start || infra_ok=0

# 2. Build everything, tests included.
build_ok=0
step "swift build --build-tests" swift build --build-tests && build_ok=1

# 3. Services (debug build), those that are not running.
if ((build_ok && infra_ok)); then
    # Only those not running at all are started here, and so stopped at the end: one running
    # but not ready at this moment is someone else's (until the fifty-third session it was
    # recorded too, and killed at the end; a review).
    down=()
    for s in auth messaging socket-gateway media delivery; do
        status="$("$SVC" status "$s" 2>/dev/null || true)"
        [[ "$status" == *": not running"* ]] && down+=("$s")
    done
    if ((${#down[@]})); then
        STARTED_SERVICES=("${down[@]}")
        step "start services: ${down[*]}" "$SVC" start debug "${down[@]}"
    else
        echo "=== test.sh: services already running (not restarted: they may be an older build)"
    fi
elif ((build_ok)); then
    skipped "start services" "servers did not start"
fi

# 4.-6. Tests, with the same environment as the services (GATEWAY_URL,
# JWT_PRIVATE_KEY_FILE and LOGIN_WINDOW_SECONDS for the e2e suite come from it too).
[[ ! -f "$ROOT/.run/local.env" ]] || load_env_file "$ROOT/.run/local.env"
export PATH="$ROOT/.run/venv/bin:$PATH" # python3 = the venv with the test clients
if ((build_ok && infra_ok)); then
    step "swift test --skip FaultTests" swift_test --skip-build --skip FaultTests
    step "pytest Tests/e2e" pytest_e2e
    step "swift test --filter FaultTests" swift_test --skip-build --filter FaultTests
elif ((build_ok)); then
    # Servers that did not start, or that are another checkout's: the tests would run
    # against them (until the fifty-seventh session the Swift suite still ran).
    skipped "swift test" "servers did not start"
    skipped "pytest Tests/e2e" "servers did not start"
else
    skipped "swift test" "the build failed"
    skipped "pytest Tests/e2e" "the build failed"
fi

# 7. The compose file stays valid.
step "docker-compose config" docker-compose -f compose.yaml config -q

exit "$FIRST_RC"
