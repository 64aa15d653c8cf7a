import threading
import time

import numpy as np

from appliance.frame import Frame
from appliance.pipeline import Passthrough, Pipeline, Sink, Stage
from tests.conftest import wait_until


def frame(seq: int) -> Frame:
    return Frame(image=np.zeros((4, 4, 3), np.uint8), seq=seq)


class Collect(Sink):
    name = "collect"

    def __init__(self, delay: float = 0.0) -> None:
        self.seqs: list[int] = []
        self.delay = delay

    def consume(self, f: Frame) -> bool:
        time.sleep(self.delay)
        self.seqs.append(f.seq)
        return True


class FailOnOdd(Stage):
    name = "fail_on_odd"

    def process(self, f: Frame) -> Frame:
        if f.seq % 2:
            raise ValueError("odd frame")
        return f


class RecordsConfig(Stage):
    """Records, for every frame, the config value it was processed under."""

    name = "records"

    def __init__(self) -> None:
        self.value = 0
        self.seen: list[tuple[int, int]] = []
        self.busy = threading.Event()

    def configure(self, config: int) -> None:
        self.value = config

    def process(self, f: Frame) -> Frame:
        before = self.value
        self.busy.set()
        time.sleep(0.02)
        self.seen.append((before, self.value))  # would differ if changed mid-frame
        return f


def test_frames_flow_in_order_through_stages_to_sinks() -> None:
    sink = Collect()
    pipe = Pipeline([Passthrough(), Passthrough()], [sink])
    pipe.start()
    try:
        for i in range(1, 6):
            pipe.submit(frame(i))
            assert wait_until(lambda i=i: i in sink.seqs)
    finally:
        assert pipe.stop() == []
    assert sink.seqs == [1, 2, 3, 4, 5]
    assert pipe.stats()["frames_out"] == 5


def test_a_failing_frame_is_dropped_and_counted_and_the_pipeline_goes_on() -> None:
    sink = Collect()
    pipe = Pipeline([FailOnOdd()], [sink])
    pipe.start()
    try:
        for i in range(1, 7):
            pipe.submit(frame(i))
            time.sleep(0.01)
        assert wait_until(lambda: 6 in sink.seqs)
    finally:
        pipe.stop()
    stats = pipe.stats()["stages"]["fail_on_odd"]
    assert sink.seqs == [2, 4, 6]
    assert stats["errors"] == 3 and stats["dropped"] == 3
    assert pipe.failure() is None


def test_a_slow_sink_drops_stale_frames_instead_of_queueing() -> None:
    sink = Collect(delay=0.05)
    pipe = Pipeline([Passthrough()], [sink])
    pipe.start()
    try:
        for i in range(1, 41):
            pipe.submit(frame(i))
            time.sleep(0.005)
        assert wait_until(lambda: 40 in sink.seqs)
    finally:
        pipe.stop()
    assert len(sink.seqs) < 20  # most frames skipped, the newest delivered
    assert pipe.stats()["stages"]["collect"]["dropped"] >= 20


def test_config_changes_apply_between_frames_never_mid_frame() -> None:
    stage = RecordsConfig()
    pipe = Pipeline([stage], [Collect()])
    pipe.start()
    try:
        for i in range(1, 30):
            pipe.submit(frame(i))
            if i % 3 == 0:
                pipe.configure(i)
            time.sleep(0.007)
        assert wait_until(lambda: stage.value == 27)
    finally:
        pipe.stop()
    assert stage.seen and all(before == after for before, after in stage.seen)


def test_stop_joins_every_worker_quickly() -> None:
    pipe = Pipeline([Passthrough()], [Collect()])
    pipe.start()
    start = time.monotonic()
    assert pipe.stop(timeout=1.0) == []
    assert time.monotonic() - start < 0.5
    assert not [t for t in threading.enumerate() if t.name.startswith("pipeline-")]


class Wedged(Stage):
    name = "wedged"

    def __init__(self) -> None:
        self.release = threading.Event()
        self.closed = False

    def process(self, f: Frame) -> Frame:
        self.release.wait(5.0)
        return f

    def close(self) -> None:
        self.closed = True


def test_a_stage_stuck_on_a_frame_is_reported_and_not_closed_under_its_feet() -> None:
    stage = Wedged()
    pipe = Pipeline([stage], [Collect()])
    pipe.start()
    try:
        pipe.submit(frame(1))
        assert wait_until(lambda: pipe.stuck(0.1) is not None, timeout=2.0)
        assert "wedged" in (pipe.stuck(0.1) or "")
        assert pipe.stop(timeout=0.2) == ["wedged"]
        assert not stage.closed
    finally:
        stage.release.set()
    assert wait_until(lambda: pipe.stuck(0.1) is None)
