"""The built-in SYNTHETIC data set: face-like pictures generated on the fly whose label is visible in the pixels.

It lets ``edgeface train`` / ``pipeline`` run end to end with no data at hand. It is not face data: every
card, log and report of a model trained on it says SYNTHETIC. The label (age 1..80 years, or a score over
the attractiveness scale) sets the grey of the hair, the number of forehead lines and the face's
width, with random skin tone, background, position and noise, so a network can learn it from pixels.
"""

from __future__ import annotations

import cv2
import numpy as np

from edgeface.data.datasets import FaceSet
from edgeface.labels import LabelSpace
from edgeface.preprocess import PreprocessSpec, align_face

SYNTHETIC_NAME = "SYNTHETIC (generated face-like pictures, not real faces)"
CANVAS = 128


def _draw(level: float, rng: np.random.Generator) -> np.ndarray:
    """A BGR picture for a label level in [0, 1]."""
    img = np.empty((CANVAS, CANVAS, 3), np.uint8)
    img[:] = rng.integers(40, 200, size=3)
    cx, cy = CANVAS // 2 + rng.integers(-4, 5), CANVAS // 2 + rng.integers(-4, 5)
    skin = np.array([150, 180, 220]) * rng.uniform(0.6, 1.0)
    hair = np.full(3, 30 + 200 * level)  # dark -> grey with the label
    cv2.ellipse(img, (int(cx), int(cy - 18)), (40, 30), 0, 180, 360, hair.tolist(), -1)
    width = int(28 + 10 * level)
    cv2.ellipse(img, (int(cx), int(cy + 4)), (width, 42), 0, 0, 360, skin.tolist(), -1)
    for dx in (-14, 14):
        cv2.circle(img, (int(cx + dx), int(cy - 4)), 4, (40, 40, 40), -1)
    cv2.line(img, (int(cx - 10), int(cy + 22)), (int(cx + 10), int(cy + 22)), (60, 60, 150), 2)
    for k in range(int(round(level * 6))):  # forehead lines
        y = int(cy - 22 + 3 * k)
        cv2.line(img, (int(cx - 16), y), (int(cx + 16), y), (skin * 0.6).tolist(), 1)
    noise = rng.normal(0, 6, img.shape)
    return np.clip(img + noise, 0, 255).astype(np.uint8)


def synthetic_faces(n: int, spec: PreprocessSpec, label_space: LabelSpace, seed: int = 0) -> FaceSet:
    """``n`` generated crops (through the same preprocessing as real chips) with labels over the space
    (age: 1..80)."""
    rng = np.random.default_rng(seed)
    low = max(label_space.start, 1.0) if label_space.unit == "years" else label_space.start
    high = min(label_space.stop, 80.0) if label_space.unit == "years" else label_space.stop
    labels = rng.uniform(low, high, size=n).astype(np.float32)
    crops = np.stack([align_face(_draw((y - low) / (high - low), rng), None, spec) for y in labels])
    scale = spec.input_size / CANVAS
    transforms = np.repeat(np.array([[[scale, 0, 0], [0, scale, 0]]], np.float32), n, axis=0)
    return FaceSet(SYNTHETIC_NAME, crops, {"label": labels, "sigma": np.full(n, np.nan, np.float32)},
                   [f"synthetic:{i}" for i in range(n)], transforms, [None] * n, [None] * n)
