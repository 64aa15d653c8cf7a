"""``appliance align eval``: the roll/yaw/pitch table measured on a real clip."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

from appliance.align.evaluate import evaluate_clip, markdown_table
from appliance.runtime.onnx import OnnxRuntimeBackend
from tests.conftest import shared_data
from tests.test_cli import appliance


def test_levelling_and_frontalization_reduce_the_measured_angles() -> None:
    row = evaluate_clip(shared_data("clips/lp_d20.mp4"), OnnxRuntimeBackend(threads=1), limit=40)
    assert row.frames == 40 and row.measured >= 38
    (roll_b, yaw_b, _), (roll_a, yaw_a, _) = row.before, row.after
    assert roll_b > 3.0 and yaw_b > 3.0  # this clip's head is tilted and turned
    assert roll_a < 0.5 * roll_b and yaw_a < 0.5 * yaw_b
    table = markdown_table([row])
    assert table.count("\n") == 2 and "| lp_d20 | 40 |" in table


def test_eval_command_writes_the_table(tmp_path: Path) -> None:
    (tmp_path / "clips").mkdir()
    shutil.copy(shared_data("clips/lp_d0.mp4"), tmp_path / "clips")
    out = tmp_path / "table.md"
    result = appliance(
        "align", "eval", "--data", str(tmp_path), "--frames", "8", "--markdown", str(out)
    )
    assert result.returncode == 0, result.stderr
    assert "[1/1] lp_d0.mp4: 8/8 frames measured" in result.stderr
    row = out.read_text().splitlines()[2].split("|")
    assert row[1].strip() == "lp_d0" and all(math.isfinite(float(c.strip(" °"))) for c in row[4:10])


def test_eval_command_without_clips_says_where_it_looked(tmp_path: Path) -> None:
    result = appliance("align", "eval", "--data", str(tmp_path))
    assert result.returncode == 1 and f"no clips in {tmp_path / 'clips'}" in result.stderr
