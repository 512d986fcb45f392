"""Image file -> aligned face crop, the same way for training, calibration, evaluation and the runtime."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from edgeface.detector import FaceDetector
from edgeface.fileio import text_path
from edgeface.preprocess import PreprocessSpec, align_face

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


class NoFaceError(ValueError):
    """The detector found no face in the image."""


def read_image(path: str | Path) -> np.ndarray:
    """BGR uint8 image; a missing, truncated or undecodable file raises ValueError naming the path."""
    path = Path(text_path(path))  # before OpenCV sees it: a path that is not text crashes it
    if not path.is_file():
        raise ValueError(f"image not found: {path}")
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None or image.size == 0:
        raise ValueError(f"cannot decode image: {path}")
    return image


def face_crop(image_bgr: np.ndarray, spec: PreprocessSpec, detector: FaceDetector | None = None,
              landmarks: np.ndarray | None = None) -> np.ndarray:
    """The aligned crop of the main face.

    Given landmarks are used as they are; otherwise the detector's highest-scoring face is used;
    with neither, the image is an already-aligned chip and is resized.
    """
    if landmarks is None and detector is not None:
        faces = detector.detect(image_bgr)
        if not faces:
            raise NoFaceError("no face found")
        landmarks = faces[0].landmarks
    return align_face(image_bgr, landmarks, spec)


def image_files(folder: str | Path) -> list[Path]:
    """Image files directly inside ``folder`` (sorted), or a clear error when there are none."""
    folder = Path(text_path(folder))
    if not folder.is_dir():
        raise ValueError(f"not a folder: {folder}")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ValueError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {folder}")
    return files
