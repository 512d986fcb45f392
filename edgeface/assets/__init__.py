"""Files shipped inside the package besides the weights: the default face detector and the sample faces.

* ``yunet_s_640_640.onnx``: YuNet (libfacedetection.train, Apache-2.0, ``LICENSE-yunet.txt``), the detector
  every command uses unless given ``--detector``.
* ``faces/``: eight CC-BY 4.0 faces (attribution in ``faces/README.md``) with their self-reported ages in
  ``faces/labels.csv``, for the demo, the README picture and the tests.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

ASSETS = Path(__file__).resolve().parent
DETECTOR = ASSETS / "yunet_s_640_640.onnx"
FACES = ASSETS / "faces"
FACE_LABELS = FACES / "labels.csv"


@dataclass(frozen=True)
class SampleFace:
    path: Path
    age: float  # self-reported
    gender: str


def sample_faces() -> list[SampleFace]:
    """The shipped sample faces with their labels, in ``labels.csv`` order."""
    with open(FACE_LABELS, newline="") as f:
        return [SampleFace(FACES / row["image"], float(row["age"]), row["gender"]) for row in csv.DictReader(f)]
