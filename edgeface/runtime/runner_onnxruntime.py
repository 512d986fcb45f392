"""ONNX Runtime runner: FP32, FP16 and INT8 Q/DQ graphs on CPU, or CUDA / TensorRT execution providers."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgeface.card import CARD_KEY, ModelCard
from edgeface.errors import BackendUnavailable, first_line
from edgeface.runtime.base import Runner

PROVIDERS = {
    "cpu": ["CPUExecutionProvider"],
    "cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"],
    "tensorrt": ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
}


class OnnxRuntimeRunner(Runner):
    """``device``: cpu (default), cuda or tensorrt; ``threads``: intra-op threads (None = ORT's default)."""

    backend = "onnxruntime"
    install_hint = "pip install 'edgeface[onnx]' (onnxruntime-gpu for CUDA / TensorRT)"

    def __init__(self, path: str | Path, device: str | None = None, threads: int | None = None,
                 inter_op_threads: int | None = None):
        super().__init__(path, device=device, threads=threads)
        self.inter_op_threads = inter_op_threads

    def activate_impl(self) -> None:
        try:
            import onnxruntime as ort
        except ImportError as e:
            raise BackendUnavailable(f"ONNX Runtime is not installed: {self.install_hint}") from e
        from edgeface.manifest import resolve_artifact

        device = (self.device or "cpu").lower()
        if device not in PROVIDERS:
            raise ValueError(f"unknown ONNX Runtime device {device!r}; expected one of {', '.join(PROVIDERS)}")
        wanted = PROVIDERS[device][0]
        present = ort.get_available_providers()
        if wanted not in present:
            raise BackendUnavailable(f"ONNX Runtime here has no {wanted} (has: {', '.join(present)})")
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if self.threads:
            options.intra_op_num_threads = int(self.threads)
        if self.inter_op_threads:
            options.inter_op_num_threads = int(self.inter_op_threads)
        path, card, _ = resolve_artifact(self.path)
        try:
            self.session = ort.InferenceSession(str(path), options, providers=PROVIDERS[device])
        except Exception as e:  # ORT raises its own Fail / InvalidProtobuf / InvalidGraph types
            raise ValueError(f"cannot load ONNX model {path}: {first_line(e)}") from e
        if card is None:
            meta = self.session.get_modelmeta().custom_metadata_map
            if CARD_KEY not in meta:
                raise ValueError(f"{path} carries no {CARD_KEY!r} metadata and has no manifest beside it")
            card = ModelCard.from_json(meta[CARD_KEY])
        self.card = card
        self.input_name = self.session.get_inputs()[0].name
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.providers = self.session.get_providers()

    def infer_impl(self, x: np.ndarray) -> dict[str, np.ndarray]:
        outs = self.session.run(None, {self.input_name: np.ascontiguousarray(x)})
        return dict(zip(self.output_names, outs, strict=True))

    def deactivate_impl(self) -> None:
        self.session = None
