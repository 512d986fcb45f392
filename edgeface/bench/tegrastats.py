"""Jetson power sampling: run ``tegrastats`` beside a benchmark, parse its lines, report mean watts.

Line formats differ per board; rails are ``NAME <now>mW/<avg>mW`` (Orin, JetPack 5+) or ``NAME <now>/<avg>``
(Xavier / Nano, JetPack 4). The board's input power is the ``VDD_IN`` / ``POM_5V_IN`` rail where one exists;
boards without one (AGX Xavier, AGX Orin) are the sum of their rails.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import threading

INPUT_RAILS = ("VDD_IN", "POM_5V_IN")
_RAIL = re.compile(r"\b([A-Z][A-Z0-9_]*)\s+(\d+)(?:mW)?/(\d+)(?:mW)?\b")
_RAM = re.compile(r"\bRAM\s+(\d+)/(\d+)MB")
_GPU = re.compile(r"\bGR3D_FREQ\s+(\d+)%")
_CPU = re.compile(r"\bCPU\s+\[([^\]]*)\]")
_TEMP = re.compile(r"\b([A-Za-z0-9_]+)@(-?[\d.]+)C\b")


def parse_line(line: str) -> dict | None:
    """One tegrastats line -> RAM, CPU / GPU load, temperatures, rails (mW, instantaneous) and total power."""
    rails = {name: int(now) for name, now, _avg in _RAIL.findall(line)
             if not name.startswith(("RAM", "SWAP", "IRAM", "LFB"))}
    ram = _RAM.search(line)
    if not rails and not ram:
        return None
    cpu = _CPU.search(line)
    cpu_loads = [int(m) for m in re.findall(r"(\d+)%@", cpu.group(1))] if cpu else []
    gpu = _GPU.search(line)
    total = next((rails[r] for r in INPUT_RAILS if r in rails), sum(rails.values()))
    return {
        "ram_used_mb": int(ram.group(1)) if ram else None,
        "ram_total_mb": int(ram.group(2)) if ram else None,
        "cpu_load_pct": cpu_loads,
        "gpu_load_pct": int(gpu.group(1)) if gpu else None,
        "temps_c": {name: float(value) for name, value in _TEMP.findall(line)},
        "rails_mw": rails,
        "power_mw": total if rails else None,
    }


def summarize(lines: list[str]) -> dict:
    """Mean / peak board power (W), mean GPU load and the per-rail means over the sampled lines."""
    samples = [s for s in (parse_line(line) for line in lines) if s and s["power_mw"] is not None]
    if not samples:
        return {"samples": 0, "mean_power_w": None, "peak_power_w": None, "mean_gpu_load_pct": None, "rails_w": {}}
    powers = [s["power_mw"] for s in samples]
    gpu = [s["gpu_load_pct"] for s in samples if s["gpu_load_pct"] is not None]
    rails = sorted({r for s in samples for r in s["rails_mw"]})
    return {
        "samples": len(samples),
        "mean_power_w": round(sum(powers) / len(powers) / 1000, 3),
        "peak_power_w": round(max(powers) / 1000, 3),
        "mean_gpu_load_pct": round(sum(gpu) / len(gpu), 1) if gpu else None,
        "rails_w": {r: round(sum(s["rails_mw"].get(r, 0) for s in samples) / len(samples) / 1000, 3) for r in rails},
    }


def images_per_joule(images_per_second: float, mean_power_w: float | None) -> float | None:
    """Energy efficiency: (images / s) / (J / s)."""
    if not mean_power_w:
        return None
    return round(images_per_second / mean_power_w, 3)


class TegrastatsSampler:
    """``with TegrastatsSampler() as s: ...; s.summary()`` — samples while the block runs.

    Where tegrastats is missing (not a Jetson) it records nothing and ``available`` is False.
    """

    def __init__(self, interval_ms: int = 100, command: str = "tegrastats"):
        self.interval_ms = interval_ms
        self.command = shutil.which(command)
        self.lines: list[str] = []
        self._proc: subprocess.Popen | None = None
        self._thread: threading.Thread | None = None

    @property
    def available(self) -> bool:
        return self.command is not None

    def __enter__(self) -> TegrastatsSampler:
        if self.available:
            self._proc = subprocess.Popen([self.command, "--interval", str(self.interval_ms)],
                                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            self._thread = threading.Thread(target=self._collect, daemon=True)
            self._thread.start()
        return self

    def _collect(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for line in self._proc.stdout:
            self.lines.append(line.strip())

    def __exit__(self, *exc) -> None:
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
            if self._thread is not None:
                self._thread.join(timeout=5)

    def summary(self) -> dict | None:
        return summarize(self.lines) if self.available else None
