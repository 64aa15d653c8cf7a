"""``python -m tools.clips``: the codec's test set of public talking-head clips.

The manifest (``engines/codec/clips.toml``, docs/codec-clips.md) names, for every clip, a
video file in a public Git repository at a fixed commit, its SHA-256, a segment of at most
10 s and the person in it. ``build`` takes each file from a local mirror of its repository
(``<mirror>/<owner>+<name>/repo``, a bare Git directory as the session tool ``fetch``
leaves it; elsewhere ``git clone https://github.com/<owner>/<name> <mirror>/<owner>+<name>/repo``
gives the same layout, any clone that holds the commit will do), checks the hash and writes
``<out>/<split>/<name>.mp4``: the segment, cropped only where the manifest says (black
bars), scaled so that its longer side is at most 640 px (even sizes), H.264 (libx264
CRF 16, yuv420p) at the source's frame rate, no audio.

    python -m tools.clips check                 # the manifest's rules, no video needed
    python -m tools.clips build [--mirror DIR] [--out .cache/clips] [--only NAME ...]
    python -m tools.clips sheet [--out .cache/clips]   # contact.jpg: each clip's first frame
"""

from __future__ import annotations

import argparse
import hashlib
import io
import itertools
import os
import re
import subprocess
import sys
import tomllib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
MANIFEST = ROOT / "engines" / "codec" / "clips.toml"
MIRROR = Path("/work/.mirror")
OUT = ROOT / ".cache" / "clips"

MAX_SECONDS = 10.0
MAX_SIDE = 640
CRF = 16
SPLITS = ("tune", "test")
MIN_PERSONS = 20
# An independent evaluation draws its clips from these: none of their videos (nor copies
# of them) may be in this set.
FORBIDDEN_REPOS = frozenset(
    {
        "kwaivgi/liveportrait",
        "klingteam/liveportrait",
        "opentalker/sadtalker",
        "opentalker/video-retalking",
    }
)
FORBIDDEN_NAMES = ("liveportrait", "sadtalker", "video-retalking")

_NAME = re.compile(r"^[a-z0-9][a-z0-9-]*$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_COMMIT = re.compile(r"^[0-9a-f]{40}$")
_REPO = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")


class ClipError(Exception):
    """A clip that cannot be built: its source is missing or not what the manifest says."""


@dataclass(frozen=True)
class Clip:
    name: str
    person: str
    split: str
    repo: str
    commit: str
    path: str
    sha256: str
    start_s: float
    end_s: float
    licence: str
    notes: str
    # The source file as it is: width, height, frame rate, length (for the record).
    source_width: int
    source_height: int
    source_fps: float
    source_seconds: float
    crop: tuple[int, int, int, int] | None = None  # x, y, width, height in source pixels
    origin: str = ""  # where the repository's file came from (data set, stock site...)

    @property
    def output(self) -> Path:
        return Path(self.split) / f"{self.name}.mp4"


def load(path: Path = MANIFEST) -> list[Clip]:
    """The manifest's clips; raises ClipError on a missing or mistyped field."""
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ClipError(f"cannot read the manifest {path}: {exc}") from exc
    entries = data.get("clip")
    if not isinstance(entries, list):
        raise ClipError(f"{path}: no [[clip]] entries")
    return [_clip(entry, i) for i, entry in enumerate(entries)]


def _clip(entry: object, index: int) -> Clip:
    where = f"clip #{index + 1}"
    if not isinstance(entry, dict):
        raise ClipError(f"{where}: not a table")
    where = f"clip {entry.get('name', index + 1)!r}"

    def text(key: str, required: bool = True) -> str:
        value = entry.get(key, "" if not required else None)
        if not isinstance(value, str):
            raise ClipError(f"{where}: {key} must be a string")
        return value

    def number(key: str) -> float:
        value = entry.get(key)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ClipError(f"{where}: {key} must be a number")
        return float(value)

    def integer(key: str) -> int:
        value = entry.get(key)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ClipError(f"{where}: {key} must be an integer")
        return value

    crop = entry.get("crop")
    if crop is not None:
        if (
            not isinstance(crop, list)
            or len(crop) != 4
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in crop)
        ):
            raise ClipError(f"{where}: crop must be [x, y, width, height] in pixels")
        crop = (crop[0], crop[1], crop[2], crop[3])
    known = {f for f in Clip.__dataclass_fields__}
    extra = set(entry) - known
    if extra:
        raise ClipError(f"{where}: unknown field(s) {', '.join(sorted(extra))}")
    return Clip(
        name=text("name"),
        person=text("person"),
        split=text("split"),
        repo=text("repo"),
        commit=text("commit"),
        path=text("path"),
        sha256=text("sha256"),
        start_s=number("start_s"),
        end_s=number("end_s"),
        licence=text("licence"),
        notes=text("notes"),
        source_width=integer("source_width"),
        source_height=integer("source_height"),
        source_fps=number("source_fps"),
        source_seconds=number("source_seconds"),
        crop=crop,
        origin=text("origin", required=False),
    )


def forbidden(repo: str) -> bool:
    """A repository the independent evaluation uses, or a fork or mirror named after one."""
    lowered = repo.lower()
    return lowered in FORBIDDEN_REPOS or any(n in lowered.split("/")[-1] for n in FORBIDDEN_NAMES)


def problems(clips: Sequence[Clip], whole_set: bool = True) -> list[str]:
    """What breaks the manifest's rules (empty: none). ``whole_set``: the set's own rules
    too (enough persons, both splits); without it only each clip's and the split rule."""
    found: list[str] = []
    names: set[str] = set()
    split_of: dict[str, str] = {}
    for c in clips:
        where = f"{c.name!r}"
        if not _NAME.match(c.name):
            found.append(f"{where}: name must be lower-case letters, digits and '-'")
        if c.name in names:
            found.append(f"{where}: name used twice")
        names.add(c.name)
        if c.split not in SPLITS:
            found.append(f"{where}: split must be one of {SPLITS}, not {c.split!r}")
        if not c.person.strip():
            found.append(f"{where}: no person")
        elif split_of.setdefault(c.person, c.split) != c.split:
            found.append(f"{where}: person {c.person!r} is in both splits")
        if not _REPO.match(c.repo):
            found.append(f"{where}: repo must be owner/name, not {c.repo!r}")
        if forbidden(c.repo):
            found.append(f"{where}: {c.repo} is reserved for the independent evaluation")
        if not _COMMIT.match(c.commit):
            found.append(f"{where}: commit must be 40 lower-case hex digits")
        if not c.path or c.path.startswith("/") or ".." in Path(c.path).parts:
            found.append(f"{where}: path must be relative inside the repository")
        if not _SHA256.match(c.sha256):
            found.append(f"{where}: sha256 must be 64 lower-case hex digits")
        if not (0.0 <= c.start_s < c.end_s <= c.start_s + MAX_SECONDS):
            found.append(f"{where}: need 0 <= start_s < end_s <= start_s + {MAX_SECONDS:g}")
        if not c.licence.strip():
            found.append(f"{where}: no licence")
        if min(c.source_width, c.source_height) < 2 or c.source_fps <= 0:
            found.append(f"{where}: source_width, source_height and source_fps must be > 0")
        if c.end_s > c.source_seconds + 0.05:
            found.append(f"{where}: end_s is past the source's {c.source_seconds:g} s")
        if c.crop is not None and (
            min(c.crop[:2]) < 0
            or min(c.crop[2:]) < 2
            or c.crop[0] + c.crop[2] > c.source_width
            or c.crop[1] + c.crop[3] > c.source_height
        ):
            found.append(f"{where}: crop {c.crop} is empty or outside the picture")
    if not whole_set:
        return found
    persons = set(split_of)
    if len(persons) < MIN_PERSONS:
        found.append(f"only {len(persons)} persons; the set needs at least {MIN_PERSONS}")
    for split in SPLITS:
        if not any(c.split == split for c in clips):
            found.append(f"the {split} split is empty")
    return found


# -- sources ---------------------------------------------------------------------------


def git_dirs(mirror: Path, repo: str) -> list[Path]:
    """Where a mirror may hold ``repo``: the fetch tool's layout first, then a plain clone."""
    base = mirror / repo.replace("/", "+")
    return [base / "repo", base]


def read_source(clip: Clip, mirror: Path) -> bytes:
    """The file's bytes at the manifest's commit, checked against its SHA-256."""
    candidates = [d for d in git_dirs(mirror, clip.repo) if d.is_dir()]
    if not candidates:
        looked = " or ".join(str(d) for d in git_dirs(mirror, clip.repo))
        raise ClipError(
            f"{clip.name}: source missing: no mirror of {clip.repo} at {looked}; "
            f"clone it there (git clone https://github.com/{clip.repo} "
            f"{git_dirs(mirror, clip.repo)[0]}) so that it holds commit {clip.commit}"
        )
    data: bytes | None = None
    errors: list[str] = []
    for directory in candidates:
        try:
            done = subprocess.run(
                ["git", "-C", str(directory), "cat-file", "blob", f"{clip.commit}:{clip.path}"],
                capture_output=True,
                check=False,
            )
        except OSError as exc:
            raise ClipError(f"{clip.name}: cannot run git: {exc}") from exc
        if done.returncode == 0:
            data = done.stdout
            break
        errors.append(f"{directory}: {done.stderr.decode(errors='replace').strip()}")
    if data is None:
        raise ClipError(
            f"{clip.name}: source missing: {clip.path} at {clip.commit[:12]} is not in the "
            f"mirror of {clip.repo} ({'; '.join(errors)})"
        )
    digest = hashlib.sha256(data).hexdigest()
    if digest != clip.sha256:
        hint = ""
        if data.startswith(b"version https://git-lfs"):
            hint = " (the mirror holds a Git LFS pointer, not the video)"
        raise ClipError(
            f"{clip.name}: sha256 mismatch for {clip.repo}:{clip.path}: the manifest says "
            f"{clip.sha256}, the mirror's file is {digest}{hint}; refusing to use it"
        )
    return data


# -- conversion ------------------------------------------------------------------------


def output_size(width: int, height: int) -> tuple[int, int]:
    """Even sizes with the longer side at most MAX_SIDE, the aspect ratio kept."""
    scale = min(1.0, MAX_SIDE / max(width, height))
    if scale >= 1.0:
        return width - width % 2, height - height % 2  # no resampling: drop an odd line
    return max(2, round(width * scale / 2) * 2), max(2, round(height * scale / 2) * 2)


# Nominal rates a measured one snaps to (within 2 %): NTSC's 1000/1001 ones kept exact.
NOMINAL_RATES = tuple(
    Fraction(r)
    for r in ("10", "12000/1001", "12", "15", "24000/1001", "24", "25", "30000/1001", "30",
              "50", "60000/1001", "60")
)  # fmt: skip


def segment_rate(times: Sequence[float], stated: Fraction | None) -> Fraction:
    """The frame rate of a segment from its frames' timestamps: frames over time span,
    snapped to a nominal rate within 2 % (a phone's or a webcam's variable-rate file is
    written at the rate it ran in the segment); the stream's stated average where the
    segment has too few frames to measure."""
    stamps = np.unique(np.asarray(times, dtype=np.float64))
    if len(stamps) >= 3 and stamps[-1] > stamps[0]:
        measured = (len(stamps) - 1) / float(stamps[-1] - stamps[0])
    elif stated:
        measured = float(stated)
    else:
        raise ClipError("the source states no frame rate and has too few frames to measure one")
    best = min(NOMINAL_RATES, key=lambda r: abs(float(r) - measured))
    if abs(float(best) - measured) <= 0.02 * measured:
        return best
    return Fraction(measured).limit_denominator(1001)


def timestamps(data: bytes, clip: Clip) -> list[float]:
    """Presentation times (s) of the video packets in [start_s, end_s), from the container
    alone (nothing decoded)."""
    with av.open(io.BytesIO(data), mode="r") as container:
        if not container.streams.video:
            raise ClipError(f"{clip.name}: the source has no video stream")
        stream = container.streams.video[0]
        base = stream.time_base
        times = [
            float(packet.pts * base)
            for packet in container.demux(stream)
            if packet.pts is not None and base is not None and packet.size
        ]
    if times:
        start = float(stream.start_time * base) if stream.start_time and base else 0.0
        times = [t - start for t in times]
    return sorted(t for t in times if clip.start_s - 1e-3 <= t < clip.end_s - 1e-3)


def frames(data: bytes, clip: Clip) -> tuple[Fraction | None, Iterator[tuple[float, np.ndarray]]]:
    """The stream's stated average rate, and its (time, RGB picture) frames in
    [start_s, end_s)."""
    container = av.open(io.BytesIO(data), mode="r")
    if not container.streams.video:
        container.close()
        raise ClipError(f"{clip.name}: the source has no video stream")
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    stream.codec_context.thread_count = 2
    stated = stream.average_rate or stream.guessed_rate or stream.base_rate
    rate = Fraction(stated) if stated else None
    base = stream.time_base
    start = float(stream.start_time * base) if stream.start_time and base else 0.0

    def generate() -> Iterator[tuple[float, np.ndarray]]:
        try:
            for index, frame in enumerate(container.decode(stream)):
                # Time from the stream's clock (from its first frame on), else count / rate.
                if frame.time is not None:
                    t = float(frame.time) - start
                elif rate:
                    t = index / float(rate)
                else:
                    raise ClipError(f"{clip.name}: frames without time and no frame rate")
                if t < clip.start_s - 1e-3:
                    continue
                if t >= clip.end_s - 1e-3:
                    break
                yield t, frame.to_ndarray(format="rgb24")
        finally:
            container.close()

    return rate, generate()


def convert(picture: np.ndarray, clip: Clip) -> np.ndarray:
    """Crop (the manifest's), then scale to ``output_size`` (or drop an odd line)."""
    if clip.crop is not None:
        x, y, w, h = clip.crop
        if x + w > picture.shape[1] or y + h > picture.shape[0]:
            raise ClipError(
                f"{clip.name}: crop {clip.crop} outside the {picture.shape[1]}x"
                f"{picture.shape[0]} picture"
            )
        picture = picture[y : y + h, x : x + w]
    height, width = picture.shape[:2]
    out_w, out_h = output_size(width, height)
    if max(width, height) <= MAX_SIDE:  # no resampling, an odd last line or column dropped
        return np.ascontiguousarray(picture[:out_h, :out_w])
    return cv2.resize(picture, (out_w, out_h), interpolation=cv2.INTER_AREA)


def build_one(clip: Clip, mirror: Path, out: Path) -> tuple[int, tuple[int, int], Fraction]:
    """Write one clip; returns its frame count, size and frame rate."""
    data = read_source(clip, mirror)
    try:
        return _encode(data, clip, out)
    except av.FFmpegError as exc:
        raise ClipError(f"{clip.name}: cannot convert {clip.repo}:{clip.path}: {exc}") from exc


def _encode(data: bytes, clip: Clip, out: Path) -> tuple[int, tuple[int, int], Fraction]:
    stated, source = frames(data, clip)
    rate = segment_rate(timestamps(data, clip), stated)
    pictures = (convert(picture, clip) for _, picture in source)
    first = next(pictures, None)
    if first is None:
        raise ClipError(f"{clip.name}: no frames between {clip.start_s:g} s and {clip.end_s:g} s")
    size = (first.shape[1], first.shape[0])
    target = out / clip.output
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.part")
    count = 0
    try:
        with av.open(str(partial), mode="w", format="mp4") as container:
            stream = container.add_stream("libx264", rate=rate)
            stream.width, stream.height = size
            stream.pix_fmt = "yuv420p"
            # One thread: the same bytes on every run, and the machine's cores stay free.
            stream.codec_context.thread_count = 1
            stream.codec_context.options = {"crf": str(CRF), "preset": "medium"}
            for picture in itertools.chain([first], pictures):
                frame = av.VideoFrame.from_ndarray(picture, format="rgb24")
                frame.pts = count
                frame.time_base = 1 / rate
                for packet in stream.encode(frame):
                    container.mux(packet)
                count += 1
            for packet in stream.encode():
                container.mux(packet)
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    return count, size, rate


def build(
    clips: Sequence[Clip], mirror: Path, out: Path, say: Callable[[str], None] = print
) -> list[tuple[Clip, ClipError]]:
    """Build every clip; returns those that failed with why (the others are written)."""
    failed: list[tuple[Clip, ClipError]] = []
    for i, clip in enumerate(clips, 1):
        head = f"[{i}/{len(clips)}] {clip.split}/{clip.name}"
        try:
            count, size, rate = build_one(clip, mirror, out)
        except ClipError as exc:
            say(f"{head}: FAILED: {exc}")
            failed.append((clip, exc))
            continue
        say(
            f"{head}: {clip.repo}:{clip.path} [{clip.start_s:g}-{clip.end_s:g} s] -> "
            f"{size[0]}x{size[1]} {float(rate):.3f} fps, {count} frames"
        )
    return failed


# -- contact sheet ---------------------------------------------------------------------


def contact_sheet(clips: Sequence[Clip], out: Path, columns: int = 6, tile: int = 240) -> Path:
    """``<out>/contact.jpg``: every built clip's first frame, labelled with its name."""
    tiles: list[np.ndarray] = []
    for clip in clips:
        canvas = np.zeros((tile + 22, tile, 3), np.uint8)
        capture = cv2.VideoCapture(str(out / clip.output))
        ok, bgr = capture.read()
        frames_n = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        capture.release()
        if ok:
            h, w = bgr.shape[:2]
            s = tile / max(h, w)
            size = (max(1, round(w * s)), max(1, round(h * s)))
            small = cv2.resize(bgr, size, interpolation=cv2.INTER_AREA)
            y, x = (tile - small.shape[0]) // 2, (tile - small.shape[1]) // 2
            canvas[y : y + small.shape[0], x : x + small.shape[1]] = small
            label = f"{clip.name} {w}x{h} {frames_n}f"
        else:
            label = f"{clip.name} MISSING"
        cv2.putText(canvas, label[:38], (3, tile + 15), cv2.FONT_HERSHEY_SIMPLEX, 0.4,
                    (255, 255, 255), 1, cv2.LINE_AA)  # fmt: skip
        tiles.append(canvas)
    while len(tiles) % columns:
        tiles.append(np.zeros_like(tiles[0]))
    rows = [np.hstack(tiles[i : i + columns]) for i in range(0, len(tiles), columns)]
    path = out / "contact.jpg"
    cv2.imwrite(str(path), np.vstack(rows), [cv2.IMWRITE_JPEG_QUALITY, 85])
    return path


# -- command line ----------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.clips", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--manifest", type=Path, default=MANIFEST)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("check", help="check the manifest's rules (no video needed)")
    b = sub.add_parser("build", help="write the normalised clips")
    b.add_argument("--mirror", type=Path, default=MIRROR, help=f"default {MIRROR}")
    b.add_argument("--out", type=Path, default=OUT, help="default .cache/clips")
    b.add_argument("--only", nargs="+", metavar="NAME", help="build only these clips")
    s = sub.add_parser("sheet", help="write <out>/contact.jpg from the built clips")
    s.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)

    try:
        clips = load(args.manifest)
    except ClipError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    # Building a part (or a small manifest of one's own) needs only each clip to be right.
    found = problems(clips, whole_set=args.command == "check")
    if found:
        for line in found:
            print(f"manifest: {line}", file=sys.stderr)
        return 2
    if args.command == "check":
        persons = {s: len({c.person for c in clips if c.split == s}) for s in SPLITS}
        print(
            f"{args.manifest}: {len(clips)} clips, "
            + ", ".join(f"{s} {persons[s]} persons" for s in SPLITS)
        )
        return 0
    if args.command == "sheet":
        print(contact_sheet(clips, args.out))
        return 0
    chosen = clips
    if args.only:
        unknown = sorted(set(args.only) - {c.name for c in clips})
        if unknown:
            print(f"error: no clip named {', '.join(unknown)}", file=sys.stderr)
            return 2
        chosen = [c for c in clips if c.name in args.only]
    failed = build(chosen, args.mirror, args.out)
    if failed:
        print(f"error: {len(failed)} of {len(chosen)} clips not built:", file=sys.stderr)
        for _, why in failed:
            print(f"  {why}", file=sys.stderr)
        return 1
    print(f"{len(chosen)} clips in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
