"""``appliance align eval|demo``: the correction measured on clips, and pictures of it."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

DEFAULT_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


def add_align_parser(sub: Any) -> None:
    align = sub.add_parser("align", help="face alignment: evaluation on clips, demo images")
    commands = align.add_subparsers(dest="align_command", required=True, metavar="COMMAND")
    evaluate = commands.add_parser(
        "eval", help="head roll/yaw/pitch before and after correction, per clip"
    )
    evaluate.add_argument(
        "--data", type=Path, default=DEFAULT_DATA, help="data directory with clips/*.mp4"
    )
    evaluate.add_argument("--frames", type=int, help="at most this many frames per clip")
    evaluate.add_argument("--markdown", type=Path, help="also write the table to this file")
    evaluate.set_defaults(align_func=_eval)
    demo = commands.add_parser("demo", help="before/after images of each feature")
    demo.add_argument(
        "--data", type=Path, default=DEFAULT_DATA, help="data directory with clips/*.mp4"
    )
    demo.add_argument("--out", type=Path, default=Path("docs/images"), help="output directory")
    demo.set_defaults(align_func=_demo)


def _eval(args: argparse.Namespace) -> int:
    from appliance.align.evaluate import evaluate_clip, markdown_table
    from appliance.runtime.onnx import OnnxRuntimeBackend

    clips = sorted((args.data / "clips").glob("*.mp4"))
    if not clips:
        print(f"appliance align eval: no clips in {args.data / 'clips'}", file=sys.stderr)
        return 1
    backend = OnnxRuntimeBackend(threads=1)
    rows = []
    for n, clip in enumerate(clips, 1):
        start = time.monotonic()
        row = evaluate_clip(clip, backend, limit=args.frames)
        rows.append(row)
        print(
            f"[{n}/{len(clips)}] {clip.name}: {row.measured}/{row.frames} frames measured "
            f"in {time.monotonic() - start:.0f} s",
            file=sys.stderr,
            flush=True,
        )
    table = markdown_table(rows)
    print(table)
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(table + "\n")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from appliance.align.demo import write_demo

    for path in write_demo(args.out, args.data):
        print(path)
    return 0


def main(args: argparse.Namespace) -> int:
    return int(args.align_func(args))
