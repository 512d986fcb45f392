"""``edgeface export triton|deepstream``: hand a convert output folder to NVIDIA's serving engines.

The exporters themselves live in :mod:`edgeface.convert.triton` and :mod:`edgeface.convert.deepstream`;
this module holds what they share (picking and checking built artifacts) and the command line.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from edgeface.errors import ServingError


def built_entry(convert_dir: Path, manifest: dict, target_name: str) -> dict:
    """The manifest entry of ``target_name``, or a ServingError saying why it cannot be served."""
    from edgeface.targets import TARGETS

    if target_name not in TARGETS:
        raise ServingError(f"unknown target {target_name!r}; known: {', '.join(TARGETS)}")
    artifacts = manifest["artifacts"]
    entry = artifacts.get(target_name)
    if entry is None:
        built = [n for n, e in artifacts.items() if e.get("status") == "ok"]
        raise ServingError(f"{convert_dir} has no {target_name} artifact; built: {', '.join(built) or 'none'}")
    if entry.get("status") != "ok":
        reason = entry.get("reason") or "no reason recorded"
        raise ServingError(f"{target_name} in {convert_dir} was not built ({entry.get('status')}): {reason}")
    return entry


def checked_artifact(convert_dir: Path, target_name: str, entry: dict, verify: bool = True) -> Path:
    """The artifact file of a built entry, refused when missing, outside the folder, or (unless not ``verify``)
    when it no longer matches the manifest's sha256: serving it would contradict every recorded fact."""
    from edgeface.manifest import artifact_file, verify_artifact

    path = artifact_file(convert_dir, entry)
    if not path.is_file():
        raise ServingError(f"{target_name}: artifact file missing: {path}")
    if verify:
        verify_artifact(path, entry)
    return path


def plan_profile_max(entry: dict) -> int | None:
    """The largest batch of a TensorRT engine's optimisation profile, when the manifest records it."""
    for holder in (entry, entry.get("build_device") or {}, entry.get("tools") or {}):
        profile = holder.get("profile") if isinstance(holder, dict) else None
        if isinstance(profile, dict) and profile.get("max"):
            value = profile["max"]
            return int(value[0] if isinstance(value, list) else value)
    return None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="engine", required=True, metavar="ENGINE")

    triton = sub.add_parser("triton", help="write a Triton model repository (one model per artifact)",
                            description="Write a Triton model repository: one model per picked artifact of a "
                                        "convert output folder, each with config.pbtxt and version folder 1/.")
    triton.add_argument("dir", type=Path, help="convert output folder (holds manifest.json)")
    triton.add_argument("--out", type=Path, required=True, help="model repository folder (created or added to)")
    triton.add_argument("--targets", default=None,
                        help="comma-separated targets to serve, e.g. trt-fp16,onnx (default: every built one)")
    triton.add_argument("--max-batch-size", type=int, default=None,
                        help="largest batch Triton forms (default: a TensorRT engine's profile max, else 16)")
    triton.add_argument("--preferred-batch-sizes", default=None,
                        help="comma-separated dynamic-batching sizes (default: 1,4,8,16,32 up to max batch)")
    triton.add_argument("--max-queue-delay-us", type=int, default=100,
                        help="how long dynamic batching may hold a request to fill a batch")
    triton.add_argument("--instances", type=int, default=1, help="model instances per device (instance_group)")
    triton.add_argument("--kind", choices=("auto", "gpu", "cpu"), default="auto",
                        help="instance kind; auto: GPU for TensorRT and ONNX, CPU for OpenVINO")
    triton.add_argument("--name-prefix", default=None, help="model names are PREFIX-TARGET (default: model name)")
    triton.add_argument("--overwrite", action="store_true", help="replace model folders of the same name")
    triton.add_argument("--no-verify", dest="verify", action="store_false",
                        help="export artifacts that no longer match their manifest's sha256 (edited on purpose)")
    triton.set_defaults(_export="triton")

    ds = sub.add_parser("deepstream", help="write a DeepStream nvinfer config for a secondary face model",
                        description="Write a DeepStream nvinfer configuration (secondary inference on face "
                                    "objects, raw output tensors) plus the model files and a README.")
    ds.add_argument("dir", type=Path, help="convert output folder (holds manifest.json)")
    ds.add_argument("--out", type=Path, required=True, help="configuration folder to create")
    ds.add_argument("--operate-on-gie-id", type=int, required=True,
                    help="gie-unique-id of the face detector whose objects this model classifies")
    ds.add_argument("--operate-on-class-ids", required=True,
                    help="semicolon- or comma-separated face class ids of that detector, e.g. 0")
    ds.add_argument("--gie-unique-id", type=int, default=None, help="this model's id (default: detector id + 1)")
    ds.add_argument("--precision", choices=("fp32", "fp16", "int8"), default="fp16",
                    help="network-mode; int8 uses the Q/DQ onnx-int8 graph (no calibration file needed)")
    ds.add_argument("--batch-size", type=int, default=16, help="faces per inference batch")
    ds.add_argument("--gpu-id", type=int, default=0)
    ds.add_argument("--min-face", type=int, default=32,
                    help="input-object-min-width/height: smaller faces are not classified")
    ds.add_argument("--box-crop-result", type=Path, default=None,
                    help="alignment_vs_boxcrop JSON to quote in the README (default: the committed measurement)")
    ds.add_argument("--overwrite", action="store_true", help="replace an existing configuration folder")
    ds.add_argument("--no-verify", dest="verify", action="store_false",
                    help="export artifacts that no longer match their manifest's sha256 (edited on purpose)")
    ds.set_defaults(_export="deepstream")


def main(args: argparse.Namespace) -> int:
    if args._export == "triton":
        from edgeface.convert.triton import export_triton, parse_batch_list

        targets = [t.strip() for t in args.targets.split(",") if t.strip()] if args.targets else None
        preferred = parse_batch_list(args.preferred_batch_sizes) if args.preferred_batch_sizes else None
        folders = export_triton(args.dir, args.out, targets=targets, max_batch_size=args.max_batch_size,
                                preferred_batch_sizes=preferred, instances=args.instances, kind=args.kind,
                                max_queue_delay_us=args.max_queue_delay_us, prefix=args.name_prefix,
                                overwrite=args.overwrite, verify=args.verify)
        for folder in folders:
            print(f"wrote {folder}/config.pbtxt")
        print(f"serve with: tritonserver --model-repository={args.out.resolve()}")
        return 0
    from edgeface.convert.deepstream import export_deepstream, parse_class_ids

    conf = export_deepstream(args.dir, args.out, operate_on_gie_id=args.operate_on_gie_id,
                             operate_on_class_ids=parse_class_ids(args.operate_on_class_ids),
                             gie_unique_id=args.gie_unique_id, precision=args.precision,
                             batch_size=args.batch_size, gpu_id=args.gpu_id, min_face=args.min_face,
                             box_crop_result=args.box_crop_result, overwrite=args.overwrite, verify=args.verify)
    print(f"wrote {conf} (see {conf.parent / 'README.md'})")
    return 0
