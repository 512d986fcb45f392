"""The DLDL-v2 paper's training augmentation on aligned uint8 crops (numpy/OpenCV, runs in DataLoader workers).

Random rescale, rotation within +-15 degrees and a random crop (a translation) are one affine warp;
then horizontal flip, grayscale and colour jitter. The geometric part is returned as one 2x3 matrix, so
point targets (landmarks) can follow the pixels exactly (:func:`transform_landmarks`). Each call takes its
own ``numpy.random.Generator``; the data set seeds it from (seed, epoch, index), so augmentation does not
depend on worker count or process and a resumed run sees exactly the images an uninterrupted one would.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class AugmentConfig:
    flip: float = 0.5  # probability of a horizontal flip
    gray: float = 0.5  # probability of converting to grayscale (kept 3-channel)
    scale: tuple[float, float] = (0.9, 1.1)  # random rescale factor
    rotation: float = 15.0  # degrees, uniform in [-rotation, rotation]
    shift: float = 0.06  # random crop: translation up to this share of the crop size
    brightness: float = 0.2  # colour jitter strengths (multiplicative factors 1 +- value)
    contrast: float = 0.2
    saturation: float = 0.2

    @classmethod
    def from_dict(cls, d: dict | None) -> AugmentConfig:
        d = dict(d or {})
        if "scale" in d:
            d["scale"] = tuple(float(v) for v in d["scale"])
        unknown = set(d) - set(asdict(cls()))
        if unknown:
            raise ValueError(f"unknown augmentation option(s): {', '.join(sorted(unknown))}")
        return cls(**d)


# The 5-point order (image-left eye, image-right eye, nose, image-left and image-right mouth corner) of a
# mirrored face: the point that was image-left is now image-right, so left and right swap; the nose stays.
MIRRORED_LANDMARKS = (1, 0, 2, 4, 3)


def augment_crop(crop: np.ndarray, rng: np.random.Generator, cfg: AugmentConfig) -> tuple[np.ndarray, np.ndarray]:
    """One randomly augmented copy of an aligned S x S x 3 uint8 crop (same size and colour order), and the
    2x3 matrix that maps a crop pixel position to where it went (warp and flip together)."""
    size = crop.shape[0]
    angle = rng.uniform(-cfg.rotation, cfg.rotation)
    scale = rng.uniform(*cfg.scale)
    matrix = cv2.getRotationMatrix2D((size / 2, size / 2), angle, scale)
    matrix[:, 2] += rng.uniform(-cfg.shift, cfg.shift, size=2) * size
    out = cv2.warpAffine(crop, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
    if rng.random() < cfg.flip:
        out = out[:, ::-1]
        matrix = np.array([[-1.0, 0.0, size - 1.0], [0.0, 1.0, 0.0]]) @ np.vstack([matrix, [0.0, 0.0, 1.0]])
    img = out.astype(np.float32)
    gray = img @ np.array([0.299, 0.587, 0.114], np.float32)  # RGB luma (BGR order changes it negligibly)
    if rng.random() < cfg.gray:
        img = np.repeat(gray[..., None], 3, axis=2)
    else:
        sat = 1.0 + rng.uniform(-cfg.saturation, cfg.saturation)
        img = gray[..., None] + sat * (img - gray[..., None])
    contrast = 1.0 + rng.uniform(-cfg.contrast, cfg.contrast)
    img = img.mean() + contrast * (img - img.mean())
    img *= 1.0 + rng.uniform(-cfg.brightness, cfg.brightness)
    return np.ascontiguousarray(np.clip(img, 0, 255).astype(np.uint8)), matrix


def transform_landmarks(points: np.ndarray, matrix: np.ndarray, size: int) -> np.ndarray:
    """5 landmarks (10,) x0, y0, ..., x4, y4 in [0, 1] crop coordinates, moved by an S x S crop's 2x3 pixel
    ``matrix`` as :func:`augment_crop` returns it. A mirroring matrix (negative determinant) also swaps the
    left and right points, so each index keeps naming the same image-side point the network must predict."""
    pts = np.asarray(points, dtype=np.float64).reshape(5, 2) * size
    moved = (pts @ matrix[:, :2].T + matrix[:, 2]) / size
    if np.linalg.det(matrix[:, :2]) < 0:
        moved = moved[list(MIRRORED_LANDMARKS)]
    return moved.reshape(10).astype(np.float32)
