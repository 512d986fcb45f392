"""Video outputs: the annotated video and the JSON-lines results, each written to a temporary file and renamed
when the run ends, so an output is whole or absent; and the drawing of results onto frames.

A previous output is replaced only by one checked whole (the video plays back with every frame written, the
JSON lines were flushed without error) from a run that gave at least one frame; otherwise it is kept as it was."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import cv2
import numpy as np

from edgeface.errors import OutputError
from edgeface.fileio import PendingFile, text_path
from edgeface.runtime.predictor import FaceResult


def _fourcc_for(path: Path) -> int:
    return cv2.VideoWriter_fourcc(*("MJPG" if path.suffix.lower() == ".avi" else "mp4v"))


def _plays_back(path: Path, frames: int) -> bool:
    """Whether the written video opens, decodes its first frame and holds ``frames`` frames (when its container
    says; Matroska's count is estimated from the duration, so one frame either way): cv2.VideoWriter reports no
    write error, so a full disk shows only here."""
    capture = cv2.VideoCapture(str(path))
    try:
        if not capture.isOpened() or not capture.read()[0]:
            return False
        count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        return count <= 0 or abs(count - frames) <= 1
    finally:
        capture.release()


def _write_failed(path: Path, why: str) -> OutputError:
    kept = f"the previous {path.name} is kept" if path.exists() else f"no {path.name} written"
    return OutputError(f"cannot write {path}: {why}; {kept} (free space, or write elsewhere)")


class AnnotatedVideoWriter:
    """Writes frames to a temporary file beside ``path``; :meth:`close` renames it onto ``path`` if it is whole."""

    def __init__(self, path: str | Path, fps: float):
        self.path = Path(text_path(path))
        if self.path.suffix.lower() not in (".mp4", ".avi", ".mov", ".mkv"):
            raise ValueError(f"output video must end in .mp4, .avi, .mov or .mkv: {self.path}")
        self._pending = PendingFile(self.path)
        self.fps = fps
        self.frames = 0
        self._writer: cv2.VideoWriter | None = None
        self._whole: bool | None = None  # set by finish()

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

    def finish(self) -> None:
        """Stop writing and check the video is whole (OutputError otherwise)."""
        if self._whole is None:
            if self._writer is not None:
                self._writer.release()
                self._writer = None
            self._whole = not self.frames or _plays_back(self._pending.tmp, self.frames)
        if not self._whole:
            raise _write_failed(self.path, "the written video does not play back whole (disk full?)")

    def close(self, commit: bool = True) -> None:
        """With ``commit``: check the video (:meth:`finish`) and rename it onto ``path`` if it has frames.
        Otherwise, or when the check fails, the temporary file is removed and ``path`` left as it was."""
        try:
            if commit:
                self.finish()
                if self.frames:
                    self._pending.commit()
        finally:
            if self._writer is not None:
                self._writer.release()
                self._writer = None
            self._pending.discard()


class JsonlWriter:
    """One JSON object per frame, to a temporary file that :meth:`close` renames onto ``path``."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._pending = PendingFile(self.path)
        self._file = open(self._pending.tmp, "w")  # noqa: SIM115 -- closed in finish() / close()
        self.lines = 0
        self._failed = False

    def write(self, record: dict) -> None:
        try:
            self._file.write(json.dumps(record) + "\n")
        except OSError as e:
            self._failed = True
            raise _write_failed(self.path, e.strerror or str(e)) from e
        self.lines += 1

    def finish(self) -> None:
        """Flush and close the file (OutputError when the disk refused the rest)."""
        if not self._file.closed:
            try:
                self._file.close()
            except OSError as e:
                self._failed = True
                raise _write_failed(self.path, e.strerror or str(e)) from e
        if self._failed:
            raise _write_failed(self.path, "a write failed")

    def close(self, commit: bool = True) -> None:
        """With ``commit``: flush (:meth:`finish`) and rename the file onto ``path`` if it has lines (a run that
        gave no frame leaves a previous file alone). Otherwise the temporary file is removed."""
        try:
            if commit:
                self.finish()
                if self.lines:
                    self._pending.commit()
        finally:
            if not self._file.closed:
                with contextlib.suppress(OSError):  # being discarded; the write that failed was reported
                    self._file.close()
            self._pending.discard()


def close_sinks(sinks: list, commit: bool) -> None:
    """Close every sink; commit them only when the run finished (``commit``) and each one is whole.

    One output that could not be written fails the run and leaves every previous output in place."""
    sinks = [s for s in sinks if s is not None]
    try:
        if commit:
            for sink in sinks:
                sink.finish()
    except BaseException:
        commit = False
        raise
    finally:
        for sink in sinks:
            sink.close(commit)


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
