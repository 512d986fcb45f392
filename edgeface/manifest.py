"""The convert output folder's manifest: what each artifact is, how it was built and how far it drifted.

``DIR/manifest.json`` makes a folder of engines self-describing: the runtime, the benchmarks and the
server read the model card, the artifact file and its build facts from here instead of guessing.
Format ``edgeface-manifest/1``: one model per folder, one entry per target (see :func:`artifact_entry`);
``manifest.schema.json`` beside this module is its JSON Schema.

A manifest is untrusted input (folders travel between machines): its card is parsed by
:meth:`~edgeface.card.ModelCard.from_dict`, artifact files must be bare names that resolve inside the folder
(:func:`artifact_file`), and the bytes loaded must be the ones it hashed (:func:`verify_artifact`).
"""

from __future__ import annotations

import datetime as _dt
import importlib.util
import json
import logging
from pathlib import Path

from edgeface import __version__
from edgeface.card import INPUT_NAME, ModelCard
from edgeface.errors import ArtifactError
from edgeface.fileio import sha256_file, write_json
from edgeface.targets import TARGETS, target

MANIFEST_FORMAT = "edgeface-manifest/1"
MANIFEST_NAME = "manifest.json"
SCHEMA_PATH = Path(__file__).with_name("manifest.schema.json")  # JSON Schema (draft-07) of the whole document
STATUSES = ("ok", "failed", "skipped")
BACKEND_MODULES = {"onnxruntime": "onnxruntime", "openvino": "openvino", "torch": "torch"}  # what each needs
log = logging.getLogger(__name__)


def utc_now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def new_manifest(card: ModelCard, source: str | Path | None, source_sha256: str | None,
                 kind: str = "checkpoint") -> dict:
    """An empty manifest for one model (artifacts are added with :func:`artifact_entry`).

    The source (a checkpoint, or an ONNX file for a convert from ONNX) is recorded by file name and sha256:
    a folder is copied between machines, so a path of the machine that built it would only mislead.
    """
    if kind not in ("checkpoint", "onnx"):
        raise ValueError(f"source kind must be checkpoint or onnx, got {kind!r}")
    return {
        "format": MANIFEST_FORMAT,
        "edgeface_version": __version__,
        "created": utc_now(),
        "card": card.to_dict(),
        "source": {kind: Path(source).name if source else None, "sha256": source_sha256},
        "artifacts": {},
    }


def artifact_entry(target_name: str, card: ModelCard, out_dir: str | Path, status: str = "ok", reason: str = "",
                   outputs: list[dict] | None = None, tools: dict | None = None, build_device: dict | None = None,
                   drift: dict | None = None) -> dict:
    """The manifest entry of one target; file hash and size are read from ``out_dir`` when it was built."""
    spec = target(target_name)
    if status not in STATUSES:
        raise ValueError(f"status must be one of {STATUSES}, got {status!r}")
    size = card.preprocess.input_size
    entry = {
        "target": spec.name,
        "file": spec.file,
        "format": spec.format,
        "precision": spec.precision,
        "status": status,
        "reason": reason,
        "sha256": None,
        "bytes": None,
        "input": {"name": INPUT_NAME, "shape": [-1, 3, size, size], "dtype": "float32"},
        "outputs": outputs if outputs is not None else default_outputs(card),
        "label_space": card.label_space.to_dict() if card.label_space else None,
        "preprocess": card.preprocess.to_dict(),
        "thresholds": card.thresholds,
        "threshold_objective": card.threshold_objective,
        "tools": tools or {},
        "build_device": build_device or {},
        "drift": drift,
    }
    path = Path(out_dir) / spec.file
    if status != "skipped" and path.is_file():
        entry["sha256"] = sha256_file(path)
        entry["bytes"] = sum((Path(out_dir) / f).stat().st_size for f in [spec.file, *spec.companion_files]
                             if (Path(out_dir) / f).is_file())
        companions = {f: sha256_file(Path(out_dir) / f) for f in spec.companion_files if (Path(out_dir) / f).is_file()}
        if companions:
            entry["companion_sha256"] = companions
    return entry


def default_outputs(card: ModelCard) -> list[dict]:
    """Output names and shapes as the exported graph has them (batch axis -1)."""
    shapes = {
        "probs": [-1, card.label_space.num_bins] if card.label_space else None,
        "expectation": [-1],
        "attr_probs": [-1, len(card.attributes or [])],
        "landmarks": [-1, 2 * card.num_landmarks],
    }
    return [{"name": n, "shape": shapes[n], "dtype": "float32"} for n in card.outputs]


def validate_manifest(manifest: dict, where: str = "manifest") -> dict:
    """Raise ValueError with one line if ``manifest`` is not a usable edgeface manifest."""
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
        raise ValueError(f"{where} is not an edgeface manifest (expected format {MANIFEST_FORMAT})")
    for key in ("card", "artifacts"):
        if key not in manifest:
            raise ValueError(f"{where} has no {key!r}")
    try:
        ModelCard.from_dict(manifest["card"])
    except ValueError as e:
        raise type(e)(f"{where}: {e}") from e
    if not isinstance(manifest["artifacts"], dict):
        raise ValueError(f"{where}: 'artifacts' must map target names to entries, got a "
                         f"{type(manifest['artifacts']).__name__}")
    for name, entry in manifest["artifacts"].items():
        spec = target(name)
        if not isinstance(entry, dict):
            raise ValueError(f"{where}: artifact {name!r} must be an object, got a {type(entry).__name__}")
        if entry.get("status") not in STATUSES:
            raise ValueError(f"{where}: artifact {name!r} has status {entry.get('status')!r}")
        if entry.get("status") == "ok" and not entry.get("file"):
            raise ValueError(f"{where}: artifact {name!r} has no file")
        names = [entry.get("file"), *(entry.get("companion_sha256") or {})]
        if entry.get("file") is not None and not all(_bare_name(n) for n in names):
            raise ArtifactError(f"{where}: artifact {name!r} names {names!r}: a manifest may name only files in its "
                                "own folder; convert again")
        if entry.get("format") != spec.format:
            raise ValueError(f"{where}: artifact {name!r} has format {entry.get('format')!r}, expected "
                             f"{spec.format!r}")
    return manifest


def _bare_name(name: object) -> bool:
    return isinstance(name, str) and name not in ("", ".", "..") and "/" not in name and "\\" not in name \
        and "\0" not in name


def artifact_file(directory: str | Path, entry: dict) -> Path:
    """The file of a manifest entry (validated as a bare name), refused unless it and its companions resolve
    inside ``directory``: a link to a file elsewhere would load or copy whatever it points to."""
    directory = Path(directory)
    inside = directory.resolve()
    path = directory / entry["file"]
    for file in [path, *(directory / n for n in entry.get("companion_sha256") or {})]:
        if file.is_symlink() and inside not in file.resolve().parents:
            raise ArtifactError(f"{file} links to {file.resolve()}, outside {directory}: a convert folder holds its "
                                "own files; copy the file in or convert again")
    return path


def verify_artifact(path: str | Path, entry: dict) -> None:
    """Refuse an artifact whose bytes (and its companions') differ from the sha256 its manifest recorded: it was
    changed after convert, so nothing the manifest says about it (drift, card, build) holds."""
    path = Path(path)
    for file, expected in [(path, entry.get("sha256")),
                           *((path.with_name(n), sha) for n, sha in (entry.get("companion_sha256") or {}).items())]:
        if expected and (not file.is_file() or sha256_file(file) != expected):
            raise ArtifactError(f"{file} does not match the sha256 in its manifest (changed after convert): convert "
                                "again, or pass --no-verify to load it as it is")


def load_manifest(directory: str | Path) -> dict:
    """The validated manifest of a convert output folder."""
    path = Path(directory) / MANIFEST_NAME
    if not path.is_file():
        raise FileNotFoundError(f"no {MANIFEST_NAME} in {directory}")
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"corrupt manifest {path}: {e}") from e
    return validate_manifest(manifest, str(path))


def write_manifest(directory: str | Path, manifest: dict) -> Path:
    """Write (atomically) and return the manifest path."""
    validate_manifest(manifest)
    path = Path(directory) / MANIFEST_NAME
    write_json(path, manifest)
    return path


def manifest_card(manifest: dict) -> ModelCard:
    return ModelCard.from_dict(manifest["card"])


def built_targets(manifest: dict, backend: str | None = None) -> list[str]:
    """Names of the built artifacts in :data:`TARGETS` order (only those ``backend`` opens, if given)."""
    artifacts = manifest["artifacts"]
    return [n for n, t in TARGETS.items() if artifacts.get(n, {}).get("status") == "ok"
            and backend in (None, t.backend)]


def backend_unavailable(backend: str) -> str | None:
    """Why this machine cannot run ``backend`` (None when it can): its library is missing, or for TensorRT the
    bindings, CUDA binding or GPU."""
    if backend == "tensorrt":
        from edgeface.device import tensorrt_unavailable

        return tensorrt_unavailable()
    module = BACKEND_MODULES.get(backend, backend)
    return None if importlib.util.find_spec(module) is not None else f"{module} not installed"


def breached_gate(entry: dict) -> bool:
    """Whether an artifact was kept although it breached the drift gate (``--allow-drift``)."""
    drift = entry.get("drift") or {}
    return bool(drift.get("allowed_breach")) or (drift.get("gate") or {}).get("passed") is False


def choose_artifact(manifest: dict, backend: str | None = None, device: str | None = None,
                    unavailable=backend_unavailable) -> tuple[str, str]:
    """(target, why) of the artifact to run from a convert folder when none is named: of the built artifacts
    that passed the drift gate and whose backend runs here (``backend`` only, if given), the fastest measured on
    this device (the manifest's ``latency``, recorded by ``edgeface bench``), else the first in the target
    table's preference order. ``why`` is one line for the user."""
    built = built_targets(manifest, backend)
    if not built:
        raise ValueError(f"no built artifact for backend {backend!r}" if backend else "no built artifact")
    artifacts = manifest["artifacts"]
    breached = [n for n in built if breached_gate(artifacts[n])]
    reasons = {b: unavailable(b) for b in {TARGETS[n].backend for n in built if n not in breached}}
    cannot = [n for n in built if n not in breached and reasons[TARGETS[n].backend]]
    usable = [n for n in built if n not in breached and n not in cannot]
    left_out = "; ".join(part for part in (
        f"{', '.join(cannot)} cannot run here ({'; '.join(sorted({reasons[TARGETS[n].backend] for n in cannot}))})"
        if cannot else "", f"{', '.join(breached)} breached the drift gate" if breached else "") if part)
    if not usable:
        raise ValueError(f"no built artifact can run here: {left_out}")
    measured = {n: artifacts[n]["latency"][device] for n in usable
                if device and device in (artifacts[n].get("latency") or {})}
    if measured:
        name = min(measured, key=lambda n: measured[n]["p50_ms"])
        why = (f"the fastest measured on {device} ({measured[name]['p50_ms']:.2f} ms at batch 1 with "
               f"{measured[name]['backend']}) of {len(measured)} measured")
    else:
        name = min(usable, key=lambda n: TARGETS[n].preference)
        why = (f"first in the target table's preference order for this machine (no latency measured on "
               f"{device or 'this machine'}: edgeface bench FOLDER records it)")
    return name, why + (f"; left out: {left_out}" if left_out else "")


def resolve_artifact(path: str | Path, target_name: str | None = None,
                     backend: str | None = None) -> tuple[Path, ModelCard | None, dict | None]:
    """(artifact file, card, manifest entry) for a file, or a convert folder plus a target name.

    For a folder without ``target_name`` :func:`choose_artifact` picks one (among those ``backend`` opens, if
    given) and the choice is logged with its reason. For a file the manifest beside it (if any) supplies card
    and entry; otherwise both are None and the runner reads the card from the artifact itself (ONNX
    metadata_props, OpenVINO rt_info).
    """
    path = Path(path)
    if path.is_dir():
        manifest = load_manifest(path)
        artifacts = manifest["artifacts"]
        if target_name is None:
            from edgeface.device import this_device_label

            try:
                target_name, why = choose_artifact(manifest, backend, this_device_label())
            except ValueError as e:
                raise ValueError(f"{path}: {e}") from None
            entry = artifacts[target_name]
            log.info("%s: running %s (%s, %s): %s", path.name, target_name, entry["precision"],
                     TARGETS[target_name].backend, why)
        target(target_name)
        entry = artifacts.get(target_name)
        if entry is None:
            raise ValueError(f"{path} has no {target_name!r} artifact; it has: {', '.join(artifacts) or 'none'}")
        if entry["status"] != "ok":
            why = entry.get("reason") or "no reason given"
            raise ValueError(f"{target_name} in {path} is {entry['status']}: {why}")
        file = artifact_file(path, entry)
        if not file.is_file():
            raise FileNotFoundError(f"artifact file missing: {file}")
        return file, manifest_card(manifest), entry
    if not path.is_file():
        raise FileNotFoundError(f"artifact not found: {path}")
    if (path.parent / MANIFEST_NAME).is_file():
        manifest = load_manifest(path.parent)
        for entry in manifest["artifacts"].values():
            if entry.get("file") == path.name:
                return artifact_file(path.parent, entry), manifest_card(manifest), entry
    return path, None, None


def verify_location(path: str | Path) -> None:
    """:func:`verify_artifact` for an artifact file of a convert folder (other files carry no recorded hash).

    Benchmarks verify each artifact once with this and open their runners with ``verify=False``, so no measured
    load time includes hashing."""
    path = Path(path)
    if path.is_file() and (path.parent / MANIFEST_NAME).is_file():
        file, _card, entry = resolve_artifact(path)
        if entry is not None:
            verify_artifact(file, entry)


def describe_artifact(path: str | Path, backend: str) -> str:
    """``"trt-int8 (int8, tensorrt) model.int8.engine"``: what a runner opened, for the line a command prints."""
    path = Path(path)
    _, _, entry = resolve_artifact(path)
    if entry is None:
        suffix = "checkpoint" if path.suffix in (".pt", ".pth") else "file"
        return f"{suffix} ({backend}) {path.name}"
    return f"{entry['target']} ({entry['precision']}, {backend}) {path.name}"


def record_latency(directory: str | Path, target_name: str, device: str, p50_ms: float, backend: str,
                   threads: int | None = None) -> bool:
    """Keep a measured batch-1 latency in the folder's manifest (the best one per device), for
    :func:`choose_artifact`. False when the folder's manifest does not hold ``target_name`` built."""
    manifest = load_manifest(directory)
    entry = manifest["artifacts"].get(target_name)
    if entry is None or entry["status"] != "ok":
        return False
    latency = entry.setdefault("latency", {})
    best = latency.get(device)
    if best is None or p50_ms < best["p50_ms"]:
        latency[device] = {"p50_ms": round(float(p50_ms), 4), "backend": backend, "threads": threads,
                           "measured": utc_now()}
        write_manifest(directory, manifest)
    return True
