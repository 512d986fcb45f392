"""Builders shared by the runtime tests: tiny untrained models and generated face videos."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch

from edgeface.bench.synthetic_video import moving_faces_video
from edgeface.card import ModelCard
from edgeface.faces import image_files
from edgeface.labels import AGE
from edgeface.models import create_model
from edgeface.models.checkpoint import save_checkpoint
from edgeface.models.dmmcnn import CELEBA_ATTRIBUTES
from edgeface.preprocess import PreprocessSpec

TINY_SPEC = PreprocessSpec(input_size=64)
VIDEO_SIZE, FACE_SIZE = (400, 300), 80


def tiny_models(folder: Path) -> Path:
    """An untrained TinyAgeNet (age) and DMM-CNN (attributes, fitted-looking thresholds) at 64 px."""
    torch.manual_seed(0)
    folder.mkdir(parents=True, exist_ok=True)
    save_checkpoint(folder / "age.pt", create_model("tinyagenet", label_space=AGE),
                    ModelCard("tinyagenet", "age", TINY_SPEC, AGE, data="untrained test model"))
    attributes = list(CELEBA_ATTRIBUTES)
    thresholds = [0.3 + 0.01 * i for i in range(len(attributes))]
    save_checkpoint(folder / "attributes.pt", create_model("dmmcnn", attributes=attributes),
                    ModelCard("dmmcnn", "attributes", TINY_SPEC, attributes=attributes, thresholds=thresholds,
                              num_landmarks=5, data="untrained test model"))
    return folder


def face_chips(utkface_dir: Path, count: int) -> list[np.ndarray]:
    return [cv2.imread(str(p)) for p in image_files(utkface_dir)[:count]]


def face_video(path: Path, utkface_dir: Path, faces: int = 3, frames: int = 16, laps: float = 0.5) -> list[list[tuple]]:
    """A short mp4v video of ``faces`` real faces moving across a background; returns the known boxes."""
    return moving_faces_video(path, face_chips(utkface_dir, faces), frames, size=VIDEO_SIZE, face_size=FACE_SIZE,
                              laps=laps)


def box_center(box) -> np.ndarray:
    x, y, w, h = box
    return np.array([x + w / 2, y + h / 2])


def nearest_known(box, known: list[tuple]) -> tuple[int, float]:
    """(index of the nearest known box, centre distance in pixels)."""
    dists = [float(np.linalg.norm(box_center(box) - box_center(k))) for k in known]
    return int(np.argmin(dists)), min(dists)
