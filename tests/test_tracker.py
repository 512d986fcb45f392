"""IoU tracker: stable ids, track ends, and temporal fusion of label distributions and attribute probabilities."""

from __future__ import annotations

import numpy as np
import pytest

from edgeface.card import ModelCard
from edgeface.labels import AGE, distribution_std, expectation, gaussian_distribution
from edgeface.preprocess import PreprocessSpec
from edgeface.runtime.predictor import FaceResult
from edgeface.runtime.tracker import IoUTracker, iou_matrix

SPEC = PreprocessSpec(input_size=64)
AGE_CARD = ModelCard("tinyagenet", "age", SPEC, AGE)
ATTR_CARD = ModelCard("dmmcnn", "attributes", SPEC, attributes=["Smiling", "Male"], thresholds=[0.6, 0.4],
                      num_landmarks=5)


def face(x: float, y: float, age: float | None = None, attr: list[float] | None = None) -> FaceResult:
    result = FaceResult(box=np.array([x, y, 50, 50], np.float32), landmarks=np.zeros((5, 2), np.float32), score=0.9)
    if age is not None:
        result.probs["age"] = gaussian_distribution(age, 3.0, AGE)
        result.age = float(expectation(result.probs["age"], AGE))
    if attr is not None:
        result.attr_probs = np.asarray(attr, np.float32)
    return result


def test_iou_matrix():
    iou = iou_matrix(np.array([[0, 0, 10, 10], [100, 100, 10, 10]]), np.array([[5, 0, 10, 10], [0, 0, 10, 10]]))
    np.testing.assert_allclose(iou, [[50 / 150, 1.0], [0.0, 0.0]])


def test_ids_stay_with_moving_faces_and_new_faces_get_new_ids():
    tracker = IoUTracker([AGE_CARD])
    ids = []
    for t in range(10):  # two faces moving in opposite directions, listed in changing order
        faces = [face(10 + 8 * t, 10), face(200 - 8 * t, 120)]
        tracker.update(faces[:: 1 if t % 2 else -1])
        ids.append((faces[0].track_id, faces[1].track_id))
    assert len(set(ids)) == 1 and set(ids[0]) == {1, 2}
    newcomer = face(400, 400)
    tracker.update([newcomer])
    assert newcomer.track_id == 3


def test_tracks_end_after_max_missed_frames():
    tracker = IoUTracker([AGE_CARD], max_missed=2)
    tracker.update([face(10, 10)])
    for _ in range(2):
        tracker.update([])
    back = face(10, 10)
    tracker.update([back])
    assert back.track_id == 1  # two missed frames are tolerated
    for _ in range(3):
        tracker.update([])
    again = face(10, 10)
    tracker.update([again])
    assert again.track_id == 2 and len(tracker.tracks) == 1


def test_age_is_the_expectation_of_the_averaged_distributions_over_the_window():
    tracker = IoUTracker([AGE_CARD], window=4)
    ages = [30, 40, 30, 40, 50, 50]
    seen = []
    for t, age in enumerate(ages):
        f = face(10 + t, 10, age=age)
        tracker.update([f])
        seen.append(f)
    window = [gaussian_distribution(a, 3.0, AGE) for a in ages[-4:]]
    fused = np.mean(window, axis=0)
    last = seen[-1]
    assert last.fused_frames == 4
    assert last.age == pytest.approx(float(expectation(fused, AGE)), abs=1e-4)  # 42.5
    assert last.age_std == pytest.approx(float(distribution_std(fused, AGE)), abs=1e-4)
    assert last.age_std > 3.0  # disagreement across frames widens the fused distribution
    assert seen[1].age == pytest.approx(35.0, abs=1e-3)


def test_attributes_are_averaged_and_rethresholded_with_the_card():
    tracker = IoUTracker([ATTR_CARD], window=3)
    for t, probs in enumerate([[0.9, 0.1], [0.5, 0.3], [0.5, 0.5]]):
        f = face(10 + t, 10, attr=probs)
        tracker.update([f])
    assert f.attributes == pytest.approx({"Smiling": 19 / 30, "Male": 0.3})
    assert f.decisions == {"Smiling": True, "Male": False}  # thresholds 0.6 and 0.4


def test_window_must_be_positive():
    with pytest.raises(ValueError):
        IoUTracker([AGE_CARD], window=0)
