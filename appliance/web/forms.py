"""The settings form, generated from the config schema (the one the file and MQTT use):
fields from its JSON schema, values back into a config patch, errors onto fields."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from typing import Any

from appliance.config import Config

SKIPPED = {"version"}  # fixed by the file format, not a setting
CHECKBOXES = "_checkbox"  # hidden inputs naming the checkboxes the form carried


@dataclass
class Field:
    path: str  # "web.jpeg_quality": also the form input's name
    label: str
    kind: str  # checkbox | select | number | text | lines
    value: Any
    help: str = ""
    restart: bool = False
    choices: list[str] = field(default_factory=list)
    attrs: dict[str, str] = field(default_factory=dict)
    error: str = ""


@dataclass
class Section:
    name: str
    title: str
    fields: list[Field]


@cache
def config_schema() -> dict[str, Any]:
    """The JSON schema of the config (fixed for the process: built once, never edited)."""
    return Config.model_json_schema()


def sections(config: Config) -> list[Section]:
    schema = config_schema()
    values = config.model_dump(mode="json")
    out = []
    for name, node in schema["properties"].items():
        if name in SKIPPED:
            continue
        section = schema["$defs"][node["$ref"].rsplit("/", 1)[-1]]
        fields = [
            _field(f"{name}.{key}", prop, values[name][key])
            for key, prop in section.get("properties", {}).items()
        ]
        out.append(Section(name, section.get("title", name).removesuffix("Config"), fields))
    return out


def _field(path: str, prop: dict[str, Any], value: Any) -> Field:
    label = path.split(".", 1)[1].replace("_", " ")
    item = Field(path, label, "text", value, prop.get("description", ""), bool(prop.get("restart")))
    kind = prop.get("type")
    if "enum" in prop:
        item.kind, item.choices = "select", [str(c) for c in prop["enum"]]
    elif kind == "boolean":
        item.kind = "checkbox"
    elif kind in ("integer", "number"):
        item.kind = "number"
        item.attrs["step"] = str(prop.get("multipleOf", 1)) if kind == "integer" else "any"
        for bound, attr in (("minimum", "min"), ("maximum", "max")):
            if bound in prop:
                item.attrs[attr] = str(prop[bound])
    elif kind == "array":
        item.kind = "lines"
        item.value = "\n".join(str(v) for v in value)
    elif "maxLength" in prop:
        item.attrs["maxlength"] = str(prop["maxLength"])
    return item


def patch_from_form(form: Any, config: Config) -> dict[str, Any]:
    """The form's values as a config patch. Numbers stay strings when they do not parse,
    so the schema itself refuses them with its usual message."""
    patch: dict[str, Any] = {}
    for section in sections(config):
        values: dict[str, Any] = {}
        for item in section.fields:
            if item.kind == "checkbox":
                # An unticked box sends nothing: the hidden marker says it was on the form.
                if item.path in form.getlist(CHECKBOXES):
                    values[item.path.split(".", 1)[1]] = item.path in form
                continue
            if item.path not in form:
                continue
            raw = form.get(item.path, "")
            key = item.path.split(".", 1)[1]
            if item.kind == "number":
                values[key] = _number(raw)
            elif item.kind == "lines":
                values[key] = [line.strip() for line in raw.splitlines() if line.strip()]
            else:
                values[key] = raw
        if values:
            patch[section.name] = values
    return patch


def _number(raw: str) -> Any:
    text = raw.strip()
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return raw


def attach_errors(all_sections: list[Section], errors: list[str]) -> list[str]:
    """Put each ``path: message`` on its field; returns the ones that fit no field."""
    by_path = {item.path: item for section in all_sections for item in section.fields}
    left = []
    for error in errors:
        path, _, message = error.partition(": ")
        base = path.split("[", 1)[0]
        if base in by_path:
            by_path[base].error = message or error
        else:
            left.append(error)
    return left


def fill(all_sections: list[Section], form: Any) -> None:
    """Show what was submitted (not the running values) next to its errors."""
    for section in all_sections:
        for item in section.fields:
            if item.kind == "checkbox" and item.path in form.getlist(CHECKBOXES):
                item.value = item.path in form
            elif item.kind != "checkbox" and item.path in form:
                item.value = form.get(item.path)
