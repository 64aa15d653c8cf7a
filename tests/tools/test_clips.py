"""tools/clips.py: the codec's talking-head test set (engines/codec/clips.toml).

The manifest's rules are checked without any video; the build is checked end to end on a
synthetic "mirror": a Git repository made here that holds a generated MP4.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from tools import clips
from tools.clips import Clip, ClipError

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")


# -- the manifest ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def manifest() -> list[Clip]:
    return clips.load(clips.MANIFEST)


def test_the_manifest_follows_its_rules(manifest):
    assert clips.problems(manifest) == []


def test_names_are_unique_and_persons_stay_in_one_split(manifest):
    names = [c.name for c in manifest]
    assert len(names) == len(set(names))
    split_of: dict[str, set[str]] = {}
    for c in manifest:
        split_of.setdefault(c.person, set()).add(c.split)
    assert all(len(splits) == 1 for splits in split_of.values()), split_of
    assert len(split_of) >= 20
    persons = {s: {p for p, splits in split_of.items() if s in splits} for s in clips.SPLITS}
    assert persons["tune"] and persons["test"]
    # Roughly 40/60 by person.
    assert 0.3 <= len(persons["tune"]) / len(split_of) <= 0.5


def test_every_clip_names_a_checkable_source_and_a_short_segment(manifest):
    for c in manifest:
        assert re.fullmatch(r"[0-9a-f]{64}", c.sha256), c.name
        assert re.fullmatch(r"[0-9a-f]{40}", c.commit), c.name
        assert 0 <= c.start_s < c.end_s <= c.start_s + 10, c.name
        assert c.end_s <= c.source_seconds + 0.05, c.name
        assert c.licence.strip() and c.notes.strip(), c.name
        assert c.split in ("tune", "test"), c.name


def test_no_clip_comes_from_the_independent_evaluations_repositories(manifest):
    reserved = ("liveportrait", "sadtalker", "video-retalking")
    for c in manifest:
        assert not any(r in c.repo.lower() for r in reserved), c.name
        assert not clips.forbidden(c.repo), c.name
    assert clips.forbidden("KwaiVGI/LivePortrait")
    assert clips.forbidden("someone/LivePortrait-fork")
    assert clips.forbidden("OpenTalker/SadTalker")


def test_the_rules_catch_a_broken_manifest(manifest):
    good = manifest[0]
    other = next(c for c in manifest if c.split != good.split)
    broken = [
        good,
        Clip(**{**vars(good), "name": good.name}),  # the same name again
        Clip(**{**vars(other), "person": good.person}),  # a person in both splits
        Clip(**{**vars(other), "name": "x1", "sha256": "abc"}),
        Clip(**{**vars(other), "name": "x2", "start_s": 0.0, "end_s": 10.5}),
        Clip(**{**vars(other), "name": "x3", "licence": " "}),
        Clip(**{**vars(other), "name": "x4", "repo": "KlingTeam/LivePortrait"}),
    ]
    found = "\n".join(clips.problems(broken))
    for expected in (
        "name used twice",
        "in both splits",
        "sha256 must be",
        "end_s <= start_s + 10",
        "no licence",
        "reserved for the independent evaluation",
        "persons; the set needs at least 20",
    ):
        assert expected in found


def test_a_mistyped_field_is_refused(tmp_path):
    path = tmp_path / "m.toml"
    path.write_text('[[clip]]\nname = "a"\nstart_s = "zero"\n')
    with pytest.raises(ClipError, match="must be"):
        clips.load(path)


def test_output_sizes_are_even_with_the_longer_side_at_most_640():
    assert clips.output_size(1920, 1080) == (640, 360)
    assert clips.output_size(1080, 1920) == (360, 640)
    assert clips.output_size(700, 300) == (640, 274)
    assert clips.output_size(320, 239) == (320, 238)  # small enough: only the odd line goes
    assert clips.output_size(410, 412) == (410, 412)


def test_a_segments_rate_is_measured_and_snapped_to_a_nominal_one():
    assert clips.segment_rate([i / 25 for i in range(50)], None) == 25
    assert clips.segment_rate([i * 1001 / 30000 for i in range(50)], None) == Fraction(30000, 1001)
    # A webcam's uneven gaps (mostly 64 ms, some 80 ms: about 15 fps) are written at 15.
    webcam = np.cumsum([0.0] + [0.064] * 5 * 10 + [0.080] * 10)
    assert clips.segment_rate(list(webcam), Fraction(15)) == 15
    assert clips.segment_rate([0.0], Fraction(12)) == 12


# -- the build, end to end -------------------------------------------------------------

SIZE = (96, 72)
FPS = 25
SECONDS = 2.0


def _video(path: Path) -> None:
    """A 2 s, 25 fps MP4 whose every frame shows its own index (for the segment check)."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height = SIZE
        stream.pix_fmt = "yuv420p"
        stream.codec_context.options = {"crf": "10"}
        for i in range(int(SECONDS * FPS)):
            picture = np.full((SIZE[1], SIZE[0], 3), 4 * i, np.uint8)
            picture[:8] = 0  # a black bar on top, for the crop
            frame = av.VideoFrame.from_ndarray(picture, format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def _git(*args: str, cwd: Path) -> str:
    env = {**os.environ, "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}
    done = subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.org", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


@pytest.fixture
def mirror(tmp_path) -> tuple[Path, str, str]:
    """A mirror as the fetch tool leaves one (a bare repository at <owner>+<name>/repo) of
    a repository holding assets/talk.mp4; returns the mirror, the commit and the hash."""
    work = tmp_path / "work"
    (work / "assets").mkdir(parents=True)
    _video(work / "assets" / "talk.mp4")
    _git("init", "-q", ".", cwd=work)
    _git("add", ".", cwd=work)
    _git("commit", "-q", "-m", "a clip", cwd=work)
    commit = _git("rev-parse", "HEAD", cwd=work)
    root = tmp_path / "mirror"
    root.mkdir()
    _git("clone", "-q", "--bare", str(work), str(root / "acme+talks" / "repo"), cwd=tmp_path)
    # A later commit that changes the file: the build must still take the manifest's.
    (work / "assets" / "talk.mp4").write_bytes(b"not a video")
    _git("commit", "-q", "-am", "replaced", cwd=work)
    _git("push", "-q", str(root / "acme+talks" / "repo"), "HEAD:refs/heads/master", cwd=work)
    digest = hashlib.sha256(_git_blob(work, commit)).hexdigest()
    return root, commit, digest


def _git_blob(work: Path, commit: str) -> bytes:
    return subprocess.run(
        ["git", "cat-file", "blob", f"{commit}:assets/talk.mp4"],
        cwd=work,
        capture_output=True,
        check=True,
    ).stdout


def _clip(commit: str, sha256: str, **changes: object) -> Clip:
    fields: dict[str, object] = {
        "name": "synthetic-talk",
        "person": "synthetic",
        "split": "test",
        "repo": "acme/talks",
        "commit": commit,
        "path": "assets/talk.mp4",
        "sha256": sha256,
        "start_s": 0.4,
        "end_s": 1.6,
        "licence": "made by the test",
        "notes": "flat frames, a black bar on top",
        "source_width": SIZE[0],
        "source_height": SIZE[1],
        "source_fps": FPS,
        "source_seconds": SECONDS,
        "crop": (0, 8, 96, 64),
    }
    fields.update(changes)
    return Clip(**fields)  # type: ignore[arg-type]


def _manifest(path: Path, clip: Clip) -> Path:
    lines = ["[[clip]]"]
    for key, value in vars(clip).items():
        if value is None:
            continue
        if isinstance(value, str):
            lines.append(f'{key} = "{value}"')
        elif isinstance(value, tuple):
            lines.append(f"{key} = [{', '.join(str(v) for v in value)}]")
        else:
            lines.append(f"{key} = {value}")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_build_writes_the_segment_cropped_at_the_sources_rate(mirror, tmp_path, capsys):
    root, commit, digest = mirror
    manifest = _manifest(tmp_path / "m.toml", _clip(commit, digest))
    out = tmp_path / "out"
    args = ["--manifest", str(manifest), "build", "--mirror", str(root), "--out", str(out)]
    assert clips.main(args) == 0
    assert "[1/1] test/synthetic-talk" in capsys.readouterr().out

    written = out / "test" / "synthetic-talk.mp4"
    capture = cv2.VideoCapture(str(written))
    assert capture.isOpened()
    assert capture.get(cv2.CAP_PROP_FPS) == pytest.approx(FPS)
    pictures = []
    while True:
        ok, bgr = capture.read()
        if not ok:
            break
        pictures.append(bgr)
    capture.release()
    assert len(pictures) == 30  # frames 10..39: [0.4 s, 1.6 s) at 25 fps
    assert pictures[0].shape == (64, 96, 3)  # the bar cropped off
    levels = [float(p.mean()) for p in pictures]
    assert levels[0] == pytest.approx(40, abs=3) and levels[-1] == pytest.approx(156, abs=3)
    with av.open(str(written)) as container:
        assert not container.streams.audio
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert stream.codec_context.pix_fmt == "yuv420p"


def test_a_wrong_sha256_is_refused_with_a_clear_error(mirror, tmp_path, capsys):
    root, commit, digest = mirror
    wrong = "0" * 64
    with pytest.raises(ClipError, match=r"sha256 mismatch.*refusing to use it"):
        clips.build_one(_clip(commit, wrong), root, tmp_path / "out")
    assert not (tmp_path / "out" / "test" / "synthetic-talk.mp4").exists()

    manifest = _manifest(tmp_path / "m.toml", _clip(commit, wrong))
    args = ["--manifest", str(manifest), "build", "--mirror", str(root), "--out", str(tmp_path)]
    assert clips.main(args) == 1
    err = capsys.readouterr().err
    assert "sha256 mismatch" in err and digest in err


def test_a_missing_source_is_named(mirror, tmp_path):
    root, commit, digest = mirror
    with pytest.raises(ClipError, match="source missing: no mirror of acme/other"):
        clips.build_one(_clip(commit, digest, repo="acme/other"), root, tmp_path)
    with pytest.raises(ClipError, match=r"source missing: assets/gone\.mp4"):
        clips.build_one(_clip(commit, digest, path="assets/gone.mp4"), root, tmp_path)


def test_a_plain_clone_serves_as_a_mirror_too(mirror, tmp_path):
    root, commit, digest = mirror
    plain = tmp_path / "plain"
    _git("clone", "-q", str(root / "acme+talks" / "repo"), str(plain / "acme+talks"), cwd=tmp_path)
    count, size, rate = clips.build_one(_clip(commit, digest, crop=None), plain, tmp_path / "o")
    assert (count, size, rate) == (30, SIZE, FPS)
