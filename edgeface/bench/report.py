"""``edgeface report results/*.json --out REPORT.md``: merge benchmark runs from several devices into one report.

Tables (devices, claims check, fastest path per model, every measurement, throughput, memory, drift) and PNG
plots (latency vs parameters, latency per backend and precision, speed vs accuracy drift) beside the report.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from edgeface.bench.claims import claims_markdown, claims_table
from edgeface.bench.jobs import BASELINE
from edgeface.bench.schema import validate_result
from edgeface.bench.tables import latency_at, variant_label


def _config_key(row: dict) -> tuple:
    return (row["model"], row["target"], row["backend"], row["device"], row["threads"],
            tuple(sorted((row.get("options") or {}).items())))


def merge_runs(runs: list[dict]) -> dict:
    """Several runs of one device -> one document: a configuration measured again replaces the older row
    (e.g. a re-run on a quieter machine); fingerprint and settings are the newest run's, load averages and
    warnings of every run are kept."""
    runs = sorted(runs, key=lambda d: d["created"])
    rows: dict[tuple, dict] = {}
    for doc in runs:
        for row in doc["results"]:
            rows[_config_key(row)] = row
    merged = dict(runs[-1])
    merged["results"] = list(rows.values())
    if len(runs) > 1:
        merged["preflight_warnings"] = list(dict.fromkeys(w for d in runs for w in d["preflight_warnings"]))
        merged["load_average"] = {"before": [max(d["load_average"]["before"][0] for d in runs)],
                                  "after": [max(d["load_average"]["after"][0] for d in runs)]}
        merged["runs"] = [{"created": d["created"], "load_average": d["load_average"],
                           "configs": len(d["results"])} for d in runs]
    return merged


def load_results(paths: list[str | Path]) -> list[dict]:
    """Read and validate result documents; runs of the same device are merged (:func:`merge_runs`)."""
    by_device: dict[str, list[dict]] = {}
    for path in paths:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"result file not found: {path}")
        try:
            doc = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise ValueError(f"{path} is not JSON: {e}") from e
        try:
            validate_result(doc)
        except ValueError as e:
            raise ValueError(f"{path}: {e}") from e
        by_device.setdefault(doc["device"], []).append(doc)
    return [merge_runs(runs) for runs in by_device.values()]


def _synthetic(documents: list[dict]) -> bool:
    return any(r["data"].upper().startswith("SYNTHETIC") for d in documents for r in d["results"])


def devices_markdown(documents: list[dict]) -> str:
    lines = ["| device | CPU | cores | ISA | RAM GiB | GPU | Jetson | libraries | commit | load avg before / after |",
             "|---|---|---:|---|---:|---|---|---|---|---|"]
    for d in documents:
        fp = d["fingerprint"]
        isa = ", ".join(k for k, v in fp["cpu"]["isa"].items() if v) or "-"
        gpu = ", ".join(g["name"] for g in fp["gpu"]["devices"]) + f" (CUDA {fp['gpu']['cuda']})" if fp["gpu"] else "-"
        jetson = fp["jetson"] or {}
        jet = (f"{jetson.get('model')} L4T {jetson.get('l4t')} JetPack {jetson.get('jetpack')} "
               f"{(jetson.get('nvpmodel') or {}).get('mode')} clocks={jetson.get('jetson_clocks')}") if jetson else "-"
        libs = ", ".join(f"{k} {v}" for k, v in fp["libraries"].items() if k not in ("numpy", "opencv-python-headless"))
        commit = (fp["git"]["commit"] or "-")[:10] + (" (dirty)" if fp["git"].get("dirty") else "")
        lines.append(f"| {d['device']} | {fp['cpu']['model']} | {fp['cpu']['logical_cores']} | {isa} | "
                     f"{fp['ram_gib']} | {gpu} | {jet} | {libs} | {commit} | "
                     f"{d['load_average']['before'][0]} / {d['load_average']['after'][0]} "
                     f"(worst of {len(d.get('runs', [d]))} run(s)) |")
    warnings = [f"- {d['device']}: {w}" for d in documents for w in d["preflight_warnings"]]
    if warnings:
        lines += ["", "Preflight warnings (the numbers below were taken under these conditions):", "", *warnings]
    return "\n".join(lines)


def fastest_paths_markdown(documents: list[dict]) -> str:
    """Every measured path at batch 1, fastest first per model, with the speed-up over PyTorch eager."""
    lines = ["| device | model | target | backend | precision | variant | mean ms | p50 | p99 | x vs eager | "
             "drift gate |", "|---|---|---|---|---|---|---:|---:|---:|---:|---|"]
    for d in documents:
        rows = [r for r in d["results"] if r["status"] == "ok" and latency_at(r, 1) is not None]
        for model in dict.fromkeys(r["model"] for r in rows):
            mine = sorted((r for r in rows if r["model"] == model), key=lambda r: latency_at(r, 1))
            eager = [latency_at(r, 1) for r in mine if r["backend"] == "torch"]
            for r in mine:
                ms = latency_at(r, 1)
                speedup = f"{min(eager) / ms:.2f}" if eager else ""
                lines.append(f"| {d['device']} | {model} | {r['target']} | {r['backend']} | {r['precision']} | "
                             f"{variant_label(r)} | {ms:.2f} | {latency_at(r, 1, 'p50'):.2f} | "
                             f"{latency_at(r, 1, 'p99'):.2f} | {speedup} | {_gate(r)} |")
    return "\n".join(lines)


def _gate(row: dict) -> str:
    gate = (row.get("drift") or {}).get("gate")
    if not gate:
        return "n/a" if row["target"] == "pytorch" or row["baseline"] else "not measured"
    return f"{'passed' if gate['passed'] else 'FAILED'} ({gate['metric']} delta {gate['delta']:+.3f})"


def all_measurements_markdown(documents: list[dict]) -> str:
    lines = ["| device | model | target | backend | variant | batch | mean ms | std | p50 | p90 | p95 | p99 | min | "
             "max | n | img/s latency mode | img/s throughput mode | load s | peak RSS MiB | file MiB |",
             "|---|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    skipped = []
    for d in documents:
        for r in d["results"]:
            if r["status"] != "ok":
                skipped.append(f"- {d['device']} {r['model']} {r['target']} ({r['backend']}): {r['status']}: "
                               f"{r['reason']}")
                continue
            for b in r["batches"]:
                s = b["latency_ms"]
                tp = b["throughput_mode"]
                lines.append(
                    f"| {d['device']} | {r['model']} | {r['target']} | {r['backend']} | {variant_label(r)} | "
                    f"{b['batch']} | {s['mean']:.2f} | {s['std']:.2f} | {s['p50']:.2f} | {s['p90']:.2f} | "
                    f"{s['p95']:.2f} | {s['p99']:.2f} | {s['min']:.2f} | {s['max']:.2f} | {s['n']} | "
                    f"{b['throughput_latency_mode']:.1f} | {tp['images_per_s'] if tp else '-'} | "
                    f"{r['load_s']:.2f} | {r['peak_rss_mib']:.0f} | {r['file_mib'] or 0:.1f} |")
    if skipped:
        lines += ["", "Not measured:", "", *skipped]
    return "\n".join(lines)


def gpu_power_markdown(documents: list[dict]) -> str:
    lines = ["| device | model | target | batch | compute-only mean ms | end-to-end mean ms | mean power W | "
             "images / J |", "|---|---|---|---:|---:|---:|---:|---:|"]
    n = 0
    for d in documents:
        for r in d["results"]:
            for b in r["batches"]:
                if b["compute_only_ms"] is None and b["power"] is None:
                    continue
                n += 1
                co = b["compute_only_ms"]["mean"] if b["compute_only_ms"] else None
                pw = (b["power"] or {}).get("mean_power_w")
                lines.append(f"| {d['device']} | {r['model']} | {r['target']} | {b['batch']} | "
                             f"{'' if co is None else f'{co:.3f}'} | {b['latency_ms']['mean']:.3f} | "
                             f"{'' if pw is None else pw} | {b['images_per_joule'] or ''} |")
    return "\n".join(lines) if n else "No GPU or Jetson results in these runs."


def _best_per_backend_precision(rows: list[dict], model: str) -> dict[str, float]:
    best: dict[str, float] = {}
    for r in rows:
        if r["model"] != model or r["status"] != "ok" or latency_at(r, 1) is None:
            continue
        key = f"{r['backend']}\n{r['precision']}"
        best[key] = min(best.get(key, float("inf")), latency_at(r, 1))
    return best


def plot_latency_vs_params(documents: list[dict], path: Path) -> None:
    import matplotlib.pyplot as plt

    from edgeface.fileio import save_figure

    fig, ax = plt.subplots(figsize=(7, 5))
    for d in documents:
        for backend in sorted({r["backend"] for r in d["results"]}):
            pts = {}
            for r in d["results"]:
                if r["backend"] == backend and r["status"] == "ok" and r["params"] and latency_at(r, 1):
                    pts[r["model"]] = min(pts.get(r["model"], float("inf")), latency_at(r, 1))
            if not pts:
                continue
            params = {r["model"]: r["params"] for r in d["results"] if r["params"]}
            xs = [params[m] for m in pts]
            ax.scatter(xs, list(pts.values()), label=f"{d['device']} {backend}")
            for m, y in pts.items():
                ax.annotate(m, (params[m], y), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("parameters")
    ax.set_ylabel("batch-1 latency, ms (best variant)")
    ax.set_title("Latency vs parameters")
    ax.legend(fontsize=7)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    save_figure(fig, path, dpi=110)


def plot_latency_per_backend(documents: list[dict], path: Path) -> None:
    import matplotlib.pyplot as plt
    import numpy as np

    from edgeface.fileio import save_figure

    panels = [(d, m) for d in documents for m in dict.fromkeys(r["model"] for r in d["results"])]
    fig, axes = plt.subplots(len(panels), 1, figsize=(8, 2.4 * len(panels)), squeeze=False)
    for ax, (d, model) in zip(axes[:, 0], panels, strict=True):
        best = _best_per_backend_precision(d["results"], model)
        keys = sorted(best)
        ax.barh(np.arange(len(keys)), [best[k] for k in keys], color="tab:blue" if model != BASELINE else "tab:gray")
        ax.set_yticks(np.arange(len(keys)), [k.replace("\n", " ") for k in keys], fontsize=8)
        for i, k in enumerate(keys):
            ax.text(best[k], i, f" {best[k]:.1f}", va="center", fontsize=8)
        ax.set_title(f"{d['device']}: {model}", fontsize=9)
        ax.set_xlabel("batch-1 latency, ms", fontsize=8)
    fig.tight_layout()
    save_figure(fig, path, dpi=110)


def speed_vs_drift_points(documents: list[dict]) -> list[tuple[float, float, str, bool]]:
    """(batch-1 ms, |gated metric change|, "model target variant", gate passed) of every measured row with drift."""
    pts = []
    for d in documents:
        for r in d["results"]:
            gate = (r.get("drift") or {}).get("gate")
            if r["status"] == "ok" and gate and latency_at(r, 1):
                pts.append((latency_at(r, 1), abs(gate["delta"]), f"{r['model']} {r['target']} {variant_label(r)}",
                            gate["passed"]))
    return sorted(pts)


def speed_vs_drift_figure(points: list[tuple[float, float, str, bool]]):
    """Numbered markers on the plot and the numbered labels in a list beside it: labels of points that lie close
    together (INT8 artifacts of one model often do) cannot overlap there."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = len(points)
    fig, (ax, listing) = plt.subplots(1, 2, figsize=(11, max(4.5, 0.22 * rows + 1.2)),
                                      gridspec_kw={"width_ratios": [3, 2]})
    for i, (ms, delta, _, passed) in enumerate(points, start=1):
        color = "tab:green" if passed else "tab:red"
        ax.scatter(ms, delta, s=90, facecolor="white", edgecolor=color, zorder=2)
        ax.scatter(ms, delta, s=45 if i < 10 else 70, marker=f"${i}$", color=color, zorder=3)
    ax.set_xscale("log")
    ax.set_ylim(bottom=0)
    ax.set_xlabel("batch-1 latency, ms (log scale)")
    ax.set_ylabel("|metric change vs PyTorch| (MAE years / accuracy points)")
    ax.set_title("Speed vs accuracy drift (green: drift gate passed, red: breached)", fontsize=10)
    ax.grid(True, alpha=0.3)
    listing.axis("off")
    step = 1.0 / max(rows, 1)
    for i, (ms, delta, label, passed) in enumerate(points, start=1):
        listing.text(0.0, 1.0 - (i - 0.5) * step, f"{i:>2}  {label}  {ms:.2f} ms, {delta:.3f}", fontsize=8,
                     va="center", family="monospace", color="tab:green" if passed else "tab:red",
                     transform=listing.transAxes)
    fig.tight_layout()
    return fig


def plot_speed_vs_drift(documents: list[dict], path: Path) -> bool:
    """Latency against the convert manifest's gated metric change; False when no run carries drift."""
    from edgeface.fileio import save_figure

    points = speed_vs_drift_points(documents)
    if not points:
        return False
    save_figure(speed_vs_drift_figure(points), path, dpi=110)
    return True


def write_report(documents: list[dict], out: str | Path, title: str = "edgeface benchmark report") -> Path:
    """REPORT.md plus its PNGs (written beside it); returns the report path."""
    import matplotlib

    matplotlib.use("Agg")
    from edgeface.fileio import write_text

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    stem = out.stem.lower()
    plots = {"latency_vs_params": out.parent / f"{stem}_latency_vs_params.png",
             "latency_per_backend": out.parent / f"{stem}_latency_per_backend.png",
             "speed_vs_drift": out.parent / f"{stem}_speed_vs_drift.png"}
    plot_latency_vs_params(documents, plots["latency_vs_params"])
    plot_latency_per_backend(documents, plots["latency_per_backend"])
    has_drift = plot_speed_vs_drift(documents, plots["speed_vs_drift"])
    parts = [f"# {title}", ""]
    if _synthetic(documents):
        parts += ["**SYNTHETIC**: some models here were trained on the built-in SYNTHETIC data (generated "
                  "face-like pictures): their accuracy and drift figures say nothing about real faces. "
                  "Latency, size and memory do not depend on the weights.", ""]
    settings = "; ".join(f"{d['device']}: batches {d['settings']['batches']}, {d['settings']['duration_s']} s "
                         f"measured after {d['settings']['warmup_s']} s warm-up, {d['settings']['streams']} "
                         f"streams in throughput mode" for d in documents)
    parts += [f"Runs: {settings}. Latency = one request at a time; mean over the measured window.", "",
              "## Devices", "", devices_markdown(documents), "",
              "## Claims check: paper vs measured here", "", claims_markdown(claims_table(documents)), "",
              "## Fastest path per model (batch 1)", "", fastest_paths_markdown(documents), "",
              f"![latency per backend]({plots['latency_per_backend'].name})", "",
              f"![latency vs parameters]({plots['latency_vs_params'].name})", ""]
    if has_drift:
        parts += ["## Speed vs accuracy drift", "", f"![speed vs drift]({plots['speed_vs_drift'].name})", ""]
    else:
        plots["speed_vs_drift"].unlink(missing_ok=True)
    parts += ["## GPU compute-only time and Jetson power", "", gpu_power_markdown(documents), "",
              "## Every measurement", "", all_measurements_markdown(documents), ""]
    write_text(out, "\n".join(parts))
    return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("results", nargs="+", help="result JSON files from `edgeface bench` (one or more devices)")
    parser.add_argument("--out", type=Path, default=Path("REPORT.md"), help="report path (PNGs beside it)")
    parser.add_argument("--title", default="edgeface benchmark report")


def main(args: argparse.Namespace) -> int:
    documents = load_results(args.results)
    out = write_report(documents, args.out, args.title)
    print(claims_markdown(claims_table(documents)))
    print(f"\nwrote {out}")
    return 0
