"""Model registry: a name -> (builder, default config) table, as timm keeps ``default_cfgs`` beside its builders.

Three words stay apart here: a model's *family* is the kind of head it has (``label_distribution`` or
``attributes``); a card's *task* is what a trained model predicts (``age``, ``attractiveness``, ``attributes``);
a *training task* (:class:`edgeface.train.tasks.TrainingTask`) is the objective that trains it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

from edgeface.card import ModelCard
from edgeface.labels import LabelSpace
from edgeface.preprocess import PreprocessSpec

FAMILIES = ("label_distribution", "attributes")


@dataclass(frozen=True)
class ModelConfig:
    """A model's defaults, kept next to its definition: what its head is, which tasks it serves, and the input
    and label space it is built for unless told otherwise."""

    family: str  # kind of head: label_distribution (probs + expectation) or attributes (+ landmarks)
    tasks: tuple[str, ...]  # card tasks it can be trained for; the first is its default
    preprocess: PreprocessSpec = PreprocessSpec()  # input size 224, RGB, (x - 127.5) / 127.5, 5-point template
    label_space: LabelSpace | None = None  # label_distribution: the default label space (AGE)
    attributes: tuple[str, ...] | None = None  # attributes: the default attribute names (CelebA's 40)
    num_landmarks: int = 0

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise ValueError(f"family must be one of {', '.join(FAMILIES)}, got {self.family!r}")

    @property
    def task(self) -> str:
        """The card task the model is trained for by default."""
        return self.tasks[0]

    def builder_defaults(self) -> dict:
        """The head arguments a builder gets unless the caller gives them."""
        if self.family == "attributes":
            return {"attributes": self.attributes}
        return {"label_space": self.label_space}


_MODELS: dict[str, Callable] = {}
_CONFIGS: dict[str, ModelConfig] = {}


def register_model(name: str, cfg: ModelConfig) -> Callable:
    """Decorator: make a builder reachable by ``create_model(name)``, with its default config."""

    def wrap(builder: Callable) -> Callable:
        if name in _MODELS:
            raise ValueError(f"model {name!r} registered twice")
        _MODELS[name] = builder
        _CONFIGS[name] = cfg
        return builder

    return wrap


def list_models() -> list[str]:
    return list(_MODELS)


def default_cfg(name: str) -> ModelConfig:
    """The registered defaults of a model (family, tasks, preprocessing, label space / attributes)."""
    _check(name)
    return _CONFIGS[name]


def create_model(name: str, **kwargs):
    """Build a registered model; kwargs (label_space, attributes, ...) override its default config."""
    _check(name)
    return _MODELS[name](**{**_CONFIGS[name].builder_defaults(), **kwargs})


def default_card(name: str, input_size: int | None = None, data: str = "") -> ModelCard:
    """The card of a model built with its defaults (an untrained model measured for timing and size)."""
    cfg = default_cfg(name)
    spec = cfg.preprocess if input_size is None else dataclasses.replace(cfg.preprocess, input_size=input_size)
    return ModelCard(name, cfg.task, spec, label_space=cfg.label_space,
                     attributes=list(cfg.attributes) if cfg.attributes else None,
                     num_landmarks=cfg.num_landmarks, data=data)


def _check(name: str) -> None:
    if name not in _MODELS:
        raise ValueError(f"unknown model {name!r}; available: {', '.join(sorted(_MODELS))}")
