"""The ``appliance`` command."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from appliance import __version__


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected WIDTHxHEIGHT, e.g. 1280x720, got {text!r}"
        ) from None
    if w <= 0 or h <= 0 or w % 2 or h % 2:
        raise argparse.ArgumentTypeError(f"size must be positive and even, got {text!r}")
    return w, h


def _positive(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="appliance", description="Firmware service for an AI conference camera."
    )
    parser.add_argument("--version", action="version", version=f"appliance {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run the daemon")
    run.add_argument("--config", type=Path, help="config file (YAML); defaults if omitted")
    run.add_argument("--source", help="source URI for this run, overriding the config")

    check = sub.add_parser("check-config", help="validate a config file; exit 1 if invalid")
    check.add_argument("file", type=Path)
    check.add_argument("--print", action="store_true", help="print the config with defaults")

    bench = sub.add_parser(
        "bench", help="figures: the frame path (latency, fps, drops), tracking, alignment"
    )
    bench.add_argument(
        "part",
        nargs="?",
        choices=["frame-path", "tracking", "align", "enhance", "codec"],
        default="frame-path",
        help="frame-path: capture -> stages -> MJPEG, paced (default); tracking: the face "
        "tracker alone on one core per size; align: each alignment feature on one core; "
        "enhance: super-resolution per size and precision on one core; codec: the keypoint "
        "codec's encoder, sender and receiver per frame on one core",
    )
    bench.add_argument("--source", default="synthetic://", help="source URI (synthetic://)")
    bench.add_argument("--seconds", type=_positive, default=10.0, help="measuring time (10)")
    bench.add_argument("--size", type=_size, default=(1280, 720), help="WxH (1280x720)")
    bench.add_argument("--fps", type=_positive, default=30.0, help="source frame rate (30)")
    bench.add_argument(
        "--stages",
        choices=["passthrough", "daemon"],
        default="passthrough",
        help="a passthrough stage (the frame path alone), or the daemon's own stages "
        "(face tracking, framing) with their default settings",
    )
    bench.add_argument("--json", action="store_true", help="print one JSON object")

    hw = sub.add_parser("hw", help="detected board and the backend each part will use")
    hw.add_argument("--json", action="store_true", help="print one JSON object")

    from appliance.align.cli import add_align_parser
    from appliance.audio.cli import add_audio_parser
    from appliance.codec.cli import add_codec_parser
    from appliance.codec.receive import add_receive_parser
    from appliance.fleet.cli import add_fleet_parser
    from appliance.uvc.cli import add_gadget_parser
    from engines.cli import add_engines_parser  # light: the converters load in build only
    from ota.cli import add_ota_parser

    add_align_parser(sub)
    add_audio_parser(sub)
    add_codec_parser(sub)
    add_receive_parser(sub)
    add_fleet_parser(sub)
    add_gadget_parser(sub)
    add_engines_parser(sub)
    add_ota_parser(sub)
    return parser


def _cmd_run(args: argparse.Namespace) -> int:
    import signal

    # Until the daemon's handlers are in place, a SIGHUP (reload) must not kill it.
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    from appliance import daemon
    from appliance.capture.uri import parse_source_uri
    from appliance.config import ConfigError
    from appliance.logs import setup_logging

    setup_logging()
    if args.source:
        try:
            parse_source_uri(args.source)
        except ValueError as exc:
            print(f"appliance run: --source: {exc}", file=sys.stderr)
            return daemon.EXIT_CONFIG
    try:
        manager = daemon.load_manager(args.config)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return daemon.EXIT_CONFIG
    setup_logging(manager.config.logging.level)
    return daemon.run(manager, source=args.source)


def _cmd_check_config(args: argparse.Namespace) -> int:
    from appliance.config import ConfigError, dump_config, load_config

    try:
        config = load_config(args.file)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 1
    print(dump_config(config) if args.print else f"{args.file}: valid")
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    from appliance import bench
    from appliance.capture.uri import parse_source_uri

    try:
        parse_source_uri(args.source)
        return bench.main(args)
    except (ValueError, RuntimeError) as exc:
        print(f"appliance bench: {exc}", file=sys.stderr)
        return 1


def _cmd_hw(args: argparse.Namespace) -> int:
    from appliance.hw.probe import format_report, probe

    report = probe()
    print(json.dumps(report.to_dict(), indent=2) if args.json else format_report(report))
    return 0


def _cmd_align(args: argparse.Namespace) -> int:
    from appliance.align.cli import main as align_main

    return align_main(args)


def _cmd_audio(args: argparse.Namespace) -> int:
    from appliance.audio.cli import main as audio_main

    return audio_main(args)


def _cmd_codec(args: argparse.Namespace) -> int:
    from appliance.codec.cli import main as codec_main

    return codec_main(args)


def _cmd_receive(args: argparse.Namespace) -> int:
    from appliance.codec.receive import main as receive_main

    return receive_main(args)


def _cmd_fleet(args: argparse.Namespace) -> int:
    from appliance.fleet.cli import main as fleet_main

    return fleet_main(args)


def _cmd_ota(args: argparse.Namespace) -> int:
    from ota.cli import main as ota_main

    return ota_main(args)


def _cmd_gadget(args: argparse.Namespace) -> int:
    from appliance.uvc.cli import main as gadget_main

    return gadget_main(args)


def _cmd_engines(args: argparse.Namespace) -> int:
    return int(args.engines_func(args))


COMMANDS = {
    "run": _cmd_run,
    "check-config": _cmd_check_config,
    "bench": _cmd_bench,
    "hw": _cmd_hw,
    "align": _cmd_align,
    "audio": _cmd_audio,
    "codec": _cmd_codec,
    "receive": _cmd_receive,
    "fleet": _cmd_fleet,
    "engines": _cmd_engines,
    "gadget": _cmd_gadget,
    "ota": _cmd_ota,
}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return COMMANDS[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
