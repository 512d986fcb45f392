"""OpenVINO runner for IR (.xml + .bin): CPU / GPU / NPU / AUTO, thread count, performance hints, async queue."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np

from edgeface.card import RT_INFO_CARD, ModelCard
from edgeface.errors import BackendUnavailable, first_line
from edgeface.runtime.base import Runner

HINTS = ("LATENCY", "THROUGHPUT", "CUMULATIVE_THROUGHPUT")


def _load_input(request, x: np.ndarray) -> None:
    """Copy ``x`` into the request's own input tensor (resized when the batch size changed). Its memory stays the
    request's from call to call: a new tensor per call (what ``infer({0: x})`` makes) has the CPU plugin rebind
    its input memory every time, measured at 0.6-1.3 ms per call on TinyAgeNet INT8; sharing the caller's array
    instead would leave the request aliasing that array after the call."""
    tensor = request.get_input_tensor(0)
    if list(tensor.shape) != list(x.shape):
        tensor.shape = x.shape
    np.copyto(tensor.data, x)


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
        try:
            self.compiled = core.compile_model(model, device, config)
        except RuntimeError as e:
            raise ValueError(f"OpenVINO cannot compile {path} for {device}: {first_line(e)}") from e
        self.card = card
        self.input_name = self.compiled.inputs[0].get_any_name()
        self.output_names = [_output_name(o, card.outputs) for o in self.compiled.outputs]
        self.request = self.compiled.create_infer_request()
        self.optimal_requests = int(self.compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))

    def infer_impl(self, x: np.ndarray) -> dict[str, np.ndarray]:
        # Each output is copied once out of the request's buffers, after the request ran on its own input memory.
        _load_input(self.request, x)
        self.request.infer()
        return {n: np.array(self.request.get_output_tensor(k).data) for k, n in enumerate(self.output_names)}

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
        self.request = None
        self.compiled = None
