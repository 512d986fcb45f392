"""ONNX FP32 -> FP16 (heads and graph I/O in FP32) and -> INT8 Q/DQ (ONNX Runtime static quantisation)."""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from edgeface.convert.heads import onnx_head_nodes
from edgeface.convert.onnx_export import max_abs_diff, ort_outputs
from edgeface.device import cpu_has_vnni
from edgeface.fileio import PendingFile, atomic_path, cache_dir, sha256_file

if TYPE_CHECKING:
    from edgeface.convert.pipeline import BuildJob

CALIBRATION_METHODS = ("minmax", "entropy", "percentile")


def convert_fp16(src: str | Path, dst: str | Path, sample: np.ndarray) -> dict:
    """FP16 weights and activations, FP32 inputs/outputs, heads blocked in FP32; returns {blocked, max_abs_diff}."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = onnx.load(str(src))
    blocked = onnx_head_nodes(model)
    fp16 = convert_float_to_float16(model, keep_io_types=True, node_block_list=blocked)
    _topological_sort(fp16.graph)  # the converter appends its Cast nodes at the end
    onnx.checker.check_model(fp16)
    diff = max_abs_diff(ort_outputs(model, sample), ort_outputs(fp16, sample))
    with atomic_path(dst) as tmp:
        onnx.save(fp16, str(tmp))
    return {"fp32_nodes": blocked, "max_abs_diff_fp32_onnx": diff}


def _topological_sort(graph) -> None:
    """Reorder ``graph.node`` in place so that every node comes after the producers of its inputs."""
    available = {i.name for i in graph.input} | {t.name for t in graph.initializer} | {""}
    pending, ordered = list(graph.node), []
    while pending:
        ready = [n for n in pending if all(i in available for i in n.input)]
        if not ready:
            raise RuntimeError("graph has a cycle or a dangling input after FP16 conversion")
        for n in ready:
            available.update(n.output)
        ordered += ready
        pending = [n for n in pending if not any(n is r for r in ready)]
    del graph.node[:]
    graph.node.extend(ordered)


class _BatchReader:
    """ONNX Runtime CalibrationDataReader over preprocessed float32 crops, in equal small batches
    (the histogram calibrators stack per-batch arrays, so a short last batch would break them)."""

    def __init__(self, x: np.ndarray, max_batch: int = 16):
        batch = max(b for b in range(1, max_batch + 1) if len(x) % b == 0)
        self.batches = [x[i: i + batch] for i in range(0, len(x), batch)]
        self.index = 0

    def get_next(self) -> dict | None:
        if self.index >= len(self.batches):
            return None
        self.index += 1
        return {"input": self.batches[self.index - 1]}

    def rewind(self) -> None:
        self.index = 0


def calibration_key(model_sha256: str, data_sha256: str, method: str, **options) -> str:
    """The cache key: a change in model, calibration crops, method or options gives a new key."""
    text = "|".join([model_sha256, data_sha256, method, *(f"{k}={options[k]}" for k in sorted(options))])
    return hashlib.sha256(text.encode()).hexdigest()[:32]


@contextlib.contextmanager
def _quiet():
    """ONNX Runtime's quantiser prints histogram chatter and a pre-processing hint on every run: hide them."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        root.setLevel(level)


def quantize_int8(src: str | Path, dst: str | Path, calib_x: np.ndarray, data_sha256: str, method: str = "minmax",
                  cache_dir: str | Path | None = None, percentile: float = 99.99,
                  reduce_range: bool | None = None) -> dict:
    """Symmetric INT8 Q/DQ: per-channel symmetric weights, symmetric activations, heads left in FP32.

    ``reduce_range`` (7-bit weights) defaults to on where the CPU lacks VNNI (see :func:`edgeface.device.cpu_has_vnni`).

    Tensor ranges are cached under ``cache_dir`` in ONNX Runtime's JSON calibration cache, keyed by
    :func:`calibration_key`; the cache file appears only after a calibration run completed. The notes name
    the file, not its path: the cache folder belongs to the machine, the notes travel with the artifact.
    """
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    if method not in CALIBRATION_METHODS:
        raise ValueError(f"unknown calibration method {method!r}; expected one of {', '.join(CALIBRATION_METHODS)}")
    if reduce_range is None:
        reduce_range = not cpu_has_vnni()
    model = onnx.load(str(src))
    excluded = onnx_head_nodes(model)
    options = {"ActivationSymmetric": True, "WeightSymmetric": True}
    if method == "percentile":
        options["CalibPercentile"] = percentile
    key = calibration_key(sha256_file(src), data_sha256, method,
                          percentile=percentile if method == "percentile" else "")
    cache = Path(cache_dir) / f"ort-{key}.json" if cache_dir else None
    cache_hit = bool(cache and cache.is_file())
    # a miss calibrates into a fresh name (ONNX Runtime reads any existing file as the cache), kept if complete
    pending = PendingFile(cache, create=False) if cache and not cache_hit else None
    run_cache = pending.tmp if pending else cache
    try:
        with atomic_path(dst) as tmp, _quiet():
            quantize_static(
                str(src), str(tmp), None if cache_hit else _BatchReader(calib_x),
                quant_format=QuantFormat.QDQ, per_channel=True, reduce_range=reduce_range,
                activation_type=QuantType.QInt8,
                weight_type=QuantType.QInt8, nodes_to_exclude=excluded,
                calibrate_method={"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
                                  "percentile": CalibrationMethod.Percentile}[method],
                extra_options=options, calibration_cache_path=str(run_cache) if run_cache else None,
            )
            onnx.checker.check_model(str(tmp))
        if pending and pending.tmp.is_file():
            pending.commit()
    finally:
        if pending:
            pending.discard()
    return {"method": method, "fp32_nodes": excluded, "calibration_images": int(len(calib_x)),
            "reduce_range": reduce_range, "calibration_cache": cache.name if cache else None, "cache_hit": cache_hit}


def build_fp16(job: BuildJob) -> dict:
    """The ``onnx-fp16`` target's build function (see :data:`edgeface.targets.TARGETS`)."""
    return convert_fp16(job.src, job.out, job.sample)


def build_int8(job: BuildJob) -> dict:
    """The ``onnx-int8`` target's build function; calibration ranges are cached under the convert cache."""
    return quantize_int8(job.src, job.out, job.calib_x, job.data_sha, job.options.calib_method,
                         cache_dir("calibration", job.options.cache_dir))
