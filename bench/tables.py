"""Markdown helpers shared by the report modules: tables, milliseconds, percentiles, mode labels."""

from __future__ import annotations

from typing import Any

MODES = ("memory", "redis")
TURNS_RECORDED = ("A run's latencies are shown only when nothing was lost or duplicated in it; otherwise the row "
                  "says *not recorded* and the lost and duplicated columns say why.")


def table(head: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def p(percentiles: dict | None) -> str:
    """p50 / p95 / p99."""
    percentiles = percentiles or {}
    return " / ".join(ms(percentiles.get(k)) for k in ("p50", "p95", "p99"))


def pace(speed: float) -> str:
    return "real time" if speed == 1 else f"{1 / speed:g}x real"


def mode_label(mode: str, figures: dict | None = None) -> str:
    """`memory mode, 1 worker` / `redis mode, 2 workers` (the worker count as the figures recorded it)."""
    workers = (figures or {}).get("workers") or (1 if mode == "memory" else None)
    return f"{mode} mode" + (f", {workers} worker{'s' if workers > 1 else ''}" if workers else "")


def recorded(run: dict) -> bool:
    """A call run's figures count only when its own checks passed: no call lost, nothing duplicated."""
    return not run["lost"] and not run["duplicated"]


def by_mode(results: dict, step: str) -> dict[str, Any]:
    """A step's figures for each mode that has them, memory first."""
    found = results.get(step) or {}
    if not isinstance(found, dict):  # a results.json from before the modes
        return {}
    return {mode: found[mode] for mode in MODES if found.get(mode)}
