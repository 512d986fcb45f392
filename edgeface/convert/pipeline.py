"""``convert_checkpoint``: one checkpoint -> every requested target in one folder, with manifest and drift gate;
``convert_source``: the same from a convert folder's ONNX graphs (or one ONNX file), without torch.

Everything is built into a temporary folder beside ``out_dir`` and swapped in at the end, so an
interrupted or failed-input convert leaves the previous contents of ``out_dir`` intact. ``out_dir`` is replaced
only when it is absent, empty or an earlier convert output (``--force`` for anything else), and a convert with a
failed target never replaces a previous output without one: it is left beside it as ``OUT.failed``.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgeface.card import CARD_KEY, ModelCard
from edgeface.convert.metadata import strip_tool_metadata_file
from edgeface.device import host_facts, library_versions
from edgeface.errors import BackendUnavailable, OutputError
from edgeface.fileio import PendingDir, cache_dir, check_replaceable_dir, sha256_file
from edgeface.manifest import (
    MANIFEST_NAME,
    artifact_entry,
    artifact_file,
    load_manifest,
    manifest_card,
    new_manifest,
    verify_artifact,
    write_manifest,
)
from edgeface.progress import progress as progress_bar
from edgeface.targets import FORMAT_TOOLS, TARGETS, Target, target
from edgeface.weights import resolve_model

DEFAULT_GATES = {"mae": {"fp32": 0.02, "fp16": 0.02, "int8": 0.15}, "mean_accuracy": 0.5}


@dataclass
class ConvertOptions:
    """Everything beyond checkpoint, targets, data and output folder (defaults are the documented ones)."""

    opset: int = 17
    simplify: bool = True
    calib_method: str = "minmax"
    calib_images: int = 512
    min_calib_faces: int = 100
    detector: str | None = None  # YuNet path: detect + align raw photos (calibration and eval)
    batch_profile: str = "1,1,16"
    workspace_mib: int = 1024
    dla_core: int | None = None
    cache_dir: str | None = None  # cache root (see edgeface.fileio.cache_dir): crops, calibration, timing
    eval_format: str | None = None  # data reader; default from the task (utkface / celeba / csv)
    eval_options: dict = field(default_factory=dict)  # reader options (label_col, std_col, ...)
    eval_images: int | None = None
    allow_drift: bool = False
    gates: dict = field(default_factory=lambda: {k: (dict(v) if isinstance(v, dict) else v)
                                                  for k, v in DEFAULT_GATES.items()})
    threads: int = 2
    progress: bool = True
    force: bool = False  # replace an output folder that is not a convert output


class KeptPrevious(OutputError):
    """A convert with a failed target whose output folder held a good convert: that one was kept, the new attempt
    lies beside it (``attempt``); ``manifest`` is the attempt's."""

    def __init__(self, message: str, manifest: dict, attempt: Path):
        super().__init__(message)
        self.manifest, self.attempt = manifest, attempt


@dataclass
class BuildJob:
    """What a target's build function (``Target.build``) gets: the model and its card, the file to write,
    its source's file, the sample / calibration batches and the options (caches: ``edgeface.fileio.cache_dir``
    with ``options.cache_dir``)."""

    target: Target
    model: Any  # the torch.nn.Module (eval mode)
    card: ModelCard
    out: Path
    src: Path | None
    sample: np.ndarray
    calib_x: np.ndarray | None
    data_sha: str | None
    options: ConvertOptions


def _function(spec: str) -> Callable:
    """``"module:function"`` -> the function (imported on first use)."""
    module, name = spec.split(":")
    return getattr(importlib.import_module(module), name)


def _requirement_missing(requirement: str) -> str | None:
    if ":" in requirement:
        return _function(requirement)()
    try:
        importlib.import_module(requirement)
    except ImportError:
        return f"{requirement} not installed"
    return None


def build_chain(name: str, built: frozenset[str] | set[str] = frozenset()) -> list[Target]:
    """What building ``name`` builds, itself first: its source chain up to the first source already ``built``."""
    chain = [target(name)]
    while chain[-1].source is not None and chain[-1].source not in built:
        chain.append(target(chain[-1].source))
    return chain


def target_availability(built: frozenset[str] | set[str] = frozenset()) -> dict[str, str | None]:
    """target -> None if this machine can build it, else the reason it cannot (its sources' needs first).

    Sources in ``built`` (the artifacts a convert folder already holds) are taken as they are, so their
    needs do not count: a folder with ``model.onnx`` builds OpenVINO IR without torch.
    """
    missing = {r: _requirement_missing(r) for t in TARGETS.values() for r in t.requires}
    return {name: next((missing[r] for t in reversed(build_chain(name, built)) for r in t.requires if missing[r]),
                       None) for name in TARGETS}


def plan_targets(requested: str | list[str], unavailable: dict[str, str | None],
                 built: frozenset[str] | set[str] = frozenset()) -> tuple[list[str], dict[str, str]]:
    """(targets to build in build order, {skipped target: reason}).

    ``"all"`` builds what can be built and skips the rest (from a convert folder: what it does not hold yet);
    a named target that cannot be built is an error naming the reason. Sources not in ``built`` (onnx for
    everything, onnx-int8 for trt-int8...) are added.
    """
    everything = requested in ("all", ["all"])
    names = list(TARGETS) if everything else (
        [t.strip() for t in requested.split(",") if t.strip()] if isinstance(requested, str) else list(requested))
    for name in names:
        if name not in TARGETS:
            raise ValueError(f"unknown target {name!r}; known: all, {', '.join(TARGETS)}")
    if everything:
        names = [t for t in names if t not in built]
        skipped = {t: reason for t, reason in unavailable.items() if reason and t in names}
        names = [t for t in names if t not in skipped]
    else:
        skipped = {}
        for name in names:
            if unavailable.get(name):
                raise ValueError(f"cannot build {name} here: {unavailable[name]}")
    wanted = {t.name for name in names for t in build_chain(name, built)}
    return [t for t in TARGETS if t in wanted], skipped


def load_eval_faces(card: ModelCard, data: str | Path, options: ConvertOptions):
    """The eval set as a FaceSet, read and aligned the way ``edgeface train`` / ``eval`` read it."""
    from edgeface.data.datasets import DataIssues, load_samples, prepare_faces

    fmt = options.eval_format or {"age": "utkface", "attributes": "celeba", "attractiveness": "csv"}[card.task]
    issues = DataIssues()
    samples = load_samples(fmt, data, issues, label_space=card.label_space, task=card.task,
                           **options.eval_options)
    if options.eval_images and len(samples) > options.eval_images:
        index = np.linspace(0, len(samples) - 1, options.eval_images).round().astype(int)
        samples = [samples[i] for i in index]
    return prepare_faces(samples, card.preprocess, issues, "eval", detector_path=options.detector,
                         cache_dir=cache_dir("faces", options.cache_dir),
                         progress=options.progress)


def gate_check(card: ModelCard, precision: str, metrics: dict, reference: dict, gates: dict) -> dict:
    """{metric, value, reference, delta, limit, passed} for the task's gated metric."""
    if card.task == "attributes":
        metric, scale, limit = "mean_accuracy", 100.0, float(gates["mean_accuracy"])
    else:
        metric, scale, limit = "mae", 1.0, float(gates["mae"][precision])
    delta = (float(metrics[metric]) - float(reference[metric])) * scale
    return {"metric": metric, "value": float(metrics[metric]), "reference": float(reference[metric]),
            "delta": delta, "limit": limit, "units": "points" if scale == 100.0 else card.label_space.unit,
            "passed": abs(delta) <= limit}


def _summary(metrics: dict) -> dict:
    """The scalar metrics (drops per-decade tables and per-attribute lists from the manifest)."""
    return {k: v for k, v in metrics.items() if isinstance(v, int | float | str)}


def _inputs(card: ModelCard, build: list[str], calib, eval_data, options: ConvertOptions):
    """(calibration inputs, their hash, eval FaceSet, sample batch) for the targets in ``build``.

    The sample is what every graph rewrite is checked on: eval faces, else calibration faces, else a fixed
    pseudo-random batch."""
    from edgeface.convert.calibration import crops_sha256, load_crops
    from edgeface.preprocess import to_input

    spec = card.preprocess
    calib_x, data_sha = None, None
    if any(TARGETS[t].calibrated for t in build):
        if calib is None:
            raise ValueError("INT8 targets need calibration images: pass --calib FOLDER (or drop the int8 targets)")
        crops, _ = load_crops(calib, spec, options.calib_images, options.detector, options.min_calib_faces,
                              options.progress)
        calib_x, data_sha = to_input(crops, spec), crops_sha256(crops, spec)
    faces = load_eval_faces(card, eval_data, options) if eval_data else None
    if faces is not None:
        sample = to_input(faces.crops[:8], spec)
    elif calib_x is not None:
        sample = calib_x[:8]
    else:
        sample = np.random.default_rng(0).standard_normal((4, 3, spec.input_size, spec.input_size)).astype(np.float32)
    return calib_x, data_sha, faces, sample


def failed_attempt_dir(out_dir: Path) -> Path:
    """Where a failed convert goes when ``out_dir`` holds a good one: ``OUT.failed`` beside it."""
    return out_dir.with_name(f"{out_dir.name}.failed")


def _check_out(out_dir: Path, options: ConvertOptions, inputs: tuple) -> None:
    """Refuse, before any work, an output folder (or its failed-attempt folder) that is not ours to replace."""
    check_replaceable_dir(out_dir, MANIFEST_NAME, "a convert output", options.force, (*inputs, options.detector))
    check_replaceable_dir(failed_attempt_dir(out_dir), MANIFEST_NAME, "a convert output", options.force,
                          (*inputs, options.detector))


def _holds_good_convert(out_dir: Path) -> bool:
    try:
        return not failed_targets(load_manifest(out_dir))
    except (OSError, ValueError, KeyError, TypeError):  # absent or unreadable: nothing good to keep
        return False


def _commit(pending: PendingDir, out_dir: Path, manifest: dict) -> None:
    """Swap the finished folder in, unless a target failed and ``out_dir`` holds a convert where none did."""
    failed = failed_targets(manifest)
    if not failed or not _holds_good_convert(out_dir):
        pending.commit()
        return
    attempt = pending.commit(failed_attempt_dir(out_dir))
    reason = manifest["artifacts"][failed[0]].get("reason") or "no reason recorded"
    raise KeptPrevious(f"{failed[0]} failed ({reason}); kept the previous convert in {out_dir}, the new attempt "
                       f"is in {attempt}", manifest, attempt)


def convert_checkpoint(checkpoint: str | Path, targets: str | list[str] = "all", calib: str | Path | None = None,
                       eval_data: str | Path | None = None, out_dir: str | Path = "convert-out",
                       options: ConvertOptions | None = None) -> dict:
    """Build ``targets`` from ``checkpoint`` (a path, or the name of shipped weights) into ``out_dir``; returns the
    manifest written there.

    Raises ValueError / FileNotFoundError for bad input before anything is written. Artifacts that fail to
    build or breach a drift gate are kept with status "failed" (callers decide the exit code: see
    :func:`failed_targets`); with ``allow_drift`` a gate breach is recorded but the status stays ok.
    """
    import torch

    from edgeface.models.checkpoint import load_checkpoint

    options = options or ConvertOptions()
    torch.set_num_threads(options.threads)
    checkpoint = resolve_model(checkpoint)
    model, card, _ = load_checkpoint(checkpoint)
    build, skipped = plan_targets(targets, target_availability())
    out_dir = Path(out_dir)
    _check_out(out_dir, options, (checkpoint, calib, eval_data))
    calib_x, data_sha, faces, sample = _inputs(card, build, calib, eval_data, options)

    manifest = new_manifest(card, Path(checkpoint).name, sha256_file(checkpoint))
    # where the checkpoint lies seen from the folder (bench measures it beside the artifacts); never absolute
    manifest["source"]["path"] = os.path.relpath(Path(checkpoint).resolve(), out_dir.resolve())
    pending = PendingDir(out_dir)
    try:
        work = pending.tmp
        notes = _build_all(model, card, build, work, sample, calib_x, data_sha, options, manifest)
        _finish(pending, out_dir, manifest, card, skipped, notes, (checkpoint, "checkpoint"), faces, sample,
                calib_x is not None, options, build)
    finally:
        pending.discard()
    return manifest


def is_onnx_source(path: str | Path) -> bool:
    """Whether ``path`` is what :func:`convert_source` takes: a convert folder or an ``.onnx`` file."""
    path = Path(path)
    return (path / MANIFEST_NAME).is_file() if path.is_dir() else path.suffix.lower() == ".onnx"


def _onnx_card(path: Path) -> ModelCard:
    """The card an edgeface ONNX export carries in metadata_props (ValueError naming the key otherwise)."""
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as e:  # onnx raises DecodeError and friends for a file that is not ONNX
        raise ValueError(f"cannot read ONNX file {path}: {str(e).strip().splitlines()[0]}") from e
    props = {p.key: p.value for p in model.metadata_props}
    if CARD_KEY not in props:
        raise ValueError(f"{path} carries no {CARD_KEY!r} in metadata_props: export it with edgeface convert")
    return ModelCard.from_json(props[CARD_KEY])


def convert_source(source: str | Path, targets: str | list[str] = "all", calib: str | Path | None = None,
                   eval_data: str | Path | None = None, out_dir: str | Path | None = None,
                   options: ConvertOptions | None = None) -> dict:
    """Build ``targets`` from the ONNX graphs of a convert folder (or one ONNX file carrying the card).

    This is the path for a board with only the runtime extras: no torch and no checkpoint. The folder's
    artifacts are kept and serve as sources (``model.fp16.onnx`` for trt-fp16, ``model.int8.onnx`` for
    trt-int8, ``model.onnx`` for OpenVINO); the new ones join its manifest, with drift measured against the
    FP32 ONNX graph. ``out_dir`` defaults to the folder itself, replaced only when the whole run finished.
    """
    source = Path(source)
    options = options or ConvertOptions()
    if source.is_dir():
        manifest = load_manifest(source)
        card = manifest_card(manifest)
        built = {n for n, e in manifest["artifacts"].items()
                 if e["status"] == "ok" and artifact_file(source, e).is_file()}
        if "onnx" not in built:
            raise ValueError(f"{source} holds no built model.onnx to build from")
        for name in built:  # the new artifacts are built from these and the folder keeps them: they must be whole
            verify_artifact(source / manifest["artifacts"][name]["file"], manifest["artifacts"][name])
        out_dir = Path(out_dir) if out_dir else source
    elif source.is_file():
        card = _onnx_card(source)
        manifest = new_manifest(card, source.name, sha256_file(source), kind="onnx")
        built = {"onnx"}
        if out_dir is None:
            raise ValueError("converting an ONNX file needs --out FOLDER")
        out_dir = Path(out_dir)
    else:
        raise FileNotFoundError(f"source not found: {source}")
    named = [] if targets in ("all", ["all"]) else (
        [t.strip() for t in targets.split(",") if t.strip()] if isinstance(targets, str) else list(targets))
    if "onnx" in named:
        raise ValueError("the onnx target is exported from a checkpoint; this source already is ONNX")
    build, skipped = plan_targets(named or "all", target_availability(built), built)
    stale = [t for t in built if TARGETS[t].source in build and t not in build]
    if stale:
        raise ValueError(f"rebuilding {TARGETS[stale[0]].source} would leave {stale[0]} built from the old graph: "
                         f"add {stale[0]} to --to")
    in_place = source.is_dir() and out_dir.resolve() == source.resolve()  # a convert folder updated where it is
    _check_out(out_dir, options, (calib, eval_data) if in_place else (source, calib, eval_data))
    if build and importlib.util.find_spec("onnxruntime") is None:
        raise BackendUnavailable("checking new artifacts against model.onnx needs ONNX Runtime: "
                                 "pip install 'edgeface[onnx]'")
    calib_x, data_sha, faces, sample = _inputs(card, build, calib, eval_data, options)

    pending = PendingDir(out_dir)
    try:
        work = pending.tmp
        if source.is_dir():
            for item in source.iterdir():
                if item.is_file() and item.name != MANIFEST_NAME:
                    shutil.copy2(item, work / item.name)
        else:
            strip_tool_metadata_file(source, work / TARGETS["onnx"].file)
            manifest["artifacts"]["onnx"] = artifact_entry("onnx", card, work,
                                                           tools=library_versions(FORMAT_TOOLS["onnx"]))
        notes = _build_all(None, card, build, work, sample, calib_x, data_sha, options, manifest)
        _finish(pending, out_dir, manifest, card, skipped, notes, (work / TARGETS["onnx"].file, "onnx"), faces,
                sample, calib_x is not None, options, build)
    finally:
        pending.discard()
    return manifest


def _finish(pending: PendingDir, out_dir: Path, manifest: dict, card: ModelCard, skipped: dict[str, str],
            notes: dict, reference: tuple[Path, str], faces, sample: np.ndarray, calibrated: bool,
            options: ConvertOptions, build: list[str]) -> None:
    """What every convert ends with: skipped targets recorded, drift measured against ``reference`` (its file and
    kind), the builds' notes added, the manifest written and the folder committed (or kept aside on failure)."""
    work = pending.tmp
    for name, reason in skipped.items():
        manifest["artifacts"][name] = artifact_entry(name, card, work, status="skipped", reason=reason)
    write_manifest(work, manifest)
    _measure_drift(reference[0], reference[1], card, manifest, work, faces, sample, calibrated, options, build)
    for name, note in notes.items():
        manifest["artifacts"][name]["notes"] = note
    write_manifest(work, manifest)
    _commit(pending, out_dir, manifest)


def _build_all(model, card: ModelCard, build: list[str], work: Path, sample: np.ndarray, calib_x, data_sha,
               options: ConvertOptions, manifest: dict) -> dict:
    """Build each target into ``work``; a failing target is recorded (and its dependants fail with it)."""
    notes: dict[str, dict] = {}
    for name in progress_bar(build, "convert", options.progress, unit="target"):
        spec = TARGETS[name]
        source = spec.source
        build_device = host_facts()
        if source and manifest["artifacts"][source]["status"] != "ok":
            manifest["artifacts"][name] = artifact_entry(name, card, work, status="failed",
                                                         reason=f"its source {source} failed to build")
            continue
        try:
            src = work / TARGETS[source].file if source else None
            job = BuildJob(spec, model, card, work / spec.file, src, sample, calib_x, data_sha, options)
            notes[name] = _function(spec.build)(job)
            if spec.format == "tensorrt":
                build_device = notes[name]
        except (RuntimeError, ValueError, OSError) as e:
            message = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            manifest["artifacts"][name] = artifact_entry(name, card, work, status="failed", reason=message,
                                                         tools=library_versions(FORMAT_TOOLS[spec.format]))
            continue
        manifest["artifacts"][name] = artifact_entry(name, card, work, build_device=build_device,
                                                     tools=library_versions(FORMAT_TOOLS[spec.format]))
    return notes


def _measure_drift(reference_path: str | Path, reference_kind: str, card: ModelCard, manifest: dict, work: Path,
                   faces, sample: np.ndarray, real_sample: bool, options: ConvertOptions, names: list[str]) -> None:
    """Fill the drift of each artifact built in this run (``names``): eval metrics vs the reference (the
    checkpoint through PyTorch, or the FP32 ONNX graph when converting from ONNX; same eval code) and
    max |output diff|."""
    from edgeface.runtime.base import open_runner
    from edgeface.train.evaluate import evaluate_runner

    def run(path):
        with open_runner(path, threads=options.threads) as runner:
            if faces is None:
                return None, runner.infer(sample), runner.backend
            return (*evaluate_runner(runner, faces.crops, faces.targets), runner.backend)

    todo = [manifest["artifacts"][n] for n in names if manifest["artifacts"][n]["status"] == "ok"
            and not (reference_kind == "onnx" and n == "onnx")]
    if not todo:
        return
    reference, ref_out, backend = run(reference_path)
    compared_on = (f"{len(faces)} eval faces" if faces is not None else
                   f"{len(sample)} calibration faces" if real_sample else f"{len(sample)} pseudo-random inputs")
    for entry in todo:
        metrics, outputs, _ = run(work / entry["file"])
        drift = {"compared_on": compared_on, "against": f"{reference_kind} ({backend})",
                 "max_abs_diff": {k: float(np.max(np.abs(outputs[k] - ref_out[k]))) for k in ref_out}}
        if metrics is not None:
            gate = gate_check(card, entry["precision"], metrics, reference, options.gates)
            drift.update(metrics=_summary(metrics), reference=_summary(reference), gate=gate)
            if not gate["passed"]:
                breach = (f"drift gate: {gate['metric']} {gate['value']:.4f} vs {reference_kind} "
                          f"{gate['reference']:.4f} (|delta| {abs(gate['delta']):.3f} > {gate['limit']} "
                          f"{gate['units']})")
                if options.allow_drift:
                    drift["allowed_breach"] = breach
                else:
                    entry["status"], entry["reason"] = "failed", breach
        entry["drift"] = drift
    if reference and (reference_kind == "checkpoint" or not manifest.get("reference")):
        manifest["reference"] = {"backend": backend, "source": reference_kind, "metrics": _summary(reference)}


def failed_targets(manifest: dict) -> list[str]:
    return [n for n, e in manifest["artifacts"].items() if e["status"] == "failed"]
