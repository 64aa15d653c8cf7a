"""Training pairs for the x2 network: the "291" images plus faces, with camera-like damage.

Everything is luma (BT.601 Y, 0..1): the network upsamples Y and the chroma, to which
the eye is far less sensitive, is upsampled bicubically (as FSRCNN, ESPCN, ECBSR do).

Degradation. Half of the pairs are the standard protocol's (MATLAB bicubic, antialiased),
so figures compare with published tables; the other half look like a camera: a little
optical blur before the sampling, sensor noise, and JPEG compression (what an MJPEG
sensor or a video stream adds). A network trained only on clean bicubic pairs sharpens
noise and blocks; one trained only on damaged pairs smooths clean detail.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from engines.sr.imresize import bgr_to_y, imresize, to_uint8
from engines.sr.spec import SCALE

DEFAULT_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
DEFAULT_OUT = Path(__file__).resolve().parents[2] / ".cache" / "sr"  # checkpoints
TRAIN_SETS = ("sr/yang91", "sr/bsd200")
FACE_EVERY = 40  # clip frames used for training: 0, 40, 80 ...; FACE_EVERY // 2 + k * FACE_EVERY
# are held out for the face evaluation


@dataclass(frozen=True)
class Degradation:
    clean_share: float = 0.5
    blur_sigma: tuple[float, float] = (0.2, 1.0)  # HR px, before sampling
    noise_sigma: tuple[float, float] = (0.0, 4.0)  # LR grey levels (of 255)
    jpeg_quality: tuple[int, int] = (55, 95)

    def describe(self) -> str:
        return (
            f"{self.clean_share:.0%} MATLAB bicubic x{SCALE}; the rest Gaussian blur sigma "
            f"{self.blur_sigma[0]}-{self.blur_sigma[1]} HR px, then bicubic, Gaussian noise "
            f"sigma {self.noise_sigma[0]}-{self.noise_sigma[1]} levels, JPEG quality "
            f"{self.jpeg_quality[0]}-{self.jpeg_quality[1]}"
        )


def image_files(data_dir: Path) -> list[Path]:
    files: list[Path] = []
    for name in TRAIN_SETS:
        folder = data_dir / name
        found = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".png", ".bmp"))
        if not found:
            raise FileNotFoundError(f"no training images in {folder}")
        files += found
    return files


def face_frames(data_dir: Path, held_out: bool = False) -> list[np.ndarray]:
    """BGR frames of the talking-head clips: every FACE_EVERY-th for training, the ones
    half-way between for evaluation."""
    frames = []
    offset = FACE_EVERY // 2 if held_out else 0
    for clip in sorted((data_dir / "clips").glob("*.mp4")):
        cap = cv2.VideoCapture(str(clip))
        index = 0
        while True:
            ok, image = cap.read()
            if not ok:
                break
            if index % FACE_EVERY == offset:
                frames.append(image)
            index += 1
        cap.release()
    return frames


def read_bgr(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise OSError(f"{path}: not a readable picture")
    return np.asarray(image)


def load_training_y(
    data_dir: Path, scales: tuple[float, ...] = (1.0,)
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(natural, faces): every training image as float32 Y in 0..1 (the HR side).

    ``scales`` below 1 add MATLAB-downscaled copies of the natural images (FSRCNN's and
    VDSR's augmentation of the 291): the same scenes with their detail at other
    frequencies, which 291 pictures alone are too few to cover.
    """

    def luma(image: np.ndarray) -> np.ndarray:
        return (bgr_to_y(image) / 255.0).astype(np.float32)

    originals = [luma(read_bgr(path)) for path in image_files(data_dir)]
    natural = [
        image if scale == 1.0 else imresize(image, scale).astype(np.float32)
        for scale in scales
        for image in originals
    ]
    return natural, [luma(image) for image in face_frames(data_dir)]


class PairSampler:
    """Random (LR, HR) Y patch batches, augmented by flips and transposes."""

    def __init__(
        self,
        natural: list[np.ndarray],
        faces: list[np.ndarray],
        patch: int = 48,
        degradation: Degradation | None = None,
        seed: int = 0,
        face_share: float | None = None,
    ) -> None:
        """``face_share``: the share of patches cut from the faces; None: as many as
        their pixels (every pixel equally likely)."""
        if face_share is not None and not 0.0 <= face_share <= 1.0:
            raise ValueError(f"face share {face_share} is not within 0..1")
        natural, faces = (
            [im for im in group if min(im.shape) >= patch * SCALE] for group in (natural, faces)
        )
        self.images = natural + faces
        if not self.images:
            raise ValueError(f"no training image is {patch * SCALE} px or larger")
        weights = np.array([im.size for im in self.images], dtype=np.float64)
        if face_share is not None and natural and faces:
            weights[: len(natural)] *= (1.0 - face_share) / weights[: len(natural)].sum()
            weights[len(natural) :] *= face_share / weights[len(natural) :].sum()
        self.weights = weights / weights.sum()
        self.patch = patch
        self.degradation = degradation or Degradation()
        self.rng = np.random.default_rng(seed)

    def batch(self, size: int) -> tuple[np.ndarray, np.ndarray]:
        """(LR (N, 1, p, p), HR (N, 1, 2p, 2p)) float32 in 0..1."""
        lr = np.empty((size, 1, self.patch, self.patch), np.float32)
        hr = np.empty((size, 1, self.patch * SCALE, self.patch * SCALE), np.float32)
        for k in range(size):
            high = self._crop()
            hr[k, 0] = high
            lr[k, 0] = self._degrade(high)
        return lr, hr

    def _crop(self) -> np.ndarray:
        image = self.images[self.rng.choice(len(self.images), p=self.weights)]
        side = self.patch * SCALE
        y = int(self.rng.integers(0, image.shape[0] - side + 1))
        x = int(self.rng.integers(0, image.shape[1] - side + 1))
        crop = image[y : y + side, x : x + side]
        if self.rng.random() < 0.5:
            crop = crop[:, ::-1]
        if self.rng.random() < 0.5:
            crop = crop[::-1]
        if self.rng.random() < 0.5:
            crop = crop.T
        return np.ascontiguousarray(crop)

    def _degrade(self, high: np.ndarray) -> np.ndarray:
        d, rng = self.degradation, self.rng
        if rng.random() < d.clean_share:
            return to_uint8(imresize(high * 255.0, 1.0 / SCALE)) / 255.0
        sigma = float(rng.uniform(*d.blur_sigma))
        blurred = cv2.GaussianBlur(high * 255.0, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)
        low = imresize(blurred, 1.0 / SCALE)
        low += rng.normal(0.0, float(rng.uniform(*d.noise_sigma)), low.shape)
        quality = int(rng.integers(d.jpeg_quality[0], d.jpeg_quality[1] + 1))
        ok, encoded = cv2.imencode(".jpg", to_uint8(low), [cv2.IMWRITE_JPEG_QUALITY, quality])
        if not ok:
            raise RuntimeError("JPEG encoding failed")
        decoded = np.asarray(cv2.imdecode(encoded, cv2.IMREAD_GRAYSCALE), dtype=np.float32)
        return decoded / 255.0
