"""Geometric augmentation moves the landmark targets exactly as it moves the pixels."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edgeface.data.augment import MIRRORED_LANDMARKS, AugmentConfig, augment_crop, transform_landmarks
from edgeface.data.datasets import FaceSet
from edgeface.preprocess import CANONICAL_LANDMARKS, PreprocessSpec
from edgeface.train.trainer import FaceDataset

S = 64
POINTS = np.asarray(CANONICAL_LANDMARKS, np.float64)  # (5, 2) in [0, 1] crop coordinates
TOL = 0.25 / S  # a quarter pixel: well within a pixel, and tight enough to catch an off-by-one pixel frame
GEOMETRY_ONLY = {"gray": 0.0, "brightness": 0.0, "contrast": 0.0, "saturation": 0.0}


def _dot(point: np.ndarray) -> np.ndarray:
    """An S x S x 3 crop with one soft dot centred on ``point`` ([0, 1] crop coordinates)."""
    y, x = np.mgrid[0:S, 0:S]
    px, py = point * S
    blob = 255 * np.exp(-((x - px) ** 2 + (y - py) ** 2) / (2 * 1.5**2))
    return np.repeat(blob[..., None], 3, axis=2).astype(np.uint8)


def _centre(image: np.ndarray) -> np.ndarray:
    """Intensity-weighted centre of a dot image, in [0, 1] crop coordinates."""
    w = image[..., 0].astype(np.float64)
    y, x = np.mgrid[0:S, 0:S]
    return np.array([(w * x).sum(), (w * y).sum()]) / w.sum() / S


def test_flip_mirrors_the_points_and_swaps_left_and_right():
    flip = np.array([[-1.0, 0.0, S - 1.0], [0.0, 1.0, 0.0]])  # what out[:, ::-1] does to pixel positions
    moved = transform_landmarks(POINTS.reshape(10), flip, S).reshape(5, 2)
    mirrored = np.column_stack([(S - 1) / S - POINTS[:, 0], POINTS[:, 1]])
    np.testing.assert_allclose(moved, mirrored[list(MIRRORED_LANDMARKS)], atol=1e-6)
    assert moved[0, 0] < moved[1, 0] and moved[3, 0] < moved[4, 0]  # index 0 / 3 stay the image-left points
    np.testing.assert_allclose(moved[2], mirrored[2], atol=1e-6)  # the nose only mirrors
    for k in range(5):  # and the mirrored pixels agree
        np.testing.assert_allclose(_centre(_dot(POINTS[k])[:, ::-1]), mirrored[k], atol=TOL)


def test_rotation_moves_the_points_where_the_pixels_go():
    matrix = cv2.getRotationMatrix2D((S / 2, S / 2), 25, 1.1)
    matrix[:, 2] += [3.0, -2.0]
    moved = transform_landmarks(POINTS.reshape(10), matrix, S).reshape(5, 2)
    for k in range(5):
        warped = cv2.warpAffine(_dot(POINTS[k]), matrix, (S, S), flags=cv2.INTER_LINEAR)
        np.testing.assert_allclose(_centre(warped), moved[k], atol=TOL)
    assert not np.allclose(moved, POINTS, atol=2 / S)


@pytest.mark.parametrize("flip", [0.0, 1.0])
def test_augment_crop_keeps_image_and_landmarks_together(flip):
    cfg = AugmentConfig(flip=flip, rotation=20.0, scale=(0.9, 1.1), shift=0.06, **GEOMETRY_ONLY)
    for seed in range(4):
        results = [augment_crop(_dot(POINTS[k]), np.random.default_rng(seed), cfg) for k in range(5)]
        matrix = results[0][1]
        assert all(np.array_equal(m, matrix) for _, m in results)  # the geometry does not depend on the pixels
        moved = transform_landmarks(POINTS.reshape(10), matrix, S).reshape(5, 2)
        order = MIRRORED_LANDMARKS if flip else range(5)  # dot k now plays the part of point order[k]
        for k, (image, _) in enumerate(results):
            np.testing.assert_allclose(_centre(image), moved[order[k]], atol=TOL)


def test_training_set_moves_landmark_targets_and_leaves_other_targets_alone():
    crops = np.stack([_dot(POINTS[0]), _dot(POINTS[1])])
    targets = {"landmarks": np.tile(POINTS.reshape(10), (2, 1)).astype(np.float32),
               "attributes": np.array([[1.0, 0.0], [0.0, 1.0]], np.float32)}
    faces = FaceSet("dots", crops, targets, ["a", "b"], np.zeros((2, 2, 3), np.float32))
    cfg = AugmentConfig(flip=1.0, rotation=0.0, scale=(1.0, 1.0), shift=0.0, **GEOMETRY_ONLY)
    _, got = FaceDataset(faces, PreprocessSpec(input_size=S), cfg, seed=0)[1]
    mirrored = np.column_stack([(S - 1) / S - POINTS[:, 0], POINTS[:, 1]])[list(MIRRORED_LANDMARKS)]
    np.testing.assert_allclose(got["landmarks"].reshape(5, 2), mirrored, atol=1e-6)
    np.testing.assert_array_equal(got["attributes"], targets["attributes"][1])
    np.testing.assert_array_equal(faces.targets["landmarks"][1], POINTS.reshape(10).astype(np.float32))  # untouched
