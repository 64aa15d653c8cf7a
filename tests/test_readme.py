"""The README is part of the product: its commands and config reference must be true."""

import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from appliance.config import Config
from appliance.config.manager import ConfigManager

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def leaf_defaults(model: BaseModel, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in type(model).model_fields:
        value = getattr(model, name)
        if isinstance(value, BaseModel):
            out |= leaf_defaults(value, f"{prefix}{name}.")
        else:
            out[f"{prefix}{name}"] = value
    return out


def reference_rows() -> dict[str, tuple[str, str]]:
    section = README.split("<!-- config-reference", 1)[1].split("\n\n", 1)[0]
    rows = re.findall(r"^\| `([\w.]+)` \| `([^`]*)` \| (.*) \|$", section, re.M)
    return {key: (default, meaning) for key, default, meaning in rows}


def test_the_readme_starts_with_the_two_commands_and_ci_runs_the_test_one() -> None:
    first_block = README.split("```sh\n", 1)[1].split("```", 1)[0].strip().splitlines()
    assert [line.split("#")[0].strip() for line in first_block] == ["make run", "make test"]
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_config_reference_lists_every_field_with_its_default() -> None:
    rows = reference_rows()
    defaults = leaf_defaults(Config())
    assert set(rows) == set(defaults)
    for key, value in defaults.items():
        shown = rows[key][0]
        if isinstance(value, list):
            assert shown == "[" + ", ".join(value) + "]", key
        elif isinstance(value, bool):
            assert shown == str(value).lower(), key
        elif value == "":
            assert shown == '""', key
        else:
            assert shown == str(value), key


def test_config_reference_marks_exactly_the_restart_fields() -> None:
    marked = {key for key, (_, meaning) in reference_rows().items() if "*restart*" in meaning}
    assert marked == set(ConfigManager.RESTART_FIELDS)
