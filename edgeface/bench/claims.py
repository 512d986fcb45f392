"""The claims check: what the DLDL-v2 paper says about ThinAgeNet / TinyAgeNet vs what was measured here.

Each row names the claim, the measured value, and a verdict. Latency claims are judged per device, backend
and precision at batch 1 against the ``vgg16-dldl`` baseline on the same device and backend (FP32, the
baseline's only precision); artifacts that failed the convert drift gate are not used. Where both rows were also
measured in interleaved rounds (``edgeface bench --rounds``), the ratio is the median of the per-round ratios,
with its inter-quartile range and bootstrap 95 % interval: a verdict that holds when other jobs load the machine.
"""

from __future__ import annotations

from edgeface.bench.jobs import BASELINE, CPU_BACKENDS
from edgeface.bench.tables import best_row, latency_at, variant_label
from edgeface.bench.timing import interleaved_ratios

THIN, TINY = "thinagenet", "tinyagenet"
PARAMS_RATIO_CLAIM = 36.0  # ThinAgeNet has 36x fewer parameters than VGG-16 (paper)
SPEEDUP_PAPER, SPEEDUP_ABSTRACT = 2.6, 3.0  # paper's GPU measurement; the abstract's "3x faster"
TINY_PARAMS_CLAIM, TINY_MB_CLAIM = 0.9e6, 3.8  # TinyAgeNet: 0.9M parameters, 3.8 MB
GOALS_MS = {THIN: 25.0, TINY: 7.0}  # this project's batch-1 CPU goals at 224x224 (best path, drift gate passed)
GOAL_RATIO = 3.0  # this project's goal: at least 3x faster than the baseline on every CPU backend
TOLERANCE = 0.1  # a count or size claim holds within 10 %


def _rows_of(document: dict) -> list[dict]:
    return [r for r in document["results"] if r["status"] == "ok"]


def _first(rows: list[dict], model: str, key: str):
    return next((r[key] for r in rows if r["model"] == model and r.get(key) is not None), None)


def static_claims(documents: list[dict]) -> list[dict]:
    """Parameter and size claims (the same on every device)."""
    rows = [r for d in documents for r in d["results"]]
    out = []
    thin, vgg, tiny = (_first(rows, m, "params") for m in (THIN, BASELINE, TINY))
    if thin and vgg:
        ratio = vgg / thin
        out.append(_claim("ThinAgeNet has 36x fewer parameters than VGG-16", "36x", f"{ratio:.1f}x "
                          f"({thin:,} vs {vgg:,})", ratio >= PARAMS_RATIO_CLAIM * (1 - TOLERANCE)))
    if tiny:
        out.append(_claim("TinyAgeNet has 0.9M parameters", "0.9M", f"{tiny / 1e6:.3f}M",
                          abs(tiny - TINY_PARAMS_CLAIM) <= TOLERANCE * TINY_PARAMS_CLAIM))
    tiny_file = next((r for r in rows if r["model"] == TINY and r["target"] == "onnx" and r.get("file_mib")), None)
    if tiny_file:
        mb = tiny_file["file_mib"] * 2**20 / 1e6
        out.append(_claim("TinyAgeNet model is 3.8 MB", "3.8 MB", f"{mb:.2f} MB (ONNX FP32 file)",
                          abs(mb - TINY_MB_CLAIM) <= TOLERANCE * TINY_MB_CLAIM))
    return out


def latency_claims(document: dict) -> list[dict]:
    """Speed-up vs VGG-16 per backend and precision on one device, plus the project's CPU goals."""
    rows = _rows_of(document)
    device = document["device"]
    out = []
    for model, claim_text in ((THIN, "ThinAgeNet is 2.6x (paper, GPU) / 3x (abstract) faster than VGG-16"),
                              (TINY, "TinyAgeNet is at least 3x faster than VGG-16 (project goal)")):
        for backend in sorted({r["backend"] for r in rows if r["model"] == model}):
            base = best_row(rows, BASELINE, backend=backend, precision="fp32")
            if base is None:
                continue
            base_ms = latency_at(base, 1)
            for precision in ("fp32", "fp16", "int8"):
                row = best_row(rows, model, backend=backend, precision=precision, drift_gate=True)
                if row is None or latency_at(row, 1) is None or base_ms is None:
                    continue
                ms = latency_at(row, 1)
                ratio, measured, spread = speedup(base, row, base_ms, ms)
                if model == THIN:
                    verdict = ("confirmed (>= 3x)" if ratio >= SPEEDUP_ABSTRACT else
                               "partly: >= 2.6x, < 3x" if ratio >= SPEEDUP_PAPER else "not confirmed")
                else:
                    verdict = "met" if ratio >= GOAL_RATIO else "not met"
                out.append({"claim": claim_text, "device": device, "backend": backend, "precision": precision,
                            "variant": variant_label(row), "paper": "2.6x / 3x" if model == THIN else ">= 3x",
                            "measured": f"{measured}, {row['input_size']}px",
                            "verdict": verdict, "ratio": round(ratio, 3), "spread": spread})
    cpu = document["settings"].get("device", "cpu") == "cpu"
    for model, goal in GOALS_MS.items():
        best = best_row([r for r in rows if r["backend"] in CPU_BACKENDS], model, drift_gate=True) if cpu else None
        if best is None:
            continue
        ms = latency_at(best, 1)
        size_ok = best["input_size"] == 224
        verdict = ("met" if ms <= goal else "not met") if size_ok else f"n/a ({best['input_size']}px input)"
        out.append({"claim": f"{model} batch-1 latency on this CPU <= {goal:g} ms (project goal, best path, "
                             "drift gate passed)", "device": device, "backend": best["backend"],
                    "precision": best["precision"], "variant": variant_label(best), "paper": f"<= {goal:g} ms",
                    "measured": f"{ms:.2f} ms ({best['target']})", "verdict": verdict, "ratio": None})
    return out


def speedup(base: dict, row: dict, base_ms: float, ms: float) -> tuple[float, str, dict | None]:
    """How many times faster ``row`` is than ``base`` at batch 1, the words that say how it was measured, and the
    per-round ratios with their spread (:func:`interleaved_ratios`): from interleaved rounds where both rows have
    them, else from the two isolated means (no spread)."""
    a, b = (r.get("interleaved") or {} for r in (base, row))
    if a.get("rounds_ms") and len(a["rounds_ms"]) == len(b.get("rounds_ms") or []):
        x = interleaved_ratios(a["rounds_ms"], b["rounds_ms"])
        return x["median"], (f"{x['median']:.2f}x (IQR {x['q1']:.2f}-{x['q3']:.2f}, 95 % CI {x['ci95'][0]:.2f}-"
                             f"{x['ci95'][1]:.2f}; {x['rounds']} interleaved rounds, {b['median_ms']:.2f} vs "
                             f"{a['median_ms']:.2f} ms median, batch 1)"), x
    return base_ms / ms, f"{base_ms / ms:.2f}x ({ms:.2f} vs {base_ms:.2f} ms, batch 1, measured apart)", None


def _claim(claim: str, paper: str, measured: str, holds: bool) -> dict:
    return {"claim": claim, "device": "any", "backend": "-", "precision": "-", "variant": "-", "paper": paper,
            "measured": measured, "verdict": "confirmed" if holds else "not confirmed", "ratio": None}


def claims_table(documents: list[dict]) -> list[dict]:
    rows = static_claims(documents)
    for doc in documents:
        rows += latency_claims(doc)
    return rows


def claims_markdown(rows: list[dict]) -> str:
    lines = ["| claim | device | backend | precision | variant | paper | measured here | verdict |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['claim']} | {r['device']} | {r['backend']} | {r['precision']} | {r['variant']} | "
                     f"{r['paper']} | {r['measured']} | **{r['verdict']}** |")
    return "\n".join(lines)
