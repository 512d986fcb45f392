"""Timing mechanics shared by every backend: time-based warm-up, measured loops, percentiles, throughput.

Kept free of any runtime library so the statistics are tested anywhere.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import numpy as np

PERCENTILES = (50, 90, 95, 99)
# Calls timed per configuration at least, whatever the duration: with 100 samples a p99 rests on the slowest
# call and one more, not on an interpolation between the slowest two of five.
MIN_SAMPLES = 100
Z95 = 1.959964  # two-sided 95% normal quantile: with >= MIN_SAMPLES calls the t quantile differs by < 1%


# two-sided 95% Student t quantiles by degrees of freedom, for a mean over a few repeats (rounds); past 30 the
# normal quantile is within 2%
T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228,
       11: 2.201, 12: 2.179, 13: 2.160, 14: 2.145, 15: 2.131, 16: 2.120, 17: 2.110, 18: 2.101, 19: 2.093,
       20: 2.086, 25: 2.060, 30: 2.042}


def repeats_ci95(values: list[float] | np.ndarray) -> tuple[float, float] | None:
    """(mean, half-width of its 95% confidence interval) over independent repeats (rounds or processes), with
    Student's t for their small number; None for fewer than two repeats.

    The per-call interval of :func:`latency_stats` treats calls as independent, which calls in one process
    under one load are not; repeats minutes apart carry the load's drift and give the honest interval."""
    x = np.asarray(values, dtype=np.float64)
    if x.size < 2:
        return None
    df = x.size - 1
    t = T95[max(k for k in T95 if k <= df)] if df <= 30 else Z95
    return float(x.mean()), float(t * x.std(ddof=1) / np.sqrt(x.size))


def latency_stats(samples_s: list[float] | np.ndarray) -> dict:
    """Seconds per call -> milliseconds: mean, std, the half-width of the mean's 95% confidence interval
    (``ci95``), p50/p90/p95/p99, min, max and the sample count."""
    ms = np.asarray(samples_s, dtype=np.float64) * 1000.0
    if ms.size == 0:
        raise ValueError("no latency samples")
    std = float(ms.std(ddof=1)) if ms.size > 1 else 0.0
    stats = {"mean": float(ms.mean()), "std": std, "ci95": Z95 * std / float(np.sqrt(ms.size))}
    stats.update({f"p{p}": float(np.percentile(ms, p)) for p in PERCENTILES})
    stats.update({"min": float(ms.min()), "max": float(ms.max()), "n": int(ms.size)})
    return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in stats.items()}


def warm_up(call: Callable[[], object], seconds: float, min_calls: int = 2) -> int:
    """Call until ``seconds`` have passed (and at least ``min_calls`` times): caches, JIT, clocks settle."""
    calls = 0
    end = time.perf_counter() + seconds
    while calls < min_calls or time.perf_counter() < end:
        call()
        calls += 1
    return calls


def runner_input(runner, batch: int, rng: np.random.Generator) -> np.ndarray:
    """A random float32 batch in ``runner``'s own input buffer (``Runner.input_buffer``), where the runtime's
    predictor writes its preprocessed faces: the timed ``runner.infer`` then does what the runtime's does (no input
    copy where the backend reads that buffer in place; benchmark_app also times an input set once)."""
    x = runner.input_buffer(batch)
    rng.standard_normal(dtype=np.float32, out=x)
    return x


def time_calls(call: Callable[[], object], seconds: float, min_calls: int = MIN_SAMPLES,
               clock: Callable[[], float] = time.perf_counter) -> list[float]:
    """Per-call wall times (s), one request at a time, until ``seconds`` have passed and ``min_calls`` calls
    were made, whichever comes later."""
    samples: list[float] = []
    end = clock() + seconds
    while len(samples) < min_calls or clock() < end:
        t0 = clock()
        call()
        samples.append(clock() - t0)
    return samples


def concurrent_throughput(calls: list[Callable[[], object]], batch: int, seconds: float) -> dict:
    """Throughput mode: one thread per callable (each its own request / context / stream), all busy for
    ``seconds``; images per second over the whole window."""
    counts = [0] * len(calls)
    errors: list[BaseException] = []
    stop = threading.Event()

    def worker(i: int) -> None:
        try:
            while not stop.is_set():
                calls[i]()
                counts[i] += 1
        except BaseException as e:  # surfaced below: a failing stream must fail the measurement
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(len(calls))]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    if errors:
        raise errors[0]
    return {"streams": len(calls), "images_per_s": round(sum(counts) * batch / elapsed, 3),
            "requests": sum(counts), "seconds": round(elapsed, 3)}


def interleaved_ratios(numerators: list[float] | np.ndarray, denominators: list[float] | np.ndarray,
                       resamples: int = 2000, seed: int = 0) -> dict:
    """Ratio of two configurations measured in interleaved rounds (A, B, A, B, ...), one ratio per round.

    Both sides of a round ran within seconds of each other, so load from other processes scales both and
    largely cancels in their ratio, where a ratio of two separately measured means carries the load's drift.
    Returns the per-round ratios, their median and inter-quartile range, and a bootstrap 95 % interval of the
    median (rounds resampled with replacement; ``seed`` makes it repeatable).
    """
    a = np.asarray(numerators, np.float64)
    b = np.asarray(denominators, np.float64)
    if a.shape != b.shape or a.ndim != 1 or a.size == 0:
        raise ValueError("expected one value per round on both sides, same number of rounds")
    if np.any(b <= 0) or np.any(a <= 0):
        raise ValueError("ratios need positive measurements")
    ratios = a / b
    q1, median, q3 = np.percentile(ratios, [25, 50, 75])
    rng = np.random.default_rng(seed)
    medians = np.median(rng.choice(ratios, size=(resamples, ratios.size), replace=True), axis=1)
    low, high = np.percentile(medians, [2.5, 97.5])
    return {"rounds": int(ratios.size), "median": round(float(median), 4), "q1": round(float(q1), 4),
            "q3": round(float(q3), 4), "ci95": [round(float(low), 4), round(float(high), 4)],
            "ratios": [round(float(r), 4) for r in ratios]}
