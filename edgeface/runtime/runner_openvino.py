"""OpenVINO runner for IR (.xml + .bin): CPU / GPU / NPU / AUTO, thread count, performance hints, async queue;
small batches on models compiled for their size, with an input buffer read in place (benchmark_app's conditions)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from edgeface.card import RT_INFO_CARD, ModelCard
from edgeface.errors import BackendUnavailable, first_line
from edgeface.runtime.base import Runner

HINTS = ("LATENCY", "THROUGHPUT", "CUMULATIVE_THROUGHPUT")
# Batch sizes up to this one run on a model compiled for exactly that size (on first use); larger ones on the
# dynamic-batch model. A static shape skips the CPU plugin's per-call shape handling, and it is what benchmark_app's
# ``-shape`` measures (benchmarks/results/openvino-overhead.md).
MAX_STATIC_BATCH = 8


def _load_input(request: Any, x: np.ndarray) -> None:
    """Copy ``x`` into the request's own input tensor (resized when the batch size changed). Its memory stays the
    request's from call to call: a new tensor per call (what ``infer({0: x})`` makes) has the CPU plugin rebind
    its input memory every time; sharing the caller's array instead would leave the request aliasing that array
    after the call."""
    tensor = request.get_input_tensor(0)
    if list(tensor.shape) != list(x.shape):
        tensor.shape = x.shape
    np.copyto(tensor.data, x)


class _StaticRequest:
    """An infer request of a model compiled for one input shape, with numpy views of its input and output tensors
    taken once: a static-shape request keeps its tensors' memory from call to call, so a call is the inference and
    one copy out per output, plus one copy in unless the caller filled :attr:`input` itself
    (:meth:`OpenVinoRunner.input_buffer`), as benchmark_app's loop never copies its input."""

    def __init__(self, compiled: Any):
        self.request = compiled.create_infer_request()
        self.input = self.request.get_input_tensor(0).data
        self.outputs = [self.request.get_output_tensor(k).data for k in range(len(compiled.outputs))]

    def run(self, x: np.ndarray) -> list[np.ndarray]:
        if x is not self.input:  # the caller's own array (a view of the buffer is copied too: rare, still right)
            np.copyto(self.input, x)
        # start + wait rather than infer(), which also converts every output into a dict of new arrays
        self.request.start_async()
        self.request.wait()
        return [view.copy() for view in self.outputs]


def _output_name(port, expected: list[str]) -> str:
    """The card's name for an output port (OpenVINO may list several tensor names per port)."""
    names = port.get_names()
    return next((n for n in expected if n in names), port.get_any_name())


class OpenVinoRunner(Runner):
    """``device``: CPU (default), GPU, NPU or AUTO; ``threads``: INFERENCE_NUM_THREADS;
    ``hint``: OpenVINO performance hint (LATENCY for batch-1 serving, THROUGHPUT with :meth:`infer_many`)."""

    backend = "openvino"
    install_hint = "pip install 'edgeface[openvino]'"

    def __init__(self, path: str | Path, device: str | None = None, threads: int | None = None,
                 hint: str | None = "LATENCY", streams: int | None = None, properties: dict | None = None):
        super().__init__(path, device=device, threads=threads)
        if hint is not None and hint.upper() not in HINTS:
            raise ValueError(f"unknown OpenVINO performance hint {hint!r}; expected one of {', '.join(HINTS)}")
        self.hint = hint.upper() if hint else None
        self.streams = streams
        self.properties = dict(properties or {})

    def activate_impl(self) -> None:
        try:
            import openvino as ov
        except ImportError as e:
            raise BackendUnavailable(f"OpenVINO is not installed: {self.install_hint}") from e
        from edgeface.manifest import resolve_artifact

        path, card, _ = resolve_artifact(self.path)
        core = ov.Core()
        device = (self.device or "CPU").upper()
        if device != "AUTO" and not any(d.split(".")[0] == device.split(".")[0] for d in core.available_devices):
            raise BackendUnavailable(f"OpenVINO device {device} not present (has: {', '.join(core.available_devices)})")
        if not path.with_suffix(".bin").is_file():
            raise ValueError(f"OpenVINO weights missing: {path.with_suffix('.bin')}")
        try:
            model = core.read_model(str(path))
        except RuntimeError as e:
            raise ValueError(f"cannot read OpenVINO IR {path}: {first_line(e)}") from e
        if card is None:
            if not model.has_rt_info(RT_INFO_CARD):
                raise ValueError(f"{path} carries no edgeface card in rt_info and has no manifest beside it")
            card = ModelCard.from_json(model.get_rt_info(RT_INFO_CARD).astype(str))
        # The precision lives in the graph: without this, OpenVINO runs an FP32 IR in bfloat16 on CPUs with
        # AVX512_BF16 / AMX (measured here: 3.2 years of expectation drift on an FP32 age model).
        config = {"INFERENCE_PRECISION_HINT": "f32"} if device in ("CPU", "AUTO") else {}
        config.update(self.properties)
        if self.hint:
            config["PERFORMANCE_HINT"] = self.hint
        if self.threads and device in ("CPU", "AUTO"):
            config["INFERENCE_NUM_THREADS"] = int(self.threads)
        if self.streams:
            config["NUM_STREAMS"] = str(self.streams)
        self._core, self._model, self._device, self._config = core, model, device, config
        self.compiled = self._compile(model)
        self.card = card
        self.input_name = self.compiled.inputs[0].get_any_name()
        self.output_names = [_output_name(o, card.outputs) for o in self.compiled.outputs]
        self.optimal_requests = int(self.compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
        batch_dim = model.input(0).get_partial_shape()[0]
        self._dynamic_batch = batch_dim.is_dynamic
        self._fixed_batch = None if self._dynamic_batch else batch_dim.get_length()
        self._static: dict[int, Any] = {}  # batch size -> model compiled for it
        self._static_requests: dict[int, _StaticRequest] = {}  # batch size -> request of its static model
        self._dynamic_request = self.compiled.create_infer_request() if self._dynamic_batch else None
        self.compiled_for(1)  # batch 1, the serving case, is ready before the first call

    def _compile(self, model: Any) -> Any:
        try:
            return self._core.compile_model(model, self._device, self._config)
        except RuntimeError as e:
            raise ValueError(f"OpenVINO cannot compile {self.path} for {self._device}: {first_line(e)}") from e

    def compiled_for(self, batch: int) -> Any:
        """The compiled model that runs batches of ``batch`` faces: one compiled for exactly that size (made on
        first use) up to :data:`MAX_STATIC_BATCH`, else the dynamic-batch one."""
        if not self._dynamic_batch or batch > MAX_STATIC_BATCH:
            return self.compiled
        if batch not in self._static:
            model = self._model.clone()
            shape = model.input(0).get_partial_shape()
            shape[0] = batch
            model.reshape({0: shape})
            self._static[batch] = self._compile(model)
        return self._static[batch]

    def _static_request(self, batch: int) -> _StaticRequest:
        request = self._static_requests.get(batch)
        if request is None:
            request = self._static_requests[batch] = _StaticRequest(self.compiled_for(batch))
        return request

    def _runs_static(self, batch: int) -> bool:
        """Whether batches of ``batch`` run on a static-shape request (else on the dynamic-batch model's); an IR
        with a fixed batch size takes no other."""
        if self._fixed_batch not in (None, batch):
            raise ValueError(f"{self.path.name} takes batches of {self._fixed_batch} only (a static IR), got {batch}")
        return not self._dynamic_batch or batch <= MAX_STATIC_BATCH

    def input_buffer(self, batch: int) -> np.ndarray:
        """The input memory of the request that runs batches of ``batch`` (see :class:`_StaticRequest`); a new
        array for batches on the dynamic-batch model."""
        if self.is_active and batch >= 1 and self._runs_static(batch):
            return self._static_request(batch).input
        return super().input_buffer(batch)  # refuses an inactive runner or an empty batch

    def infer_impl(self, x: np.ndarray) -> dict[str, np.ndarray]:
        # Each output is copied once out of the request's buffers, after the request ran on its own input memory.
        if self._runs_static(len(x)):
            outputs = self._static_request(len(x)).run(x)
        else:
            request = self._dynamic_request
            _load_input(request, x)
            request.infer()
            outputs = [np.array(request.get_output_tensor(k).data) for k in range(len(self.output_names))]
        return dict(zip(self.output_names, outputs, strict=True))

    @property
    def default_jobs(self) -> int:
        """The device's optimal number of requests in flight (OPTIMAL_NUMBER_OF_INFER_REQUESTS)."""
        return self.optimal_requests

    def infer_many(self, batches: Iterable[np.ndarray], jobs: int | None = None) -> list[dict[str, np.ndarray]]:
        """Run many batches with ``jobs`` asynchronous requests in flight (default :attr:`default_jobs`), the
        THROUGHPUT-hint path; results come back in input order.

        Each request is started with ``start_async`` and waited on with ``wait`` before it is reused, and its
        outputs are copied then. No Python callback runs on OpenVINO's threads, so nothing here can deadlock
        against the interpreter when the requests are torn down (an AsyncInferQueue with a callback can).
        """
        self.require_active()
        requests = [self.compiled.create_infer_request() for _ in range(max(1, jobs or self.default_jobs))]
        pending: list[int | None] = [None] * len(requests)  # batch index each request is working on
        results: dict[int, dict[str, np.ndarray]] = {}

        def collect(slot: int) -> None:
            if pending[slot] is not None:
                requests[slot].wait()
                results[pending[slot]] = {n: np.array(requests[slot].get_output_tensor(k).data)
                                          for k, n in enumerate(self.output_names)}
                pending[slot] = None

        try:
            for index, batch in enumerate(batches):
                self.check_input(batch)
                slot = index % len(requests)
                collect(slot)
                _load_input(requests[slot], batch)
                requests[slot].start_async()
                pending[slot] = index
        finally:
            for slot in range(len(requests)):
                collect(slot)
        return [results[i] for i in range(len(results))]

    def deactivate_impl(self) -> None:
        self._static_requests, self._static, self._dynamic_request = {}, {}, None
        self.compiled = self._model = self._core = None
