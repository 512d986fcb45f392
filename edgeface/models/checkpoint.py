"""Checkpoints: the weights plus the model card, so every later stage needs only this one file."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from edgeface.card import ModelCard
from edgeface.errors import CardError, CheckpointError, first_line
from edgeface.fileio import atomic_path
from edgeface.models.registry import create_model
from edgeface.weights import resolve_model, verify_packed

CHECKPOINT_FORMAT = "edgeface-checkpoint/1"


def build_model(card: ModelCard) -> nn.Module:
    """A fresh (untrained) network shaped as the card says."""
    if card.task == "attributes":
        return create_model(card.model, attributes=card.attributes)
    return create_model(card.model, label_space=card.label_space)


def save_checkpoint(path: str | Path, model: nn.Module, card: ModelCard, **state) -> None:
    """Write atomically: model weights, card, and any training state (optimiser, epoch, RNG...)."""
    model = getattr(model, "module", model)  # unwrap DDP
    payload = {"format": CHECKPOINT_FORMAT, "card": card.to_dict(), "model": model.state_dict(), **state}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def read_checkpoint(path: str | Path) -> dict:
    """The raw checkpoint dict, loaded with weights_only=True (a model file is untrusted input); a shipped weight
    is checked against the sha256 of its index entry first."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    verify_packed(path)
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for corrupt or foreign files
        raise CheckpointError(f"cannot read checkpoint {path}: {type(e).__name__}: {first_line(e)}") from e
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} is not an edgeface checkpoint (expected format {CHECKPOINT_FORMAT})")
    return ckpt


def fp32_state(state: dict) -> dict:
    """A state dict with every floating-point tensor as FP32 (shipped weights store them as FP16)."""
    return {k: v.float() if v.is_floating_point() else v for k, v in state.items()}


def load_checkpoint(path: str | Path) -> tuple[nn.Module, ModelCard, dict]:
    """(model in eval mode, card, raw checkpoint dict)."""
    ckpt = read_checkpoint(path)
    try:
        card = ModelCard.from_dict(ckpt.get("card"))
    except CardError as e:
        raise CheckpointError(f"checkpoint {path} carries an invalid model card: {e}") from e
    try:
        model = build_model(card)
        model.load_state_dict(fp32_state(ckpt["model"]))
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"checkpoint {path} does not match its model card: {first_line(e)}") from e
    return model.eval(), card, ckpt


def warm_start(model: nn.Module, path: str | Path) -> tuple[list[str], list[str]]:
    """Copy into ``model`` every tensor of the checkpoint at ``path`` (or of the shipped weights of that name) whose
    name and shape match (fine-tuning from another edgeface model: another label space, or DMM-CNN's trunk into
    ThinAgeNet); the rest keep their fresh initialisation. Returns (copied names, re-initialised names)."""
    path = resolve_model(path)
    source = fp32_state(read_checkpoint(path)["model"])
    own = model.state_dict()
    copied = [k for k, v in own.items() if k in source and tuple(source[k].shape) == tuple(v.shape)]
    if not any(k.endswith("weight") for k in copied):
        raise CheckpointError(f"--init {path}: no layer of it matches {type(model).__name__} by name and shape")
    model.load_state_dict({**own, **{k: source[k] for k in copied}})
    return copied, [k for k in own if k not in copied]
