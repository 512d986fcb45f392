"""The model card: what a network is and how to feed and decode it.

One card travels with a model from training to deployment: inside the checkpoint, in the ONNX
graph's metadata_props, in every manifest. Every stage reads it instead of re-deriving facts.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

from edgeface.labels import LabelSpace
from edgeface.preprocess import PreprocessSpec

# Where the card travels inside artifacts (writers in edgeface/convert, readers in edgeface/runtime)
CARD_KEY = "edgeface_card"  # ONNX metadata_props key, and Triton config parameter, holding the card JSON
RT_INFO_CARD = ["edgeface", "card"]  # OpenVINO rt_info path of the card JSON inside an IR

INPUT_NAME = "input"
OUTPUT_PROBS = "probs"  # (N, K) softmax over the label bins
OUTPUT_EXPECTATION = "expectation"  # (N,) expectation of probs: the predicted value
OUTPUT_ATTRIBUTES = "attr_probs"  # (N, A) sigmoid probabilities, in card.attributes order
OUTPUT_LANDMARKS = "landmarks"  # (N, 10) x0, y0, ..., x4, y4 in [0, 1] crop coordinates

TASKS = ("age", "attractiveness", "attributes")
THRESHOLD_OBJECTIVES = ("accuracy", "balanced", "f1")  # what fitted attribute thresholds maximise


def check_threshold_objective(objective: str) -> str:
    """``objective`` when it is one of :data:`THRESHOLD_OBJECTIVES`; a ValueError naming them otherwise."""
    if objective not in THRESHOLD_OBJECTIVES:
        raise ValueError(f"unknown threshold objective {objective!r}; "
                         f"expected one of {', '.join(THRESHOLD_OBJECTIVES)}")
    return objective


@dataclass
class ModelCard:
    model: str
    task: str
    preprocess: PreprocessSpec
    label_space: LabelSpace | None = None
    attributes: list[str] | None = None
    thresholds: list[float] | None = None
    threshold_objective: str | None = None  # one of THRESHOLD_OBJECTIVES; None for cards that predate it
    num_landmarks: int = 0
    data: str = ""  # what it was trained on; "SYNTHETIC" marks the built-in generated set
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"unknown task {self.task!r}; expected one of {', '.join(TASKS)}")
        if self.task in ("age", "attractiveness") and self.label_space is None:
            raise ValueError(f"task {self.task!r} needs a label space")
        if self.thresholds is not None:
            if len(self.thresholds) != len(self.attributes or []):
                raise ValueError(f"one threshold per attribute is required: {len(self.thresholds)} thresholds "
                                 f"for {len(self.attributes or [])} attributes")
            bad = [t for t in self.thresholds if not (math.isfinite(t) and 0.0 <= t <= 1.0)]
            if bad:
                raise ValueError(f"attribute thresholds must lie in [0, 1], got {bad[:3]}")
        if self.threshold_objective is not None:
            check_threshold_objective(self.threshold_objective)
            if self.thresholds is None:
                raise ValueError(f"threshold objective {self.threshold_objective!r} but the card has no thresholds")

    @property
    def outputs(self) -> list[str]:
        if self.task == "attributes":
            return [OUTPUT_ATTRIBUTES] + ([OUTPUT_LANDMARKS] if self.num_landmarks else [])
        return [OUTPUT_PROBS, OUTPUT_EXPECTATION]

    @property
    def synthetic(self) -> bool:
        return self.data.upper().startswith("SYNTHETIC")

    def to_dict(self) -> dict:
        return {
            "model": self.model,
            "task": self.task,
            "preprocess": self.preprocess.to_dict(),
            "label_space": self.label_space.to_dict() if self.label_space else None,
            "attributes": self.attributes,
            "thresholds": self.thresholds,
            "threshold_objective": self.threshold_objective,
            "num_landmarks": self.num_landmarks,
            "outputs": self.outputs,
            "data": self.data,
            "extra": self.extra,
        }

    @classmethod
    def from_dict(cls, d: dict) -> ModelCard:
        return cls(
            model=str(d["model"]),
            task=str(d["task"]),
            preprocess=PreprocessSpec.from_dict(d["preprocess"]),
            label_space=LabelSpace.from_dict(d["label_space"]) if d.get("label_space") else None,
            attributes=list(d["attributes"]) if d.get("attributes") else None,
            thresholds=[float(t) for t in d["thresholds"]] if d.get("thresholds") else None,
            threshold_objective=d.get("threshold_objective"),
            num_landmarks=int(d.get("num_landmarks", 0)),
            data=str(d.get("data", "")),
            extra=dict(d.get("extra") or {}),
        )

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ModelCard:
        return cls.from_dict(json.loads(text))
