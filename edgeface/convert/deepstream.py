"""Convert output folder -> DeepStream nvinfer configuration for a secondary model on face objects.

nvinfer normalises as ``net-scale-factor * (pixel - offsets)`` in ``model-color-format`` order; edgeface's
:class:`~edgeface.preprocess.PreprocessSpec` normalises as ``(pixel - mean) / std``, so the mapping is
exact: scale = 1 / std, offsets = mean. nvinfer hands the raw output tensors to the pipeline
(``network-type=100``, ``output-tensor-meta=1``); :mod:`edgeface.deepstream_probe` decodes them with the
same code as every other runtime. nvinfer crops the detector box without landmark alignment: the README
written here quotes the measured accuracy cost (``edgeface experiment alignment-vs-boxcrop``).
"""

from __future__ import annotations

import importlib.resources
import json
import shutil
from pathlib import Path

from edgeface.card import ModelCard
from edgeface.convert.serving import built_entry, checked_artifact, plan_profile_max
from edgeface.errors import ServingError
from edgeface.fileio import atomic_dir, check_replaceable_dir
from edgeface.manifest import load_manifest, manifest_card

CONFIG_NAME = "config_infer_secondary_edgeface.txt"
CARD_NAME = "card.json"
LABELS_NAME = "labels.txt"  # attribute models: one attribute name per line, in attr_probs order
NETWORK_MODES = {"fp32": 0, "int8": 1, "fp16": 2}
# The graph nvinfer builds an engine from when the prebuilt one is absent or does not fit the device.
ONNX_SOURCE = {"fp32": "onnx", "fp16": "onnx", "int8": "onnx-int8"}
BOX_CROP_RESULT = "alignment_vs_boxcrop.json"


def parse_class_ids(text: str) -> list[int]:
    try:
        ids = [int(v) for v in text.replace(",", ";").split(";") if v.strip()]
    except ValueError as e:
        raise ServingError(f"--operate-on-class-ids: expected integers separated by ';' or ',', got {text!r}") from e
    if not ids or any(i < 0 for i in ids):
        raise ServingError(f"--operate-on-class-ids: expected non-negative class ids, got {text!r}")
    return ids


def preprocessing_keys(card: ModelCard) -> dict[str, str]:
    """nvinfer's normalisation keys for the card's PreprocessSpec."""
    spec = card.preprocess
    return {
        "net-scale-factor": repr(1.0 / spec.std),
        "offsets": ";".join(repr(float(m)) for m in spec.mean),
        "model-color-format": "0" if spec.color == "RGB" else "1",
        "infer-dims": f"3;{spec.input_size};{spec.input_size}",
        "network-input-order": "0" if spec.layout == "NCHW" else "1",
        # nvinfer stretches the box to the input size, bilinearly, as the box-crop measurement does.
        "maintain-aspect-ratio": "0",
        "scaling-filter": "1",
    }


def nvinfer_engine_name(onnx_file: str, batch_size: int, gpu_id: int, precision: str) -> str:
    """The file name nvinfer gives an engine it builds from ``onnx-file`` (so the second run reuses it)."""
    return f"{onnx_file}_b{batch_size}_gpu{gpu_id}_{precision}.engine"


def nvinfer_config(card: ModelCard, onnx_file: str, engine_file: str, operate_on_gie_id: int,
                   operate_on_class_ids: list[int], gie_unique_id: int, precision: str, batch_size: int,
                   gpu_id: int, min_face: int, source: str) -> str:
    """The INI text of the nvinfer ``[property]`` group."""
    keys = {
        "gpu-id": str(gpu_id),
        "gie-unique-id": str(gie_unique_id),
        "process-mode": "2",
        "operate-on-gie-id": str(operate_on_gie_id),
        "operate-on-class-ids": ";".join(str(i) for i in operate_on_class_ids),
        "network-type": "100",
        "output-tensor-meta": "1",
        "onnx-file": onnx_file,
        "model-engine-file": engine_file,
        "batch-size": str(batch_size),
        "network-mode": str(NETWORK_MODES[precision]),
        **preprocessing_keys(card),
        "output-blob-names": ";".join(card.outputs),
        **({"labelfile-path": LABELS_NAME} if card.attributes else {}),
        "input-object-min-width": str(min_face),
        "input-object-min-height": str(min_face),
    }
    header = [
        f"# edgeface {card.model} ({card.task}) as a DeepStream secondary model, from {source}",
        "# Preprocessing mirrors edgeface's PreprocessSpec: (pixel - mean) / std in "
        f"{card.preprocess.color} order at {card.preprocess.input_size}x{card.preprocess.input_size}.",
        "# Outputs are left raw (network-type=100); decode them with edgeface.deepstream_probe.",
        "[property]",
    ]
    return "\n".join(header + [f"{k}={v}" for k, v in keys.items()]) + "\n"


def load_box_crop_result(path: Path | None) -> dict | None:
    """The alignment-vs-box-crop measurement to quote: the given file, else the committed one (if shipped)."""
    if path is not None:
        if not path.is_file():
            raise ServingError(f"--box-crop-result not found: {path}")
        try:
            return json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise ServingError(f"--box-crop-result is not JSON: {path}: {e}") from e
    committed = importlib.resources.files("edgeface.convert") / BOX_CROP_RESULT
    return json.loads(committed.read_text()) if committed.is_file() else None


MEASURE_COMMAND = ("edgeface experiment alignment-vs-boxcrop CHECKPOINT --data UTKFACE_DIR --detector YUNET.onnx "
                   "--out RESULTS_DIR")  # placeholders: the measuring machine's own paths mean nothing to a reader


def box_crop_paragraph(result: dict | None) -> str:
    """The measured accuracy cost of box crops (one line per head-roll condition), or how to measure it."""
    if result is None:
        return f"No alignment-vs-box-crop measurement was found. Measure it for your model with\n`{MEASURE_COMMAND}`.\n"
    lines = [f"Measured with {result['model']} at {result['input_size']} px ({result['artifact']}) on held-out "
             f"{result['dataset']} faces, each turned by a random head roll within the stated range:", ""]
    for c in result["conditions"]:
        aligned, box = c["aligned"], c["box"]
        lines.append(f"- roll +-{c['roll_deg']:g} deg, {c['images']} faces: MAE {aligned['mae']:.2f} years aligned vs "
                     f"{box['mae']:.2f} years box-cropped (**{c['delta_mae']:+.2f} years**, paired standard error "
                     f"{c['delta_mae_se']:.2f}); CS@5 {100 * aligned['cs5']:.1f}% vs {100 * box['cs5']:.1f}%")
    lines += ["", "This is what this configuration gives up by feeding box crops to a model trained on aligned "
              "faces. Re-measure for your own model with", f"`{MEASURE_COMMAND}`", ""]
    return "\n".join(lines)


def readme(card: ModelCard, config_name: str, onnx_file: str, engine_file: str, engine_prebuilt: bool,
           gie_unique_id: int, result: dict | None) -> str:
    """The README written into the configuration folder."""
    spec = card.preprocess
    engine_note = (f"`{engine_file}` was built by `edgeface convert` (TensorRT version and GPU are in the source "
                   "manifest); nvinfer rebuilds from the ONNX file if it does not fit this device."
                   if engine_prebuilt else
                   f"No prebuilt engine: on first start nvinfer builds one from `{onnx_file}` and saves it as "
                   f"`{engine_file}`, which later starts reuse.")
    return f"""# edgeface {card.model} ({card.task}) for DeepStream

Generated by `edgeface export deepstream`. A secondary nvinfer (`process-mode=2`) on the detector's face
objects; it outputs raw tensors (`network-type=100`, `output-tensor-meta=1`) named
`{', '.join(card.outputs)}`, which `edgeface.deepstream_probe` decodes with edgeface's own decode code.

| file | what |
|---|---|
| `{config_name}` | nvinfer configuration (`config-file` of the secondary GIE) |
| `{onnx_file}` | the ONNX graph nvinfer builds its engine from |
| `{engine_file}` | {engine_note} |
| `{CARD_NAME}` | the model card: label space, attributes, thresholds the probe needs |
{f"| `{LABELS_NAME}` | the attribute names, one per line in `attr_probs` order |{chr(10)}" if card.attributes else ""}
Preprocessing equals edgeface's: {spec.color} at {spec.input_size}x{spec.input_size}, `(pixel - {spec.mean[0]}) /
{spec.std}`, i.e. `net-scale-factor={1.0 / spec.std!r}`, `offsets={';'.join(str(m) for m in spec.mean)}`,
`model-color-format={0 if spec.color == 'RGB' else 1}`.

## Accuracy cost of box crops

nvinfer crops the detector box and stretches it to the input size; edgeface's own runtime warps the face onto
its 5-point template instead. {box_crop_paragraph(result)}
## Use it

deepstream-app: add a secondary GIE after the face detector:

```ini
[secondary-gie0]
enable=1
gie-unique-id={gie_unique_id}
config-file={config_name}
```

Python (pyds): decode on the secondary GIE's source pad:

```python
from edgeface.deepstream_probe import make_probe

probe = make_probe("{CARD_NAME}", gie_unique_id={gie_unique_id}, on_result=lambda frame, obj, result: print(result))
sgie.get_static_pad("src").add_probe(Gst.PadProbeType.BUFFER, probe, 0)
```
"""


def export_deepstream(convert_dir: str | Path, out: str | Path, operate_on_gie_id: int,
                      operate_on_class_ids: list[int], gie_unique_id: int | None = None, precision: str = "fp16",
                      batch_size: int = 16, gpu_id: int = 0, min_face: int = 32, box_crop_result: Path | None = None,
                      overwrite: bool = False, verify: bool = True) -> Path:
    """Write CONFDIR (config, ONNX, engine if built, card, README) atomically; returns the config path."""
    convert_dir, out = Path(convert_dir), Path(out)
    manifest = load_manifest(convert_dir)
    card = manifest_card(manifest)
    if precision not in NETWORK_MODES:
        raise ServingError(f"unknown precision {precision!r}; expected one of {', '.join(NETWORK_MODES)}")
    if batch_size < 1:
        raise ServingError(f"--batch-size must be at least 1, got {batch_size}")
    if operate_on_gie_id < 1:
        raise ServingError(f"--operate-on-gie-id must be a gie-unique-id (1 or more), got {operate_on_gie_id}")
    gie_unique_id = operate_on_gie_id + 1 if gie_unique_id is None else gie_unique_id
    if gie_unique_id == operate_on_gie_id:
        raise ServingError(f"--gie-unique-id {gie_unique_id} equals the detector's id")
    onnx_entry = built_entry(convert_dir, manifest, ONNX_SOURCE[precision])
    onnx_file = Path(onnx_entry["file"]).name
    engine_entry = manifest["artifacts"].get(f"trt-{precision}")
    engine_prebuilt = bool(engine_entry and engine_entry.get("status") == "ok")
    if engine_prebuilt:
        profile_max = plan_profile_max(engine_entry)
        if profile_max is not None and batch_size > profile_max:
            raise ServingError(f"trt-{precision} engine allows batch {profile_max} at most; lower --batch-size")
        engine_file = Path(engine_entry["file"]).name
    else:
        engine_file = nvinfer_engine_name(onnx_file, batch_size, gpu_id, precision)
    copies = [(checked_artifact(convert_dir, ONNX_SOURCE[precision], onnx_entry, verify), onnx_file)]
    if engine_prebuilt:
        copies.append((checked_artifact(convert_dir, f"trt-{precision}", engine_entry, verify), engine_file))
    if out.exists() and not overwrite:
        raise ServingError(f"{out} already exists (use --overwrite to replace it)")
    check_replaceable_dir(out, CONFIG_NAME, "a DeepStream export", inputs=(convert_dir,), force_flag=None)
    result = load_box_crop_result(box_crop_result)
    config = nvinfer_config(card, onnx_file, engine_file, operate_on_gie_id, operate_on_class_ids, gie_unique_id,
                            precision, batch_size, gpu_id, min_face, source=f"{convert_dir.name}/manifest.json")
    with atomic_dir(out) as folder:
        for source, name in copies:
            shutil.copyfile(source, folder / name)
        (folder / CONFIG_NAME).write_text(config)
        (folder / CARD_NAME).write_text(card.to_json() + "\n")
        if card.attributes:
            (folder / LABELS_NAME).write_text("\n".join(card.attributes) + "\n")
        (folder / "README.md").write_text(readme(card, CONFIG_NAME, onnx_file, engine_file, engine_prebuilt,
                                                 gie_unique_id, result))
    return out / CONFIG_NAME
