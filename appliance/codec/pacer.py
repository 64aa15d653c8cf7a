"""Pictures and stream keys go out spread over the following frames, not in one burst.

A 4 KB picture sent at once into a 15 kbit/s link is 2 s of queue: every frame packet
behind it waits, the delay estimate sees a flood, and a router with a short buffer
drops its tail (so the picture never completes and is asked for again). WebRTC's pacer
sends at 2.5 times the target rate; this one gives objects that budget per frame, frame
packets pass at once (they are small and late ones are useless), and the receiver holds
a frame whose key has not arrived yet (``bitstream.Tracker``).

Objects are queued whole and dropped whole: the oldest first, never the newest, when the
queue outgrows ``MAX_QUEUE_S`` at the current rate (by then a newer key or picture has
replaced them; a receiver that still needs one asks again). An object is one run of
fragments of one (type, object id).
"""

from __future__ import annotations

from collections import deque

from appliance.codec.bitstream import HEADER_SIZE, OBJECT_TYPES

PACING = 2.5  # times the target rate
MAX_QUEUE_S = 2.0
MIN_ROOM = 16 * 1024  # a picture and a key always fit
_OBJECTS = {int(t) for t in OBJECT_TYPES}


def is_object(datagram: bytes) -> bool:
    """A fragment of a picture, key or residual (the packet type, header byte 0)."""
    return bool(datagram) and datagram[0] & 0x0F in _OBJECTS


def object_of(datagram: bytes) -> tuple[int, int]:
    """(packet type, object id) of a fragment: the id is its fragment header's first byte
    (the packetizer made it, so it is well formed)."""
    return datagram[0] & 0x0F, datagram[HEADER_SIZE]


class Pacer:
    def __init__(self, fps: float) -> None:
        self.fps = float(fps)
        self.queue: deque[tuple[tuple[int, int], deque[bytes]]] = deque()
        self.dropped = 0  # objects given up
        self._budget = 0.0

    @property
    def waiting(self) -> int:
        """Bytes queued."""
        return sum(len(d) for _, fragments in self.queue for d in fragments)

    def holds(self, kind: int, object_id: int) -> bool:
        """Whether (a part of) this object is still waiting to go."""
        return any(key == (kind, object_id) for key, _ in self.queue)

    def send(self, datagrams: list[bytes], kbps: float) -> list[bytes]:
        """One frame's datagrams: frame packets now, objects queued; and the objects this
        frame's share of ``kbps`` lets out (oldest first)."""
        now = []
        for datagram in datagrams:
            if not is_object(datagram):
                now.append(datagram)
            elif self.queue and self.queue[-1][0] == object_of(datagram):
                self.queue[-1][1].append(datagram)
            else:
                self.queue.append((object_of(datagram), deque([datagram])))
        self._bound(max(kbps * 1000 / 8 * MAX_QUEUE_S, MIN_ROOM))
        if not self.queue:
            self._budget = 0.0  # credit is not saved up for a later burst
            return now
        self._budget += kbps * 1000 / 8 / self.fps * PACING
        out = []
        while self.queue and self._budget > 0:
            fragments = self.queue[0][1]
            datagram = fragments.popleft()
            if not fragments:
                self.queue.popleft()
            self._budget -= len(datagram)
            out.append(datagram)
        return out + now

    def flush(self) -> list[bytes]:
        """Everything still queued (the call ends: a file wants it all)."""
        out = [d for _, fragments in self.queue for d in fragments]
        self.queue.clear()
        return out

    def _bound(self, room: float) -> None:
        waiting = self.waiting
        while waiting > room and len(self.queue) > 1:
            _, fragments = self.queue.popleft()
            waiting -= sum(map(len, fragments))
            self.dropped += 1
