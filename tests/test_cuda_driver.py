"""The CUDA layer under the TensorRT runner: pycuda or cuda-python, whichever is importable, one clear line naming
both when neither is. The device round trip runs where a GPU is (skipped here with the reason)."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from edgeface import cuda_driver
from edgeface.errors import BackendUnavailable


def _absent(monkeypatch: pytest.MonkeyPatch, *packages: str) -> None:
    """Make ``packages`` unimportable in this process (a None entry in sys.modules raises ImportError)."""
    for name in list(sys.modules):
        if any(name == p or name.startswith(p + ".") for p in packages):
            monkeypatch.delitem(sys.modules, name)
    for package in packages:
        monkeypatch.setitem(sys.modules, package, None)


def test_neither_library_is_one_line_naming_both(monkeypatch):
    _absent(monkeypatch, "pycuda", "cuda")
    assert cuda_driver.available_library() is None
    facts = cuda_driver.device_facts()
    assert set(facts) == {"error"}
    for name in ("pycuda", "cuda-python", "nvcc"):
        assert name in facts["error"]
    with pytest.raises(BackendUnavailable, match="neither pycuda nor cuda-python") as caught:
        cuda_driver.open_context()
    assert "\n" not in str(caught.value)


def _library_or_skip(monkeypatch: pytest.MonkeyPatch, library: str) -> None:
    if library == "pycuda":
        pytest.importorskip("pycuda.driver", reason="pycuda not installed (pip install 'edgeface[tensorrt]')")
    else:
        if cuda_driver._import_cuda_python() is None:
            pytest.skip("cuda-python not installed (pip install 'edgeface[tensorrt-cuda-python]')")
        _absent(monkeypatch, "pycuda")
    assert cuda_driver.available_library() == library


@pytest.mark.parametrize("library", cuda_driver.LIBRARIES)
def test_each_library_reports_this_machines_gpu_or_why_not(monkeypatch, library):
    _library_or_skip(monkeypatch, library)
    facts = cuda_driver.device_facts()
    if "error" in facts:  # no driver or device here: the library's own reason, not the "install one" message
        assert facts["error"] and facts["error"] != cuda_driver.MISSING
        with pytest.raises(Exception) as caught:  # noqa: B017 (the library's own error type)
            cuda_driver.open_context()
        assert not isinstance(caught.value, BackendUnavailable)
        return
    assert facts["cuda_library"] == library and facts["gpu"]
    assert len(facts["compute_capability"].split(".")) == 2


@pytest.mark.parametrize("library", cuda_driver.LIBRARIES)
def test_each_library_copies_through_device_memory(monkeypatch, library):
    _library_or_skip(monkeypatch, library)
    if "error" in cuda_driver.device_facts():
        pytest.skip(f"no usable CUDA device: {cuda_driver.device_facts()['error']}")
    ctx = cuda_driver.open_context(0)
    try:
        with ctx:
            x = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
            host_in, host_out = ctx.pinned(x.shape, np.float32), ctx.pinned(x.shape, np.float32)
            device = ctx.alloc(x.nbytes)
            np.copyto(host_in, x)
            start, stop = ctx.event_timer()
            ctx.record(start)
            ctx.upload(device, host_in)
            ctx.download(host_out, device)
            ctx.record(stop)
            ctx.synchronize()
            assert ctx.elapsed_s(start, stop) >= 0
            assert isinstance(ctx.stream_handle, int)
        np.testing.assert_array_equal(host_out, x)
    finally:
        ctx.close()
