"""``appliance receive`` over real UDP: a lossy call in, a correct picture out."""

from __future__ import annotations

import socket
import threading
import time

import cv2
import numpy as np

from appliance.cli import main
from appliance.codec.receive import CallReceiver
from appliance.codec.session import CodecSettings, Sender

from .test_session import LossyChannel


def test_a_lossy_call_is_shown_and_recovers_after_the_losses(talking_head, tmp_path):
    out = tmp_path / "call.mp4"
    call = CallReceiver("udp://127.0.0.1:0", out=out, snapshot=tmp_path / "last.jpg")
    call.keep_pictures = True
    thread = threading.Thread(target=call.run, kwargs={"report": lambda _l: None})
    thread.start()
    width, height = talking_head.size
    sender = Sender(width, height, talking_head.fps, CodecSettings(floor=0.8), stream=0x0C0D)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    channel = LossyChannel(seed=5)
    lossy_until = len(talking_head.frames) // 2
    try:
        for index, frame in enumerate(talking_head.frames):
            sent = sender.send(frame, talking_head.landmarks[index], index,
                               talking_head.iris[index])  # fmt: skip
            for datagram in channel.pass_(sent, index < lossy_until):
                sock.sendto(datagram, ("127.0.0.1", call.port))
            time.sleep(0.03)  # about a frame interval: the receiver keeps up
            while True:  # the receiver's REQUESTs come back to the socket that sent
                try:
                    sender.feedback(sock.recv(65535))
                except BlockingIOError:
                    break
    finally:
        time.sleep(0.2)
        call.stop()
        thread.join(5)
        sock.close()
    assert not thread.is_alive()
    assert call.counters.requests > 0  # losses were noticed and asked for
    assert call.receiver.tracker.stats.garbage > 0
    # after the losses: the far end shows exactly what the sender checked
    assert call.pictures and np.array_equal(call.pictures[-1], sender.shown)
    cap = cv2.VideoCapture(str(out))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == call.counters.pictures
    assert cv2.imread(str(tmp_path / "last.jpg")) is not None


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
    assert "udp://HOST:PORT" in err and "cannot listen" in err


def test_receive_stops_after_the_seconds_asked(capsys):
    assert main(["receive", "--listen", "udp://127.0.0.1:0", "--seconds", "0.3"]) == 0
    assert "done: 0 pictures" in capsys.readouterr().out
