"""Short test videos with faces moving across a background at known positions (for tests and benchmarks), and
clips of faces crossing and covering each other with known identities (for measuring trackers).

Faces are pasted from real face chips (e.g. ``../shared/data/utkface-dev``); every face moves
horizontally in its own band, so ground-truth boxes are known for every frame.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

Box = tuple[int, int, int, int]


def moving_faces_video(path: str | Path, chips: list[np.ndarray], frames: int, size: tuple[int, int] = (640, 480),
                       face_size: int = 128, fps: float = 25.0, laps: float = 1.0) -> list[list[Box]]:
    """Write an mp4v video and return each frame's pasted face boxes (x, y, w, h), in ``chips`` order.

    Each face goes across the frame and back ``laps`` times over the video.
    """
    width, height = size
    bands = len(chips)
    if bands * face_size > height or face_size + 2 > width:
        raise ValueError(f"{bands} faces of {face_size} px do not fit in {width}x{height}")
    gap = (height - bands * face_size) // (bands + 1)
    faces = [cv2.resize(c, (face_size, face_size), interpolation=cv2.INTER_AREA) for c in chips]
    yy, xx = np.mgrid[0:height, 0:width]
    background = np.stack([60 + 80 * xx / width, 90 + 40 * yy / height, 110 - 30 * xx / width], -1).astype(np.uint8)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    if not writer.isOpened():
        raise RuntimeError(f"cannot write {path}")
    travel = width - face_size - 20
    boxes_per_frame = []
    try:
        for t in range(frames):
            frame = background.copy()
            boxes = []
            for i, face in enumerate(faces):
                phase = (laps * t / max(frames - 1, 1) + i / bands) % 1.0  # faces start at different places
                x = 10 + int(round(travel * (1 - abs(2 * phase - 1))))  # there and back again
                y = gap + i * (face_size + gap)
                frame[y:y + face_size, x:x + face_size] = face
                boxes.append((x, y, face_size, face_size))
            writer.write(frame)
            boxes_per_frame.append(boxes)
    finally:
        writer.release()
    return boxes_per_frame


def sample_faces_video(path: str | Path, photos: list[np.ndarray], frames: int, size: tuple[int, int] = (640, 360),
                       per_frame: int = 3, fps: float = 12.0, gap: int = 0) -> None:
    """Write an mp4v clip of portrait photos (e.g. the shipped sample faces), ``per_frame`` side by side, drifting
    slowly sideways; the set on screen changes in segments of ``frames`` frames each, so every photo appears, with
    ``gap`` empty frames between segments (more than a tracker's patience keeps one person's track from passing
    to the next person in the same place)."""
    width, height = size
    if not photos or frames < 1 or per_frame < 1:
        raise ValueError("a clip needs at least one photo, one frame and one face per frame")
    slot = width // per_frame
    face_h = height - 40
    face_w = min(slot - 20, int(face_h * photos[0].shape[1] / photos[0].shape[0]))
    faces = [cv2.resize(p, (face_w, face_h), interpolation=cv2.INTER_AREA) for p in photos]
    segments = -(-len(faces) // per_frame)
    yy, xx = np.mgrid[0:height, 0:width]
    background = np.stack([70 + 60 * xx / width, 80 + 40 * yy / height, 90 - 20 * xx / width], -1).astype(np.uint8)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    if not writer.isOpened():
        raise RuntimeError(f"cannot write {path}")
    try:
        for segment in range(segments):
            if segment:
                for _ in range(gap):
                    writer.write(background)
            for t in range(frames):
                frame = background.copy()
                shift = int(round(6 * np.sin(2 * np.pi * t / max(frames, 2))))
                for i in range(per_frame):
                    face = faces[(segment * per_frame + i) % len(faces)]
                    x = i * slot + (slot - face_w) // 2 + shift
                    frame[20:20 + face_h, x:x + face_w] = face
                writer.write(frame)
    finally:
        writer.release()


@dataclass(frozen=True)
class GroundTruth:
    """One face in one frame of :func:`crossing_faces_frames`: who it is, where, and how much of it is seen."""

    identity: int
    box: Box
    visible: float  # fraction of the face not covered by faces in front of it or the occluding bar


def crossing_faces_frames(chips: list[np.ndarray], frames: int, size: tuple[int, int] = (640, 480),
                          face_size: int = 96, seed: int = 0,
                          bar: tuple[int, int] | None = (300, 40)) -> tuple[list[np.ndarray], list[list[GroundTruth]]]:
    """Frames in which faces move at constant speed and bounce off the borders, so they cross and cover each
    other (drawn in ``chips`` order: later faces in front), with a vertical bar (x, width) in front of everything
    that faces pass behind; and per frame, each face's identity (its index in ``chips``), box and visible
    fraction. Kept in memory: trackers are compared on the exact pixels, without a codec in between."""
    width, height = size
    rng = np.random.default_rng(seed)
    faces = [cv2.resize(c, (face_size, face_size), interpolation=cv2.INTER_AREA) for c in chips]
    position = rng.uniform([0, 0], [width - face_size, height - face_size], (len(faces), 2))
    speed = rng.uniform(2.0, 5.0, len(faces))
    angle = rng.uniform(0, 2 * np.pi, len(faces))
    velocity = np.stack([np.cos(angle), np.sin(angle)], 1) * speed[:, None]
    yy, xx = np.mgrid[0:height, 0:width]
    background = np.stack([60 + 80 * xx / width, 90 + 40 * yy / height, 110 - 30 * xx / width], -1).astype(np.uint8)
    limit = np.array([width - face_size, height - face_size], np.float64)
    rendered, truth = [], []
    for _ in range(frames):
        frame = background.copy()
        owner = np.full((height, width), -1, np.int32)  # which face each pixel shows
        boxes = []
        for i, face in enumerate(faces):
            x, y = (int(round(v)) for v in position[i])
            frame[y:y + face_size, x:x + face_size] = face
            owner[y:y + face_size, x:x + face_size] = i
            boxes.append((x, y, face_size, face_size))
        if bar is not None:
            frame[:, bar[0]:bar[0] + bar[1]] = (90, 90, 90)
            owner[:, bar[0]:bar[0] + bar[1]] = -1
        visible = [float((owner[y:y + h, x:x + w] == i).mean()) for i, (x, y, w, h) in enumerate(boxes)]
        rendered.append(frame)
        truth.append([GroundTruth(i, box, v) for i, (box, v) in enumerate(zip(boxes, visible, strict=True))])
        position += velocity
        for axis in range(2):  # bounce off the borders
            out = (position[:, axis] < 0) | (position[:, axis] > limit[axis])
            velocity[out, axis] *= -1
            position[:, axis] = np.clip(position[:, axis], 0, limit[axis])
    return rendered, truth
