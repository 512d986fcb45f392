"""The thread budget: one place decides how many threads each stage of the video runtime may use.

Decode (FFmpeg), detect (OpenCV: YuNet, resizes, optical flow) and infer (each model runner's intra-op pool)
run in three pipeline threads at once; left alone, each library sizes its pool to every core, so on a small CPU
they fight over the same cores. Measured on a 2-core VM: YuNet on a 320x240 frame takes the same time with 1 or
2 OpenCV threads, and a 640x480 mp4 decodes in a few ms on one thread, while an age model's batch is 1.7-2x
slower on 1 thread than on 2. So decode and detect get one thread each up to 4 cores (a quarter of the cores
beyond), and the runners, which run one after another in the infer stage, get every core.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import cv2

SMALL_CPU = 4  # cores up to which decode and detect get one thread each


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity), not the machine's count."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


@dataclass(frozen=True)
class ThreadBudget:
    """Threads per stage: ``decode`` (FFmpeg), ``detect`` (OpenCV, process-wide), ``infer`` (per model runner)."""

    cores: int
    decode: int
    detect: int
    infer: int

    def apply(self) -> None:
        """Set the process-wide OpenCV pool (the decode and infer counts go to the source and the runners)."""
        cv2.setNumThreads(self.detect)

    def describe(self) -> str:
        return (f"{self.cores} cores: decode {self.decode}, detect {self.detect}, infer {self.infer} thread(s) "
                "per model")


def thread_budget(threads: int | None = None, cores: int | None = None) -> ThreadBudget:
    """The budget for ``cores`` usable cores (default: this process's); ``threads`` overrides the runners' count."""
    cores = cores or usable_cores()
    if threads is not None and threads < 1:
        raise ValueError("--threads must be at least 1")
    side = 1 if cores <= SMALL_CPU else cores // SMALL_CPU
    return ThreadBudget(cores=cores, decode=side, detect=side, infer=threads or cores)
