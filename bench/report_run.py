"""The end of BENCHMARKS.md: how the run itself went (warnings the service logged, machine load, broken steps)."""

from __future__ import annotations

from bench.tables import by_mode, table

# Other processes using this many cores during a step (another job on the machine) get a mention.
BUSY_MACHINE_CORES = 0.1


def service_log(results: dict) -> str:
    """Every WARNING and ERROR the service logged during a measured step, by kind."""
    sources = [(f"ack, {mode} mode, {row['rate']:g}/s", row.get("service_log"))
               for mode, ack in by_mode(results, "ack").items() for row in ack["service"]]
    sources += [(f"calls `{key}`", run.get("service_log")) for key, run in (results.get("runs") or {}).items()]
    rows = [[where, n, f"`{message}`"] for where, counts in sources for message, n in list((counts or {}).items())[:5]]
    if not rows:
        return ""
    return "\n\n".join([
        "## Warnings in the service log",
        "WARNING and ERROR lines the service wrote while a step was measured, counted by kind (call ids masked; the "
        "five commonest kinds per step). Steps not listed logged none.",
        table(["step", "lines", "message"], rows),
    ])


def busy_steps(results: dict) -> dict[str, float]:
    """Steps during which other processes and the hypervisor (steal) took BUSY_MACHINE_CORES or more."""
    taken = {step: round((load.get("other_cores") or 0) + (load.get("steal_cores") or 0), 2)
             for step, load in (results.get("machine_load") or {}).items()}
    return {step: cores for step, cores in taken.items() if cores >= BUSY_MACHINE_CORES}


def machine_load(results: dict) -> str:
    loads, settings = results.get("machine_load") or {}, results.get("settings") or {}
    if not loads:
        return ""
    rows = [[step, load.get("waited_s", "-"), load["wall_s"], load.get("bench_cores", "-"),
             load.get("other_cores", "-"), load.get("steal_cores", "-")] for step, load in loads.items()]
    return "\n\n".join([
        "## Machine load during each step",
        "CPU of the whole machine (`/proc/stat`) against the bench's own process tree (the bench, the simulator, "
        "the load generator, gunicorn, redis-server, py-spy) over each step, in cores. *Other processes* is "
        "everything else on the machine; steal is time the hypervisor gave to other guests. Before each step the bench "
        f"waits ({settings.get('quiet_wait_s', '?')} s at most, {settings.get('quiet_budget_s', '?')} s over the "
        f"whole run) for other processes and steal to take under {BUSY_MACHINE_CORES:g} cores. Steps shorter than "
        "2 s (reusing earlier runs) have no figures.",
        table(["step", "waited s", "wall s", "bench cores", "other processes cores", "steal cores"], rows),
    ])


def errors(results: dict) -> str:
    errors = results.get("errors") or {}
    if not errors:
        return ""
    return "## Steps that did not complete\n\n" + "\n".join(f"- {k}: {v}" for k, v in errors.items())
