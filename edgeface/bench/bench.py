"""``edgeface bench``: latency, throughput, memory and size per model x artifact x backend x batch.

Each (artifact, backend, variant) runs in a fresh process so peak RSS, thread pools and library state
belong to that configuration alone. One JSON per run (schema: ``benchmarks/schema.json``), a Markdown
table on stdout. The ``vgg16-dldl`` baseline is exported on the fly and measured alongside.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import multiprocessing
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from edgeface import __version__
from edgeface.bench import fingerprint as fp_mod
from edgeface.bench.schema import RESULT_FORMAT, validate_result
from edgeface.bench.timing import concurrent_throughput, latency_stats, time_calls, warm_up

BASELINE = "vgg16-dldl"
FORMAT_BACKEND = {"onnx": "onnxruntime", "openvino": "openvino", "tensorrt": "tensorrt", "pytorch": "torch"}
BACKEND_MODULE = {"torch": "torch", "onnxruntime": "onnxruntime", "openvino": "openvino", "tensorrt": "tensorrt"}
CPU_BACKENDS = ("torch", "onnxruntime", "openvino")
DEFAULT_TARGETS = ("onnx", "onnx-int8", "openvino", "openvino-int8")
BASELINE_TARGETS = ("onnx", "openvino")


# ----------------------------------------------------------------------------------------------- jobs
def backend_device(backend: str, device: str) -> str:
    """The bench's ``--device`` (cpu, cuda, cuda:N) in each runner's spelling."""
    if device == "cpu" or not device.startswith("cuda"):
        return device
    index = device.split(":")[1] if ":" in device else "0"
    return {"onnxruntime": "cuda", "tensorrt": f"cuda:{index}", "torch": f"cuda:{index}"}.get(backend, device)


def folder_jobs(folder: str | Path, backends: list[str], device: str, baseline: bool = False) -> list[dict]:
    """One job per built artifact of a convert output folder (plus its PyTorch checkpoint), and one
    'skipped' row per artifact the convert step skipped or failed, so reports can say why."""
    from edgeface.manifest import load_manifest

    folder = Path(folder)
    manifest = load_manifest(folder)
    card = manifest["card"]
    common = {"model": card["model"], "baseline": baseline or card["model"] == BASELINE, "data": card.get("data", ""),
              "input_size": card["preprocess"]["input_size"], "card": card}
    jobs = []
    ckpt = (manifest.get("source") or {}).get("checkpoint")
    if ckpt and not Path(ckpt).is_absolute():
        ckpt = str(folder / ckpt)
    if "torch" in backends and ckpt and Path(ckpt).is_file():
        jobs.append({**common, "target": "pytorch", "format": "pytorch", "precision": "fp32", "backend": "torch",
                     "device": backend_device("torch", device),
                     "artifact": ckpt, "bytes": Path(ckpt).stat().st_size, "drift": None,
                     "status": "ok", "reason": ""})
    for name, entry in manifest["artifacts"].items():
        backend = FORMAT_BACKEND[entry["format"]]
        if backend not in backends:
            continue
        job = {**common, "target": name, "format": entry["format"], "precision": entry["precision"],
               "backend": backend, "device": backend_device(backend, device),
               "artifact": str(folder / entry["file"]), "bytes": entry.get("bytes"),
               "drift": entry.get("drift"), "status": entry["status"], "reason": entry.get("reason", "")}
        jobs.append(job)
    return jobs


def fresh_checkpoint(name: str, out_dir: str | Path, input_size: int = 224) -> Path:
    """An untrained checkpoint of a zoo model: latency and size do not depend on the weights."""
    import torch

    from edgeface.card import ModelCard
    from edgeface.labels import AGE
    from edgeface.models import create_model, model_task
    from edgeface.models.checkpoint import save_checkpoint
    from edgeface.preprocess import PreprocessSpec

    torch.manual_seed(0)
    spec = PreprocessSpec(input_size=input_size)
    data = "untrained (random weights): timing and size only"
    if model_task(name) == "attributes":
        model = create_model(name)
        card = ModelCard(name, "attributes", spec, attributes=list(model.attributes), num_landmarks=5, data=data)
    else:
        model = create_model(name, label_space=AGE)
        card = ModelCard(name, "age", spec, label_space=AGE, data=data)
    path = Path(out_dir) / f"{name}.pt"
    save_checkpoint(path, model.eval(), card)
    return path


def export_models(names: list[str], targets: list[str], work_dir: str | Path, input_size: int = 224,
                  progress: bool = False) -> list[Path]:
    """Model names -> convert output folders (exported on the fly, untrained weights). INT8 targets are
    calibrated on a SYNTHETIC set: with random weights only their speed means anything."""
    if not names:
        return []
    from edgeface.convert.pipeline import ConvertOptions, convert_checkpoint

    work_dir = Path(work_dir)
    calib = None
    if any(t.endswith("int8") for t in targets):
        from edgeface.bench.pipeline import write_synthetic_set

        calib = write_synthetic_set(work_dir / "calibration", 128, input_size)
    options = ConvertOptions(calib_images=128, progress=progress)
    folders = []
    for name in names:
        ckpt = fresh_checkpoint(name, work_dir, input_size)
        convert_checkpoint(ckpt, list(targets), calib=calib, out_dir=work_dir / name, options=options)
        folders.append(work_dir / name)
    return folders


def expand_variants(jobs: list[dict], threads: list[int | None], options: dict[str, list[dict]]) -> list[dict]:
    """Each job once per thread count and per backend option set (e.g. OpenVINO hints)."""
    out = []
    for job in jobs:
        for n in threads:
            for opts in options.get(job["backend"], [{}]):
                out.append({**job, "threads": n, "options": dict(opts)})
    return out


# --------------------------------------------------------------------------------- measurement (child)
def _rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def _throughput_calls(job: dict, x: np.ndarray, streams: int) -> tuple[list, list]:
    """(callables, runners to close) for throughput mode: OpenVINO uses its own async queue (see
    :func:`_openvino_throughput`); other backends get one runner (context / session) per stream."""
    from edgeface.runtime.base import open_runner

    per_stream = max(1, len(os.sched_getaffinity(0)) // streams)  # the whole machine, split over the streams
    extra = [open_runner(job["artifact"], backend=job["backend"], device=job["device"], threads=per_stream,
                         **job["options"]) for _ in range(streams)]
    return [lambda r=r: r.infer(x) for r in extra], extra


def _openvino_throughput(job: dict, x: np.ndarray, seconds: float, streams: int) -> dict:
    """OpenVINO throughput mode: the model compiled with the THROUGHPUT hint and ``streams`` streams, an
    AsyncInferQueue with the device's optimal number of requests kept full for ``seconds``."""
    from edgeface.runtime.base import open_runner

    runner = open_runner(job["artifact"], backend="openvino", device=job["device"], hint="THROUGHPUT",
                         streams=streams)
    try:
        import openvino as ov

        # A queue without a Python callback: its worker threads never need the GIL, so closing it cannot
        # deadlock against the interpreter (a callback queue can, when torn down from Python).
        queue = ov.AsyncInferQueue(runner.compiled, runner.optimal_requests)
        inputs = {0: np.ascontiguousarray(x)}
        for _ in range(runner.optimal_requests):  # warm every request once
            queue.start_async(inputs)
        queue.wait_all()
        requests = 0
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            queue.start_async(inputs)  # blocks while every request is busy
            requests += 1
        queue.wait_all()
        elapsed = time.perf_counter() - t0
        del queue
        return {"streams": streams, "requests_in_flight": runner.optimal_requests,
                "images_per_s": round(requests * x.shape[0] / elapsed, 3), "requests": requests,
                "seconds": round(elapsed, 3)}
    finally:
        runner.close()


def _cuda_compute_only(runner, x: np.ndarray, warmup_s: float, seconds: float) -> dict | None:
    """Compute-only latency with the batch already on the GPU, timed with CUDA events (PyTorch runner)."""
    import torch

    if not hasattr(runner, "model"):
        return None
    xd = torch.from_numpy(x).to(runner._device)
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)

    def call() -> None:
        with torch.inference_mode():
            runner.model(xd)

    warm_up(call, warmup_s)
    torch.cuda.synchronize()
    samples = []
    t_end = time.perf_counter() + seconds
    while len(samples) < 5 or time.perf_counter() < t_end:
        start.record()
        call()
        end.record()
        end.synchronize()
        samples.append(start.elapsed_time(end) / 1000.0)
    return latency_stats(samples)


def _tensorrt_compute_only(runner, x: np.ndarray, warmup_s: float, seconds: float) -> dict:
    """Compute-only latency of a TensorRT engine: ``execute_async_v3`` alone between two CUDA events on the
    runner's stream, input already in device memory (the runner's buffers, filled by one ``infer``)."""
    runner.infer(x)  # allocates this shape's buffers, binds the tensor addresses, uploads x
    cuda = runner._cuda
    runner._ctx.push()
    try:
        start, end = cuda.Event(), cuda.Event()

        def call() -> None:
            if not runner.context.execute_async_v3(runner.stream.handle):
                raise RuntimeError("TensorRT execution failed")

        warm_up(lambda: (call(), runner.stream.synchronize()), warmup_s)
        samples = []
        t_end = time.perf_counter() + seconds
        while len(samples) < 5 or time.perf_counter() < t_end:
            start.record(runner.stream)
            call()
            end.record(runner.stream)
            end.synchronize()
            samples.append(start.time_till(end) / 1000.0)
        return latency_stats(samples)
    finally:
        runner._ctx.pop()


def run_job(job: dict, settings: dict) -> dict:
    """Measure one (artifact, backend, variant) at every batch size; runs inside a fresh process."""
    import importlib

    from edgeface.bench.tegrastats import TegrastatsSampler, images_per_joule
    from edgeface.runtime.base import open_runner

    with contextlib.suppress(ImportError):  # the library's own import is not the model's memory
        importlib.import_module(BACKEND_MODULE[job["backend"]])
    rss_before = _rss_mib()
    t0 = time.perf_counter()
    runner = open_runner(job["artifact"], backend=job["backend"], device=job["device"], threads=job["threads"],
                         **job["options"])
    load_s = time.perf_counter() - t0
    size = runner.card.preprocess.input_size
    rng = np.random.default_rng(0)
    result = {"load_s": round(load_s, 4), "rss_after_load_mib": round(_rss_mib() - rss_before, 2), "batches": []}
    gpu = job["device"] not in (None, "cpu") and not str(job["device"]).upper().startswith("CPU")
    try:
        for batch in settings["batches"]:
            x = rng.standard_normal((batch, 3, size, size), dtype=np.float32)
            runner.infer(x)  # first call: lazy allocations
            warm_up(lambda x=x: runner.infer(x), settings["warmup_s"])
            with TegrastatsSampler() as power:
                samples = time_calls(lambda x=x: runner.infer(x), settings["duration_s"])
            stats = latency_stats(samples)
            row = {"batch": batch, "latency_ms": stats,
                   "throughput_latency_mode": round(batch * 1000.0 / stats["mean"], 3),
                   "throughput_mode": None, "compute_only_ms": None, "power": power.summary(),
                   "images_per_joule": None}
            if row["power"]:
                row["images_per_joule"] = images_per_joule(row["throughput_latency_mode"],
                                                           row["power"]["mean_power_w"])
            streams = settings["streams"]
            if streams and streams > 1:
                if job["backend"] == "openvino":
                    row["throughput_mode"] = _openvino_throughput(job, x, settings["duration_s"], streams)
                else:
                    calls, extra = _throughput_calls(job, x, streams)
                    try:
                        for call in calls:
                            call()
                        row["throughput_mode"] = concurrent_throughput(calls, batch, settings["duration_s"])
                    finally:
                        for r in extra:
                            r.close()
            if gpu and job["backend"] in ("torch", "tensorrt"):
                compute_only = _cuda_compute_only if job["backend"] == "torch" else _tensorrt_compute_only
                row["compute_only_ms"] = compute_only(runner, x, settings["warmup_s"], settings["duration_s"])
            result["batches"].append(row)
    finally:
        runner.close()
    result["peak_rss_mib"] = round(_peak_rss_mib(), 2)
    return result


def _run_isolated(job: dict, settings: dict) -> dict:
    ctx = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
        return pool.submit(run_job, job, settings).result()


# ----------------------------------------------------------------------------------------------- run
_PROFILE_CACHE: dict[tuple, dict] = {}


def model_profile(card: dict) -> dict:
    """Parameters and MACs of the card's network (needs PyTorch; None without it)."""
    key = (card["model"], card["preprocess"]["input_size"], card.get("task"))
    if key not in _PROFILE_CACHE:
        try:
            from edgeface.card import ModelCard
            from edgeface.models.checkpoint import build_model
            from edgeface.models.profile import count_macs, count_params

            model = build_model(ModelCard.from_dict(card))
            _PROFILE_CACHE[key] = {"params": count_params(model), "macs": count_macs(model, key[1])}
        except ImportError:
            _PROFILE_CACHE[key] = {"params": None, "macs": None}
    return _PROFILE_CACHE[key]


def result_row(job: dict, measured: dict | None, status: str, reason: str) -> dict:
    """The JSON row of one job (schema ``results[]``)."""
    profile = model_profile(job["card"])
    row = {k: job[k] for k in ("model", "baseline", "target", "backend", "device", "format", "precision",
                               "threads", "options", "artifact", "data", "input_size", "drift")}
    row.update({"params": profile["params"], "macs": profile["macs"],
                "file_mib": round(job["bytes"] / 2**20, 3) if job.get("bytes") else None,
                "status": status, "reason": reason,
                "load_s": None, "rss_after_load_mib": None, "peak_rss_mib": None, "batches": []})
    if measured:
        row.update(measured)
    return row


def run_benchmark(jobs: list[dict], settings: dict, isolate: bool = True, progress: bool = True,
                  label: str = "bench") -> dict:
    """Measure every job; returns the run's result document (schema ``edgeface-bench/1``)."""
    from tqdm import tqdm

    fingerprint = fp_mod.fingerprint()
    warnings = fp_mod.preflight_warnings(fingerprint)
    for w in warnings:
        print(f"edgeface bench: warning: {w}", file=sys.stderr)
    rows = []
    bar = tqdm(jobs, desc=label, unit="config", disable=not progress, file=sys.stderr)
    for job in bar:
        bar.set_postfix_str(f"{job['model']} {job['target']} {job['backend']} t={job['threads']}")
        if job["status"] != "ok":
            rows.append(result_row(job, None, "skipped", f"convert: {job['status']}: {job['reason']}"))
            continue
        try:
            measured = (_run_isolated if isolate else run_job)(job, settings)
            rows.append(result_row(job, measured, "ok", ""))
        except Exception as e:  # one backend failing must not lose the others' measurements
            reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            rows.append(result_row(job, None, "failed", f"{type(e).__name__}: {reason}"))
    document = {
        "format": RESULT_FORMAT,
        "edgeface_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "device": fp_mod.device_name(fingerprint),
        "fingerprint": fingerprint,
        "preflight_warnings": warnings,
        "load_average": {"before": fingerprint["load_average"], "after": fp_mod.load_average()},
        "settings": settings,
        "results": rows,
    }
    validate_result(document)
    return document


# ------------------------------------------------------------------------------------------- tables
def best_row(rows: list[dict], model: str, backend: str | None = None, precision: str | None = None,
             batch: int = 1, drift_gate: bool = False) -> dict | None:
    """The fastest measured row at ``batch`` for a model (optionally one backend / precision / gate passed)."""
    best, best_ms = None, float("inf")
    for r in rows:
        if r["model"] != model or r["status"] != "ok":
            continue
        if (backend and r["backend"] != backend) or (precision and r["precision"] != precision):
            continue
        if drift_gate and ((r.get("drift") or {}).get("gate") or {}).get("passed") is False:
            continue
        ms = latency_at(r, batch)
        if ms is not None and ms < best_ms:
            best, best_ms = r, ms
    return best


def latency_at(row: dict, batch: int = 1, key: str = "mean") -> float | None:
    for b in row.get("batches") or []:
        if b["batch"] == batch:
            return b["latency_ms"][key]
    return None


def variant_label(row: dict) -> str:
    opts = ",".join(f"{k}={v}" for k, v in sorted((row.get("options") or {}).items()))
    return f"t={row['threads'] or 'auto'}" + (f",{opts}" if opts else "")


def markdown_table(document: dict) -> str:
    """One line per measured row and batch: the numbers a person compares first."""
    lines = [
        f"Device: {document['device']} | load average before/after: {document['load_average']['before']} / "
        f"{document['load_average']['after']}",
        "",
        "| model | target | backend | precision | variant | MiB | load s | peak RSS MiB | batch | mean ms | p50 | "
        "p90 | p99 | std | img/s (latency) | img/s (throughput) | status |",
        "|---|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in document["results"]:
        head = (f"| {r['model']} | {r['target']} | {r['backend']} | {r['precision']} | {variant_label(r)} | "
                f"{_fmt(r['file_mib'], 1)} | {_fmt(r['load_s'], 2)} | {_fmt(r['peak_rss_mib'], 0)} |")
        if r["status"] != "ok":
            lines.append(f"{head} | | | | | | | | {r['status']}: {r['reason']} |")
            continue
        for b in r["batches"]:
            s = b["latency_ms"]
            tp = b["throughput_mode"]["images_per_s"] if b["throughput_mode"] else None
            lines.append(f"{head} {b['batch']} | {s['mean']:.2f} | {s['p50']:.2f} | {s['p90']:.2f} | {s['p99']:.2f} | "
                         f"{s['std']:.2f} | {b['throughput_latency_mode']:.1f} | {_fmt(tp, 1)} | ok |")
    return "\n".join(lines)


def _fmt(value: float | None, digits: int) -> str:
    return "" if value is None else f"{value:.{digits}f}"


# ---------------------------------------------------------------------------------------------- CLI
def _int_list(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from e
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def _threads_list(text: str) -> list[int | None]:
    return [None if v.strip() == "auto" else _int_list(v)[0] for v in text.split(",")]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", help="convert output folders, or zoo model names (exported on the fly)")
    parser.add_argument("--backends", default=",".join(CPU_BACKENDS),
                        help="comma-separated: torch, onnxruntime, openvino, tensorrt (default: the CPU ones)")
    parser.add_argument("--targets", default=",".join(DEFAULT_TARGETS),
                        help="convert targets for models given by name (default: %(default)s)")
    parser.add_argument("--batch", type=_int_list, default=[1, 8, 32], help="batch sizes (default 1,8,32)")
    parser.add_argument("--duration", type=float, default=5.0, help="measured seconds per config (default 5)")
    parser.add_argument("--warmup", type=float, default=1.0, help="warm-up seconds per config (default 1)")
    parser.add_argument("--threads", type=_threads_list, default=[None],
                        help="intra-op threads, comma-separated to compare (e.g. 1,2); 'auto' = library default")
    parser.add_argument("--streams", type=int, default=2, help="parallel requests in throughput mode (1 = off)")
    parser.add_argument("--ov-hint", default="LATENCY",
                        help="OpenVINO performance hints to compare, comma-separated (LATENCY, THROUGHPUT)")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda / GPU")
    parser.add_argument("--input-size", type=int, default=224, help="input side for models given by name")
    parser.add_argument("--no-baseline", action="store_true", help=f"do not measure {BASELINE} alongside")
    parser.add_argument("--baseline-targets", default=",".join(BASELINE_TARGETS), help="targets for the baseline")
    parser.add_argument("--in-process", action="store_true", help="measure in this process (peak RSS then spans all)")
    parser.add_argument("-o", "--output", type=Path, help="result JSON (default: benchmarks/results/<device>.json)")


def backend_options(hints: str) -> dict[str, list[dict]]:
    return {"openvino": [{"hint": h.strip().upper()} for h in hints.split(",") if h.strip()]}


def collect_jobs(inputs: list[str], args: argparse.Namespace, work_dir: Path) -> list[dict]:
    from edgeface.models import list_models

    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    folders, names = [], []
    for item in inputs:
        if Path(item).is_dir():
            folders.append(Path(item))
        elif item in list_models():
            names.append(item)
        else:
            raise FileNotFoundError(f"{item} is neither a convert output folder nor a model "
                                    f"({', '.join(list_models())})")
    targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    folders += export_models(names, targets, work_dir / "models", args.input_size)
    jobs = [j for f in folders for j in folder_jobs(f, backends, args.device)]
    if not args.no_baseline and not any(j["model"] == BASELINE for j in jobs):
        size = jobs[0]["input_size"] if jobs else args.input_size
        base_targets = [t.strip() for t in args.baseline_targets.split(",") if t.strip()]
        for folder in export_models([BASELINE], base_targets, work_dir / "baseline", size):
            jobs += folder_jobs(folder, backends, args.device, baseline=True)
    return expand_variants(jobs, args.threads, backend_options(args.ov_hint))


def main(args: argparse.Namespace) -> int:
    if args.duration <= 0 or args.warmup < 0:
        raise ValueError("--duration must be positive and --warmup non-negative")
    settings = {"batches": args.batch, "duration_s": args.duration, "warmup_s": args.warmup,
                "streams": args.streams, "backends": args.backends.split(","), "device": args.device}
    with tempfile.TemporaryDirectory(prefix="edgeface-bench-") as tmp:
        jobs = collect_jobs(args.inputs, args, Path(tmp))
        if not jobs:
            raise ValueError(f"nothing to benchmark for backends {args.backends}")
        document = run_benchmark(jobs, settings, isolate=not args.in_process)
    from edgeface.fileio import write_json

    out = args.output or Path("benchmarks/results") / f"{document['device']}.json"
    write_json(out, document)
    print(markdown_table(document))
    print(f"\nwrote {out}", file=sys.stderr)
    return 0
