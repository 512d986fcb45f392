"""The runtime's tracker against ByteTrack on faces that cross and cover each other, with known identities.

A clip of real face chips (``--chips``) moving at constant speed and bouncing off the borders, so they cross, and
passing behind a bar (:func:`edgeface.bench.synthetic_video.crossing_faces_frames`); the product's detector (the
shipped YuNet, ``--min-face`` as in ``edgeface run``) finds the faces on every rendered frame, once, at the low
score ``--low-score``; every tracker then gets the same detections:

- ``edgeface``: :class:`edgeface.runtime.tracker.IoUTracker` as ``edgeface run`` uses it: the faces the runtime
  keeps (score >= ``--score-threshold``, run's default) tracked and reported, the detections between
  ``--low-score`` and that threshold matched to the tracks still unmatched (second association), not reported;
- ``edgeface-high``: the same tracker on the runtime's faces only (its motion model without the second
  association);
- ``edgeface, low shown``: ``edgeface`` with its low-score matches reported as well (as ByteTrack reports them):
  what reporting them would change;
- ``bytetrack``: ByteTrack from ``supervision`` (a bench extra, never a runtime dependency) on all detections:
  high-score ones (above ``--score-threshold`` - 0.1: new tracks need ``--score-threshold``) matched first, then
  the low-score ones to the tracks still unmatched, with a Kalman motion model;
- ``bytetrack-high``: the same ByteTrack on the runtime's detections only: its motion model without the low-score
  second stage.

Scored CLEAR-MOT style against the ground truth: a face counts where at least ``--visible`` of it is seen
(tracker boxes on faces hidden more than that are neither hits nor false positives); a tracker box matches a face
at IoU >= 0.5 (last frame's pairs kept while they still match, then greedily by IoU). Counted: misses (FN), false
positives (FP), identity switches (a face matched to another track id than the last one), fragmentations (a
face's tracking interrupted and resumed), MOTA = 1 - (FN + FP + IDSW) / faces, track ids per person, and the
tracker's own time per frame (detection excluded). Writes ``tracker_comparison.{json,md,png}`` into ``--out``.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from edgeface.bench.experiments import UTKFACE_CHIPS, add_common_arguments, command_line, settings, write_results
from edgeface.bench.synthetic_video import GroundTruth
from edgeface.checks import COUNT, SHARE, number_type
from edgeface.errors import BackendUnavailable
from edgeface.runtime.tracker import iou_matrix

MATCH_IOU = 0.5
Tracked = list[tuple[int, np.ndarray]]  # one frame's tracker output: (track id, x y w h box)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    at_least_two = number_type(minimum=2, integer=True)  # a comparison needs a second frame and a second face
    parser.add_argument("--frames", type=at_least_two, default=600, help="clip length (default 600: 24 s at 25 FPS)")
    parser.add_argument("--faces", type=at_least_two, default=6, help="faces in the clip (default 6)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the faces' starting points and velocities")
    parser.add_argument("--min-face", type=COUNT, default=24, help="detector's smallest face, as edgeface run")
    parser.add_argument("--score-threshold", type=SHARE, default=0.6, help="the runtime's detector threshold")
    parser.add_argument("--low-score", type=SHARE, default=0.3, help="the lowest score detected (ByteTrack's "
                                                                      "second stage)")
    parser.add_argument("--visible", type=number_type(above=0, maximum=1), default=0.5,
                        help="a face counts where this much of it is seen")
    add_common_arguments(parser, threads=2, chips=(UTKFACE_CHIPS, "face chips for the clip"))


@dataclass
class TrackingScore:
    """CLEAR-MOT counts of one tracker on one clip."""

    faces: int = 0  # ground-truth faces that count (visible enough), over all frames
    matches: int = 0
    misses: int = 0
    false_positives: int = 0
    id_switches: int = 0
    fragmentations: int = 0
    ids_per_person: dict[int, list[int]] = field(default_factory=dict)

    @property
    def mota(self) -> float:
        return 1.0 - (self.misses + self.false_positives + self.id_switches) / max(self.faces, 1)

    def summary(self) -> dict:
        return {"faces": self.faces, "matches": self.matches, "misses": self.misses,
                "false_positives": self.false_positives, "id_switches": self.id_switches,
                "fragmentations": self.fragmentations, "mota": round(self.mota, 4),
                "track_ids_per_person": round(float(np.mean([len(v) for v in self.ids_per_person.values()]))
                                              if self.ids_per_person else 0.0, 2)}


def score_tracking(truth: Sequence[Sequence[GroundTruth]], tracked: Sequence[Tracked],
                   visible: float = 0.5) -> TrackingScore:
    """CLEAR-MOT counts of ``tracked`` against ``truth`` (same number of frames), as the module docstring says."""
    score = TrackingScore()
    last_id: dict[int, int] = {}  # person -> track id of their latest match
    previous: dict[int, int] = {}  # person -> track id matched in the previous frame
    was_tracked: dict[int, bool] = {}  # person -> matched when last counted
    interrupted: dict[int, bool] = {}  # person -> lost since their latest match
    for people, output in zip(truth, tracked, strict=True):
        counted = [g for g in people if g.visible >= visible]
        hidden = [g for g in people if g.visible < visible]
        score.faces += len(counted)
        boxes = np.array([box for _, box in output], np.float64).reshape(-1, 4)
        iou = iou_matrix(np.array([g.box for g in counted], np.float64).reshape(-1, 4), boxes)
        pairs: dict[int, int] = {}  # index in counted -> index in output
        for i, g in enumerate(counted):  # last frame's pairs stay while they still overlap enough
            for j, (track_id, _) in enumerate(output):
                if previous.get(g.identity) == track_id and iou[i, j] >= MATCH_IOU and j not in pairs.values():
                    pairs[i] = j
        for flat in np.argsort(-iou, axis=None) if iou.size else []:
            i, j = (int(v) for v in np.unravel_index(flat, iou.shape))
            if iou[i, j] < MATCH_IOU:
                break
            if i not in pairs and j not in pairs.values():
                pairs[i] = j
        previous = {}
        for i, g in enumerate(counted):
            person = g.identity
            if i not in pairs:
                score.misses += 1
                if was_tracked.get(person):
                    interrupted[person] = True
                was_tracked[person] = False
                continue
            track_id = output[pairs[i]][0]
            score.matches += 1
            if person in last_id and last_id[person] != track_id:
                score.id_switches += 1
            if interrupted.pop(person, False):
                score.fragmentations += 1
            last_id[person] = previous[person] = track_id
            was_tracked[person] = True
            ids = score.ids_per_person.setdefault(person, [])
            if track_id not in ids:
                ids.append(track_id)
        unmatched = [j for j in range(len(output)) if j not in pairs.values()]
        if hidden and unmatched:  # boxes on faces hidden behind others or the bar are not false positives
            cover = iou_matrix(boxes[unmatched], np.array([g.box for g in hidden], np.float64).reshape(-1, 4))
            unmatched = [j for j, row in zip(unmatched, cover, strict=True) if row.max() < MATCH_IOU]
        score.false_positives += len(unmatched)
    return score


def detect_all(frames: list[np.ndarray], min_face: int, low_score: float) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per frame: (x y w h boxes, scores) of every face the shipped detector finds at ``low_score``."""
    from edgeface.detector import FaceDetector

    detector = FaceDetector(score_threshold=low_score, min_face=min_face)
    out = []
    for frame in frames:
        faces = detector.detect(frame)
        out.append((np.array([f.box for f in faces], np.float64).reshape(-1, 4),
                    np.array([f.score for f in faces], np.float64)))
    return out


def edgeface_step(score_threshold: float, low_score: float | None = None,
                  show_low: bool = False) -> Callable[[np.ndarray, np.ndarray], Tracked]:
    """The runtime's tracker as ``edgeface run`` drives it: faces above the detector threshold assigned a track,
    the detections from ``low_score`` (None: none) up to it given for the second association; ``show_low``: the
    tracks those matched reported too."""
    from edgeface.runtime.predictor import FaceResult
    from edgeface.runtime.tracker import IoUTracker

    tracker = IoUTracker([])
    floor = score_threshold if low_score is None else low_score

    def result(box: np.ndarray, score: float) -> FaceResult:
        return FaceResult(box=box.astype(np.float32), landmarks=np.zeros((5, 2), np.float32), score=float(score))

    def step(boxes: np.ndarray, scores: np.ndarray) -> Tracked:
        faces = [result(b, s) for b, s in zip(boxes, scores, strict=True) if s >= score_threshold]
        low = [result(b, s) for b, s in zip(boxes, scores, strict=True) if floor <= s < score_threshold]
        tracks = tracker.assign(faces, low)
        out = [(t.track_id, f.box) for t, f in zip(tracks, faces, strict=True)]
        if show_low:  # tracks a low-score detection matched this frame: seen now, yet not among the faces
            ids = {t.track_id for t in tracks}
            out += [(t.track_id, t.box) for t in tracker.tracks if t.missed == 0 and t.track_id not in ids]
        return out
    return step


def bytetrack_step(score_threshold: float, floor: float, fps: float) -> Callable[[np.ndarray, np.ndarray], Tracked]:
    """supervision's ByteTrack: detections above ``floor``; new tracks from ``score_threshold``."""
    try:
        import supervision as sv
    except ImportError as e:
        raise BackendUnavailable("the ByteTrack column needs supervision: pip install 'edgeface[bench]' (it brings "
                                 "the full opencv-python wheel, so it is not part of edgeface[all])") from e

    tracker = sv.ByteTrack(track_activation_threshold=score_threshold - 0.1, frame_rate=int(round(fps)))

    def step(boxes: np.ndarray, scores: np.ndarray) -> Tracked:
        keep = scores >= floor
        xyxy = np.concatenate([boxes[keep, :2], boxes[keep, :2] + boxes[keep, 2:]], 1)
        detections = sv.Detections(xyxy=xyxy.reshape(-1, 4), confidence=scores[keep],
                                   class_id=np.zeros(int(keep.sum()), int))
        tracked = tracker.update_with_detections(detections)
        return [(int(t), np.concatenate([b[:2], b[2:] - b[:2]])) for t, b in zip(tracked.tracker_id, tracked.xyxy,
                                                                                 strict=True)]
    return step


def run_tracker(step: Callable[[np.ndarray, np.ndarray], Tracked],
                detections: list[tuple[np.ndarray, np.ndarray]]) -> tuple[list[Tracked], float]:
    """(each frame's output, the tracker's mean ms per frame)."""
    out, start = [], time.perf_counter()
    for boxes, scores in detections:
        out.append(step(boxes, scores))
    return out, 1000 * (time.perf_counter() - start) / max(len(detections), 1)


def judge(results: dict[str, dict]) -> str:
    """What the counts say: which tracker holds identities better (ID switches), at what cost per frame, whether
    the second association helps (``edgeface-high`` has none), and where the fragmentations differ (what each
    reports: ``edgeface, low shown`` reports ByteTrack's way)."""
    ours, high, shown, theirs = (results[n] for n in ("edgeface", "edgeface-high", "edgeface, low shown",
                                                      "bytetrack"))
    cost = theirs["ms_per_frame"] / max(ours["ms_per_frame"], 1e-9)
    versus = (f"{ours['id_switches']} ID switches against ByteTrack's {theirs['id_switches']} "
              f"({ours['track_ids_per_person']:.2f} against {theirs['track_ids_per_person']:.2f} track ids per "
              f"person), at 1/{cost:.0f} of its time per frame")
    if ours["id_switches"] <= theirs["id_switches"]:
        text = f"edgeface's tracker holds identities as well as ByteTrack or better: {versus}."
    else:
        text = f"ByteTrack holds identities better: {versus}."
    second = ("helps" if high["id_switches"] > ours["id_switches"] else
              "changes nothing" if high["id_switches"] == ours["id_switches"] else "costs")
    text += (f" Its second association of low-score detections {second} here ({high['id_switches']} ID switches "
             "without it).")
    text += (f" Fragmentations and misses ({ours['fragmentations']} and {ours['misses']}, ByteTrack "
             f"{theirs['fragmentations']} and {theirs['misses']}) follow what is reported: edgeface reports only "
             f"faces at the run's score threshold; with the faces its low-score matches follow reported too, "
             f"ByteTrack's way, they are {shown['fragmentations']} and {shown['misses']} "
             f"(MOTA {shown['mota']:.3f} against ByteTrack's {theirs['mota']:.3f}).")
    return text


def markdown(document: dict) -> str:
    clip = document["clip"]
    lines = [f"Command: `{document['command']}`", "",
             f"{clip['frames']} frames, {clip['faces']} faces of {clip['face_size']} px crossing and passing behind a "
             f"bar; {clip['counted_faces']} face-frames at least {document['settings']['visible']:.0%} visible; "
             f"detector: shipped YuNet, {clip['detections']} detections at score >= "
             f"{document['settings']['low_score']} ({clip['runtime_detections']} at the runtime's "
             f"{document['settings']['score_threshold']}).", "",
             "| tracker | MOTA | ID switches | fragmentations | misses | false positives | track ids per person | "
             "ms per frame |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, r in document["trackers"].items():
        lines.append(f"| {name} | {r['mota']:.3f} | {r['id_switches']} | {r['fragmentations']} | {r['misses']} | "
                     f"{r['false_positives']} | {r['track_ids_per_person']:.2f} | {r['ms_per_frame']:.3f} |")
    lines += ["", document["verdict"]]
    return "\n".join(lines) + "\n"


def figure(document: dict, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from edgeface.fileio import save_figure

    names = list(document["trackers"])
    groups = [["id_switches", "fragmentations"], ["misses", "false_positives"]]  # identity, then presence counts
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.5), gridspec_kw={"width_ratios": [2, 2, 1.4]})
    width = 0.8 / len(names)
    for ax, counts in zip(axes[:2], groups, strict=True):
        for k, name in enumerate(names):
            ax.bar(np.arange(len(counts)) + k * width, [document["trackers"][name][c] for c in counts], width,
                   label=name, color=f"C{k}")
        ax.set_xticks(np.arange(len(counts)) + width * (len(names) - 1) / 2, [c.replace("_", " ") for c in counts])
        ax.set_ylabel("count over the clip (lower is better)")
    axes[0].legend(fontsize=8)
    right = axes[2]
    right.bar(names, [document["trackers"][n]["mota"] for n in names], color=[f"C{k}" for k in range(len(names))])
    right.set_ylabel("MOTA (higher is better)")
    right.set_ylim(0, 1)
    plt.setp(right.get_xticklabels(), rotation=35, ha="right")
    fig.suptitle(f"Trackers on {document['clip']['frames']} frames of {document['clip']['faces']} crossing faces")
    fig.tight_layout()
    save_figure(fig, path, dpi=110)


def main(args: argparse.Namespace) -> int:
    import cv2

    from edgeface.bench.synthetic_video import crossing_faces_frames
    from edgeface.faces import image_files

    cv2.setNumThreads(args.threads)
    files = image_files(args.chips)[:args.faces]
    if len(files) < args.faces:
        raise ValueError(f"{args.chips} holds {len(files)} face images; {args.faces} needed")
    face_size, fps = 96, 25.0
    frames, truth = crossing_faces_frames([cv2.imread(str(p)) for p in files], args.frames, face_size=face_size,
                                          seed=args.seed)
    detections = detect_all(frames, args.min_face, args.low_score)
    trackers = {"edgeface": edgeface_step(args.score_threshold, args.low_score),
                "edgeface-high": edgeface_step(args.score_threshold),
                "edgeface, low shown": edgeface_step(args.score_threshold, args.low_score, show_low=True),
                "bytetrack": bytetrack_step(args.score_threshold, args.low_score, fps),
                "bytetrack-high": bytetrack_step(args.score_threshold, args.score_threshold, fps)}
    results = {}
    for name, step in trackers.items():
        tracked, ms = run_tracker(step, detections)
        results[name] = {**score_tracking(truth, tracked, args.visible).summary(), "ms_per_frame": round(ms, 4)}
    verdict = judge(results)
    document = {"command": command_line(args), "settings": settings(args),
                "clip": {"frames": args.frames, "faces": args.faces, "face_size": face_size, "fps": fps,
                         "counted_faces": sum(g.visible >= args.visible for people in truth for g in people),
                         "detections": int(sum(len(s) for _, s in detections)),
                         "runtime_detections": int(sum((s >= args.score_threshold).sum() for _, s in detections))},
                "trackers": results, "verdict": verdict}
    write_results(args.out, "tracker_comparison", document, markdown(document))
    figure(document, args.out / "tracker_comparison.png")
    return 0
