"""Inference per track, not per frame: which of a frame's faces the models run on.

A person's age does not change between frames, so re-running every model on every face of every frame (the
naive design) wastes most of the CPU; DeepStream's secondary inference re-infers an object only every
``secondary-reinfer-interval`` frames for the same reason. Here a face is inferred when its track is new, when
its latest inference is ``refresh_every`` frames old, or earlier when the face has changed enough to be worth a
new look (grew, turned, got sharper), at most ``budget`` faces per frame, the most stale first. The tracker's
temporal fusion takes each new result; the other faces carry their track's fused values with their staleness.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from edgeface.runtime.predictor import FaceResult, Predictor
from edgeface.runtime.tracker import IoUTracker, Track

SHARPNESS_SIDE = 32  # px: faces are compared for sharpness at this size, so the measure does not follow size


@dataclass(frozen=True)
class Schedule:
    """When a tracked face is inferred again.

    ``refresh_every``: frames between inferences of a track (10: every track refreshed at least every 10 frames
    while the budget allows); ``budget``: most faces inferred per frame (None: no cap); ``grow``: side ratio since
    the latest inference that triggers an early refresh; ``turn``: change of the yaw measure (nose offset from the
    eyes' midpoint over the eye distance); ``sharpen``: ratio of the focus measure; ``min_gap``: frames an early
    refresh waits after the latest inference.
    """

    refresh_every: int = 10
    budget: int | None = None
    grow: float = 1.25
    turn: float = 0.2
    sharpen: float = 1.5
    min_gap: int = 3

    def __post_init__(self) -> None:
        if self.refresh_every < 1:
            raise ValueError("refresh_every must be at least 1 frame")
        if self.budget is not None and self.budget < 1:
            raise ValueError("the face budget must be at least 1 face per frame")
        if self.grow <= 1 or self.sharpen <= 1 or self.turn <= 0 or self.min_gap < 1:
            raise ValueError("grow and sharpen must exceed 1, turn must be positive, min_gap at least 1")


@dataclass(frozen=True)
class FaceView:
    """What a refresh decision compares: the face's size, yaw and sharpness."""

    side: float
    yaw: float
    sharpness: float


def face_view(frame: np.ndarray, face: FaceResult) -> FaceView:
    """Size (box side), yaw (nose offset over eye distance, 0 when frontal) and sharpness (variance of the
    Laplacian of the face at a fixed size, in grey) of a face in a BGR frame; only the face patch is converted."""
    x, y, w, h = (float(v) for v in face.box)
    eyes = face.landmarks[:2]
    eye_distance = float(np.linalg.norm(eyes[1] - eyes[0])) or 1.0
    yaw = float(face.landmarks[2, 0] - eyes[:, 0].mean()) / eye_distance
    rows, cols = frame.shape[:2]
    x0, y0 = int(np.clip(x, 0, cols - 1)), int(np.clip(y, 0, rows - 1))
    x1, y1 = int(np.clip(x + w, x0 + 1, cols)), int(np.clip(y + h, y0 + 1, rows))
    patch = cv2.resize(frame[y0:y1, x0:x1], (SHARPNESS_SIDE, SHARPNESS_SIDE), interpolation=cv2.INTER_AREA)
    patch = cv2.cvtColor(patch, cv2.COLOR_BGR2GRAY) if patch.ndim == 3 else patch
    sharpness = float(cv2.Laplacian(patch, cv2.CV_32F).var())
    return FaceView(side=float(np.sqrt(max(w, 1.0) * max(h, 1.0))), yaw=yaw, sharpness=sharpness)


def changed(before: FaceView, now: FaceView, schedule: Schedule) -> bool:
    """Whether the face grew, turned or sharpened enough since ``before`` to be worth a new inference."""
    return (now.side >= schedule.grow * before.side
            or abs(now.yaw - before.yaw) >= schedule.turn
            or now.sharpness >= schedule.sharpen * max(before.sharpness, 1e-6))


class InferenceScheduler:
    """Picks the faces of a frame to infer: new tracks first, then tracks due for their refresh, then tracks
    whose face changed; the most stale first within each, at most ``schedule.budget`` faces."""

    def __init__(self, schedule: Schedule | None = None):
        self.schedule = schedule or Schedule()

    def select(self, frame_index: int, tracks: list[Track], faces: list[FaceResult],
               frame: np.ndarray | None = None) -> list[int]:
        """Indices into ``faces`` (whose tracks are ``tracks``) to infer on frame ``frame_index``; ``frame`` (BGR)
        enables the early refresh of changed faces."""
        s = self.schedule
        ranked: list[tuple[int, float, int]] = []  # (tier, -staleness, face index)
        for i, (track, face) in enumerate(zip(tracks, faces, strict=True)):
            if track.inferred_frame is None:
                ranked.append((0, -np.inf, i))
                continue
            stale = frame_index - track.inferred_frame
            if stale >= s.refresh_every:
                ranked.append((1, -stale, i))
            elif (frame is not None and stale >= s.min_gap and track.reference is not None
                  and changed(track.reference, face_view(frame, face), s)):
                ranked.append((2, -stale, i))
        ranked.sort()
        return sorted(i for _, _, i in ranked[:s.budget])


class TrackedInference:
    """One frame's faces -> tracked results, inferring all of them (``schedule=None``, the per-frame runtime) or
    only those the :class:`InferenceScheduler` picks; counts the faces inferred. ``low``: the frame's low-score
    detections, which only keep tracks alive (:meth:`IoUTracker.assign`)."""

    def __init__(self, predictor: Predictor, tracker: IoUTracker, schedule: Schedule | None = None):
        self.predictor, self.tracker = predictor, tracker
        self.scheduler = InferenceScheduler(schedule) if schedule is not None else None
        self.inferred = 0

    def __call__(self, frame: np.ndarray, results: list[FaceResult],
                 low: Sequence[FaceResult] = ()) -> list[FaceResult]:
        tracks = self.tracker.assign(results, low)
        if self.scheduler is None:
            chosen = list(range(len(results)))
        else:
            chosen = self.scheduler.select(self.tracker.frame, tracks, results, frame)
        if chosen:
            self.predictor.fill(frame, [results[i] for i in chosen])
        self.inferred += len(chosen)
        picked = set(chosen)
        for i, (track, face) in enumerate(zip(tracks, results, strict=True)):
            if i in picked:
                self.tracker.fuse(track, face)
                if self.scheduler is not None:
                    track.reference = face_view(frame, face)
            else:
                self.tracker.carry(track, face)
        return results
