"""The model bundle: a directory with ``manifest.json`` and the files it lists.

Light: stdlib + NumPy only (``check_reference`` runs a loaded Model), so the
daemon, the OTA agent and the tests can read and verify bundles without the
converters. The format is documented in ``engines/README.md``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from appliance.paths import find_data_dir
from appliance.runtime import agreement

if TYPE_CHECKING:
    from appliance.runtime.base import Model

FORMAT = 1
MANIFEST = "manifest.json"

# Every key a format-1 manifest may carry: anything else is refused, so a typo or a
# field from a newer format never passes silently.
TOP_KEYS = {
    "format",
    "name",
    "version",
    "created",
    "description",
    "provenance",
    "compatibility",
    "inputs",
    "outputs",
    "postprocess",
    "files",
    "accuracy",
    "reference",
}
OPTIONAL_TOP = {"description", "postprocess"}
NESTED_KEYS = {
    "provenance": {"source", "converters", "recipe", "calibration", "notes"},
    "compatibility": {
        "onnx_opset",
        "onnx_ir_version",
        "min_onnxruntime",
        "tensorrt",
        "input_layout",
        "batch",
    },
    "reference": {"file", "count", "input_key", "tolerance"},
    "accuracy": {"conversion", "int8"},
}
INPUT_KEYS = {"name", "shape", "dtype", "layout", "color", "scale", "offset", "range", "roi"}
OUTPUT_KEYS = {"name", "shape", "dtype", "description", "units"}
FILE_KEYS = {"sha256", "size", "role", "precision"}
PRECISIONS = ("fp32", "int8")


class BundleError(Exception):
    """A bundle that must not be used; the message names the bundle and the file."""


@dataclass(frozen=True)
class ReferenceCheck:
    """One judgement of a model against its bundle's reference: an output compared raw
    (``value``: max |got - stored|) or, with ``metric``, a gate metric (``output``: its
    name, ``value``: its mean over the reference inputs)."""

    precision: str
    output: str
    value: float
    allowed: float
    higher_is_better: bool = False
    metric: bool = False

    @property
    def ok(self) -> bool:
        if self.metric:  # the gates' own rule, so a check passes exactly where a gate does
            return agreement.meets(self.value, self.allowed, self.higher_is_better)
        return self.value <= self.allowed

    def describe(self) -> str:
        if self.metric:
            sign = ">=" if self.higher_is_better else "<"
            return f"{self.output} {self.value:.4g} (needs {sign} {self.allowed:.4g})"
        return f"{self.output} max diff {self.value:.3g} (allowed {self.allowed:.3g})"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def prepare_input(rgb: np.ndarray, scale: float, offset: float, layout: str) -> np.ndarray:
    """uint8 RGB batch (N, H, W, 3) -> float32 model input, exactly as the manifest says."""
    x = rgb.astype(np.float32) * np.float32(scale) + np.float32(offset)
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2) if layout == "NCHW" else x)


def _structure_problems(m: Any) -> list[str]:
    if not isinstance(m, dict):
        return [f"{MANIFEST}: top level must be a JSON object"]
    problems = [f"{MANIFEST}: unknown key {k!r}" for k in sorted(set(m) - TOP_KEYS)]
    problems += [f"{MANIFEST}: missing key {k!r}" for k in sorted(TOP_KEYS - OPTIONAL_TOP - set(m))]
    if "format" in m and m["format"] != FORMAT:
        problems.append(f"{MANIFEST}: format {m['format']!r} is not supported (expected {FORMAT})")
    for key, allowed in NESTED_KEYS.items():
        value = m.get(key, {})
        if not isinstance(value, dict):
            problems.append(f"{MANIFEST}: {key} must be an object")
            continue
        problems += [f"{MANIFEST}: {key}: unknown key {k!r}" for k in sorted(set(value) - allowed)]
    for key, allowed in (("inputs", INPUT_KEYS), ("outputs", OUTPUT_KEYS)):
        items = m.get(key, [])
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            problems.append(f"{MANIFEST}: {key} must be a list of objects")
            continue
        for item in items:
            problems += [
                f"{MANIFEST}: {key}[{item.get('name')!r}]: unknown key {k!r}"
                for k in sorted(set(item) - allowed)
            ]
    files = m.get("files", {})
    if not isinstance(files, dict):
        return [*problems, f"{MANIFEST}: files must be an object"]
    for name, entry in files.items():
        if not isinstance(entry, dict):
            problems.append(f"{MANIFEST}: files[{name!r}] must be an object")
            continue
        problems += [
            f"{MANIFEST}: files[{name!r}]: unknown key {k!r}"
            for k in sorted(set(entry) - FILE_KEYS)
        ]
        if "/" in name or "\\" in name or name in ("", ".", "..", MANIFEST):
            problems.append(f"{MANIFEST}: files: {name!r} is not a plain file name")
    return problems


def load_manifest(bundle_dir: Path) -> dict[str, Any]:
    """The parsed manifest; BundleError if it is missing, not JSON, or not format 1."""
    path = Path(bundle_dir) / MANIFEST
    try:
        manifest: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BundleError(f"{bundle_dir}: {MANIFEST} is missing") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(f"{bundle_dir}: {MANIFEST} is not valid JSON: {exc}") from None
    problems = _structure_problems(manifest)
    if problems:
        raise BundleError(f"{bundle_dir}: " + "; ".join(problems))
    return manifest


def verify_bundle(bundle_dir: Path) -> list[str]:
    """Everything wrong with a bundle, one clear message each (empty list: good)."""
    bundle_dir = Path(bundle_dir)
    if not bundle_dir.is_dir():
        return [f"{bundle_dir}: not a directory"]
    try:
        manifest = load_manifest(bundle_dir)
    except BundleError as exc:
        return [str(exc)]
    problems = []
    files: dict[str, dict[str, Any]] = manifest["files"]
    for name, entry in sorted(files.items()):
        path = bundle_dir / name
        if not path.is_file():
            problems.append(f"{name}: missing (listed in {MANIFEST})")
            continue
        size = path.stat().st_size
        if size != entry.get("size"):
            problems.append(f"{name}: size {size} bytes, {MANIFEST} says {entry.get('size')}")
        digest = sha256_file(path)
        if digest != entry.get("sha256"):
            problems.append(
                f"{name}: sha256 mismatch ({MANIFEST} {entry.get('sha256')}, file {digest})"
            )
    for path in sorted(bundle_dir.iterdir()):
        if path.name != MANIFEST and path.name not in files:
            problems.append(f"{path.name}: not listed in {MANIFEST}")
    reference = manifest["reference"].get("file")
    if reference not in files:
        problems.append(f"{MANIFEST}: reference file {reference!r} is not in files")
    int8 = manifest["accuracy"].get("int8", {})
    if model_file(manifest, "int8") and not int8.get("passed", False):
        problems.append(f"{MANIFEST}: INT8 model shipped although its accuracy gate failed")
    if not model_file(manifest, "fp32"):
        problems.append(f"{MANIFEST}: no fp32 model in files")
    return [f"{bundle_dir.name}: {p}" for p in problems]


def model_file(manifest: dict[str, Any], precision: str) -> str | None:
    """The bundle's ONNX file for ``precision``, or None if it does not ship one."""
    for name, entry in manifest["files"].items():
        if entry.get("role") == "model" and entry.get("precision") == precision:
            return str(name)
    return None


def check_reference(bundle_dir: Path, model: Model) -> list[ReferenceCheck]:
    """Re-run the stored reference inputs through ``model``, on whatever backend loaded it.

    This is the health check a freshly installed bundle must pass on the device itself.
    A precision's tolerance is either raw (``atol``, ``rtol``: every output within
    ``atol + rtol * max|stored|``) or a gate (``metric``, ``threshold``: the metric of
    ``appliance.runtime.agreement`` between the outputs stored for ``against`` and the
    ones computed here, mean over the reference inputs). A precision with no stored
    tolerance (TensorRT FP16) is judged by the INT8 one against FP32.
    """
    bundle_dir = Path(bundle_dir)
    manifest = load_manifest(bundle_dir)
    ref = manifest["reference"]
    spec = manifest["inputs"][0]
    with np.load(bundle_dir / ref["file"]) as data:
        stored = {k: data[k] for k in data.files}
    x = prepare_input(stored[ref["input_key"]], spec["scale"], spec["offset"], spec["layout"])
    known = model.precision in PRECISIONS
    tol = ref["tolerance"][model.precision if known else "int8"]
    stored_as = tol.get("against", model.precision if known else "fp32")
    outputs = [o["name"] for o in manifest["outputs"]]
    got: list[dict[str, np.ndarray]] = []
    for i in range(x.shape[0]):  # the models have a fixed batch of 1
        result = model.run({spec["name"]: x[i : i + 1]})
        got.append({o: result[o] for o in outputs})
    want = [{o: stored[f"{stored_as}/{o}"][i : i + 1] for o in outputs} for i in range(len(got))]
    if "metric" in tol:
        values = agreement.samples(tol["metric"], want, got)
        value = float(values.mean()) if values.size else float("nan")  # NaN never passes
        higher, threshold = bool(tol["higher_is_better"]), float(tol["threshold"])
        return [ReferenceCheck(model.precision, tol["metric"], value, threshold, higher, True)]
    checks = []
    for o in outputs:
        stacked = np.concatenate([w[o] for w in want])
        diff = float(np.max(np.abs(np.concatenate([g[o] for g in got]) - stacked)))
        allowed = tol["atol"] + tol["rtol"] * float(np.max(np.abs(stacked)))
        checks.append(ReferenceCheck(model.precision, o, diff, allowed))
    return checks


def reference_mismatch(bundle_dir: Path, model: Model) -> str | None:
    """Why ``model`` does not reproduce its bundle's reference outputs here, or None.

    A precision that fails this computes something else on this machine (an integer
    kernel that saturates on this CPU, say): ``auto`` never picks it.
    """
    bad = [c for c in check_reference(bundle_dir, model) if not c.ok]
    if not bad:
        return None
    return "reference outputs differ here: " + ", ".join(c.describe() for c in bad)


def load_verified(bundle_dir: Path) -> dict[str, Any]:
    """The manifest of a bundle that verifies; BundleError listing every problem otherwise.

    Every model load goes through here: the device never runs an unverified model.
    """
    problems = verify_bundle(bundle_dir)
    if problems:
        raise BundleError(f"{bundle_dir}: refused: " + "; ".join(problems))
    return load_manifest(bundle_dir)


def factory_bundle_dir() -> Path:
    """The directory holding the factory bundles shipped with this release."""
    return find_data_dir("bundles", "engines/bundles", "APPLIANCE_BUNDLES_DIR")
