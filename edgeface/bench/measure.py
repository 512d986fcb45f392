"""How ``edgeface bench`` measures one job: load, latency, throughput, compute-only time, memory, power.

Each job runs in a fresh (spawned) process so peak RSS, thread pools and library state belong to that
configuration alone. Everything backend-specific goes through the Runner interface
(:meth:`~edgeface.runtime.base.Runner.infer_many`, :meth:`~edgeface.runtime.base.Runner.compute_only_timer`).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import multiprocessing
import os
import resource
import time
from pathlib import Path

import numpy as np

from edgeface import __version__
from edgeface.bench import fingerprint as fp_mod
from edgeface.bench.schema import RESULT_FORMAT, validate_result
from edgeface.bench.timing import concurrent_throughput, latency_stats, runner_input, time_calls, warm_up
from edgeface.fileio import portable_path

log = logging.getLogger(__name__)

BACKEND_MODULE = {"torch": "torch", "onnxruntime": "onnxruntime", "openvino": "openvino", "tensorrt": "tensorrt"}


def _rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def _streams_throughput(job: dict, x: np.ndarray, seconds: float, streams: int) -> dict:
    """Throughput with ``streams`` requests in flight: one runner (session / context) per stream, each on
    its share of the machine's cores, called from its own thread."""
    from edgeface.runtime.base import open_runner

    per_stream = max(1, len(os.sched_getaffinity(0)) // streams)  # the whole machine, split over the streams
    runners = []
    try:
        for _ in range(streams):
            runners.append(open_runner(job["artifact"], backend=job["backend"], device=job["device"],
                                       threads=per_stream, verify=False, **job["options"]))
        calls = [lambda r=r: r.infer(x) for r in runners]
        for call in calls:
            call()
        return concurrent_throughput(calls, x.shape[0], seconds)
    finally:
        for r in runners:
            r.deactivate()


def _queue_throughput(job: dict, x: np.ndarray, seconds: float, streams: int) -> dict:
    """OpenVINO throughput mode: the model compiled with the THROUGHPUT hint and ``streams`` streams, its
    optimal number of asynchronous requests kept busy for ``seconds`` (:meth:`Runner.infer_many`)."""
    from edgeface.runtime.base import open_runner

    with open_runner(job["artifact"], backend="openvino", device=job["device"], hint="THROUGHPUT",
                     streams=streams, verify=False) as runner:
        jobs = runner.default_jobs
        runner.infer_many([x] * jobs)  # warm every request once
        requests = 0
        t0 = time.perf_counter()

        def until_time_is_up():
            nonlocal requests
            while time.perf_counter() - t0 < seconds:
                requests += 1
                yield x

        runner.infer_many(until_time_is_up(), jobs)
        elapsed = time.perf_counter() - t0
    return {"streams": streams, "requests_in_flight": jobs, "images_per_s": round(requests * x.shape[0] / elapsed, 3),
            "requests": requests, "seconds": round(elapsed, 3)}


def _compute_only(runner, x: np.ndarray, warmup_s: float, seconds: float) -> dict | None:
    """Device compute time with the batch already on the GPU (CUDA events); None on CPU backends."""
    timer = runner.compute_only_timer(x)
    if timer is None:
        return None
    warm_up(timer, warmup_s)
    samples = []
    t_end = time.perf_counter() + seconds
    while len(samples) < 5 or time.perf_counter() < t_end:
        samples.append(timer())
    return latency_stats(samples)


def run_job(job: dict, settings: dict) -> dict:
    """Measure one (artifact, backend, variant) at every batch size; runs inside a fresh process."""
    import importlib

    from edgeface.bench.tegrastats import TegrastatsSampler, images_per_joule
    from edgeface.runtime.base import open_runner

    with contextlib.suppress(ImportError):  # the library's own import is not the model's memory
        importlib.import_module(BACKEND_MODULE[job["backend"]])
    rss_before = _rss_mib()
    t0 = time.perf_counter()
    runner = open_runner(job["artifact"], backend=job["backend"], device=job["device"], threads=job["threads"],
                         verify=False, **job["options"])
    load_s = time.perf_counter() - t0
    rng = np.random.default_rng(0)
    result = {"load_s": round(load_s, 4), "rss_after_load_mib": round(_rss_mib() - rss_before, 2), "batches": []}
    with runner:
        for batch in settings["batches"]:
            x = runner_input(runner, batch, rng)
            runner.infer(x)  # first call: lazy allocations
            warm_up(lambda x=x: runner.infer(x), settings["warmup_s"])
            with TegrastatsSampler() as power:
                samples = time_calls(lambda x=x: runner.infer(x), settings["duration_s"])
            stats = latency_stats(samples)
            row = {"batch": batch, "latency_ms": stats,
                   "throughput_latency_mode": round(batch * 1000.0 / stats["mean"], 3),
                   "throughput_mode": None, "compute_only_ms": None, "power": power.summary(),
                   "images_per_joule": None}
            if row["power"]:
                row["images_per_joule"] = images_per_joule(row["throughput_latency_mode"],
                                                           row["power"]["mean_power_w"])
            streams = settings["streams"]
            if streams and streams > 1:
                throughput = _queue_throughput if job["backend"] == "openvino" else _streams_throughput
                row["throughput_mode"] = throughput(job, x, settings["duration_s"], streams)
            row["compute_only_ms"] = _compute_only(runner, x, settings["warmup_s"], settings["duration_s"])
            result["batches"].append(row)
    result["peak_rss_mib"] = round(_peak_rss_mib(), 2)
    return result


def interleaved_batch(stats: dict) -> dict:
    """A ``batches`` row for batch-1 latency measured only in the interleaved rounds (one request at a time)."""
    return {"batch": 1, "latency_ms": stats, "throughput_latency_mode": round(1000.0 / stats["mean"], 3),
            "throughput_mode": None, "compute_only_ms": None, "power": None, "images_per_joule": None}


def _run_isolated(job: dict, settings: dict) -> dict:
    ctx = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
        return pool.submit(run_job, job, settings).result()


_PROFILE_CACHE: dict[tuple, dict] = {}


def model_profile(card: dict) -> dict:
    """Parameters and MACs of the card's network (needs PyTorch; None without it)."""
    key = (card["model"], card["preprocess"]["input_size"], card.get("task"))
    if key not in _PROFILE_CACHE:
        try:
            from edgeface.card import ModelCard
            from edgeface.models.checkpoint import build_model
            from edgeface.models.profile import count_macs, count_params

            model = build_model(ModelCard.from_dict(card))
            _PROFILE_CACHE[key] = {"params": count_params(model), "macs": count_macs(model, key[1])}
        except ImportError:
            _PROFILE_CACHE[key] = {"params": None, "macs": None}
    return _PROFILE_CACHE[key]


def result_row(job: dict, measured: dict | None, status: str, reason: str) -> dict:
    """The JSON row of one job (schema ``results[]``)."""
    profile = model_profile(job["card"])
    row = {k: job[k] for k in ("model", "baseline", "target", "backend", "device", "format", "precision",
                               "threads", "options", "artifact", "data", "input_size", "drift")}
    row["artifact"] = portable_path(row["artifact"])  # a result file travels: no host folders in it
    row.update({"params": profile["params"], "macs": profile["macs"],
                "file_mib": round(job["bytes"] / 2**20, 3) if job.get("bytes") else None,
                "status": status, "reason": reason,
                "load_s": None, "rss_after_load_mib": None, "peak_rss_mib": None, "batches": []})
    if measured:
        row.update(measured)
    return row


def run_benchmark(jobs: list[dict], settings: dict, isolate: bool = True, progress: bool = True,
                  label: str = "bench", measured_apart: bool = True, reference: bool = True) -> dict:
    """Measure every job; returns the run's result document (schema ``edgeface-bench/1``). Without
    ``measured_apart`` the jobs are measured only in the interleaved rounds (``settings["rounds"]``), whose batch-1
    latency over every call then fills each row's ``batches``: what a comparison on a loaded machine needs, in
    less time; ``reference`` adds benchmark_app to the rounds of OpenVINO IR rows where the wheel ships it."""
    if not measured_apart and not settings.get("rounds"):
        raise ValueError("measuring only in interleaved rounds needs rounds > 0")
    from edgeface.progress import progress as progress_bar

    fingerprint = fp_mod.fingerprint()
    warnings = fp_mod.preflight_warnings(fingerprint)
    for w in warnings:
        log.warning("edgeface bench: warning: %s", w)
    rows = []
    bar = progress_bar(jobs, label, progress, unit="config")
    for i, job in enumerate(bar):
        bar.set_postfix_str(f"{job['model']} {job['target']} {job['backend']} t={job['threads']}")
        if job["status"] != "ok":
            rows.append(result_row(job, None, "skipped", f"convert: {job['status']}: {job['reason']}"))
            continue
        if not measured_apart:
            rows.append(result_row(job, None, "failed", "did not open for the interleaved rounds"))
            continue  # made "ok" below once the rounds measured it
        log.info("%s [%d/%d]: %s %s (%s, %s) %s, threads %s", label, i + 1, len(jobs), job["model"], job["target"],
                 job["precision"], job["backend"], Path(job["artifact"]).name, job["threads"] or "auto")
        try:
            measured = (_run_isolated if isolate else run_job)(job, settings)
            rows.append(result_row(job, measured, "ok", ""))
        except Exception as e:  # one backend failing must not lose the others' measurements
            reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            rows.append(result_row(job, None, "failed", f"{type(e).__name__}: {reason}"))
    document = {
        "format": RESULT_FORMAT,
        "edgeface_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "device": fp_mod.device_name(fingerprint),
        "fingerprint": fingerprint,
        "preflight_warnings": warnings,
        "load_average": {"before": fingerprint["load_average"], "after": fp_mod.load_average()},
        "settings": settings,
        "results": rows,
    }
    if settings.get("rounds"):
        from edgeface.bench.interleaved import benchmark_app_available, measure_interleaved, run_benchmark_app

        log.info("edgeface bench: batch-1 latency in %d interleaved rounds", settings["rounds"])
        app = run_benchmark_app if reference and benchmark_app_available() else None
        measured = measure_interleaved(jobs, settings["rounds"], settings["round_s"], settings["warmup_s"], app)
        for i, entry in measured.items():
            if not measured_apart and rows[i]["status"] == "failed":
                rows[i].update(status="ok", reason="", batches=[interleaved_batch(entry["latency_ms"])])
            if rows[i]["status"] == "ok":
                rows[i]["interleaved"] = entry
        document["load_average"]["after"] = fp_mod.load_average()
    validate_result(document)
    return document
