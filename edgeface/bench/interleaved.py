"""Batch-1 latency of every configuration in interleaved rounds, with OpenVINO's ``benchmark_app`` alongside.

The isolated measurement (:mod:`edgeface.bench.measure`) runs each configuration once, minutes apart from the
next; when other processes load the machine in between, a ratio of two such means says more about the load
than about the models (a 4x speed-up read as 2x). Here every runner stays open in one process and each takes
a short turn per round (A, B, C, A, B, C, ...), so neighbours in a round see the same load and the per-round
ratios (:func:`edgeface.bench.timing.interleaved_ratios`) hold under load. For OpenVINO IR rows the wheel's own
``benchmark_app`` measures the same file in the same round (one request at a time, one stream, same threads, f32
input and f32 inference precision, like the runner), as a reference for edgeface's per-call overhead; the
compiled-model settings benchmark_app prints are compared with the runner's, so a ratio between two different
configurations cannot pass for overhead.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
import time
from collections.abc import Callable, Hashable, Mapping
from typing import TypeVar

import numpy as np

from edgeface.bench.timing import interleaved_ratios, latency_stats, runner_input, time_calls, warm_up

K = TypeVar("K", bound=Hashable)

# the wheel's benchmark_app entry point (its module has no ``__main__`` guard, so ``python -m`` would not run it)
BENCHMARK_APP = "import sys; from openvino.tools.benchmark.main import main; sys.exit(main())"
ROUND_MIN_CALLS = 5  # calls per turn at least, however slow the model
MEDIAN_LINE = re.compile(r"Median:\s+([0-9.]+)\s*(ms|us)")  # benchmark_app prints us below 1 ms
PROPERTY_LINE = re.compile(r"^\[ INFO \]\s{2,}([A-Z][A-Z0-9_]+): (.*)$")  # "[ INFO ]   NUM_STREAMS: 1" (Step 8)
INPUT_LINE = re.compile(r"^\[ INFO \]\s{4,}\S.* \(node: .*\) : (\w+) / ")  # "[ INFO ]     input (node: input) : f32 / "
# the compiled-model settings that decide batch-1 latency on a CPU, compared between the runner and benchmark_app
COMPARED_PROPERTIES = ("PERFORMANCE_HINT", "NUM_STREAMS", "INFERENCE_NUM_THREADS", "INFERENCE_PRECISION_HINT",
                       "ENABLE_CPU_PINNING", "ENABLE_HYPER_THREADING", "SCHEDULING_CORE_TYPE", "EXECUTION_MODE_HINT",
                       "OPTIMAL_NUMBER_OF_INFER_REQUESTS")
INPUT_TYPE = "input_element_type"


def benchmark_app_available() -> bool:
    """Whether the installed openvino wheel ships ``benchmark_app`` (``openvino.tools.benchmark``)."""
    try:
        return importlib.util.find_spec("openvino.tools.benchmark.main") is not None
    except ModuleNotFoundError:
        return False


def benchmark_app_command(job: dict, seconds: float) -> list[str]:
    """benchmark_app on the job's IR at batch 1 with the runner's settings: one request at a time (sync API), one
    stream (the LATENCY hint's choice), the same threads, an f32 input (benchmark_app feeds a 3-channel input as u8
    unless told, a smaller tensor and a different graph) and f32 inference precision. It times whole seconds."""
    size = job["input_size"]
    command = [sys.executable, "-c", BENCHMARK_APP, "-m", job["artifact"], "-d", (job["device"] or "CPU").upper(),
               "-api", "sync", "-t", str(max(1, round(seconds))), "-shape", f"[1,3,{size},{size}]", "-ip", "f32",
               "-infer_precision", "f32"]
    if job["threads"]:  # benchmark_app takes a thread count only without a hint: one stream is what LATENCY picks
        return command + ["-hint", "none", "-nstreams", "1", "-nthreads", str(job["threads"])]
    return command + ["-hint", "latency"]


def parse_benchmark_app(output: str) -> float:
    """The median latency (ms) benchmark_app prints; ValueError when the output has none."""
    match = MEDIAN_LINE.search(output)
    if match is None:
        raise ValueError("benchmark_app printed no median latency")
    return float(match.group(1)) / (1000.0 if match.group(2) == "us" else 1.0)


def parse_benchmark_app_config(output: str) -> dict[str, str]:
    """The compiled-model properties benchmark_app prints (``Model:`` in Step 8, as ``str`` of each value) and the
    element type of its first input (Step 6) under ``input_element_type``."""
    config: dict[str, str] = {}
    for line in output.splitlines():
        if INPUT_TYPE not in config and (found := INPUT_LINE.match(line)):
            config[INPUT_TYPE] = found.group(1)
        elif found := PROPERTY_LINE.match(line):
            config.setdefault(found.group(1), found.group(2).strip())
    return config


def compiled_config(compiled) -> dict[str, str]:
    """The same settings of an OpenVINO compiled model (the runner's), spelled as benchmark_app prints them."""
    config = {}
    for key in COMPARED_PROPERTIES:
        try:
            config[key] = str(compiled.get_property(key))
        except RuntimeError:  # a device without this property: compared as missing
            continue
    config[INPUT_TYPE] = compiled.inputs[0].get_element_type().get_type_name()
    return config


def config_differences(ours: dict[str, str], reference: dict[str, str]) -> dict[str, list]:
    """{setting: [ours, the reference's]} for every compared setting that differs or only one side reports."""
    keys = [k for k in (*COMPARED_PROPERTIES, INPUT_TYPE) if k in ours or k in reference]
    return {k: [ours.get(k), reference.get(k)] for k in keys if ours.get(k) != reference.get(k)}


def run_benchmark_app(job: dict, seconds: float) -> tuple[float, dict[str, str]]:
    """benchmark_app's median batch-1 latency (ms) on the job's IR and the compiled-model settings it ran with."""
    done = subprocess.run(benchmark_app_command(job, seconds), capture_output=True, text=True, timeout=120 + seconds)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()
        raise RuntimeError(f"benchmark_app failed: {tail[-1] if tail else done.returncode}")
    return parse_benchmark_app(done.stdout), parse_benchmark_app_config(done.stdout)


def timed_rounds(calls: Mapping[K, Callable[[], object]], rounds: int, turn_s: float, warmup_s: float,
                 min_calls: int = ROUND_MIN_CALLS, after_turn: Callable[[K], None] | None = None
                 ) -> dict[K, list[list[float]]]:
    """The one interleaving mechanism: every call warmed up for ``warmup_s``, then ``rounds`` rounds in which each
    call takes one turn in order (A, B, C, A, B, C, ...), timed for ``turn_s`` and at least ``min_calls`` calls; a
    turn is bounded by time, so the rounds, not one turn's call count, carry the statistics. ``after_turn(key)``
    runs right after that key's turn in every round (a reference measured alongside it). Returns {key: per round,
    the per-call wall times in seconds}."""
    for call in calls.values():
        warm_up(call, warmup_s)
    samples: dict[K, list[list[float]]] = {key: [] for key in calls}
    for _ in range(rounds):
        for key, call in calls.items():
            samples[key].append(time_calls(call, turn_s, min_calls=min_calls))
            if after_turn is not None:
                after_turn(key)
    return samples


def round_medians_ms(samples: list[list[float]]) -> list[float]:
    """Per-call seconds of each round -> the round's median in ms: one value per round, the unit of the ratios."""
    return [round(float(np.median(turn)) * 1000, 4) for turn in samples]


class PairedOpenVinoLoop:
    """benchmark_app's sync loop (``request.infer()`` on an input set once, timed by OpenVINO's own
    ``InferRequest.latency``) run in this process on the runner's own compiled model, in short blocks alternated
    with blocks of the runner's ``infer``: neighbouring blocks see the same moment's load, which rounds seconds
    apart (and a benchmark_app process started per round) do not on a machine loaded many times over, and each
    block runs warm, as both real loops do (alternating single calls would have each start on the other's cache).
    The config is the runner's by construction; what differs is exactly edgeface's per-call work (output copies,
    checks, the Python call around the request; the input is in the runner's buffer, where the runtime
    preprocesses into)."""

    BLOCK_CALLS = 10

    def __init__(self, runner, x: np.ndarray, warmup_s: float):
        import openvino as ov

        self.runner, self.x = runner, x
        self.request = runner.compiled_for(len(x)).create_infer_request()
        self.request.set_input_tensor(ov.Tensor(np.array(x)))
        warm_up(self._blocks, warmup_s)

    def _blocks(self) -> tuple[float, float]:
        """One block of each -> their median call times (ms): edgeface's wall time, the loop's OpenVINO latency."""
        ours, theirs = [], []
        for _ in range(self.BLOCK_CALLS):
            t0 = time.perf_counter()
            self.runner.infer(self.x)
            ours.append(time.perf_counter() - t0)
        for _ in range(self.BLOCK_CALLS):
            self.request.infer()
            theirs.append(self.request.latency)
        return float(np.median(ours)) * 1000, float(np.median(theirs))

    def turn(self, seconds: float, min_pairs: int = ROUND_MIN_CALLS) -> tuple[float, float]:
        """Block pairs for ``seconds`` (``min_pairs`` at least) -> medians (ms) of edgeface's blocks and of the
        loop's."""
        pairs = []
        end = time.perf_counter() + seconds
        while len(pairs) < min_pairs or time.perf_counter() < end:
            pairs.append(self._blocks())
        ours, theirs = np.median(np.asarray(pairs), axis=0)
        return round(float(ours), 4), round(float(theirs), 4)


def measure_interleaved(jobs: list[dict], rounds: int, round_s: float, warmup_s: float,
                        reference: Callable[[dict, float], tuple[float, dict[str, str]]] | None = None
                        ) -> dict[int, dict]:
    """{job index: per-round median batch-1 latency (ms) and, for OpenVINO IR rows with ``reference``, the
    reference's, the overhead as per-round ratios and how the two compiled configurations differ (empty: the
    same), plus benchmark_app's loop paired call by call in this process (:class:`PairedOpenVinoLoop`)}; jobs that
    cannot be opened are left out (their isolated measurement reports why)."""
    from edgeface.runtime.base import open_runner

    runners, calls, out, paired = {}, {}, {}, {}
    rng = np.random.default_rng(0)

    def measure_reference(i: int) -> None:
        entry = out[i]
        if i in paired:
            ours, theirs = paired[i].turn(round_s)
            entry["paired_loop"]["rounds_ms"].append(ours)
            entry["paired_loop"]["openvino_rounds_ms"].append(theirs)
        if entry["benchmark_app_rounds_ms"] is None:
            return
        try:
            ms, config = reference(jobs[i], round_s)
        except (RuntimeError, ValueError, subprocess.TimeoutExpired) as e:  # keep edgeface's rounds
            entry["benchmark_app_rounds_ms"], entry["benchmark_app_error"] = None, str(e)
            return
        entry["benchmark_app_rounds_ms"].append(ms)
        entry.setdefault("benchmark_app_config_differences", config_differences(entry["openvino_config"], config))

    try:
        for i, job in enumerate(jobs):
            if job["status"] != "ok":
                continue
            try:
                runners[i] = open_runner(job["artifact"], backend=job["backend"], device=job["device"],
                                         threads=job["threads"], verify=False, **job["options"])
            except Exception:  # the isolated run of this job records the reason
                continue
            x = runner_input(runners[i], 1, rng)
            calls[i] = lambda r=runners[i], x=x: r.infer(x)
            out[i] = {"rounds_ms": [], "benchmark_app_rounds_ms": None}
            if reference is not None and job["backend"] == "openvino" and job["format"] == "openvino":
                out[i].update(benchmark_app_rounds_ms=[], openvino_config=compiled_config(runners[i].compiled_for(1)),
                              paired_loop={"rounds_ms": [], "openvino_rounds_ms": []})
                paired[i] = PairedOpenVinoLoop(runners[i], x, warmup_s)
        samples = timed_rounds(calls, rounds, round_s, warmup_s, after_turn=measure_reference if reference else None)
    finally:
        for runner in runners.values():
            runner.deactivate()
    for i, entry in out.items():
        entry["rounds_ms"] = round_medians_ms(samples[i])
        entry["latency_ms"] = latency_stats([s for turn in samples[i] for s in turn])  # every call of every turn
        entry["median_ms"] = round(float(np.median(entry["rounds_ms"])), 4) if entry["rounds_ms"] else None
        ref = entry["benchmark_app_rounds_ms"]
        entry["overhead_vs_benchmark_app"] = interleaved_ratios(entry["rounds_ms"], ref) if ref else None
        if "paired_loop" in entry:
            loop = entry["paired_loop"]
            loop["overhead"] = interleaved_ratios(loop["rounds_ms"], loop["openvino_rounds_ms"])
    return out
