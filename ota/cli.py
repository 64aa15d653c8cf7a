"""``appliance ota keygen|sign|verify|install|resume|abort|status``.

Wired into the main command by ``add_ota_parser(sub)``; ``main(args)`` runs it.
Exit status: 0 done (installed, already installed, verified), 1 refused, rolled back or
failed, 75 (EX_TEMPFAIL) when a download was interrupted and ``resume`` will go on.
Errors go to stderr; ``--json`` prints one JSON object on stdout.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from ota.layout import default_root

EX_TEMPFAIL = 75


def _add_root(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--root",
        type=Path,
        default=None,
        help=f"OTA state directory (default: $APPLIANCE_OTA_DIR or {default_root()})",
    )


def _add_keys(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--key",
        type=Path,
        action="append",
        help="trusted public key file or directory of *.pub (repeatable; default: ROOT/keys)",
    )


def _add_agent_options(p: argparse.ArgumentParser) -> None:
    _add_root(p)
    _add_keys(p)
    p.add_argument("--board", help="board profile name (default: detected)")
    p.add_argument(
        "--health",
        choices=["reference", "hashes"],
        default="reference",
        help="health gate after activation: reference outputs on this device's runtime "
        "(default) or file hashes only",
    )
    p.add_argument("--json", action="store_true", help="print the agent's status as JSON")


def add_ota_parser(sub: Any) -> None:
    ota = sub.add_parser(
        "ota",
        help="signed model bundles and the update agent",
        description="Sign model bundles; install signed updates into A/B slots with a "
        "health gate and rollback.",
    )
    actions = ota.add_subparsers(dest="ota_command", required=True, metavar="ACTION")

    keygen = actions.add_parser("keygen", help="make an ed25519 signing key pair (PEM)")
    keygen.add_argument("out_dir", type=Path, help="directory for NAME.key (0600) and NAME.pub")
    keygen.add_argument("--name", default="ota-signing", help="file name stem (ota-signing)")

    sign = actions.add_parser("sign", help="make a signed update file from a bundle directory")
    sign.add_argument("bundle", type=Path, help="bundle directory (with manifest.json)")
    sign.add_argument("--key", type=Path, required=True, help="private key (PEM)")
    sign.add_argument("--out", type=Path, help="output (default NAME-VERSION.bundle; .gz: gzip)")
    sign.add_argument(
        "--board", action="append", help="board profile it is for (repeatable; default any)"
    )

    verify = actions.add_parser("verify", help="check an update file's signature and hashes")
    verify.add_argument("update", type=Path)
    _add_root(verify)
    _add_keys(verify)
    verify.add_argument("--json", action="store_true", help="print one JSON object")

    install = actions.add_parser("install", help="download, verify, install and activate")
    install.add_argument("source", help="update file path or http(s):// URL")
    install.add_argument("--job-id", help="job id to report (default: random)")
    install.add_argument(
        "--factory", type=Path, help="bundles to fill the slots with on first use (factory)"
    )
    _add_agent_options(install)

    resume = actions.add_parser("resume", help="finish an interrupted job (run at boot)")
    _add_agent_options(resume)

    abort = actions.add_parser("abort", help="end an unfinished job that has not switched slots")
    _add_agent_options(abort)

    status = actions.add_parser("status", help="job, progress, slots and installed versions")
    _add_root(status)
    status.add_argument("--json", action="store_true", help="print one JSON object")


def _err(args: argparse.Namespace, message: str) -> None:
    print(f"appliance ota {args.ota_command}: {message}", file=sys.stderr)


def _root(args: argparse.Namespace) -> Path:
    return Path(args.root) if args.root is not None else default_root()


def _trusted(args: argparse.Namespace) -> list[Any]:
    from ota.layout import Layout
    from ota.signing import load_public_keys

    return load_public_keys(args.key or [Layout(_root(args)).keys_dir])


def _keygen(args: argparse.Namespace) -> int:
    from ota.signing import key_id, keygen, load_public_key

    private, public = keygen(args.out_dir, args.name)
    print(
        f"private key {private} (keep it off the devices), public key {public}, "
        f"key id {key_id(load_public_key(public))}"
    )
    return 0


def _sign(args: argparse.Namespace) -> int:
    from appliance.runtime.bundle import load_manifest
    from ota.signing import sign

    out = args.out
    if out is None:
        manifest = load_manifest(args.bundle)
        out = Path(f"{manifest['name']}-{manifest['version']}.bundle")
    sign(args.bundle, args.key, out, args.board)
    print(out)
    return 0


def _verify(args: argparse.Namespace) -> int:
    from ota.signing import verify

    update = verify(args.update, _trusted(args))
    result = {
        "ok": True,
        "name": update.name,
        "version": update.version,
        "boards": list(update.boards) if update.boards is not None else None,
        "key_id": update.key_id,
        "files": update.files,
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        boards = ", ".join(update.boards) if update.boards else "any board"
        print(
            f"{args.update}: ok: {update.name} {update.version}, signed by key "
            f"{update.key_id}, for {boards}, {len(update.files)} files"
        )
    return 0


def _agent(args: argparse.Namespace) -> Any:
    from ota.agent import Agent
    from ota.compat import Device
    from ota.health import hash_gate, reference_gate

    device = Device.detect()
    if args.board:
        device = Device(args.board, device.runtimes)
    gate = hash_gate if args.health == "hashes" else reference_gate
    last = [0.0]

    def progress(done: int, total: int | None) -> None:
        now = time.monotonic()
        if now - last[0] >= 1.0 or (total is not None and done == total):
            last[0] = now
            of = f" of {total}" if total is not None else ""
            print(f"downloaded {done}{of} bytes", file=sys.stderr)

    return Agent(_root(args), _trusted(args), device, gate, progress)


def _report(args: argparse.Namespace, status: dict[str, Any]) -> int:
    job = status["job"] or {}
    if status["state"] == "download" and job.get("error"):
        code = EX_TEMPFAIL
    else:
        code = 0 if job.get("result") in ("installed", "already_installed") else 1
    if args.json:
        print(json.dumps(status, indent=2))
    elif job:
        what = f"{job.get('bundle') or job['source']} {job.get('version') or ''}".strip()
        if code == 0:
            print(
                f"{job['result'].replace('_', ' ')}: {what} (active slot {status['active_slot']})"
            )
        elif code == EX_TEMPFAIL:
            _err(args, f"interrupted: {job['reason']} (run `appliance ota resume`)")
        else:
            _err(args, f"{job['state']}: {what}: {job.get('error')}: {job.get('reason')}")
    return code


def _install(args: argparse.Namespace) -> int:
    from appliance.runtime.bundle import factory_bundle_dir

    agent = _agent(args)
    if agent.initialize(args.factory or factory_bundle_dir()):
        print(f"initialized slots in {agent.layout.root}", file=sys.stderr)
    return _report(args, agent.install(args.source, args.job_id))


def _resume(args: argparse.Namespace) -> int:
    status = _agent(args).resume()
    if status["job"] is None:
        if args.json:
            print(json.dumps(status, indent=2))
        return 0
    return _report(args, status)


def _abort(args: argparse.Namespace) -> int:
    return _report(args, _agent(args).abort())


def _status(args: argparse.Namespace) -> int:
    from ota.agent import Agent
    from ota.compat import Device

    status = Agent(_root(args), [], Device("unknown")).status()
    if args.json:
        print(json.dumps(status, indent=2))
        return 0
    print(f"state: {status['state']}")
    print(
        f"active slot: {status['active_slot']} (committed {status['committed_slot']}, "
        f"fallback {status['fallback_slot']})"
    )
    for slot, versions in status["slots"].items():
        listed = ", ".join(f"{n} {v}" for n, v in versions.items()) or "empty"
        print(f"slot {slot}: {listed}")
    job = status["job"]
    if job:
        progress = job["progress"]
        print(
            f"job {job['id']}: {job['state']} ({job['result'] or 'running'}) "
            f"{job['bundle'] or job['source']} {job['version'] or ''}".rstrip()
        )
        if progress["done"] is not None:
            print(f"  progress: {progress['done']} of {progress['total']} bytes")
        if job["reason"]:
            print(f"  {job['error']}: {job['reason']}")
    return 0


ACTIONS = {
    "keygen": _keygen,
    "sign": _sign,
    "verify": _verify,
    "install": _install,
    "resume": _resume,
    "abort": _abort,
    "status": _status,
}


def main(args: argparse.Namespace) -> int:
    from appliance.runtime.bundle import BundleError
    from ota.errors import AgentError, KeyFileError, UpdateError

    try:
        return ACTIONS[args.ota_command](args)
    except UpdateError as exc:
        _err(args, f"{type(exc).__name__}: {exc}")
        return 1
    except (AgentError, KeyFileError, BundleError, OSError, ValueError) as exc:
        _err(args, str(exc))
        return 1
