"""A stage that drops or fails on frames makes the daemon degraded, with the stage named."""

from __future__ import annotations

from appliance.pipeline.health import MIN_FRAMES, WINDOW_S, DropWatch


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def stats(processed: int, dropped: int = 0, errors: int = 0) -> dict:
    return {"processed": processed, "dropped": dropped, "errors": errors}


def test_a_stage_that_keeps_up_is_fine_and_one_that_drops_a_fifth_is_not() -> None:
    clock = Clock()
    watch = DropWatch(clock)
    clock.now += 10
    assert watch.problems({"vision": stats(300, 20), "align": stats(300)}) == []
    clock.now += 10
    [problem] = watch.problems({"vision": stats(400, 200), "align": stats(400)})
    assert problem.startswith("vision: dropped 200 of 600 frames (33%) in 20 s")


def test_failures_are_named_before_drops() -> None:
    clock = Clock()
    watch = DropWatch(clock)
    clock.now += 5
    [problem] = watch.problems({"enhance": stats(100, 40, 40)})
    assert problem == "enhance: failed on 40 of 140 frames in 5 s"


def test_only_the_recent_window_counts() -> None:
    clock = Clock()
    watch = DropWatch(clock)
    clock.now += 5
    assert watch.problems({"vision": stats(100, 100)})  # a bad start...
    for step in range(1, 12):  # ...then half a minute and more of clean frames
        clock.now += 5
        result = watch.problems({"vision": stats(100 + 150 * step, 100)})
    assert clock.now - 100 > WINDOW_S and result == []


def test_too_few_frames_say_nothing_and_a_reset_starts_again() -> None:
    clock = Clock()
    watch = DropWatch(clock)
    clock.now += 1
    assert watch.problems({"vision": stats(5, MIN_FRAMES - 6)}) == []
    clock.now += 1
    assert watch.problems({"vision": stats(0)}) == []  # counters reset (a bench)
    clock.now += 1
    assert watch.problems({"vision": stats(100, 10)}) == []
