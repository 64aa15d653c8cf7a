"""Build, once, what the VM tests boot: Debian's own kernel and a busybox initramfs.

Why a VM: the V4L2 code (and later the UVC gadget) must meet the real kernel's drivers
(vivid, uvcvideo, usbip-vudc, ...), and this machine has neither /dev/video* nor a way to
load modules into the host kernel. Debian's stock 6.1 kernel ships all of them as modules.

What ends up in the cache (``$APPLIANCE_VM_CACHE``, else ``<repo>/.cache/vm``):

    kernel/<version>/boot/vmlinuz-<version>       the kernel, unpacked from the .deb
    kernel/<version>/lib/modules/<version>/       its modules, with depmod's indexes
    initrd-<version>-<hash>.gz                    busybox + the modules to mount 9p

The guest mounts the host's root over 9p (read-only) and runs the project's own venv from
it; the module tree is bind-mounted from the 9p share onto /lib/modules inside the guest,
so ``modprobe`` works there for any module, not only those packed into the initramfs.

Idempotent: a kernel already in the cache is reused without asking apt (so a security
update does not trigger a new 70 MB download; ``--refresh`` asks for the newest), and the
initramfs is rebuilt only when its recipe (the /init script, the module list) changes.

Run directly to build ahead of time: ``.venv/bin/python tests/vm/build_image.py``.
"""

from __future__ import annotations

import argparse
import fcntl
import gzip
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# Host tools the build and the boot need, and the Debian package providing each.
HOST_TOOLS = {
    "qemu-system-x86_64": "qemu-system-x86",
    "busybox": "busybox-static",
    "cpio": "cpio",
    "depmod": "kmod",
    "modprobe": "kmod",
    "dpkg-deb": "dpkg",
    "apt-get": "apt",
}

# Modules the initramfs itself needs before the host root is reachable (all are modules in
# Debian's config): virtio PCI transport, 9p over virtio, and overlayfs, which puts a
# writable tmpfs over the read-only host root. Their dependencies are resolved at build time.
BOOT_MODULES = ("virtio_pci", "9pnet_virtio", "9p", "overlay")

# Must be a *static* busybox: the initramfs has no libc.
BUSYBOX = Path("/bin/busybox")

# The guest's PID 1. Runs under busybox sh before the switch into the host's root.
# Parameters arrive as environment variables (the kernel hands ``NAME=value`` words of its
# command line that it does not know to init): APPLIANCE_SHARE, the host path of the
# read-write 9p share that carries the job in and the results out; APPLIANCE_MODDIR, the
# host path of the unpacked module tree.
#
# The job in the share: ``modules`` (one ``modprobe`` argument line per module to load
# before the command), ``command`` (a shell command line, run with the share as $OUT).
# Results written back: ``stdout`` (the command's stdout and stderr), ``rc``, ``dmesg``.
# The console shows markers too, so a run whose share failed still says how it ended.
INIT_SCRIPT = r"""#!/bin/busybox sh
/bin/busybox mkdir -p /proc /sys /dev /usr/bin /usr/sbin
/bin/busybox --install -s
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
exec </dev/console >/dev/console 2>&1

fail() {
    echo "APPLIANCE-VM-ERROR: $*"
    echo "APPLIANCE-VM-END rc=255"
    poweroff -f; reboot -f
}

# Boot modules in dependency order (see /lib/boot-modules.order, made at build time).
while read -r ko; do
    insmod "/lib/boot-modules/$ko" || fail "insmod $ko"
done < /lib/boot-modules.order

# msize: bigger 9p messages, fewer round trips (reading Python and numpy dominates the run).
# cache=loose on the read-only root: the guest may keep pages, the host files do not change
# during a run. The share that carries results back is uncached so nothing is lost.
mkdir -p /host /rw /newroot /share
mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000,cache=loose,ro hostroot /host \
    || fail "cannot mount the host root over 9p"
mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000 share /share \
    || fail "cannot mount the share over 9p"
mount -t tmpfs -o mode=0755 rw /rw
mkdir -p /rw/upper /rw/work
# The host root stays read-only; writes inside the guest land in this tmpfs.
mount -t overlay overlay -o lowerdir=/host,upperdir=/rw/upper,workdir=/rw/work /newroot \
    || fail "cannot mount overlayfs over the host root"

R=/newroot
mount -t proc proc $R/proc
mount -t sysfs sysfs $R/sys
mount -t devtmpfs devtmpfs $R/dev
mkdir -p $R/dev/pts $R/dev/shm
mount -t devpts devpts $R/dev/pts
mount -t tmpfs tmpfs $R/dev/shm
# No tmpfs over /tmp or /run: the checkout under test may live there (CI clones anywhere),
# and the overlay already makes every directory writable.
# Modules come from the 9p mount, outside the overlay.
KVER=$(uname -r)
mkdir -p $R/lib/modules/$KVER
mount -o bind "/host$APPLIANCE_MODDIR" $R/lib/modules/$KVER \
    || fail "no modules at $APPLIANCE_MODDIR"
# The share appears at its host path, so host and guest name the same files the same way.
mkdir -p "$R$APPLIANCE_SHARE"
mount -o bind /share "$R$APPLIANCE_SHARE"

echo "APPLIANCE-VM-BEGIN"
chroot $R /bin/sh -c '
    modprobe -q configfs && mount -t configfs configfs /sys/kernel/config
    cd "$APPLIANCE_SHARE"
    export OUT="$APPLIANCE_SHARE" HOME=/root
    export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
    {
        rc=0
        while read -r line; do
            [ -n "$line" ] || continue
            modprobe $line || { echo "modprobe $line failed"; rc=125; break; }
        done < modules
        if [ $rc = 0 ]; then sh ./command; rc=$?; fi
        echo $rc > rc
    } > stdout 2>&1 < /dev/null
    dmesg > dmesg
'
sync
echo "APPLIANCE-VM-END rc=$(cat /share/rc 2>/dev/null || echo 255)"
poweroff -f
reboot -f
"""


@dataclass(frozen=True)
class Image:
    """What the harness boots: kernel, initramfs, and the module tree (host paths)."""

    version: str
    kernel: Path
    initrd: Path
    modules: Path


def cache_dir() -> Path:
    # Resolved: the guest finds the module tree by this path through the 9p share, where a
    # host symlink on the way would point into the initramfs instead.
    return Path(os.environ.get("APPLIANCE_VM_CACHE") or REPO / ".cache" / "vm").resolve()


def step(message: str) -> None:
    print(f"[vm-image] {message}", file=sys.stderr, flush=True)


class BuildError(RuntimeError):
    """The image cannot be built here; the message says what is missing."""


def missing_tools() -> list[str]:
    """Debian packages to install for the VM tests (empty when all tools are there)."""
    need = {pkg for tool, pkg in HOST_TOOLS.items() if not shutil.which(tool)}
    if "busybox-static" not in need and not _is_static(BUSYBOX):
        need.add("busybox-static")
    return sorted(need)


def _is_static(path: Path) -> bool:
    # A dynamic ELF has a PT_INTERP program header naming its loader: look for the name.
    try:
        return b"/ld-linux" not in path.read_bytes()[:4096]
    except OSError:
        return False


def _run(*cmd: str | Path, cwd: Path | None = None) -> str:
    proc = subprocess.run(
        [str(c) for c in cmd], cwd=cwd, capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise BuildError(f"{' '.join(map(str, cmd))} failed: {proc.stderr.strip()[-2000:]}")
    return proc.stdout


def _cached_kernel(root: Path) -> str | None:
    """The kernel most recently unpacked and indexed into the cache, if any."""
    done = sorted((root / "kernel").glob("*/.complete"), key=lambda p: p.stat().st_mtime)
    return done[-1].parent.name if done else None


def _kernel_package() -> tuple[str, str]:
    """(package, version) of the kernel image that linux-image-amd64 depends on now."""

    def candidate() -> str | None:
        out = _run("apt-cache", "depends", "--no-recommends", "linux-image-amd64")
        # "  Depends: linux-image-6.1.0-56-amd64" (the unsigned variant is never first).
        match = re.search(r"Depends: (linux-image-[0-9][^\s]*-amd64)\b", out)
        return match.group(1) if match else None

    try:
        package = candidate()
    except BuildError:
        package = None
    if package is None:
        if os.geteuid() != 0:
            raise BuildError("apt knows no linux-image-amd64: run `apt-get update` as root")
        step("apt has no package lists yet: apt-get update")
        _run("apt-get", "update", "-qq")
        package = candidate()
        if package is None:
            raise BuildError("apt has no candidate for linux-image-amd64 (not Debian amd64?)")
    version = _run("apt-cache", "show", "--no-all-versions", package)
    match = re.search(r"^Version: (\S+)", version, re.M)
    if not match:
        raise BuildError(f"apt-cache show {package}: no Version")
    return package, match.group(1)


def fetch_kernel(root: Path, refresh: bool = False) -> str:
    """Download and unpack the kernel .deb into the cache; returns its version string."""
    if not refresh and (cached := _cached_kernel(root)):
        return cached
    package, pkg_version = _kernel_package()
    kver = package.removeprefix("linux-image-")
    dest = root / "kernel" / kver
    if (dest / ".complete").exists():
        return kver
    with tempfile.TemporaryDirectory(prefix="kernel-", dir=root) as tmp:
        step(f"downloading {package}={pkg_version} (about 70 MB, once)")
        # apt-get download writes into the working directory; as root it warns that _apt
        # cannot write there, which is harmless.
        _run("apt-get", "download", "-q", f"{package}={pkg_version}", cwd=Path(tmp))
        debs = list(Path(tmp).glob("*.deb"))
        if len(debs) != 1:
            raise BuildError(f"apt-get download left {debs}")
        step(f"unpacking {debs[0].name}")
        unpacked = Path(tmp) / "tree"
        _run("dpkg-deb", "-x", debs[0], unpacked)
        step(f"depmod {kver}")
        _run("depmod", "-b", unpacked, kver)
        # Only boot/ and lib/modules/ are needed; the .deb is dropped (70 MB).
        tree = Path(tmp) / "keep"
        (tree / "lib" / "modules").mkdir(parents=True)
        shutil.move(unpacked / "boot", tree / "boot")
        shutil.move(unpacked / "lib" / "modules" / kver, tree / "lib" / "modules" / kver)
        (tree / ".complete").write_text(f"{package}={pkg_version}\n")
        if dest.exists():
            shutil.rmtree(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tree.rename(dest)
    return kver


def _boot_module_files(modules_dir: Path, kver: str) -> list[Path]:
    """The .ko files BOOT_MODULES need, dependencies first, each once."""
    base = modules_dir.parents[2]  # .../kernel/<kver>; modules_dir is base/lib/modules/kver
    files: list[Path] = []
    for name in BOOT_MODULES:
        out = _run("modprobe", "--show-depends", "-d", base, "-S", kver, name)
        for line in out.splitlines():
            # "insmod /path/x.ko [options]" or "builtin x"
            parts = line.split()
            if parts[:1] == ["insmod"] and Path(parts[1]) not in files:
                files.append(Path(parts[1]))
    return files


def build_initrd(root: Path, kver: str) -> Path:
    """The gzip'd newc cpio initramfs for ``kver``, built unless already cached."""
    modules_dir = root / "kernel" / kver / "lib" / "modules" / kver
    kos = _boot_module_files(modules_dir, kver)
    recipe = hashlib.sha256(INIT_SCRIPT.encode())
    for ko in kos:
        recipe.update(ko.name.encode())
    recipe.update(BUSYBOX.read_bytes())
    target = root / f"initrd-{kver}-{recipe.hexdigest()[:12]}.gz"
    if target.exists():
        return target
    step(f"building the initramfs ({len(kos)} boot modules, busybox)")
    with tempfile.TemporaryDirectory(prefix="initrd-", dir=root) as tmp:
        tree = Path(tmp) / "tree"
        for sub in ("bin", "sbin", "lib/boot-modules", "dev", "proc", "sys", "tmp"):
            (tree / sub).mkdir(parents=True)
        shutil.copy2(BUSYBOX, tree / "bin" / "busybox")
        (tree / "bin" / "sh").symlink_to("busybox")
        for ko in kos:
            shutil.copy2(ko, tree / "lib" / "boot-modules" / ko.name)
        (tree / "lib" / "boot-modules.order").write_text("".join(f"{k.name}\n" for k in kos))
        init = tree / "init"
        init.write_text(INIT_SCRIPT)
        init.chmod(0o755)
        names = sorted(str(p.relative_to(tree)) for p in tree.rglob("*") if p != tree)
        # newc is the format the kernel unpacks; --owner makes every file root's.
        archive = _run_bytes(
            ["cpio", "--quiet", "-o", "-H", "newc", "--owner=0:0"],
            "\n".join(names).encode() + b"\n",
            cwd=tree,
        )
        partial = target.with_suffix(".partial")
        with gzip.open(partial, "wb", compresslevel=6) as out:
            out.write(archive)
        partial.rename(target)
    for old in root.glob(f"initrd-{kver}-*.gz"):
        if old != target:
            old.unlink()
    return target


def _run_bytes(cmd: list[str], stdin: bytes, cwd: Path) -> bytes:
    proc = subprocess.run(cmd, input=stdin, cwd=cwd, capture_output=True, check=False)
    if proc.returncode != 0:
        raise BuildError(f"{' '.join(cmd)} failed: {proc.stderr.decode(errors='replace')}")
    return proc.stdout


def ensure_image(refresh: bool = False) -> Image:
    """Build whatever is missing and return the image; BuildError says why it cannot."""
    if sys.platform != "linux" or os.uname().machine != "x86_64":
        raise BuildError("the VM image is built for x86_64 Linux hosts only")
    if missing := missing_tools():
        raise BuildError(f"missing host packages: {' '.join(missing)} (run `make system-deps`)")
    root = cache_dir()
    root.mkdir(parents=True, exist_ok=True)
    # One builder at a time (parallel pytest workers, two checkouts sharing a cache): the
    # others wait here, then find everything built.
    with open(root / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        kver = fetch_kernel(root, refresh=refresh)
        initrd = build_initrd(root, kver)
    base = root / "kernel" / kver
    return Image(
        version=kver,
        kernel=base / "boot" / f"vmlinuz-{kver}",
        initrd=initrd,
        modules=base / "lib" / "modules" / kver,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--refresh", action="store_true", help="fetch the newest kernel even if one is cached"
    )
    args = parser.parse_args()
    try:
        image = ensure_image(refresh=args.refresh)
    except BuildError as exc:
        step(f"error: {exc}")
        return 1
    step(f"ready: kernel {image.version}")
    print(f"kernel  {image.kernel}\ninitrd  {image.initrd}\nmodules {image.modules}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
