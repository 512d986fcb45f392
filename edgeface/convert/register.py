"""``edgeface register FOLDER ENGINE``: add an engine built outside edgeface (trtexec, DeepStream) to a folder.

The engine joins the manifest only after it loaded here and its outputs matched the FP32 ONNX graph within
the precision's drift gate, so a registered engine is held to the rule every converted one meets. Without
``--eval`` labels the gate is applied to a bound: the mean |difference| of the predicted values bounds the
change of MAE on any labelled set of those faces, the share of flipped attribute decisions bounds the change
of accuracy.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import numpy as np

from edgeface.card import OUTPUT_ATTRIBUTES, OUTPUT_EXPECTATION, ModelCard
from edgeface.progress import add_progress_argument
from edgeface.targets import TARGETS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("folder", help="convert folder (manifest.json) the engine belongs to")
    parser.add_argument("engine", help="serialized TensorRT engine, e.g. from the trtexec line edgeface convert prints")
    engines = [n for n, t in TARGETS.items() if t.format == "tensorrt"]
    parser.add_argument("--target", choices=engines, help="which target it is (default: from the file name, "
                                                         f"{', '.join(TARGETS[n].file for n in engines)})")
    parser.add_argument("--eval", dest="eval_data", help="labelled eval data: gate the task metric itself")
    parser.add_argument("--eval-images", type=int, default=256, help="eval images used (default 256)")
    parser.add_argument("--calib", help="face images to compare outputs on when no --eval is given "
                                        "(default: a fixed pseudo-random batch)")
    parser.add_argument("--gate-mae", type=float, nargs=2, metavar=("FP16", "INT8"),
                        help="MAE gates vs the FP32 ONNX graph (default 0.02 0.15)")
    parser.add_argument("--gate-accuracy", type=float, help="attribute mean-accuracy gate in points (default 0.5)")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for the ONNX reference")
    add_progress_argument(parser)


def target_for(engine: Path, name: str | None) -> str:
    """The engine target: ``name``, or the one whose file name the engine has."""
    if name:
        return name
    for target_name, spec in TARGETS.items():
        if spec.format == "tensorrt" and engine.name == spec.file:
            return target_name
    raise ValueError(f"cannot tell the target from the name {engine.name}: pass --target trt-fp16 or trt-int8")


def output_gate(card: ModelCard, precision: str, outputs: dict, reference: dict, gates: dict) -> dict:
    """The drift gate applied to output differences (no labels): a bound on the gated metric's change."""
    if card.task == "attributes":
        thresholds = np.asarray(card.thresholds or [0.5] * len(card.attributes or []))
        flips = (outputs[OUTPUT_ATTRIBUTES] >= thresholds) != (reference[OUTPUT_ATTRIBUTES] >= thresholds)
        metric, value, limit, units = "decision_flips", 100.0 * float(flips.mean()), gates["mean_accuracy"], "points"
    else:
        value = float(np.mean(np.abs(outputs[OUTPUT_EXPECTATION] - reference[OUTPUT_EXPECTATION])))
        metric, limit, units = "mean_abs_value_diff", gates["mae"][precision], card.label_space.unit
    return {"metric": metric, "value": value, "limit": float(limit), "units": units, "passed": value <= limit}


def main(args: argparse.Namespace) -> int:
    from edgeface.convert.calibration import load_crops
    from edgeface.convert.pipeline import ConvertOptions, gate_check, load_eval_faces
    from edgeface.device import gpu_facts, jetson_facts, tensorrt_unavailable
    from edgeface.errors import BackendUnavailable
    from edgeface.fileio import atomic_dir
    from edgeface.manifest import artifact_entry, load_manifest, manifest_card, write_manifest
    from edgeface.runtime.base import open_runner
    from edgeface.train.evaluate import predict_outputs

    folder, engine = Path(args.folder), Path(args.engine)
    manifest = load_manifest(folder)
    if not engine.is_file():
        raise FileNotFoundError(f"engine not found: {engine}")
    name = target_for(engine, args.target)
    spec = TARGETS[name]
    card = manifest_card(manifest)
    source = manifest["artifacts"].get("onnx", {})
    if source.get("status") != "ok" or not (folder / "model.onnx").is_file():
        raise ValueError(f"{folder} holds no built model.onnx to check the engine against")
    reason = tensorrt_unavailable()
    if reason:
        raise BackendUnavailable(f"cannot check {engine.name} here, so it is not registered: {reason}")
    import tensorrt as trt

    options = ConvertOptions(eval_images=args.eval_images, threads=args.threads, progress=args.progress)
    if args.gate_mae:
        options.gates["mae"] = {"fp32": args.gate_mae[0], "fp16": args.gate_mae[0], "int8": args.gate_mae[1]}
    if args.gate_accuracy is not None:
        options.gates["mean_accuracy"] = args.gate_accuracy
    faces = load_eval_faces(card, args.eval_data, options) if args.eval_data else None
    if faces is not None:
        crops = faces.crops
    elif args.calib:
        crops = load_crops(args.calib, card.preprocess, 64, min_faces=1, progress=args.progress)[0]
    else:  # no faces: a fixed pseudo-random batch, as convert uses
        crops = None
    sample = np.random.default_rng(0).standard_normal(
        (4, 3, card.preprocess.input_size, card.preprocess.input_size)).astype(np.float32)
    with atomic_dir(folder) as work:
        for item in folder.iterdir():
            if item.is_file():
                shutil.copy2(item, work / item.name)
        shutil.copyfile(engine, work / spec.file)
        entry = artifact_entry(name, card, work, tools={"tensorrt": trt.__version__},
                               build_device={"tensorrt": trt.__version__, **gpu_facts(), **jetson_facts(),
                                             "registered_from": engine.name})
        manifest["artifacts"][name] = entry
        write_manifest(work, manifest)
        results = {}
        for path in (work / "model.onnx", work / spec.file):
            with open_runner(path, threads=args.threads) as runner:
                out = (runner.infer(sample) if crops is None else
                       predict_outputs(runner.infer, crops, card.preprocess, card, progress=args.progress))
                results[path.name] = (_metrics(card, out, faces.targets) if faces is not None else None, out)
        (ref_metrics, ref_out), (metrics, out) = results["model.onnx"], results[spec.file]
        gate = (gate_check(card, spec.precision, metrics, ref_metrics, options.gates) if metrics is not None
                else output_gate(card, spec.precision, out, ref_out, options.gates))
        entry["drift"] = {"against": "onnx (onnxruntime)", "gate": gate,
                          "compared_on": f"{len(crops)} faces" if crops is not None else f"{len(sample)} inputs",
                          "max_abs_diff": {k: float(np.max(np.abs(out[k] - ref_out[k]))) for k in ref_out}}
        if not gate["passed"]:
            raise ValueError(f"{engine.name} differs from model.onnx beyond the {spec.precision} gate: "
                             f"{gate['metric']} {gate['value']:.4f} > {gate['limit']} {gate['units']}; not registered")
        write_manifest(work, manifest)
    print(f"registered {engine.name} as {name} in {folder}/manifest.json "
          f"({gate['metric']} {gate['value']:.4f}, limit {gate['limit']} {gate['units']})")
    return 0


def _metrics(card: ModelCard, outputs: dict, targets: dict) -> dict:
    from edgeface.train.tasks import training_task_from_card

    return training_task_from_card(card).metrics(outputs, targets)
