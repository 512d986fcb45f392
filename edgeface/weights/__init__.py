"""Shipped weights: the pretrained models inside the package, found by name.

Each shipped model is one checkpoint file in this folder (convolution and linear weights stored as FP16, cast
back to FP32 on load) listed in ``weights.json`` with its sha256, size, zoo model, task, input size, measured
metrics, training data and that data's terms, and the command that trained it. ``edgeface weights pack``
(``pack.py``) writes both. :func:`resolve_model` is the one place a model argument becomes a path: every command
that takes a checkpoint calls it, so ``edgeface convert tinyagenet`` works like ``edgeface convert best.pt``.
Plain stdlib here: the runtime imports it without torch.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from edgeface.errors import CheckpointError, UserError

WEIGHTS_DIR = Path(__file__).resolve().parent
INDEX = WEIGHTS_DIR / "weights.json"
INDEX_FORMAT = "edgeface-weights/1"
NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]*$")


class UnknownModel(UserError, FileNotFoundError):
    """A model argument that is neither an existing path nor the name of shipped weights."""


def load_index(path: Path | None = None) -> dict[str, dict]:
    """{name: entry} of ``weights.json`` (default: the package's; {} when it ships no weights)."""
    path = path or INDEX
    if not path.is_file():
        return {}
    try:
        document = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path} is not valid JSON ({e.msg} at line {e.lineno}): reinstall edgeface") from e
    if not isinstance(document, dict) or document.get("format") != INDEX_FORMAT:
        raise CheckpointError(f"{path} is not an edgeface weights index (expected format {INDEX_FORMAT})")
    return dict(document.get("weights") or {})


def shipped_names() -> list[str]:
    """Names of the shipped weights, in index order."""
    return list(load_index())


def weights_for(model: str) -> list[str]:
    """Names of the shipped weights of one zoo model (``tinyagenet`` -> its age and attractiveness weights)."""
    return [name for name, entry in load_index().items() if entry.get("model") == model]


def resolve_model(spec: str | Path) -> Path:
    """A model argument -> a path: an existing file or folder as given (an explicit path wins), else the shipped
    weights of that name. Anything else is an :class:`UnknownModel` naming the weights that ship."""
    path = Path(spec)
    if path.exists():
        return path
    entries = load_index()
    name = str(spec)
    if name in entries:
        packed = WEIGHTS_DIR / entries[name]["file"]
        if not packed.is_file():
            raise CheckpointError(f"shipped weights {name!r} are listed in {INDEX} but {packed} is missing: "
                                  "reinstall edgeface")
        return packed
    shipped = ", ".join(entries) or "none"
    raise UnknownModel(f"model not found: {name} is neither a file nor the name of shipped weights "
                       f"(weights ship for: {shipped})")


def packed_entry(path: str | Path) -> dict | None:
    """The index entry of a file in this folder (a packed weight), None for any file elsewhere."""
    path = Path(path).resolve()
    if path.parent != WEIGHTS_DIR:
        return None
    for name, entry in load_index().items():
        if entry.get("file") == path.name:
            return {"name": name, **entry}
    raise CheckpointError(f"{path} lies in the shipped weights folder but {INDEX.name} does not list it: "
                          "re-pack it with edgeface weights pack")


def verify_packed(path: str | Path) -> None:
    """Check a packed weight against the sha256 its index entry records; a CheckpointError if it differs.
    Files outside the weights folder pass unchecked (they are the user's own checkpoints)."""
    from edgeface.fileio import sha256_file

    entry = packed_entry(path)
    if entry is None:
        return
    actual = sha256_file(path)
    if actual != entry["sha256"]:
        raise CheckpointError(f"shipped weights {entry['name']!r} ({path}) do not match the sha256 in "
                              f"{INDEX.name} (expected {entry['sha256'][:12]}..., got {actual[:12]}...): the file "
                              "was modified; reinstall edgeface or re-pack it")
