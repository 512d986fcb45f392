"""The embeddable API: frame in, faces with age / attractiveness / attributes / landmarks out.

A :class:`Predictor` holds a YuNet :class:`~edgeface.detector.FaceDetector` (the shipped one unless given
another) and one runner per loaded model (a path, or the name of shipped weights: ``"tinyagenet"``). For each
frame every face is aligned with the shared preprocessing (``edgeface.faces.face_crop``,
``edgeface.preprocess.to_input``), all faces of the frame go through each model as ONE batch, and the
raw outputs are turned into values by ``edgeface.decode`` -- the same code training and evaluation use.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from edgeface.card import OUTPUT_ATTRIBUTES, OUTPUT_LANDMARKS, OUTPUT_PROBS, ModelCard
from edgeface.decode import decode, merge_flipped
from edgeface.detector import Detections, Face, FaceDetector
from edgeface.faces import face_crop
from edgeface.preprocess import PreprocessSpec, alignment_matrix, flip_input, to_input
from edgeface.runtime.base import Runner, open_runner
from edgeface.weights import resolve_model


@dataclass
class FaceResult:
    """One face of one frame. Boxes and landmarks are in frame pixels (x, y, w, h / 5 x 2 points)."""

    box: np.ndarray
    landmarks: np.ndarray  # the detector's 5 points
    score: float
    age: float | None = None
    age_std: float | None = None
    attractiveness: float | None = None
    attractiveness_std: float | None = None
    attributes: dict[str, float] | None = None  # probability per attribute
    decisions: dict[str, bool] | None = None  # probability >= the card's fitted threshold
    model_landmarks: np.ndarray | None = None  # the attribute model's 5 points, mapped back to the frame
    track_id: int | None = None
    fused_frames: int = 1  # how many inferences the tracker fused into the values above
    stale_frames: int = 0  # frames since the latest inference behind the values (0: inferred on this frame)
    probs: dict[str, np.ndarray] = field(default_factory=dict)  # raw label distributions per task (for fusion)
    attr_probs: np.ndarray | None = None  # raw attribute probabilities (for fusion)

    def to_dict(self) -> dict:
        """JSON-ready values (raw distributions left out: they are large and rebuilt from the model)."""
        out: dict = {"box": [round(float(v), 1) for v in self.box],
                     "landmarks": _points(self.landmarks), "score": round(self.score, 4)}
        if self.track_id is not None:
            out["track_id"] = self.track_id
            out["fused_frames"] = self.fused_frames
            out["stale_frames"] = self.stale_frames
        for name in ("age", "age_std", "attractiveness", "attractiveness_std"):
            value = getattr(self, name)
            if value is not None:
                out[name] = round(float(value), 3)
        if self.attributes is not None:
            out["attributes"] = {k: round(v, 4) for k, v in self.attributes.items()}
            out["decisions"] = self.decisions
        if self.model_landmarks is not None:
            out["model_landmarks"] = _points(self.model_landmarks)
        return out


@dataclass
class LoadedModel:
    """A runner plus the card that says how to feed and decode it."""

    runner: Runner
    card: ModelCard
    source: Path


def find_model_paths(paths: str | Path | list[str | Path]) -> list[Path]:
    """Model locations from checkpoints, artifact files, convert folders, folders holding several of those, or
    names of shipped weights."""
    found: list[Path] = []
    for spec in [paths] if isinstance(paths, str | Path) else list(paths):
        path = resolve_model(spec)
        if path.is_file() or (path / "manifest.json").is_file():
            found.append(path)
            continue
        inside = sorted(p for p in path.iterdir()
                        if (p.is_dir() and (p / "manifest.json").is_file())
                        or (p.is_file() and p.suffix in (".pt", ".pth")))
        if not inside:
            raise ValueError(f"{path} holds no model: expected checkpoints (.pt), a convert folder "
                             "(manifest.json) or folders of those")
        found += inside
    if not found:
        raise ValueError("no model given")
    return found


class Predictor:
    """Detect faces in a frame and run every loaded model on them.

    ``flip`` averages each prediction with the mirrored face (DLDL-v2's test-time flip). It doubles
    model cost, so it is off by default: for video the tracker's temporal fusion gives the steadiness
    at no extra cost. Turn it on for single images.

    ``low_score``: the detector also keeps faces scored from it up to ``score_threshold``, apart
    (:class:`~edgeface.detector.Detections` ``.low``), for the tracker's second association; they are never
    inferred nor returned by :meth:`predict`. None or a value at the threshold keeps none.
    """

    def __init__(self, models: str | Path | list[str | Path], detector_path: str | Path | None = None,
                 backend: str | None = None, threads: int | None = None, min_face: int = 24,
                 score_threshold: float = 0.6, flip: bool = False, target: str | None = None,
                 device: str | None = None, downscale: bool = True, verify: bool = True,
                 low_score: float | None = 0.3):
        self.detector = FaceDetector(detector_path, score_threshold=score_threshold, min_face=min_face,
                                     downscale=downscale, low_score=low_score)
        self.flip = flip
        self.models: list[LoadedModel] = []
        try:
            for path in find_model_paths(models):
                runner = open_runner(path, backend=backend, device=device, threads=threads, target=target,
                                     verify=verify)
                self.models.append(LoadedModel(runner=runner, card=runner.card, source=path))
        except BaseException:
            self.close()
            raise
        tasks = [m.card.task for m in self.models]
        duplicates = sorted({t for t in tasks if tasks.count(t) > 1})
        if duplicates:
            self.close()
            raise ValueError(f"more than one model for task {', '.join(duplicates)}; give one model per task")

    def detect(self, frame_bgr: np.ndarray) -> Detections:
        """Faces in the frame (box, 5 landmarks, score), highest score first; in ``.low`` those between the low
        score and the score threshold."""
        return self.detector.detect(frame_bgr)

    def predict(self, frame_bgr: np.ndarray, rgb: bool = False) -> list[FaceResult]:
        """All faces of one frame (BGR uint8 HxWx3; pass ``rgb=True`` for RGB frames); [] when there are none."""
        frame = _check_frame(frame_bgr, rgb)
        return self.infer(frame, self.detect(frame))

    def infer(self, frame_bgr: np.ndarray, faces: list[Face], rgb: bool = False) -> list[FaceResult]:
        """Run the models on faces already found in this frame (a tracker's or another detector's)."""
        return self.fill(_check_frame(frame_bgr, rgb), face_results(faces))

    def fill(self, frame: np.ndarray, results: list[FaceResult]) -> list[FaceResult]:
        """Run the models on these faces of a BGR frame and set their values in place (the scheduler's path:
        it picks which of a frame's faces are worth a model run)."""
        if not results:
            return results
        n = len(results)
        inputs: dict[PreprocessSpec, np.ndarray] = {}  # each preprocessing runs once per frame
        for model in self.models:
            spec = model.card.preprocess
            # written straight into the runner's input memory; the mirrored faces ride in the same batch
            buffer = model.runner.input_buffer(2 * n if self.flip else n)
            if spec in inputs:
                np.copyto(buffer[:n], inputs[spec])
            else:
                inputs[spec] = to_input([face_crop(frame, spec, landmarks=r.landmarks) for r in results], spec,
                                        out=buffer[:n])
            if self.flip:
                flip_input(buffer[:n], spec, out=buffer[n:])
            self._run_model(model, buffer, results)
        return results

    def _run_model(self, model: LoadedModel, x: np.ndarray, results: list[FaceResult]) -> None:
        card, n = model.card, len(results)
        outputs = model.runner.infer(x)
        if self.flip:  # one call per model per frame: the faces, then their mirror images
            outputs = merge_flipped(card, {k: v[:n] for k, v in outputs.items()},
                                    {k: v[n:] for k, v in outputs.items()})
        for result, row, i in zip(results, decode(card, outputs), range(n), strict=True):
            if card.task == "attributes":
                result.attributes, result.decisions = row["attributes"], row["decisions"]
                result.attr_probs = np.asarray(outputs[OUTPUT_ATTRIBUTES][i], np.float32)
                if OUTPUT_LANDMARKS in outputs:
                    result.model_landmarks = crop_points_to_frame(
                        np.asarray(outputs[OUTPUT_LANDMARKS][i]), result.landmarks, card.preprocess)
            else:
                setattr(result, card.task, row[card.task])
                setattr(result, f"{card.task}_std", row[f"{card.task}_std"])
                result.probs[card.task] = np.asarray(outputs[OUTPUT_PROBS][i], np.float32)

    @property
    def cards(self) -> list[ModelCard]:
        return [m.card for m in self.models]

    def close(self) -> None:
        for model in self.models:
            model.runner.deactivate()

    def __enter__(self) -> Predictor:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def face_results(faces: list[Face]) -> list[FaceResult]:
    """Detected faces as results without values yet (for :meth:`Predictor.fill`)."""
    return [FaceResult(box=np.asarray(f.box, np.float32), landmarks=np.asarray(f.landmarks, np.float32),
                       score=float(f.score)) for f in faces]


def crop_points_to_frame(points01: np.ndarray, detected: np.ndarray, spec: PreprocessSpec) -> np.ndarray:
    """Model landmarks in [0, 1] crop coordinates -> frame pixels, through the inverse of the alignment."""
    crop_px = np.asarray(points01, np.float64).reshape(-1, 2) * spec.input_size
    inverse = cv2.invertAffineTransform(alignment_matrix(detected, spec))
    return (crop_px @ inverse[:, :2].T + inverse[:, 2]).astype(np.float32)


def _points(points: np.ndarray) -> list[list[float]]:
    return np.round(np.asarray(points, np.float64), 1).tolist()


def _check_frame(frame: np.ndarray, rgb: bool) -> np.ndarray:
    if not isinstance(frame, np.ndarray) or frame.ndim != 3 or frame.shape[2] != 3 or frame.size == 0:
        raise ValueError("expected an HxWx3 uint8 frame")
    return cv2.cvtColor(frame, cv2.COLOR_RGB2BGR) if rgb else frame
