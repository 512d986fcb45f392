"""Video outputs: the annotated video and the JSON-lines results, each written to a temporary file and renamed
when the run ends, so an output is whole or absent; and the drawing of results onto frames."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from edgeface.fileio import PendingFile
from edgeface.runtime.predictor import FaceResult


def _fourcc_for(path: Path) -> int:
    return cv2.VideoWriter_fourcc(*("MJPG" if path.suffix.lower() == ".avi" else "mp4v"))


class AnnotatedVideoWriter:
    """Writes frames to a temporary file beside ``path`` and renames it on :meth:`close` (commit=True)."""

    def __init__(self, path: str | Path, fps: float):
        self.path = Path(path)
        if self.path.suffix.lower() not in (".mp4", ".avi", ".mov", ".mkv"):
            raise ValueError(f"output video must end in .mp4, .avi, .mov or .mkv: {self.path}")
        self._pending = PendingFile(self.path)
        self.fps = fps
        self.frames = 0
        self._writer: cv2.VideoWriter | None = None

    def write(self, frame: np.ndarray) -> None:
        if self._writer is None:
            h, w = frame.shape[:2]
            self._writer = cv2.VideoWriter(str(self._pending.tmp), _fourcc_for(self.path), self.fps, (w, h))
            if not self._writer.isOpened():
                raise RuntimeError(f"cannot open a video writer for {self.path}")
            self._size = (w, h)
        if (frame.shape[1], frame.shape[0]) != self._size:
            frame = cv2.resize(frame, self._size)
        self._writer.write(frame)
        self.frames += 1

    def close(self, commit: bool = True) -> None:
        if self._writer is not None:
            self._writer.release()
            self._writer = None
            if commit and self.frames:
                self._pending.commit()
        self._pending.discard()


class JsonlWriter:
    """One JSON object per frame, to a temporary file renamed on :meth:`close` (commit=True)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._pending = PendingFile(self.path)
        self._file = open(self._pending.tmp, "w")  # noqa: SIM115 -- closed in close()
        self.lines = 0

    def write(self, record: dict) -> None:
        self._file.write(json.dumps(record) + "\n")
        self.lines += 1

    def close(self, commit: bool = True) -> None:
        if not self._file.closed:
            self._file.close()
            if commit:
                self._pending.commit()
        self._pending.discard()


def draw_results(frame: np.ndarray, results: list[FaceResult]) -> np.ndarray:
    """The frame with a box, the track id and the decoded values drawn for each face (drawn in place)."""
    for r in results:
        x, y, w, h = (int(round(v)) for v in r.box)
        cv2.rectangle(frame, (x, y), (x + w, y + h), (0, 220, 0), 2)
        for px, py in r.landmarks:
            cv2.circle(frame, (int(px), int(py)), 2, (0, 200, 255), -1)
        parts = [f"#{r.track_id}"] if r.track_id is not None else []
        if r.age is not None:
            parts.append(f"age {r.age:.0f}+-{r.age_std:.0f}")
        if r.attractiveness is not None:
            parts.append(f"attr {r.attractiveness:.1f}")
        if r.decisions:
            parts += [n for n in ("Male", "Smiling", "Eyeglasses") if r.decisions.get(n)]
        cv2.putText(frame, " ".join(parts), (x, max(12, y - 6)), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 220, 0), 1,
                    cv2.LINE_AA)
    return frame


def frame_record(index: int, fps: float, results: list[FaceResult]) -> dict:
    """The JSON-lines object of one frame."""
    return {"frame": index, "time_s": round(index / fps, 3), "faces": [r.to_dict() for r in results]}
