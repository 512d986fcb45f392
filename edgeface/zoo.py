"""``edgeface models``: the zoo with its measured size and cost next to the VGG-16 baseline, and the pretrained
weights that ship for it (with their training data's terms)."""

from __future__ import annotations

import argparse
import json

from edgeface.weights import load_index, weights_for

BASELINE = "vgg16-dldl"
WEIGHT_FIELDS = ("task", "input_size", "bytes", "metrics", "data", "data_terms", "recipe")
HEADLINE_METRICS = {"mae": "MAE", "cs@5": "CS@5", "pearson": "Pearson", "mean_accuracy": "mean accuracy",
                    "mean_balanced_accuracy": "mean balanced accuracy"}


def model_rows(input_size: int = 224) -> list[dict]:
    """One row per registered model: parameters and MACs counted on the built network."""
    from edgeface.models import create_model, default_cfg, list_models
    from edgeface.models.profile import count_macs, count_params, fp32_mib

    shipped = load_index()
    rows = []
    for name in list_models():
        model = create_model(name)
        rows.append({
            "name": name,
            "family": default_cfg(name).family,
            "outputs": list(model.output_names),
            "input_size": input_size,
            "params": count_params(model),
            "macs": count_macs(model, input_size),
            "fp32_mib": round(fp32_mib(model), 3),
            "weights": [{"name": w, **{k: shipped[w][k] for k in WEIGHT_FIELDS}} for w in weights_for(name)],
        })
    base = next(r for r in rows if r["name"] == BASELINE)
    for r in rows:
        r["params_ratio_vs_baseline"] = round(base["params"] / r["params"], 2)
        r["macs_ratio_vs_baseline"] = round(base["macs"] / r["macs"], 2)
    return rows


def markdown_table(rows: list[dict]) -> str:
    lines = [
        "| model | family | outputs | input | params | GMACs | FP32 MiB | params x fewer | MACs x fewer | "
        "pretrained weights |",
        "|---|---|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['name']} | {r['family']} | {', '.join(r['outputs'])} | {r['input_size']} | {r['params']:,} | "
            f"{r['macs'] / 1e9:.2f} | {r['fp32_mib']:.1f} | {r['params_ratio_vs_baseline']:.1f} | "
            f"{r['macs_ratio_vs_baseline']:.1f} | {', '.join(w['name'] for w in r['weights']) or '-'} |"
        )
    return "\n".join(lines)


def weights_table(rows: list[dict]) -> str:
    """The shipped weights: what each predicts, how well (validation metrics from its card), and its data's terms."""
    lines = ["| weights | model | task | input | validation metrics | MiB | trained on | terms |",
             "|---|---|---|---:|---|---:|---|---|"]
    for r in rows:
        for w in r["weights"]:
            metrics = ", ".join(f"{label} {w['metrics'][key]:.3g}" for key, label in HEADLINE_METRICS.items()
                                if key in w["metrics"])
            lines.append(f"| {w['name']} | {r['name']} | {w['task']} | {w['input_size']} | {metrics} | "
                         f"{w['bytes'] / 2**20:.1f} | {w['data']} | {w['data_terms']} |")
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--input-size", type=int, default=224, help="square input side (default 224, the paper's)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a Markdown table")


def main(args: argparse.Namespace) -> int:
    try:
        import torch  # noqa: F401
    except ImportError as e:
        raise ImportError("the model zoo needs PyTorch: pip install 'edgeface[train]'") from e
    rows = model_rows(args.input_size)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(markdown_table(rows))
    if any(r["weights"] for r in rows):
        print("\nShipped weights (load by name: edgeface run VIDEO --models NAME, edgeface convert NAME, ...):\n")
        print(weights_table(rows))
    return 0
