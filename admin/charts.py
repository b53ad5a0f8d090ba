"""The operator page's small charts, computed here as shapes and drawn by the template as inline SVG.

Pure functions of call-log records: no JavaScript, nothing loaded from anywhere, so they work offline and
under a Content-Security-Policy that allows no script.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

WIDTH, HEIGHT = 320, 120
LABEL_SPACE = 18  # below the bars, for their labels

# Turn latency buckets, in milliseconds: (upper bound, label). 500 ms is the target (ops/alerts.yml).
LATENCY_BUCKETS = ((250, "<250ms"), (500, "<500ms"), (1000, "<1s"), (2000, "<2s"), (4000, "<4s"),
                   (float("inf"), "4s+"))
OUTCOME_CLASSES = {"hung_up_by_assistant": "resolved", "transferred": "transferred",
                   "message_taken": "message", "caller_hung_up": "hung_up", "silence": "hung_up",
                   "expired": "hung_up"}


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    css: str
    title: str


@dataclass
class Chart:
    title: str
    bars: list[Bar] = field(default_factory=list)
    labels: list[tuple[float, str]] = field(default_factory=list)  # (x centre, text) under the bars
    legend: list[tuple[str, str]] = field(default_factory=list)  # (css class, words) below the chart
    empty: bool = True
    width: int = WIDTH
    height: int = HEIGHT + LABEL_SPACE


def latency_chart(records: list[dict[str, Any]]) -> Chart:
    """How long callers waited for each reply (first speak after their final transcript)."""
    counts = Counter()
    for record in records:
        for turn in record["turns"]:
            latency = turn.get("response_ms")
            if isinstance(latency, int | float):
                counts[next(label for bound, label in LATENCY_BUCKETS if latency < bound)] += 1
    labels = [label for _, label in LATENCY_BUCKETS]
    return _columns("Turn latency (replies)", [(label, [(counts[label], "latency", f"{label}: {counts[label]}")])
                                               for label in labels])


def outcomes_chart(records: list[dict[str, Any]], today: datetime | None = None, days: int = 7) -> Chart:
    """Calls per day for the last `days` days, stacked by outcome."""
    today = (today or datetime.now(UTC)).date()
    per_day: dict[str, Counter] = {(today - timedelta(days=n)).isoformat(): Counter() for n in range(days - 1, -1, -1)}
    for record in records:
        day = str(record.get("ended_at") or "")[:10]
        if day in per_day:
            per_day[day][OUTCOME_CLASSES.get(str(record.get("outcome")), "hung_up")] += 1
    columns = []
    for day, counts in per_day.items():
        stack = [(counts[css], css, f"{day} {css}: {counts[css]}") for css in ("resolved", "transferred", "message",
                                                                              "hung_up")]
        columns.append((day[5:], stack))
    chart = _columns("Outcomes per day", columns)
    chart.legend = [("resolved", "resolved"), ("transferred", "transferred"), ("message", "message taken"),
                    ("hung_up", "hung up, silent or expired")]
    return chart


def assistant_share_chart(records: list[dict[str, Any]]) -> Chart:
    """One bar: calls the assistant handled alone, calls it handed to a person, calls that never had it."""
    alone = sum(1 for r in records if r.get("ai") and not r.get("escalation_reason"))
    handed = sum(1 for r in records if r.get("ai") and r.get("escalation_reason"))
    off = sum(1 for r in records if not r.get("ai"))
    total = alone + handed + off
    chart = Chart("Handled by the assistant", height=40, legend=[
        ("resolved", "by the assistant"), ("transferred", "handed to a person"), ("off", "AI off")])
    if not total:
        return chart
    x = 0.0
    for count, css, words in ((alone, "resolved", "by the assistant"), (handed, "transferred", "handed to a person"),
                              (off, "off", "AI off")):
        width = WIDTH * count / total
        if count:
            chart.bars.append(Bar(round(x, 1), 0, round(width, 1), 24, css, f"{words}: {count} ({count / total:.0%})"))
        x += width
    chart.empty = False
    return chart


def _columns(title: str, columns: list[tuple[str, list[tuple[int, str, str]]]]) -> Chart:
    """Stacked columns, scaled to the tallest; each column is (label, [(value, css class, tooltip), ...])."""
    chart = Chart(title)
    tallest = max((sum(value for value, _, _ in stack) for _, stack in columns), default=0)
    if not tallest:
        return chart
    step = WIDTH / len(columns)
    for index, (label, stack) in enumerate(columns):
        x, bottom = index * step + 4, float(HEIGHT)
        for value, css, tooltip in stack:
            if not value:
                continue
            height = HEIGHT * value / tallest
            bottom -= height
            chart.bars.append(Bar(round(x, 1), round(bottom, 1), round(step - 8, 1), round(height, 1), css, tooltip))
        chart.labels.append((round(index * step + step / 2, 1), label))
    chart.empty = False
    return chart
