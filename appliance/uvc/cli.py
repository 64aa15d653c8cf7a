"""``appliance gadget up|down|status``: the USB webcam gadget (camera, and microphone where
the board profile has one), from the board profile."""

from __future__ import annotations

import argparse
import json
import socket
import sys
from pathlib import Path

from appliance.hw.profile import BoardProfile


def add_gadget_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("gadget", help="the USB webcam gadget (UVC, UAC2 microphone) in configfs")
    p.add_argument("--configfs", type=Path, default=Path("/sys/kernel/config"))
    p.add_argument("--board", help="board profile name (default: detected)")
    actions = p.add_subparsers(dest="gadget_command", required=True)
    up = actions.add_parser("up", help="build the gadget and bind it (idempotent)")
    up.add_argument("--udc", help="device controller (default: the profile's, if present)")
    up.add_argument("--take-udc", action="store_true", help="unbind another gadget holding the UDC")
    up.add_argument("--serial", help="USB serial number (default: the host name)")
    up.add_argument("--product", default="AI Conference Camera")
    up.add_argument("--manufacturer", default="Appliance project")
    actions.add_parser("down", help="unbind and remove the gadget")
    status = actions.add_parser("status", help="the gadget, its UDC's state, modes, microphone")
    status.add_argument("--json", action="store_true")


def _profile(args: argparse.Namespace) -> BoardProfile:
    from appliance.hw.profile import detect_board, load_profiles

    if not args.board:
        return detect_board()
    for profile in load_profiles():
        if profile.name == args.board:
            return profile
    raise SystemExit(f"appliance gadget: no board profile named {args.board!r}")


def main(args: argparse.Namespace) -> int:
    from appliance.uvc.gadget import Gadget, GadgetError, Identity, find_udc

    gadget = Gadget(args.configfs)
    try:
        if args.gadget_command == "up":
            profile = _profile(args)
            udc = args.udc or find_udc(profile)
            serial = args.serial or socket.gethostname()
            identity = Identity(args.manufacturer, args.product, serial)
            changed = gadget.up(profile, identity, udc, args.take_udc)
            what = "camera and microphone" if gadget.audio() is not None else "camera"
            if profile.microphone is not None and gadget.audio() is None:
                what += f"; no microphone: {gadget.status()['audio_problem']}"
            print(f"gadget {'up' if changed else 'already up'} on {udc} ({profile.name}: {what})")
        elif args.gadget_command == "down":
            gadget.down()
            print("gadget down")
        else:
            status = gadget.status()
            if args.json:
                print(json.dumps(status, indent=2))
            else:
                print(f"{status['state']}: udc {status['udc']}, {len(status['modes'])} modes")
                for m in status["modes"]:
                    print(f"  {m['format']} {m['width']}x{m['height']} fps {m['fps']}")
                audio = status["audio"]
                if audio is None:
                    problem = status["audio_problem"]
                    print(f"microphone: none{f' ({problem})' if problem else ''}")
                else:
                    print(
                        f"microphone: {audio['sample_rate']} Hz, {audio['channels']} channel(s), "
                        f"{8 * audio['sample_size']}-bit, controls {audio['controls'] or 'none'}, "
                        f"{'linked' if audio['linked'] else 'NOT linked'}, ALSA {audio['alsa']}"
                    )
                    print(f"  terminal type: {audio['terminal_type']}")
                    if audio["not_on_this_kernel"]:
                        print(f"  not on this kernel: {', '.join(audio['not_on_this_kernel'])}")
    except (GadgetError, OSError) as exc:
        print(f"appliance gadget {args.gadget_command}: {exc}", file=sys.stderr)
        return 1
    return 0
