"""Percentiles the way the simulator computes them (nearest rank), as plain dicts for JSON."""

from __future__ import annotations

from dataclasses import asdict

from simulator.load import Percentiles


def percentiles(values: list[float]) -> dict[str, float | None]:
    """p50/p95/p99 in the units given, rounded for the report."""
    return {k: (None if v is None else round(v, 2)) for k, v in asdict(Percentiles.of(values)).items()}
