"""Hostile datagrams against ``appliance receive``, and what each costs the receiver.

``.venv/bin/python -m tools.hostile.codec`` starts the real receiver on a loopback port
once per attack, gives it a valid stream (made here by the project's own ``Sender`` from
a synthetic face: no clip, no network), waits until it is idle, then sends the attack
followed by the stream's next frames and a probe: a keypoint packet naming a reference
the receiver does not hold, which it must answer with a REQUEST. One line per attack:
whether the receiver is still up, its peak RSS over its idle RSS (VmHWM after
``clear_refs``), how long the probe took to be answered after the attack was sent, and
the attack's wall time. Target: every attack at most 64 MB over idle, receiver up.

The builders (``valid_stream``, ``forged_object``, the bombs) are also the tests' source
of hostile input (tests/codec/test_hostile.py, test_fuzz.py).
"""

from __future__ import annotations

import argparse
import math
import os
import random
import re
import select
import signal
import socket
import struct
import subprocess
import sys
import time
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np

from appliance.codec.bitstream import (
    VERSION,
    BitstreamError,
    Codec,
    Fragment,
    Keypoints,
    Packet,
    PacketType,
    Reference,
    RequestKind,
    pack,
    parse,
)
from appliance.codec.headers import PNG_SIGNATURE

ROOT = Path(__file__).resolve().parents[2]
STREAM = 0x0C0D
WIDTH, HEIGHT = 320, 240
PROBE_REF = 201  # a reference id the stream never uses: the probe names it
MAX_DATAGRAM = 65507  # UDP over IPv4
TARGET_MB = 64.0
FRAMES = 12  # of the valid call: 5 before the attack, 7 after
# Keypoint packets with valid CRCs and random sequence numbers break the call's chain
# (nothing authenticates a sender): it resumes at the sender's next intra, which this
# tool's sender does not send on request. Only "up and answering" is asked of it.
FORGED_PACKETS = "forged packets (valid CRC, random payload)"
LENGTH = struct.Struct(">H")  # corpus and `appliance codec encode` framing


# ---- a valid stream ----------------------------------------------------------------------


def face_landmarks(index: int, width: int = WIDTH, height: int = HEIGHT) -> np.ndarray:
    """(468, 3) px: the canonical face filling 60% of the frame's height, swaying a little
    (what a tracker would give; the codec only needs plausible points)."""
    from appliance.vision.pose import canonical_face

    face = canonical_face()
    points = face * (0.6 * height / float(np.ptp(face[:, 1])))
    points[:, 0] += width / 2 + 2.0 * math.sin(index / 4)
    points[:, 1] += height / 2 + 1.5 * math.cos(index / 5)
    return points


def face_frame(width: int = WIDTH, height: int = HEIGHT) -> np.ndarray:
    """A textured BGR frame (a flat one would code to nothing)."""
    rng = np.random.default_rng(7)
    ramp = np.linspace(40, 210, width, dtype=np.float32)[None, :, None]
    noise = rng.normal(0, 12, (height, width, 3)).astype(np.float32)
    return np.clip(ramp + noise, 0, 255).astype(np.uint8)


def valid_stream(
    frames: int,
    width: int = WIDTH,
    height: int = HEIGHT,
    codec: Codec = Codec.AV1,
    stream: int = STREAM,
) -> list[list[bytes]]:
    """The datagrams of ``frames`` frames, per frame (frame 0: the reference first)."""
    from appliance.codec.session import CodecSettings, Sender

    settings = CodecSettings(closed_loop=False, reference_codec=codec)
    sender = Sender(width, height, 30.0, settings, stream=stream)
    picture = face_frame(width, height)
    return [sender.send(picture, face_landmarks(i, width, height), i) for i in range(frames)]


# ---- hostile input -----------------------------------------------------------------------


def forged_object(
    kind: PacketType,
    object_id: int,
    body: bytes,
    stream: int = STREAM,
    chunk: int = 1177,
    first_seq: int = 40_000,
) -> list[bytes]:
    """``body`` as CRC-valid fragments of up to ``chunk`` bytes (an attacker's datagrams
    need not keep to the MTU: up to 255 fragments of 64 KB)."""
    count = -(-len(body) // chunk)
    if count > 255:
        raise ValueError(f"{len(body)} bytes need {count} > 255 fragments of {chunk}")
    size = -(-len(body) // count)
    crc = zlib.crc32(body)
    out = []
    for index in range(count):
        piece = body[index * size : (index + 1) * size]
        fragment = Fragment(object_id, index, count, len(body), crc, piece)
        out.append(pack(Packet(kind, stream, (first_seq + index) % 65536, 0, fragment)))
    return out


def forged_reference(
    image: bytes,
    codec: Codec,
    width: int,
    height: int,
    ref_id: int = 0,
    stream: int = STREAM,
    keypoints: bytes = b"",
) -> list[bytes]:
    """A reference object around any picture, with any declared size."""
    body = Reference(ref_id, codec, width, height, 1, image, keypoints).to_body()
    chunk = max(1177, -(-len(body) // 255))
    return forged_object(PacketType.REFERENCE, ref_id, body, stream, chunk)


def keypoints(ref_id: int, seq: int, coded: bytes, intra: bool = True) -> bytes:
    kind = PacketType.KEYPOINTS_INTRA if intra else PacketType.KEYPOINTS_PREDICTED
    return pack(Packet(kind, STREAM, seq, 0, Keypoints(ref_id, coded)))


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bomb(width: int = 32768, height: int = 32000, rows: int | None = None) -> bytes:
    """A grey PNG of ``width`` x ``height`` whose pixels are all 0: 1 GB deflates to about
    1 MB. ``rows``: only that many rows of data (a truncated bomb: the decoder allocates
    the whole picture before it finds the data short; a few KB)."""
    head = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit grey
    squeeze = zlib.compressobj(9)
    row = bytes(width + 1)  # filter byte + pixels
    parts = [squeeze.compress(row) for _ in range(height if rows is None else rows)]
    parts.append(squeeze.flush())
    data = b"".join(parts)
    return (
        PNG_SIGNATURE
        + _png_chunk(b"IHDR", head)
        + _png_chunk(b"IDAT", data)
        + (_png_chunk(b"IEND", b""))
    )


def webp_bomb(width: int = 16383, height: int = 16383) -> bytes:
    """A lossless WebP of ``width`` x ``height`` in 30 bytes: every prefix code has one
    symbol, so each pixel costs no bits and the decoder fills a picture of 1 GB."""
    bits = [(0x2F, 8), (width - 1, 14), (height - 1, 14), (0, 1), (0, 3)]  # header
    bits += [(0, 1), (0, 1), (0, 1)]  # no transform, no colour cache, no meta codes
    for symbol in (0, 0, 0, 255, 0):  # green, red, blue, alpha, distance
        wide = symbol > 1
        bits += [(1, 1), (0, 1), (int(wide), 1), (symbol, 8 if wide else 1)]
    value = position = 0
    for field, size in bits:  # VP8L is least significant bit first
        value |= field << position
        position += size
    data = value.to_bytes(-(-position // 8) + 4, "little")  # spare zero bytes to read
    chunk = b"VP8L" + struct.pack("<I", len(data)) + data + b"\0" * (len(data) & 1)
    return b"RIFF" + struct.pack("<I", 4 + len(chunk)) + b"WEBP" + chunk


def jpeg_bomb(width: int = 30000, height: int = 30000) -> bytes:
    """A JPEG frame header of ``width`` x ``height`` and no data to speak of."""
    sof = struct.pack(">BHHB", 8, height, width, 3) + b"\x01\x11\x00\x02\x11\x00\x03\x11\x00"
    return b"\xff\xd8\xff\xc0" + struct.pack(">H", 2 + len(sof)) + sof + b"\xff\xd9"


def stream_key_bomb(width: int = 1920, height: int = 1088) -> bytes:
    """A real AV1 stream key frame of ``width`` x ``height`` (flat grey: a few hundred
    bytes), to be sent as a key that claims a small stream."""
    import numpy as np

    from appliance.codec.lowres import LowResEncoder

    encoder = LowResEncoder((width, height), 63)
    try:
        return encoder.encode(np.full((height, width, 3), 128, np.uint8)).data
    finally:
        encoder.close()


def forged_stream_key(image: bytes, frame: tuple[int, int], low: tuple[int, int]) -> list[bytes]:
    """A stream key object (image codec 6) claiming a ``low`` stream of ``frame``."""
    from appliance.codec.hybrid import pack_stream_key

    return forged_reference(image, Codec.AV1_STREAM, *frame, ref_id=11,
                            keypoints=pack_stream_key(0, low))  # fmt: skip


def fragment_flood(big: int = 200, bounded: int = 254) -> list[bytes]:
    """Fragments of 32 distinct objects that never complete: first 64 KB ones of
    16 MB objects (what a receiver without an object bound holds: 16 x 13 MB), then
    objects as large as the receiver accepts, each one fragment short."""
    from appliance.codec.bitstream import MAX_OBJECT

    out = []
    for length, chunk, fragments in ((255 * 65000, 65000, big), (MAX_OBJECT, 0, bounded)):
        size = chunk or -(-length // 255)
        for key in range(32):
            kind = PacketType.REFERENCE if key % 2 else PacketType.REFRESH_RESIDUAL
            for index in range(fragments):
                start = index * size
                piece = bytes(min(size, length - start))
                fragment = Fragment(key // 2 + 100, index, 255, length, 0x1234_5678, piece)
                out.append(pack(Packet(kind, STREAM, index, 0, fragment)))
    return out


def garbage(count: int = 20_000, seed: int = 1, crc_valid: bool = False) -> list[bytes]:
    """Random datagrams, or (``crc_valid``) valid headers of every type around random
    payloads."""
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        payload = rng.randbytes(rng.randrange(0, 1400))
        if not crc_valid:
            out.append(payload)
            continue
        kind = rng.choice([1, 2, 3, 4, 5, rng.randrange(16)])
        head = struct.pack(">BHHH", VERSION << 4 | kind, STREAM, rng.randrange(65536), 0)
        out.append(head + struct.pack(">I", zlib.crc32(payload, zlib.crc32(head))) + payload)
    return out


def oversized_keypoints(count: int = 300) -> list[bytes]:
    """Keypoint packets of 64 KB (a sender's are under 100 bytes), all waiting in vain."""
    return [keypoints(PROBE_REF - 1, 1000 + 2 * i, bytes(60_000)) for i in range(count)]


def attacks(stream: list[list[bytes]]) -> dict[str, list[bytes]]:
    """Name -> datagrams, each followed by the stream's next real frames."""
    undecodable = b"\x89PNG not a picture"
    return {
        "forged reference (64x64, undecodable)": forged_reference(undecodable, Codec.PNG, 64, 64),
        "PNG bomb 32768x32000 (1 MB)": forged_reference(png_bomb(), Codec.PNG, 32768, 32000),
        "WebP bomb 16383x16383 (lossless)": forged_reference(
            webp_bomb(), Codec.WEBP, 16383, 16383, ref_id=9
        ),
        "WebP bomb at the stream's size": forged_reference(webp_bomb(), Codec.WEBP, WIDTH, HEIGHT),
        "JPEG bomb 30000x30000": forged_reference(jpeg_bomb(), Codec.JPEG, 30000, 30000),
        "stream key of 1920x1088 claiming 48x36": forged_stream_key(
            stream_key_bomb(), (WIDTH, HEIGHT), (48, 36)
        ),
        "fragment flood": fragment_flood(),
        "oversized keypoint packets": oversized_keypoints(),
        "random garbage": garbage(),
        FORGED_PACKETS: garbage(crc_valid=True),
    }


def framed(datagrams: list[bytes]) -> bytes:
    """Datagrams as one corpus file: each after its length (u16 big-endian)."""
    return b"".join(LENGTH.pack(len(d)) + d for d in datagrams)


def corpus_inputs() -> dict[str, list[bytes]]:
    """The inputs kept in tests/corpus/codec (small: truncated bombs still allocate)."""
    width, height = 96, 72
    calls = valid_stream(8, width, height, Codec.WEBP)
    before, after = [d for f in calls[:5] for d in f], [d for f in calls[5:] for d in f]
    undecodable = b"\x89PNG not a picture"
    attacks = {
        "forged-reference": forged_reference(undecodable, Codec.PNG, 64, 64),
        "png-bomb": forged_reference(png_bomb(rows=64), Codec.PNG, 32768, 32000),
        "png-bomb-at-stream-size": forged_reference(png_bomb(rows=64), Codec.PNG, width, height),
        "webp-bomb": forged_reference(webp_bomb(), Codec.WEBP, 16383, 16383),
        "webp-bomb-at-stream-size": forged_reference(webp_bomb(), Codec.WEBP, width, height),
        "jpeg-bomb": forged_reference(jpeg_bomb(), Codec.JPEG, 30000, 30000),
        # a 1920x1088 key frame claiming a 48x36 stream: refused from its sequence header
        "stream-key-bomb": forged_stream_key(stream_key_bomb(), (width, height), (48, 36)),
        "stream-key-garbage": forged_stream_key(b"\x0a\x0b" + bytes(40), (width, height), (48, 36)),
    }
    inputs = {f"call-{name}": before + attack + after for name, attack in attacks.items()}
    inputs["fresh-png-bomb"] = attacks["png-bomb"]  # before any stream: the receiver's bound
    inputs["fresh-webp-bomb"] = attacks["webp-bomb"]
    return inputs


def write_corpus(folder: Path) -> None:
    for name, datagrams in corpus_inputs().items():
        (folder / f"{name}.bin").write_bytes(framed(datagrams))


# ---- measuring a live receiver -----------------------------------------------------------


def _status(pid: int, field: str) -> int:
    """A /proc/PID/status figure in kB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def _cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def wait_idle(pid: int, quiet_s: float = 0.6, limit_s: float = 60.0) -> None:
    """Until the process has used no CPU for ``quiet_s`` (beyond its 50 ms poll)."""
    deadline = time.monotonic() + limit_s
    ticks, since = _cpu_ticks(pid), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.1)
        now = _cpu_ticks(pid)
        if now - ticks > 2:
            ticks, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet_s:
            return


def send_paced(sock: socket.socket, datagrams: list[bytes], port: int) -> None:
    """Loopback drops what does not fit the receiver's socket buffer: pace by bytes."""
    sent = 0
    for datagram in datagrams:
        sock.sendto(datagram, ("127.0.0.1", port))
        sent += len(datagram)
        if sent > 96_000:
            time.sleep(0.004)
            sent = 0


def answered(sock: socket.socket, ref_id: int, timeout: float) -> bool:
    """Whether a REQUEST REFERENCE ``ref_id`` came back within ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        if not select.select([sock], [], [], left)[0]:
            return False
        try:
            request = parse(sock.recv(65535)).payload
        except BitstreamError:  # anything but our answer is ignored here
            continue
        kind = getattr(request, "kind", None)
        if kind == RequestKind.REFERENCE and getattr(request, "ref_id", None) == ref_id:
            return True
    return False


def start_receiver(source: Path) -> tuple[subprocess.Popen[str], int]:
    env = {**os.environ, "PYTHONPATH": str(source)}
    command = [sys.executable, "-m", "appliance", "receive", "--listen", "udp://127.0.0.1:0"]
    process = subprocess.Popen(
        command, cwd=source, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line.startswith("listening on udp://"):
        process.kill()
        raise RuntimeError(f"the receiver did not start: {line!r}")
    return process, int(line.rsplit(":", 1)[1])


def measure(
    name: str, attack: list[bytes], stream: list[list[bytes]], source: Path
) -> dict[str, object]:
    process, port = start_receiver(source)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    try:
        send_paced(sock, [d for frame in stream[:5] for d in frame], port)
        wait_idle(process.pid)
        idle_kb = _status(process.pid, "VmRSS")
        Path(f"/proc/{process.pid}/clear_refs").write_text("5")  # VmHWM := VmRSS
        start = time.monotonic()
        send_paced(sock, attack, port)
        send_paced(sock, [d for frame in stream[5:] for d in frame], port)
        probe_at = time.monotonic()
        sock.sendto(keypoints(PROBE_REF, 60_000, b"\x00"), ("127.0.0.1", port))
        ok = answered(sock, PROBE_REF, timeout=30.0)
        answer_s = time.monotonic() - probe_at if ok else math.nan
        wall_s = time.monotonic() - start
        alive = process.poll() is None
        peak_kb = _status(process.pid, "VmHWM") if alive else 0
    finally:
        sock.close()
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
        try:
            stdout, _ = process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            stdout, _ = process.communicate()
    shown = re.search(r"done: (\d+) pictures", stdout)
    return {
        "name": name,
        "alive": alive,
        "rc": process.returncode,
        "over_idle_mb": (peak_kb - idle_kb) / 1024 if alive else math.nan,
        "idle_mb": idle_kb / 1024,
        "answer_ms": answer_s * 1000,
        "pictures": int(shown.group(1)) if shown else -1,
        "wall_s": wall_s,
        "datagrams": len(attack),
        "bytes": sum(map(len, attack)),
    }


def line(r: dict[str, object]) -> str:
    over = r["over_idle_mb"]
    healthy = r["alive"] and (r["pictures"] == FRAMES or r["name"] == FORGED_PACKETS)
    healthy = healthy and not math.isnan(float(str(r["answer_ms"])))
    verdict = "ok" if healthy and isinstance(over, float) and over <= TARGET_MB else "FAIL"
    return (
        f"{r['name']:<40} {'up' if r['alive'] else 'DOWN'} rc={r['rc']}  "
        f"pictures {r['pictures']}/{FRAMES}  "
        f"peak over idle {over:7.1f} MB (idle {r['idle_mb']:.0f} MB)  "
        f"answered {r['answer_ms']:7.1f} ms after  attack {r['wall_s']:5.2f} s  "
        f"[{r['datagrams']} datagrams, {int(str(r['bytes'])) / 1e6:.2f} MB]  {verdict}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.hostile.codec", description=__doc__)
    parser.add_argument("--source", type=Path, default=ROOT,
                        help="the checkout whose receiver is attacked (default: this)")  # fmt: skip
    parser.add_argument("--only", help="attacks whose name contains this")
    parser.add_argument("--write-corpus", type=Path, metavar="DIR",
                        help="write the corpus inputs (tests/corpus/codec) and stop")  # fmt: skip
    args = parser.parse_args(argv)
    if args.write_corpus is not None:
        write_corpus(args.write_corpus)
        return 0
    print(f"building a valid {WIDTH}x{HEIGHT} stream ...", flush=True)
    stream = valid_stream(FRAMES)
    failed = 0
    report: Callable[[str], None] = lambda text: print(text, flush=True)  # noqa: E731
    for name, attack in attacks(stream).items():
        if args.only and args.only.lower() not in name.lower():
            continue
        result = measure(name, attack, stream, args.source)
        report(line(result))
        failed += line(result).endswith("FAIL")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
