"""Calibration crops: real faces from a folder, aligned by the one shared preprocessing.

By default the images are taken as already-aligned chips (UTKFace, CelebA aligned); ``detector`` (a YuNet
path) detects and aligns faces in raw photos. Images that cannot be read or hold no face are skipped;
fewer than :data:`MIN_FACES` usable faces is an error, since a range estimate from a handful of faces
would quietly ruin the INT8 model.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from edgeface.faces import NoFaceError, face_crop, image_files, read_image
from edgeface.preprocess import PreprocessSpec
from edgeface.progress import progress as progress_bar

DEFAULT_IMAGES = 512
MIN_FACES = 100


def select_files(files: list[Path], limit: int) -> list[Path]:
    """``limit`` files spread evenly over the sorted list (deterministic, covers the whole folder)."""
    if len(files) <= limit:
        return files
    index = np.linspace(0, len(files) - 1, limit).round().astype(int)
    return [files[i] for i in index]


def load_crops(folder: str | Path, spec: PreprocessSpec, limit: int = DEFAULT_IMAGES,
               detector: str | Path | None = None, min_faces: int = MIN_FACES,
               progress: bool = True) -> tuple[np.ndarray, list[Path]]:
    """(uint8 crops N x S x S x 3, their files) from up to ``limit`` images of ``folder``."""
    from edgeface.detector import FaceDetector

    face_detector = FaceDetector(detector) if detector else None
    crops, used = [], []
    files = select_files(image_files(folder), limit)
    for path in progress_bar(files, "calibration faces", progress, unit="img", leave=False):
        try:
            crops.append(face_crop(read_image(path), spec, detector=face_detector))
        except (NoFaceError, ValueError):
            continue
        used.append(path)
    if len(crops) < min_faces:
        raise ValueError(f"only {len(crops)} usable faces in {folder} (of {len(files)} images); "
                         f"calibration needs at least {min_faces}")
    return np.stack(crops), used


def crops_sha256(crops: np.ndarray, spec: PreprocessSpec) -> str:
    """Hash of the exact calibration crops and the preprocessing that turns them into inputs."""
    h = hashlib.sha256(repr(sorted(spec.to_dict().items())).encode())
    h.update(np.ascontiguousarray(crops).tobytes())
    return h.hexdigest()

