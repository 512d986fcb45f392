"""Label-distribution core of DLDL-v2 (numpy): label spaces, Gaussian targets, expectation, uncertainty.

The runtime decodes every label-distribution model with these functions; training has torch twins in
``edgeface.train.losses`` that are tested against them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class LabelSpace:
    """Evenly spaced label bins ``start, start + step, ..., stop`` (both ends included)."""

    start: float
    stop: float
    step: float
    unit: str = ""

    def __post_init__(self) -> None:
        if self.step <= 0 or self.stop <= self.start:
            raise ValueError(f"invalid label space {self}: need start < stop and step > 0")

    @property
    def num_bins(self) -> int:
        return int(round((self.stop - self.start) / self.step)) + 1

    @property
    def bins(self) -> np.ndarray:
        return (self.start + self.step * np.arange(self.num_bins)).astype(np.float32)

    def contains(self, label: float) -> bool:
        return self.start - 1e-6 <= label <= self.stop + 1e-6

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> LabelSpace:
        return cls(float(d["start"]), float(d["stop"]), float(d["step"]), str(d.get("unit", "")))


AGE = LabelSpace(0.0, 100.0, 1.0, "years")
"""Age 0..100 in 1-year bins (K = 101), the paper's setting."""


def attractiveness_space(low: float, high: float) -> LabelSpace:
    """Score bins of 0.1 over a rating scale (the paper uses 1..5 for SCUT-FBP; 3DSK is 1..7)."""
    return LabelSpace(low, high, 0.1, "score")


def gaussian_distribution(labels: np.ndarray | float, sigmas: np.ndarray | float, space: LabelSpace) -> np.ndarray:
    """Discretised Gaussian N(label, sigma^2) over the bins, normalised to sum to 1 (shape (..., K))."""
    labels = np.asarray(labels, dtype=np.float64)[..., None]
    sigmas = np.maximum(np.asarray(sigmas, dtype=np.float64), 1e-3)[..., None]
    logits = -((space.bins.astype(np.float64) - labels) ** 2) / (2.0 * sigmas**2)
    logits -= logits.max(axis=-1, keepdims=True)
    dist = np.exp(logits)
    return (dist / dist.sum(axis=-1, keepdims=True)).astype(np.float32)


def expectation(dist: np.ndarray, space: LabelSpace) -> np.ndarray:
    """The prediction of DLDL-v2: the mean of the predicted distribution."""
    return (np.asarray(dist, dtype=np.float64) @ space.bins.astype(np.float64)).astype(np.float32)


def distribution_std(dist: np.ndarray, space: LabelSpace) -> np.ndarray:
    """Standard deviation of the predicted distribution: a per-face uncertainty in label units."""
    dist = np.asarray(dist, dtype=np.float64)
    bins = space.bins.astype(np.float64)
    mean = dist @ bins
    var = dist @ (bins**2) - mean**2
    return np.sqrt(np.maximum(var, 0.0)).astype(np.float32)


def kl_divergence(target: np.ndarray, pred: np.ndarray, eps: float = 1e-8) -> np.ndarray:
    """KL(target || pred) per row."""
    target = np.asarray(target, dtype=np.float64)
    pred = np.asarray(pred, dtype=np.float64)
    return np.sum(target * (np.log(target + eps) - np.log(pred + eps)), axis=-1)


def epsilon_error(pred: np.ndarray, mu: np.ndarray, sigma: np.ndarray) -> float:
    """ChaLearn epsilon-error: mean of 1 - exp(-(y_hat - mu)^2 / (2 sigma^2))."""
    pred, mu = np.asarray(pred, dtype=np.float64), np.asarray(mu, dtype=np.float64)
    sigma = np.maximum(np.asarray(sigma, dtype=np.float64), 1e-6)
    return float(np.mean(1.0 - np.exp(-((pred - mu) ** 2) / (2.0 * sigma**2))))
