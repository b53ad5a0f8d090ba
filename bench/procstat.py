"""What /proc says about a process (CPU seconds, resident memory) and about the machine."""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
MIN_SHARE_WALL_S = 2.0


def _stat_fields(pid: int) -> list[str]:
    """Fields of /proc/<pid>/stat after the command name (which may contain spaces)."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used so far (utime + stime)."""
    fields = _stat_fields(pid)
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def rss_mib(pid: int) -> float:
    """VmRSS from /proc/<pid>/status, in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise ValueError(f"no VmRSS for pid {pid}")


def thread_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


def children(pid: int) -> list[int]:
    """Direct children of a process (the gunicorn worker is the master's child)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if int(_stat_fields(int(entry))[1]) == pid:
                found.append(int(entry))
        except (OSError, IndexError, ValueError):
            continue
    return sorted(found)


def worker_pids(master_pid: int, count: int = 1) -> tuple[int, ...]:
    """The `count` gunicorn workers of a master (WEB_CONCURRENCY)."""
    workers = children(master_pid)
    if len(workers) != count:
        raise RuntimeError(f"expected {count} gunicorn worker(s) under pid {master_pid}, found {workers}")
    return tuple(workers)


def machine() -> dict[str, str | int]:
    """Cores, CPU model, memory, Python and kernel, for the report's header."""
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor() or "unknown")
    mem_kib = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                   if line.startswith("MemTotal:"))
    return {
        "cores": os.cpu_count() or 0,
        "cpu_model": model,
        "memory_gib": round(mem_kib / 1024 / 1024, 1),
        "python": platform.python_version(),
        "kernel": platform.release(),
    }


class CpuMeter:
    """CPU seconds some processes used together inside the `with` block, next to the wall-clock time."""

    def __init__(self, *pids: int):
        self.pids = pids
        self.cpu_s = self.wall_s = 0.0

    def __enter__(self) -> CpuMeter:
        self._cpu0, self._wall0 = self._total(), time.monotonic()
        return self

    def __exit__(self, *exc: object) -> None:
        self.cpu_s = self._total() - self._cpu0
        self.wall_s = time.monotonic() - self._wall0

    def _total(self) -> float:
        return sum(cpu_seconds(pid) for pid in self.pids)

    @property
    def cores_busy(self) -> float:
        """Average cores used over the interval."""
        return self.cpu_s / self.wall_s if self.wall_s else 0.0


def machine_cpu_s() -> tuple[float, float]:
    """(busy, steal) CPU seconds of the whole machine since boot: user + nice + system + irq + softirq, and steal."""
    user, nice, system, _idle, _iowait, irq, softirq, steal = (
        int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9])
    return (user + nice + system + irq + softirq) / CLOCK_TICKS, steal / CLOCK_TICKS


def tree_cpu_s(root: int) -> float:
    """CPU seconds of a process and its live descendants; descendants already reaped count through cutime/cstime."""
    stats: dict[int, list[str]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stats[int(entry)] = _stat_fields(int(entry))
            except (OSError, IndexError):
                continue  # exited while we looked: its time is in its parent's cutime by now
    tree, grew = {root}, True
    while grew:
        found = {pid for pid, fields in stats.items() if int(fields[1]) in tree} - tree
        tree, grew = tree | found, bool(found)
    return sum(sum(int(v) for v in stats[pid][11:15]) for pid in tree if pid in stats) / CLOCK_TICKS


class MachineShare:
    """Inside the `with` block: how busy the machine was, and how much of that was not this process tree.

    Other processes (another job on a shared machine) compete for the same cores as the service, so a
    step's figures are only as good as the machine was quiet; this says how quiet it was.
    """

    def __init__(self, root: int):
        self.root = root
        self.figures: dict[str, float] = {}

    def __enter__(self) -> MachineShare:
        self._start = (time.monotonic(), *machine_cpu_s(), tree_cpu_s(self.root))
        return self

    def __exit__(self, *exc: object) -> None:
        wall0, busy0, steal0, tree0 = self._start
        wall, (busy, steal), tree = time.monotonic() - wall0, machine_cpu_s(), tree_cpu_s(self.root)
        self.figures = {"wall_s": round(wall, 1)}
        if wall >= MIN_SHARE_WALL_S:  # CPU time comes in clock ticks: a shorter span gives noise
            self.figures.update({"bench_cores": round((tree - tree0) / wall, 3),
                                 "other_cores": round(max(0.0, (busy - busy0) - (tree - tree0)) / wall, 3),
                                 "steal_cores": round((steal - steal0) / wall, 3)})


def taken_cores(figures: dict[str, float]) -> float:
    """What other processes and the hypervisor took from the bench (MachineShare.figures), in cores."""
    return round(figures.get("other_cores", 0.0) + figures.get("steal_cores", 0.0), 3)


def wait_quiet(root: int, most_cores: float, window_s: float, timeout_s: float) -> float:
    """Until other processes and steal took under `most_cores` over a `window_s` window (`timeout_s` at most)."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        with MachineShare(root) as share:
            time.sleep(window_s)
        if taken_cores(share.figures) < most_cores:
            break
    return round(time.monotonic() - started, 1)
