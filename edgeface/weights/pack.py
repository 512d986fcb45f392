"""``edgeface weights pack``: a trained checkpoint -> shipped weights (FP16 storage) and their index entry.

For maintainers: the packed file keeps the card (with the training data's terms, the recipe and the measured
metrics added to ``card.extra``), the training config and the weights, convolution and linear weights stored as
FP16 (loading casts them back to FP32). Packing refuses a checkpoint whose card cannot fill the index (no training data
named, SYNTHETIC data, no metrics, no terms) and one whose FP16 storage moves predictions on the shipped sample
faces by more than the convert drift gate allows FP16.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from edgeface.fileio import PendingFile, portable_path, sha256_file
from edgeface.weights import INDEX, INDEX_FORMAT, NAME_PATTERN, WEIGHTS_DIR, load_index

STORAGE = "float16"  # of the weight tensors; 1-D tensors stay float32 (fp16_storage)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from edgeface.cli import add_debug_argument

    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    pack = sub.add_parser("pack", help="add or replace shipped weights (maintainers)",
                          description=__doc__.split("\n\n")[0])
    pack.add_argument("checkpoint", type=Path, help="trained edgeface checkpoint (best.pt)")
    pack.add_argument("--name", required=True, help="name users give to load it (e.g. tinyagenet)")
    pack.add_argument("--recipe", required=True, help="the command that trained the checkpoint")
    pack.add_argument("--data-terms", help="the training data's terms of use (default: the card's data_terms)")
    pack.add_argument("--metrics", help="measured metrics as a JSON object or a JSON file (default: the card's "
                                        "val_metrics)")
    add_debug_argument(pack)


def main(args: argparse.Namespace) -> int:
    metrics = _read_metrics(args.metrics) if args.metrics else None
    entry = pack_checkpoint(args.checkpoint, args.name, args.recipe, args.data_terms, metrics)
    trip = entry["storage"]["roundtrip"]
    print(f"packed {args.name}: {WEIGHTS_DIR / entry['file']} ({entry['bytes'] / 2**20:.2f} MiB, sha256 "
          f"{entry['sha256'][:12]}...), {entry['model']} {entry['task']} {entry['input_size']} px; FP16 storage on "
          f"{trip['faces']} sample faces: {trip['metric']} {trip['value']:.4f} (limit {trip['limit']} {trip['units']})")
    print(f"index: {INDEX}")
    return 0


def _read_metrics(text: str) -> dict:
    source = Path(text).read_text() if Path(text).is_file() else text
    try:
        metrics = json.loads(source)
    except json.JSONDecodeError as e:
        raise ValueError(f"--metrics: neither a JSON object nor a JSON file ({e.msg})") from e
    if not isinstance(metrics, dict):
        raise ValueError("--metrics must be a JSON object of metric names and values")
    return metrics


def scalar_metrics(metrics: dict) -> dict:
    """The scalar metrics (per-decade and per-attribute tables stay in the card)."""
    return {k: v for k, v in metrics.items() if isinstance(v, int | float) and not isinstance(v, bool)}


def pack_checkpoint(checkpoint: str | Path, name: str, recipe: str, data_terms: str | None = None,
                    metrics: dict | None = None, folder: Path | None = None) -> dict:
    """Write ``folder/NAME.pt`` and its entry in ``folder/weights.json`` (default: the package's weights folder);
    returns the entry. Both files are written beside their destination and renamed into place together."""
    import torch

    from edgeface.models import list_models
    from edgeface.models.checkpoint import CHECKPOINT_FORMAT, build_model, fp32_state, load_checkpoint

    folder = Path(folder or WEIGHTS_DIR)
    if not NAME_PATTERN.match(name):
        raise ValueError(f"--name {name!r}: use lower-case letters, digits and dashes (e.g. tinyagenet)")
    model, card, ckpt = load_checkpoint(checkpoint)
    if name in list_models() and name != card.model:
        raise ValueError(f"--name {name} is the zoo model {name}, but the checkpoint is a {card.model}")
    if not card.data.strip():
        raise ValueError(f"{checkpoint}: its card names no training data; only weights trained on named data ship")
    if card.synthetic:
        raise ValueError(f"{checkpoint} was trained on SYNTHETIC data: nothing to ship")
    metrics = metrics or card.extra.get("val_metrics")
    if not metrics or not scalar_metrics(metrics):
        raise ValueError(f"{checkpoint}: its card has no measured metrics (extra.val_metrics); pass --metrics")
    terms = (data_terms or card.extra.get("data_terms") or "").strip()
    if not terms:
        raise ValueError(f"{checkpoint}: its card does not state the training data's terms; pass --data-terms")
    if not recipe.strip():
        raise ValueError("--recipe: give the command that trained the checkpoint")

    card.data = portable_data(card.data)
    card.extra.update(weights=name, data_terms=terms, recipe=recipe.strip(), metrics=scalar_metrics(metrics))
    state = fp16_storage(model.state_dict())
    payload = {"format": CHECKPOINT_FORMAT, "card": card.to_dict(), "model": state, "storage": STORAGE,
               "config": portable_config(ckpt.get("config") or _run_config(Path(checkpoint))),
               "source": {"sha256": sha256_file(checkpoint), "epoch": ckpt.get("epoch")}}
    packed = build_model(card)
    packed.load_state_dict(fp32_state(state))
    roundtrip = storage_drift(model, packed.eval(), card)
    if not roundtrip["passed"]:
        raise ValueError(f"FP16 storage moves {name}'s predictions on the sample faces too much: {roundtrip['metric']} "
                         f"{roundtrip['value']:.4f} > {roundtrip['limit']} {roundtrip['units']}")

    file = f"{name}.pt"
    entries = load_index(folder / INDEX.name)
    weights_file, index_file = PendingFile(folder / file), PendingFile(folder / INDEX.name)
    try:
        torch.save(payload, weights_file.tmp)
        entry = {"file": file, "sha256": sha256_file(weights_file.tmp), "bytes": weights_file.tmp.stat().st_size,
                 "model": card.model, "task": card.task, "input_size": card.preprocess.input_size,
                 "metrics": scalar_metrics(metrics), "data": card.data, "data_terms": terms,
                 "recipe": recipe.strip(), "storage": {"dtype": STORAGE, "roundtrip": roundtrip},
                 "source_sha256": payload["source"]["sha256"]}
        entries[name] = entry
        index_file.tmp.write_text(json.dumps({"format": INDEX_FORMAT, "weights": entries}, indent=2) + "\n")
        weights_file.commit()
        index_file.commit()
    finally:
        weights_file.discard()
        index_file.discard()
    return entry


def fp16_storage(state: dict) -> dict:
    """Convolution and linear weights (float tensors of 2+ dimensions: nearly all the bytes) as FP16; biases and
    BatchNorm parameters and statistics stay FP32 (they cost little and FP16 running variances move predictions
    most: 8x more on ThinAgeNet)."""
    return {k: v.half() if v.is_floating_point() and v.ndim > 1 else v for k, v in state.items()}


def portable_data(data: str) -> str:
    """A card's ``FORMAT:PATH`` with the path as results record it (no host folders in shipped files)."""
    fmt, sep, path = data.partition(":")
    return f"{fmt}:{portable_path(path)}" if sep and Path(path).is_absolute() else data


def portable_config(config: dict | None) -> dict | None:
    """A training config with its absolute paths (data, out, cache...) made portable."""
    if config is None:
        return None
    return {k: portable_path(v) if isinstance(v, str) and Path(v).is_absolute() else v for k, v in config.items()}


def _run_config(checkpoint: Path) -> dict | None:
    """The training config of a checkpoint saved without one: the run folder's config.json, when there."""
    path = checkpoint.parent / "config.json"
    return json.loads(path.read_text()) if path.is_file() else None


def storage_drift(reference, packed, card) -> dict:
    """How much FP16 storage moves the model's predictions on the shipped sample faces, gated like the convert
    step's FP16 artifacts: the mean |change| of the predicted value (which bounds the MAE change on any labels)
    for age and attractiveness, the share of changed attribute decisions in points (which bounds the accuracy
    change) for attributes."""
    import torch

    from edgeface.card import OUTPUT_ATTRIBUTES, OUTPUT_EXPECTATION
    from edgeface.convert.pipeline import DEFAULT_GATES
    from edgeface.preprocess import to_input

    x = torch.from_numpy(to_input(sample_crops(card.preprocess), card.preprocess))
    with torch.inference_mode():
        ref = dict(zip(card.outputs, (o.numpy() for o in reference(x)), strict=True))
        new = dict(zip(card.outputs, (o.numpy() for o in packed(x)), strict=True))
    max_abs = {k: float(np.max(np.abs(new[k] - ref[k]))) for k in ref}
    if card.task == "attributes":
        thresholds = np.asarray(card.thresholds or [0.5] * len(card.attributes or []), np.float32)
        changed = (ref[OUTPUT_ATTRIBUTES] >= thresholds) != (new[OUTPUT_ATTRIBUTES] >= thresholds)
        metric, value, limit, units = "changed_decisions", 100.0 * float(changed.mean()), \
            float(DEFAULT_GATES["mean_accuracy"]), "points"
    else:
        metric, limit, units = "mean_abs_change", float(DEFAULT_GATES["mae"]["fp16"]), card.label_space.unit
        value = float(np.mean(np.abs(new[OUTPUT_EXPECTATION] - ref[OUTPUT_EXPECTATION])))
    return {"faces": len(x), "metric": metric, "value": value, "limit": limit, "units": units,
            "passed": value <= limit, "max_abs_diff": max_abs}


def sample_crops(spec) -> np.ndarray:
    """The shipped sample faces, detected by the shipped YuNet and aligned as the card's preprocessing says."""
    from edgeface.assets import DETECTOR, FACE_LABELS
    from edgeface.data.datasets import DataIssues, load_samples, prepare_faces

    issues = DataIssues()
    samples = load_samples("csv", FACE_LABELS, issues, label_col="age")
    return prepare_faces(samples, spec, issues, "sample faces", DETECTOR, progress=False).crops
