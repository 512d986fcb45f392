"""The one preprocessing definition: 5-point alignment, crop, colour order and normalisation.

Training, calibration, evaluation and the runtime all call :func:`align_face` and :func:`to_input`;
the :class:`PreprocessSpec` is written into every checkpoint, ONNX graph and manifest so an artifact
always carries the exact recipe its inputs need.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import cv2
import numpy as np

# Canonical 5 points (left eye, right eye, nose tip, left / right mouth corner) in [0, 1] crop
# coordinates: the median YuNet landmarks of UTKFace's aligned-and-cropped chips, made left-right
# symmetric. Resizing a UTKFace chip and warping a detected face onto this template therefore give
# the same loose crop, so already-aligned chips need no detector.
CANONICAL_LANDMARKS: tuple[tuple[float, float], ...] = (
    (0.305, 0.300),
    (0.695, 0.300),
    (0.500, 0.510),
    (0.336, 0.680),
    (0.664, 0.680),
)


@dataclass(frozen=True)
class PreprocessSpec:
    """How a face becomes a network input; pixel = (value - mean) / std after colour conversion."""

    input_size: int = 224
    color: str = "RGB"
    mean: tuple[float, float, float] = (127.5, 127.5, 127.5)
    std: float = 127.5
    template: tuple[tuple[float, float], ...] = field(default=CANONICAL_LANDMARKS)
    layout: str = "NCHW"

    def __post_init__(self) -> None:
        if self.input_size < 16:
            raise ValueError(f"input_size must be at least 16, got {self.input_size}")
        if self.color not in ("RGB", "BGR"):
            raise ValueError(f"color must be RGB or BGR, got {self.color!r}")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["mean"] = list(self.mean)
        d["template"] = [list(p) for p in self.template]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> PreprocessSpec:
        return cls(
            input_size=int(d["input_size"]),
            color=str(d.get("color", "RGB")),
            mean=tuple(float(v) for v in d.get("mean", (127.5, 127.5, 127.5))),
            std=float(d.get("std", 127.5)),
            template=tuple(tuple(float(v) for v in p) for p in d.get("template", CANONICAL_LANDMARKS)),
            layout=str(d.get("layout", "NCHW")),
        )


def alignment_matrix(landmarks: np.ndarray, spec: PreprocessSpec) -> np.ndarray:
    """2x3 similarity transform taking the 5 detected points onto the canonical template."""
    src = np.asarray(landmarks, dtype=np.float32).reshape(5, 2)
    dst = np.asarray(spec.template, dtype=np.float32) * spec.input_size
    matrix, _ = cv2.estimateAffinePartial2D(src, dst, method=cv2.LMEDS)
    if matrix is None:
        raise ValueError("degenerate landmarks: cannot estimate an alignment")
    return matrix


def align_face(image_bgr: np.ndarray, landmarks: np.ndarray | None, spec: PreprocessSpec) -> np.ndarray:
    """A square uint8 crop in the spec's colour order.

    With ``landmarks`` (5x2, image pixels) the face is warped onto the template; without them the
    image is taken as already aligned (UTKFace chips) and resized.
    """
    if image_bgr is None or image_bgr.ndim != 3 or image_bgr.shape[2] != 3 or image_bgr.size == 0:
        raise ValueError("expected an HxWx3 BGR image")
    size = spec.input_size
    if landmarks is None:
        interp = cv2.INTER_AREA if min(image_bgr.shape[:2]) > size else cv2.INTER_LINEAR
        crop = cv2.resize(image_bgr, (size, size), interpolation=interp)
    else:
        crop = cv2.warpAffine(
            image_bgr, alignment_matrix(landmarks, spec), (size, size),
            flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE,
        )
    return cv2.cvtColor(crop, cv2.COLOR_BGR2RGB) if spec.color == "RGB" else crop


def to_input(crops: np.ndarray | list[np.ndarray], spec: PreprocessSpec, out: np.ndarray | None = None
             ) -> np.ndarray:
    """Aligned uint8 crops (N x S x S x 3, or a list) -> normalised float32 network input (NCHW). ``out``: an
    array to write it into (a runner's :meth:`~edgeface.runtime.base.Runner.input_buffer`), returned."""
    batch = np.ascontiguousarray(np.stack(list(crops)) if isinstance(crops, list) else crops)
    if batch.ndim == 3:
        batch = batch[None]
    x = (batch.astype(np.float32) - np.asarray(spec.mean, dtype=np.float32)) / np.float32(spec.std)
    x = x.transpose(0, 3, 1, 2) if spec.layout == "NCHW" else x
    if out is None:
        return np.ascontiguousarray(x)
    np.copyto(out, x)
    return out


def flip_input(x: np.ndarray, spec: PreprocessSpec, out: np.ndarray | None = None) -> np.ndarray:
    """The horizontally flipped network input (DLDL-v2 averages the prediction with it), written into ``out``
    when given."""
    flipped = np.flip(x, axis=3 if spec.layout == "NCHW" else 2)
    if out is None:
        return np.ascontiguousarray(flipped)
    np.copyto(out, flipped)
    return out
