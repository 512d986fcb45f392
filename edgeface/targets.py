"""The conversion targets: one row per artifact kind, read by convert, bench, eval and the runtime.

Everything a stage needs to know about a target lives in its row, so adding a target is one row in
:data:`TARGETS` plus its build function. ``build`` names that function as ``"module:function"`` and is
imported only by the convert stage: the runtime reads this table without pulling in torch or onnx.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

FORMATS = ("onnx", "openvino", "tensorrt")
PRECISIONS = ("fp32", "fp16", "int8")
# tool distributions whose versions a manifest records per artifact format (missing ones are left out)
FORMAT_TOOLS = {"onnx": ("torch", "onnx", "onnxruntime", "onnxsim"), "openvino": ("openvino", "nncf"),
                "tensorrt": ("tensorrt",)}
CHECKPOINT_SUFFIXES = (".pt", ".pth")  # PyTorch checkpoints: opened by the torch backend
SUFFIX_ALIASES = {".plan": "tensorrt"}  # another name TensorRT plans are saved under


@dataclass(frozen=True)
class Target:
    """One convert target.

    ``source``: the target whose file this one is made from (None: made from the checkpoint).
    ``calibrated``: its build needs calibration crops. ``backend``: the runtime backend that opens it.
    ``requires``: what building it needs beyond its source's needs: Python module names, or
    ``"module:function"`` naming a check that returns why it cannot be built here (None when it can).
    ``build``: ``"module:function"`` taking a :class:`edgeface.convert.pipeline.BuildJob`, returning notes.
    ``preference``: rank when a convert folder's artifact is chosen without measured latencies here (lower
    first, among those this machine can run): engines, then INT8, then the FP32 CPU graphs (OpenVINO and ONNX
    Runtime run FP16 graphs slower than FP32 on CPUs, as measured in ``benchmarks/results/amd-epyc-2c.md``).
    """

    name: str
    format: str  # one of FORMATS
    precision: str  # one of PRECISIONS
    file: str  # file name inside the convert folder
    source: str | None
    calibrated: bool
    backend: str
    requires: tuple[str, ...]
    build: str
    preference: int = 99

    @property
    def companion_files(self) -> list[str]:
        """Files that belong to the artifact besides ``file`` (the IR's weights)."""
        return [self.file[: -len(".xml")] + ".bin"] if self.format == "openvino" else []


_TRT_CHECK = "edgeface.device:tensorrt_unavailable"

TARGETS: dict[str, Target] = {t.name: t for t in (
    Target("onnx", "onnx", "fp32", "model.onnx", None, False, "onnxruntime", ("torch", "onnx", "onnxruntime"),
           "edgeface.convert.onnx_export:build", preference=6),
    Target("onnx-fp16", "onnx", "fp16", "model.fp16.onnx", "onnx", False, "onnxruntime", (),
           "edgeface.convert.precision:build_fp16", preference=7),
    Target("onnx-int8", "onnx", "int8", "model.int8.onnx", "onnx", True, "onnxruntime", (),
           "edgeface.convert.precision:build_int8", preference=3),
    Target("openvino", "openvino", "fp32", "model.xml", "onnx", False, "openvino", ("openvino",),
           "edgeface.convert.openvino_ir:build_ir", preference=4),
    Target("openvino-fp16", "openvino", "fp16", "model.fp16.xml", "onnx", False, "openvino", ("openvino",),
           "edgeface.convert.openvino_ir:build_ir", preference=5),
    Target("openvino-int8", "openvino", "int8", "model.int8.xml", "onnx", True, "openvino", ("openvino", "nncf"),
           "edgeface.convert.openvino_ir:build_int8", preference=2),
    Target("trt-fp16", "tensorrt", "fp16", "model.fp16.engine", "onnx-fp16", False, "tensorrt", (_TRT_CHECK,),
           "edgeface.convert.tensorrt_build:build", preference=1),
    Target("trt-int8", "tensorrt", "int8", "model.int8.engine", "onnx-int8", False, "tensorrt", (_TRT_CHECK,),
           "edgeface.convert.tensorrt_build:build", preference=0),
)}


def target(name: str) -> Target:
    """The target called ``name``, or a ValueError listing the known ones."""
    if name not in TARGETS:
        raise ValueError(f"unknown target {name!r}; known: {', '.join(TARGETS)}")
    return TARGETS[name]


def source_chain(name: str) -> list[Target]:
    """The target and everything it is built from, itself first (trt-int8 -> onnx-int8 -> onnx)."""
    chain = [target(name)]
    while chain[-1].source is not None:
        chain.append(target(chain[-1].source))
    return chain


def suffix_backends() -> dict[str, str]:
    """File ending -> the backend that opens such files by default (checkpoints, every target's file)."""
    table = {suffix: "torch" for suffix in CHECKPOINT_SUFFIXES}
    table.update({Path(t.file).suffix: t.backend for t in TARGETS.values()})
    table.update(SUFFIX_ALIASES)
    return table
