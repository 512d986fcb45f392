"""Device fingerprint: what a benchmark ran on, so a number can be traced to a CPU, GPU or Jetson setting.

The facts come from :mod:`edgeface.device`; this module adds the benchmark's own: the git commit, a short
device label for file names, and the warnings about conditions that would make a measurement mislead.
"""

from __future__ import annotations

import platform
import shutil
import subprocess
from pathlib import Path

from edgeface.device import (
    cpu_info,
    device_label,
    gpu_info,
    jetson_info,
    library_versions,
    load_average,
    os_info,
    ram_gib,
)


def git_commit(repo: str | Path | None = None) -> dict:
    """HEAD commit and whether the working tree had changes when the benchmark ran."""
    repo = Path(repo or Path(__file__).resolve().parents[2])
    if shutil.which("git") is None or not (repo / ".git").exists():
        return {"commit": None, "dirty": None}
    head = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    status = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
                            capture_output=True, text=True).stdout
    return {"commit": head or None, "dirty": bool(status.strip())}


def fingerprint() -> dict:
    """Everything about this machine that changes a latency number."""
    return {
        "hostname": platform.node(),
        "cpu": cpu_info(),
        "ram_gib": ram_gib(),
        "os": os_info(),
        "gpu": gpu_info(),
        "jetson": jetson_info(),
        "libraries": library_versions(),
        "git": git_commit(),
        "load_average": load_average(),
    }


def device_name(fp: dict) -> str:
    """A short file-name-safe label: Jetson model, else GPU, else CPU model and core count
    (:func:`edgeface.device.device_label`, which a manifest's measured latencies are keyed by)."""
    jetson, gpu, cpu = fp.get("jetson") or {}, fp.get("gpu"), fp.get("cpu") or {}
    return device_label(jetson.get("model"), gpu["devices"][0]["name"] if gpu else None, cpu.get("model", ""),
                        cpu.get("logical_cores", 0))


BUSY_LOAD_PER_CORE = 0.5  # a 1-min load average above this per core: other processes compete for the CPU


def machine_busy(load1: float, cores: int) -> bool:
    """Whether a 1-min load average says other processes were competing for ``cores`` cores."""
    return load1 > BUSY_LOAD_PER_CORE * max(1, cores)


def preflight_warnings(fp: dict) -> list[str]:
    """Conditions under which the measured numbers would mislead, as one line each."""
    warnings = []
    jetson = fp.get("jetson")
    if jetson:
        mode = (jetson.get("nvpmodel") or {}).get("mode")
        if mode is None:
            warnings.append("Jetson power mode unknown (nvpmodel -q failed): results may not be at max power")
        elif "MAXN" not in mode.upper():
            warnings.append(f"Jetson power mode is {mode}, not MAXN: run `sudo nvpmodel -m 0`")
        if jetson.get("jetson_clocks") is not True:
            warnings.append("Jetson clocks are not locked: run `sudo jetson_clocks`")
    governors = fp["cpu"].get("governors") or []
    if governors and governors != ["performance"]:
        warnings.append(f"CPU governor is {', '.join(governors)}, not performance: frequency scaling adds noise")
    cores = fp["cpu"].get("usable_cores") or fp["cpu"].get("logical_cores") or 1
    load1 = (fp.get("load_average") or [0.0])[0]
    if machine_busy(load1, cores):
        warnings.append(f"another process is loading the CPU: 1-min load average {load1:.2f} on {cores} cores")
    return warnings
