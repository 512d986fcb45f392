"""``edgeface convert``: checkpoint (or a convert folder's ONNX graphs) -> ONNX / OpenVINO / TensorRT artifacts +
manifest, with a drift gate. From a folder or an ONNX file nothing imports torch: that is the on-board path."""

from __future__ import annotations

import argparse

from edgeface.assets import DETECTOR
from edgeface.progress import add_progress_argument
from edgeface.targets import TARGETS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", metavar="SOURCE",
                        help="edgeface checkpoint (.pt) from edgeface train, or the name of shipped weights "
                             "(tinyagenet, ...; see edgeface models); or a convert folder / an ONNX file carrying "
                             "the edgeface card, to build TensorRT / OpenVINO targets from its ONNX graphs without "
                             "torch (the folder's manifest gains them)")
    parser.add_argument("--to", default="all", help=f"comma-separated targets or all (default): {', '.join(TARGETS)}")
    parser.add_argument("--calib", help="calibration images folder (needed for int8 targets)")
    parser.add_argument("--eval", dest="eval_data", help="labelled eval data: drift of every artifact vs PyTorch")
    parser.add_argument("--out", help="output folder, replaced as a whole when the convert succeeds (required for a "
                                      "checkpoint or ONNX file; a convert folder is updated in place by default); "
                                      "a convert with a failed target leaves a good earlier one there and writes "
                                      "OUT.failed beside it")
    parser.add_argument("--force", action="store_true",
                        help="replace --out even when it holds files that are not a convert output")
    g = parser.add_argument_group("calibration")
    g.add_argument("--calib-method", default="minmax", choices=["minmax", "entropy", "percentile"])
    g.add_argument("--calib-images", type=int, default=512, help="images used for calibration (default 512)")
    g.add_argument("--detector", nargs="?", const=str(DETECTOR), metavar="YUNET",
                   help="detect and align raw photos, with the shipped YuNet or the YuNet ONNX given (default: "
                        "images are aligned chips)")
    g = parser.add_argument_group("eval")
    g.add_argument("--eval-format", help="eval data reader (default from the task: utkface / celeba / csv)")
    g.add_argument("--eval-images", type=int, help="use at most this many eval images (evenly spread)")
    g.add_argument("--eval-label-col", help="CSV label column for csv eval data")
    g.add_argument("--eval-std-col", help="CSV label-std column for csv eval data")
    g.add_argument("--allow-drift", action="store_true", help="record gate breaches but keep the artifacts ok")
    g.add_argument("--gate-mae", type=float, nargs=2, metavar=("FP16", "INT8"),
                   help="MAE gates vs PyTorch (default 0.02 0.15; FP32 uses the FP16 gate)")
    g.add_argument("--gate-accuracy", type=float, help="attribute mean-accuracy gate in points (default 0.5)")
    g = parser.add_argument_group("build")
    g.add_argument("--opset", type=int, default=17, help="ONNX opset (17 or newer)")
    g.add_argument("--no-simplify", dest="simplify", action="store_false", help="skip onnxsim")
    g.add_argument("--batch-profile", default="1,1,16", help="TensorRT profile MIN,OPT,MAX batch (default 1,1,16)")
    g.add_argument("--workspace-mib", type=int, default=1024, help="TensorRT workspace limit in MiB")
    g.add_argument("--dla-core", type=int, help="build the TensorRT engines for this DLA core (Jetson: TensorRT "
                   "10.0-10.7, or 11.4.1+ on AGX Orin with JetPack 7.2.2+)")
    g.add_argument("--cache-dir", help="cache root: faces/, calibration/ and tensorrt/ under it (default "
                   "$EDGEFACE_CACHE, else $XDG_CACHE_HOME/edgeface, else ~/.cache/edgeface)")
    g.add_argument("--threads", type=int, default=2, help="CPU threads for export and evaluation")
    add_progress_argument(g)


def main(args: argparse.Namespace) -> int:
    from edgeface.convert.pipeline import (
        ConvertOptions,
        KeptPrevious,
        convert_checkpoint,
        convert_source,
        failed_targets,
        is_onnx_source,
    )
    from edgeface.convert.tensorrt_build import BatchProfile

    profile = BatchProfile.parse(args.batch_profile)  # a bad profile is bad input, before any work
    from_onnx = is_onnx_source(args.checkpoint)
    if not from_onnx and not args.out:
        raise ValueError("--out FOLDER is required when converting a checkpoint")
    for flag, value, least in (("--calib-images", args.calib_images, 1), ("--threads", args.threads, 1),
                               ("--workspace-mib", args.workspace_mib, 1), ("--eval-images", args.eval_images, 1)):
        if value is not None and value < least:
            raise ValueError(f"{flag} must be at least {least}, got {value}")
    options = ConvertOptions(
        opset=args.opset, simplify=args.simplify, calib_method=args.calib_method, calib_images=args.calib_images,
        detector=args.detector, batch_profile=args.batch_profile, workspace_mib=args.workspace_mib,
        dla_core=args.dla_core, cache_dir=args.cache_dir, eval_format=args.eval_format,
        eval_options={k: v for k, v in (("label_col", args.eval_label_col), ("std_col", args.eval_std_col)) if v},
        eval_images=args.eval_images, allow_drift=args.allow_drift, threads=args.threads, progress=args.progress,
        force=args.force,
    )
    if args.gate_mae:
        options.gates["mae"] = {"fp32": args.gate_mae[0], "fp16": args.gate_mae[0], "int8": args.gate_mae[1]}
    if args.gate_accuracy is not None:
        options.gates["mean_accuracy"] = args.gate_accuracy
    convert = convert_source if from_onnx else convert_checkpoint
    out = args.out or args.checkpoint
    try:
        manifest = convert(args.checkpoint, args.to, args.calib, args.eval_data, out, options)
    except KeptPrevious as e:  # what the failed attempt holds, then the one line saying where each folder is
        print(format_report(e.manifest, str(e.attempt)))
        raise
    print(format_report(manifest, str(out)))
    for line in trtexec_lines(manifest, str(out), profile, args.workspace_mib, args.dla_core):
        print(line)
    return 1 if failed_targets(manifest) else 0


def trtexec_lines(manifest: dict, out_dir: str, profile, workspace_mib: int, dla_core: int | None) -> list[str]:
    """The trtexec equivalent of every engine target in the manifest (built, failed or skipped here), so an
    engine can be built with NVIDIA's own tool and added with ``edgeface register``."""
    import shlex

    from edgeface.convert.tensorrt_build import trtexec_command
    from edgeface.targets import TARGETS

    size = manifest["card"]["preprocess"]["input_size"]
    lines = []
    for name, entry in manifest["artifacts"].items():
        spec = TARGETS[name]
        if spec.format != "tensorrt":
            continue
        trt_version = (entry.get("build_device") or {}).get("tensorrt")
        command = trtexec_command(TARGETS[spec.source].file, spec.file, size, profile, workspace_mib, dla_core,
                                  trt_version)
        if not lines:
            lines.append("trtexec equivalents (TensorRT 10; TensorRT 11 networks are always strongly typed, "
                         "so drop --stronglyTyped there):")
        lines.append(f"  {name}: cd {shlex.quote(out_dir)} && {command}")
    return lines


def format_report(manifest: dict, out_dir: str) -> str:
    """One line per target: status, size, drift (gated metric and max output difference)."""
    lines = [f"{manifest['card']['model']} -> {out_dir}/manifest.json"]
    for name, entry in manifest["artifacts"].items():
        line = f"  {name:14s} {entry['status']:7s}"
        if entry["status"] == "ok" and entry.get("bytes"):
            line += f" {entry['bytes'] / 2**20:7.2f} MiB"
        drift = entry.get("drift") or {}
        if "gate" in drift:
            g = drift["gate"]
            line += f"  {g['metric']} {g['value']:.4f} (delta {g['delta']:+.4f} {g['units']}, limit {g['limit']})"
        if drift.get("max_abs_diff"):
            line += f"  max|diff| {max(drift['max_abs_diff'].values()):.2e}"
        if entry.get("reason"):
            line += f"  {entry['reason']}"
        lines.append(line)
    return "\n".join(lines)
