"""Inference per track: the schedule (new tracks first, budget, refresh interval, early refresh), staleness, and
the detector's downscaled pass mapped back to frame pixels."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edgeface.card import ModelCard
from edgeface.detector import FaceDetector, detection_scale
from edgeface.labels import AGE, gaussian_distribution
from edgeface.preprocess import PreprocessSpec
from edgeface.runtime.predictor import FaceResult
from edgeface.runtime.scheduler import FaceView, InferenceScheduler, Schedule, TrackedInference, changed
from edgeface.runtime.threads import thread_budget
from edgeface.runtime.tracker import IoUTracker, Track

AGE_CARD = ModelCard("tinyagenet", "age", PreprocessSpec(input_size=64), AGE)
FRAME = np.full((240, 320, 3), 90, np.uint8)


def face(x: float, side: float = 40.0) -> FaceResult:
    eyes_y, cx = 0.4 * side, x + side / 2
    landmarks = np.array([[cx - 0.2 * side, eyes_y], [cx + 0.2 * side, eyes_y], [cx, 0.6 * side],
                          [cx - 0.15 * side, 0.8 * side], [cx + 0.15 * side, 0.8 * side]], np.float32)
    return FaceResult(box=np.array([x, 0, side, side], np.float32), landmarks=landmarks, score=0.9)


def track(track_id: int, inferred_frame: int | None) -> Track:
    return Track(track_id, np.zeros(4, np.float32), inferred_frame=inferred_frame)


class FakePredictor:
    """Records which faces it was asked to infer; the age it predicts is the face's x position."""

    def __init__(self) -> None:
        self.calls: list[list[float]] = []

    def fill(self, frame: np.ndarray, results: list[FaceResult]) -> list[FaceResult]:
        self.calls.append([float(r.box[0]) for r in results])
        for r in results:
            r.probs["age"] = gaussian_distribution(float(r.box[0]) / 4, 3.0, AGE)
        return results


def test_new_tracks_first_then_the_most_stale_within_the_budget():
    scheduler = InferenceScheduler(Schedule(refresh_every=5, budget=2))
    tracks = [track(1, 0), track(2, None), track(3, 4), track(4, 1)]
    faces = [face(0), face(50), face(100), face(150)]
    assert scheduler.select(8, tracks, faces) == [0, 1]  # new track 2, then track 1 (8 frames old) over 4 (7)
    assert scheduler.select(8, tracks[2:], faces[2:]) == [1]  # track 3 (4 frames old) is not due yet
    assert InferenceScheduler(Schedule(refresh_every=5)).select(8, tracks, faces) == [0, 1, 3]  # no cap


def test_every_track_is_refreshed_on_its_interval_and_reports_its_staleness():
    predictor, tracker = FakePredictor(), IoUTracker([AGE_CARD])
    inference = TrackedInference(predictor, tracker, Schedule(refresh_every=10))
    stale = []
    for index in range(25):
        faces = [face(20), face(120), face(220)] if index < 12 else [face(20), face(120), face(220), face(270, 30)]
        results = inference(FRAME, faces)
        stale.append([r.stale_frames for r in results])
        assert [r.age for r in results[:3]] == pytest.approx([5, 30, 55], abs=0.5)  # carried, not lost
        assert all(r.to_dict()["stale_frames"] == s for r, s in zip(results, stale[-1], strict=True))
    assert [len(c) for c in predictor.calls] == [3, 3, 1, 3, 1]  # frames 0, 10, 12 (new face), 20, 22
    assert stale[9] == [9, 9, 9] and stale[10] == [0, 0, 0] and stale[12] == [2, 2, 2, 0]
    assert max(max(s) for s in stale) == 9  # never more than refresh_every - 1 frames old
    assert inference.inferred == 11


def test_per_frame_inference_infers_every_face_every_frame():
    predictor = FakePredictor()
    inference = TrackedInference(predictor, IoUTracker([AGE_CARD]), schedule=None)
    for _ in range(3):
        assert all(r.stale_frames == 0 for r in inference(FRAME, [face(20), face(120)]))
    assert [len(c) for c in predictor.calls] == [2, 2, 2]


def test_a_face_that_grew_turned_or_sharpened_is_refreshed_early():
    s = Schedule()
    before = FaceView(side=40, yaw=0.0, sharpness=100.0)
    assert not changed(before, FaceView(41, 0.05, 110.0), s)
    assert changed(before, FaceView(52, 0.0, 100.0), s)
    assert changed(before, FaceView(40, 0.3, 100.0), s)
    assert changed(before, FaceView(40, 0.0, 160.0), s)
    predictor = FakePredictor()
    inference = TrackedInference(predictor, IoUTracker([AGE_CARD]), Schedule(refresh_every=10, min_gap=3))
    for index in range(6):
        inference(FRAME, [face(20, 40 if index < 4 else 60)])  # the face grows on frame 4
    assert [len(c) for c in predictor.calls] == [1, 1]  # frame 0 (new) and frame 4 (grew), not frames 1-3


def test_schedule_rejects_bad_settings():
    with pytest.raises(ValueError, match="refresh"):
        Schedule(refresh_every=0)
    with pytest.raises(ValueError, match="budget"):
        Schedule(budget=0)


def test_detection_scale_follows_the_smallest_wanted_face():
    assert detection_scale(24) == 0.5 and detection_scale(12) == 1.0 and detection_scale(6) == 1.0
    with pytest.raises(ValueError):
        detection_scale(0)


def centre(box: np.ndarray) -> np.ndarray:
    return box[:2] + box[2:] / 2


def test_downscaled_detection_maps_boxes_and_landmarks_back_to_frame_pixels(yunet_path, utkface_dir):
    from runtime_helpers import face_chips

    frame = np.full((240, 320, 3), 120, np.uint8)
    frame[60:160, 110:210] = cv2.resize(face_chips(utkface_dir, 1)[0], (100, 100), interpolation=cv2.INTER_AREA)
    full = FaceDetector(yunet_path, min_face=24, downscale=False).detect(frame)
    half = FaceDetector(yunet_path, min_face=24).detect(frame)  # YuNet sees 160x120
    assert len(full) == len(half) == 1
    # the known face at the same place: YuNet's own estimate on a 4x smaller image moves by a few % of the face
    # side (100 px here); the mapping itself is checked exactly below
    assert np.abs(centre(half[0].box) - centre(full[0].box)).max() <= 4
    assert np.abs(centre(half[0].box) - (160, 110)).max() <= 8  # the pasted face's centre
    assert np.abs(half[0].landmarks - full[0].landmarks).max() <= 5
    # a frame twice the size detected at a quarter is the same 160x120 image (up to the resize's rounding), so
    # boxes and landmarks come back at exactly twice the coordinates
    double = cv2.resize(frame, (640, 480), interpolation=cv2.INTER_NEAREST)
    quarter = FaceDetector(yunet_path, min_face=48).detect(double)
    assert len(quarter) == 1
    np.testing.assert_allclose(quarter[0].box, 2 * half[0].box, atol=0.25)
    np.testing.assert_allclose(quarter[0].landmarks, 2 * half[0].landmarks, atol=0.25)


def test_the_thread_budget_caps_no_pool_on_a_small_cpu_and_threads_override_the_runners():
    small = thread_budget(cores=2)
    assert (small.decode, small.detect, small.infer) == (None, 2, 2)
    assert thread_budget(threads=1, cores=2).infer == 1
    big = thread_budget(cores=16)
    assert (big.decode, big.detect, big.infer) == (4, 8, 16)
    assert thread_budget().cores >= 1
    with pytest.raises(ValueError, match="threads"):
        thread_budget(threads=0)
