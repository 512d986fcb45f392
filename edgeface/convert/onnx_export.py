"""Checkpoint -> ONNX FP32: legacy TorchScript exporter, dynamic batch, the card in metadata_props, onnxsim."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from edgeface import __version__
from edgeface.card import CARD_KEY, INPUT_NAME, ModelCard
from edgeface.convert.metadata import strip_tool_metadata
from edgeface.fileio import atomic_path

if TYPE_CHECKING:
    from edgeface.convert.pipeline import BuildJob

DEFAULT_OPSET = 17


def set_metadata(model, card: ModelCard) -> None:
    """Write the card (label space, preprocessing, thresholds...) and the edgeface version into metadata_props."""
    props = {
        CARD_KEY: card.to_json(),
        "edgeface_version": __version__,
        "model": card.model,
        "task": card.task,
        "label_space": json.dumps(card.label_space.to_dict() if card.label_space else None),
        "preprocess": json.dumps(card.preprocess.to_dict()),
        "thresholds": json.dumps(card.thresholds),
        "threshold_objective": json.dumps(card.threshold_objective),
    }
    kept = [p for p in model.metadata_props if p.key not in props]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    for key, value in props.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value


def ort_outputs(model_or_path, x: np.ndarray) -> dict[str, np.ndarray]:
    """Run an ONNX model (proto or path) once on CPU: the reference check for every graph rewrite."""
    import onnxruntime as ort

    data = model_or_path.SerializeToString() if hasattr(model_or_path, "SerializeToString") else str(model_or_path)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(None, {INPUT_NAME: x}), strict=True))


def max_abs_diff(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> float:
    return max(float(np.max(np.abs(a[k].astype(np.float64) - b[k].astype(np.float64)))) for k in a)


def export_onnx(model, card: ModelCard, path: str | Path, sample: np.ndarray, opset: int = DEFAULT_OPSET,
                simplify: bool = True, tolerance: float = 1e-3) -> dict:
    """Export ``model`` (eval mode) to ``path``; returns notes {opset, simplified, note, max_abs_diff_torch}.

    ``sample`` is a float32 NCHW batch of real preprocessed faces: the graph is checked against PyTorch on it,
    and the simplified graph against the unsimplified one (kept when onnxsim fails or changes outputs).
    """
    import onnx
    import torch

    if opset < 17:
        raise ValueError(f"opset {opset} is too old; 17 or newer is required")
    model = model.eval()
    names = list(model.output_names)
    x = torch.from_numpy(np.ascontiguousarray(sample[:1], dtype=np.float32))
    with atomic_path(path) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model, (x,), str(tmp), input_names=[INPUT_NAME], output_names=names, opset_version=opset,
            dynamic_axes={INPUT_NAME: {0: "batch"}, **{n: {0: "batch"} for n in names}},
            do_constant_folding=True, dynamo=False,
        )
        graph = onnx.load(str(tmp))
        onnx.checker.check_model(graph)
        reference = ort_outputs(graph, sample)
        notes = {"opset": opset, "simplified": False, "note": ""}
        if simplify:
            graph, notes["note"] = _simplify(graph, sample, reference, tolerance)
            notes["simplified"] = not notes["note"]
        strip_tool_metadata(graph)
        set_metadata(graph, card)
        onnx.checker.check_model(graph)
        onnx.save(graph, str(tmp))
        with torch.inference_mode():
            torch_out = dict(zip(names, (o.numpy() for o in model(torch.from_numpy(sample))), strict=True))
        notes["max_abs_diff_torch"] = max_abs_diff(torch_out, ort_outputs(tmp, sample))
        if notes["max_abs_diff_torch"] > tolerance * 10:
            raise RuntimeError(f"exported ONNX differs from PyTorch by {notes['max_abs_diff_torch']:.3g}")
    return notes


def _simplify(graph, sample: np.ndarray, reference: dict, tolerance: float):
    """(simplified graph, "") or (original graph, why it was kept)."""
    try:
        import onnxsim
    except ImportError:
        return graph, "onnxsim not installed: unsimplified graph kept"
    try:
        simplified, ok = onnxsim.simplify(graph)
    except Exception as e:  # onnxsim raises assorted C++ errors
        return graph, f"onnxsim failed ({type(e).__name__}): unsimplified graph kept"
    if not ok:
        return graph, "onnxsim could not validate its graph: unsimplified graph kept"
    diff = max_abs_diff(reference, ort_outputs(simplified, sample))
    if diff > tolerance:
        return graph, f"onnxsim changed outputs by {diff:.3g}: unsimplified graph kept"
    return simplified, ""


def build(job: BuildJob) -> dict:
    """The ``onnx`` target's build function (see :data:`edgeface.targets.TARGETS`)."""
    return export_onnx(job.model, job.card, job.out, job.sample, job.options.opset, job.options.simplify)
