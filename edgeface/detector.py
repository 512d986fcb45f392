"""Face detection with 5 landmarks: YuNet through OpenCV's ``cv2.FaceDetectorYN``.

edgeface ships YuNet (``edgeface/assets/yunet_s_640_640.onnx``, Apache-2.0) and uses it unless given another
YuNet ONNX file (for example ``face_detection_yunet_2023mar.onnx`` from the OpenCV model zoo).

YuNet finds faces from about 10x10 px up (OpenCV model zoo notes), so a caller that only wants faces of
``min_face`` px or more gains nothing from the full frame: the detector runs on the frame downscaled so that
such a face is :data:`YUNET_MIN_FACE` px there (a quarter of the pixels for ``min_face=24``) and maps the
boxes and landmarks back to frame pixels. However large the image, YuNet sees at most :data:`MAX_DETECT_PIXELS`
(its memory grows with the input: an 8000x8000 photo took 6 GB and 40 s at full size); the faces it can then find in
such a photo are still above 60 px.

With a ``low_score`` below the score threshold the detector also keeps the faces scored between the two, apart
(:class:`Detections` ``.low``): a tracker's second association (ByteTrack's) uses them to keep a track alive where
a face it follows is briefly detected with less confidence (half hidden, turned, blurred); they are never
reported or inferred. YuNet's non-maximum suppression keeps a box unless a higher-scored one covers it, so the
faces at the threshold are the same whatever the low score.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edgeface.assets import DETECTOR
from edgeface.fileio import text_path


@dataclass
class Face:
    box: np.ndarray  # x, y, w, h in frame pixels
    landmarks: np.ndarray  # 5 x 2: left eye, right eye, nose tip, left / right mouth corner
    score: float


class Detections(list[Face]):
    """A frame's faces at the detector's score threshold, highest score first (the list itself), and in ``low``
    those between the detector's low score and that threshold (for a tracker's second association only)."""

    def __init__(self, faces: Iterable[Face] = (), low: Iterable[Face] = ()):
        super().__init__(faces)
        self.low = list(low)


YUNET_MIN_FACE = 12  # px at YuNet's input: a margin above the ~10 px its training covers
MAX_DETECT_PIXELS = 1920 * 1080  # YuNet's input never exceeds a Full HD frame's pixel count


def detection_scale(min_face: int, smallest: int = YUNET_MIN_FACE) -> float:
    """The factor (<= 1) to shrink a frame by so a ``min_face`` px face is still ``smallest`` px for YuNet."""
    if min_face < 1:
        raise ValueError("min_face must be at least 1 pixel")
    return min(1.0, smallest / min_face)


@contextmanager
def opencv_errors_only() -> Iterator[None]:
    """OpenCV's own log at ERROR for the duration: OpenCV 5's new DNN engine warns "setPreferableTarget: Targets
    are not supported" whenever FaceDetectorYN is created (it always sets a target), on every run and with any
    backend / target pair, so creation is done with its warnings off and the previous level restored."""
    log = getattr(getattr(cv2, "utils", None), "logging", None)
    if log is None or not hasattr(log, "getLogLevel"):
        yield
        return
    previous = log.getLogLevel()
    log.setLogLevel(log.LOG_LEVEL_ERROR)
    try:
        yield
    finally:
        log.setLogLevel(previous)


class FaceDetector:
    """YuNet for any frame size, with a minimum face size and a score threshold (the shipped YuNet unless
    ``model_path`` names another).

    ``downscale`` (default on) runs YuNet on the frame shrunk by :func:`detection_scale` of ``min_face``.
    ``low_score`` (None: none): faces scored from it up to ``score_threshold`` are kept apart in
    :class:`Detections` ``.low``.
    """

    def __init__(
        self,
        model_path: str | Path | None = None,
        score_threshold: float = 0.6,
        nms_threshold: float = 0.3,
        min_face: int = 16,
        top_k: int = 500,
        downscale: bool = True,
        low_score: float | None = None,
    ):
        path = Path(text_path(model_path or DETECTOR))  # OpenCV crashes on a path that is not text
        if not path.is_file():
            raise FileNotFoundError(f"face detector model not found: {path}")
        self.score_threshold = score_threshold
        self.low_score = score_threshold if low_score is None else min(low_score, score_threshold)
        try:
            with opencv_errors_only():
                self._net = cv2.FaceDetectorYN.create(str(path), "", (320, 320), self.low_score, nms_threshold,
                                                      top_k)
        except cv2.error as e:
            raise ValueError(f"cannot load face detector {path}: {str(e).strip().splitlines()[-1]}") from e
        self.min_face = min_face
        self.scale = detection_scale(min_face) if downscale else 1.0
        self._size = (320, 320)

    def detect(self, image_bgr: np.ndarray) -> Detections:
        """Faces in the frame, highest score first (empty when there are none); those below the score threshold
        but at the low score apart, in ``.low``."""
        if image_bgr is None or image_bgr.ndim != 3 or image_bgr.size == 0:
            raise ValueError("expected an HxWx3 BGR image")
        h, w = image_bgr.shape[:2]
        cap = math.sqrt(MAX_DETECT_PIXELS / (w * h))
        if cap < self.scale:  # rounded down: the cap holds exactly
            small_w, small_h = max(1, int(w * cap)), max(1, int(h * cap))
        else:
            small_w, small_h = max(1, round(w * self.scale)), max(1, round(h * self.scale))
        image = image_bgr
        if (small_w, small_h) != (w, h):
            image = cv2.resize(image_bgr, (small_w, small_h), interpolation=cv2.INTER_AREA)
        if (small_w, small_h) != self._size:
            self._net.setInputSize((small_w, small_h))
            self._size = (small_w, small_h)
        _, rows = self._net.detect(image)
        if rows is None:
            return Detections()
        # the exact per-axis factors of the rounded size: a point at x in the small image is x * w / small_w
        back = np.array([w / small_w, h / small_h], np.float32)
        faces = []
        for r in rows:
            box = r[0:4].astype(np.float32) * np.tile(back, 2)
            if min(box[2], box[3]) >= self.min_face:
                faces.append(Face(box=box, landmarks=(r[4:14].reshape(5, 2) * back).astype(np.float32),
                                  score=float(r[14])))
        faces.sort(key=lambda f: -f.score)
        return Detections((f for f in faces if f.score >= self.score_threshold),
                          (f for f in faces if f.score < self.score_threshold))
