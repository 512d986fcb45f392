"""The paper's speed claims (ThinAgeNet / TinyAgeNet N x faster than VGG-16) measured so the verdict holds under load.

Every configuration (the age networks and the ``vgg16-dldl`` baseline, each backend and precision) is opened in
one process and timed only in interleaved rounds (:func:`edgeface.bench.interleaved.timed_rounds`: A, B, C, A, B,
C, ...), so another process loading the machine slows neighbours alike and each speed-up is the median of the
per-round ratios with its inter-quartile range and bootstrap 95 % interval (:mod:`edgeface.bench.claims`). The
networks are untrained and exported at ``--input-size`` (224 px, the paper's): speed does not depend on the weights.
Writes ``claims.{json,md,png}``: the JSON is an ``edgeface bench`` result document (``edgeface report`` reads it)
with the claims rows and the command added.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from edgeface.bench.experiments import add_common_arguments, command_line, write_results
from edgeface.bench.fingerprint import machine_busy
from edgeface.checks import COUNT, PIXELS, POSITIVE, number_type
from edgeface.fileio import save_figure

MODELS = ["tinyagenet", "thinagenet"]
BACKENDS = ["onnxruntime", "openvino"]
TARGETS = ["onnx", "onnx-int8", "openvino", "openvino-int8"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("models", nargs="*", default=MODELS, help="age models (default: %(default)s)")
    add_common_arguments(parser, threads=2, threads_help="intra-op threads of every runner")
    parser.add_argument("--backends", nargs="+", default=BACKENDS, help="CPU backends (default: %(default)s)")
    parser.add_argument("--targets", nargs="+", default=TARGETS, help="convert targets (default: %(default)s)")
    parser.add_argument("--input-size", type=PIXELS, default=224, help="input side of every network (default 224)")
    parser.add_argument("--rounds", type=COUNT, default=12, help="interleaved rounds (default 12)")
    parser.add_argument("--round-duration", type=POSITIVE, default=1.0,
                        help="seconds per configuration per round, 5 calls at least (default 1)")
    parser.add_argument("--warmup", type=number_type(minimum=0), default=1.0,
                        help="warm-up seconds per configuration (default 1)")


def spread_rows(rows: list[dict]) -> list[dict]:
    """The speed-up claims that carry per-round ratios (measured in interleaved rounds)."""
    return [r for r in rows if r.get("spread")]


def markdown(document: dict) -> str:
    from edgeface.bench.claims import claims_markdown
    from edgeface.bench.tables import interleaved_table

    return "\n".join([f"# Claims check in interleaved rounds ({document['created'][:10]})", "", document["setup"], "",
                      f"Command: `{document['command']}`", "", claims_markdown(document["claims"]), "",
                      "Batch-1 latency per configuration (medians of the rounds):", "", interleaved_table(document),
                      "", "![per-round speed-ups](claims.png)", ""])


def plot(document: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib.ticker import FuncFormatter

    from edgeface.bench.claims import GOAL_RATIO, SPEEDUP_ABSTRACT, SPEEDUP_PAPER

    rows = spread_rows(document["claims"])
    fig, ax = plt.subplots(figsize=(9, 0.5 * len(rows) + 2.6))
    for y, r in enumerate(rows):
        x = r["spread"]
        colour = "C0" if r["claim"].startswith("ThinAgeNet") else "C1"
        ax.scatter(x["ratios"], np.full(len(x["ratios"]), y) + np.linspace(-0.15, 0.15, len(x["ratios"])), s=10,
                   color=colour, alpha=0.5)
        ax.plot([x["q1"], x["q3"]], [y, y], color=colour, linewidth=5, alpha=0.6, solid_capstyle="butt")
        ax.plot(x["median"], y, marker="D", color="black", markersize=5)
    labels = [f"{'Thin' if r['claim'].startswith('ThinAgeNet') else 'Tiny'}AgeNet {r['backend']} {r['precision']}"
              for r in rows]
    ax.set_yticks(range(len(rows)), labels, fontsize=8)
    for height, (ratio, text) in enumerate(((SPEEDUP_PAPER, "paper 2.6x"),
                                            (SPEEDUP_ABSTRACT, f"abstract / goal {GOAL_RATIO:g}x"))):
        ax.axvline(ratio, color="grey", linestyle="--", linewidth=1)
        ax.text(ratio, 0.02 + 0.05 * height, f" {text}", fontsize=8, color="grey", transform=ax.get_xaxis_transform())
    ax.set_ylim(len(rows) - 0.5, -0.5)  # first claim on top
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}x"))
    ax.xaxis.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:g}x" if f"{v:g}"[0] in "2357" else ""))
    ax.set_xlabel("times faster than VGG-16 at batch 1 (per-round ratio; bar: IQR, diamond: median; log scale)")
    ax.set_title(f"{document['device']}: speed-ups in {document['settings']['rounds']} interleaved rounds "
                 f"(load average {document['load_average']['before'][0]:.1f} at the start)", fontsize=10)
    ax.grid(True, axis="x", which="both", alpha=0.3)
    fig.tight_layout()
    save_figure(fig, path, dpi=110)


def main(args: argparse.Namespace) -> int:
    from edgeface.bench.claims import claims_table
    from edgeface.bench.jobs import collect_jobs
    from edgeface.bench.measure import run_benchmark

    settings = {"batches": [1], "duration_s": args.round_duration * args.rounds, "warmup_s": args.warmup,
                "rounds": args.rounds, "round_s": args.round_duration, "streams": 1, "backends": args.backends,
                "device": "cpu", "measured": "interleaved rounds only"}
    with tempfile.TemporaryDirectory(prefix="edgeface-claims-") as tmp:
        jobs = collect_jobs(args.models, Path(tmp), args.backends, args.targets, "cpu", args.input_size,
                            [args.threads], untrained=True)
        document = run_benchmark(jobs, settings, measured_apart=False, reference=False, label="claims")
    document["command"] = command_line(args, positional=("models",))
    document["claims"] = claims_table([document])
    document["setup"] = (
        f"Untrained networks at {args.input_size} px (speed only), batch 1, {args.threads} threads per runner, every "
        f"configuration open in one process and timed in {args.rounds} interleaved rounds of {args.round_duration:g} "
        f"s each (5 calls at least) after a {args.warmup:g} s warm-up; each speed-up is the median of the per-round "
        "ratios (IQR, bootstrap 95 % CI). Load average "
        f"{document['load_average']['before'][0]:.2f} at the start and {document['load_average']['after'][0]:.2f} "
        f"at the end on {os.cpu_count()} cores" + (": other jobs were running, which is what the rounds are for."
                                                    if machine_busy(document["load_average"]["before"][0],
                                                                    os.cpu_count() or 1) else " (a quiet machine)."))
    args.out.mkdir(parents=True, exist_ok=True)
    plot(document, args.out / "claims.png")
    write_results(args.out, "claims", document, markdown(document))
    return 0
