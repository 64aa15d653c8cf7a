"""Python on the CPU classes the product meets, from this x86-64 machine.

- ``host``: this machine as it is (here: AVX-512 VNNI, or AVX2 only, whatever it has).
- ``haswell``: the same interpreter and venv under ``qemu-x86_64 -cpu Haswell``: AVX2,
  no AVX-512, no VNNI. ONNX Runtime picks its kernels from CPUID, which QEMU answers.
- ``aarch64``: Debian's aarch64 CPython 3.11 with the lock's aarch64 wheels
  (tools/aarch64-python.sh) under ``qemu-aarch64``, as a Jetson Orin's Cortex-A78AE.

Emulation is 10-40x slower than the host: numerics checks, not the whole suite.

    python -m tests.cpus.emulation CLASS ARGS...    runs ``python ARGS...`` on CLASS
                                                    (host, haswell, aarch64)
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
AARCH64_DIR = ROOT / ".cache" / "cpus" / "aarch64"
# QEMU 7.2's TCG lacks these Haswell features and warns about each: none matters here.
HASWELL = "Haswell,-pcid,-x2apic,-tsc-deadline,-hle,-invpcid,-rtm"
# Jetson AGX/Orin Nano: Cortex-A78AE (ARMv8.2-A with dot product), as /proc/cpuinfo says.
A78AE = (
    "processor\t: {n}\nBogoMIPS\t: 62.50\nFeatures\t: fp asimd evtstrm aes pmull sha1 sha2 "
    "crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp uscat ilrcpc flagm\n"
    "CPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x1\nCPU part\t: 0xd42\n"
    "CPU revision\t: 1\n\n"
)


class Unavailable(RuntimeError):
    """This machine cannot emulate the CPU class; the message says what is missing."""


@dataclass(frozen=True)
class Machine:
    name: str
    command: tuple[str, ...]  # runs Python: append "-m", "module", ...
    env: dict[str, str] = field(default_factory=dict)

    def run(self, *args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self.command, *args],
            cwd=ROOT,
            env={**os.environ, **self.env},
            capture_output=True,
            text=True,
            timeout=timeout,
        )


def _qemu(name: str) -> str:
    path = shutil.which(f"qemu-{name}-static") or shutil.which(f"qemu-{name}")
    if path is None:
        raise Unavailable(f"qemu-{name}-static is not installed (tests/system-deps.sh)")
    return path


def host() -> Machine:
    return Machine("host", (sys.executable,))


def haswell() -> Machine:
    return Machine("haswell", (_qemu("x86_64"), "-cpu", HASWELL, sys.executable))


def aarch64() -> Machine:
    qemu = _qemu("aarch64")
    if os.geteuid() != 0:
        raise Unavailable("the aarch64 Python needs root (a private mount of /proc/cpuinfo)")
    build = subprocess.run(
        ["sh", "tools/aarch64-python.sh", str(AARCH64_DIR)], cwd=ROOT, text=True,
        stdout=sys.stderr, stderr=subprocess.STDOUT, timeout=1800,
    )  # fmt: skip
    if build.returncode != 0:
        raise Unavailable(f"tools/aarch64-python.sh failed ({build.returncode})")
    # As many processors as the kernel says are possible: cpuinfo expects them all.
    possible = Path("/sys/devices/system/cpu/possible").read_text().strip()
    count = int(possible.rsplit("-", 1)[-1]) + 1
    cpuinfo = AARCH64_DIR / "cpuinfo"
    cpuinfo.write_text("".join(A78AE.format(n=n) for n in range(count)))
    root = AARCH64_DIR / "root"
    python = (qemu, "-L", str(root), str(root / "usr/bin/python3.11"))
    # A private mount namespace: /proc/cpuinfo says aarch64 to this process tree only.
    script = f'mount --bind "{cpuinfo}" /proc/cpuinfo && exec "$@"'
    return Machine(
        "aarch64",
        ("unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh", *python),
        {"PYTHONPATH": f"{AARCH64_DIR / 'site'}:{ROOT}", "PYTHONNOUSERSITE": "1"},
    )


CLASSES = {"host": host, "haswell": haswell, "aarch64": aarch64}

if __name__ == "__main__":
    if len(sys.argv) < 3 or sys.argv[1] not in CLASSES:
        sys.exit(f"usage: python -m tests.cpus.emulation {{{','.join(CLASSES)}}} ARGS...")
    machine = CLASSES[sys.argv[1]]()
    env = {**os.environ, **machine.env}
    sys.exit(subprocess.run([*machine.command, *sys.argv[2:]], cwd=ROOT, env=env).returncode)
