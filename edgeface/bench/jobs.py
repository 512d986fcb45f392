"""What ``edgeface bench`` measures: one job per (model, artifact, backend, variant).

Jobs come from convert output folders (every built artifact, plus the PyTorch checkpoint it came from), from
checkpoints and shipped weights (``tinyagenet``), converted on the fly, or from zoo model names without shipped
weights, exported on the fly with untrained weights. Artifacts the convert step skipped
or failed stay in the list as jobs with that status, so reports can say why a row has no numbers.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from edgeface.convert.pipeline import ConvertOptions

BASELINE = "vgg16-dldl"
CPU_BACKENDS = ("torch", "onnxruntime", "openvino")
DEFAULT_TARGETS = ("onnx", "onnx-int8", "openvino", "openvino-int8")
BASELINE_TARGETS = ("onnx", "openvino")


def backend_device(backend: str, device: str) -> str:
    """The bench's ``--device`` (cpu, cuda, cuda:N) in each runner's spelling."""
    if device == "cpu" or not device.startswith("cuda"):
        return device
    index = device.split(":")[1] if ":" in device else "0"
    return {"onnxruntime": "cuda", "tensorrt": f"cuda:{index}", "torch": f"cuda:{index}"}.get(backend, device)


def folder_jobs(folder: str | Path, backends: list[str], device: str, baseline: bool = False) -> list[dict]:
    """One job per artifact of a convert output folder (plus its PyTorch checkpoint) that one of ``backends``
    opens, built or not; the backend of each comes from the target table."""
    from edgeface.manifest import load_manifest
    from edgeface.targets import target

    folder = Path(folder)
    manifest = load_manifest(folder)
    card = manifest["card"]
    common = {"model": card["model"], "baseline": baseline or card["model"] == BASELINE, "data": card.get("data", ""),
              "input_size": card["preprocess"]["input_size"], "card": card}
    jobs = []
    source = manifest.get("source") or {}
    ckpt = str(folder / (source.get("path") or source["checkpoint"])) if source.get("checkpoint") else None
    if "torch" in backends and ckpt and Path(ckpt).is_file():
        jobs.append({**common, "target": "pytorch", "format": "pytorch", "precision": "fp32", "backend": "torch",
                     "device": backend_device("torch", device),
                     "artifact": ckpt, "bytes": Path(ckpt).stat().st_size, "drift": None,
                     "status": "ok", "reason": ""})
    for name, entry in manifest["artifacts"].items():
        backend = target(name).backend
        if backend not in backends:
            continue
        jobs.append({**common, "target": name, "format": entry["format"], "precision": entry["precision"],
                     "backend": backend, "device": backend_device(backend, device),
                     "artifact": str(folder / entry["file"]), "bytes": entry.get("bytes"),
                     "drift": entry.get("drift"), "status": entry["status"], "reason": entry.get("reason", "")})
    return jobs


def fresh_checkpoint(name: str, out_dir: str | Path, input_size: int = 224) -> Path:
    """An untrained checkpoint of a zoo model: latency and size do not depend on the weights."""
    import torch

    from edgeface.models import create_model, default_card
    from edgeface.models.checkpoint import save_checkpoint

    torch.manual_seed(0)
    model = create_model(name)
    card = default_card(name, input_size, data="untrained (random weights): timing and size only")
    path = Path(out_dir) / f"{name}.pt"
    save_checkpoint(path, model.eval(), card)
    return path


def export_models(names: list[str], targets: list[str], work_dir: str | Path, input_size: int = 224,
                  progress: bool = False) -> list[Path]:
    """Model names -> convert output folders (exported on the fly, untrained weights). INT8 targets are
    calibrated on a SYNTHETIC set: with random weights only their speed means anything."""
    if not names:
        return []
    from edgeface.convert.pipeline import ConvertOptions, convert_checkpoint
    from edgeface.targets import TARGETS, source_chain

    work_dir = Path(work_dir)
    calib = None
    if any(s.calibrated for t in targets if t in TARGETS for s in source_chain(t)):
        from edgeface.pipeline import write_synthetic_set

        calib = write_synthetic_set(work_dir / "calibration", 128, input_size)
    options = ConvertOptions(calib_images=128, progress=progress)
    folders = []
    for name in names:
        ckpt = fresh_checkpoint(name, work_dir, input_size)
        convert_checkpoint(ckpt, list(targets), calib=calib, out_dir=work_dir / name, options=options)
        folders.append(work_dir / name)
    return folders


def sample_face_options(**options) -> ConvertOptions:
    """Convert options that calibrate (and, given as eval data, gate) on the shipped sample faces: raw photos,
    aligned by the shipped YuNet; there are only a few of them, so all of them calibrate."""
    from edgeface.assets import DETECTOR, sample_faces
    from edgeface.convert.pipeline import ConvertOptions

    count = len(sample_faces())
    return ConvertOptions(calib_images=count, min_calib_faces=count, detector=str(DETECTOR), eval_format="csv",
                          eval_options={"label_col": "age"}, **options)


def export_checkpoints(checkpoints: list[Path], targets: list[str], work_dir: str | Path,
                       progress: bool = False) -> list[Path]:
    """Trained checkpoints (shipped weights) -> convert output folders; INT8 targets are calibrated on the shipped
    sample faces (real faces, but few: the artifacts are for timing, their accuracy is not measured here)."""
    from edgeface.assets import FACES
    from edgeface.convert.pipeline import convert_checkpoint

    folders = []
    for ckpt in checkpoints:
        folder = Path(work_dir) / ckpt.stem
        convert_checkpoint(ckpt, list(targets), calib=FACES, out_dir=folder,
                           options=sample_face_options(progress=progress))
        folders.append(folder)
    return folders


def baseline_targets_at(size: int, targets: list[str] | tuple[str, ...]) -> list[str]:
    """The baseline's targets at an input size: VGG-16's 7x7 adaptive pooling exports to ONNX only when its last
    feature map (size / 32) is a multiple of 7 (224, 448 px); at other sizes it is measured in PyTorch only."""
    return list(targets) if size % 32 == 0 and (size // 32) % 7 == 0 else []


def expand_variants(jobs: list[dict], threads: list[int | None], options: dict[str, list[dict]]) -> list[dict]:
    """Each job once per thread count and per backend option set (e.g. OpenVINO hints)."""
    out = []
    for job in jobs:
        for n in threads:
            for opts in options.get(job["backend"], [{}]):
                out.append({**job, "threads": n, "options": dict(opts)})
    return out


def backend_options(hints: str) -> dict[str, list[dict]]:
    """Backend option sets to compare: the OpenVINO performance hints named in ``hints`` (comma-separated)."""
    return {"openvino": [{"hint": h.strip().upper()} for h in hints.split(",") if h.strip()]}


def collect_jobs(inputs: list[str], work_dir: Path, backends: list[str], targets: list[str], device: str = "cpu",
                 input_size: int = 224, threads: list[int | None] | None = None, ov_hints: str = "LATENCY",
                 baseline: bool = True, baseline_targets: tuple[str, ...] | list[str] = BASELINE_TARGETS,
                 untrained: bool = False) -> list[dict]:
    """Every job for ``inputs`` (convert folders, checkpoints, names of shipped weights, or zoo model names without
    weights, exported untrained for timing; with ``untrained`` every zoo name is), the baseline added unless
    measured already or ``baseline`` is off, expanded per thread count and backend option set."""
    from edgeface.models import list_models
    from edgeface.weights import UnknownModel, resolve_model, shipped_names

    folders, checkpoints, names = [], [], []
    for item in inputs:
        if item in list_models() and (untrained or item not in shipped_names()) and not Path(item).exists():
            names.append(item)
            continue
        try:
            path = resolve_model(item)
        except UnknownModel as e:
            raise UnknownModel(f"{e}; untrained zoo models: {', '.join(list_models())}") from e
        (folders if path.is_dir() else checkpoints).append(path)
    folders += export_checkpoints(checkpoints, targets, work_dir / "weights")
    folders += export_models(names, targets, work_dir / "models", input_size)
    jobs = [j for f in folders for j in folder_jobs(f, backends, device)]
    if baseline and not any(j["model"] == BASELINE for j in jobs):
        size = jobs[0]["input_size"] if jobs else input_size
        for folder in export_models([BASELINE], baseline_targets_at(size, baseline_targets), work_dir / "baseline",
                                    size):
            jobs += folder_jobs(folder, backends, device, baseline=True)
    return expand_variants(jobs, threads or [None], backend_options(ov_hints))
