"""Learn the keypoint codec's expression basis: ``python -m engines.codec.basis``.

1. Track every clip of ``../shared/data/clips`` with the real tracker (FP32, one thread,
   default settings: the smoothed landmarks the camera's encoder is fed). Tracks are
   cached as ``.cache/codec/<clip>.npz``, keyed by the clip's size and mtime.
2. Normalize each frame (``appliance.codec.keypoints.normalize``: rigid similarity off)
   and centre each clip on its own mean shape, so what is left is expression, not
   identity. Every frame is also mirrored (left/right vertex swap; the canonical mesh is
   exactly symmetric) so the basis has no handedness the six people happen to have.
3. PCA, each clip weighted equally (the longest clip has 13x the frames of the shortest).
4. Generalization is measured leave-one-clip-out: for each clip, a basis learned from the
   other five codes it, reference = its first frame (as in a call); landmark error vs K
   and, with the chosen steps, after quantization, plus the empirical entropy of the
   symbols (intra and predicted).
5. The basis from all clips is written to ``appliance/codec/data/expression_basis.npz``.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from appliance.codec.entropy import EntropyModel
from appliance.codec.keypoints import (
    DEFAULT_MODEL,
    GAZE_SIZE,
    POINTS,
    UNIT_PX,
    KeypointCodecModel,
    KeypointDecoder,
    KeypointEncoder,
    normalize,
)
from appliance.vision.pose import canonical_face, rigid_points

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DATA = ROOT.parent / "shared" / "data"
CACHE = ROOT / ".cache" / "codec"
TRACK_VERSION = 2  # bump when the tracking recipe changes: the cache is then rebuilt

RIGHT_EYE = (33, 133)  # corner landmarks of the subject's right eye
LEFT_EYE = (362, 263)

Progress = Callable[[str], None]
Basis = tuple[np.ndarray, np.ndarray, np.ndarray]  # mean shape, components, their std


@dataclass(frozen=True)
class Track:
    """One clip's landmarks (frames, 468, 3) float32 px; NaN where no face was held."""

    clip: str
    width: int
    height: int
    fps: float
    landmarks: np.ndarray
    iris: np.ndarray  # (frames, 2, 2) iris centres px (subject's right eye first); NaN: none

    @property
    def found(self) -> np.ndarray:
        return np.isfinite(self.landmarks).all(axis=(1, 2))


def _key(clip: Path) -> np.ndarray:
    stat = clip.stat()
    return np.array([TRACK_VERSION, stat.st_size, int(stat.st_mtime)], np.int64)


def track_clip(clip: Path, progress: Progress = print) -> Track:
    """Run the tracker over the clip (largest face per frame)."""
    import cv2

    from appliance.align.evaluate import read_clip
    from appliance.codec.tracking import track_frames

    cap = cv2.VideoCapture(str(clip))
    fps = float(cap.get(cv2.CAP_PROP_FPS) or 25.0)
    width, height = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
    cap.release()
    start = time.perf_counter()

    def frames():
        for index, (image, _t) in enumerate(read_clip(clip)):
            if index % 100 == 99:
                progress(f"  {clip.name}: {index + 1} frames, {time.perf_counter() - start:.0f} s")
            yield image

    landmarks, iris = track_frames(frames(), fps)
    return Track(clip.stem, width, height, fps, landmarks, iris)


def load_track(clip: Path, cache: Path = CACHE, progress: Progress = print) -> Track:
    """The clip's track from the cache, tracking it (and caching) when missing or stale."""
    path = cache / f"{clip.stem}.npz"
    if path.exists():
        with np.load(path) as data:
            if np.array_equal(data["key"], _key(clip)):
                return Track(
                    clip.stem,
                    int(data["width"]),
                    int(data["height"]),
                    float(data["fps"]),
                    data["landmarks"],
                    data["iris"],
                )
    progress(f"tracking {clip.name} (cached as {path})")
    track = track_clip(clip, progress)
    cache.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        path,
        key=_key(clip),
        width=track.width,
        height=track.height,
        fps=track.fps,
        landmarks=track.landmarks,
        iris=track.iris,
    )
    return track


def load_tracks(data: Path = DEFAULT_DATA, progress: Progress = print) -> list[Track]:
    clips = sorted((data / "clips").glob("*.mp4"))
    if not clips:
        raise FileNotFoundError(f"no clips in {data / 'clips'}: ../shared/data is needed")
    return [load_track(clip, progress=progress) for clip in clips]


# --- normalization and learning -------------------------------------------------------------


@dataclass(frozen=True)
class Clip:
    """A track's frames with a face, normalized: landmarks = scale * R (shape - c) + centre."""

    track: Track
    landmarks: np.ndarray  # (n, 468, 3) float64 px
    shapes: np.ndarray  # (n, 468, 3) canonical cm
    iris: np.ndarray  # (n, 2, 2) px


def normalize_track(track: Track) -> Clip:
    landmarks = track.landmarks[track.found].astype(np.float64)
    shapes = np.stack([normalize(frame)[3] for frame in landmarks])
    return Clip(track, landmarks, shapes, track.iris[track.found].astype(np.float64))


@cache
def mirror_permutation() -> np.ndarray:
    """Vertex i's mirror image (x -> -x) in the canonical mesh, which is symmetric."""
    face = canonical_face()
    mirrored = face * np.array([-1.0, 1.0, 1.0])
    perm = np.array([np.argmin(((face - p) ** 2).sum(axis=1)) for p in mirrored])
    if not np.allclose(face[perm], mirrored, atol=1e-3):
        raise ValueError("the canonical face is not symmetric: no mirror permutation")
    return perm


def mirrored(shapes: np.ndarray) -> np.ndarray:
    return (shapes * np.array([-1.0, 1.0, 1.0]))[:, mirror_permutation()]


def learn(clips: list[Clip], k: int) -> Basis:
    """(mean shape (468, 3), basis (k, 1404), coefficient std (k,)) from the clips.

    Each clip (and its mirror image) is centred on its own mean and weighs the same.
    """
    cov = np.zeros((POINTS * 3, POINTS * 3))
    means = []
    for clip in clips:
        for shapes in (clip.shapes, mirrored(clip.shapes)):
            means.append(shapes.mean(axis=0))
            d = (shapes - means[-1]).reshape(len(shapes), -1)
            cov += d.T @ d / len(d)
    values, vectors = np.linalg.eigh(cov / len(means))
    order = np.argsort(values)[::-1][:k]
    basis = vectors[:, order].T
    basis *= np.sign(basis[:, :1] + 1e-12)  # a fixed sign: the same basis on every machine
    return np.mean(means, axis=0), basis, np.sqrt(np.maximum(values[order], 0.0))


@dataclass(frozen=True)
class Steps:
    """Quantizer steps: 512-px units, ln units, radians, canonical cm, canonical cm."""

    translation: float = 1.0 / 8.0
    log_scale: float = 1.0 / 2048.0
    rotation: float = 1.0 / 2048.0
    expression: float = 0.08
    reference: float = 1.0 / 128.0
    gaze: float = 1.0 / 128.0  # eye widths: about 0.25 px on a 32-px eye


def make_model(
    mean: np.ndarray, basis: np.ndarray, std: np.ndarray, steps: Steps, meta: dict | None = None
) -> KeypointCodecModel:
    k = len(basis)
    step = np.array([steps.translation] * 2 + [steps.log_scale] + [steps.rotation] * 3)
    bounds = np.array(
        [
            math.ceil(1.5 * UNIT_PX / steps.translation),  # centroid up to a frame outside
            math.ceil(2.0 / steps.log_scale),  # 1/7.4x .. 7.4x the nominal face size
            math.ceil(math.pi / steps.rotation),
        ]
    )[[0, 0, 1, 2, 2, 2]]
    # 16 training standard deviations: a clamp is a safety net, not a working range.
    coef_bounds = np.maximum(64, np.ceil(16.0 * std[:k] / steps.expression))
    gaze_bounds = np.full(GAZE_SIZE, math.ceil(0.5 / steps.gaze))  # within half an eye width
    return KeypointCodecModel(
        mean,
        basis,
        np.concatenate([step, np.full(k, steps.expression), np.full(GAZE_SIZE, steps.gaze)]),
        np.concatenate([bounds, coef_bounds, gaze_bounds]).astype(np.int64),
        steps.reference,
        meta,
    )


# --- measurement ----------------------------------------------------------------------------


def interocular(landmarks: np.ndarray) -> np.ndarray:
    """Eye centre to eye centre (corner midpoints), px, per frame."""
    right = landmarks[:, list(RIGHT_EYE), :2].mean(axis=1)
    left = landmarks[:, list(LEFT_EYE), :2].mean(axis=1)
    return np.linalg.norm(right - left, axis=1)


def truncation_error(clip: Clip, basis: np.ndarray) -> np.ndarray:
    """(n, 468) px: reference = first frame, exact pose, unquantized coefficients."""
    ref = clip.shapes[0]
    d = (clip.shapes - ref).reshape(len(clip.shapes), -1)
    shapes = ref + (d @ basis.T @ basis).reshape(clip.shapes.shape)
    out = np.empty(clip.shapes.shape[:2])
    for i, (frame, shape) in enumerate(zip(clip.landmarks, shapes, strict=True)):
        centre, scale, rotation, _ = normalize(frame)
        placed = scale * (shape - _rigid_centre()) @ rotation.T + centre
        out[i] = np.linalg.norm(placed[:, :2] - frame[:, :2], axis=1)
    return out


def _rigid_centre() -> np.ndarray:
    return canonical_face()[rigid_points()].mean(axis=0)


@dataclass(frozen=True)
class Coded:
    errors: np.ndarray  # (n, 468) px, decoded vs tracked
    symbols: np.ndarray  # (n, 6 + K) absolute quantized values
    predicted: np.ndarray  # (n - 1, 6 + K) what predicted packets carry
    reference: np.ndarray  # (1404,) reference symbols
    clamped: int  # frames where a value hit its bound
    encode_ms: np.ndarray  # per frame, encoder after landmarks


def code_clip(clip: Clip, model: KeypointCodecModel) -> Coded:
    """Through the real encoder and decoder: an intra packet, then predicted ones."""
    w, h = clip.track.width, clip.track.height
    encoder, decoder = KeypointEncoder(model, w, h), KeypointDecoder(model, w, h)
    reference = encoder.set_reference(clip.landmarks[0])
    decoder.set_reference(reference)
    errors, absolute, predicted, times = [], [], [], []
    for frame, iris in zip(clip.landmarks, clip.iris, strict=True):
        start = time.perf_counter()
        packet = encoder.encode(frame, iris=iris)
        times.append((time.perf_counter() - start) * 1e3)
        decoded = decoder.decode(packet)
        errors.append(np.linalg.norm(decoded - frame[:, :2], axis=1))
        absolute.append(decoder.previous)
        if not packet.intra:
            predicted.append(packet.symbols)
    symbols = np.array(absolute)
    clamped = int(np.any(np.abs(symbols) >= model.bounds, axis=1).sum())
    return Coded(
        np.array(errors), symbols, np.array(predicted), reference, clamped, np.array(times)
    )


def entropy_bits(values: np.ndarray) -> float:
    """Empirical entropy (bits per value) of the values' histogram."""
    _, counts = np.unique(values, return_counts=True)
    p = counts / counts.sum()
    return float(-(p * np.log2(p)).sum())


def exp_golomb_bits(values: np.ndarray) -> np.ndarray:
    """Signed Exp-Golomb (k=0) lengths: what a value costs with no statistics at all."""
    mapped = np.where(values > 0, 2 * values - 1, -2 * values).astype(np.int64)
    return 2 * np.floor(np.log2(mapped + 1)).astype(np.int64) + 1


def adaptive_bits(values: np.ndarray) -> float:
    """Total bits of a simple adaptive binary arithmetic coder, from a fresh start.

    One model per vector position; per value: a zero flag, a sign, the Exp-Golomb prefix
    bins (each with its own adaptive probability, Krichevsky-Trofimov counts) and the
    suffix bits raw. A realistic figure for a CABAC-like coder, learning cost included.
    """
    total = 0.0
    for column in np.asarray(values, np.int64).T:
        counts: dict[object, list[float]] = {}

        def bit(context: object, one: bool, counts: dict[object, list[float]] = counts) -> float:
            c = counts.setdefault(context, [0.5, 0.5])
            p = c[int(one)] / (c[0] + c[1])
            c[int(one)] += 1.0
            return -math.log2(p)

        for v in column:
            total += bit("zero", v == 0)
            if v == 0:
                continue
            total += bit("sign", v < 0)
            n = int(abs(v)).bit_length() - 1  # Exp-Golomb of |v| - 1: n prefix ones
            total += sum(bit(("prefix", min(j, 15)), True) for j in range(n))
            total += bit(("prefix", min(n, 15)), False) + n
    return total


# --- the report -----------------------------------------------------------------------------

KS = (8, 16, 24, 32, 48)
CHOSEN_K = 32


def folds(clips: list[Clip], k: int, progress: Progress) -> list[Basis]:
    """Leave-one-clip-out bases: fold i never saw clip i."""
    out = []
    for i, clip in enumerate(clips):
        progress(f"  fold {i + 1}/{len(clips)}: basis without {clip.track.clip}")
        out.append(learn([c for j, c in enumerate(clips) if j != i], k))
    return out


def _percent(errors: list[np.ndarray], clips: list[Clip]) -> np.ndarray:
    return np.concatenate(
        [
            e.mean(axis=1) / interocular(c.landmarks) * 100
            for e, c in zip(errors, clips, strict=True)
        ]
    )


def truncation_table(clips: list[Clip], bases: list[Basis]) -> list[str]:
    rows = [
        "| K | mean px | p95 px | mean % IOD | p95 % IOD (frames) | worst clip mean px |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for k in KS:
        errs = [truncation_error(c, b[1][:k]) for c, b in zip(clips, bases, strict=True)]
        flat, pct = np.concatenate([e.ravel() for e in errs]), _percent(errs, clips)
        worst = max(float(e.mean()) for e in errs)
        rows.append(
            f"| {k} | {flat.mean():.3f} | {np.percentile(flat, 95):.3f} | {pct.mean():.3f} "
            f"| {np.percentile(pct, 95):.3f} | {worst:.3f} |"
        )
    return rows


def coded_table(clips: list[Clip], bases: list[Basis], steps: Steps) -> tuple[list[str], dict]:
    rows = [
        "| K | mean px | p95 px | mean % IOD | predicted bits/frame: entropy / adaptive "
        "| worst clip (adaptive) | intra: entropy / Exp-Golomb | encoder ms p50 / p99 |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    detail: dict = {}
    for k in (16, 24, CHOSEN_K, 48):
        coded = [
            code_clip(c, make_model(b[0], b[1][:k], b[2], steps))
            for c, b in zip(clips, bases, strict=True)
        ]
        flat = np.concatenate([c.errors.ravel() for c in coded])
        pct = _percent([c.errors for c in coded], clips)
        pred = np.concatenate([c.predicted for c in coded])
        intra = np.concatenate([c.symbols for c in coded])
        h_pred = sum(entropy_bits(col) for col in pred.T)
        h_intra = sum(entropy_bits(col) for col in intra.T)
        bits = [adaptive_bits(c.predicted) for c in coded]  # a slow pure-Python count
        per_clip = [b / len(c.predicted) for b, c in zip(bits, coded, strict=True)]
        adaptive = sum(bits) / len(pred)
        # An intra packet at any frame (the first one is the reference, cheap): static code.
        cold = float(exp_golomb_bits(intra).sum(axis=1).mean())
        ms = np.concatenate([c.encode_ms[1:] for c in coded])
        rows.append(
            f"| {k} | {flat.mean():.3f} | {np.percentile(flat, 95):.3f} | {pct.mean():.3f} "
            f"| {h_pred:.1f} / {adaptive:.1f} | {max(per_clip):.1f} | {h_intra:.1f} / {cold:.0f} "
            f"| {np.percentile(ms, 50):.2f} / {np.percentile(ms, 99):.2f} |"
        )
        if k == CHOSEN_K:
            detail = {"coded": coded, "per_clip": per_clip}
    return rows, detail


def pose_only_error(clips: list[Clip], model: KeypointCodecModel) -> tuple[float, float]:
    """Mean and p95 px error from quantizing the pose alone (shape kept exact)."""
    errs = []
    for clip in clips:
        w, h = clip.track.width, clip.track.height
        for frame in clip.landmarks[::5]:
            q = model.quantize(model.analyze(frame, w, h, model.mean))
            place = model.placement(q, w, h)
            shape = normalize(frame)[3] - _rigid_centre()
            placed = place.scale * shape @ place.rotation[:2].T + np.array(place.centre)
            errs.append(np.linalg.norm(placed - frame[:, :2], axis=1))
    flat = np.concatenate(errs)
    return float(flat.mean()), float(np.percentile(flat, 95))


def report(clips: list[Clip], steps: Steps, progress: Progress) -> tuple[list[str], list[Basis]]:
    bases = folds(clips, max(KS), progress)
    progress("held-out reconstruction error vs K (unquantized)")
    lines = ["### Held-out error vs K (unquantized; reference = first frame)", ""]
    lines += truncation_table(clips, bases)
    progress("held-out coding with the chosen steps")
    rows, detail = coded_table(clips, bases, steps)
    lines += ["", f"### Coded through KeypointEncoder/Decoder, held-out ({steps})", "", *rows]
    coded: list[Coded] = detail["coded"]
    pose = pose_only_error(
        clips, make_model(bases[0][0], bases[0][1][:CHOSEN_K], bases[0][2], steps)
    )
    ref_bits = [1404 * entropy_bits(c.reference) for c in coded]
    lines += [
        "",
        f"K={CHOSEN_K}: pose quantization alone {pose[0]:.3f} px mean, {pose[1]:.3f} px p95; "
        f"per-clip predicted bits/frame (adaptive) "
        + ", ".join(
            f"{c.track.clip} {b:.0f}" for c, b in zip(clips, detail["per_clip"], strict=True)
        )
        + f"; frames with a clamped value: {sum(c.clamped for c in coded)}; reference shape "
        f"{np.mean(ref_bits) / 8:.0f} bytes (entropy, one model for its 1404 values)",
    ]
    return lines, bases


def write_basis(clips: list[Clip], steps: Steps, out: Path) -> KeypointCodecModel:
    mean, basis, std = learn(clips, CHOSEN_K)
    meta = {
        "meta_clips": ", ".join(f"{c.track.clip} ({len(c.shapes)} frames)" for c in clips),
        "meta_recipe": "engines/codec/basis.py: per-clip centred, mirrored, clip-weighted PCA",
        "meta_std": std.astype(np.float32),
    }
    model = make_model(mean, basis, std, steps, meta)
    # entropy priors from the real symbols of every clip (a few dozen bytes of statistics)
    coded = [code_clip(clip, model) for clip in clips]
    model.priors = EntropyModel.fit(
        np.vstack([c.symbols for c in coded]), np.vstack([c.predicted for c in coded])
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    model.save(out)
    return model


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engines.codec.basis", description=__doc__)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--out", type=Path, default=DEFAULT_MODEL)
    parser.add_argument("--no-report", action="store_true", help="only learn and write the basis")
    args = parser.parse_args(argv)

    def progress(message: str) -> None:
        print(message, flush=True)

    tracks = load_tracks(args.data, progress)
    clips = [normalize_track(t) for t in tracks]
    for c in clips:
        progress(f"{c.track.clip}: {c.track.width}x{c.track.height}, {len(c.shapes)} frames")
    steps = Steps()
    if not args.no_report:
        lines, _ = report(clips, steps, progress)
        text = "\n".join(lines) + "\n"
        CACHE.mkdir(parents=True, exist_ok=True)
        (CACHE / "report.md").write_text(text)
        print(text)
    model = write_basis(clips, steps, args.out)
    progress(f"wrote {args.out} ({args.out.stat().st_size // 1024} KB, K={model.k})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
