"""TensorRT runner (pycuda or cuda-python, see :mod:`edgeface.cuda_driver`) for engines built by ``edgeface convert``.

A plan only runs on the TensorRT version and GPU it was built for, so the manifest's build facts are
checked first and a mismatch is refused with a message naming both sides.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from edgeface.errors import BackendUnavailable
from edgeface.runtime.base import Runner


def compatibility_error(build_device: dict, trt_version: str, gpu_name: str) -> str | None:
    """Why an engine built as ``build_device`` (manifest facts) cannot run here, or None."""
    built_trt, built_gpu = build_device.get("tensorrt"), build_device.get("gpu")
    problems = []
    if built_trt and built_trt != trt_version:
        problems.append(f"built with TensorRT {built_trt}, this is TensorRT {trt_version}")
    if built_gpu and built_gpu != gpu_name:
        problems.append(f"built on {built_gpu}, this GPU is {gpu_name}")
    return "; ".join(problems) or None


class TensorRTRunner(Runner):
    backend = "tensorrt"
    install_hint = "pip install 'edgeface[tensorrt]' on a machine with an NVIDIA GPU and the TensorRT libraries"

    def activate_impl(self) -> None:
        from edgeface.cuda_driver import open_context
        from edgeface.device import gpu_facts, tensorrt_unavailable
        from edgeface.manifest import resolve_artifact

        reason = tensorrt_unavailable()
        if reason:
            raise BackendUnavailable(f"{reason}; {self.install_hint}")
        import tensorrt as trt

        path, card, entry = resolve_artifact(self.path)
        if card is None or entry is None:
            raise ValueError(f"{path}: a TensorRT plan carries no model card; open it through its convert folder "
                             "(manifest.json beside it)")
        gpu = gpu_facts()
        problem = compatibility_error(entry.get("build_device") or {}, trt.__version__, gpu["gpu"])
        if problem:
            raise ValueError(f"refusing engine {path}: {problem}")
        self._ctx = open_context(int((self.device or "cuda:0").split(":")[-1] or 0))
        try:
            with self._ctx:
                self._runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
                self.engine = self._runtime.deserialize_cuda_engine(Path(path).read_bytes())
                if self.engine is None:
                    raise ValueError(f"cannot deserialize TensorRT engine {path} (truncated or built elsewhere)")
                self.context = self.engine.create_execution_context()
        except BaseException:
            self._ctx.close()
            self._ctx = None
            raise
        self._trt = trt
        self.card = card
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.output_names = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        self.input_name = next(n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT)
        self._buffers: dict[tuple, dict] = {}

    def _bind(self, shape: tuple[int, ...]) -> dict:
        """Set the input shape and bind device buffers for it (allocated once per shape, pinned host copies
        beside them). The CUDA context must be current."""
        if shape not in self._buffers:
            trt = self._trt
            self.context.set_input_shape(self.input_name, shape)
            buffers = {}
            for name in [self.input_name, *self.output_names]:
                dims = tuple(self.context.get_tensor_shape(name))
                host = self._ctx.pinned(dims, trt.nptype(self.engine.get_tensor_dtype(name)))
                buffers[name] = (host, self._ctx.alloc(host.nbytes))
            self._buffers[shape] = buffers
        buffers = self._buffers[shape]
        self.context.set_input_shape(self.input_name, shape)
        for name, (_, device) in buffers.items():
            self.context.set_tensor_address(name, device)
        return buffers

    def _upload(self, x: np.ndarray) -> dict:
        """Bind buffers for ``x``'s shape and queue its copy to the device on the runner's stream."""
        buffers = self._bind(x.shape)
        host_in, device_in = buffers[self.input_name]
        np.copyto(host_in, x)
        self._ctx.upload(device_in, host_in)
        return buffers

    def _execute(self) -> None:
        if not self.context.execute_async_v3(self._ctx.stream_handle):
            raise RuntimeError("TensorRT execution failed")

    def infer_impl(self, x: np.ndarray) -> dict[str, np.ndarray]:
        with self._ctx:
            buffers = self._upload(np.ascontiguousarray(x))
            self._execute()
            for name in self.output_names:
                self._ctx.download(*buffers[name])
            self._ctx.synchronize()
            return {name: np.array(buffers[name][0], dtype=np.float32) for name in self.output_names}

    def compute_only_timer(self, x: np.ndarray) -> Callable[[], float]:
        """``execute_async_v3`` alone between two CUDA events on the runner's stream, the input already in
        device memory (uploaded once here)."""
        self.require_active()
        self.check_input(x)
        with self._ctx:
            self._upload(np.ascontiguousarray(x))
            self._ctx.synchronize()
            start, end = self._ctx.event_timer()

        def timed() -> float:
            with self._ctx:
                self._bind(x.shape)  # host-side only: another shape may have been bound since
                self._ctx.record(start)
                self._execute()
                self._ctx.record(end)
                return self._ctx.elapsed_s(start, end)

        return timed

    def deactivate_impl(self) -> None:
        if getattr(self, "_ctx", None) is not None:
            with self._ctx:
                self._buffers = {}
                self.context = None
                self.engine = None
            self._ctx.close()
            self._ctx = None
