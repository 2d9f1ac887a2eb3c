"""Turn a messenger-load result.json into a Markdown report with plots.

Usage:

    .run/venv/bin/python scripts/bench-report.py results/<stamp>/result.json

Writes next to the JSON file:

    report.md    ceilings, targets, one section per scenario
    latency.png  latency percentiles over offered rate, per rate-steps scenario
    cpu.png      CPU seconds per 1,000 messages per process, per step

and prints the path of report.md. A partial run (missing keys, missing
scenarios) is reported with "n/a" where a value is absent. Without
matplotlib the report is still written, without images, and a warning is
printed on stderr. Only the standard library and matplotlib are used.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import textwrap
from pathlib import Path

NA = "n/a"
LATENCY_LIMIT_MS = 100.0

# Process columns in a fixed order; processes not listed here follow, in
# the order they first appear in the JSON.
PROCESS_ORDER = [
    "postgres", "rabbitmq", "redis", "auth", "messaging", "delivery",
    "socket-gateway", "media", "messenger-load",
]

# (JSON key, label, colour) of the latency percentiles that are plotted.
PERCENTILES = [("p50", "p50", "tab:blue"), ("p90", "p90", "tab:orange"),
               ("p99", "p99", "tab:green"), ("p999", "p99.9", "tab:red")]

CEILINGS = [
    ("rabbitmqPublishConfirmPerSecond", "RabbitMQ publish + confirm", "/s"),
    ("postgresInsertCommitPerSecond", "PostgreSQL insert + commit", "/s"),
    ("redisPublishPerSecond", "Redis publish", "/s"),
    ("sumOfPartsMessagesPerSecond", "Sum of parts (end to end), DMs", "msg/s"),
    ("groupSumOfPartsMessagesPerSecond", "Sum of parts (end to end), groups", "msg/s"),
    ("threadWakeUpRoundTripP50Us",
     "Thread wake-up round trip after 1 ms idle, p50", "µs"),
    ("threadWakeUpRoundTripP99Us",
     "Thread wake-up round trip after 1 ms idle, p99", "µs"),
]

# Keys every scenario may have; they are shown outside the detail tables.
COMMON_KEYS = {"name", "title", "kind", "target", "met", "verdict", "bound",
               "note", "steps"}

# (key, label, formatter name) for the key/value tables of each kind.
DETAILS = {
    "rate-steps": [
        ("groupSize", "Group size (members)", "count"),
        ("bestRate", "Best rate within target (msg/s)", "count"),
        ("ratioToCeiling", "Best rate / sum-of-parts ceiling", "ratio"),
    ],
    "idle": [
        ("connections", "Connections opened", "count"),
        ("connected", "Connections established", "count"),
        ("sourceAddresses", "Source addresses (one per load process)", "count"),
        ("gatewayRssBeforeBytes", "Gateway RSS before", "bytes"),
        ("gatewayRssAfterBytes", "Gateway RSS after", "bytes"),
        ("gatewayRssAfterCloseBytes", "Gateway RSS after closing", "bytes"),
        ("bytesPerConnection", "Memory per connection", "bytes"),
    ],
    "storm": [
        ("clients", "Clients", "count"),
        ("resumed", "Resumed", "count"),
        ("resumedWithin10s", "Resumed within 10 s", "count"),
        ("resumeSecondsP50", "Resume time p50 (s)", "number"),
        ("resumeSecondsP99", "Resume time p99 (s)", "number"),
        ("resumeSecondsMax", "Resume time max (s)", "number"),
        ("messagesSentDuringStorm", "Messages sent during storm", "count"),
        ("deliveriesExpected", "Deliveries expected", "count"),
        ("deliveriesReceived", "Deliveries received", "count"),
        ("lost", "Lost", "count"),
    ],
}


# --- Reading values -------------------------------------------------------

def get(mapping, *path):
    """Follow keys through nested dicts; None if any step is missing."""
    value = mapping
    for key in path:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def num(value):
    """Return value as a finite float, or None if it is not a number."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def as_list(value):
    """Return the dicts in value if it is a list, else an empty list."""
    if not isinstance(value, list):
        return []
    return [item for item in value if isinstance(item, dict)]


def scenario_kind(scenario):
    """The scenario's kind; a scenario with steps counts as rate-steps."""
    kind = scenario.get("kind")
    if isinstance(kind, str) and kind:
        return kind
    return "rate-steps" if "steps" in scenario else "unknown"


def scenario_title(scenario, index):
    """A display title: title, else name, else its position."""
    for key in ("title", "name"):
        if isinstance(scenario.get(key), str) and scenario[key]:
            return scenario[key]
    return f"Scenario {index + 1}"


def rate_steps(result):
    """The rate-steps scenarios of a result, as (index, scenario) pairs."""
    scenarios = as_list(result.get("scenarios"))
    return [(i, s) for i, s in enumerate(scenarios)
            if scenario_kind(s) == "rate-steps"]


def processes_of(steps):
    """Process names in the steps' CPU maps, in display order."""
    seen = []
    for step in steps:
        cpu = step.get("cpuSecondsPer1000")
        if isinstance(cpu, dict):
            seen.extend(name for name in cpu if name not in seen)
    known = [name for name in PROCESS_ORDER if name in seen]
    return known + [name for name in seen if name not in PROCESS_ORDER]


def cpu_total(step, processes, key="cpuSecondsPer1000"):
    """Sum of the step's per-process figures under `key` (CPU seconds per
    1,000 messages by default), or None."""
    values = [num(get(step, key, p)) for p in processes]
    values = [v for v in values if v is not None]
    return sum(values) if values else None


# --- Formatting -----------------------------------------------------------

def text(value):
    """A string for a table cell: no newlines, pipes escaped."""
    if value is None or value == "":
        return NA
    return " ".join(str(value).split()).replace("|", "\\|")


def number(value, digits=1):
    """A number with a fixed count of decimals and thousands separators."""
    if isinstance(value, bool):
        return yes_no(value)
    n = num(value)
    if n is None:
        return text(value)
    return f"{n:,.{digits}f}"


def count(value):
    """A whole number (rates, messages, connections)."""
    n = num(value)
    if n is not None and not n.is_integer():
        return number(n, 1)
    return number(value, 0)


def ms(value):
    """A latency in ms: one decimal below 100 ms, none above."""
    n = num(value)
    return number(value, 1 if n is None or abs(n) < 100 else 0)


def alert_count(value):
    """A count, in bold when it is above zero (lost messages, errors)."""
    n = num(value)
    return f"**{count(value)}**" if n else count(value)


def ratio(value):
    """A ratio shown as a plain number and as a percentage."""
    n = num(value)
    if n is None:
        return text(value)
    return f"{n:.3g} ({n * 100:.1f} %)"


def size(value):
    """A byte count in binary units, with the exact value."""
    n = num(value)
    if n is None:
        return text(value)
    scaled, unit = n, "B"
    for next_unit in ("KiB", "MiB", "GiB", "TiB"):
        if abs(scaled) < 1024:
            break
        scaled, unit = scaled / 1024, next_unit
    if unit == "B":
        return f"{n:,.0f} B"
    return f"{scaled:,.1f} {unit} ({n:,.0f} B)"


def yes_no(value):
    """yes / no for booleans, n/a otherwise."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    return NA


FORMATTERS = {"count": count, "number": number, "ratio": ratio,
              "bytes": size}


def table(headers, rows, align=None):
    """A Markdown table. align has one letter per column, "l" or "r";
    by default the first column is left-aligned and the others right."""
    align = align or "l" + "r" * (len(headers) - 1)
    marks = [":---" if a == "l" else "---:" for a in align]
    lines = ["| " + " | ".join(headers) + " |",
             "|" + "|".join(marks) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


# --- Report sections ------------------------------------------------------

def database_summary(state):
    """What the database held: its rows that the run's statements read, and its size."""
    size = num(state.get("sizeBytes"))
    return (f"{count(state.get('messages'))} messages, {count(state.get('events'))} events, "
            f"{count(state.get('deliveries'))} deliveries ({count(state.get('pendingDeliveries'))} "
            f"pending), {number(size / (1 << 20)) if size is not None else NA} MiB")


def header_section(result, source):
    """Title line and run metadata."""
    machine = result.get("machine")
    parts = []
    if num(get(machine, "cores")) is not None:
        parts.append(f"{count(machine['cores'])} cores")
    if num(get(machine, "memoryGiB")) is not None:
        parts.append(f"{number(machine['memoryGiB'])} GiB memory")
    if get(machine, "kernel"):
        parts.append(f"kernel {text(machine['kernel'])}")
    revision = result.get("gitRevision")
    databases = [f"- Database at {moment}: {database_summary(result.get(key))}"
                 for key, moment in (("databaseAtStart", "start"), ("databaseAtEnd", "end"))
                 if isinstance(result.get(key), dict)]
    return [
        f"# Load test report: {text(result.get('tool'))}",
        "",
        f"- Started: {text(result.get('startedAt'))}",
        f"- Git revision: `{text(revision)}`" if revision
        else f"- Git revision: {NA}",
        f"- Machine: {', '.join(parts) if parts else NA}",
        *databases,
        f"- Source: `{source.name}`",
        "",
    ]


def ceilings_section(result):
    """The ceilings measured in the same run, one row per component: before the
    scenarios and, when the result has them, again after them."""
    ceilings = result.get("ceilings")
    lines = ["## Ceilings (same run)", ""]
    if not isinstance(ceilings, dict):
        return lines + [f"_No ceilings in this result ({NA})._", ""]
    at_end = result.get("ceilingsAtEnd")
    at_end = at_end if isinstance(at_end, dict) else None

    def row(label, key, unit):
        values = [count(ceilings.get(key))]
        if at_end is not None:
            values.append(count(at_end.get(key)))
        return [label, *values, unit]

    rows = [row(label, key, unit) for key, label, unit in CEILINGS]
    known = {key for key, _, _ in CEILINGS} | {"sumOfPartsNote"}
    rows += [row(f"`{key}`", key, "")
             for key, value in ceilings.items()
             if key not in known and not isinstance(value, (dict, list))]
    if at_end is None:
        lines += table(["Ceiling", "Value", "Unit"], rows, "lrl")
    else:
        lines += ["Measured before the scenarios (ratios and verdicts use "
                  "these) and again after them: how far the machine's speed "
                  "moved during the run.", ""]
        lines += table(["Ceiling", "Before", "After", "Unit"], rows, "lrrl")
    note = ceilings.get("sumOfPartsNote")
    if note:
        lines += ["", f"Sum of parts: {text(note)}"]
    return lines + [""]


def targets_section(scenarios):
    """One row per scenario: target, verdict and whether it was met."""
    lines = ["## Targets", ""]
    if not scenarios:
        return lines + ["_No scenarios in this result._", ""]
    rows = [[text(scenario_title(s, i)), text(s.get("target")),
             text(s.get("verdict")), yes_no(s.get("met"))]
            for i, s in enumerate(scenarios)]
    headers = ["Scenario", "Target", "Result", "Met"]
    lines += table(headers, rows, "llll") + [""]
    bounds = [(scenario_title(s, i), s.get("bound"))
              for i, s in enumerate(scenarios) if s.get("bound")]
    if bounds:
        lines += ["What bounds the targets missed, from this run's own "
                  "measurements:", ""]
        lines += [f"- {text(title)}: {text(bound)}" for title, bound in bounds]
        lines += [""]
    return lines


def plots_section(plots, plot_note):
    """Image links for the plots that were written."""
    lines = ["## Plots", ""]
    for name in plots:
        lines += [f"![{Path(name).stem}]({name})", ""]
    if plot_note:
        lines += [f"_{plot_note}_", ""]
    return lines


def details_table(scenario, kind):
    """Key/value rows for the known and any extra scalar keys."""
    specs = DETAILS.get(kind, [])
    rows = []
    for key, label, fmt in specs:
        if kind == "rate-steps" and key not in scenario:
            continue  # optional for rate-steps (e.g. groupSize)
        value = FORMATTERS[fmt](scenario.get(key))
        if key == "resumedWithin10s":
            within = num(scenario.get(key))
            clients = num(scenario.get("clients"))
            if within is not None and clients:
                value += f" ({within / clients * 100:.2f} % of clients)"
        rows.append([label, value])
    known = COMMON_KEYS | {key for key, _, _ in specs}
    rows += [[f"`{key}`", number(value, 2) if num(value) is not None
              else text(value)]
             for key, value in scenario.items()
             if key not in known and value is not None
             and not isinstance(value, (dict, list))]
    return table(["Metric", "Value"], rows, "ll") if rows else []


def tail_lines(steps):
    """Each step's disk flush latency (the probe beside it), and the slowest seconds of a
    single-step scenario (the floor) with the slowest flush of that moment."""
    rows = [[count(step.get("rate"))]
            + [ms(get(step, "diskSyncMs", key)) if num(get(step, "diskSyncMs", "samples")) else NA
               for key in ("p50", "p99", "p999", "max")]
            + [count(len(as_list(get(step, "diskSyncMs", "stalls"))))]
            + [text(get(step, "diskSyncMs", "failure")) if get(step, "diskSyncMs", "failure") else ""]
            for step in steps if isinstance(step.get("diskSyncMs"), dict)]
    if not rows:
        return []
    lines = ["The disk's flush latency during each step (4 KiB written and "
             "`fdatasync`ed every 20 ms on the servers' filesystem, as every "
             "commit is), in ms:", ""]
    lines += table(["rate (msg/s)", "p50", "p99", "p99.9", "max",
                    "flushes over 10 ms", "probe failure"], rows) + [""]
    if len(steps) == 1 and as_list(steps[0].get("slowestSeconds")):
        rows = [[text(second.get("at")), ms(second.get("maxMs")),
                 f"{count(second.get('over25Ms'))} of "
                 f"{count(second.get('deliveries'))}",
                 ms(second.get("slowestFlushMs"))
                 if num(second.get("slowestFlushMs")) is not None else "under 10"]
                for second in as_list(steps[0].get("slowestSeconds"))]
        lines += ["The slowest seconds (by intended send time) and the slowest "
                  "disk flush that began in the same or the previous second:", ""]
        lines += table(["second", "slowest delivery (ms)",
                        "deliveries over 25 ms", "slowest flush (ms)"],
                       rows, "lrrr") + [""]
    return lines


def steps_tables(scenario):
    """The latency table and the CPU table of a rate-steps scenario."""
    steps = as_list(scenario.get("steps"))
    if not steps:
        return ["_No steps in this result._", ""]
    headers = ["rate (msg/s)", "achieved", "sent", "deliveries",
               "delivered", "lost", "errors", "p50", "p90", "p99", "p99.9",
               "max", "ack p50", "ack p99", "within target"]
    rows = []
    extra = [(label, scenario.get(key)) for label, key in
             (("warm-up", "warmUp"), ("unloaded", "unloaded"))]
    labelled = ([(label, step) for label, step in extra if isinstance(step, dict)]
                + [("", step) for step in steps])
    for label, step in labelled:
        latency = [ms(get(step, "latencyMs", key))
                   for key in ("p50", "p90", "p99", "p999", "max")]
        ack = [ms(get(step, "ackMs", key)) for key in ("p50", "p99")]
        rate = count(step.get("rate")) + (f" ({label})" if label else "")
        rows.append([rate, number(step.get("achievedRate")),
                     count(step.get("sent")), count(step.get("deliveries")),
                     count(step.get("delivered")),
                     alert_count(step.get("lost")),
                     alert_count(step.get("errors"))]
                    + latency + ack + [yes_no(step.get("withinTarget"))])
    group = num(scenario.get("groupSize"))
    per_message = (f" ({group - 1:g} per message in a group of {group:g})"
                   if group else "")
    lines = ["`sent` counts messages; `deliveries` counts the per-recipient "
             f"deliveries expected{per_message}, `delivered` those received, "
             "`lost` the difference. Latency and ack times in ms.", ""]
    lines += table(headers, rows) + [""]
    lines += tail_lines(steps)

    processes = processes_of(steps)
    if not processes:
        return lines + [f"CPU per 1,000 messages: {NA}", ""]
    rows = [[count(step.get("rate"))]
            + [number(get(step, "cpuSecondsPer1000", p), 2)
               for p in processes]
            + [number(cpu_total(step, processes), 2)]
            for step in steps]
    lines += ["CPU seconds per 1,000 messages sent, per process:", ""]
    lines += table(["rate (msg/s)"] + processes + ["total"], rows) + [""]
    for key, caption, digits in (
            ("waitingForCoreMsPerMessage",
             "Milliseconds per message the process's threads were ready to "
             "run but not yet running (the kernel's run-queue wait: for a "
             "busy core, or for an idle one to wake up; summed over the "
             "threads), per process:", 2),
            ("timeslicesPerMessage",
             "Times per message a thread of the process was put on a core "
             "(its wake-ups, and returns after a preemption), per process:",
             1)):
        measured = [step for step in steps if isinstance(step.get(key), dict)]
        if not measured:
            continue
        rows = [[count(step.get("rate"))]
                + [number(get(step, key, p), digits) for p in processes]
                + [number(cpu_total(step, processes, key), digits)]
                for step in measured]
        lines += [caption, ""]
        lines += table(["rate (msg/s)"] + processes + ["total"], rows) + [""]
    return lines


def scenario_section(scenario, index):
    """A heading, the target and verdict, then the kind's tables."""
    kind = scenario_kind(scenario)
    name = scenario.get("name")
    lines = [f"## {text(scenario_title(scenario, index))}", "",
             f"- Scenario: `{text(name)}` ({text(kind)})" if name
             else f"- Scenario: {NA} ({text(kind)})",
             f"- Target: {text(scenario.get('target'))}",
             f"- Met: {yes_no(scenario.get('met'))}",
             f"- Verdict: {text(scenario.get('verdict'))}"]
    if scenario.get("bound"):
        lines.append(f"- What bounds it: {text(scenario['bound'])}")
    if scenario.get("note"):
        lines.append(f"- Note: {text(scenario['note'])}")
    lines.append("")
    details = details_table(scenario, kind)
    if details:
        lines += details + [""]
    if kind == "rate-steps":
        lines += steps_tables(scenario)
    if kind == "idle":
        lines += gateways_table(scenario)
    return lines


def gateways_table(scenario):
    """The idle scenario's figures for each gateway process it spread the sockets over."""
    gateways = as_list(scenario.get("gateways"))
    if not gateways:
        return []
    rows = [[str(index), count(g.get("connected")), size(g.get("rssBeforeBytes")),
             size(g.get("rssAfterBytes")), size(g.get("rssAfterCloseBytes")),
             size(g.get("bytesPerConnection"))]
            for index, g in enumerate(gateways, start=1)]
    return table(["Gateway", "Connections", "RSS before", "RSS after",
                  "RSS after closing", "Per connection"], rows) + [""]


def build_report(result, source, plots, plot_note):
    """The full report.md text."""
    scenarios = as_list(result.get("scenarios"))
    lines = header_section(result, source)
    lines += ceilings_section(result)
    lines += targets_section(scenarios)
    lines += plots_section(plots, plot_note)
    for index, scenario in enumerate(scenarios):
        lines += scenario_section(scenario, index)
    return "\n".join(lines).rstrip() + "\n"


# --- Plots ----------------------------------------------------------------

def draw_latency_panel(ax, title, steps):
    """One scenario's percentiles over offered rate, on a log y axis."""
    from matplotlib.ticker import FuncFormatter, LogFormatter, NullFormatter

    plain = FuncFormatter(lambda v, _: f"{v:,g}")
    rates = [num(s["rate"]) for s in steps]
    plotted = False
    for key, _, colour in PERCENTILES:
        values = [num(get(s, "latencyMs", key)) for s in steps]
        values = [v if v is not None and v > 0 else math.nan for v in values]
        if any(not math.isnan(v) for v in values):
            ax.plot(rates, values, marker="o", color=colour)
            plotted = True
    if not plotted:
        ax.text(0.5, 0.5, "no latency data", transform=ax.transAxes,
                ha="center", va="center", color="grey")
    ax.axhline(LATENCY_LIMIT_MS, color="grey", linestyle="--", linewidth=1)

    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(plain)
    ax.yaxis.set_minor_formatter(LogFormatter(labelOnlyBase=False))
    x_label = "offered rate (msg/s)"
    if rates and min(rates) > 0 and max(rates) / min(rates) >= 8:
        ax.set_xscale("log")  # geometric steps, e.g. doubling rates
        ax.xaxis.set_minor_formatter(NullFormatter())
        x_label += ", log scale"
    ax.set_xticks(sorted(set(rates)))
    ax.xaxis.set_major_formatter(plain)
    ax.tick_params(axis="x", labelrotation=45 if len(rates) > 6 else 0)
    ax.set_xlabel(x_label)
    ax.set_title("\n".join(textwrap.wrap(title, 40)), fontsize=11)
    ax.grid(True, which="both", alpha=0.3)


def plot_latency(plt, result, path):
    """latency.png: one subplot per rate-steps scenario. False if no data."""
    from matplotlib.lines import Line2D

    panels = []
    for index, scenario in rate_steps(result):
        steps = [s for s in as_list(scenario.get("steps"))
                 if num(s.get("rate")) is not None]
        steps.sort(key=lambda s: num(s["rate"]))
        panels.append((scenario_title(scenario, index), steps))
    if not any(steps for _, steps in panels):
        return False

    columns = min(len(panels), 3)
    rows = math.ceil(len(panels) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(12, 7), dpi=100,
                             sharey=True, squeeze=False, layout="constrained")
    for ax in axes.flat[len(panels):]:
        ax.set_visible(False)
    for ax, (title, steps) in zip(axes.flat, panels):
        draw_latency_panel(ax, title, steps)
    for ax in axes[:, 0]:
        ax.set_ylabel("latency (ms, log scale)")
    handles = [Line2D([], [], color=colour, marker="o", label=label)
               for _, label, colour in PERCENTILES]
    handles.append(Line2D([], [], color="grey", linestyle="--",
                          label=f"{LATENCY_LIMIT_MS:g} ms"))
    axes.flat[0].legend(handles=handles, loc="upper left", fontsize=9)
    fig.suptitle("End-to-end latency by offered rate")
    fig.savefig(path)
    plt.close(fig)
    return True


def plot_cpu(plt, result, path):
    """cpu.png: stacked CPU bars, one per (scenario, rate) step."""
    from matplotlib.transforms import blended_transform_factory

    groups = []
    for index, scenario in rate_steps(result):
        steps = [s for s in as_list(scenario.get("steps"))
                 if isinstance(s.get("cpuSecondsPer1000"), dict)]
        if steps:
            name = scenario.get("name") or scenario_title(scenario, index)
            groups.append((str(name), steps))
    if not groups:
        return False

    processes = processes_of([s for _, steps in groups for s in steps])
    palette = plt.get_cmap("tab10" if len(processes) <= 10 else "tab20")
    colours = {p: palette(i % palette.N) for i, p in enumerate(processes)}

    fig, ax = plt.subplots(figsize=(12, 7), dpi=100, layout="constrained")
    positions, labels, centres, x = [], [], [], 0.0
    for group_index, (name, steps) in enumerate(groups):
        if group_index:
            ax.axvline(x - 0.75, color="grey", linewidth=0.8, alpha=0.5)
        start = x
        for step in steps:
            bottom = 0.0
            for process in processes:
                value = num(get(step, "cpuSecondsPer1000", process)) or 0.0
                ax.bar(x, value, bottom=bottom, width=0.7,
                       color=colours[process])
                bottom += value
            total = cpu_total(step, processes)
            ax.annotate(NA if total is None else f"{total:.2f}",
                        (x, bottom), xytext=(0, 2),
                        textcoords="offset points", ha="center",
                        va="bottom", fontsize=8)
            positions.append(x)
            labels.append(f"{count(step.get('rate'))}/s")
            x += 1.0
        centres.append(((start + x - 1.0) / 2, name))
        x += 0.5

    left, right = -0.75, x - 0.75
    pad = max(0.0, (8 - (right - left)) / 2)  # few bars: keep them narrow
    ax.set_xlim(left - pad, right + pad)
    rotate = len(positions) > 12
    ax.set_xticks(positions)
    ax.set_xticklabels(labels, rotation=45 if rotate else 0, fontsize=9)
    under_axis = blended_transform_factory(ax.transData, ax.transAxes)
    for centre, name in centres:
        ax.text(centre, -0.12 if rotate else -0.06, name,
                transform=under_axis, ha="center", va="top", fontsize=10,
                fontweight="bold")
    handles = [plt.Rectangle((0, 0), 1, 1, color=colours[p])
               for p in processes]
    ax.legend(handles[::-1], processes[::-1], loc="upper left",
              bbox_to_anchor=(1.01, 1.0), fontsize=9, title="process")
    ax.set_ylabel("CPU seconds per 1,000 messages")
    ax.set_title("CPU cost per step (offered rate), stacked by process")
    ax.grid(True, axis="y", alpha=0.3)
    ax.margins(y=0.08)
    fig.savefig(path)
    plt.close(fig)
    return True


def write_plots(result, directory):
    """Write the PNGs; return (written file names, note for the report)."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as error:
        print(f"bench-report: warning: matplotlib not available ({error}); "
              "writing report.md without plots", file=sys.stderr)
        return [], "Plots omitted: matplotlib is not installed."
    written = []
    if plot_latency(plt, result, directory / "latency.png"):
        written.append("latency.png")
    if plot_cpu(plt, result, directory / "cpu.png"):
        written.append("cpu.png")
    note = "" if written else "No rate-steps data to plot."
    return written, note


def main():
    """Read the result JSON, write report.md and the plots next to it."""
    parser = argparse.ArgumentParser(
        description="Markdown report with plots from a messenger-load "
                    "result.json (written next to it).")
    parser.add_argument("result", type=Path, help="path to result.json")
    source = parser.parse_args().result
    try:
        result = json.loads(source.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        sys.exit(f"bench-report: cannot read {source}: {error}")
    if not isinstance(result, dict):
        sys.exit(f"bench-report: {source}: expected a JSON object")

    directory = source.parent
    plots, plot_note = write_plots(result, directory)
    report = directory / "report.md"
    report.write_text(build_report(result, source, plots, plot_note),
                      encoding="utf-8")
    print(report)


if __name__ == "__main__":
    main()
