"""The CUDA driver API through pycuda or cuda-python, whichever is importable (pycuda first).

TensorRT needs a CUDA context, a stream, device buffers and pinned host copies from the caller. The design
card keeps pycuda, but it compiles from source (``nvcc`` on PATH) and a board or container often has NVIDIA's
cuda-python already, so both are accepted: :func:`open_context` returns a :class:`CudaContext` with the few
operations the TensorRT runner uses, and callers never touch either library. Imported lazily: the runtime's
CPU backends never load it.
"""

from __future__ import annotations

import ctypes
import importlib
from types import ModuleType
from typing import Any

import numpy as np

from edgeface.errors import BackendUnavailable

LIBRARIES = ("pycuda", "cuda-python")
MISSING = ("neither pycuda nor cuda-python is importable: pip install 'edgeface[tensorrt]' (pycuda builds from "
           "source and needs the CUDA toolkit's nvcc on PATH) or 'edgeface[tensorrt-cuda-python]' (cuda-python "
           "of the board's CUDA major version)")


def _import_pycuda() -> ModuleType | None:
    try:
        return importlib.import_module("pycuda.driver")
    except ImportError:
        return None


def _import_cuda_python() -> ModuleType | None:
    """cuda-python's driver module: ``cuda.bindings.driver`` from 12.6 on, ``cuda.cuda`` before."""
    for name in ("cuda.bindings.driver", "cuda.cuda"):
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    return None


def available_library() -> str | None:
    """``"pycuda"`` or ``"cuda-python"``: the library :func:`open_context` would use here, None for neither."""
    if _import_pycuda() is not None:
        return "pycuda"
    if _import_cuda_python() is not None:
        return "cuda-python"
    return None


class CudaContext:
    """One device's context with a stream: the calls the TensorRT runner makes. Use as ``with ctx:`` to make it
    current; :meth:`close` frees what it allocated."""

    library: str

    def __enter__(self) -> CudaContext:
        self.push()
        return self

    def __exit__(self, *exc) -> None:
        self.pop()

    def push(self) -> None:
        raise NotImplementedError

    def pop(self) -> None:
        raise NotImplementedError

    @property
    def stream_handle(self) -> int:
        """The stream as the integer TensorRT's ``execute_async_v3`` takes."""
        raise NotImplementedError

    def pinned(self, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        """A page-locked host array (freed by :meth:`close`)."""
        raise NotImplementedError

    def alloc(self, nbytes: int) -> int:
        """Device memory of ``nbytes`` as an address (freed by :meth:`close`)."""
        raise NotImplementedError

    def upload(self, device: int, host: np.ndarray) -> None:
        """Queue a copy of ``host`` (pinned) to ``device`` on the stream."""
        raise NotImplementedError

    def download(self, host: np.ndarray, device: int) -> None:
        """Queue a copy of ``device`` into ``host`` (pinned) on the stream."""
        raise NotImplementedError

    def synchronize(self) -> None:
        raise NotImplementedError

    def event_timer(self) -> tuple[Any, Any]:
        """(start, stop) events: record them with :meth:`record`, read with :meth:`elapsed_s`."""
        raise NotImplementedError

    def record(self, event: Any) -> None:
        raise NotImplementedError

    def elapsed_s(self, start: Any, stop: Any) -> float:
        """Seconds between two recorded events, waiting for ``stop``."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class PyCudaContext(CudaContext):
    """pycuda: a context of its own on the device (``make_context``)."""

    library = "pycuda"

    def __init__(self, cuda: ModuleType, index: int):
        cuda.init()
        self._cuda = cuda
        self._ctx = cuda.Device(index).make_context()
        try:
            self._stream = cuda.Stream()
        finally:
            self._ctx.pop()
        self._allocations: list = []

    def push(self) -> None:
        self._ctx.push()

    def pop(self) -> None:
        self._cuda.Context.pop()

    @property
    def stream_handle(self) -> int:
        return int(self._stream.handle)

    def pinned(self, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        return self._cuda.pagelocked_empty(shape, dtype)

    def alloc(self, nbytes: int) -> int:
        allocation = self._cuda.mem_alloc(nbytes)
        self._allocations.append(allocation)
        return int(allocation)

    def upload(self, device: int, host: np.ndarray) -> None:
        self._cuda.memcpy_htod_async(device, host, self._stream)

    def download(self, host: np.ndarray, device: int) -> None:
        self._cuda.memcpy_dtoh_async(host, device, self._stream)

    def synchronize(self) -> None:
        self._stream.synchronize()

    def event_timer(self) -> tuple[Any, Any]:
        return self._cuda.Event(), self._cuda.Event()

    def record(self, event: Any) -> None:
        event.record(self._stream)

    def elapsed_s(self, start: Any, stop: Any) -> float:
        stop.synchronize()
        return start.time_till(stop) / 1000.0

    def close(self) -> None:
        if self._ctx is None:
            return
        self._ctx.push()
        try:
            for allocation in self._allocations:
                allocation.free()
            self._allocations = []
            self._stream = None
        finally:
            self._ctx.pop()
            self._ctx.detach()
            self._ctx = None


class CudaPythonContext(CudaContext):
    """cuda-python's driver bindings: the device's primary context (the one TensorRT's own CUDA calls share)."""

    library = "cuda-python"

    def __init__(self, driver: ModuleType, index: int):
        self._drv = driver
        self._check(driver.cuInit(0))
        self._device = self._check(driver.cuDeviceGet(index))
        self._ctx = self._check(driver.cuDevicePrimaryCtxRetain(self._device))
        self._host: list[int] = []
        self._allocations: list = []
        self._events: list = []
        try:
            with self:
                self._stream = self._check(driver.cuStreamCreate(0))
        except BaseException:
            self._check(driver.cuDevicePrimaryCtxRelease(self._device))
            raise

    def _check(self, result: tuple) -> Any:
        return _checked(self._drv, result)

    def push(self) -> None:
        self._check(self._drv.cuCtxPushCurrent(self._ctx))

    def pop(self) -> None:
        self._check(self._drv.cuCtxPopCurrent())

    @property
    def stream_handle(self) -> int:
        return int(self._stream)

    def pinned(self, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        dtype = np.dtype(dtype)
        nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        address = int(self._check(self._drv.cuMemAllocHost(max(nbytes, 1))))
        self._host.append(address)
        raw = (ctypes.c_char * max(nbytes, 1)).from_address(address)
        return np.frombuffer(raw, dtype=dtype, count=nbytes // dtype.itemsize).reshape(shape)

    def alloc(self, nbytes: int) -> int:
        pointer = self._check(self._drv.cuMemAlloc(max(nbytes, 1)))
        self._allocations.append(pointer)
        return int(pointer)

    def upload(self, device: int, host: np.ndarray) -> None:
        self._check(self._drv.cuMemcpyHtoDAsync(device, host.ctypes.data, host.nbytes, self._stream))

    def download(self, host: np.ndarray, device: int) -> None:
        self._check(self._drv.cuMemcpyDtoHAsync(host.ctypes.data, device, host.nbytes, self._stream))

    def synchronize(self) -> None:
        self._check(self._drv.cuStreamSynchronize(self._stream))

    def event_timer(self) -> tuple[Any, Any]:
        events = (self._check(self._drv.cuEventCreate(0)), self._check(self._drv.cuEventCreate(0)))
        self._events += events
        return events

    def record(self, event: Any) -> None:
        self._check(self._drv.cuEventRecord(event, self._stream))

    def elapsed_s(self, start: Any, stop: Any) -> float:
        self._check(self._drv.cuEventSynchronize(stop))
        return float(self._check(self._drv.cuEventElapsedTime(start, stop))) / 1000.0

    def close(self) -> None:
        if self._ctx is None:
            return
        drv = self._drv
        with self:
            for event in self._events:
                drv.cuEventDestroy(event)
            for pointer in self._allocations:
                drv.cuMemFree(pointer)
            for address in self._host:
                drv.cuMemFreeHost(address)
            drv.cuStreamDestroy(self._stream)
        self._events, self._allocations, self._host = [], [], []
        self._check(drv.cuDevicePrimaryCtxRelease(self._device))
        self._ctx = None


def open_context(index: int = 0) -> CudaContext:
    """A context on GPU ``index`` through pycuda, else cuda-python; BackendUnavailable naming both if neither."""
    pycuda = _import_pycuda()
    if pycuda is not None:
        return PyCudaContext(pycuda, index)
    driver = _import_cuda_python()
    if driver is not None:
        return CudaPythonContext(driver, index)
    raise BackendUnavailable(MISSING)


def device_facts(index: int = 0) -> dict:
    """{"gpu": name, "compute_capability": "8.7", "cuda_library": ...} of a device, or {"error": why}."""
    pycuda, driver = _import_pycuda(), _import_cuda_python()
    try:
        if pycuda is not None:
            pycuda.init()
            if pycuda.Device.count() <= index:
                return {"error": "CUDA reports no device" if pycuda.Device.count() == 0 else f"no CUDA device {index}"}
            device = pycuda.Device(index)
            major, minor = device.compute_capability()
            return {"gpu": device.name(), "compute_capability": f"{major}.{minor}", "cuda_library": "pycuda"}
        if driver is not None:
            return _cuda_python_facts(driver, index)
    except Exception as e:  # the library's error when the driver or the device is missing
        text = str(e).strip().splitlines()
        return {"error": text[0] if text else type(e).__name__}
    return {"error": MISSING}


def _checked(driver: ModuleType, result: tuple) -> Any:
    """The value of a cuda-python ``(CUresult, value)`` tuple (None for a bare status); RuntimeError naming the
    error otherwise."""
    error, *values = result
    if error != driver.CUresult.CUDA_SUCCESS:
        name = driver.cuGetErrorName(error)[1]
        raise RuntimeError(f"CUDA error {name.decode() if isinstance(name, bytes) else name}")
    return values[0] if values else None


def _cuda_python_facts(driver: ModuleType, index: int) -> dict:
    def value(result: tuple) -> Any:
        return _checked(driver, result)

    value(driver.cuInit(0))
    count = value(driver.cuDeviceGetCount())
    if count <= index:
        return {"error": "CUDA reports no device" if count == 0 else f"no CUDA device {index}"}
    device = value(driver.cuDeviceGet(index))
    name = value(driver.cuDeviceGetName(256, device))
    attribute = driver.CUdevice_attribute
    major = value(driver.cuDeviceGetAttribute(attribute.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, device))
    minor = value(driver.cuDeviceGetAttribute(attribute.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, device))
    name = name.split(b"\0", 1)[0].decode() if isinstance(name, bytes) else str(name)
    return {"gpu": name, "compute_capability": f"{major}.{minor}", "cuda_library": "cuda-python"}
