"""A fake configfs for the gadget builder: plain directories, plus the kernel behaviours
the builder relies on, by replacing ``appliance.uvc.configfs``'s mkdir, rmdir and write.

- mkdir of a gadget, a configuration or a uvc/uac2 function makes the default groups the
  kernel makes; a uac2 function also gets the attribute files of the modelled kernel
  (:data:`UAC2_6_1` and friends), with the kernel's defaults; a function whose module
  is not loaded (``functions`` not listing it) fails with ENOENT;
- rmdir refuses a default group (EPERM) and an item that still holds links or items made
  by mkdir (ENOTEMPTY); otherwise the item goes with its attributes and default groups;
- writing an attribute a uac2 function does not have fails with EACCES (configfs cannot
  create files), a number that does not parse with EINVAL, and any write while the
  function is linked into a configuration with EBUSY (f_uac2 checks its refcount);
- writing a UDC name binds: the uvc interface numbers appear, and with a uac2 function
  linked, its ALSA card under ``<sys_root>/class/sound``; writing "\\n" unbinds.
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

import pytest

from appliance.uvc import configfs

# f_uac2's attributes and defaults on Debian 12's 6.1 (the names read from its
# usb_f_uac2.ko; the speaker's rate default is 64000 there).
UAC2_6_1 = {
    "c_chmask": "3",
    "c_srate": "64000",
    "c_ssize": "2",
    "c_sync": "async",
    "c_hs_bint": "1",
    "c_mute_present": "1",
    "c_volume_present": "1",
    "c_volume_min": "-25600",
    "c_volume_max": "0",
    "c_volume_res": "256",
    "fb_max": "5",
    "function_name": "Source/Sink",
    "p_chmask": "3",
    "p_srate": "48000",
    "p_ssize": "2",
    "p_hs_bint": "1",
    "p_mute_present": "1",
    "p_volume_present": "1",
    "p_volume_min": "-25600",
    "p_volume_max": "0",
    "p_volume_res": "256",
    "req_number": "2",
}
# Newer kernels add the terminal types (0x0201 microphone for the device-to-host input
# terminal, 0x0301 speaker for the other direction's output terminal) and names.
UAC2_NEWER = UAC2_6_1 | {"c_terminal_type": "513", "p_terminal_type": "769", "p_it_name": ""}
# Before the mute/volume controls and function_name.
UAC2_OLD = {
    k: v
    for k, v in UAC2_6_1.items()
    if not k.endswith(("_present", "_min", "_max", "_res", "_bint")) and k != "function_name"
}
_STRINGS = ("function_name", "c_sync", "p_it_name")

UVC_DEFAULTS = [
    "control/header",
    "control/processing/default",
    "control/terminal/camera/default",
    "control/terminal/output/default",
    "control/class/fs",
    "control/class/ss",
    "streaming/header",
    "streaming/uncompressed",
    "streaming/mjpeg",
    "streaming/color_matching/default",
    "streaming/class/fs",
    "streaming/class/hs",
    "streaming/class/ss",
]


class FakeConfigfs:
    def __init__(
        self,
        root: Path,
        sys_root: Path,
        uac2: dict[str, str] | None = UAC2_NEWER,
    ) -> None:
        self.root, self.sys_root = root, sys_root
        self.uac2 = uac2  # None: usb_f_uac2 is not loaded
        self.defaults: set[Path] = set()
        (root / "usb_gadget").mkdir(parents=True)

    def install(self, monkeypatch: pytest.MonkeyPatch) -> FakeConfigfs:
        monkeypatch.setattr(configfs, "mkdir", self.mkdir)
        monkeypatch.setattr(configfs, "rmdir", self.rmdir)
        monkeypatch.setattr(configfs, "write", self.write)
        return self

    # -- what the kernel does ------------------------------------------------------------

    def mkdir(self, path: Path) -> None:
        missing = [p for p in [path, *path.parents] if not p.exists()]
        for item in reversed(missing):
            if not item.exists():  # not made as a default group of its parent
                self._make(item)

    def _make(self, item: Path) -> None:
        parent = item.parent
        if parent.name == "functions" and item.name.startswith("uac2."):
            if self.uac2 is None:
                raise FileNotFoundError(errno.ENOENT, "No such file or directory", str(item))
            item.mkdir()
            for name, value in self.uac2.items():
                (item / name).write_text(value + "\n")
            return
        item.mkdir()
        if parent.name == "usb_gadget":
            self._defaults(item, ["functions", "configs", "strings", "os_desc"])
            (item / "UDC").write_text("\n")
        elif parent.name == "functions" and item.name.startswith("uvc."):
            self._defaults(item, UVC_DEFAULTS)
            for part in ("control", "streaming"):
                (item / part / "bInterfaceNumber").write_text("\n")
        elif parent.name == "configs":
            self._defaults(item, ["strings"])

    def _defaults(self, item: Path, groups: list[str]) -> None:
        for group in groups:
            path = item
            for part in Path(group).parts:
                path = path / part
                path.mkdir(exist_ok=True)
                self.defaults.add(path)

    def rmdir(self, path: Path) -> None:
        if not path.is_dir():
            return
        if path in self.defaults:
            raise PermissionError(errno.EPERM, "Operation not permitted", str(path))
        for sub in path.rglob("*"):
            if sub.is_symlink() or (sub.is_dir() and sub not in self.defaults):
                raise OSError(errno.ENOTEMPTY, "Directory not empty", str(path))
        shutil.rmtree(path)
        self.defaults = {p for p in self.defaults if path not in p.parents}

    def write(self, path: Path, value: str) -> None:
        if path.name == "UDC":
            self._bind(path.parent, value.strip())
        if path.parent.parent.name == "functions" and path.parent.name.startswith("uac2."):
            value = self._uac2_value(path, value)
        path.write_text(value)

    def _uac2_value(self, path: Path, value: str) -> str:
        fn = path.parent
        if not path.is_file():
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        gadget = fn.parent.parent
        if any(link.resolve() == fn for link in gadget.glob("configs/*/*") if link.is_symlink()):
            raise OSError(errno.EBUSY, "Device or resource busy", str(path))
        if path.name in _STRINGS:
            return value.strip() + "\n"
        try:
            return ",".join(str(int(v, 0)) for v in value.strip().split(",")) + "\n"
        except ValueError:
            raise OSError(errno.EINVAL, "Invalid argument", str(path)) from None

    def _bind(self, gadget: Path, udc: str) -> None:
        linked = [p.resolve().name for p in gadget.glob("configs/*/*") if p.is_symlink()]
        card = self.sys_root / "class" / "sound" / "card0"
        uvc = gadget / "functions" / "uvc.0"
        if udc:
            if uvc.name in linked:
                (uvc / "control" / "bInterfaceNumber").write_text("0\n")
                (uvc / "streaming" / "bInterfaceNumber").write_text("1\n")
            if any(name.startswith("uac2.") for name in linked):
                card.mkdir(parents=True)
                (card / "id").write_text("UAC2Gadget\n")
        elif card.is_dir():
            shutil.rmtree(card)

    # -- for the tests ---------------------------------------------------------------------

    def tree(self) -> list[str]:
        """Everything under usb_gadget, as relative paths (links marked ``->``)."""
        out = []
        for path in sorted((self.root / "usb_gadget").rglob("*")):
            rel = str(path.relative_to(self.root / "usb_gadget"))
            out.append(f"{rel} -> {os.readlink(path)}" if path.is_symlink() else rel)
        return out
