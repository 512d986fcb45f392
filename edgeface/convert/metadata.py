"""ONNX metadata hygiene: what an exported graph carries is the edgeface card, not the tools' bookkeeping.

onnxsim stamps about twenty ``onnxsim.*`` entries (its version, the host's library versions, timings) into
``metadata_props``; they say nothing about the model and differ from run to run, so they are dropped.
"""

from __future__ import annotations

from pathlib import Path

from edgeface.fileio import atomic_path

TOOL_PREFIXES = ("onnxsim.",)


def strip_tool_metadata(model) -> list[str]:
    """Remove the tool entries from an ``onnx.ModelProto``'s metadata_props in place; returns their keys."""
    dropped = [p.key for p in model.metadata_props if p.key.startswith(TOOL_PREFIXES)]
    kept = [p for p in model.metadata_props if not p.key.startswith(TOOL_PREFIXES)]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    return dropped


def strip_tool_metadata_file(src: str | Path, dst: str | Path) -> None:
    """Copy the ONNX file ``src`` to ``dst`` (atomically) without the tool entries."""
    import onnx

    model = onnx.load(str(src))
    strip_tool_metadata(model)
    with atomic_path(dst) as tmp:
        onnx.save(model, str(tmp))
