"""Timing mechanics shared by every backend: time-based warm-up, measured loops, percentiles, throughput.

Kept free of any runtime library so the statistics are tested anywhere.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import numpy as np

PERCENTILES = (50, 90, 95, 99)


def latency_stats(samples_s: list[float] | np.ndarray) -> dict:
    """Seconds per call -> milliseconds: mean, std, p50/p90/p95/p99, min, max and the sample count."""
    ms = np.asarray(samples_s, dtype=np.float64) * 1000.0
    if ms.size == 0:
        raise ValueError("no latency samples")
    stats = {"mean": float(ms.mean()), "std": float(ms.std(ddof=1)) if ms.size > 1 else 0.0}
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


def time_calls(call: Callable[[], object], seconds: float, min_calls: int = 5,
               clock: Callable[[], float] = time.perf_counter) -> list[float]:
    """Per-call wall times (s), one request at a time, for ``seconds`` (at least ``min_calls`` calls)."""
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
