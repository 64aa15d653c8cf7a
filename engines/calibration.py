"""Real frames for calibration and accuracy gates, read from ``../shared/data/clips``.

The clips are evaluation material: they are read in place, never copied into the
repository (only two or three model-sized crops end up in each bundle's
``reference.npz``). The selection is fixed by a seed: per clip, ``2 * per_clip``
distinct frame indices are drawn, sorted, and dealt alternately to the calibration
and the evaluation split, so both spread over the whole clip and never share a frame.

A third, **selection** split (``SELECTION_PER_CLIP`` frames per clip, its own seed
``[seed, clip number, 1]``) is drawn from the frames that are neither calibration nor
evaluation frames nor next to one. Choices about an INT8 model (which layers stay
float, which calibration) are made on it (``engines/sensitivity.py``), so the
evaluation frames stay held out for the gate alone. Adding it changed neither of the
other two splits.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SEED = 20250115
PER_CLIP = 8
SELECTION_PER_CLIP = 8

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Frame:
    clip: str
    index: int
    split: str  # "calibration" | "evaluation" | "selection"
    rgb: np.ndarray  # HxWx3 uint8


def clip_paths(data_dir: Path) -> list[Path]:
    clips = sorted((data_dir / "clips").glob("*.mp4"))
    if not clips:
        raise FileNotFoundError(
            f"no clips in {data_dir / 'clips'}: the build needs ../shared/data beside the "
            "checkout (or --data DIR) for calibration and accuracy gates"
        )
    return clips


def _read(clip: Path, wanted: set[int]) -> dict[int, np.ndarray]:
    import cv2

    cap = cv2.VideoCapture(str(clip))
    got: dict[int, np.ndarray] = {}
    index = 0
    # Sequential decoding: seeking by frame number is not exact in every backend.
    while len(got) < len(wanted):
        ok, bgr = cap.read()
        if not ok:
            break
        if index in wanted:
            got[index] = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        index += 1
    cap.release()
    return got


def selection_indices(
    count: int, picked: list[int], number: int, seed: int, size: int
) -> list[int]:
    """Frames of one clip for the selection split: none picked, none next to one picked."""
    near = {i + d for i in picked for d in (-1, 0, 1)}
    free = [i for i in range(count) if i not in near]
    rng = np.random.default_rng([seed, number, 1])
    return sorted(int(i) for i in rng.choice(free, size=min(len(free), size), replace=False))


def select_frames(
    data_dir: Path = DEFAULT_DATA,
    per_clip: int = PER_CLIP,
    seed: int = SEED,
    progress: Progress = print,
    selection_per_clip: int = SELECTION_PER_CLIP,
) -> list[Frame]:
    import cv2

    frames: list[Frame] = []
    for number, clip in enumerate(clip_paths(data_dir)):
        cap = cv2.VideoCapture(str(clip))
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        cap.release()
        rng = np.random.default_rng([seed, number])
        picked = sorted(rng.choice(count, size=min(count, 2 * per_clip), replace=False).tolist())
        selection = selection_indices(count, picked, number, seed, selection_per_clip)
        decoded = _read(clip, set(picked) | set(selection))
        for k, index in enumerate(picked):
            if index in decoded:
                split = "calibration" if k % 2 == 0 else "evaluation"
                frames.append(Frame(clip.name, index, split, decoded[index]))
        frames += [Frame(clip.name, i, "selection", decoded[i]) for i in selection if i in decoded]
        progress(
            f"  frames: {clip.name}: {len(decoded)} of {count} (indices {picked}; "
            f"selection {selection})"
        )
    return frames


def describe(per_clip: int = PER_CLIP, seed: int = SEED) -> str:
    return (
        "frames of ../shared/data/clips/*.mp4 (real talking-head clips, read in place): "
        f"per clip {2 * per_clip} distinct indices drawn with numpy default_rng([{seed}, "
        f"clip number]), sorted, dealt alternately to calibration and evaluation"
    )


def describe_selection(per_clip: int = SELECTION_PER_CLIP, seed: int = SEED) -> str:
    return (
        f"per clip {per_clip} more frames drawn with numpy default_rng([{seed}, clip number, "
        "1]) among those that are neither calibration nor evaluation frames nor next to one"
    )
