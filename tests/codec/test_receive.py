"""``appliance receive`` over real UDP: a lossy call in, the sender's own picture out."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np

from appliance.cli import main
from appliance.codec.receive import QUIET_S, CallReceiver
from appliance.codec.session import CodecSettings, Sender

from .test_session import LossyChannel

ROOT = Path(__file__).resolve().parents[2]
FRAMES = 40
LOSSY = 20  # frames through the bad network; the rest get through whole
EXACT = 3  # the last pictures must be the sender's


def sender_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    return sock


def feedback(sock: socket.socket, sender: Sender) -> int:
    """The receiver's REQUESTs, which come back to the socket that sent the stream."""
    count = 0
    while True:
        try:
            sender.feedback(sock.recv(65535))
        except BlockingIOError:
            return count
        count += 1


def test_a_lossy_call_is_shown_and_recovers_after_the_losses(talking_head, tmp_path):
    out, snapshot = tmp_path / "call.mp4", tmp_path / "last.jpg"
    pictures: list[np.ndarray] = []
    call = CallReceiver("udp://127.0.0.1:0", out, snapshot, on_picture=pictures.append)
    thread = threading.Thread(target=call.run, kwargs={"report": lambda _line: None})
    thread.start()
    width, height = talking_head.size
    sender = Sender(width, height, talking_head.fps, CodecSettings(floor=0.85), stream=0x0C0D)
    sock = sender_socket()
    channel = LossyChannel(seed=6)  # drops, duplicates, reorders, truncates, invents
    shown, requests = [], 0
    try:
        for index in range(FRAMES):
            sent = sender.send(talking_head.frames[index], talking_head.landmarks[index], index,
                               talking_head.iris[index])  # fmt: skip
            assert sender.shown is not None
            shown.append(sender.shown)
            for datagram in channel.pass_(sent, index < LOSSY):
                sock.sendto(datagram, ("127.0.0.1", call.port))
            time.sleep(0.03)  # about a frame interval: the REQUESTs come back in time
            requests += feedback(sock, sender)
    finally:
        time.sleep(0.3)
        call.stop()
        thread.join(10)
        sock.close()
    assert not thread.is_alive()
    t = call.receiver.tracker.stats
    assert t.garbage > 0 and t.duplicates > 0 and t.skipped > 0  # the network was bad ...
    assert requests > 0 and call.counters.requests >= requests  # ... help was asked for ...
    assert len(pictures) == call.counters.pictures > FRAMES // 2  # ... the call went on ...
    for k in range(1, EXACT + 1):  # ... and shows the sender's own pictures again
        assert np.array_equal(pictures[-k], shown[-k]), f"picture -{k} is not the sender's"
    video = cv2.VideoCapture(str(out))
    assert int(video.get(cv2.CAP_PROP_FRAME_COUNT)) == len(pictures) == call.counters.written
    assert video.read()[1].shape == (height, width, 3)
    assert cv2.imread(str(snapshot)) is not None


def datagrams(sender: Sender, clip, frames: range) -> list[list[bytes]]:
    return [sender.send(clip.frames[i], clip.landmarks[i], i, clip.iris[i]) for i in frames]


def send(sock: socket.socket, frames: list[list[bytes]], port: int) -> None:
    for frame in frames:
        for datagram in frame:
            sock.sendto(datagram, ("127.0.0.1", port))


def test_a_new_stream_takes_over_once_the_old_one_is_quiet(talking_head):
    width, height = talking_head.size
    first = datagrams(Sender(width, height, talking_head.fps, stream=1), talking_head, range(2))
    restarted = Sender(width, height, talking_head.fps, stream=2)  # the camera's new stream
    second = datagrams(restarted, talking_head, range(2, 5))
    pictures: list[np.ndarray] = []
    call = CallReceiver("udp://127.0.0.1:0", on_picture=pictures.append)
    sock = sender_socket()
    try:
        send(sock, first, call.port)
        call.poll(0.2)
        send(sock, second[:1], call.port)
        call.poll(0.2)  # the first stream is not quiet yet: the second one waits
        assert call.receiver.tracker.stream == 1
        time.sleep(QUIET_S + 0.1)
        send(sock, second[1:], call.port)
        call.poll(0.2)
    finally:
        call.close()
        sock.close()
    assert call.receiver.tracker.stream == 2 and call.counters.streams == 2
    assert call.receiver.stats.references == 1  # the one kept while waiting: no REQUEST
    assert len(pictures) == 5 and restarted.shown is not None
    assert np.array_equal(pictures[-1], restarted.shown)


def receive(*args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "appliance", "receive", "--listen", "udp://127.0.0.1:0"]
    return subprocess.Popen([*command, *args], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)


def listening_port(process: subprocess.Popen[str]) -> int:
    assert process.stdout is not None
    line = process.stdout.readline()
    assert line.startswith("listening on udp://127.0.0.1:"), line
    return int(line.rsplit(":", 1)[1])


def test_the_command_writes_the_frames_asked_for_to_a_video(talking_head, tmp_path):
    out = tmp_path / "call.mp4"
    process = receive("--frames", "4", "--out", str(out), "--seconds", "120")
    try:
        port = listening_port(process)
        width, height = talking_head.size
        sender = Sender(width, height, talking_head.fps)
        sock = sender_socket()
        send(sock, datagrams(sender, talking_head, range(6)), port)
        sock.close()
        stdout, _ = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == 0
    assert "done: 4 pictures" in stdout and f"4 frames in {out}" in stdout
    assert int(cv2.VideoCapture(str(out)).get(cv2.CAP_PROP_FRAME_COUNT)) == 4


def test_ctrl_c_stops_the_command_cleanly(tmp_path):
    process = receive("--snapshot", str(tmp_path / "last.jpg"))
    try:
        listening_port(process)
        process.send_signal(signal.SIGINT)
        stdout, _ = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 0 and "done: 0 pictures" in stdout


def test_bad_listen_addresses_exit_2(capsys):
    assert main(["receive", "--listen", "tcp://0.0.0.0:5004"]) == 2
    taken = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    taken.bind(("127.0.0.1", 0))
    try:
        port = taken.getsockname()[1]
        assert main(["receive", "--listen", f"udp://127.0.0.1:{port}"]) == 2
    finally:
        taken.close()
    err = capsys.readouterr().err
    assert "--listen: 'tcp://0.0.0.0:5004' is not udp://HOST:PORT" in err
    assert f"cannot listen on udp://127.0.0.1:{port}" in err


def test_receive_stops_after_the_seconds_asked(capsys):
    start = time.monotonic()
    assert main(["receive", "--listen", "udp://127.0.0.1:0", "--seconds", "0.3"]) == 0
    assert time.monotonic() - start < 10
    assert "done: 0 pictures" in capsys.readouterr().out


def test_a_call_with_datagrams_but_no_pictures_says_it_is_stalled() -> None:
    from appliance.codec.receive import STALL_S, CallReceiver

    call = CallReceiver("udp://127.0.0.1:0")
    try:
        assert not call.status_line(0, 1.0).startswith("STALLED")  # nothing heard: waiting
        assert not call.status_line(500, 1.0).startswith("STALLED")  # just started
        call._last_picture -= STALL_S + 1
        assert call.status_line(500, 1.0).startswith("STALLED: no picture for 3 s")
        assert not call.status_line(0, 1.0).startswith("STALLED")  # the sender went quiet
    finally:
        call.close()
