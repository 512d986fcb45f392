"""Training tasks: what the generic trainer and evaluator need to know about one kind of model.

The trainer (:mod:`edgeface.train.trainer`) and the evaluator (:mod:`edgeface.train.evaluate`) know
nothing about ages, attributes or landmarks; they call a :class:`TrainingTask`:

* data sets yield ``(image tensor, targets)`` where ``targets`` is a dict of per-sample arrays
  (DLDL: ``label``, ``sigma``; an attribute task might use ``attributes`` and ``landmarks``); the
  DataLoader collates them into a dict of batch tensors;
* ``build_model`` / ``make_card`` create the network and its ModelCard;
* ``prepare_targets(targets, device)`` turns a collated batch into the tensors ``loss`` wants;
* ``loss(model.forward_train(x), targets)`` returns ``(scalar, {part: float})``; parts are logged;
* ``on_epoch_start(epoch)`` / ``on_epoch_end(epoch, train_parts)`` are per-epoch hooks (dynamic loss
  weights); ``on_epoch_end`` returns values for the CSV log, ``state_dict`` / ``load_state_dict`` carry
  such state through checkpoints so ``--resume`` stays exact;
* ``metrics(outputs, targets)`` judges predictions given as the *exported* outputs
  (``{output name: numpy array}``, exactly what every runtime Runner returns, flip-merged), so the
  trainer's validation and ``edgeface eval`` of any format share one code path;
  ``primary_metric`` and ``mode`` ("min" / "max") choose ``best.pt``;
* ``finalize_card(card, outputs, targets)`` may fit things from validation predictions (thresholds)
  into the card written with ``best.pt``;
* ``prediction_columns(outputs, targets)`` gives the per-sample columns of a predictions CSV and
  ``format_metrics(metrics)`` the text ``edgeface eval`` prints.

To plug in another training task: subclass :class:`TrainingTask`, decorate it with
``@register_training_task("<card task>")`` in its own module under ``train/``, and add that module to
:data:`TRAINING_TASK_MODULES` so that :func:`training_task_from_card` finds it from a checkpoint's card alone.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from edgeface.card import OUTPUT_PROBS, ModelCard
from edgeface.labels import AGE, LabelSpace, attractiveness_space, distribution_std, epsilon_error
from edgeface.labels import expectation as np_expectation
from edgeface.preprocess import PreprocessSpec

if TYPE_CHECKING:  # torch is imported where training needs it: evaluation and metrics run without it
    import torch
    from torch import nn

    from edgeface.data.datasets import FaceSet
    from edgeface.train.config import TrainConfig

# card.task -> module that registers its TrainingTask class (imported on demand by training_task_from_card).
TRAINING_TASK_MODULES: dict[str, str] = {
    "age": "edgeface.train.tasks",
    "attractiveness": "edgeface.train.tasks",
    "attributes": "edgeface.train.attributes",
}
_REGISTRY: dict[str, type[TrainingTask]] = {}


def register_training_task(*card_tasks: str) -> Callable[[type[TrainingTask]], type[TrainingTask]]:
    """Class decorator: the TrainingTask class that serves the given ``ModelCard.task`` values."""

    def wrap(cls: type[TrainingTask]) -> type[TrainingTask]:
        for name in card_tasks:
            _REGISTRY[name] = cls
        return cls

    return wrap


def training_task_class(name: str) -> type[TrainingTask]:
    """The TrainingTask class registered for a card task name (importing its module on first use)."""
    if name not in _REGISTRY and name in TRAINING_TASK_MODULES:
        importlib.import_module(TRAINING_TASK_MODULES[name])
    if name not in _REGISTRY:
        raise ValueError(f"no training/evaluation task for {name!r}; known: {', '.join(sorted(TRAINING_TASK_MODULES))}")
    return _REGISTRY[name]


def training_task_from_card(card: ModelCard) -> TrainingTask:
    """The task that judges (and fine-tunes) the model the card describes."""
    return training_task_class(card.task).from_card(card)


def training_task_from_config(config: TrainConfig) -> TrainingTask:
    """The task a training config asks for (``config.task``)."""
    return training_task_class(config.task).from_config(config)


class TrainingTask(ABC):
    """One kind of model: its targets, loss, per-epoch hooks, metrics and card."""

    name: str
    primary_metric: ClassVar[str]
    mode: ClassVar[str]  # "min" or "max": the direction in which primary_metric improves
    label_space: LabelSpace | None = None  # readers drop samples whose "label" falls outside it
    default_format: ClassVar[str] = "utkface"  # the data reader ``edgeface eval`` uses without --format
    plots_metrics: ClassVar[bool] = False  # whether plot_metrics draws (``edgeface eval --plot`` asks first)

    @classmethod
    @abstractmethod
    def from_card(cls, card: ModelCard) -> TrainingTask:
        """The task as configured for the model a card describes (used by eval)."""

    @classmethod
    @abstractmethod
    def from_config(cls, config: TrainConfig) -> TrainingTask:
        """The task as a training config asks for it (``config.task_options`` holds task-specific settings)."""

    def synthetic_faces(self, n: int, spec: PreprocessSpec, seed: int) -> FaceSet:
        """The built-in generated data set used when no ``--data`` is given."""
        raise ValueError(f"task {self.name!r} has no built-in synthetic data; pass --data")

    @abstractmethod
    def build_model(self, model_name: str) -> nn.Module:
        """A fresh network for this task."""

    @abstractmethod
    def make_card(self, model_name: str, spec: PreprocessSpec, data: str) -> ModelCard:
        """The card for a model of this task (written into every checkpoint)."""

    def prepare_targets(self, targets: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
        """Collated batch targets -> the tensors ``loss`` uses, on ``device``."""
        return {k: v.to(device, non_blocking=True) for k, v in targets.items()}

    @abstractmethod
    def loss(self, outputs: dict[str, torch.Tensor],
             targets: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        """(scalar loss, named parts for the log) from ``model.forward_train(x)``."""

    def on_epoch_start(self, epoch: int) -> None:  # noqa: B027  (optional hook)
        """Called before each training epoch."""

    def on_epoch_end(self, epoch: int, train_parts: dict[str, float]) -> dict[str, float]:
        """Called after each training epoch with the epoch-mean loss parts; returns values to log."""
        return {}

    def state_dict(self) -> dict:
        """TrainingTask state that must survive a resume (e.g. dynamic loss weights)."""
        return {}

    def load_state_dict(self, state: dict) -> None:  # noqa: B027  (optional hook)
        """Restore :meth:`state_dict`."""

    @abstractmethod
    def metrics(self, outputs: dict[str, np.ndarray], targets: dict[str, np.ndarray]) -> dict:
        """Metrics from exported outputs (``{output name: array}``) and the data's targets."""

    def finalize_card(self, card: ModelCard, outputs: dict[str, np.ndarray],
                      targets: dict[str, np.ndarray]) -> ModelCard:
        """The card to store with the best model, possibly fitted on validation predictions."""
        return card

    @abstractmethod
    def prediction_columns(self, outputs: dict[str, np.ndarray], targets: dict[str, np.ndarray]) -> dict:
        """Per-sample columns ({name: 1-D array}) for a predictions CSV."""

    def format_metrics(self, metrics: dict) -> str:
        """Human-readable metrics for ``edgeface eval`` (one per line, nested dicts indented)."""
        return format_metrics(metrics, "  ")

    def plot_metrics(self, metrics: dict, path: str, title: str = "") -> None:
        """A PNG of the metrics (``edgeface eval --plot``)."""
        raise ValueError(f"--plot is not available for the {self.name} task")


def format_metrics(metrics: dict, indent: str = "") -> str:
    """Metrics one per line; nested dicts (MAE per decade) indented below their key."""
    lines = []
    for key, value in metrics.items():
        if isinstance(value, dict):
            lines += [f"{indent}{key}:", format_metrics(value, indent + "  ")]
        elif isinstance(value, float):
            lines.append(f"{indent}{key}: {value:.4f}")
        else:
            lines.append(f"{indent}{key}: {value}")
    return "\n".join(lines)


def regression_metrics(pred: np.ndarray, label: np.ndarray, sigma: np.ndarray | None = None,
                       cs_threshold: float | None = 5.0, per_decade: bool = False) -> dict:
    """MAE, RMSE, CS@threshold, Pearson, Spearman, epsilon-error (where sigma is known), MAE per decade."""
    pred = np.asarray(pred, dtype=np.float64)
    label = np.asarray(label, dtype=np.float64)
    if pred.size == 0:
        raise ValueError("no predictions to evaluate")
    err = np.abs(pred - label)
    out: dict = {"n": int(pred.size), "mae": float(err.mean()), "rmse": float(np.sqrt(np.mean(err**2)))}
    if cs_threshold is not None:
        out[f"cs@{cs_threshold:g}"] = float(np.mean(err <= cs_threshold))
    out["pearson"] = _pearson(pred, label)
    out["spearman"] = _pearson(_ranks(pred), _ranks(label))
    if sigma is not None:
        known = np.isfinite(sigma) & (np.asarray(sigma) > 0)
        if known.any():
            out["epsilon_error"] = epsilon_error(pred[known], label[known], np.asarray(sigma)[known])
    if per_decade:
        decades = (label // 10).astype(int)
        out["mae_per_decade"] = {
            f"{d * 10}-{d * 10 + 9}": float(err[decades == d].mean()) for d in np.unique(decades)
        }
    return out


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    denom = np.sqrt((a**2).sum() * (b**2).sum())
    return float((a * b).sum() / denom) if denom > 0 else float("nan")


def _ranks(x: np.ndarray) -> np.ndarray:
    """Average ranks (ties share their mean rank), as Spearman's correlation needs."""
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(len(x), dtype=np.float64)
    ranks[order] = np.arange(len(x), dtype=np.float64)
    _, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    sums = np.bincount(inverse, weights=ranks)
    return sums[inverse] / counts[inverse]


@register_training_task("age", "attractiveness")
class DLDLTask(TrainingTask):
    """DLDL-v2 label-distribution learning for a scalar label (age in years, attractiveness score).

    Targets per sample: ``label`` and ``sigma`` (the rater std, NaN where unknown -> ``default_sigma``).
    """

    primary_metric = "mae"
    mode = "min"

    def __init__(self, name: str = "age", label_space: LabelSpace = AGE, default_sigma: float = 2.0,
                 lam: float = 1.0):
        if name not in ("age", "attractiveness"):
            raise ValueError(f"DLDL task must be age or attractiveness, got {name!r}")
        self.name = name
        self.label_space = label_space
        self.default_sigma = float(default_sigma)
        self.lam = float(lam)
        self._bins: dict[torch.device, torch.Tensor] = {}

    @classmethod
    def from_card(cls, card: ModelCard) -> DLDLTask:
        default = 2.0 if card.task == "age" else 0.5
        return cls(card.task, card.label_space, float(card.extra.get("sigma", default)),
                   float(card.extra.get("lambda", 1.0)))

    @classmethod
    def from_config(cls, config: TrainConfig) -> DLDLTask:
        space = cls.default_space(config.task, tuple(config.label_range) if config.label_range else None)
        sigma = config.sigma if config.sigma is not None else (2.0 if config.task == "age" else 0.5)
        return cls(config.task, space, sigma, config.lam)

    def synthetic_faces(self, n: int, spec: PreprocessSpec, seed: int) -> FaceSet:
        from edgeface.data.synthetic import synthetic_faces

        return synthetic_faces(n, spec, self.label_space, seed)

    @classmethod
    def default_space(cls, name: str, label_range: tuple[float, float] | None = None) -> LabelSpace:
        """AGE for age; 0.1-wide bins over ``label_range`` (default the 1..7 rating scale) for attractiveness."""
        if name == "age":
            return AGE if label_range is None else LabelSpace(label_range[0], label_range[1], 1.0, "years")
        low, high = label_range or (1.0, 7.0)
        return attractiveness_space(low, high)

    def build_model(self, model_name: str) -> nn.Module:
        from edgeface.models import create_model, default_cfg

        if default_cfg(model_name).family != "label_distribution":
            raise ValueError(f"model {model_name!r} is not a label-distribution network (task {self.name})")
        return create_model(model_name, label_space=self.label_space)

    def make_card(self, model_name: str, spec: PreprocessSpec, data: str) -> ModelCard:
        return ModelCard(model=model_name, task=self.name, preprocess=spec, label_space=self.label_space, data=data,
                         extra={"sigma": self.default_sigma, "lambda": self.lam})

    def _bins_on(self, device: torch.device) -> torch.Tensor:
        import torch

        if device not in self._bins:
            self._bins[device] = torch.from_numpy(self.label_space.bins).float().to(device)
        return self._bins[device]

    def prepare_targets(self, targets: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
        import torch

        label = targets["label"].float().to(device)
        sigma = targets["sigma"].float().to(device)
        sigma = torch.where(torch.isfinite(sigma) & (sigma > 0), sigma, torch.full_like(sigma, self.default_sigma))
        return {"label": label, "sigma": sigma}

    def loss(self, outputs: dict[str, torch.Tensor],
             targets: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        from edgeface.train.losses import dldl_loss

        logits = outputs["logits"]
        return dldl_loss(logits, targets["label"], targets["sigma"], self._bins_on(logits.device), self.lam)

    def _values(self, outputs: dict[str, np.ndarray]) -> np.ndarray:
        return np_expectation(outputs[OUTPUT_PROBS], self.label_space)

    def metrics(self, outputs: dict[str, np.ndarray], targets: dict[str, np.ndarray]) -> dict:
        is_age = self.name == "age"
        return regression_metrics(self._values(outputs), targets["label"], targets.get("sigma"),
                                  cs_threshold=5.0 if is_age else None, per_decade=is_age)

    def prediction_columns(self, outputs: dict[str, np.ndarray], targets: dict[str, np.ndarray]) -> dict:
        return {
            "label": np.asarray(targets["label"], dtype=np.float64),
            "prediction": self._values(outputs),
            "prediction_std": distribution_std(outputs[OUTPUT_PROBS], self.label_space),
        }
