"""The model card: what a network is and how to feed and decode it.

One card travels with a model from training to deployment: inside the checkpoint, in the ONNX
graph's metadata_props, in every manifest. Every stage reads it instead of re-deriving facts.

A card read from a file is untrusted input: :meth:`ModelCard.from_dict` / :meth:`ModelCard.from_json` are the one
place it is parsed, and every field is checked against the bounds below before anything is sized from it (a
crop cache from ``input_size``, a bin table from the label space). Anything else is a one-line CardError.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field

from edgeface.errors import CardError
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

# Bounds of a card's fields: far beyond any real face model, small enough that nothing sized from them exhausts
# memory (a 1024 px crop is 3 MB; 10 000 bins and 1 000 attributes are kilobytes per face).
INPUT_SIZE_RANGE = (16, 1024)
MAX_BINS = 10_000
LABEL_LIMIT = 1e6  # |start|, |stop| of a label space
MAX_ATTRIBUTES = 1_000
MAX_LANDMARKS = 68
# Model names become Triton model folders and file names: a letter or digit, then letters, digits, '.', '_', '-'.
SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def check_threshold_objective(objective: str) -> str:
    """``objective`` when it is one of :data:`THRESHOLD_OBJECTIVES`; a ValueError naming them otherwise."""
    if objective not in THRESHOLD_OBJECTIVES:
        raise ValueError(f"unknown threshold objective {objective!r}; "
                         f"expected one of {', '.join(THRESHOLD_OBJECTIVES)}")
    return objective


def check_safe_name(name: object, what: str) -> str:
    """``name`` when it is safe as a folder or model name (:data:`SAFE_NAME`); a one-line CardError otherwise."""
    if not isinstance(name, str) or not SAFE_NAME.fullmatch(name):
        raise CardError(f"{what} {_show(name)} is not a safe name: use 1-64 letters, digits, '.', '_' or '-', "
                        "starting with a letter or digit")
    return name


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _number(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or (isinstance(value, int) and
                                                                        abs(value) > 1e300):  # float() overflows
        raise CardError(f"{what} must be a number within float range, got {_show(value)}")
    return float(value)


def _finite(value: object, what: str) -> float:
    if not math.isfinite(_number(value, what)):
        raise CardError(f"{what} must be a finite number, got {_show(value)}")
    return float(value)


def _integer(value: object, what: str, low: int, high: int) -> int:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise CardError(f"{what} must be an integer in {low}..{high}, got {_show(value)}")
    return value


def _mapping(value: object, what: str) -> dict:
    if not isinstance(value, dict):
        raise CardError(f"{what} must be an object, got {_show(value)}")
    return value


def _string_list(value: object, what: str, most: int) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value) or len(value) > most:
        raise CardError(f"{what} must be a list of at most {most} strings, got {_show(value)}")
    return list(value)


def _check_preprocess(spec: PreprocessSpec) -> None:
    _integer(spec.input_size, "preprocess.input_size", *INPUT_SIZE_RANGE)
    if len(spec.mean) != 3:
        raise CardError(f"preprocess.mean must hold 3 values, got {len(spec.mean)}")
    for value in spec.mean:
        _finite(value, "preprocess.mean")
    if not _finite(spec.std, "preprocess.std") > 0:
        raise CardError(f"preprocess.std must be above 0, got {spec.std}")
    if spec.color not in ("RGB", "BGR") or spec.layout not in ("NCHW", "NHWC"):
        raise CardError(f"preprocess color / layout must be RGB or BGR / NCHW or NHWC, got {spec.color!r} / "
                        f"{_show(spec.layout)}")
    if len(spec.template) != 5 or not all(len(p) == 2 and all(-1.0 <= _finite(v, "preprocess.template") <= 2.0
                                                              for v in p) for p in spec.template):
        raise CardError("preprocess.template must be 5 (x, y) landmark positions in crop units")


def _check_label_space(space: LabelSpace) -> None:
    start, stop, step = (_finite(v, f"label_space.{n}") for n, v in
                         (("start", space.start), ("stop", space.stop), ("step", space.step)))
    if max(abs(start), abs(stop)) > LABEL_LIMIT or step <= 0 or stop <= start:
        raise CardError(f"label_space must have start < stop within +-{LABEL_LIMIT:g} and step > 0, got "
                        f"{start:g}..{stop:g} step {step:g}")
    if (stop - start) / step + 1 > MAX_BINS:
        raise CardError(f"label_space {start:g}..{stop:g} step {step:g} has more than {MAX_BINS} bins")


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
        """Every bound of a card (see the module docstring); CardError, a ValueError, otherwise."""
        check_safe_name(self.model, "card model name")
        if self.task not in TASKS:
            raise CardError(f"unknown task {_show(self.task)}; expected one of {', '.join(TASKS)}")
        _check_preprocess(self.preprocess)
        if self.task in ("age", "attractiveness") and self.label_space is None:
            raise CardError(f"task {self.task!r} needs a label space")
        if self.label_space is not None:
            _check_label_space(self.label_space)
        if self.attributes is not None:
            _string_list(self.attributes, "attributes", MAX_ATTRIBUTES)
        if self.task == "attributes" and not self.attributes:
            raise CardError("task 'attributes' needs a list of attribute names")
        _integer(self.num_landmarks, "num_landmarks", 0, MAX_LANDMARKS)
        if self.thresholds is not None:
            if len(self.thresholds) != len(self.attributes or []):
                raise CardError(f"one threshold per attribute is required: {len(self.thresholds)} thresholds "
                                f"for {len(self.attributes or [])} attributes")
            bad = [t for t in self.thresholds if not (math.isfinite(t) and 0.0 <= t <= 1.0)]
            if bad:
                raise CardError(f"attribute thresholds must lie in [0, 1], got {bad[:3]}")
        if self.threshold_objective is not None:
            if self.threshold_objective not in THRESHOLD_OBJECTIVES:
                raise CardError(f"unknown threshold objective {_show(self.threshold_objective)}; "
                                f"expected one of {', '.join(THRESHOLD_OBJECTIVES)}")
            if self.thresholds is None:
                raise CardError(f"threshold objective {self.threshold_objective!r} but the card has no thresholds")

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
    def from_dict(cls, d: object) -> ModelCard:
        """The card a dict (from JSON: untrusted) describes; CardError naming the field otherwise."""
        d = _mapping(d, "a model card")
        try:
            pre = _mapping(d["preprocess"], "preprocess")
            space = d.get("label_space")
            thresholds = d.get("thresholds")
            if thresholds is not None and not isinstance(thresholds, list):
                raise CardError(f"thresholds must be a list, got {_show(thresholds)}")
            template = pre.get("template", [list(p) for p in PreprocessSpec().template])
            if not isinstance(template, list) or not all(isinstance(p, list) for p in template):
                raise CardError("preprocess.template must be 5 (x, y) landmark positions in crop units")
            mean = pre.get("mean", [127.5, 127.5, 127.5])
            if not isinstance(mean, list):
                raise CardError(f"preprocess.mean must be a list of 3 numbers, got {_show(mean)}")
            spec = PreprocessSpec(
                input_size=_integer(pre["input_size"], "preprocess.input_size", *INPUT_SIZE_RANGE),
                color=pre.get("color", "RGB"),
                mean=tuple(_finite(v, "preprocess.mean") for v in mean),
                std=_finite(pre.get("std", 127.5), "preprocess.std"),
                template=tuple(tuple(_finite(v, "preprocess.template") for v in p) for p in template),
                layout=pre.get("layout", "NCHW"),
            )
            if space:
                space = _mapping(space, "label_space")
                unit = space.get("unit", "")
                if not isinstance(unit, str):
                    raise CardError(f"label_space.unit must be a string, got {_show(unit)}")
                bounds = [_finite(space[n], f"label_space.{n}") for n in ("start", "stop", "step")]
                if bounds[2] <= 0 or bounds[1] <= bounds[0]:
                    raise CardError(f"label_space must have start < stop and step > 0, got {bounds[0]:g}.."
                                    f"{bounds[1]:g} step {bounds[2]:g}")
                space = LabelSpace(*bounds, unit)
            for name in ("model", "task", "data"):
                if not isinstance(d.get(name, ""), str):
                    raise CardError(f"card {name} must be a string, got {_show(d.get(name))}")
            objective = d.get("threshold_objective")
            if objective is not None and not isinstance(objective, str):
                raise CardError(f"threshold_objective must be a string, got {_show(objective)}")
            return cls(
                model=d["model"],
                task=d["task"],
                preprocess=spec,
                label_space=space or None,
                attributes=_string_list(d["attributes"], "attributes", MAX_ATTRIBUTES) if d.get("attributes")
                else None,
                thresholds=[_number(t, "thresholds") for t in thresholds] if thresholds else None,
                threshold_objective=objective,
                num_landmarks=_integer(d.get("num_landmarks", 0), "num_landmarks", 0, MAX_LANDMARKS),
                data=d.get("data", ""),
                extra=_mapping(d.get("extra") or {}, "extra"),
            )
        except KeyError as e:
            raise CardError(f"model card has no {_show(e.args[0])} field") from e
        except ValueError as e:  # the field types' own checks (PreprocessSpec, LabelSpace)
            if isinstance(e, CardError):
                raise
            raise CardError(f"model card: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from e

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ModelCard:
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, TypeError, RecursionError) as e:
            raise CardError(f"model card is not JSON: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from e
        return cls.from_dict(data)
