"""DLDL-v2's loss in torch: KL(Gaussian label distribution || softmax) + lambda * L1(expectation, label).

The torch functions here are twins of the numpy ones in :mod:`edgeface.labels` (the runtime's decoder)
and are tested against them, so training optimises exactly what deployment reads out.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def gaussian_targets(labels: torch.Tensor, sigmas: torch.Tensor, bins: torch.Tensor) -> torch.Tensor:
    """(N, K) discretised N(label, sigma^2) over ``bins``, each row summing to 1."""
    sigmas = sigmas.clamp_min(1e-3)
    logits = -((bins[None, :] - labels[:, None]) ** 2) / (2.0 * sigmas[:, None] ** 2)
    return torch.softmax(logits, dim=1)


def expectation(probs: torch.Tensor, bins: torch.Tensor) -> torch.Tensor:
    """The predicted value: the mean of the predicted distribution."""
    return probs @ bins


def dldl_loss(logits: torch.Tensor, labels: torch.Tensor, sigmas: torch.Tensor, bins: torch.Tensor,
              lam: float = 1.0) -> tuple[torch.Tensor, dict[str, float]]:
    """Mean over the batch of KL(target || softmax(logits)) + lam * |E[softmax] - label|.

    Returns the scalar loss and its two parts (for the log).
    """
    logits = logits.float()
    log_probs = F.log_softmax(logits, dim=1)
    target = gaussian_targets(labels.float(), sigmas.float(), bins)
    kl = (target * (torch.log(target.clamp_min(1e-12)) - log_probs)).sum(dim=1).mean()
    l1 = (expectation(log_probs.exp(), bins) - labels.float()).abs().mean()
    return kl + lam * l1, {"kl": float(kl.detach()), "l1": float(l1.detach())}
