"""TensorRT runner (pycuda) for engines built by ``edgeface convert``.

A plan only runs on the TensorRT version and GPU it was built for, so the manifest's build facts are
checked first and a mismatch is refused with a message naming both sides.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgeface.runtime.base import BackendUnavailable, Runner


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
    suffixes = (".engine", ".plan")
    install_hint = "pip install 'edgeface[tensorrt]' on a machine with an NVIDIA GPU and the TensorRT libraries"

    def load(self) -> None:
        from edgeface.convert.tensorrt_build import gpu_facts, tensorrt_unavailable
        from edgeface.manifest import resolve_artifact

        reason = tensorrt_unavailable()
        if reason:
            raise BackendUnavailable(f"{reason}; {self.install_hint}")
        import pycuda.driver as cuda
        import tensorrt as trt

        path, card, entry = resolve_artifact(self.path)
        if card is None or entry is None:
            raise ValueError(f"{path}: a TensorRT plan carries no model card; open it through its convert folder "
                             "(manifest.json beside it)")
        gpu = gpu_facts()
        problem = compatibility_error(entry.get("build_device") or {}, trt.__version__, gpu["gpu"])
        if problem:
            raise ValueError(f"refusing engine {path}: {problem}")
        cuda.init()
        self._cuda = cuda
        self._ctx = cuda.Device(int((self.device or "cuda:0").split(":")[-1] or 0)).make_context()
        try:
            self._runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
            self.engine = self._runtime.deserialize_cuda_engine(Path(path).read_bytes())
            if self.engine is None:
                raise ValueError(f"cannot deserialize TensorRT engine {path} (truncated or built elsewhere)")
            self.context = self.engine.create_execution_context()
            self.stream = cuda.Stream()
        finally:
            self._ctx.pop()
        self._trt = trt
        self.card = card
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.output_names = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        self.input_name = next(n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT)
        self._buffers: dict[tuple, dict] = {}

    def _allocate(self, shape: tuple[int, ...]) -> dict:
        """Device (and pinned host) buffers for one input shape, reused across calls of that shape."""
        if shape not in self._buffers:
            cuda, trt = self._cuda, self._trt
            self.context.set_input_shape(self.input_name, shape)
            buffers = {}
            for name in [self.input_name, *self.output_names]:
                dims = tuple(self.context.get_tensor_shape(name))
                dtype = trt.nptype(self.engine.get_tensor_dtype(name))
                host = cuda.pagelocked_empty(dims, dtype)
                buffers[name] = (host, cuda.mem_alloc(host.nbytes))
            self._buffers[shape] = buffers
        return self._buffers[shape]

    def infer(self, x: np.ndarray) -> dict[str, np.ndarray]:
        x = np.ascontiguousarray(x, dtype=np.float32)
        self._ctx.push()
        try:
            buffers = self._allocate(x.shape)
            self.context.set_input_shape(self.input_name, x.shape)
            for name, (_, device) in buffers.items():
                self.context.set_tensor_address(name, int(device))
            host_in, device_in = buffers[self.input_name]
            np.copyto(host_in, x)
            self._cuda.memcpy_htod_async(device_in, host_in, self.stream)
            if not self.context.execute_async_v3(self.stream.handle):
                raise RuntimeError("TensorRT execution failed")
            for name in self.output_names:
                self._cuda.memcpy_dtoh_async(buffers[name][0], buffers[name][1], self.stream)
            self.stream.synchronize()
            return {name: np.array(buffers[name][0], dtype=np.float32) for name in self.output_names}
        finally:
            self._ctx.pop()

    def close(self) -> None:
        if getattr(self, "_ctx", None) is not None:
            self._ctx.push()
            self._buffers = {}
            self.context = None
            self.engine = None
            self._ctx.pop()
            self._ctx.detach()
            self._ctx = None
        super().close()
