"""Attribute thresholds for a named objective: exact fitting, the card that carries them, eval's figures."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from edgeface.card import THRESHOLD_OBJECTIVES, ModelCard
from edgeface.models import create_model
from edgeface.models.checkpoint import load_checkpoint, save_checkpoint
from edgeface.preprocess import PreprocessSpec
from edgeface.train.attributes import AttributeTask, attribute_metrics, fit_thresholds

SPEC = PreprocessSpec(input_size=32)
NEGATIVES = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8]


def _fit(negatives: list[float], positives: list[float], objective: str) -> float:
    scores = np.array(negatives + positives)[:, None]
    labels = np.array([0] * len(negatives) + [1] * len(positives))[:, None]
    return float(fit_thresholds(scores, labels, objective)[0])


def _objective(decisions: np.ndarray, labels: np.ndarray, objective: str) -> float:
    tp, fp = np.sum(decisions & labels), np.sum(decisions & ~labels)
    fn, tn = np.sum(~decisions & labels), np.sum(~decisions & ~labels)
    if objective == "accuracy":
        return (tp + tn) / len(labels)
    if objective == "balanced":
        return (tp / (tp + fn) + tn / (tn + fp)) / 2
    return 2 * tp / max(2 * tp + fp + fn, 1)


def _brute_force(scores: np.ndarray, labels: np.ndarray, objective: str) -> float:
    """Every cut tried one by one: below all, between each pair of distinct scores, above all (below 1)."""
    values = np.unique(scores)
    cuts = [values[0] / 2, *((values[:-1] + values[1:]) / 2)] + ([(values[-1] + 1) / 2] if values[-1] < 1 else [])
    results = [_objective(scores >= t, labels, objective) for t in cuts]
    best = max(results)
    return min((t for t, r in zip(cuts, results, strict=True) if r >= best - 1e-12), key=lambda t: abs(t - 0.5))


@pytest.mark.parametrize("objective", THRESHOLD_OBJECTIVES)
def test_separable_scores_are_cut_between_the_classes(objective):
    threshold = _fit([0.1, 0.2, 0.3], [0.6, 0.7], objective)
    assert threshold == pytest.approx(0.45)  # the only cut that separates them, midway between 0.3 and 0.6
    scores, labels = np.array([[0.1], [0.2], [0.3], [0.6], [0.7]]), np.array([[0], [0], [0], [1], [1]])
    assert attribute_metrics(scores, labels, ["a"], [threshold])["mean_accuracy"] == 1.0


def test_accuracy_and_balanced_pick_different_cuts_on_imbalanced_scores():
    # 8 negatives, positives at 0.58 and 0.8: catching both costs 3 false positives (0.6, 0.7, 0.8)
    positives = [0.58, 0.8]
    assert _fit(NEGATIVES, positives, "accuracy") == pytest.approx(0.75)  # 8/10 (ties all-negative, nearer 0.5)
    assert _fit(NEGATIVES, positives, "balanced") == pytest.approx(0.54)  # TPR 1, TNR 5/8: 0.8125
    assert _fit(NEGATIVES, positives, "f1") == pytest.approx(0.54)  # 4/7, against 1/2 at 0.75


def test_f1_ignores_true_negatives_where_balanced_accuracy_counts_their_rate():
    negatives = list((np.arange(20) + 0.5) / 20)  # 0.025 ... 0.975
    positives = [0.8, 0.99]
    assert _fit(negatives, positives, "balanced") == pytest.approx(0.7875)  # TPR 1, TNR 16/20: 0.9
    assert _fit(negatives, positives, "f1") == pytest.approx(0.9825)  # 2/3, against 4/8 with both found
    assert _fit(negatives, positives, "accuracy") == pytest.approx(0.9825)  # 21/22


@pytest.mark.parametrize("objective", THRESHOLD_OBJECTIVES)
def test_fit_is_exact_against_trying_every_cut(objective):
    rng = np.random.default_rng(3)
    labels = rng.random((300, 6)) < [0.03, 0.1, 0.3, 0.5, 0.8, 0.97]
    scores = np.clip(np.round(0.3 * labels + rng.normal(0.35, 0.2, labels.shape), 2), 0, 1)  # ties, 0s and 1s
    fitted = fit_thresholds(scores, labels, objective)
    expected = [_brute_force(scores[:, a], labels[:, a], objective) for a in range(labels.shape[1])]
    np.testing.assert_allclose(fitted, expected, atol=1e-12)
    assert np.all((fitted >= 0) & (fitted <= 1))


def test_fit_edge_cases():
    assert fit_thresholds(np.full((10, 1), 0.3), np.ones((10, 1)))[0] == 0.5  # one class only: keep 0.5
    ones = np.array([[0.0], [0.0], [1.0], [1.0]])
    assert fit_thresholds(ones, np.array([[1], [1], [0], [1]]), "f1")[0] == 0  # everyone positive, though p = 0
    with pytest.raises(ValueError, match="unknown threshold objective 'recall'"):
        fit_thresholds(ones, ones, "recall")


def _card(**kw) -> ModelCard:
    return ModelCard("dmmcnn", "attributes", SPEC, attributes=["Smiling", "Male"], num_landmarks=5, **kw)


def test_objective_and_thresholds_round_trip_through_card_and_checkpoint(tmp_path):
    card = _card(thresholds=[0.25, 0.625], threshold_objective="balanced")
    again = ModelCard.from_json(card.to_json())
    assert again.thresholds == [0.25, 0.625] and again.threshold_objective == "balanced"
    torch.manual_seed(0)
    save_checkpoint(tmp_path / "m.pt", create_model("dmmcnn", attributes=card.attributes), card)
    _, loaded, _ = load_checkpoint(tmp_path / "m.pt")
    assert loaded == card
    assert AttributeTask.from_card(loaded).threshold_objective == "balanced"
    legacy = ModelCard.from_dict({k: v for k, v in card.to_dict().items() if k != "threshold_objective"})
    assert legacy.threshold_objective is None and AttributeTask.from_card(legacy).threshold_objective == "balanced"


@pytest.mark.parametrize(("changes", "message"), [
    ({"thresholds": [0.5, 0.5], "threshold_objective": "recall"}, "unknown threshold objective 'recall'"),
    ({"thresholds": [0.5, 1.5]}, r"must lie in \[0, 1\]"),
    ({"thresholds": [float("nan"), 0.5]}, r"must lie in \[0, 1\]"),
    ({"thresholds": [0.5]}, "1 thresholds for 2 attributes"),
    ({"thresholds": None, "threshold_objective": "accuracy"}, "has no thresholds"),
])
def test_card_rejects_bad_thresholds(changes, message, tmp_path):
    with pytest.raises(ValueError, match=message):
        ModelCard.from_dict({**_card().to_dict(), **changes})
    good = _card(thresholds=[0.5, 0.5], threshold_objective="f1")
    save_checkpoint(tmp_path / "m.pt", create_model("dmmcnn", attributes=good.attributes), good)
    ckpt = torch.load(tmp_path / "m.pt", weights_only=True)
    ckpt["card"] = {**ckpt["card"], **changes}
    torch.save(ckpt, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match=message):
        load_checkpoint(tmp_path / "bad.pt")


def test_task_fits_for_its_objective_and_reports_both_accuracies():
    names = ["a", "b"]
    negatives, positives = NEGATIVES, [0.58, 0.8]
    probs = np.array([[p, p] for p in negatives + positives])
    targets = {"attributes": np.array([[0, 0]] * len(negatives) + [[1, 1]] * len(positives), np.float32)}
    outputs = {"attr_probs": probs}
    for objective, metric, threshold in (("accuracy", "mean_accuracy", 0.75),
                                         ("balanced", "mean_balanced_accuracy", 0.54)):
        task = AttributeTask(names, threshold_objective=objective)
        assert task.primary_metric == metric
        card = task.finalize_card(task.make_card("dmmcnn", SPEC, "fixture"), outputs, targets)
        assert card.threshold_objective == objective and card.thresholds == pytest.approx([threshold] * 2)
        assert card.extra["attribute_task"]["threshold_objective"] == objective
        m = AttributeTask.from_card(card).metrics(outputs, targets)
        assert m["threshold_objective"] == objective
        assert m["mean_accuracy"] == pytest.approx(0.8 if objective == "accuracy" else 0.7)
        assert m["mean_balanced_accuracy"] == pytest.approx(0.6875 if objective == "accuracy" else 0.8125)
        assert m["mean_accuracy_at_0.5"] == pytest.approx(0.6)  # 0.5..0.8 and 0.58, 0.8 called positive
        per = m["per_attribute"]["a"]
        assert per["accuracy_at_0.5"] == pytest.approx(0.6) and per["balanced_accuracy_at_0.5"] == pytest.approx(0.75)
        assert per["baseline_accuracy"] == pytest.approx(0.8) and per["baseline_balanced_accuracy"] == 0.5
    off = AttributeTask(names, adaptive_thresholds=False)
    card = off.finalize_card(off.make_card("dmmcnn", SPEC, "fixture"), outputs, targets)
    assert card.thresholds is None and card.threshold_objective is None
    with pytest.raises(ValueError, match="unknown threshold objective"):
        AttributeTask(names, threshold_objective="precision")
