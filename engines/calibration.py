"""Real frames for calibration and accuracy gates, read from ``../shared/data/clips``.

The clips are evaluation material: they are read in place, never copied into the
repository (only two or three model-sized crops end up in each bundle's
``reference.npz``). The selection is fixed by a seed: per clip, ``2 * per_clip``
distinct frame indices are drawn, sorted, and dealt alternately to the calibration
and the evaluation split, so both spread over the whole clip and never share a frame.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SEED = 20250115
PER_CLIP = 8

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Frame:
    clip: str
    index: int
    split: str  # "calibration" | "evaluation"
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


def select_frames(
    data_dir: Path = DEFAULT_DATA,
    per_clip: int = PER_CLIP,
    seed: int = SEED,
    progress: Progress = print,
) -> list[Frame]:
    import cv2

    frames: list[Frame] = []
    for number, clip in enumerate(clip_paths(data_dir)):
        cap = cv2.VideoCapture(str(clip))
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        cap.release()
        rng = np.random.default_rng([seed, number])
        picked = sorted(rng.choice(count, size=min(count, 2 * per_clip), replace=False).tolist())
        decoded = _read(clip, set(picked))
        for k, index in enumerate(picked):
            if index in decoded:
                split = "calibration" if k % 2 == 0 else "evaluation"
                frames.append(Frame(clip.name, index, split, decoded[index]))
        progress(f"  frames: {clip.name}: {len(decoded)} of {count} (indices {picked})")
    return frames


def describe(per_clip: int = PER_CLIP, seed: int = SEED) -> str:
    return (
        "frames of ../shared/data/clips/*.mp4 (real talking-head clips, read in place): "
        f"per clip {2 * per_clip} distinct indices drawn with numpy default_rng([{seed}, "
        f"clip number]), sorted, dealt alternately to calibration and evaluation"
    )
