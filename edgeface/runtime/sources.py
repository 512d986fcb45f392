"""Video sources: file, camera, RTSP/HTTP URL or GStreamer pipeline, read frame by frame so that bad frames are
skipped and counted, damaged stretches of a file are sought past, and dropped or stalled live streams are reopened
with backoff instead of ending the run.

Files and URLs are decoded by PyAV where it is installed (:mod:`edgeface.runtime.source_pyav`: read timeouts,
damaged packets skipped, hardware decoders), otherwise by OpenCV's FFmpeg build (with open/read timeouts on URLs).
"""

from __future__ import annotations

import functools
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edgeface.errors import BackendUnavailable
from edgeface.fileio import text_path


def gstreamer_available() -> bool:
    """Whether this OpenCV build can open GStreamer pipeline strings."""
    match = re.search(r"GStreamer:\s*(\S+)", cv2.getBuildInformation())
    return bool(match and match.group(1).upper().startswith("YES"))


@dataclass(frozen=True)
class SourceSpec:
    """What a SOURCE argument names: kind is camera, url, gstreamer or file."""

    kind: str
    target: str | int

    @property
    def live(self) -> bool:
        """Live sources are reopened when they drop; files end."""
        return self.kind in ("camera", "url", "gstreamer")


def parse_source(source: str | int) -> SourceSpec:
    """Camera index, RTSP/HTTP URL, GStreamer pipeline (``gst:`` before it, or ``a ! b [! appsink]``) or a video
    file that must exist. Pipelines run through PyGObject where it is installed, else through an OpenCV built
    with GStreamer."""
    text = text_path(str(source).strip())
    if re.fullmatch(r"\d+", text):
        return SourceSpec("camera", int(text))
    if text.startswith("gst:") or "!" in text:
        from edgeface.runtime.gstreamer import gst_missing

        if gst_missing() and not gstreamer_available():
            raise ValueError(f"{gst_missing()}; this OpenCV has no GStreamer either")
        return SourceSpec("gstreamer", text.removeprefix("gst:"))
    if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", text):
        return SourceSpec("url", text)
    if not Path(text).is_file():
        raise FileNotFoundError(f"video source not found: {text}")
    return SourceSpec("file", text)


DECODERS = ("auto", "pyav", "opencv")
STALL_TIMEOUT_S = 1.0  # a stream silent this long counts as dropped (and Ctrl-C is seen within it)
PYAV_MISSING = "PyAV is not installed: pip install 'edgeface[video]'"


def open_capture(spec: SourceSpec, threads: int | None = None, decoder: str = "auto", hwaccel: str | None = None,
                 timeout_s: float = STALL_TIMEOUT_S) -> cv2.VideoCapture:
    """The capture for a source; ``threads`` caps FFmpeg's decoder threads (files and URLs).

    Files and URLs go to PyAV when ``decoder`` is pyav, or auto and PyAV is installed; else to OpenCV. Opening and
    each read of a URL give up after ``timeout_s``. ``hwaccel`` (PyAV only) names an FFmpeg hardware device type.
    """
    if decoder not in DECODERS:
        raise ValueError(f"unknown decoder {decoder!r}: choose one of {', '.join(DECODERS)}")
    if spec.kind == "gstreamer":
        from edgeface.runtime.gstreamer import GstCapture, gst_missing

        if not gst_missing():
            return GstCapture(spec.target, stall_s=timeout_s)
        return cv2.VideoCapture(spec.target, cv2.CAP_GSTREAMER)
    if spec.kind == "camera":
        return cv2.VideoCapture(spec.target)
    from edgeface.runtime.source_pyav import PyAVCapture, pyav_available

    if decoder == "pyav" or (decoder == "auto" and pyav_available()):
        if not pyav_available():
            raise BackendUnavailable(PYAV_MISSING)
        return PyAVCapture(str(spec.target), threads=threads, timeout_s=timeout_s, hwaccel=hwaccel)
    if hwaccel:
        raise BackendUnavailable(f"--hwaccel needs the PyAV decoder ({PYAV_MISSING})")
    params = [cv2.CAP_PROP_N_THREADS, threads] if threads else []
    if spec.kind == "url":
        timeout_ms = max(1, int(timeout_s * 1000))
        params += [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, timeout_ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, timeout_ms]
    return cv2.VideoCapture(spec.target, cv2.CAP_FFMPEG, params)



class VideoSource:
    """Frames from a capture, skipping (and counting) corrupt or empty ones.

    Live sources that drop or stall are reopened with exponential backoff (``backoff_s`` doubling up to 8 s) at
    most ``max_reconnects`` times in a row; a file ends at its end, or restarts when ``loop`` is set. A file that
    fails before its end is sought past the damage (1, 2, 4 ... frames ahead) and the frames jumped are counted
    in ``bad_frames`` like the frames that came back unusable.
    ``opener`` builds the capture (:func:`open_capture` with ``decoder``, ``hwaccel``, ``stall_timeout_s`` and
    ``decode_threads`` by default; tests pass a scripted one). ``pace_fps``
    replays a file as a live camera would deliver it: one frame per tick, a frame the reader is late for is
    skipped (counted in ``late_frames``), and the source counts as live, so measured latency is a camera's.
    """

    MAX_CONSECUTIVE_BAD = 50

    def __init__(self, source: str | int | SourceSpec, max_reconnects: int = 5, backoff_s: float = 0.5,
                 loop: bool = False, opener: Callable[[SourceSpec], cv2.VideoCapture] | None = None,
                 pace_fps: float | None = None, decode_threads: int | None = None, decoder: str = "auto",
                 hwaccel: str | None = None, stall_timeout_s: float = STALL_TIMEOUT_S):
        self.spec = source if isinstance(source, SourceSpec) else parse_source(source)
        if pace_fps is not None and not pace_fps > 0:
            raise ValueError("pace_fps must be positive")
        if not stall_timeout_s > 0:
            raise ValueError("the stall timeout must be positive")
        self.pace_fps = pace_fps
        self.frame_time: float | None = None  # paced replay: perf_counter time the latest frame was due
        self.late_frames = 0
        self.max_reconnects = max_reconnects
        self.backoff_s = backoff_s
        self.loop = loop
        self._opener = opener or functools.partial(open_capture, threads=decode_threads, decoder=decoder,
                                                   hwaccel=hwaccel, timeout_s=stall_timeout_s)
        self._bad = 0  # unusable frames and frames sought past; the captures' own skips are added in bad_frames
        self._skipped_by_closed = 0  # frames skipped inside captures since released
        self.reconnects = 0
        self.gap_s = 0.0  # time a live stream gave no frame: from its last frame before a drop to its first after
        self._last_frame_at: float | None = None
        self._attempts = 0  # reconnect attempts since the last good frame
        self._seeks = 0  # seeks past damage since the last good frame
        self._good_since_open = False
        self._capture = self._open()
        if self._capture is None:
            why = f": {self._open_error}" if self._open_error else ""
            raise ValueError(f"cannot open video source {self.spec.target}{why}")
        self._stream = self.spec.live and getattr(self._capture, "live", True)  # a GStreamer pipeline knows
        fps = float(self._capture.get(cv2.CAP_PROP_FPS) or 0.0)
        self.fps = fps if 1.0 <= fps <= 240.0 else 25.0
        self.decoder = getattr(self._capture, "decoder", "OpenCV " + cv2.__version__)

    @property
    def live(self) -> bool:
        """Frames arrive in real time (a camera, a stream, or a paced replay): fall behind and they are lost."""
        return self._stream or self.pace_fps is not None

    @property
    def bad_frames(self) -> int:
        """Frames lost to damage: unusable, undecodable (skipped inside the capture) or sought past."""
        return self._bad + self._skipped_by_closed + self._capture_skipped()

    def _capture_skipped(self) -> int:
        return int(getattr(self._capture, "skipped_frames", 0)) if self._capture is not None else 0

    def _open(self) -> cv2.VideoCapture | None:
        capture = self._opener(self.spec)
        if capture is None or not capture.isOpened():
            self._open_error = getattr(capture, "error", None)  # a GStreamer pipeline says why it did not start
            return None
        return capture

    def frames(self, stop: threading.Event | None = None) -> Iterator[np.ndarray]:
        """Good BGR frames until the source ends, gives up reconnecting, or ``stop`` is set."""
        frames = self._frames(stop)
        if self.pace_fps is None:
            yield from frames
            return
        period, start = 1.0 / self.pace_fps, time.perf_counter()
        for tick, frame in enumerate(frames):
            due = start + tick * period
            now = time.perf_counter()
            if now >= due + period:  # the camera has moved on: this frame was never there for the reader
                self.late_frames += 1
                continue
            if now < due:
                time.sleep(due - now)
            self.frame_time = due
            yield frame

    def _frames(self, stop: threading.Event | None) -> Iterator[np.ndarray]:
        failures = 0
        while stop is None or not stop.is_set():
            ok, frame = self._capture.read() if self._capture is not None else (False, None)
            if ok and frame is not None and frame.size > 0:
                if frame.ndim == 2:
                    frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
                if frame.ndim == 3 and frame.shape[2] == 3:
                    now = time.perf_counter()
                    if self.reconnects and not self._good_since_open and self._last_frame_at is not None:
                        self.gap_s += now - self._last_frame_at
                    failures, self._last_frame_at = 0, now
                    self._attempts, self._seeks, self._good_since_open = 0, 0, True
                    yield frame
                    continue
            if ok:  # a frame came back unusable
                self._bad += 1
                failures += 1
                if failures < self.MAX_CONSECUTIVE_BAD:
                    continue
            elif self._seek_past_damage():  # a file failed before its end
                continue
            if not self._restart(stop):
                return
            failures = 0

    @property
    def frame_count(self) -> int | None:
        """Frames in a video file (None for cameras and streams, or where the container does not say)."""
        if self.spec.kind != "file" or self._capture is None:
            return None
        total = int(self._capture.get(cv2.CAP_PROP_FRAME_COUNT))
        return total if total > 0 else None

    def _seek_past_damage(self) -> bool:
        """After a file read failed before the file's end: jump 1, 2, 4 ... frames ahead of where it failed,
        counting the frames jumped; False at the end of the file (what was left counts as lost)."""
        if self.spec.kind != "file" or self._capture is None:
            return False
        total = self._capture.get(cv2.CAP_PROP_FRAME_COUNT)
        position = self._capture.get(cv2.CAP_PROP_POS_FRAMES)
        if not 0 < position < total - 1:
            return False
        while True:
            target = position + 2 ** self._seeks
            self._seeks += 1
            if target >= total:
                self._bad += int(total - position)
                return False
            skipped_before = self._capture_skipped()
            self._capture.set(cv2.CAP_PROP_POS_FRAMES, target)
            reached = self._capture.get(cv2.CAP_PROP_POS_FRAMES)
            if reached > position:  # OpenCV stays put when the seek lands in the damage itself
                self._bad += int(reached - position) - (self._capture_skipped() - skipped_before)
                return True

    def _restart(self, stop: threading.Event | None) -> bool:
        """Reopen after the stream ended or dropped; False when the source is finished."""
        if not self._stream and not (self.loop and self._good_since_open):  # a file (or non-live pipeline) ended
            return False
        self.release()
        while self._attempts < (self.max_reconnects if self._stream else 1):
            self._attempts += int(self._stream)
            if self._stream:
                delay = min(self.backoff_s * 2 ** (self._attempts - 1), 8.0)
                if stop is not None and stop.wait(delay):
                    return False
                if stop is None:
                    time.sleep(delay)
            self._capture = self._open()
            if self._capture is not None:
                self.reconnects += int(self._stream)
                self._good_since_open = False
                return True
            if not self._stream:
                return False
        return False

    def release(self) -> None:
        if self._capture is not None:
            self._skipped_by_closed += self._capture_skipped()
            self._capture.release()
            self._capture = None
