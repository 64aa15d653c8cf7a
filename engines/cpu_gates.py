"""The INT8 accuracy gates recomputed on another CPU, on the build's own evaluation inputs.

    python -m engines.cpu_gates inputs OUT.npz    (converter venv, ../shared/data): the
        evaluation inputs of every model, cut as the build cuts them (the TFLite
        detector and mesh make the face and eye crops), saved as uint8 crops
    python -m engines.cpu_gates measure INPUTS.npz [--json]   (NumPy and ONNX Runtime
        only, so it runs under aarch64 or AVX2-only emulation, tests/cpus): each
        bundle's FP32 and INT8 models on those inputs, here, and the gate between them

The manifest's gate figure was measured on the building machine; this says whether it
holds on the machine running ``measure``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from appliance.runtime.bundle import factory_bundle_dir, load_manifest, model_file
from engines import metrics
from engines.models import MODELS


def save_inputs(out: Path, data_dir: Path) -> None:
    from engines import build, calibration
    from engines.source import extract_tflite, fetch_wheel

    wheel = fetch_wheel(build.CACHE / "wheels")
    tflite = {n: extract_tflite(wheel, MODELS[n], build.CACHE / "tflite") for n in MODELS}
    inputs = build.Inputs(calibration.select_frames(data_dir, progress=print), tflite)
    arrays = {name: np.stack(inputs.for_model(spec, "evaluation")) for name, spec in MODELS.items()}
    np.savez_compressed(out, **arrays)  # type: ignore[arg-type]
    print(", ".join(f"{n}: {len(a)} inputs" for n, a in arrays.items()))


def measure(inputs_path: Path, bundles: Path) -> dict[str, dict[str, object]]:
    from engines.runners import OnnxRunner

    with np.load(inputs_path) as data:
        inputs = {k: data[k] for k in data.files}
    results: dict[str, dict[str, object]] = {}
    for name, spec in MODELS.items():
        bundle = bundles / name
        manifest = load_manifest(bundle)
        if model_file(manifest, "int8") is None:
            continue
        runs = {
            p: OnnxRunner(bundle / str(model_file(manifest, p)), spec) for p in ("fp32", "int8")
        }
        outputs = {p: [run(x) for x in inputs[name]] for p, run in runs.items()}
        gate = metrics.gate(spec, outputs["fp32"], outputs["int8"])
        results[name] = {
            "version": manifest["version"],
            "here": gate,
            "built": manifest["accuracy"]["int8"]["value"],
        }
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engines.cpu_gates")
    sub = parser.add_subparsers(dest="action", required=True)
    p = sub.add_parser("inputs")
    p.add_argument("out", type=Path)
    p.add_argument("--data", type=Path, default=None)
    p = sub.add_parser("measure")
    p.add_argument("inputs", type=Path)
    p.add_argument("--bundles", type=Path, default=None)
    p.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.action == "inputs":
        from engines.calibration import DEFAULT_DATA

        save_inputs(args.out, args.data or DEFAULT_DATA)
        return 0
    results = measure(args.inputs, args.bundles or factory_bundle_dir())
    if args.json:
        print(json.dumps(results))
    for name, r in results.items():
        g: dict[str, object] = r["here"]  # type: ignore[assignment]
        print(
            f"{name} {r['version']}: INT8 gate {g['metric']} here {g['value']} (worst "
            f"{g['worst']}), built {r['built']}, threshold {g['threshold']}: "
            f"{'PASS' if g['passed'] else 'FAIL'}"
        )
    return 0 if all(r["here"]["passed"] for r in results.values()) else 1  # type: ignore[index]


if __name__ == "__main__":
    sys.exit(main())
