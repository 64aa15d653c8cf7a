"""Run project code inside a QEMU guest on Debian's real kernel, and collect what happened.

One call boots the guest, loads the requested modules, runs one script in a chroot of the
host's own root filesystem (shared read-only over 9p, with a tmpfs overlay so the guest
may write anywhere), and powers off. The checkout and the venv have the same paths inside
as outside, so the script imports the project exactly as the host would.

Costs, measured with TCG on 2 cores: about 7 s to boot, and about 10 s to import numpy
and OpenCV over 9p. So boot once per test module and do several checks in one run
(``VM.call`` returns a JSON result the host-side tests assert on), not once per test.

Why TCG and not KVM: on the (nested) machines this was written on, KVM fails: with
``-cpu host`` QEMU asserts setting MSR 0x10a, other CPU models hang right after the kernel
is decompressed. TCG works everywhere, only slower.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.conftest import SLOWNESS, scaled
from tests.vm.build_image import REPO, Image, ensure_image

# What the guest's /init prints on the console when it cannot set up the guest (see
# INIT_SCRIPT in build_image.py); the run then ends without an exit status in the share.
ERROR_MARKER = "APPLIANCE-VM-ERROR:"


@dataclass(frozen=True)
class VMResult:
    returncode: int  # the script's exit status; 125 when a module failed to load
    stdout: str  # the script's stdout and stderr, interleaved as written
    dmesg: str  # the guest kernel's log, read after the script ended
    console: str  # the serial console: boot messages, warnings, the markers
    files: dict[str, bytes]  # anything else the script wrote into $OUT, by name
    seconds: float  # wall time of the whole run, boot included

    def describe(self) -> str:
        """The parts worth reading when something failed, for assertion messages."""
        return (
            f"guest exit {self.returncode} after {self.seconds:.1f} s\n"
            f"--- stdout\n{_tail(self.stdout)}\n--- dmesg (tail)\n{_tail(self.dmesg, 3000)}"
        )


class VMError(RuntimeError):
    """The guest did not run the script to the end (boot failure, timeout, crash)."""


def _tail(text: str, limit: int = 6000) -> str:
    return text if len(text) <= limit else "[...]\n" + text[-limit:]


# The files the guest's /init reads from and writes to the share; the rest is the script's.
_PROTOCOL_FILES = {"modules", "command", "script", "stdout", "rc", "dmesg"}


class VM:
    """A guest configuration; each ``run`` is one fresh boot."""

    def __init__(
        self,
        image: Image,
        memory_mb: int = 1024,
        cpus: int = 2,
        qemu: str = "qemu-system-x86_64",
    ) -> None:
        self.image = image
        self.memory_mb = memory_mb
        # Several vCPUs are worth it even under TCG: QEMU runs each in its own host thread,
        # so a driver's kernel thread (vivid's frame generator) runs beside the script.
        self.cpus = max(1, min(cpus, os.cpu_count() or 1))
        self.qemu = qemu

    def run(
        self,
        script: str,
        modules: list[str] | tuple[str, ...] = (),
        timeout: float = 180.0,
        env: dict[str, str] | None = None,
    ) -> VMResult:
        """Boot, ``modprobe`` each of ``modules`` (``"name opt=val ..."``), run ``script``.

        ``script`` is Python, run by this interpreter (the venv's) from the checkout's root
        with the checkout on PYTHONPATH; a script starting with ``#!`` is run as it stands.
        In the guest, ``$OUT`` names a writable directory whose files come back in
        ``VMResult.files``. Raises VMError when the guest does not finish within
        ``timeout`` seconds, scaled to this machine's speed (QEMU is killed), or never
        gets to run the script.
        """
        timeout = scaled(timeout)
        with tempfile.TemporaryDirectory(prefix="appliance-vm-") as tmp:
            # Resolved, as the guest mounts the share at this path inside the host's root.
            share = Path(tmp).resolve() / "share"
            share.mkdir()
            (share / "modules").write_text("".join(f"{m}\n" for m in modules))
            (share / "script").write_text(script)
            (share / "script").chmod(0o755)
            (share / "command").write_text(self._command(share, script, env or {}))
            console_log = Path(tmp) / "console.log"
            started = time.monotonic()
            returncode, qemu_stderr = self._boot(share, console_log, timeout)
            seconds = time.monotonic() - started
            console = console_log.read_text(errors="replace") if console_log.exists() else ""
            stdout = _read(share / "stdout")
            rc_text = _read(share / "rc").strip()
            if returncode is None or not rc_text:
                why = f"timed out after {timeout:.0f} s" if returncode is None else "ended early"
                errors = [line for line in console.splitlines() if ERROR_MARKER in line]
                if errors:
                    why += f": {errors[0].split(ERROR_MARKER, 1)[1].strip()}"
                raise VMError(
                    f"guest {why} (qemu exit {returncode})\n--- qemu stderr\n{qemu_stderr}"
                    f"\n--- console (tail)\n{_tail(console)}\n--- script output\n{_tail(stdout)}"
                )
            files = {
                p.name: p.read_bytes()
                for p in share.iterdir()
                if p.is_file() and p.name not in _PROTOCOL_FILES
            }
            return VMResult(
                returncode=int(rc_text),
                stdout=stdout,
                dmesg=_read(share / "dmesg"),
                console=console,
                files=files,
                seconds=seconds,
            )

    def call(
        self,
        path: str | Path,
        function: str,
        modules: list[str] | tuple[str, ...] = (),
        timeout: float = 180.0,
    ) -> tuple[Any, VMResult]:
        """Run ``function()`` of the Python file ``path`` in the guest; (its result, run).

        The result must be JSON-serialisable: it crosses back as JSON, so the host-side
        test asserts on plain data and its failure messages read well. Keeping the guest
        code in the test module (rather than in a string) keeps it linted and readable.
        """
        script = _CALL_TEMPLATE.format(path=str(Path(path).resolve()), function=function)
        result = self.run(script, modules, timeout)
        raw = result.files.get("result.json")
        if result.returncode != 0 or raw is None:
            raise VMError(f"{Path(path).name}:{function} failed in the guest\n{result.describe()}")
        return json.loads(raw), result

    def _command(self, share: Path, script: str, env: dict[str, str]) -> str:
        """The shell line the guest runs (from the share, with cwd = the share)."""
        exports = {
            "PYTHONPATH": str(REPO),
            "PYTHONUNBUFFERED": "1",  # output written before a hang still comes back
            "PYTHONDONTWRITEBYTECODE": "1",  # writes would only land in the guest's tmpfs
            "APPLIANCE_TEST_SLOWNESS": str(SLOWNESS),  # the guest's waits scale alike
            **env,
        }
        lines = [f"export {k}={shlex.quote(v)}" for k, v in exports.items()]
        lines.append(f"cd {shlex.quote(str(REPO))}")
        runner = "" if script.startswith("#!") else shlex.quote(sys.executable) + " "
        lines.append(f"exec {runner}{shlex.quote(str(share / 'script'))}")
        return "\n".join(lines) + "\n"

    def _boot(self, share: Path, console_log: Path, timeout: float) -> tuple[int | None, str]:
        """Run QEMU to the end; (its exit status or None on timeout, its stderr)."""
        image = self.image
        append = " ".join(
            [
                "console=ttyS0",
                "quiet",
                "panic=-1",  # a panic reboots at once, and -no-reboot turns that into exit
                # Unknown NAME=value words reach /init as environment variables.
                f"APPLIANCE_SHARE={share}",
                f"APPLIANCE_MODDIR={image.modules}",
            ]
        )
        cmd = [
            self.qemu,
            "-accel",
            "tcg",
            # qemu64, the default model, lacks instructions numpy and OpenCV's wheels use
            # (SIGILL on import); "max" offers all that TCG can emulate.
            "-cpu",
            "max",
            "-smp",
            str(self.cpus),
            "-m",
            str(self.memory_mb),
            # No default devices (VGA, NIC, floppy...): the console is a serial port into a
            # file, which unlike -nographic never touches the terminal pytest runs in.
            "-nodefaults",
            "-display",
            "none",
            "-no-reboot",
            "-serial",
            f"file:{console_log}",
            "-kernel",
            str(image.kernel),
            "-initrd",
            str(image.initrd),
            "-append",
            append,
            # multidevs=remap: / spans several host filesystems; without it their inode
            # numbers collide in the guest and overlayfs misbehaves (files vanish).
            "-virtfs",
            "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap",
            "-virtfs",
            f"local,path={share},mount_tag=share,security_model=none",
        ]
        stderr_log = console_log.with_name("qemu.stderr")
        with open(stderr_log, "wb") as err:
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=err, stderr=err)
            try:
                returncode: int | None = proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                returncode = None
            except BaseException:  # KeyboardInterrupt included: never leave QEMU behind
                proc.kill()
                proc.wait()
                raise
        return returncode, stderr_log.read_text(errors="replace")


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except FileNotFoundError:
        return ""


_CALL_TEMPLATE = """\
import importlib.util, json, os, sys
spec = importlib.util.spec_from_file_location("_vm_guest_module", {path!r})
module = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = module
spec.loader.exec_module(module)
result = getattr(module, {function!r})()
with open(os.path.join(os.environ["OUT"], "result.json"), "w") as out:
    json.dump(result, out, indent=1)
"""


def run_in_vm(
    script: str, modules: list[str] | tuple[str, ...] = (), timeout: float = 180.0
) -> VMResult:
    """One guest run with the cached image (built first if needed); see ``VM.run``."""
    return VM(ensure_image()).run(script, modules, timeout)
