"""The load tool behind `make bench` (Tests/Benchmarks/MessengerLoad), run small against the
running services, and the report made from its result (scripts/bench-report.py).

Every scenario runs for a few seconds at a few messages a second: this checks that the tool
works end to end (users, DMs and groups, the rate steps, idle sockets, the reconnect storm,
the same-run ceilings, the JSON result, the Markdown report and its plots) and that nothing
is lost. It checks no speed: the targets are for `make bench` on release builds, and a test
on a shared machine must not time anything.

The binary is the debug build `swift build` leaves (`MESSENGER_LOAD` names another one).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LOAD_TOOL = Path(os.environ.get("MESSENGER_LOAD", ROOT / ".build" / "debug" / "messenger-load"))

SCENARIOS = ["latency-floor", "throughput-dm", "throughput-group", "idle-sockets", "reconnect-storm"]
RATE_STEP_KEYS = {"rate", "sent", "deliveries", "delivered", "lost", "errors", "latencyMs", "ackMs", "cpuSecondsPer1000"}
PROCESSES = {"postgres", "rabbitmq", "redis", "messaging", "delivery", "socket-gateway", "messenger-load"}


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One small run of every scenario; the folder holding its result.json."""
    if not LOAD_TOOL.is_file():
        pytest.fail(f"{LOAD_TOOL} is missing: build it with `swift build` (or set MESSENGER_LOAD)")
    output = tmp_path_factory.mktemp("load")
    arguments = [
        str(LOAD_TOOL),
        "--scenarios=floor,dm,group,idle,storm",
        "--users=6",
        "--group-size=3",
        "--floor-rate=20",
        "--floor-seconds=2",
        "--warm-up-seconds=1",
        "--unloaded-seconds=1",
        "--rates=10,20",
        "--group-rates=5",
        "--step-seconds=2",
        "--idle=100",
        "--storm-users=3",
        "--storm-sockets=4",
        "--storm-rate=10",
        "--storm-seconds=4",
        f"--output={output}",
        "--git=e2e",
    ]
    done = subprocess.run(arguments, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"messenger-load exited with {done.returncode}:\n{done.stdout[-4000:]}\n{done.stderr[:4000]}"
    folder = ROOT / (output / "latest").read_text().strip()  # the run's folder (absolute here)
    assert (folder / "result.json").is_file(), done.stdout[-4000:]
    return folder


@pytest.fixture(scope="module")
def result(run: Path) -> dict:
    return json.loads((run / "result.json").read_text())


def scenario(result: dict, name: str) -> dict:
    found = [s for s in result["scenarios"] if s["name"] == name]
    assert len(found) == 1, f"scenario {name} is missing from {[s['name'] for s in result['scenarios']]}"
    return found[0]


def test_every_scenario_is_reported_with_a_verdict(result: dict) -> None:
    assert [s["name"] for s in result["scenarios"]] == SCENARIOS
    for s in result["scenarios"]:
        assert s["target"] and s["verdict"], s
        assert isinstance(s["met"], bool)
        if not s["met"] and s["kind"] == "rate-steps":
            assert s.get("bound"), f"{s['name']} missed its target without saying what bounds it"


def test_the_same_run_ceilings_are_measured_before_and_after(result: dict) -> None:
    for figures in (result["ceilings"], result["ceilingsAtEnd"]):
        for key in (
            "rabbitmqPublishConfirmPerSecond",
            "postgresInsertCommitPerSecond",
            "redisPublishPerSecond",
            "sumOfPartsMessagesPerSecond",
            "groupSumOfPartsMessagesPerSecond",
        ):
            assert figures[key] > 0, (key, figures)


def test_every_message_of_every_rate_step_reaches_every_recipient(result: dict) -> None:
    for name in SCENARIOS[:3]:
        s = scenario(result, name)
        steps = s["steps"] + [step for step in (s.get("warmUp"), s.get("unloaded")) if step]
        assert steps
        for step in steps:
            assert RATE_STEP_KEYS <= step.keys(), step
            assert step["sent"] > 0 and step["deliveries"] >= step["sent"], step
            assert (step["delivered"], step["lost"], step["errors"]) == (step["deliveries"], 0, 0), (name, step)
            assert PROCESSES <= step["cpuSecondsPer1000"].keys(), step["cpuSecondsPer1000"]
    # A group of 3 has 2 recipients per message.
    group = scenario(result, "throughput-group")["steps"][0]
    assert group["deliveries"] == 2 * group["sent"]


def test_idle_sockets_all_connect_and_their_memory_is_measured(result: dict) -> None:
    s = scenario(result, "idle-sockets")
    assert s["connected"] == s["connections"] == 100
    assert s["gatewayRssBeforeBytes"] > 0 and s["gatewayRssAfterBytes"] > 0, s
    assert [g["connected"] for g in s["gateways"]] == [100], s["gateways"]


def test_every_storm_socket_drops_comes_back_and_catches_up(result: dict) -> None:
    s = scenario(result, "reconnect-storm")
    assert s["clients"] == 12
    assert s["reconnected"] == s["clients"], s["verdict"]
    assert s["resumed"] == s["clients"], s["verdict"]
    assert s["messagesSentDuringStorm"] == 40
    assert (s["deliveriesReceived"], s["lost"]) == (s["deliveriesExpected"], 0), s["verdict"]


def test_the_report_has_every_target_and_its_plots(run: Path, result: dict) -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "bench-report.py"), str(run / "result.json")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    report = (run / "report.md").read_text()
    assert "## Targets" in report and "## Ceilings (same run)" in report
    for s in result["scenarios"]:
        assert s["title"] in report, s["title"]
    for plot in ("latency.png", "cpu.png"):
        assert (run / plot).stat().st_size > 0, plot
        assert f"]({plot})" in report
