"""DMM-CNN training and evaluation: landmarks + multi-label attributes as one training task
(:class:`~edgeface.train.tasks.TrainingTask`).

Exact formulas (A attributes, batch of N faces, landmarks in [0, 1] crop coordinates):

* **Landmark error** of face i: ``nme_i = mean_k ||p_ik - t_ik||_2 / iod_i`` over the 5 points, with
  ``iod_i = ||t_left_eye - t_right_eye||_2`` (inter-ocular distance of the target).
* **Multi-task loss**: ``L = (1/A) * sum_a w_a * BCE_a + lambda_lm * sum_i m_i * nme_i / max(1, sum_i m_i)``,
  where ``BCE_a`` is the batch-mean binary cross-entropy of attribute a, ``w_a`` its dynamic weight
  (mean 1), and ``m_i`` is 1 when face i has landmark targets (0 masks it out).
* **Dynamic weights** (the paper's idea of weighting each attribute by its learning progress; the update
  is Dynamic Weight Average, Liu et al. 2019, applied per attribute): with ``L_a(t)`` the epoch-mean
  training ``BCE_a`` of epoch t and ``L_a(0)`` the BCE of the very first training batch (the untrained
  network), the progress ratio ``r_a = L_a(t) / L_a(t-1)`` and ``w_a(t+1) = A * exp(r_a / T) / sum_b exp(r_b / T)``.
  Attributes whose loss stalls (r near or above 1) get more weight than those still falling fast; the
  first epoch uses ``w_a = 1``. T = temperature (default 1).
* **Adaptive thresholds**: per attribute, the threshold on the validation probabilities (decision
  ``p >= t``) that maximises the named objective: ``accuracy`` (default), ``balanced`` accuracy
  ``(TPR + TNR) / 2`` or ``f1`` ``2TP / (2TP + FP + FN)``. The search is exact: every cut between two
  distinct validation scores (their midpoint), below the lowest and above the highest (ties: the cut
  nearest 0.5). An attribute with a single class in the validation split keeps 0.5.

Each of dynamic weights, adaptive thresholds and the landmark task can be switched off, so their effect
can be measured.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from edgeface.card import OUTPUT_ATTRIBUTES, OUTPUT_LANDMARKS, ModelCard, check_threshold_objective
from edgeface.preprocess import CANONICAL_LANDMARKS, PreprocessSpec
from edgeface.train.tasks import TrainingTask, register_training_task

if TYPE_CHECKING:  # torch is imported by the training code only: metrics and evaluation run without it
    import torch
    from torch import nn

PRIMARY_METRICS = {"accuracy": "mean_accuracy", "balanced": "mean_balanced_accuracy", "f1": "mean_f1"}
LEFT_EYE, RIGHT_EYE = 0, 1


# ---------------------------------------------------------------------------------------------- losses
def landmark_nme(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """(N,) per-face mean point error over the 5 points, divided by the target's inter-ocular distance."""
    p = pred.float().reshape(-1, 5, 2)
    t = target.float().reshape(-1, 5, 2)
    iod = (t[:, LEFT_EYE] - t[:, RIGHT_EYE]).norm(dim=1).clamp_min(1e-6)
    return (p - t).norm(dim=2).mean(dim=1) / iod


def multitask_loss(attr_logits: torch.Tensor, attr_targets: torch.Tensor, weights: torch.Tensor,
                   landmarks: torch.Tensor | None = None, landmark_targets: torch.Tensor | None = None,
                   landmark_mask: torch.Tensor | None = None,
                   landmark_weight: float = 1.0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(total loss, per-attribute batch BCE (A,), masked landmark NME) as in the module docstring."""
    import torch
    import torch.nn.functional as F

    bce = F.binary_cross_entropy_with_logits(attr_logits.float(), attr_targets.float(), reduction="none").mean(0)
    total = (weights * bce).mean()
    lm = torch.zeros((), device=attr_logits.device)
    if landmarks is not None and landmark_weight > 0:
        mask = landmark_mask.float()
        nme = landmark_nme(landmarks, landmark_targets)
        lm = (nme * mask).sum() / mask.sum().clamp_min(1.0)
        total = total + landmark_weight * lm
    return total, bce, lm


class DynamicAttributeWeights:
    """Per-attribute loss weights from each attribute's learning progress (formula in the module docstring)."""

    def __init__(self, num_attributes: int, temperature: float = 1.0, enabled: bool = True):
        if temperature <= 0:
            raise ValueError("temperature must be positive")
        self.num_attributes = num_attributes
        self.temperature = float(temperature)
        self.enabled = enabled
        self.weights = np.ones(num_attributes)
        self.history: list[np.ndarray] = []  # L_a(0), then the epoch-mean BCE per attribute of each epoch

    def start(self, initial_losses: np.ndarray) -> None:
        """Record ``L_a(0)``, the untrained network's per-attribute loss (once, before any update)."""
        if not self.history:
            self.history.append(np.asarray(initial_losses, dtype=np.float64))

    def update(self, epoch_losses: np.ndarray) -> np.ndarray:
        """Record one epoch's mean per-attribute losses; returns the weights for the next epoch."""
        self.history.append(np.asarray(epoch_losses, dtype=np.float64))
        if self.enabled and len(self.history) >= 2:
            ratio = self.history[-1] / np.maximum(self.history[-2], 1e-12)
            z = np.exp((ratio - ratio.max()) / self.temperature)
            self.weights = self.num_attributes * z / z.sum()
        return self.weights

    def state_dict(self) -> dict:
        return {"weights": self.weights.tolist(), "history": [h.tolist() for h in self.history]}

    def load_state_dict(self, state: dict) -> None:
        self.weights = np.asarray(state["weights"], dtype=np.float64)
        self.history = [np.asarray(h, dtype=np.float64) for h in state["history"]]


# ---------------------------------------------------------------------------------------------- metrics
def balanced_accuracy(decisions: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """(A,) mean of true-positive and true-negative rates; a class absent from ``labels`` counts as
    its rate undefined, and the other rate alone is returned."""
    decisions = np.asarray(decisions, dtype=bool)
    labels = np.asarray(labels) > 0.5
    pos, neg = labels.sum(0), (~labels).sum(0)
    tpr = np.where(pos > 0, (decisions & labels).sum(0) / np.maximum(pos, 1), np.nan)
    tnr = np.where(neg > 0, (~decisions & ~labels).sum(0) / np.maximum(neg, 1), np.nan)
    return np.nanmean(np.stack([tpr, tnr]), axis=0)


def f1_score(decisions: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """(A,) F1 of the positive class, ``2TP / (2TP + FP + FN)``; 0 when there is nothing to find or claim."""
    decisions = np.asarray(decisions, dtype=bool)
    labels = np.asarray(labels) > 0.5
    tp = (decisions & labels).sum(0)
    wrong = (decisions != labels).sum(0)
    return 2 * tp / np.maximum(2 * tp + wrong, 1)


def fit_thresholds(probs: np.ndarray, labels: np.ndarray, objective: str = "accuracy") -> np.ndarray:
    """(A,) per-attribute thresholds maximising ``objective`` on these predictions, exactly (module docstring).

    All attributes at once: each column is sorted once, and the confusion counts of every cut come from
    cumulative sums, so the cost is a sort, not one pass per candidate.
    """
    check_threshold_objective(objective)
    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels) > 0.5
    n = len(probs)
    order = np.argsort(probs, axis=0, kind="stable")
    scores = np.take_along_axis(probs, order, axis=0)  # (N, A) ascending
    positive = np.take_along_axis(labels, order, axis=0)
    # cut i (0..N) calls the top N - i scores positive; its threshold sits between scores i-1 and i
    below = np.vstack([np.zeros((1, probs.shape[1])), scores])
    above = np.vstack([scores, np.ones((1, probs.shape[1]))])
    cuts = (below + above) / 2
    valid = below < above  # equal scores cannot be split; nothing lies above p = 1 (the all-negative cut)
    valid[0] = True  # threshold min/2 <= every score: all positive, even when the lowest score is 0
    fn = np.vstack([np.zeros((1, probs.shape[1])), np.cumsum(positive, axis=0)])  # positives below the cut
    p = positive.sum(0)
    tp = p - fn
    tn = np.arange(n + 1)[:, None] - fn
    fp = (n - p) - tn
    if objective == "accuracy":
        value = (tp + tn) / max(n, 1)
    elif objective == "balanced":
        value = (tp / np.maximum(p, 1) + tn / np.maximum(n - p, 1)) / 2
    else:
        value = 2 * tp / np.maximum(2 * tp + fp + fn, 1)
    value = np.where(valid, value, -np.inf)
    best = valid & (value >= value.max(0) - 1e-12)
    pick = np.argmin(np.where(best, np.abs(cuts - 0.5), np.inf), axis=0)
    thresholds = cuts[pick, np.arange(probs.shape[1])]
    one_class = (p == 0) | (p == n)
    return np.where(one_class, 0.5, thresholds)


def attribute_metrics(probs: np.ndarray, labels: np.ndarray, names: list[str], thresholds: np.ndarray | None = None,
                      baseline_rate: np.ndarray | None = None) -> dict:
    """Per-attribute accuracy, balanced accuracy and F1 with the given thresholds (0.5 when None), accuracy and
    balanced accuracy at a fixed 0.5 beside them, their means, and the majority-class baseline (predict the
    more frequent class of ``baseline_rate``, the training positive rate; the evaluated set's own rate when
    None). Both accuracies are always reported, whatever objective the thresholds serve."""
    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels) > 0.5
    if probs.shape != labels.shape or probs.shape[1] != len(names):
        raise ValueError(f"predictions {probs.shape} do not match labels {labels.shape} / {len(names)} attributes")
    if len(probs) == 0:
        raise ValueError("no predictions to evaluate")
    th = np.full(len(names), 0.5) if thresholds is None else np.asarray(thresholds, dtype=np.float64)
    decisions, at_half = probs >= th, probs >= 0.5
    acc, acc_half = (decisions == labels).mean(0), (at_half == labels).mean(0)
    bacc, bacc_half = balanced_accuracy(decisions, labels), balanced_accuracy(at_half, labels)
    f1 = f1_score(decisions, labels)
    rate = labels.mean(0) if baseline_rate is None else np.asarray(baseline_rate, dtype=np.float64)
    majority = np.broadcast_to(rate >= 0.5, labels.shape)
    base_acc = (majority == labels).mean(0)
    base_bacc = balanced_accuracy(majority, labels)
    return {
        "n": int(len(probs)),
        "mean_accuracy": float(acc.mean()),
        "mean_balanced_accuracy": float(np.nanmean(bacc)),
        "mean_f1": float(f1.mean()),
        "mean_accuracy_at_0.5": float(acc_half.mean()),
        "mean_balanced_accuracy_at_0.5": float(np.nanmean(bacc_half)),
        "baseline_mean_accuracy": float(base_acc.mean()),
        "baseline_mean_balanced_accuracy": float(np.nanmean(base_bacc)),
        "per_attribute": {
            n: {"accuracy": float(acc[i]), "balanced_accuracy": float(bacc[i]), "f1": float(f1[i]),
                "threshold": float(th[i]), "accuracy_at_0.5": float(acc_half[i]),
                "balanced_accuracy_at_0.5": float(bacc_half[i]), "positive_rate": float(labels[:, i].mean()),
                "baseline_accuracy": float(base_acc[i]), "baseline_balanced_accuracy": float(base_bacc[i])}
            for i, n in enumerate(names)
        },
    }


def landmark_metrics(pred: np.ndarray, target: np.ndarray, mask: np.ndarray,
                     template: tuple[tuple[float, float], ...]) -> dict:
    """Mean inter-ocular NME of the predictions over faces with landmark targets, beside the
    mean-shape baseline (always predicting the alignment template)."""
    keep = np.asarray(mask) > 0.5
    if not keep.any():
        return {"landmark_n": 0}
    t = np.asarray(target, dtype=np.float32)[keep]
    p = np.asarray(pred, dtype=np.float32)[keep]
    mean_shape = np.broadcast_to(np.asarray(template, dtype=np.float32).reshape(1, 10), t.shape)
    return {"landmark_n": int(keep.sum()), "landmark_nme": float(landmark_nme_np(p, t).mean()),
            "landmark_nme_baseline_template": float(landmark_nme_np(mean_shape, t).mean())}


def landmark_nme_np(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """:func:`landmark_nme` in numpy, for evaluation without torch."""
    p = pred.reshape(-1, 5, 2).astype(np.float32)
    t = target.reshape(-1, 5, 2).astype(np.float32)
    iod = np.maximum(np.linalg.norm(t[:, LEFT_EYE] - t[:, RIGHT_EYE], axis=1), 1e-6)
    return np.linalg.norm(p - t, axis=2).mean(axis=1) / iod


# ---------------------------------------------------------------------------------------------- task
@register_training_task("attributes")
class AttributeTask(TrainingTask):
    """DMM-CNN: attributes (+ landmarks) with dynamic loss weights and adaptive thresholds.

    Targets per sample (from :mod:`edgeface.data.celeba`): ``attributes`` (A,) 0/1, ``landmarks`` (10,)
    in crop [0, 1] coordinates and ``landmark_mask`` (1 with landmark targets, 0 = attributes only).

    Decision thresholds: a card's fitted ``thresholds`` when it has them; during training (none fitted
    yet) the thresholds are fitted for ``threshold_objective`` on the evaluated validation predictions
    themselves, exactly what :meth:`finalize_card` stores with ``best.pt``; fixed 0.5 when adaptive
    thresholds are off. The 0.5 figures are always reported beside them. ``best.pt`` is the epoch with the
    best mean of the objective's metric, so model selection serves the same goal as the thresholds.
    """

    name = "attributes"
    mode = "max"
    default_format = "celeba"
    plots_metrics = True

    def __init__(self, attributes: list[str] | tuple[str, ...], dynamic_weights: bool = True,
                 adaptive_thresholds: bool = True, landmarks: bool = True, landmark_weight: float = 1.0,
                 temperature: float = 1.0, thresholds: list[float] | None = None,
                 train_positive_rate: list[float] | None = None, threshold_objective: str = "accuracy"):
        if not attributes:
            raise ValueError("the attribute task needs at least one attribute")
        self.attributes = list(attributes)
        self.adaptive_thresholds = bool(adaptive_thresholds)
        self.threshold_objective = check_threshold_objective(threshold_objective)
        self.landmark_weight = float(landmark_weight) if landmarks else 0.0
        self.dynamic = DynamicAttributeWeights(len(self.attributes), temperature, enabled=bool(dynamic_weights))
        self.thresholds = None if thresholds is None else np.asarray(thresholds, dtype=np.float64)
        self.train_positive_rate = None if train_positive_rate is None else np.asarray(train_positive_rate)
        self._epoch_bce = np.zeros(len(self.attributes), dtype=np.float64)
        self._epoch_batches = 0
        self._positives = np.zeros(len(self.attributes), dtype=np.float64)
        self._seen = 0

    @classmethod
    def from_card(cls, card: ModelCard) -> AttributeTask:
        o = card.extra.get("attribute_task", {})
        # cards from before threshold objectives existed had thresholds fitted for balanced accuracy
        objective = card.threshold_objective or o.get("threshold_objective", "balanced")
        return cls(card.attributes or [], o.get("dynamic_weights", True), o.get("adaptive_thresholds", True),
                   bool(card.num_landmarks) and o.get("landmark_weight", 1.0) > 0, o.get("landmark_weight", 1.0),
                   o.get("temperature", 1.0), card.thresholds, card.extra.get("train_positive_rate"),
                   threshold_objective=objective)

    @classmethod
    def from_config(cls, config) -> AttributeTask:
        """Attribute names from the data set's header; ``task_options``: dynamic_weights, adaptive_thresholds,
        landmarks (bools), landmark_weight, temperature, threshold_objective (accuracy | balanced | f1)."""
        from edgeface.data.celeba import attribute_names

        if config.data is None:
            raise ValueError("the attribute task has no built-in data: pass --data (a CelebA-format folder or CSV)")
        o = dict(config.task_options or {})
        unknown = set(o) - {"dynamic_weights", "adaptive_thresholds", "landmarks", "landmark_weight", "temperature",
                            "threshold_objective"}
        if unknown:
            raise ValueError(f"unknown attribute task option(s): {', '.join(sorted(unknown))}")
        names = attribute_names(config.format, config.data, config.image_col)
        return cls(names, o.get("dynamic_weights", True), o.get("adaptive_thresholds", True),
                   o.get("landmarks", True), o.get("landmark_weight", 1.0), o.get("temperature", 1.0),
                   threshold_objective=o.get("threshold_objective", "accuracy"))

    @property
    def primary_metric(self) -> str:
        return PRIMARY_METRICS[self.threshold_objective]

    def options(self) -> dict:
        return {"dynamic_weights": self.dynamic.enabled, "adaptive_thresholds": self.adaptive_thresholds,
                "threshold_objective": self.threshold_objective, "landmark_weight": self.landmark_weight,
                "temperature": self.dynamic.temperature}

    def build_model(self, model_name: str) -> nn.Module:
        from edgeface.models import create_model, default_cfg

        if default_cfg(model_name).family != "attributes":
            raise ValueError(f"model {model_name!r} is not an attribute network (try dmmcnn)")
        return create_model(model_name, attributes=self.attributes)

    def make_card(self, model_name: str, spec: PreprocessSpec, data: str) -> ModelCard:
        return ModelCard(model=model_name, task="attributes", preprocess=spec, attributes=self.attributes,
                         num_landmarks=5, data=data, extra={"attribute_task": self.options()})

    # -- training
    def loss(self, outputs: dict[str, torch.Tensor],
             targets: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        import torch

        logits = outputs["attr_logits"]
        weights = torch.as_tensor(self.dynamic.weights, dtype=torch.float32, device=logits.device)
        total, bce, lm = multitask_loss(logits, targets["attributes"], weights, outputs.get("landmarks"),
                                        targets.get("landmarks"), targets.get("landmark_mask"),
                                        self.landmark_weight)
        if torch.is_grad_enabled():  # a training step: remember per-attribute progress and class balance
            self.dynamic.start(bce.detach().double().cpu().numpy())
            self._epoch_bce += bce.detach().double().cpu().numpy()
            self._epoch_batches += 1
            self._positives += targets["attributes"].detach().double().sum(0).cpu().numpy()
            self._seen += len(logits)
        return total, {"bce": float(bce.detach().mean()), "landmark_nme": float(lm.detach())}

    def on_epoch_start(self, epoch: int) -> None:
        self._epoch_bce[:] = 0.0
        self._epoch_batches = 0

    def on_epoch_end(self, epoch: int, train_parts: dict[str, float]) -> dict[str, float]:
        """Update the dynamic weights from this epoch's per-attribute losses; the weights go to the log."""
        if self._epoch_batches:
            self.dynamic.update(self._epoch_bce / self._epoch_batches)
        if self._seen:
            self.train_positive_rate = self._positives / self._seen
        w = self.dynamic.weights
        return {"weight_min": float(w.min()), "weight_max": float(w.max()),
                **{f"w_{n}": round(float(x), 4) for n, x in zip(self.attributes, w, strict=True)}}

    def state_dict(self) -> dict:
        return {"dynamic_weights": self.dynamic.state_dict(), "positives": self._positives.tolist(),
                "seen": self._seen}

    def load_state_dict(self, state: dict) -> None:
        self.dynamic.load_state_dict(state["dynamic_weights"])
        self._positives = np.asarray(state["positives"], dtype=np.float64)
        self._seen = int(state["seen"])
        if self._seen:
            self.train_positive_rate = self._positives / self._seen

    # -- evaluation
    def _thresholds_for(self, probs: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray | None, str]:
        if not self.adaptive_thresholds:
            return None, "0.5 (adaptive thresholds off)"
        if self.thresholds is not None:
            return self.thresholds, "fitted on the training run's validation split (model card)"
        return (fit_thresholds(probs, labels, self.threshold_objective),
                "fitted on this set (no thresholds in the card yet)")

    def metrics(self, outputs: dict[str, np.ndarray], targets: dict[str, np.ndarray]) -> dict:
        """Attribute metrics with the decision thresholds (see the class docstring) and the objective they
        serve, the fixed-0.5 figures beside them, and landmark NME."""
        probs, labels = outputs[OUTPUT_ATTRIBUTES], targets["attributes"]
        thresholds, source = self._thresholds_for(probs, labels)
        out = attribute_metrics(probs, labels, self.attributes, thresholds, self.train_positive_rate)
        out["thresholds"] = source
        out["threshold_objective"] = self.threshold_objective if self.adaptive_thresholds else None
        if OUTPUT_LANDMARKS in outputs and "landmarks" in targets:
            out.update(landmark_metrics(outputs[OUTPUT_LANDMARKS], targets["landmarks"], targets["landmark_mask"],
                                        CANONICAL_LANDMARKS))
        return out

    def finalize_card(self, card: ModelCard, outputs: dict[str, np.ndarray],
                      targets: dict[str, np.ndarray]) -> ModelCard:
        """The card for ``best.pt``: thresholds fitted for the objective on these validation predictions
        (when adaptive thresholds are on), the objective itself, and the training split's positive rates
        (the majority-class baseline)."""
        extra = dict(card.extra)
        if self.train_positive_rate is not None:
            extra["train_positive_rate"] = [round(float(r), 6) for r in self.train_positive_rate]
        if not self.adaptive_thresholds:
            return dataclasses.replace(card, thresholds=None, threshold_objective=None, extra=extra)
        fitted = fit_thresholds(outputs[OUTPUT_ATTRIBUTES], targets["attributes"], self.threshold_objective)
        return dataclasses.replace(card, thresholds=[float(t) for t in fitted],
                                   threshold_objective=self.threshold_objective, extra=extra)

    def prediction_columns(self, outputs: dict[str, np.ndarray], targets: dict[str, np.ndarray]) -> dict:
        probs = outputs[OUTPUT_ATTRIBUTES]
        labels = np.asarray(targets["attributes"])
        cols: dict[str, np.ndarray] = {}
        for i, n in enumerate(self.attributes):
            cols[f"{n}_label"] = labels[:, i]
            cols[f"{n}_prob"] = probs[:, i]
        return cols

    def format_metrics(self, metrics: dict) -> str:
        return metrics_table(metrics)

    def plot_metrics(self, metrics: dict, path: str | Path, title: str = "") -> None:
        plot_attribute_bars(metrics, path, title)


def plot_attribute_bars(metrics: dict, path: str | Path, title: str = "") -> None:
    """Per-attribute bar chart: accuracy and balanced accuracy with the thresholds, the same two at 0.5 as
    markers, and the majority-class baseline accuracy beside them."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from edgeface.fileio import save_figure

    per = metrics["per_attribute"]
    names = list(per)
    x = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(max(10, 0.32 * len(names)), 4.8))
    ax.bar(x - 0.27, [per[n]["accuracy"] for n in names], 0.27, label="accuracy")
    ax.bar(x, [per[n]["balanced_accuracy"] for n in names], 0.27, label="balanced accuracy")
    ax.bar(x + 0.27, [per[n]["baseline_accuracy"] for n in names], 0.27, label="majority-class accuracy",
           color="0.7")
    ax.plot(x - 0.27, [per[n]["accuracy_at_0.5"] for n in names], "k_", ms=8, mew=2, label="accuracy at 0.5")
    ax.plot(x, [per[n]["balanced_accuracy_at_0.5"] for n in names], "r_", ms=8, mew=2, label="balanced accuracy at 0.5")
    ax.axhline(0.5, color="k", lw=0.6, ls=":")
    ax.set_xticks(x, names, rotation=90, fontsize=7)
    ax.set_ylim(0, 1)
    ax.set_ylabel("on the evaluated split")
    objective = f" (thresholds for {metrics['threshold_objective']})" if metrics.get("threshold_objective") else ""
    means = (f"{metrics['n']} faces: mean accuracy {metrics['mean_accuracy']:.3f}, mean balanced accuracy "
             f"{metrics['mean_balanced_accuracy']:.3f}{objective}; at 0.5 {metrics['mean_accuracy_at_0.5']:.3f} / "
             f"{metrics['mean_balanced_accuracy_at_0.5']:.3f}; majority class {metrics['baseline_mean_accuracy']:.3f}"
             f" / {metrics['baseline_mean_balanced_accuracy']:.3f}")
    ax.set_title(f"{title}\n{means}" if title else means, fontsize=9)
    ax.legend(fontsize=8, ncol=5, loc="lower left")
    fig.tight_layout()
    save_figure(fig, path, dpi=110)


def metrics_table(metrics: dict) -> str:
    """A readable Markdown table of the per-attribute figures and the means: with the thresholds, at 0.5,
    and the majority-class baseline."""
    lines = ["| attribute | positive rate | threshold | accuracy | balanced acc | accuracy at 0.5 "
             "| balanced acc at 0.5 | majority acc | majority balanced acc |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for n, m in metrics["per_attribute"].items():
        lines.append(f"| {n} | {m['positive_rate']:.3f} | {m['threshold']:.2f} | {m['accuracy']:.3f} | "
                     f"{m['balanced_accuracy']:.3f} | {m['accuracy_at_0.5']:.3f} | {m['balanced_accuracy_at_0.5']:.3f} "
                     f"| {m['baseline_accuracy']:.3f} | {m['baseline_balanced_accuracy']:.3f} |")
    lines.append(f"| **mean** | | | **{metrics['mean_accuracy']:.3f}** | **{metrics['mean_balanced_accuracy']:.3f}** "
                 f"| {metrics['mean_accuracy_at_0.5']:.3f} | {metrics['mean_balanced_accuracy_at_0.5']:.3f} "
                 f"| {metrics['baseline_mean_accuracy']:.3f} | {metrics['baseline_mean_balanced_accuracy']:.3f} |")
    if "thresholds" in metrics:
        objective = metrics.get("threshold_objective")
        lines += ["", f"Thresholds: {metrics['thresholds']}" + (f", objective {objective}." if objective else ".")]
    if "landmark_nme" in metrics:
        lines.append("")
        lines.append(f"Landmark NME (inter-ocular, {metrics['landmark_n']} faces): {metrics['landmark_nme']:.4f} "
                     f"(mean-shape baseline {metrics['landmark_nme_baseline_template']:.4f})")
    return "\n".join(lines)
