"""``edgeface models``: the zoo with its measured size and cost next to the VGG-16 baseline."""

from __future__ import annotations

import argparse
import json

BASELINE = "vgg16-dldl"


def model_rows(input_size: int = 224) -> list[dict]:
    """One row per registered model: parameters and MACs counted on the built network."""
    from edgeface.models import create_model, default_cfg, list_models
    from edgeface.models.profile import count_macs, count_params, fp32_mib

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
        })
    base = next(r for r in rows if r["name"] == BASELINE)
    for r in rows:
        r["params_ratio_vs_baseline"] = round(base["params"] / r["params"], 2)
        r["macs_ratio_vs_baseline"] = round(base["macs"] / r["macs"], 2)
    return rows


def markdown_table(rows: list[dict]) -> str:
    lines = [
        "| model | family | outputs | input | params | GMACs | FP32 MiB | params x fewer | MACs x fewer |",
        "|---|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['name']} | {r['family']} | {', '.join(r['outputs'])} | {r['input_size']} | {r['params']:,} | "
            f"{r['macs'] / 1e9:.2f} | {r['fp32_mib']:.1f} | {r['params_ratio_vs_baseline']:.1f} | "
            f"{r['macs_ratio_vs_baseline']:.1f} |"
        )
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
    print(json.dumps(rows, indent=2) if args.json else markdown_table(rows))
    return 0
