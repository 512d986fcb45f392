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


def test_a_track_follows_its_face_along_its_path_through_an_occlusion():
    """Constant velocity: a face moving 12 px per frame is hidden for 6 frames and comes back on its path, 84 px
    from where it was last seen (no overlap with that box); a stranger stands where it was last seen."""
    tracker = IoUTracker([AGE_CARD])
    for t in range(8):
        tracker.update([face(10 + 12 * t, 100)])
    last_seen = face(10 + 12 * 7, 100)
    for _ in range(6):
        tracker.update([])
    back, stranger = face(10 + 12 * 14, 100), face(10 + 12 * 7, 100)
    assert iou_matrix(back.box, last_seen.box).max() == 0.0
    tracker.update([stranger, back])
    assert back.track_id == 1 and stranger.track_id == 2


def test_low_score_detections_keep_a_track_alive_and_never_start_one():
    tracker = IoUTracker([AGE_CARD], max_missed=2)
    tracker.update([face(10, 10)])
    for t in range(1, 6):  # only low-score detections of the face for longer than max_missed
        assert tracker.assign([], low=[face(10 + 3 * t, 10)]) == []
        assert [(tr.track_id, tr.missed) for tr in tracker.tracks] == [(1, 0)]
    back = face(28, 10)
    tracker.update([back])
    assert back.track_id == 1
    np.testing.assert_allclose(tracker.tracks[0].velocity, [3, 0], atol=1.5)  # the low detections moved it

    fresh = IoUTracker([AGE_CARD])
    fresh.assign([], low=[face(10, 10), face(200, 10)])
    assert fresh.tracks == []  # a low-score detection starts nothing
    owner = face(10, 10)
    fresh.update([owner], low=[face(12, 10), face(200, 10)])  # the face's track is taken; the far one is nobody's
    assert owner.track_id == 1 and len(fresh.tracks) == 1

    unaided = IoUTracker([AGE_CARD], max_missed=2)  # the same face without its low-score detections: lost
    unaided.update([face(10, 10)])
    for _ in range(5):
        unaided.update([])
    again = face(28, 10)
    unaided.update([again])
    assert again.track_id == 2


def test_frame_analysis_gives_the_tracker_the_low_score_faces_and_reports_only_the_others():
    """The runtime's path: a face whose score dips under the threshold for a while (only in Detections.low) is
    neither reported nor inferred then, and keeps its track id when it is back above the threshold."""
    from edgeface.detector import Detections, Face
    from edgeface.runtime.video import FrameAnalysis

    def detected(x: float, score: float) -> Face:
        return Face(box=np.array([x, 10, 50, 50], np.float32), landmarks=np.zeros((5, 2), np.float32), score=score)

    class Frames:
        """A face moving 4 px per frame, scored 0.45 on frames 2-15; the faces it was asked to infer."""

        def __init__(self) -> None:
            self.index, self.inferred = -1, []

        def detect(self, frame: np.ndarray) -> Detections:
            self.index += 1
            found = detected(10 + 4 * self.index, 0.45 if 2 <= self.index < 16 else 0.9)
            return Detections([], [found]) if found.score < 0.6 else Detections([found])

        def fill(self, frame: np.ndarray, results: list[FaceResult]) -> list[FaceResult]:
            self.inferred += [r.score for r in results]
            for r in results:
                r.probs["age"] = gaussian_distribution(30.0, 3.0, AGE)
            return results

    predictor = Frames()
    analysis = FrameAnalysis(predictor, IoUTracker([AGE_CARD], max_missed=5), schedule=None)
    frame = np.zeros((120, 200, 3), np.uint8)
    reported = [analysis.infer(frame, analysis.detect(index, frame)) for index in range(18)]
    assert [len(r) for r in reported] == [1, 1] + [0] * 14 + [1, 1]
    assert {r.track_id for results in reported for r in results} == {1}  # 14 frames under the threshold > max_missed
    assert predictor.inferred == [0.9] * 4


def test_detector_keeps_low_score_faces_apart_and_the_same_faces_at_the_threshold(utkface_dir, yunet_path):
    """A real face with a bar over its middle: past some width YuNet scores it under 0.6; with low_score=0.3 those
    faces come apart in .low, and the faces at the threshold are exactly the plain detector's."""
    import cv2

    from edgeface.detector import FaceDetector
    from edgeface.faces import image_files

    with_low = FaceDetector(yunet_path, min_face=24, low_score=0.3)
    plain = FaceDetector(yunet_path, min_face=24)
    low_scores = []
    for path in image_files(utkface_dir)[:2]:
        chip = cv2.resize(cv2.imread(str(path)), (96, 96), interpolation=cv2.INTER_AREA)
        for bar in range(0, 31, 6):
            frame = np.full((160, 200, 3), 100, np.uint8)
            frame[32:128, 52:148] = chip
            frame[:, 100 - bar // 2:100 + (bar + 1) // 2] = 90
            found, reference = with_low.detect(frame), plain.detect(frame)
            assert [(f.score, f.box.tolist()) for f in found] == [(f.score, f.box.tolist()) for f in reference]
            assert reference.low == [] and all(f.score >= 0.6 for f in found)
            low_scores += [f.score for f in found.low]
    assert low_scores and all(0.3 <= s < 0.6 for s in low_scores)
