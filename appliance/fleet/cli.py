"""``appliance fleet devices|set|update|watch|bench``: the operator's side, from a shell.

``set`` takes ``KEY=VALUE`` pairs with dotted keys (``web.overlay=true``; values are read
as YAML, so ``0.8``, ``true`` and ``"text"`` mean what they look like) for one camera, a
list, or every known camera matching ``--group`` (a shell pattern on the device ids),
then waits for each to report: applied, or refused with its reasons.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from appliance.fleet.operator import Operator, field

SETTLE_S = 1.5  # retained messages arrive right after subscribing


def add_fleet_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("fleet", help="the operator's side: devices, configuration")
    p.add_argument("--broker", default="mqtts://localhost:8883")
    p.add_argument("--username", default="operator")
    p.add_argument("--password-file", type=Path)
    p.add_argument("--ca", default="", help="CA file of the broker's certificate")
    p.add_argument("--cert", default="", help="client certificate (PEM)")
    p.add_argument("--key", default="", help="client certificate key (PEM)")
    p.add_argument("--prefix", default="appliance")
    actions = p.add_subparsers(dest="fleet_command", required=True)
    devices = actions.add_parser("devices", help="every camera: online, fps, config version")
    devices.add_argument("--json", action="store_true")
    setp = actions.add_parser("set", help="desired configuration for cameras")
    setp.add_argument("devices", nargs="?", default="", help="id or id,id,... (or --group)")
    setp.add_argument("pairs", nargs="+", metavar="KEY=VALUE")
    setp.add_argument("--group", help="every known camera whose id matches this pattern")
    setp.add_argument("--wait", type=float, default=30.0, help="seconds to wait for reports")
    setp.add_argument("--json", action="store_true")
    update = actions.add_parser(
        "update", help="a signed model update to cameras in stages: canary first"
    )
    update.add_argument("source", help="URL (or path on the cameras) of the signed update")
    update.add_argument("devices", nargs="?", default="", help="id or id,id,... (or --group)")
    update.add_argument("--group", help="every known camera whose id matches this pattern")
    update.add_argument("--canary", type=float, default=0.1, help="share updated first")
    update.add_argument(
        "--max-failures", type=float, default=0.0, help="failure share that halts (0: any)"
    )
    update.add_argument("--timeout", type=float, default=600.0, help="seconds per stage")
    update.add_argument("--json", action="store_true")
    web = actions.add_parser(
        "web-password", help="set the web page's password on cameras (hashed here)"
    )
    web.add_argument("devices", nargs="?", default="", help="id or id,id,... (or --group)")
    web.add_argument("--group", help="every known camera whose id matches this pattern")
    web.add_argument(
        "--new-password-file", type=Path, help="file holding the new password (else asked)"
    )
    watch = actions.add_parser("watch", help="print status and reported changes")
    watch.add_argument("--seconds", type=float)
    bench = actions.add_parser(
        "bench", help="simulated cameras on a local Mosquitto: group change to all reported"
    )
    from appliance.fleet.bench import add_bench_arguments

    add_bench_arguments(bench)


def patch_of(pairs: list[str]) -> dict[str, Any]:
    """``["web.overlay=true", "codec.floor=0.7"]`` -> a nested partial config."""
    patch: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"{pair!r} is not KEY=VALUE")
        node = patch
        *path, leaf = key.split(".")
        for part in path:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ValueError(f"{key!r} goes inside a value")
        node[leaf] = yaml.safe_load(text)
    return patch


def main(args: argparse.Namespace) -> int:
    if args.fleet_command == "bench":
        from appliance.fleet.bench import run

        return run(args)
    password = args.password_file.read_text().strip() if args.password_file else ""
    op = Operator(
        args.broker,
        args.username,
        password,
        args.ca,
        args.cert,
        args.key,
        args.prefix,
        client_id=f"operator-cli-{time.monotonic_ns() % 10**9}",
    )
    op.start()
    try:
        time.sleep(SETTLE_S)
        if args.fleet_command == "devices":
            return _devices(op, args.json)
        if args.fleet_command == "set":
            return _set(op, args)
        if args.fleet_command == "update":
            return _update(op, args)
        if args.fleet_command == "web-password":
            return _web_password(op, args)
        return _watch(op, args.seconds)
    finally:
        op.stop()


def _devices(op: Operator, as_json: bool) -> int:
    rows = []
    for device in op.devices():
        status, reported = op.status.get(device), op.reported.get(device)
        rows.append(
            {
                "device": device,
                "online": field(status, "online"),
                "fps": field(status, "pipeline", "fps"),
                "healthy": field(status, "healthy"),
                "version": field(reported, "version"),
                "accepted": field(reported, "accepted"),
                "refused": op.refusals(device),
            }
        )
    if as_json:
        print(json.dumps(rows))
    else:
        for r in rows:
            state = "online " if r["online"] else "offline"
            print(
                f"{r['device']:24s} {state} fps {r['fps']}  config v{r['version']}"
                f"{'' if r['accepted'] in (True, None) else ' (last change refused)'}"
            )
            for note in r["refused"]:
                print(f"{'':24s} unreadable {note}")
        print(f"{len(rows)} device(s)")
    return 0


def _set(op: Operator, args: argparse.Namespace) -> int:
    try:
        patch = patch_of(args.pairs)
    except (ValueError, yaml.YAMLError) as exc:
        print(f"appliance fleet set: {exc}", file=sys.stderr)
        return 2
    targets = _targets(op, args.devices, args.group)
    if not targets:
        print("appliance fleet set: no device named and none matches --group", file=sys.stderr)
        return 2
    versions = {device: op.set_config(device, patch) for device in targets}
    results, failed = {}, 0
    for device, version in versions.items():
        try:
            report = op.wait_reported(device, version, args.wait)
            results[device] = {
                "version": version,
                "accepted": report["accepted"],
                "errors": report["errors"],
            }
        except TimeoutError:
            results[device] = {"version": version, "accepted": None, "errors": ["no report"]}
        failed += results[device]["accepted"] is not True
    if args.json:
        print(json.dumps(results))
    else:
        for device, r in results.items():
            verdict = {True: "applied", False: "refused", None: "no answer"}[r["accepted"]]
            print(
                f"{device}: v{r['version']} {verdict}"
                + "".join(f"\n  {e}" for e in r["errors"] if r["accepted"] is not True)
            )
    return 1 if failed else 0


def _targets(op: Operator, devices: str, group: str | None) -> list[str]:
    targets = [d for d in devices.split(",") if d]
    if group:
        targets += [d for d in op.devices() if fnmatch.fnmatch(d, group)]
    return sorted(set(targets))


def _update(op: Operator, args: argparse.Namespace) -> int:
    targets = _targets(op, args.devices, args.group)
    if not targets:
        print("appliance fleet update: no device named and none matches --group", file=sys.stderr)
        return 2
    report = op.rollout(targets, args.source, args.canary, args.max_failures, args.timeout)
    if args.json:
        print(json.dumps(report))
    else:
        for device, job in report["results"].items():
            print(f"{device}: {job.get('state')} {job.get('result') or job.get('error') or ''}")
        if report["halted"]:
            print(
                f"halted after stage {report['stage'] + 1}: not started on "
                f"{', '.join(report['not_started'])}"
            )
    return 1 if report["halted"] else 0


def _watch(op: Operator, seconds: float | None) -> int:
    seen: dict[str, Any] = {}
    start = time.monotonic()
    while seconds is None or time.monotonic() - start < seconds:
        with op.changed:
            op.changed.wait(0.5)
            snapshot = {
                d: (op.status.get(d, {}).get("online"), op.reported.get(d, {}).get("version"))
                for d in op.devices()
            }
        for device, state in snapshot.items():
            if seen.get(device) != state:
                seen[device] = state
                print(f"{device}: online={state[0]} config v{state[1]}", flush=True)
    return 0


def _web_password(op: Operator, args: argparse.Namespace) -> int:
    """The password is hashed here (salted scrypt, one salt per camera): only the hash
    crosses the broker, and two cameras never share one."""
    import getpass

    from appliance.web.auth import hash_password, password_problem

    targets = _targets(op, args.devices, args.group)
    if not targets:
        print(
            "appliance fleet web-password: no device named and none matches --group",
            file=sys.stderr,
        )
        return 2
    if args.new_password_file:
        password = args.new_password_file.read_text().strip()
    else:
        password = getpass.getpass("new web page password: ")
    problem = password_problem(password)
    if problem:
        print(f"appliance fleet web-password: {problem}", file=sys.stderr)
        return 2
    failed = 0
    for device in targets:
        answer = op.ask(device, "web-password", {"scrypt": hash_password(password)})
        failed += not answer.get("ok")
        print(f"{device}: {'ok' if answer.get('ok') else answer.get('error')}")
    return 1 if failed else 0
