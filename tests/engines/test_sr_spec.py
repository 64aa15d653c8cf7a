"""How a training phase recorded in a checkpoint reads in the bundle manifest."""

from __future__ import annotations

import pytest

from engines.sr.spec import PHASE_FIELDS, last_phase, phase_fields


def test_phases_recorded_before_a_field_existed_get_its_default() -> None:
    assert phase_fields([0, 0.5]) == {
        "from_step": 0,
        "clean_share": 0.5,
        "loss": "l1",
        "scales": [1.0],
        "face_share": None,
    }
    full = [62000, 0.9, "l2", [1.0, 0.8], 0.1]
    assert list(phase_fields(full).values()) == full
    assert tuple(phase_fields(full)) == PHASE_FIELDS


@pytest.mark.parametrize("phase", [[], [0, 0.5, "l1", [1.0], None, "extra"]])
def test_a_phase_of_the_wrong_length_is_refused(phase: list) -> None:
    with pytest.raises(ValueError, match="not a training phase"):
        phase_fields(phase)


def test_last_phase_is_what_the_network_was_last_trained_with() -> None:
    history = [[0, 0.5], [56000, 0.9, "l2"]]
    assert last_phase({"history": history}) == phase_fields([56000, 0.9, "l2"])
    assert last_phase({}) == phase_fields([0])  # a checkpoint from before phases: defaults
