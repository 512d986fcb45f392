"""The video pipeline: threaded decode / detect / infer + track between a source
(:mod:`edgeface.runtime.sources`) and the caller's sinks (:mod:`edgeface.runtime.sinks`), with run statistics.

Stages run in their own threads joined by bounded queues, so decoding frame t+2, detecting faces in t+1
and running the models on t overlap; a slow stage applies back-pressure instead of growing memory. A live
source never waits on that back-pressure: the oldest waiting frame is dropped (and counted) instead, so latency
stays bounded by the queue sizes. With a tracker, the models run per track, not per frame
(:mod:`edgeface.runtime.scheduler`).
"""

from __future__ import annotations

import contextlib
import queue
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import cv2
import numpy as np

from edgeface.detector import Detections, Face
from edgeface.runtime.predictor import FaceResult, Predictor, face_results
from edgeface.runtime.scheduler import Schedule, TrackedInference
from edgeface.runtime.sources import VideoSource
from edgeface.runtime.tracker import IoUTracker

STAGES = ("decode", "detect", "infer", "write")
DEFAULT_SCHEDULE = Schedule()  # every track refreshed at least every 10 frames
_END = object()  # end-of-stream marker passed down the queues
READER_WAIT_S = 0.2  # how long a stopped run waits for the reader to finish its read before leaving it behind


class FaceFollower:
    """Moves the last detected faces to the current frame with Lucas-Kanade optical flow on their 5 landmarks,
    so detection can run every N frames while alignment still follows the faces in between."""

    def __init__(self) -> None:
        self._gray: np.ndarray | None = None
        self._faces: list[Face] = []

    def reset(self, frame: np.ndarray, faces: list[Face]) -> None:
        self._gray, self._faces = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY), faces

    def follow(self, frame: np.ndarray) -> list[Face]:
        gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        if self._gray is None or not self._faces or self._gray.shape != gray.shape:
            self._gray, self._faces = gray, []
            return []
        points = np.concatenate([f.landmarks for f in self._faces]).astype(np.float32).reshape(-1, 1, 2)
        moved, status, _ = cv2.calcOpticalFlowPyrLK(self._gray, gray, points, None, winSize=(21, 21), maxLevel=3)
        moved, status = moved.reshape(-1, 5, 2), status.reshape(-1, 5).astype(bool)
        followed = []
        for face, new_points, ok in zip(self._faces, moved, status, strict=True):
            if ok.sum() < 4:  # the face was lost (occluded, left the frame)
                continue
            shift = np.median(new_points[ok] - face.landmarks[ok], axis=0)
            landmarks = np.where(ok[:, None], new_points, face.landmarks + shift).astype(np.float32)
            box = face.box.copy()
            box[:2] += shift
            followed.append(Face(box=box, landmarks=landmarks, score=face.score))
        self._gray, self._faces = gray, followed
        return followed


class FrameAnalysis:
    """The runtime's work on one frame, in the two steps the pipeline runs in separate threads: :meth:`detect`
    (the detector every ``detect_every`` frames, optical-flow following in between) and :meth:`infer` (the models,
    per track through the scheduler when there is a ``tracker``, else every face untracked). The threaded
    :class:`VideoPipeline` and the GStreamer element (``edgeface/gst``) both run it, frame after frame in order."""

    def __init__(self, predictor: Predictor, tracker: IoUTracker | None = None, detect_every: int = 1,
                 schedule: Schedule | None = DEFAULT_SCHEDULE):
        if detect_every < 1:
            raise ValueError("detect_every must be at least 1")
        self.predictor, self.tracker, self.detect_every = predictor, tracker, detect_every
        self.inference = TrackedInference(predictor, tracker, schedule) if tracker is not None else None
        self._follower = FaceFollower() if detect_every > 1 else None
        self.inferred_faces = 0  # faces the models ran on so far

    def detect(self, index: int, frame: np.ndarray) -> list[Face]:
        """The faces of frame ``index`` (BGR): detected (:class:`~edgeface.detector.Detections`, with the
        low-score ones for the tracker), or followed from the latest detection."""
        if self._follower is None or index % self.detect_every == 0:
            faces = self.predictor.detect(frame)
            if self._follower is not None:
                self._follower.reset(frame, faces)
            return faces
        return self._follower.follow(frame)

    def infer(self, frame: np.ndarray, faces: list[Face]) -> list[FaceResult]:
        """The frame's faces with their (fused) values and track ids."""
        if self.inference is None:
            results = self.predictor.infer(frame, faces)
            self.inferred_faces += len(results)
            return results
        before = self.inference.inferred
        low = face_results(faces.low) if isinstance(faces, Detections) else []
        results = self.inference(frame, face_results(faces), low)
        self.inferred_faces += self.inference.inferred - before
        return results


@dataclass
class RunStats:
    """Counts and per-stage latencies (seconds per frame) of one pipeline run."""

    frames: int = 0
    faces: int = 0
    inferred_faces: int = 0  # faces the models ran on (fewer than faces when inference is scheduled per track)
    bad_frames: int = 0
    dropped_frames: int = 0  # live sources only: frames dropped because the pipeline was behind
    reconnects: int = 0
    gap_s: float = 0.0  # live streams: seconds without frames while a dropped stream was reopened
    wall_s: float = 0.0
    interrupted: bool = False
    stage_s: dict[str, list[float]] = field(default_factory=lambda: {s: [] for s in STAGES})
    latency_s: list[float] = field(default_factory=list)

    @property
    def fps(self) -> float:
        return self.frames / self.wall_s if self.wall_s > 0 else 0.0

    def summary(self) -> dict:
        def ms(values: list[float]) -> dict:
            if not values:
                return {"mean_ms": None, "p50_ms": None, "p95_ms": None}
            a = np.asarray(values) * 1000
            return {"mean_ms": round(float(a.mean()), 2), "p50_ms": round(float(np.percentile(a, 50)), 2),
                    "p95_ms": round(float(np.percentile(a, 95)), 2)}

        return {"frames": self.frames, "faces": self.faces, "inferred_faces": self.inferred_faces,
                "bad_frames": self.bad_frames,
                "dropped_frames": self.dropped_frames, "reconnects": self.reconnects,
                "gap_s": round(self.gap_s, 3),
                "wall_s": round(self.wall_s, 3), "fps": round(self.fps, 2),
                "interrupted": self.interrupted, "stages": {s: ms(v) for s, v in self.stage_s.items()},
                "latency": ms(self.latency_s)}

    def report(self) -> str:
        s = self.summary()
        lines = [f"{s['frames']} frames, {s['faces']} faces ({s['inferred_faces']} inferred), "
                 f"{s['bad_frames']} bad frames skipped, "
                 f"{s['dropped_frames']} dropped (behind a live source), {s['reconnects']} reconnects "
                 + (f"({s['gap_s']:.1f} s without frames) " if s["reconnects"] else "")
                 + f"in {s['wall_s']:.1f} s: {s['fps']:.1f} FPS"
                 + (" (interrupted)" if s["interrupted"] else "")]
        for name, v in [*s["stages"].items(), ("end-to-end", s["latency"])]:
            if v["mean_ms"] is not None:
                lines.append(f"  {name:<10} mean {v['mean_ms']:7.2f} ms  p50 {v['p50_ms']:7.2f}  "
                             f"p95 {v['p95_ms']:7.2f}")
        return "\n".join(lines)


@dataclass
class _Item:
    index: int
    frame: np.ndarray
    t0: float
    faces: list[Face] = field(default_factory=list)
    results: list[FaceResult] = field(default_factory=list)


@contextlib.contextmanager
def stop_on_sigint(stop: threading.Event, stats: RunStats) -> Iterator[None]:
    """First Ctrl-C: stop reading and let the frames in flight finish (outputs stay valid); second: raise."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame) -> None:
        stats.interrupted = True
        stop.set()
        signal.signal(signal.SIGINT, signal.default_int_handler)

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


class VideoPipeline:
    """decode -> detect (every N frames, optical-flow following in between) -> infer + track -> sinks.

    ``on_frame(index, frame, results)`` runs in the calling thread for each frame in order (writers,
    windows); returning False stops the run. With a ``tracker``, ``schedule`` says when each track is inferred
    (None: every face on every frame); without one every face is inferred on every frame, untracked.
    """

    def __init__(self, source: VideoSource, predictor: Predictor, tracker: IoUTracker | None = None,
                 detect_every: int = 1, max_frames: int | None = None, queue_size: int = 2,
                 schedule: Schedule | None = DEFAULT_SCHEDULE):
        self.source, self.predictor, self.tracker = source, predictor, tracker
        self.analysis = FrameAnalysis(predictor, tracker, detect_every, schedule)
        self.max_frames, self.queue_size = max_frames, queue_size
        self.stop = threading.Event()  # stop reading; frames in flight still finish
        self._abort = threading.Event()  # a stage failed: everyone leaves now
        self._errors: list[BaseException] = []

    def _put(self, q: queue.Queue, item: object) -> bool:
        while not self._abort.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _get(self, q: queue.Queue, until_stop: bool = False) -> object:
        """The next item; _END when the run aborts or, with ``until_stop``, once stopped and nothing is waiting."""
        while not self._abort.is_set():
            try:
                return q.get(timeout=0.1)
            except queue.Empty:
                if until_stop and self.stop.is_set():
                    return _END
        return _END

    def _stage(self, work: Callable[[queue.Queue], None], out: queue.Queue) -> Callable[[], None]:
        def run() -> None:
            try:
                work(out)
            except BaseException as e:  # surfaced in the calling thread by run()
                self._errors.append(e)
                self._abort.set()
            finally:
                self._put(out, _END)
        return run

    def _decode(self, out: queue.Queue, stats: RunStats) -> None:
        try:
            self._read(out, stats)
        finally:  # here, not in run(): a read blocked on a stalled stream may outlive a stopped run
            self.source.release()

    def _read(self, out: queue.Queue, stats: RunStats) -> None:
        frames = self.source.frames(self.stop)
        index = 0
        while self.max_frames is None or index < self.max_frames:
            t0 = time.perf_counter()
            frame = next(frames, None)
            if frame is None:
                break
            stats.stage_s["decode"].append(time.perf_counter() - t0)
            item = _Item(index, frame, self.source.frame_time or t0)  # a paced replay's frame is due at its tick
            index += 1
            if self.source.live:  # real time: drop the oldest waiting frame rather than fall behind
                while True:
                    try:
                        out.put_nowait(item)
                        break
                    except queue.Full:
                        with contextlib.suppress(queue.Empty):
                            out.get_nowait()
                            stats.dropped_frames += 1
            elif not self._put(out, item):
                break

    def _detect(self, inbox: queue.Queue, out: queue.Queue, stats: RunStats) -> None:
        while (item := self._get(inbox, until_stop=True)) is not _END:  # a stop does not wait for the reader
            t = time.perf_counter()
            item.faces = self.analysis.detect(item.index, item.frame)
            stats.stage_s["detect"].append(time.perf_counter() - t)
            if not self._put(out, item):
                return

    def _infer(self, inbox: queue.Queue, out: queue.Queue, stats: RunStats) -> None:
        while (item := self._get(inbox)) is not _END:
            t = time.perf_counter()
            before = self.analysis.inferred_faces
            item.results = self.analysis.infer(item.frame, item.faces)
            stats.inferred_faces += self.analysis.inferred_faces - before
            stats.stage_s["infer"].append(time.perf_counter() - t)
            if not self._put(out, item):
                return

    def run(self, on_frame: Callable[[int, np.ndarray, list[FaceResult]], bool | None],
            handle_sigint: bool = True) -> RunStats:
        """Run to the end of the source (or ``max_frames``, a stop, Ctrl-C); re-raises a failed stage's error."""
        stats = RunStats()
        q_frames, q_faces, q_done = (queue.Queue(self.queue_size) for _ in range(3))
        threads = [
            threading.Thread(target=self._stage(lambda o: self._decode(o, stats), q_frames), name="decode"),
            threading.Thread(target=self._stage(lambda o: self._detect(q_frames, o, stats), q_faces), name="detect"),
            threading.Thread(target=self._stage(lambda o: self._infer(q_faces, o, stats), q_done), name="infer"),
        ]
        start = time.perf_counter()
        guard = stop_on_sigint(self.stop, stats) if handle_sigint else contextlib.nullcontext()
        try:
            with guard:
                for thread in threads:
                    thread.daemon = True
                    thread.start()
                while (item := self._get(q_done)) is not _END:
                    t = time.perf_counter()
                    keep_going = on_frame(item.index, item.frame, item.results)
                    now = time.perf_counter()
                    stats.stage_s["write"].append(now - t)
                    stats.latency_s.append(now - item.t0)
                    stats.frames += 1
                    stats.faces += len(item.results)
                    if keep_going is False:
                        self.stop.set()
        except BaseException:
            self._abort.set()
            raise
        finally:
            self.stop.set()
            self._abort.set()  # the later stages are done; a reader waiting to hand over a frame leaves
            for thread in threads[1:]:
                thread.join(timeout=10)
            # a reader blocked on a stalled stream is not waited for (Ctrl-C stays immediate): it releases the
            # source itself when the stream's read timeout returns
            threads[0].join(timeout=READER_WAIT_S)
            stats.wall_s = time.perf_counter() - start
            stats.bad_frames, stats.reconnects = self.source.bad_frames, self.source.reconnects
            stats.gap_s = self.source.gap_s
            stats.dropped_frames += self.source.late_frames
        if self._errors:
            raise self._errors[0]
        return stats
