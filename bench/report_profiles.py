"""The py-spy section of BENCHMARKS.md: where each mode's workers spend their GIL time (bench/profile.py)."""

from __future__ import annotations

from bench.tables import table


def render(profiles: dict | None, modes: tuple[str, ...]) -> str:
    if not profiles:
        return ""
    parts = ["## Where the time goes (py-spy)",
             "py-spy samples each worker 250 times a second and keeps the stacks that hold the GIL (`--gil`); shares "
             "are of those samples, pooled over the workers in Redis mode. *GIL busy* is the share of sampling ticks "
             "in which some thread held a worker's GIL, averaged over the workers."]
    for mode in modes:
        for name, title in (("route", "Webhook route"), ("turns", "Whole calls (webhooks + turns)")):
            prof = (profiles.get(mode) or {}).get(name)
            if prof:
                parts += _profile(f"{title}, {mode} mode", prof)
    return "\n\n".join(parts)


def _profile(title: str, prof: dict) -> list[str]:
    if "error" in prof:
        return [f"### {title}\n\nnot profiled: {prof['error']}"]
    areas = [[area, f"{share}%", ", ".join(f"{k} {v}%" for k, v in prof["parts"].get(area, {}).items())]
             for area, share in prof["areas"].items()]
    http = [[k, f"{v}%"] for k, v in prof.get("call_control_http", {}).items()]
    hot = [[f"`{k}`", f"{v}%"] for k, v in prof["hottest_functions"].items()]
    return [f"### {title}: {prof['load']}",
            f"{prof['samples']} samples from {prof.get('processes', 1)} worker(s); GIL busy "
            f"{100 * prof['gil_busy']:.0f}% of the time.",
            table(["area", "share", "inside it"], areas),
            "Inside the outgoing Call Control requests (shares of all samples):",
            table(["part", "share"], http), "Hottest functions (self time):", table(["function", "share"], hot)]
