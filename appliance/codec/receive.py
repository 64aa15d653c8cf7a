"""``appliance receive``: the far end of a call. Listens for the keypoint stream on UDP,
renders it, writes the video and/or a snapshot, and sends the sender its REQUESTs (to
the address the stream comes from). Prints a status line about once a second.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from appliance.codec.session import Receiver
from appliance.codec.transport import drain, open_udp, parse_udp_uri

log = logging.getLogger(__name__)
POLL_S = 0.005
SNAPSHOT_EVERY_S = 1.0


def add_receive_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("receive", help="the far end of a keypoint-codec call: UDP in, video out")
    p.add_argument("--listen", default="udp://0.0.0.0:5004", help="udp://ADDRESS:PORT to bind")
    p.add_argument("--out", type=Path, help="write the decoded video here (.mp4)")
    p.add_argument("--snapshot", type=Path, help="keep the latest picture here (.jpg)")
    p.add_argument("--frames", type=int, help="stop after this many pictures")
    p.add_argument("--seconds", type=float, help="stop after this long")
    p.add_argument("--fps", type=float, default=30.0, help="frame rate of the --out video")


@dataclass
class Counters:
    pictures: int = 0
    datagrams: int = 0
    bytes: int = 0
    requests: int = 0


class CallReceiver:
    """The loop behind ``appliance receive``, usable from a thread (``stop``)."""

    def __init__(
        self,
        listen: str,
        out: Path | None = None,
        snapshot: Path | None = None,
        fps: float = 30.0,
    ) -> None:
        self.address = parse_udp_uri(listen, listen=True)
        self.sock = open_udp(self.address)  # OSError if the port cannot be bound
        self.out, self.snapshot, self.fps = out, snapshot, fps
        self.receiver = Receiver()
        self.counters = Counters()
        self.pictures: list[np.ndarray] = []  # kept only when asked (tests)
        self.keep_pictures = False
        self._writer: Any = None
        self._peer: tuple[str, int] | None = None
        self._stop = threading.Event()

    @property
    def port(self) -> int:
        return int(self.sock.getsockname()[1])

    def stop(self) -> None:
        self._stop.set()

    def run(self, frames: int | None = None, seconds: float | None = None,
            report: Any = print) -> Counters:  # fmt: skip
        start = last_report = last_snapshot = time.monotonic()
        try:
            while not self._stop.is_set():
                now = time.monotonic()
                if seconds is not None and now - start >= seconds:
                    break
                if frames is not None and self.counters.pictures >= frames:
                    break
                if not self._poll():
                    time.sleep(POLL_S)
                if self.snapshot is not None and now - last_snapshot >= SNAPSHOT_EVERY_S:
                    last_snapshot = now
                    self._write_snapshot()
                if now - last_report >= 1.0:
                    report(self.status_line(now - last_report))
                    last_report = now
                    self.counters.bytes = 0
        finally:
            self._write_snapshot()
            if self._writer is not None:
                self._writer.release()
            self.sock.close()
        return self.counters

    def _poll(self) -> bool:
        got = False
        for datagram, peer in drain(self.sock):
            got = True
            self._peer = peer
            self.counters.datagrams += 1
            self.counters.bytes += len(datagram)
            if self.receiver.feed(datagram) and self.receiver.picture is not None:
                self._picture(self.receiver.picture)
        if self._peer is not None:
            for request in self.receiver.requests():
                try:
                    self.sock.sendto(request, self._peer)
                    self.counters.requests += 1
                except OSError as exc:
                    log.debug("request not sent: %s", exc)
        return got

    def _picture(self, picture: np.ndarray) -> None:
        self.counters.pictures += 1
        if self.keep_pictures:
            self.pictures.append(picture.copy())
        if self.out is not None:
            if self._writer is None:
                fourcc = cv2.VideoWriter.fourcc(*"mp4v")
                size = (picture.shape[1], picture.shape[0])
                self._writer = cv2.VideoWriter(str(self.out), fourcc, self.fps, size)
            self._writer.write(picture)

    def _write_snapshot(self) -> None:
        if self.snapshot is not None and self.receiver.picture is not None:
            cv2.imwrite(str(self.snapshot), self.receiver.picture)

    def status_line(self, interval: float) -> str:
        t, r, c = self.receiver.tracker.stats, self.receiver.stats, self.counters
        kbps = c.bytes * 8 / max(interval, 1e-3) / 1000
        return (
            f"pictures {c.pictures}  {kbps:.1f} kbit/s  references {r.references}  "
            f"residuals {r.residuals}  lost {t.skipped}  late {t.late}  duplicates "
            f"{t.duplicates}  garbage {t.garbage}  requests sent {c.requests}"
        )


def main(args: argparse.Namespace) -> int:
    try:
        call = CallReceiver(args.listen, args.out, args.snapshot, args.fps)
    except ValueError as exc:
        print(f"appliance receive: --listen: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"appliance receive: cannot listen on {args.listen}: {exc}", file=sys.stderr)
        return 2
    signal.signal(signal.SIGINT, lambda *_: call.stop())
    signal.signal(signal.SIGTERM, lambda *_: call.stop())
    print(f"listening on udp://{call.address[0]}:{call.port}", flush=True)
    counters = call.run(args.frames, args.seconds, lambda line: print(line, flush=True))
    video = f"; video {args.out}" if args.out else ""
    print(
        f"done: {counters.pictures} pictures from {counters.datagrams} datagrams; "
        f"{counters.requests} requests sent{video}"
    )
    return 0
