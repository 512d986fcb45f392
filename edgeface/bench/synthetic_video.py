"""Short test videos with faces moving across a background at known positions (for tests and benchmarks).

Faces are pasted from real face chips (e.g. ``../shared/data/utkface-dev``); every face moves
horizontally in its own band, so ground-truth boxes are known for every frame.
"""

from __future__ import annotations

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
