import threading

from appliance.pipeline.queue import LatestQueue


def test_newest_frame_wins_and_drops_are_counted() -> None:
    q: LatestQueue[int] = LatestQueue(maxsize=2)
    assert q.put(1) and q.put(2)
    assert not q.put(3)  # 1 is dropped to make room
    assert q.dropped == 1
    assert [q.get(0), q.get(0)] == [2, 3]
    assert q.get(0.01) is None


def test_close_wakes_a_blocked_consumer() -> None:
    q: LatestQueue[int] = LatestQueue()
    got: list[int | None] = []
    t = threading.Thread(target=lambda: got.append(q.get(5.0)))
    t.start()
    q.close()
    t.join(1.0)
    assert not t.is_alive() and got == [None]
    q.put(1)  # ignored once closed
    assert len(q) == 0
