"""``edgeface bench``: latency, throughput, memory and size per model x artifact x backend x batch.

The command line only: what to measure is :mod:`edgeface.bench.jobs`, how one configuration is measured
(in a fresh process) is :mod:`edgeface.bench.measure`, the Markdown table is :mod:`edgeface.bench.tables`.
One JSON per run (schema: ``edgeface/bench/schema.json``) and, beside it, its Markdown tables with the command
that produced them (also printed).
"""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
import tempfile
from pathlib import Path

from edgeface.bench.jobs import BASELINE, BASELINE_TARGETS, CPU_BACKENDS, DEFAULT_TARGETS
from edgeface.checks import number_type
from edgeface.progress import add_progress_argument

log = logging.getLogger(__name__)


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


def _names(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+",
                        help="convert output folders, checkpoints, names of shipped weights (tinyagenet, ...; "
                             "converted on the fly), or zoo model names without weights (untrained: timing only)")
    parser.add_argument("--backends", default=",".join(CPU_BACKENDS),
                        help="comma-separated: torch, onnxruntime, openvino, tensorrt (default: the CPU ones)")
    parser.add_argument("--targets", default=",".join(DEFAULT_TARGETS),
                        help="convert targets for models given by name (default: %(default)s)")
    parser.add_argument("--batch", type=_int_list, default=[1, 8, 32], help="batch sizes (default 1,8,32)")
    parser.add_argument("--duration", type=number_type(above=0), default=5.0,
                        help="measured seconds per config (default 5)")
    parser.add_argument("--warmup", type=number_type(minimum=0), default=1.0,
                        help="warm-up seconds per config (default 1)")
    parser.add_argument("--threads", type=_threads_list, default=[None],
                        help="intra-op threads, comma-separated to compare (e.g. 1,2); 'auto' = library default")
    parser.add_argument("--rounds", type=number_type(minimum=0, integer=True), default=5,
                        help="batch-1 latency of all configs again in this many interleaved rounds (A, B, A, B...), "
                             "the source of the claims' ratios (0 = off; default 5)")
    parser.add_argument("--round-duration", type=number_type(above=0), default=1.0,
                        help="seconds per config per round (default 1)")
    parser.add_argument("--streams", type=number_type(minimum=1, integer=True), default=2,
                        help="parallel requests in throughput mode (1 = off)")
    parser.add_argument("--ov-hint", default="LATENCY",
                        help="OpenVINO performance hints to compare, comma-separated (LATENCY, THROUGHPUT)")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda / GPU")
    parser.add_argument("--input-size", type=number_type(minimum=1, integer=True), default=224,
                        help="input side for untrained zoo models (shipped weights keep their own)")
    parser.add_argument("--untrained", action="store_true",
                        help="zoo model names are exported with untrained weights at --input-size even where weights "
                             "ship (speed does not depend on the weights; the shipped ones have smaller inputs)")
    parser.add_argument("--no-baseline", action="store_true", help=f"do not measure {BASELINE} alongside")
    parser.add_argument("--baseline-targets", default=",".join(BASELINE_TARGETS), help="targets for the baseline")
    parser.add_argument("--no-verify", dest="verify", action="store_false",
                        help="measure convert-folder artifacts that no longer match their manifest's sha256")
    parser.add_argument("--in-process", action="store_true", help="measure in this process (peak RSS then spans all)")
    parser.add_argument("--out", type=Path, help="result JSON (default: benchmarks/results/<device>.json)")
    add_progress_argument(parser)


def check_names(backends: list[str], targets: list[str]) -> None:
    """Unknown backend or target names are refused before anything is converted or measured."""
    from edgeface.runtime.base import available_backends
    from edgeface.targets import target

    known = available_backends()
    unknown = [b for b in backends if b not in known]
    if unknown:
        raise ValueError(f"unknown backend {', '.join(unknown)}; known: {', '.join(known)}")
    for name in targets:
        target(name)


def record_latencies(jobs: list[dict], document: dict, scratch: Path) -> None:
    """Each measured artifact's batch-1 p50 into its convert folder's manifest (``latency`` per device), so
    ``edgeface run FOLDER`` picks the fastest here; folders converted on the fly under ``scratch`` are left alone."""
    from edgeface.manifest import MANIFEST_NAME, record_latency
    from edgeface.targets import TARGETS

    recorded: set[Path] = set()
    for job, row in zip(jobs, document["results"], strict=True):
        folder = Path(job["artifact"]).parent
        if row["status"] != "ok" or job["target"] not in TARGETS or scratch.resolve() in folder.resolve().parents:
            continue
        batch1 = next((b for b in row["batches"] if b["batch"] == 1), None)
        if batch1 is None or not (folder / MANIFEST_NAME).is_file():
            continue
        try:
            if record_latency(folder, job["target"], document["device"], batch1["latency_ms"]["p50"], job["backend"],
                              job.get("threads")):
                recorded.add(folder)
        except (OSError, ValueError) as e:  # a read-only or foreign folder: the benchmark itself still stands
            log.warning("edgeface bench: warning: latency not recorded in %s: %s", folder, e)
    for folder in sorted(recorded):
        log.info("recorded batch-1 latency on %s in %s", document["device"], folder / MANIFEST_NAME)


def main(args: argparse.Namespace) -> int:
    from edgeface.bench.jobs import collect_jobs
    from edgeface.bench.measure import run_benchmark
    from edgeface.bench.tables import interleaved_table, markdown_table
    from edgeface.fileio import write_json, write_text
    from edgeface.manifest import verify_location

    check_names(_names(args.backends), _names(args.targets) + _names(args.baseline_targets))
    settings = {"batches": args.batch, "duration_s": args.duration, "warmup_s": args.warmup,
                "rounds": args.rounds, "round_s": args.round_duration,
                "streams": args.streams, "backends": args.backends.split(","), "device": args.device}
    with tempfile.TemporaryDirectory(prefix="edgeface-bench-") as tmp:
        jobs = collect_jobs(args.inputs, Path(tmp), _names(args.backends), _names(args.targets), args.device,
                            args.input_size, args.threads, args.ov_hint, not args.no_baseline,
                            _names(args.baseline_targets), untrained=args.untrained)
        if not jobs:
            raise ValueError(f"nothing to benchmark for backends {args.backends}")
        if args.verify:  # once here, so no measured load time includes hashing
            for job in jobs:
                if job.get("status", "ok") == "ok":
                    verify_location(job["artifact"])
        document = run_benchmark(jobs, settings, isolate=not args.in_process, progress=args.progress)
        record_latencies(jobs, document, Path(tmp))
    document["command"] = command_line(sys.argv)
    out = args.out or Path("benchmarks/results") / f"{document['device']}.json"
    parts = [f"Command: `{document['command']}`", "", markdown_table(document)]
    if args.rounds:
        parts += ["", "Batch-1 latency in interleaved rounds (the claims' ratios come from these):", "",
                  interleaved_table(document)]
    text = "\n".join(parts) + "\n"
    write_json(out, document)
    write_text(out.with_suffix(".md"), text)
    print(text)
    log.info("wrote %s and %s", out, out.with_suffix(".md").name)
    return 0


def command_line(argv: list[str]) -> str:
    """The ``edgeface bench`` command that ran (from ``argv``), host paths as results record them."""
    from edgeface.fileio import portable_path

    words = argv[argv.index("bench"):] if "bench" in argv else ["bench", *argv[1:]]
    return shlex.join(["edgeface", *(portable_path(w) if w.startswith("/") else w for w in words)])
