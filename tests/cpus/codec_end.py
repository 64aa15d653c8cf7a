"""One end of a keypoint-codec call, on whatever CPU runs this Python (tests/cpus).

    python -m tests.cpus.codec_end send CLIP.npz OUT.npz      the sender: datagrams, and
                                                             each picture it checked
                                                             (what it promises), with a
                                                             digest of each
    python -m tests.cpus.codec_end receive SENT.npz OUT.npz  the receiver: each picture
                                                             it shows, and its digest

CLIP.npz holds the frames (BGR), landmarks, iris centres and fps: the tracker's output,
made once on the host, so that both ends start from the same input.
"""

from __future__ import annotations

import hashlib
import sys

import numpy as np

from appliance.codec.session import CodecSettings, Receiver, Sender

FLOOR = 0.85
STREAM = 0x1234


def _digest(picture: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(picture).tobytes()).hexdigest()


def send(clip_path: str, out: str) -> None:
    with np.load(clip_path) as clip:
        frames, landmarks, iris, fps = clip["frames"], clip["landmarks"], clip["iris"], clip["fps"]
    height, width = frames.shape[1:3]
    sender = Sender(width, height, float(fps), CodecSettings(floor=FLOOR), stream=STREAM)
    datagrams: list[bytes] = []
    frame_of: list[int] = []
    shown, pictures = [], []
    for index in range(len(frames)):
        sent = sender.send(frames[index], landmarks[index], index, iris[index])
        datagrams += sent
        frame_of += [index] * len(sent)
        shown.append(_digest(sender.shown))
        pictures.append(sender.shown.copy())
    np.savez(
        out,
        data=np.frombuffer(b"".join(datagrams), np.uint8),
        lengths=np.array([len(d) for d in datagrams], np.int64),
        frame_of=np.array(frame_of, np.int64),
        shown=np.array(shown),
        pictures=np.stack(pictures),
    )


def receive(sent_path: str, out: str) -> None:
    with np.load(sent_path) as sent:
        data, lengths, frame_of = sent["data"].tobytes(), sent["lengths"], sent["frame_of"]
        frames = len(sent["shown"])
    receiver = Receiver()
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    shown, pictures = [], []
    for index in range(frames):
        for k in np.flatnonzero(frame_of == index):
            receiver.feed(data[offsets[k] : offsets[k + 1]])
        if receiver.picture is None:
            raise SystemExit(f"frame {index}: the receiver shows nothing")
        shown.append(_digest(receiver.picture))
        pictures.append(receiver.picture.copy())
    np.savez(out, shown=np.array(shown), pictures=np.stack(pictures))


if __name__ == "__main__":
    action, source, target = sys.argv[1:4]
    {"send": send, "receive": receive}[action](source, target)
