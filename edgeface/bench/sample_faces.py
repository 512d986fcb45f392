"""The shipped weights on the shipped sample faces: the runtime's annotated output as one picture, and each age
model's prediction next to the person's self-reported age.

Every sample face goes through the :class:`~edgeface.runtime.predictor.Predictor` (shipped YuNet, test-time flip
on, as for single images) with ``--models`` (one per task; default: the first shipped weights of each task) and
is drawn by the runtime's own ``draw_results``; the picture is the README's. Each shipped age model is then run
alone for the table. Eight young adults (17-35): a smoke test of the models, not an accuracy benchmark.
Writes ``sample_faces.{json,md,png}`` into ``--out``.
"""

from __future__ import annotations

import argparse

import numpy as np

from edgeface.bench.experiments import add_common_arguments, command_line
from edgeface.fileio import write_json, write_text

COLUMNS = 4
TILE_SCALE = 2 / 3  # 300x400 photos -> 200x267 tiles: a README-sized picture


def default_models() -> list[str]:
    """The first shipped weights of each task (index order)."""
    from edgeface.weights import load_index

    chosen: dict[str, str] = {}
    for name, entry in load_index().items():
        chosen.setdefault(entry["task"], name)
    return list(chosen.values())


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--models", nargs="+", help="models for the picture, one per task (default: the first "
                                                    "shipped weights of each task)")
    add_common_arguments(parser, threads=2)


def tile_images() -> list[np.ndarray]:
    """The sample faces at the picture's scale (BGR), the input of both the picture and the table."""
    import cv2

    from edgeface.assets import sample_faces

    return [cv2.resize(cv2.imread(str(f.path)), None, fx=TILE_SCALE, fy=TILE_SCALE, interpolation=cv2.INTER_AREA)
            for f in sample_faces()]


def annotated_montage(models: list[str], threads: int) -> tuple[np.ndarray, list[dict]]:
    """(BGR montage of every sample face as the runtime draws it, per-face records)."""
    from edgeface.assets import sample_faces
    from edgeface.runtime.predictor import Predictor
    from edgeface.runtime.sinks import draw_results

    tiles, records = [], []
    with Predictor(models, threads=threads, flip=True) as predictor:
        for face, image in zip(sample_faces(), tile_images(), strict=True):
            results = predictor.predict(image)
            records.append({"image": face.path.name, "age": face.age, "faces_found": len(results),
                            "prediction": results[0].to_dict() if results else None})
            tiles.append(draw_results(image, results[:1]))
    rows = [np.hstack(tiles[i:i + COLUMNS]) for i in range(0, len(tiles), COLUMNS)]
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0))) for r in rows]
    return np.vstack(rows), records


def age_predictions(threads: int) -> dict[str, list[float | None]]:
    """{shipped age weights: predicted age per sample face (None where no face was found)}."""
    from edgeface.runtime.predictor import Predictor
    from edgeface.weights import load_index

    out = {}
    images = tile_images()
    for name in (n for n, e in load_index().items() if e["task"] == "age"):
        with Predictor(name, threads=threads, flip=True) as predictor:
            out[name] = [next((r.age for r in predictor.predict(img)), None) for img in images]
    return out


def markdown(document: dict) -> str:
    names = list(document["age_predictions"])
    lines = [f"Command: `{document['command']}`", "",
             "| image | self-reported age | " + " | ".join(names) + " |",
             "|---|---:|" + "---:|" * len(names)]
    for i, record in enumerate(document["faces"]):
        cells = [f"{document['age_predictions'][n][i]:.1f}" if document["age_predictions"][n][i] is not None
                 else "no face" for n in names]
        lines.append(f"| {record['image']} | {record['age']:g} | " + " | ".join(cells) + " |")
    lines.append("| MAE | | " + " | ".join(f"{document['mae'][n]:.2f}" if n in document["mae"] else "-"
                                          for n in names) + " |")
    return "\n".join(lines) + "\n"


def main(args: argparse.Namespace) -> int:
    import cv2

    from edgeface.fileio import atomic_path

    models = args.models or default_models()
    if not models:
        raise ValueError("no shipped weights and no --models: nothing to run")
    montage, records = annotated_montage(models, args.threads)
    ages = age_predictions(args.threads)
    labels = np.array([r["age"] for r in records], np.float64)
    mae = {n: float(np.mean([abs(p - a) for p, a in zip(v, labels, strict=True) if p is not None]))
           for n, v in ages.items() if any(p is not None for p in v)}
    document = {"command": command_line(args), "models": models, "faces": records, "age_predictions": ages,
                "mae": mae}
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / "sample_faces.json", document)
    write_text(args.out / "sample_faces.md", markdown(document))
    with atomic_path(args.out / "sample_faces.png") as tmp:
        if not cv2.imwrite(str(tmp), montage, [cv2.IMWRITE_PNG_COMPRESSION, 9]):
            raise OSError(f"cannot write {args.out / 'sample_faces.png'}")
    print(markdown(document))
    print(f"wrote {args.out / 'sample_faces.png'}, .json, .md")
    return 0
