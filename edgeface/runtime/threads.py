"""The thread budget: one place decides how many threads each stage of the video runtime may use.

Decode (FFmpeg), detect (OpenCV: YuNet, resizes, optical flow, and the face crops of the infer stage) and infer
(each model runner's intra-op pool) run in three pipeline threads at once; left alone, each library sizes its
pool to every core. Measured on a 2-core VM (``edgeface experiment runtime-fps`` and its configurations, in
interleaved rounds), every cap cost: one OpenCV thread 3-8 % FPS (the infer stage's crops and resizes run on
OpenCV's pool too), one FFmpeg thread doubled the live p50 latency (6 -> 13-15 ms: FFmpeg's frame threads decode
ahead), while with inference per track the detect and infer stages seldom compete. So on up to 4 cores OpenCV
and each runner get every core and FFmpeg keeps its own choice; beyond 4 cores (not measured here) OpenCV gets
half of them and decode a quarter, so that YuNet's pool, FFmpeg's and a runner's do not all claim every core.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import cv2

SMALL_CPU = 4  # cores up to which no stage's pool is capped


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity), not the machine's count."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


@dataclass(frozen=True)
class ThreadBudget:
    """Threads per stage: ``decode`` (FFmpeg; None: its own choice), ``detect`` (OpenCV, process-wide),
    ``infer`` (per model runner)."""

    cores: int
    decode: int | None
    detect: int
    infer: int

    def apply(self) -> None:
        """Set the process-wide OpenCV pool (the decode and infer counts go to the source and the runners)."""
        cv2.setNumThreads(self.detect)

    def describe(self) -> str:
        return (f"{self.cores} cores: decode {self.decode or 'auto'}, detect {self.detect}, infer {self.infer} "
                "thread(s) per model")


def thread_budget(threads: int | None = None, cores: int | None = None) -> ThreadBudget:
    """The budget for ``cores`` usable cores (default: this process's); ``threads`` overrides the runners' count."""
    cores = cores or usable_cores()
    if threads is not None and threads < 1:
        raise ValueError("--threads must be at least 1")
    if cores <= SMALL_CPU:
        return ThreadBudget(cores=cores, decode=None, detect=cores, infer=threads or cores)
    return ThreadBudget(cores=cores, decode=cores // SMALL_CPU, detect=cores // 2, infer=threads or cores)
