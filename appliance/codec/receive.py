"""``appliance receive``: the far end of a keypoint-codec call, to try a camera without
writing a client.

It listens on UDP, renders the stream (``session.Receiver``), writes the pictures to a
video and/or keeps the latest one as a snapshot, and sends the sender its REQUESTs back
to the address the stream comes from (the camera reads them on the socket it sends
from), so losses heal. A status line about once a second says what the network did.
A camera whose settings change starts a new stream id; the spec leaves following it to
the application (docs/codec-bitstream.md §9): once the current stream has been quiet for
``QUIET_S``, the next stream heard takes over.
"""

from __future__ import annotations

import argparse
import logging
import os
import select
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import cv2
import numpy as np

from appliance.codec.bitstream import BitstreamError, parse
from appliance.codec.keypoints import KeypointCodecModel
from appliance.codec.session import MAX_FRAME_PIXELS, Receiver
from appliance.codec.transport import drain, open_udp, parse_udp_uri
from appliance.logs import Throttle

log = logging.getLogger(__name__)

WAIT_S = 0.05  # longest wait for a datagram before the loop looks at the clock again
SNAPSHOT_EVERY_S = 1.0
REPORT_EVERY_S = 1.0
QUIET_S = 0.5  # the stream shown must be this quiet before another one takes over
KEEP_FOREIGN = 256  # datagrams of other streams kept for a switch (its reference)
# Datagrams arrive but no picture has come of them for this long: the call is stalled
# (lost references not yet resent, or a sender forging packets), said in the status line.
STALL_S = 2.0


def _count(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {text}")
    return value


def _positive(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def _frame_size(text: str) -> int:
    """WIDTHxHEIGHT -> its pixel count."""
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT, got {text!r}") from None
    if width < 1 or height < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1x1, got {text}")
    return width * height


def add_receive_parser(sub: Any) -> None:
    p = sub.add_parser("receive", help="the far end of a keypoint-codec call: UDP in, video out")
    p.add_argument(
        "--listen", default="udp://0.0.0.0:5004", help="udp://ADDRESS:PORT to bind (0: any port)"
    )
    p.add_argument("--out", type=Path, help="write the decoded video here (.mp4)")
    p.add_argument("--snapshot", type=Path, help="keep the latest picture here (.jpg)")
    p.add_argument("--frames", type=_count, help="stop after this many pictures")
    p.add_argument("--seconds", type=_positive, help="stop after this long")
    p.add_argument("--fps", type=_positive, default=30.0, help="frame rate of the --out video")
    p.add_argument("--max-size", type=_frame_size, default=MAX_FRAME_PIXELS, metavar="WxH",
                   help="refuse streams of more pixels than this (1920x1080)")  # fmt: skip


@dataclass
class Counters:
    pictures: int = 0  # keypoint frames rendered
    written: int = 0  # frames in the --out video
    datagrams: int = 0
    bytes: int = 0
    requests: int = 0  # REQUEST datagrams sent back
    streams: int = 0  # streams shown (a camera restarting its stream adds one)
    faults: int = 0  # datagrams whose handling raised (a bug): dropped, the call went on


class VideoOut:
    """The --out video, opened at the first picture's size (later sizes are scaled)."""

    def __init__(self, path: Path, fps: float) -> None:
        self.path, self.fps = path, fps
        self.writer: Any = None
        self.size: tuple[int, int] | None = None

    def write(self, picture: np.ndarray) -> None:
        size = (picture.shape[1], picture.shape[0])
        if self.writer is None:
            fourcc = cv2.VideoWriter.fourcc(*"mp4v")
            self.writer = cv2.VideoWriter(str(self.path), fourcc, self.fps, size)
            if not self.writer.isOpened():
                raise OSError(f"cannot write a video to {self.path}")
            self.size = size
        if size != self.size:
            picture = cv2.resize(picture, self.size, interpolation=cv2.INTER_AREA)
        self.writer.write(picture)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.release()
            self.writer = None


def write_snapshot(path: Path, picture: np.ndarray) -> None:
    """Replace the snapshot whole, so that a viewer never reads half a picture."""
    partial = path.with_name(f".{path.stem}.partial{path.suffix or '.jpg'}")
    if cv2.imwrite(str(partial), picture):
        os.replace(partial, path)


class CallReceiver:
    """The loop behind ``appliance receive``; ``run`` it, ``stop`` it from anywhere.

    ``on_picture`` gets every finished picture (its residuals pasted) in order.
    """

    def __init__(
        self,
        listen: str,
        out: Path | None = None,
        snapshot: Path | None = None,
        fps: float = 30.0,
        on_picture: Callable[[np.ndarray], None] | None = None,
        max_pixels: int = MAX_FRAME_PIXELS,
    ) -> None:
        self.address = parse_udp_uri(listen, listen=True)  # ValueError: not udp://HOST:PORT
        self.sock = open_udp(self.address)  # OSError: the port cannot be bound
        self.video = None if out is None else VideoOut(out, fps)
        self.snapshot = snapshot
        self.on_picture = on_picture
        self.model = KeypointCodecModel.load()
        self.max_pixels = max_pixels
        self.receiver = Receiver(self.model, max_pixels=max_pixels)
        self.counters = Counters()
        self._peer: tuple[str, int] | None = None
        self._heard = -float("inf")  # when the stream shown last sent something
        self._foreign: deque[tuple[int, bytes, tuple[str, int]]] = deque(maxlen=KEEP_FOREIGN)
        self._pending: np.ndarray | None = None  # the newest picture, maybe still patched
        self._limit: int | None = None  # pictures asked for
        self._stop = threading.Event()
        self._fault_log = Throttle()  # a flood of bad datagrams must not flood the log
        self._last_picture = time.monotonic()  # when a picture last came (or the start)

    @property
    def port(self) -> int:
        return int(self.sock.getsockname()[1])

    def stop(self) -> None:
        self._stop.set()

    def run(
        self,
        frames: int | None = None,
        seconds: float | None = None,
        report: Callable[[str], None] = print,
    ) -> Counters:
        """Receive until ``frames`` pictures, ``seconds`` or ``stop``; files are closed."""
        start = last_report = last_snapshot = time.monotonic()
        reported_bytes, self._limit = 0, frames
        try:
            while not self._stop.is_set() and not self._done(start, seconds):
                if not self.poll(WAIT_S):
                    self._finish_picture()  # a quiet line: the residuals are all in
                now = time.monotonic()
                if self.snapshot is not None and now - last_snapshot >= SNAPSHOT_EVERY_S:
                    last_snapshot = now
                    self._write_snapshot()
                if now - last_report >= REPORT_EVERY_S:
                    report(self.status_line(self.counters.bytes - reported_bytes,
                                            now - last_report))  # fmt: skip
                    last_report, reported_bytes = now, self.counters.bytes
        finally:
            self.close()
        return self.counters

    def _done(self, start: float, seconds: float | None) -> bool:
        if seconds is not None and time.monotonic() - start >= seconds:
            return True
        finished = self._pending is None  # the last picture has all its residuals
        return self._limit is not None and self.counters.pictures >= self._limit and finished

    def close(self) -> None:
        self._finish_picture()
        self._write_snapshot()
        if self.video is not None:
            self.video.close()
        self.sock.close()

    # -- datagrams ------------------------------------------------------------------------

    def poll(self, wait: float = 0.0) -> bool:
        """Handle every datagram waiting (after up to ``wait`` s); False if none came."""
        if wait > 0:
            select.select([self.sock], [], [], wait)
        waiting = drain(self.sock)
        for datagram, peer in waiting:
            if self._stop.is_set():
                break
            self.counters.datagrams += 1
            self.counters.bytes += len(datagram)
            try:
                if self._route(datagram, peer):
                    self._feed(datagram)
            except Exception as exc:  # whatever one datagram does, the call goes on
                self._fault(exc)
        self._send_requests()
        return bool(waiting)

    def _fault(self, exc: Exception) -> None:
        self.counters.faults += 1
        if self._fault_log.ready():
            log.warning("receive: a datagram raised %s (%d so far); dropped",
                        type(exc).__name__, self.counters.faults, exc_info=exc)  # fmt: skip

    def _route(self, datagram: bytes, peer: tuple[str, int]) -> bool:
        """True if ``datagram`` is for the stream shown (or garbage, for it to count);
        another stream is kept, and takes over once the one shown has gone quiet."""
        now = time.monotonic()
        try:
            stream = parse(datagram).stream
        except BitstreamError:
            return True
        current = self.receiver.tracker.stream
        if current is None or stream == current:
            self._heard, self._peer = now, peer  # REQUESTs go where the stream comes from
            return True
        self._foreign.append((stream, datagram, peer))
        if now - self._heard > QUIET_S:
            self._switch(stream)
        return False

    def _switch(self, stream: int) -> None:
        log.info("receive: stream %04x takes over", stream)
        self._finish_picture()
        self.receiver = Receiver(self.model, stream=stream, max_pixels=self.max_pixels)
        self._heard = time.monotonic()
        kept = [(d, peer) for s, d, peer in self._foreign if s == stream]
        self._foreign.clear()
        for datagram, peer in kept:
            self._peer = peer
            self._feed(datagram)

    def _feed(self, datagram: bytes) -> None:
        before = self.receiver.stats.frames
        self.receiver.feed(datagram)
        if self.receiver.stats.frames != before:  # a new frame: the one before is complete
            self._finish_picture()
            if self._limit is not None and self.counters.pictures >= self._limit:
                self._stop.set()  # a picture beyond those asked for
                return
            self._pending = self.receiver.picture
            self.counters.pictures += 1
            self._last_picture = time.monotonic()
            if self.receiver.stats.frames == 1:  # the first picture of a stream
                self.counters.streams += 1

    def _send_requests(self) -> None:
        if self._peer is None:
            return
        for request in self.receiver.requests():
            try:
                self.sock.sendto(request, self._peer)
                self.counters.requests += 1
            except OSError as exc:  # the sender went away: its next datagram tells
                log.debug("receive: request not sent: %s", exc)

    # -- pictures -------------------------------------------------------------------------

    def _finish_picture(self) -> None:
        picture, self._pending = self._pending, None
        if picture is None:
            return
        if self.video is not None:
            self.video.write(picture)
            self.counters.written += 1
        if self.on_picture is not None:
            self.on_picture(picture)

    def _write_snapshot(self) -> None:
        if self.snapshot is not None and self.receiver.picture is not None:
            write_snapshot(self.snapshot, self.receiver.picture)

    # -- reports --------------------------------------------------------------------------

    def status_line(self, received: int, interval: float) -> str:
        """Pictures so far, ``received`` bytes over ``interval`` s, what the network did."""
        kbps = received * 8 / max(interval, 1e-3) / 1000
        line = f"pictures {self.counters.pictures}  {kbps:.1f} kbit/s  {self._network()}"
        quiet = time.monotonic() - self._last_picture
        if received and quiet >= STALL_S:
            return f"STALLED: no picture for {quiet:.0f} s though datagrams arrive; {line}"
        return line

    def _network(self) -> str:
        t, r = self.receiver.tracker.stats, self.receiver.stats
        return (
            f"references {r.references}  residuals {r.residuals}  lost {t.skipped}  "
            f"late {t.late}  duplicates {t.duplicates}  garbage {t.garbage}  "
            f"errors {r.errors}  requests sent {self.counters.requests}"
            + (
                f"  faults {self.counters.faults + r.faults}"
                if self.counters.faults + r.faults
                else ""
            )
        )

    def summary(self, seconds: float) -> str:
        c = self.counters
        video = f"; {c.written} frames in {self.video.path}" if self.video is not None else ""
        return (
            f"done: {c.pictures} pictures from {c.datagrams} datagrams "
            f"({c.bytes * 8 / max(seconds, 1e-3) / 1000:.1f} kbit/s over {seconds:.1f} s, "
            f"{c.streams} stream(s)){video}\nlast stream: {self._network()}"
        )


def _open(args: argparse.Namespace) -> CallReceiver | str:
    """The receiver, or why it cannot run (exit 2)."""
    for name in ("out", "snapshot"):
        path = getattr(args, name)
        if path is not None and not path.resolve().parent.is_dir():
            return f"--{name}: no folder {path.resolve().parent}"
    try:
        return CallReceiver(
            args.listen, args.out, args.snapshot, args.fps, max_pixels=args.max_size
        )
    except ValueError as exc:
        return f"--listen: {exc}"
    except OSError as exc:
        return f"cannot listen on {args.listen}: {exc.strerror or exc}"


def main(args: argparse.Namespace) -> int:
    call = _open(args)
    if isinstance(call, str):
        print(f"appliance receive: {call}", file=sys.stderr)
        return 2

    def stop(_signum: int, _frame: FrameType | None) -> None:
        call.stop()

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    start = time.monotonic()
    try:
        print(f"listening on udp://{call.address[0]}:{call.port}", flush=True)
        call.run(args.frames, args.seconds, lambda line: print(line, flush=True))
    except OSError as exc:  # the video could not be written
        print(f"appliance receive: {exc}", file=sys.stderr)
        return 1
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    print(call.summary(time.monotonic() - start), flush=True)
    return 0
