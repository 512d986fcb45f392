"""Turn raw network outputs into per-face results; shared by eval, the Predictor and the DeepStream probe."""

from __future__ import annotations

import numpy as np

from edgeface.card import (
    OUTPUT_ATTRIBUTES,
    OUTPUT_EXPECTATION,
    OUTPUT_LANDMARKS,
    OUTPUT_PROBS,
    ModelCard,
)
from edgeface.labels import distribution_std, expectation


def merge_flipped(card: ModelCard, outputs: dict[str, np.ndarray], flipped: dict[str, np.ndarray]) -> dict:
    """Average the outputs of a batch and its mirror image (DLDL-v2's test-time flip).

    Distributions and attribute probabilities average directly; landmarks are taken from the
    unflipped pass because mirroring swaps left and right points.
    """
    merged = dict(outputs)
    for name in (OUTPUT_PROBS, OUTPUT_EXPECTATION, OUTPUT_ATTRIBUTES):
        if name in outputs:
            merged[name] = (outputs[name].astype(np.float32) + flipped[name].astype(np.float32)) / 2
    return merged


def decode(card: ModelCard, outputs: dict[str, np.ndarray]) -> list[dict]:
    """One dict per batch row: value and std (label-distribution tasks), or attribute
    probabilities, decisions with the card's thresholds, and landmarks (attribute task)."""
    if card.task == "attributes":
        probs = np.asarray(outputs[OUTPUT_ATTRIBUTES], dtype=np.float32)
        decisions = decision_matrix(card, probs)
        landmarks = outputs.get(OUTPUT_LANDMARKS)
        rows = []
        for i in range(probs.shape[0]):
            row = {
                "attributes": {n: float(p) for n, p in zip(card.attributes or [], probs[i], strict=True)},
                "decisions": {n: bool(d) for n, d in zip(card.attributes or [], decisions[i], strict=True)},
            }
            if landmarks is not None:
                row["landmarks"] = np.asarray(landmarks[i], dtype=np.float32).reshape(-1, 2).tolist()
            rows.append(row)
        return rows
    probs = np.asarray(outputs[OUTPUT_PROBS], dtype=np.float32)
    values = expectation(probs, card.label_space)
    stds = distribution_std(probs, card.label_space)
    return [{card.task: float(v), f"{card.task}_std": float(s)} for v, s in zip(values, stds, strict=True)]


def decision_matrix(card: ModelCard, attr_probs: np.ndarray) -> np.ndarray:
    """Boolean decisions for a batch with the card's fitted thresholds (0.5 when it has none)."""
    thresholds = np.asarray(card.thresholds or [0.5] * attr_probs.shape[1], dtype=np.float32)
    return np.asarray(attr_probs) >= thresholds

