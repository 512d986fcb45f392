"""Batch-1 latency of every configuration in interleaved rounds, with OpenVINO's ``benchmark_app`` alongside.

The isolated measurement (:mod:`edgeface.bench.measure`) runs each configuration once, minutes apart from the
next; when other processes load the machine in between, a ratio of two such means says more about the load
than about the models (a 4x speed-up read as 2x). Here every runner stays open in one process and each takes
a short turn per round (A, B, C, A, B, C, ...), so neighbours in a round see the same load and the per-round
ratios (:func:`edgeface.bench.timing.interleaved_ratios`) hold under load. For OpenVINO IR rows the wheel's own
``benchmark_app`` measures the same file in the same round (one request at a time, one stream, same threads, f32
inference precision, like the runner), as a reference for edgeface's per-call overhead.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from collections.abc import Callable

import numpy as np

from edgeface.bench.timing import interleaved_ratios, time_calls, warm_up

# the wheel's benchmark_app entry point (its module has no ``__main__`` guard, so ``python -m`` would not run it)
BENCHMARK_APP = "import sys; from openvino.tools.benchmark.main import main; sys.exit(main())"
ROUND_MIN_CALLS = 5  # calls per turn at least, however slow the model
MEDIAN_LINE = re.compile(r"Median:\s+([0-9.]+)\s*(ms|us)")  # benchmark_app prints us below 1 ms


def benchmark_app_available() -> bool:
    """Whether the installed openvino wheel ships ``benchmark_app`` (``openvino.tools.benchmark``)."""
    try:
        return importlib.util.find_spec("openvino.tools.benchmark.main") is not None
    except ModuleNotFoundError:
        return False


def benchmark_app_command(job: dict, seconds: float) -> list[str]:
    """benchmark_app on the job's IR at batch 1 with the runner's settings: one request at a time (sync API), one
    stream (the LATENCY hint's choice), the same threads, f32 inference precision."""
    size = job["input_size"]
    command = [sys.executable, "-c", BENCHMARK_APP, "-m", job["artifact"], "-d", (job["device"] or "CPU").upper(),
               "-api", "sync", "-t", f"{seconds:g}", "-shape", f"[1,3,{size},{size}]", "-infer_precision", "f32"]
    if job["threads"]:  # benchmark_app takes a thread count only without a hint: one stream is what LATENCY picks
        return command + ["-hint", "none", "-nstreams", "1", "-nthreads", str(job["threads"])]
    return command + ["-hint", "latency"]


def parse_benchmark_app(output: str) -> float:
    """The median latency (ms) benchmark_app prints; ValueError when the output has none."""
    match = MEDIAN_LINE.search(output)
    if match is None:
        raise ValueError("benchmark_app printed no median latency")
    return float(match.group(1)) / (1000.0 if match.group(2) == "us" else 1.0)


def run_benchmark_app(job: dict, seconds: float) -> float:
    done = subprocess.run(benchmark_app_command(job, seconds), capture_output=True, text=True, timeout=120 + seconds)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()
        raise RuntimeError(f"benchmark_app failed: {tail[-1] if tail else done.returncode}")
    return parse_benchmark_app(done.stdout)


def measure_interleaved(jobs: list[dict], rounds: int, round_s: float, warmup_s: float,
                        reference: Callable[[dict, float], float] | None = None) -> dict[int, dict]:
    """{job index: per-round median batch-1 latency (ms) and, for OpenVINO rows with ``reference``, the
    reference's}; jobs that cannot be opened are left out (their isolated measurement reports why)."""
    from edgeface.runtime.base import open_runner

    runners, inputs, out = {}, {}, {}
    rng = np.random.default_rng(0)
    try:
        for i, job in enumerate(jobs):
            if job["status"] != "ok":
                continue
            try:
                runners[i] = open_runner(job["artifact"], backend=job["backend"], device=job["device"],
                                         threads=job["threads"], verify=False, **job["options"])
            except Exception:  # the isolated run of this job records the reason
                continue
            size = runners[i].card.preprocess.input_size
            inputs[i] = rng.standard_normal((1, 3, size, size), dtype=np.float32)
            warm_up(lambda i=i: runners[i].infer(inputs[i]), warmup_s)
            out[i] = {"rounds_ms": [], "benchmark_app_rounds_ms": None}
            if reference is not None and job["backend"] == "openvino" and job["format"] == "openvino":
                out[i]["benchmark_app_rounds_ms"] = []
        for _ in range(rounds):
            for i in runners:
                # a turn is bounded by time: the rounds, not one turn's call count, carry the statistics
                samples = time_calls(lambda i=i: runners[i].infer(inputs[i]), round_s, min_calls=ROUND_MIN_CALLS)
                out[i]["rounds_ms"].append(round(float(np.median(samples)) * 1000, 4))
                if out[i]["benchmark_app_rounds_ms"] is not None:
                    try:
                        out[i]["benchmark_app_rounds_ms"].append(reference(jobs[i], round_s))
                    except (RuntimeError, ValueError, subprocess.TimeoutExpired) as e:  # keep edgeface's rounds
                        out[i]["benchmark_app_rounds_ms"], out[i]["benchmark_app_error"] = None, str(e)
    finally:
        for runner in runners.values():
            runner.deactivate()
    for entry in out.values():
        entry["median_ms"] = round(float(np.median(entry["rounds_ms"])), 4) if entry["rounds_ms"] else None
        ref = entry["benchmark_app_rounds_ms"]
        entry["overhead_vs_benchmark_app"] = interleaved_ratios(entry["rounds_ms"], ref) if ref else None
    return out
