"""Tracker comparison: the CLEAR-MOT counts on a constructed case, and the crossing-faces clip's ground truth."""

from __future__ import annotations

import numpy as np
import pytest

from edgeface.bench.synthetic_video import GroundTruth, crossing_faces_frames
from edgeface.bench.tracker_comparison import edgeface_step, score_tracking

A, B, FAR = (0, 0, 10, 10), (100, 0, 10, 10), (300, 300, 10, 10)


def test_counts_on_a_constructed_case():
    hidden_frame = 3
    truth = [[GroundTruth(0, A, 1.0), GroundTruth(1, B, 0.2 if t == hidden_frame else 1.0)] for t in range(6)]
    box = {"A": np.array(A, float), "B": np.array(B, float), "FAR": np.array(FAR, float)}
    tracked = [
        [(1, box["A"]), (2, box["B"])],
        [(1, box["A"]), (2, box["B"] + 1)],  # IoU 0.68: still a match
        [(1, box["A"])],  # person 1 missed: their tracking is interrupted
        [(1, box["A"]), (2, box["B"])],  # person 1 hidden: the box on them is neither hit nor false positive
        [(3, box["A"]), (2, box["B"])],  # person 0 changes track: an ID switch; person 1 resumes: a fragmentation
        [(3, box["A"]), (2, box["B"]), (9, box["FAR"])],  # a box on nobody: a false positive
    ]
    score = score_tracking(truth, tracked)
    assert (score.faces, score.matches, score.misses) == (11, 10, 1)
    assert (score.id_switches, score.fragmentations, score.false_positives) == (1, 1, 1)
    assert score.mota == pytest.approx(1 - 3 / 11)
    assert score.ids_per_person == {0: [1, 3], 1: [2]}
    assert score.summary()["track_ids_per_person"] == 1.5


def test_last_frames_pair_is_kept_while_it_still_matches():
    """Two tracks on one face: the one that had it keeps it (no switch), the other is a false positive."""
    truth = [[GroundTruth(0, A, 1.0)]] * 2
    tracked = [[(1, np.array(A, float))], [(2, np.array(A, float)), (1, np.array(A, float) + 1)]]
    score = score_tracking(truth, tracked)
    assert (score.id_switches, score.false_positives, score.matches) == (0, 1, 2)


def test_crossing_clip_truth_and_the_runtime_tracker_on_it():
    chips = [np.full((40, 40, 3), 60 * (i + 1), np.uint8) for i in range(3)]
    frames, truth = crossing_faces_frames(chips, 40, size=(200, 150), face_size=40, bar=(90, 20))
    assert len(frames) == len(truth) == 40 and frames[0].shape == (150, 200, 3)
    for people in truth:
        assert [g.identity for g in people] == [0, 1, 2]
        for g in people:
            x, y, w, h = g.box
            assert 0 <= x <= 160 and 0 <= y <= 110 and (w, h) == (40, 40) and 0.0 <= g.visible <= 1.0
    assert min(g.visible for people in truth for g in people) < 0.6  # the bar and the crossings hide faces
    top = truth[0][2]  # drawn last: only the bar can hide it
    x, y, w, h = top.box
    assert (frames[0][y + h // 2, x + w // 2] == 180).all() or top.visible < 1.0
    step = edgeface_step(0.6)  # perfect detections: the runtime's tracker follows every face
    tracked = [step(np.array([g.box for g in people], float), np.ones(len(people))) for people in truth]
    score = score_tracking(truth, tracked, visible=0.0)
    assert score.misses == 0 and score.false_positives == 0
