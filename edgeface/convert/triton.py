"""Convert output folder -> NVIDIA Triton model repository (one model per picked artifact).

Triton loads ``REPO/<model>/config.pbtxt`` plus ``REPO/<model>/1/<file>``. Everything the config says
(platform or backend, tensor names, dtypes, dims) comes from the manifest, so the served model is exactly
the artifact the convert stage built and measured. The card rides along as a config parameter so a
client can decode the outputs with :func:`edgeface.decode.decode`.
"""

from __future__ import annotations

import contextlib
import shutil
from dataclasses import dataclass
from pathlib import Path

from edgeface.card import CARD_KEY, check_safe_name
from edgeface.convert.serving import built_entry, checked_artifact, plan_profile_max
from edgeface.errors import ServingError
from edgeface.fileio import atomic_dir, check_replaceable_dir
from edgeface.manifest import built_targets, load_manifest, manifest_card

# numpy-style dtype names in the manifest -> Triton's DataType enum names
TRITON_DTYPES = {
    "float32": "TYPE_FP32",
    "float16": "TYPE_FP16",
    "bfloat16": "TYPE_BF16",
    "float64": "TYPE_FP64",
    "int8": "TYPE_INT8",
    "uint8": "TYPE_UINT8",
    "int32": "TYPE_INT32",
    "int64": "TYPE_INT64",
    "bool": "TYPE_BOOL",
}


@dataclass(frozen=True)
class TritonFormat:
    """How Triton serves one artifact format: platform or backend, the file names in the version folder,
    and the instance kind used when the user asks for ``auto``."""

    platform: str
    backend: str
    files: tuple[str, ...]
    default_kind: str


TRITON_FORMATS = {
    "tensorrt": TritonFormat("tensorrt_plan", "", ("model.plan",), "KIND_GPU"),
    "onnx": TritonFormat("onnxruntime_onnx", "", ("model.onnx",), "KIND_GPU"),
    # Triton's OpenVINO backend runs on the CPU only.
    "openvino": TritonFormat("", "openvino", ("model.xml", "model.bin"), "KIND_CPU"),
}
KINDS = {"auto": None, "gpu": "KIND_GPU", "cpu": "KIND_CPU"}
DEFAULT_MAX_BATCH = 16  # edgeface convert's default TensorRT profile max


def triton_dtype(dtype: str) -> str:
    if dtype not in TRITON_DTYPES:
        raise ServingError(f"dtype {dtype!r} has no Triton equivalent; known: {', '.join(TRITON_DTYPES)}")
    return TRITON_DTYPES[dtype]


def tensor_dims(shape: list[int], name: str) -> tuple[list[int], bool]:
    """(dims without the batch axis, needs_reshape): a per-sample scalar ``[-1]`` is served as ``[1]``
    with ``reshape: { shape: [] }``, the way Triton describes batched outputs that have no other axis."""
    if not shape or shape[0] != -1:
        raise ServingError(f"tensor {name!r} has shape {shape}: expected a dynamic batch axis (-1) first")
    dims = [int(d) for d in shape[1:]]
    if any(d <= 0 for d in dims):
        raise ServingError(f"tensor {name!r} has shape {shape}: only the batch axis may be dynamic")
    return (dims, False) if dims else ([1], True)


def pbtxt_string(text: str) -> str:
    """A protobuf text-format string literal (C escapes; non-ASCII as octal UTF-8 bytes)."""
    out = []
    for byte in text.encode("utf-8"):
        ch = chr(byte)
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif 32 <= byte < 127:
            out.append(ch)
        else:
            out.append(f"\\{byte:03o}")
    return '"' + "".join(out) + '"'


def _tensor_block(field: str, tensors: list[dict]) -> list[str]:
    lines = [f"{field} ["]
    for i, tensor in enumerate(tensors):
        dims, reshape = tensor_dims(tensor["shape"], tensor["name"])
        lines += [
            "  {",
            f"    name: {pbtxt_string(tensor['name'])}",
            f"    data_type: {triton_dtype(tensor['dtype'])}",
            f"    dims: [ {', '.join(str(d) for d in dims)} ]",
        ]
        if reshape:
            lines.append("    reshape: { shape: [ ] }")
        lines.append("  }," if i < len(tensors) - 1 else "  }")
    return lines + ["]"]


def model_config(name: str, entry: dict, card_json: str, max_batch_size: int, preferred_batch_sizes: list[int],
                 instances: int, kind: str, max_queue_delay_us: int) -> str:
    """The ``config.pbtxt`` text for one artifact's manifest entry."""
    fmt = TRITON_FORMATS[entry["format"]]
    if max_batch_size < 1:
        raise ServingError(f"--max-batch-size must be at least 1, got {max_batch_size}")
    bad = [b for b in preferred_batch_sizes if not 1 <= b <= max_batch_size]
    if bad:
        raise ServingError(f"preferred batch sizes {bad} are outside 1..{max_batch_size} (--max-batch-size)")
    if instances < 1:
        raise ServingError(f"--instances must be at least 1, got {instances}")
    lines = [f"name: {pbtxt_string(name)}"]
    lines.append(f"platform: {pbtxt_string(fmt.platform)}" if fmt.platform else f"backend: {pbtxt_string(fmt.backend)}")
    lines += [
        f"max_batch_size: {max_batch_size}",
        f"default_model_filename: {pbtxt_string(fmt.files[0])}",
        *_tensor_block("input", [entry["input"]]),
        *_tensor_block("output", entry["outputs"]),
        "dynamic_batching {",
        f"  preferred_batch_size: [ {', '.join(str(b) for b in preferred_batch_sizes)} ]",
        f"  max_queue_delay_microseconds: {max_queue_delay_us}",
        "}",
        "instance_group [",
        "  {",
        f"    count: {instances}",
        f"    kind: {kind}",
        "  }",
        "]",
        "parameters {",
        f"  key: {pbtxt_string(CARD_KEY)}",
        f"  value: {{ string_value: {pbtxt_string(card_json)} }}",
        "}",
    ]
    return "\n".join(lines) + "\n"


def model_name(prefix: str, target_name: str) -> str:
    return f"{prefix}-{target_name}"


def export_triton(convert_dir: str | Path, repo: str | Path, targets: list[str] | None = None,
                  max_batch_size: int | None = None, preferred_batch_sizes: list[int] | None = None, instances: int = 1,
                  kind: str = "auto", max_queue_delay_us: int = 100, prefix: str | None = None,
                  overwrite: bool = False, verify: bool = True) -> list[Path]:
    """Write one Triton model per picked target into ``repo``; returns the model folders.

    ``max_batch_size`` defaults to a TensorRT engine's profile max (16 for other formats).
    Every check happens before anything is written; each model is staged beside ``repo`` and renamed
    into place, so a failure leaves ``repo`` as it was.
    """
    convert_dir = Path(convert_dir)
    manifest = load_manifest(convert_dir)
    card = manifest_card(manifest)
    if kind not in KINDS:
        raise ServingError(f"unknown instance kind {kind!r}; expected one of {', '.join(KINDS)}")
    if targets is None:
        targets = built_targets(manifest)
        if not targets:
            raise ServingError(f"{convert_dir} holds no built artifact (see its manifest.json)")
    prefix = check_safe_name(prefix, "--name-prefix") if prefix is not None else card.model  # a folder name in repo
    repo = Path(repo)
    plans = []
    for target_name in targets:
        entry = built_entry(convert_dir, manifest, target_name)
        fmt = TRITON_FORMATS[entry["format"]]
        profile_max = plan_profile_max(entry) if entry["format"] == "tensorrt" else None
        batch = max_batch_size if max_batch_size is not None else profile_max or DEFAULT_MAX_BATCH
        if profile_max is not None and batch > profile_max:
            raise ServingError(f"{target_name}: engine profile allows batch {profile_max} at most; "
                               f"lower --max-batch-size ({batch})")
        preferred = sorted(set(preferred_batch_sizes or [b for b in (1, 4, 8, 16, 32, 64) if b <= batch]))
        name = model_name(prefix, target_name)
        config = model_config(name, entry, card.to_json(), batch, preferred, instances,
                              KINDS[kind] or fmt.default_kind, max_queue_delay_us)
        sources = [checked_artifact(convert_dir, target_name, entry, verify)]
        if entry["format"] == "openvino":
            sources.append(sources[0].with_suffix(".bin"))
            if not sources[1].is_file():
                raise ServingError(f"{target_name}: IR weights missing: {sources[1]}")
        plans.append((name, config, list(zip(sources, fmt.files, strict=True))))
    names = [p[0] for p in plans]
    if len(set(names)) != len(names):
        raise ServingError("a target was named twice")
    clashes = [n for n in names if (repo / n).exists()]
    if clashes and not overwrite:
        raise ServingError(f"model folder already in {repo}: {', '.join(clashes)} (use --overwrite to replace)")
    for name in clashes:
        check_replaceable_dir(repo / name, "config.pbtxt", "a Triton model", force_flag=None)
    with contextlib.ExitStack() as swaps:  # every model folder is written before any is swapped in
        for name, config, files in plans:
            model_dir = swaps.enter_context(atomic_dir(repo / name))
            (model_dir / "1").mkdir()
            (model_dir / "config.pbtxt").write_text(config)
            for source, dest in files:
                shutil.copyfile(source, model_dir / "1" / dest)
    return [repo / name for name in names]


def parse_batch_list(text: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError as e:
        raise ServingError(f"expected comma-separated integers, got {text!r}") from e
