"""Reading benchmark results: the fastest row, a row's latency, and the Markdown table ``edgeface bench`` prints."""

from __future__ import annotations

import statistics

from edgeface.bench.timing import repeats_ci95


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
    """The row's latency statistic ``key`` (ms) at ``batch``, None when that batch was not measured."""
    for b in row.get("batches") or []:
        if b["batch"] == batch:
            return b["latency_ms"][key]
    return None


def variant_label(row: dict) -> str:
    """``t=2,hint=LATENCY``: what tells two measurements of one artifact and backend apart."""
    opts = ",".join(f"{k}={v}" for k, v in sorted((row.get("options") or {}).items()))
    return f"t={row['threads'] or 'auto'}" + (f",{opts}" if opts else "")


def markdown_table(document: dict) -> str:
    """One line per measured row and batch: the numbers a person compares first."""
    lines = [
        f"Device: {document['device']} | load average before/after: {document['load_average']['before']} / "
        f"{document['load_average']['after']}",
        "",
        "| model | target | backend | precision | variant | MiB | load s | peak RSS MiB | batch | mean ms (95% CI) | "
        "p50 | p90 | p99 | std | n | img/s (latency) | img/s (throughput) | status |",
        "|---|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in document["results"]:
        head = (f"| {r['model']} | {r['target']} | {r['backend']} | {r['precision']} | {variant_label(r)} | "
                f"{_fmt(r['file_mib'], 1)} | {_fmt(r['load_s'], 2)} | {_fmt(r['peak_rss_mib'], 0)} |")
        if r["status"] != "ok":
            lines.append(f"{head} | | | | | | | | | {r['status']}: {r['reason']} |")
            continue
        for b in r["batches"]:
            s = b["latency_ms"]
            tp = b["throughput_mode"]["images_per_s"] if b["throughput_mode"] else None
            mean = f"{s['mean']:.2f} ± {s['ci95']:.2f}" if "ci95" in s else f"{s['mean']:.2f}"
            lines.append(f"{head} {b['batch']} | {mean} | {s['p50']:.2f} | {s['p90']:.2f} | {s['p99']:.2f} | "
                         f"{s['std']:.2f} | {s['n']} | {b['throughput_latency_mode']:.1f} | {_fmt(tp, 1)} | ok |")
    return "\n".join(lines)


def interleaved_table(document: dict) -> str:
    """Batch-1 medians from the interleaved rounds, with benchmark_app's on the same IR, edgeface's overhead over it
    (per round, and over benchmark_app's loop in alternating blocks in-process) and whether the two compiled
    configurations were the same."""
    lines = ["| model | target | backend | variant | rounds | median ms | mean ms (95% CI over rounds) | "
             "benchmark_app median ms | "
             "edgeface / benchmark_app (median, IQR, 95 % CI) | same compiled config | "
             "edgeface / benchmark_app's loop, alternating blocks (median, IQR, 95 % CI) |",
             "|---|---|---|---|---:|---:|---:|---:|---|---|---|"]
    rows = [r for r in document["results"] if r.get("interleaved")]
    for r in rows:
        x = r["interleaved"]
        ref, over = x.get("benchmark_app_rounds_ms"), x.get("overhead_vs_benchmark_app")
        differences = x.get("benchmark_app_config_differences")
        same = ("" if differences is None else "yes" if not differences else
                "no: " + ", ".join(f"{k} {a} vs {b}" for k, (a, b) in differences.items()))
        paired = (x.get("paired_loop") or {}).get("overhead")
        ci = repeats_ci95(x["rounds_ms"])
        lines.append(f"| {r['model']} | {r['target']} | {r['backend']} | {variant_label(r)} | {len(x['rounds_ms'])} | "
                     f"{x['median_ms']:.2f} | {f'{ci[0]:.2f} ± {ci[1]:.2f}' if ci else ''} | "
                     f"{_fmt(statistics.median(ref) if ref else None, 2)} | "
                     + (_spread(over) if over else x.get("benchmark_app_error", "")) + f" | {same} | "
                     + (_spread(paired) if paired else "") + " |")
    return "\n".join(lines) if rows else ""


def _spread(ratios: dict) -> str:
    return (f"{ratios['median']:.3f} ({ratios['q1']:.3f}-{ratios['q3']:.3f}, {ratios['ci95'][0]:.3f}-"
            f"{ratios['ci95'][1]:.3f})")


def _fmt(value: float | None, digits: int) -> str:
    return "" if value is None else f"{value:.{digits}f}"
