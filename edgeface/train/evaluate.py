"""One evaluation path for every model format: crops -> exported outputs (flip-merged) -> the task's metrics.

The trainer's validation passes its in-memory model through :func:`model_infer`; ``edgeface eval`` and
the convert stage's drift gate pass any runtime Runner (checkpoint, ONNX, OpenVINO, TensorRT). Both end
in :func:`predict_outputs` and ``TrainingTask.metrics``, so a number means the same thing for every artifact.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

import numpy as np

from edgeface.card import ModelCard
from edgeface.decode import merge_flipped
from edgeface.fileio import atomic_path
from edgeface.preprocess import PreprocessSpec, flip_input, to_input
from edgeface.progress import progress as progress_bar
from edgeface.train.tasks import TrainingTask, training_task_from_card

Infer = Callable[[np.ndarray], dict[str, np.ndarray]]


def predict_outputs(infer: Infer, crops: np.ndarray, spec: PreprocessSpec, card: ModelCard, flip: bool = True,
                    batch_size: int = 64, progress: bool = False) -> dict[str, np.ndarray]:
    """Exported outputs ({name: array over all crops}) for aligned uint8 crops; with ``flip`` each batch
    is averaged with its mirror image (DLDL-v2's test-time flip, via :func:`edgeface.decode.merge_flipped`)."""
    if len(crops) == 0:
        raise ValueError("no faces to evaluate")
    chunks: dict[str, list[np.ndarray]] = {}
    for start in progress_bar(range(0, len(crops), batch_size), "predict", progress, unit="batch",
                              leave=False):
        x = to_input(crops[start:start + batch_size], spec)
        out = infer(x)
        if flip:
            out = merge_flipped(card, out, infer(flip_input(x, spec)))
        for name, value in out.items():
            chunks.setdefault(name, []).append(np.asarray(value, dtype=np.float32))
    return {name: np.concatenate(parts) for name, parts in chunks.items()}


def model_infer(model, device) -> Infer:
    """An ``infer`` function over an in-memory torch model (eval mode, no grad), shaped like Runner.infer."""
    import torch

    def infer(x: np.ndarray) -> dict[str, np.ndarray]:
        with torch.inference_mode():
            outs = model(torch.from_numpy(x).to(device))
        return {n: o.float().cpu().numpy() for n, o in zip(model.output_names, outs, strict=True)}

    return infer


def evaluate_runner(runner, crops: np.ndarray, targets: dict[str, np.ndarray], task: TrainingTask | None = None,
                    flip: bool = True, batch_size: int = 64,
                    progress: bool = False) -> tuple[dict, dict[str, np.ndarray]]:
    """(metrics, outputs) of a loaded Runner on aligned crops made with the runner card's PreprocessSpec.

    ``targets`` are the data set's stacked targets (``FaceSet.targets``); ``task`` defaults to the one the
    runner's card names. ``outputs`` are the flip-merged exported outputs, one row per crop.
    """
    card = runner.card
    task = task or training_task_from_card(card)
    if crops.shape[1] != card.preprocess.input_size:
        raise ValueError(f"crops are {crops.shape[1]} px but the model expects {card.preprocess.input_size} px")
    outputs = predict_outputs(runner.infer, crops, card.preprocess, card, flip, batch_size, progress)
    return task.metrics(outputs, targets), outputs


def write_predictions(path: str | Path, paths: list[str], columns: dict[str, np.ndarray]) -> None:
    """Per-image predictions CSV (``image`` + the task's columns), written atomically."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["image", *columns])
        for i, image in enumerate(paths):
            writer.writerow([image, *(f"{float(col[i]):.4f}" for col in columns.values())])
