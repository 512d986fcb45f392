"""Face detection with 5 landmarks: YuNet through OpenCV's ``cv2.FaceDetectorYN``.

edgeface ships no detector weights; pass the path of a YuNet ONNX file (for example
``face_detection_yunet_2023mar.onnx`` from the OpenCV model zoo).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np


@dataclass
class Face:
    box: np.ndarray  # x, y, w, h in frame pixels
    landmarks: np.ndarray  # 5 x 2: left eye, right eye, nose tip, left / right mouth corner
    score: float


class FaceDetector:
    """YuNet for any frame size, with a minimum face size and a score threshold."""

    def __init__(
        self,
        model_path: str | Path,
        score_threshold: float = 0.6,
        nms_threshold: float = 0.3,
        min_face: int = 16,
        top_k: int = 500,
    ):
        path = Path(model_path)
        if not path.is_file():
            raise FileNotFoundError(f"face detector model not found: {path}")
        try:
            self._net = cv2.FaceDetectorYN.create(str(path), "", (320, 320), score_threshold, nms_threshold, top_k)
        except cv2.error as e:
            raise ValueError(f"cannot load face detector {path}: {str(e).strip().splitlines()[-1]}") from e
        self.min_face = min_face
        self._size = (320, 320)

    def detect(self, image_bgr: np.ndarray) -> list[Face]:
        """Faces in the frame, highest score first; an empty list when there are none."""
        if image_bgr is None or image_bgr.ndim != 3 or image_bgr.size == 0:
            raise ValueError("expected an HxWx3 BGR image")
        h, w = image_bgr.shape[:2]
        if (w, h) != self._size:
            self._net.setInputSize((w, h))
            self._size = (w, h)
        _, rows = self._net.detect(image_bgr)
        if rows is None:
            return []
        faces = [
            Face(box=r[0:4].astype(np.float32), landmarks=r[4:14].reshape(5, 2).astype(np.float32), score=float(r[14]))
            for r in rows
            if min(r[2], r[3]) >= self.min_face
        ]
        return sorted(faces, key=lambda f: -f.score)
