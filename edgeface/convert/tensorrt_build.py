"""Strongly typed TensorRT engines from the FP16 / INT8 Q/DQ ONNX graphs, built in a child process.

The precision comes from the graph itself (strongly typed network: TensorRT 11 always, TensorRT 10 with
the STRONGLY_TYPED flag), so an engine computes exactly what the ONNX Runtime / OpenVINO artifacts of the
same graph compute. The build runs in a spawned child: an out-of-memory kill on a Jetson ends the child,
not the CLI. The output is the plain serialized plan that trtexec, DeepStream and Triton load.
"""

from __future__ import annotations

import multiprocessing
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from edgeface.card import INPUT_NAME
from edgeface.device import dla_unavailable, gpu_facts, jetson_facts, tensorrt_unavailable
from edgeface.fileio import atomic_path, cache_dir

if TYPE_CHECKING:
    from edgeface.convert.pipeline import BuildJob


@dataclass(frozen=True)
class BatchProfile:
    """The one optimisation profile: batch sizes min <= opt <= max over a fixed square input."""

    min: int = 1
    opt: int = 1
    max: int = 16

    def __post_init__(self) -> None:
        if not 1 <= self.min <= self.opt <= self.max:
            raise ValueError(f"batch profile needs 1 <= min <= opt <= max, got {self.min}/{self.opt}/{self.max}")

    @classmethod
    def parse(cls, text: str) -> BatchProfile:
        """``"1,4,16"`` (min,opt,max) or ``"8"`` (1, 8, 8)."""
        try:
            values = [int(v) for v in text.split(",")]
        except ValueError as e:
            raise ValueError(f"batch profile must be MIN,OPT,MAX or MAX, got {text!r}") from e
        if len(values) == 1:
            return cls(1, values[0], values[0])
        if len(values) != 3:
            raise ValueError(f"batch profile must be MIN,OPT,MAX or MAX, got {text!r}")
        return cls(*values)

    def shapes(self, size: int) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
        """(min, opt, max) NCHW input shapes for ``IOptimizationProfile.set_shape``."""
        return tuple((b, 3, size, size) for b in (self.min, self.opt, self.max))  # type: ignore[return-value]


def check_dla(dla_core: int | None, trt_version: str, jetson: dict) -> None:
    """Raise ValueError unless this TensorRT on this Jetson can build for DLA core ``dla_core`` (None: GPU)."""
    if dla_core is None:
        return
    if dla_core not in (0, 1):
        raise ValueError(f"DLA core must be 0 or 1, got {dla_core}")
    reason = dla_unavailable(trt_version, jetson)
    if reason:
        raise ValueError(reason)


def trtexec_command(onnx_file: str, engine_file: str, input_size: int, profile: BatchProfile,
                    workspace_mib: int = 1024, dla_core: int | None = None, trt_version: str | None = None) -> str:
    """The ``trtexec`` line that builds the same engine as :func:`build_engine` (file names as given).

    ``--stronglyTyped`` is TensorRT 10's switch for what TensorRT 11 always does; it is left out only when
    ``trt_version`` says 11 or later.
    """
    args = ["trtexec", f"--onnx={onnx_file}"]
    if trt_version is None or int(trt_version.split(".")[0]) < 11:
        args.append("--stronglyTyped")
    for which, shape in zip(("min", "opt", "max"), profile.shapes(input_size), strict=True):
        args.append(f"--{which}Shapes={INPUT_NAME}:{'x'.join(map(str, shape))}")
    args += [f"--memPoolSize=workspace:{workspace_mib}M", f"--saveEngine={engine_file}"]
    if dla_core is not None:
        args += [f"--useDLACore={dla_core}", "--allowGPUFallback"]
    return shlex.join(args)


def network_flags(trt, version: str) -> int:
    """Creation flags for a strongly typed network: TensorRT 11 networks always are; 10 needs the flag."""
    if int(version.split(".")[0]) >= 11:
        return 0
    return 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)


def _build_worker(onnx_path: str, engine_path: str, shapes: tuple, workspace_mib: int, timing_cache: str | None,
                  dla_core: int | None, errors) -> None:
    """Child process: parse, build, serialize. Errors go back through ``errors`` (a Queue)."""
    try:
        import tensorrt as trt

        logger = trt.Logger(trt.Logger.WARNING)
        builder = trt.Builder(logger)
        network = builder.create_network(network_flags(trt, trt.__version__))
        parser = trt.OnnxParser(network, logger)
        if not parser.parse_from_file(onnx_path):
            messages = [str(parser.get_error(i)) for i in range(parser.num_errors)]
            raise RuntimeError(f"ONNX parser: {'; '.join(messages) or 'unknown error'}")
        config = builder.create_builder_config()
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_mib << 20)
        profile = builder.create_optimization_profile()
        profile.set_shape(INPUT_NAME, *shapes)
        config.add_optimization_profile(profile)
        cache_bytes = Path(timing_cache).read_bytes() if timing_cache and Path(timing_cache).is_file() else b""
        cache = config.create_timing_cache(cache_bytes)
        config.set_timing_cache(cache, ignore_mismatch=False)
        if dla_core is not None:
            config.default_device_type = trt.DeviceType.DLA
            config.DLA_core = dla_core
            config.set_flag(trt.BuilderFlag.GPU_FALLBACK)
        plan = builder.build_serialized_network(network, config)
        if plan is None:
            raise RuntimeError("builder returned no engine (see the TensorRT log above)")
        with atomic_path(engine_path) as tmp:
            tmp.write_bytes(bytes(plan))
        if timing_cache:
            with atomic_path(timing_cache) as tmp:
                tmp.write_bytes(bytes(config.get_timing_cache().serialize()))
    except Exception as e:  # any failure is reported to the parent as one line
        errors.put(f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}")
        raise SystemExit(1) from e


def build_engine(onnx_path: str | Path, engine_path: str | Path, input_size: int, profile: BatchProfile,
                 workspace_mib: int = 1024, timing_cache: str | Path | None = None,
                 dla_core: int | None = None, timeout_s: float = 3600) -> dict:
    """Build ``engine_path`` from a Q/DQ or FP16 ONNX graph; returns the build facts for the manifest."""
    reason = tensorrt_unavailable()
    if reason:
        raise RuntimeError(reason)
    import tensorrt as trt

    jetson = jetson_facts()
    check_dla(dla_core, trt.__version__, jetson)
    context = multiprocessing.get_context("spawn")
    errors = context.Queue()
    child = context.Process(target=_build_worker, args=(
        str(onnx_path), str(engine_path), profile.shapes(input_size), workspace_mib,
        str(timing_cache) if timing_cache else None, dla_core, errors))
    child.start()
    child.join(timeout_s)
    if child.is_alive():
        child.terminate()
        child.join()
        raise RuntimeError(f"TensorRT build exceeded {timeout_s:.0f} s")
    if child.exitcode != 0:
        why = errors.get() if not errors.empty() else (
            f"killed by signal {-child.exitcode} (out of memory?)" if child.exitcode < 0 else f"exit {child.exitcode}")
        raise RuntimeError(f"TensorRT build failed: {why}")
    return {
        "tensorrt": trt.__version__, **gpu_facts(), **jetson,
        "profile": {"min": profile.min, "opt": profile.opt, "max": profile.max},
        "workspace_mib": workspace_mib, "dla_core": dla_core, "strongly_typed": True,
        "trtexec": trtexec_command(Path(onnx_path).name, Path(engine_path).name, input_size, profile, workspace_mib,
                                   dla_core, trt.__version__),
    }


def build(job: BuildJob) -> dict:
    """The ``trt-*`` targets' build function: the engine's precision comes from its source graph."""
    options = job.options
    return build_engine(job.src, job.out, job.card.preprocess.input_size, BatchProfile.parse(options.batch_profile),
                        options.workspace_mib, cache_dir("tensorrt", options.cache_dir) / "timing.cache",
                        options.dla_core)
