"""``appliance engines build|verify|list|bench`` (also ``python -m engines ...``).

Wiring into the main CLI is one line, ``add_engines_parser(sub)``; the parsed args
carry ``engines_func``, so ``return args.engines_func(args)`` runs the command.
Only ``build`` needs the converter venv; the others need NumPy and ONNX Runtime.
"""

from __future__ import annotations

import argparse
import builtins
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from appliance.runtime.base import time_model
from appliance.runtime.bundle import (
    PRECISIONS,
    BundleError,
    check_reference,
    factory_bundle_dir,
    load_manifest,
    model_file,
)
from appliance.runtime.bundle import verify_bundle as _verify_bundle
from appliance.runtime.onnx import OnnxRuntimeBackend
from engines import BUNDLES_DIR

Progress = Callable[[str], None]
CONVERTERS = ("tensorflow", "tf2onnx", "onnx", "onnxruntime", "ai_edge_litert", "cv2")


def _progress(line: str) -> None:
    print(line, flush=True)


def bundle_dirs(paths: Sequence[Path]) -> Sequence[Path]:
    """The given bundle directories, or every bundle under a directory of bundles."""
    found: builtins.list[Path] = []
    for path in paths or [factory_bundle_dir()]:
        if (path / "manifest.json").exists() or not path.is_dir():
            found.append(path)
        else:
            found += sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))
    return found


def build(
    names: Sequence[str],
    out_dir: Path = BUNDLES_DIR,
    progress: Progress = _progress,
    data_dir: Path | None = None,
    allow_fp32_only: bool = False,
) -> int:
    import importlib.util

    missing = [m for m in CONVERTERS if importlib.util.find_spec(m) is None]
    if missing:
        print(
            f"engines build needs the converter venv (make engines); missing: {missing}",
            file=sys.stderr,
        )
        return 2
    from engines import build as recipe  # the heavy imports happen here and nowhere else

    data = recipe.calibration.DEFAULT_DATA if data_dir is None else data_dir
    return recipe.build(
        builtins.list(names), out_dir, progress, data, allow_fp32_only=allow_fp32_only
    )


def verify(dirs: Sequence[Path]) -> int:
    """Hashes, manifest, accuracy gates and reference outputs; exit 0 only if all hold."""
    bad = 0
    for d in bundle_dirs(dirs):
        problems = _verify_bundle(d)
        if problems:
            bad += 1
            print(f"{d.name}: REFUSED", file=sys.stderr)
            for p in problems:
                print(f"  {p}", file=sys.stderr)
            continue
        m = load_manifest(d)
        conv = m["accuracy"]["conversion"]
        print(f"{m['name']} {m['version']}: files ok")
        worst = max(v["max_abs"] / v["tolerance"] for v in conv["outputs"].values())
        against = conv.get("against", "TFLite")
        print(
            f"  conversion vs {against}: {'PASS' if conv['passed'] else 'FAIL'} "
            f"(worst output at {worst:.0%} of its tolerance)"
        )
        g = m["accuracy"]["int8"]
        sign = ">=" if g["higher_is_better"] else "<"
        print(
            f"  INT8 gate {g['metric']}: {g['value']:.4g} (worst {g['worst']:.4g}), needs "
            f"{sign} {g['threshold']}: {'PASS' if g['passed'] else 'FAIL (FP32 only)'}"
        )
        ok = conv["passed"]
        backend = OnnxRuntimeBackend()
        checks = [
            c
            for precision in PRECISIONS
            if model_file(m, precision)
            for c in check_reference(d, backend.load(d, precision))
        ]
        for c in checks:
            ok &= c.ok
            print(f"  reference {c.precision} {c.describe()} {'ok' if c.ok else 'MISMATCH'}")
        bad += not ok
    return 1 if bad else 0


def list_bundles(dirs: Sequence[Path]) -> int:
    """One line per bundle: name, version, precisions and sizes."""
    status = 0
    for d in bundle_dirs(dirs):
        try:
            m = load_manifest(d)
        except BundleError as exc:
            print(exc, file=sys.stderr)
            status = 1
            continue
        sizes = []
        for precision in PRECISIONS:
            name = model_file(m, precision)
            if name:
                sizes.append(f"{precision} {m['files'][name]['size'] / 1e6:.2f} MB")
        total = sum(f["size"] for f in m["files"].values()) / 1e6
        print(f"{m['name']:<22} {m['version']:<11} {', '.join(sizes)}  (bundle {total:.2f} MB)")
    return status


def bench(dirs: Sequence[Path], runs: int = 200, threads: int = 1) -> int:
    """ms per inference of each shipped precision, ONNX Runtime CPU."""
    backend = OnnxRuntimeBackend(threads=threads)
    for d in bundle_dirs(dirs):
        m = load_manifest(d)
        line = []
        for precision in PRECISIONS:
            if model_file(m, precision) is None:
                continue
            seconds = time_model(backend.load(d, precision), runs, warmup=10)
            line.append(f"{precision} {1e3 * seconds:.2f} ms")
        print(f"{m['name']:<22} {', '.join(line)}  (median of {runs}, {threads} thread)")
    return 0


def add_engines_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``engines`` with its subcommands to an argparse subparsers object."""
    engines = subparsers.add_parser("engines", help="make, check and list model bundles")
    sub = engines.add_subparsers(dest="engines_command", required=True, metavar="ACTION")
    dirs = {
        "nargs": "*",
        "type": Path,
        "metavar": "BUNDLE",
        "help": "bundle directories or a directory of them (default: the factory bundles)",
    }

    p = sub.add_parser("build", help="build bundles from the pinned sources (converter venv)")
    p.add_argument("names", nargs="*", help="models to build (default: all)")
    p.add_argument("--out", type=Path, default=BUNDLES_DIR, help="output directory")
    p.add_argument("--data", type=Path, help="shared data directory (default ../shared/data)")
    p.add_argument(
        "--allow-fp32-only",
        action="store_true",
        help="exit 0 when a model ships FP32 only because its INT8 gate failed",
    )
    p.set_defaults(
        engines_func=lambda a: build(
            a.names, a.out, data_dir=a.data, allow_fp32_only=a.allow_fp32_only
        )
    )

    p = sub.add_parser("verify", help="check hashes, gates and reference outputs")
    p.add_argument("dirs", **dirs)
    p.set_defaults(engines_func=lambda a: verify(a.dirs))

    p = sub.add_parser("list", help="name, version, precisions and sizes")
    p.add_argument("dirs", **dirs)
    p.set_defaults(engines_func=lambda a: list_bundles(a.dirs))

    p = sub.add_parser("bench", help="ms per inference per precision (ONNX Runtime CPU)")
    p.add_argument("dirs", **dirs)
    p.add_argument("--runs", type=int, default=200)
    p.add_argument("--threads", type=int, default=1)
    p.set_defaults(engines_func=lambda a: bench(a.dirs, a.runs, a.threads))
    return engines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engines")
    add_engines_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["engines", *(sys.argv[1:] if argv is None else argv)])
    return int(args.engines_func(args))


# The name the main CLI's owner asked for; defined last so it shadows nothing above.
list = list_bundles
