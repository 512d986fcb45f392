"""DLDL-v2 loss: torch twins match edgeface.labels, and the gradient drives the expectation to the label."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from edgeface.labels import AGE, attractiveness_space, expectation, gaussian_distribution, kl_divergence
from edgeface.train.losses import dldl_loss, gaussian_targets
from edgeface.train.losses import expectation as t_expectation
from edgeface.train.tasks import regression_metrics


@pytest.mark.parametrize("space", [AGE, attractiveness_space(1, 7)])
def test_torch_twins_match_numpy(space):
    rng = np.random.default_rng(0)
    labels = rng.uniform(space.start, space.stop, 5)
    sigmas = rng.uniform(0.3, 4.0, 5)
    bins = torch.from_numpy(space.bins).double()
    t = gaussian_targets(torch.from_numpy(labels), torch.from_numpy(sigmas), bins).numpy()
    np.testing.assert_allclose(t, gaussian_distribution(labels, sigmas, space), atol=1e-6)
    np.testing.assert_allclose(t_expectation(torch.from_numpy(t), bins).numpy(), expectation(t, space), atol=1e-4)


def test_loss_parts_are_kl_and_l1():
    logits = torch.randn(4, AGE.num_bins, dtype=torch.float32)
    labels, sigmas = torch.tensor([3.0, 20.0, 55.0, 90.0]), torch.full((4,), 2.0)
    bins = torch.from_numpy(AGE.bins)
    loss, parts = dldl_loss(logits, labels, sigmas, bins, lam=0.5)
    probs = torch.softmax(logits, 1).numpy()
    target = gaussian_distribution(labels.numpy(), sigmas.numpy(), AGE)
    assert parts["kl"] == pytest.approx(kl_divergence(target, probs).mean(), rel=1e-3)
    assert parts["l1"] == pytest.approx(np.abs(expectation(probs, AGE) - labels.numpy()).mean(), rel=1e-4)
    assert float(loss) == pytest.approx(parts["kl"] + 0.5 * parts["l1"], rel=1e-5)


def test_gradient_drives_expectation_to_label():
    labels = torch.tensor([7.0, 42.0, 81.0])
    logits = torch.zeros(3, AGE.num_bins, requires_grad=True)  # starts at the uniform distribution (mean 50)
    bins = torch.from_numpy(AGE.bins)
    opt = torch.optim.Adam([logits], lr=0.1)
    for _ in range(300):
        loss, _ = dldl_loss(logits, labels, torch.full((3,), 2.0), bins)
        opt.zero_grad()
        loss.backward()
        opt.step()
    pred = t_expectation(torch.softmax(logits.detach(), 1), bins)
    assert torch.allclose(pred, labels, atol=0.5), pred


def test_regression_metrics_known_case():
    pred = np.array([10.0, 22.0, 30.0, 47.0])
    label = np.array([12.0, 20.0, 36.0, 47.0])
    m = regression_metrics(pred, label, sigma=np.array([2.0, np.nan, 3.0, 1.0]), per_decade=True)
    assert m["mae"] == pytest.approx(2.5)
    assert m["rmse"] == pytest.approx(np.sqrt((4 + 4 + 36 + 0) / 4))
    assert m["cs@5"] == pytest.approx(0.75)
    assert m["spearman"] == pytest.approx(1.0)
    assert m["pearson"] == pytest.approx(np.corrcoef(pred, label)[0, 1])
    expected_eps = np.mean([1 - np.exp(-4 / 8), 1 - np.exp(-36 / 18), 0.0])  # the NaN-sigma row is left out
    assert m["epsilon_error"] == pytest.approx(expected_eps)
    assert m["mae_per_decade"] == {"10-19": 2.0, "20-29": 2.0, "30-39": 6.0, "40-49": 0.0}


def test_spearman_handles_ties_and_empty_input():
    m = regression_metrics(np.array([1.0, 1.0, 2.0, 3.0]), np.array([1.0, 2.0, 2.0, 3.0]))
    assert m["spearman"] == pytest.approx(5 / 6)  # average ranks, scipy.stats.spearmanr's value
    with pytest.raises(ValueError, match="no predictions"):
        regression_metrics(np.array([]), np.array([]))
