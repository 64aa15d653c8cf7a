"""``appliance gadget up|down|status``: the USB gadget in configfs, from the board profile:
the camera (UVC) and, where the profile has a microphone, the microphone (UAC2) beside it.

Layout written under ``/sys/kernel/config/usb_gadget/<name>/`` (see the kernel's
Documentation/usb/gadget-uvc.rst)::

    idVendor idProduct bcdDevice bcdUSB      strings/0x409/{manufacturer,product,serialnumber}
    configs/c.1/            (macOS once refused a gadget whose configuration was not c.1)
    functions/uvc.0/control/header/h        linked into control/class/{fs,ss}
    functions/uvc.0/streaming/mjpeg/m/<W>x<H>/, uncompressed/u/<W>x<H>/
    functions/uvc.0/streaming/header/h/{m,u} linked into streaming/class/{fs,hs,ss}
    functions/uac2.0/p_chmask p_srate p_ssize c_chmask=0 ...  (appliance/uvc/uac2.py)
    configs/c.1/uvc.0 -> functions/uvc.0, configs/c.1/uac2.0 -> functions/uac2.0,
    then UDC <- the board's device controller

Both functions in one configuration need the interface association triplet on the
device (bDeviceClass 0xEF, bDeviceSubClass 0x02, bDeviceProtocol 0x01), which UVC alone
already requires: it is written either way.

``up`` is idempotent: a gadget that already describes the profile's modes and microphone
(or its absence) and is bound to the UDC is left alone (a host that has the camera open
keeps it); anything else is torn down and rebuilt. A UDC held by another gadget (NVIDIA's
``nv-l4t-usb-device-mode`` on a Jetson) is refused unless ``take_udc`` is set, which
unbinds that gadget: the camera then replaces its USB network and serial functions until
the next boot.

Controls: this kernel's f_uvc writes the processing unit's and camera terminal's
``bmControls`` itself (brightness; auto-exposure mode) and configfs exposes them
read-only before Linux 6.3; where they are writable, the controls the camera implements
are advertised (:data:`PU_CONTROL_BITS`). ``status`` says which are.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from appliance.hw.profile import AudioSpec, BoardProfile
from appliance.uvc import configfs as cfs
from appliance.uvc import uac2
from appliance.uvc.modes import modes_for
from appliance.uvc.protocol import Mode

log = logging.getLogger(__name__)

CONFIGFS = Path("/sys/kernel/config")
GADGET_NAME = "appliance"
FUNCTION = "uvc.0"
CONFIG = "c.1"
LANG = "0x409"
# Linux Foundation's multifunction composite gadget ids: right for development; a
# product ships with its own vendor id (hw profile or `gadget up --vendor`).
VENDOR_ID = 0x1D6B
PRODUCT_ID = 0x0104
BCD_UVC = 0x0110  # UVC 1.1: 34-byte streaming controls, understood by every host
# bmControls bits (UVC 1.5 tables 3-6, 3-8) for what the daemon implements.
PU_CONTROL_BITS = {"brightness": 0, "contrast": 1, "saturation": 3, "sharpness": 4}
CT_CONTROL_BITS = {"auto_exposure_mode": 1, "zoom_absolute": 9}
FORMAT_DIRS = {"MJPG": ("mjpeg", "m"), "YUYV": ("uncompressed", "u")}


class GadgetError(RuntimeError):
    """The gadget cannot be built or bound; the message says what to do."""


@dataclass(frozen=True)
class Identity:
    manufacturer: str
    product: str
    serial: str
    vendor_id: int = VENDOR_ID
    product_id: int = PRODUCT_ID


class Gadget:
    """One gadget directory under ``configfs/usb_gadget``."""

    def __init__(
        self, configfs: Path = CONFIGFS, name: str = GADGET_NAME, sys_root: Path = Path("/sys")
    ) -> None:
        self.configfs = Path(configfs)
        self.sys_root = Path(sys_root)
        self.root = self.configfs / "usb_gadget" / name
        self.function = self.root / "functions" / FUNCTION
        self.audio_function = self.root / "functions" / uac2.FUNCTION

    # -- queries --------------------------------------------------------------------------

    def exists(self) -> bool:
        return self.root.is_dir()

    def udc(self) -> str:
        return cfs.read(self.root / "UDC") if self.exists() else ""

    def modes(self) -> list[tuple[str, int, int, tuple[int, ...]]]:
        """(fourcc, width, height, intervals) as configfs holds them, in header order."""
        header = self.function / "streaming" / "header" / "h"
        found: list[tuple[str, int, int, tuple[int, ...]]] = []
        if not header.is_dir():
            return found
        links = (p for p in header.iterdir() if p.is_symlink())  # not its attributes
        for link in sorted(links, key=_creation_order):
            target = link.resolve()
            fourcc = "MJPG" if target.parent.name == "mjpeg" else "YUYV"
            for frame in sorted((p for p in target.iterdir() if p.is_dir()), key=_creation_order):
                intervals = tuple(int(v) for v in cfs.read(frame / "dwFrameInterval").split())
                width, height = int(cfs.read(frame / "wWidth")), int(cfs.read(frame / "wHeight"))
                found.append((fourcc, width, height, intervals))
        return found

    def audio(self) -> dict[str, tuple[int, ...]] | None:
        """The microphone's stream as configfs holds it; None unless it is in ``c.1``."""
        if not (self.root / "configs" / CONFIG / uac2.FUNCTION).is_symlink():
            return None
        return uac2.current(self.audio_function)

    def interfaces(self) -> tuple[int, int]:
        """(control, streaming) interface numbers, valid once bound."""
        return (
            int(cfs.read(self.function / "control" / "bInterfaceNumber")),
            int(cfs.read(self.function / "streaming" / "bInterfaceNumber")),
        )

    def advertised_controls(self) -> list[str]:
        pu = _bits(cfs.read(self.function / "control/processing/default/bmControls"))
        ct = _bits(cfs.read(self.function / "control/terminal/camera/default/bmControls"))
        names = [n for n, bit in PU_CONTROL_BITS.items() if bit in pu]
        return names + [n for n, bit in CT_CONTROL_BITS.items() if bit in ct]

    def state(self) -> str:
        """The UDC's USB state (``not attached``, ``configured``, ...), or ``unbound``."""
        udc = self.udc()
        if not udc:
            return "unbound"
        return cfs.read(self.sys_root / "class" / "udc" / udc / "state") or "unknown"

    # -- up / down --------------------------------------------------------------------------

    def up(self, profile: BoardProfile, identity: Identity, udc: str, take_udc: bool) -> bool:
        """Build and bind; False when an identical gadget was already up (nothing done)."""
        if profile.uvc is None:
            raise GadgetError(f"board profile {profile.name} has no uvc section")
        modes = modes_for(profile.uvc)
        wanted = [(m.fourcc, m.width, m.height, m.intervals) for m in modes]
        mic = self._microphone(profile)
        audio = uac2.stream(mic) if mic else None
        if (
            self.exists()
            and self.udc() == udc
            and self.modes() == wanted
            and self.audio() == audio  # a microphone gained or lost is a rebuild too
        ):
            return False
        self._free_udc(udc, take_udc)
        if self.exists():
            self.down()
        try:
            self._build(profile, identity, modes)
            cfs.write(self.root / "UDC", udc)
        except OSError as exc:
            self.down()
            raise GadgetError(f"cannot build the gadget: {exc}") from None
        log.info("gadget up on %s: %d modes, microphone: %s", udc, len(modes), mic is not None)
        return True

    def down(self) -> None:
        """Unbind and remove everything, in the reverse order configfs requires."""
        if not self.exists():
            return
        if self.udc():
            cfs.write(self.root / "UDC", "\n")
        fn = self.function
        config = self.root / "configs" / CONFIG
        if config.is_dir():  # every function link, also of a function this build lacks
            for link in (p for p in config.iterdir() if p.is_symlink()):
                cfs.unlink(link)
        for speed in ("fs", "hs", "ss"):
            cfs.unlink(fn / "streaming" / "class" / speed / "h")
        for speed in ("fs", "ss"):
            cfs.unlink(fn / "control" / "class" / speed / "h")
        header = fn / "streaming" / "header" / "h"
        if header.is_dir():
            for link in header.iterdir():
                cfs.unlink(link)
        cfs.rmdir(header)
        for kind, name in FORMAT_DIRS.values():
            fmt = fn / "streaming" / kind / name
            if fmt.is_dir():
                for frame in (p for p in fmt.iterdir() if p.is_dir()):
                    cfs.rmdir(frame)
            cfs.rmdir(fmt)
        cfs.rmdir(fn / "control" / "header" / "h")
        cfs.rmdir(fn)
        cfs.rmdir(self.audio_function)
        cfs.rmdir(self.root / "configs" / CONFIG / "strings" / LANG)
        cfs.rmdir(self.root / "configs" / CONFIG)
        cfs.rmdir(self.root / "strings" / LANG)
        cfs.rmdir(self.root)
        log.info("gadget removed")

    def _free_udc(self, udc: str, take_udc: bool) -> None:
        gadgets = self.configfs / "usb_gadget"
        if not gadgets.is_dir():
            raise GadgetError(
                f"{gadgets} is missing: load libcomposite and mount configfs "
                "(modprobe libcomposite; mount -t configfs none /sys/kernel/config)"
            )
        for other in gadgets.iterdir():
            if other == self.root or cfs.read(other / "UDC") != udc:
                continue
            if not take_udc:
                raise GadgetError(
                    f"{udc} is used by gadget {other.name} (on a Jetson: "
                    "nv-l4t-usb-device-mode); stop it, or pass --take-udc to unbind it"
                )
            log.warning("unbinding gadget %s from %s", other.name, udc)
            cfs.write(other / "UDC", "\n")

    def _build(self, profile: BoardProfile, identity: Identity, modes: list[Mode]) -> None:
        root, fn = self.root, self.function
        spec = profile.uvc
        assert spec is not None
        cfs.mkdir(root)
        cfs.write(root / "idVendor", f"0x{identity.vendor_id:04x}")
        cfs.write(root / "idProduct", f"0x{identity.product_id:04x}")
        cfs.write(root / "bcdDevice", "0x0100")
        cfs.write(root / "bcdUSB", "0x0200" if spec.usb_speed == "high" else "0x0300")
        # Class EF/02/01 (IAD): a composite with an interface association, as UVC needs.
        cfs.write(root / "bDeviceClass", "0xef")
        cfs.write(root / "bDeviceSubClass", "0x02")
        cfs.write(root / "bDeviceProtocol", "0x01")
        strings = root / "strings" / LANG
        cfs.mkdir(strings)
        cfs.write(strings / "manufacturer", identity.manufacturer)
        cfs.write(strings / "product", identity.product)
        cfs.write(strings / "serialnumber", identity.serial)
        config = root / "configs" / CONFIG
        cfs.mkdir(config / "strings" / LANG)
        cfs.write(config / "strings" / LANG / "configuration", "UVC")
        cfs.write(config / "MaxPower", "500")

        cfs.mkdir(fn)
        cfs.write(fn / "function_name", identity.product[:31])
        cfs.write(fn / "streaming_maxpacket", str(spec.max_packet))
        cfs.write(fn / "streaming_maxburst", str(spec.max_burst))
        cfs.write(fn / "streaming_interval", str(spec.interval))
        control_header = fn / "control" / "header" / "h"
        cfs.mkdir(control_header)
        cfs.write(control_header / "bcdUVC", f"0x{BCD_UVC:04x}")
        for speed in ("fs", "ss"):
            cfs.symlink(control_header, fn / "control" / "class" / speed / "h")
        cfs.try_write(
            fn / "control/processing/default/bmControls",
            _bitmap(PU_CONTROL_BITS.values(), 2),
        )
        cfs.try_write(
            fn / "control/terminal/camera/default/bmControls",
            _bitmap(CT_CONTROL_BITS.values(), 3),
        )

        header = fn / "streaming" / "header" / "h"
        cfs.mkdir(header)
        for fourcc in dict.fromkeys(m.fourcc for m in modes):  # descriptor order
            kind, name = FORMAT_DIRS[fourcc]
            fmt = fn / "streaming" / kind / name
            cfs.mkdir(fmt)
            for mode in (m for m in modes if m.fourcc == fourcc):
                self._frame(fmt / f"{mode.width}x{mode.height}", mode)
            cfs.symlink(fmt, header / name)
        for speed in ("fs", "hs", "ss"):
            cfs.symlink(header, fn / "streaming" / "class" / speed / "h")
        cfs.symlink(fn, config / FUNCTION)
        mic = self._microphone(profile)
        if mic is not None:
            uac2.build(self.audio_function, mic)
            cfs.symlink(self.audio_function, config / uac2.FUNCTION)

    def _microphone(self, profile: BoardProfile) -> AudioSpec | None:
        """The profile's microphone where this kernel can make it: without f_uac2 the
        camera is built alone (a webcam without its microphone beats no webcam) and the
        log and ``status`` say why. Asked once the gadget's directory exists."""
        mic = profile.microphone
        if mic is None or not self.exists():
            return mic
        problem = uac2.unsupported(self.root / "functions")
        if problem is not None:
            log.warning("gadget: the camera without its microphone: %s", problem)
            return None
        return mic

    @staticmethod
    def _frame(path: Path, mode: Mode) -> None:
        cfs.mkdir(path)
        cfs.write(path / "wWidth", str(mode.width))
        cfs.write(path / "wHeight", str(mode.height))
        cfs.write(path / "dwMaxVideoFrameBufferSize", str(mode.max_frame_bytes))
        fastest = min(mode.intervals)
        bits_per_frame = mode.width * mode.height * 16
        cfs.write(path / "dwMinBitRate", str(bits_per_frame * 10_000_000 // max(mode.intervals)))
        cfs.write(path / "dwMaxBitRate", str(bits_per_frame * 10_000_000 // fastest))
        # One interval per line, in the profile's order (its first is the default).
        cfs.write(path / "dwFrameInterval", "\n".join(str(i) for i in mode.intervals) + "\n")
        cfs.write(path / "dwDefaultFrameInterval", str(mode.default_interval))

    # -- status -------------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        if not self.exists():
            return {
                "gadget": None, "udc": None, "state": "absent", "modes": [], "audio": None,
                "audio_problem": None,
            }  # fmt: skip
        bound = bool(self.udc())
        return {
            "gadget": str(self.root),
            "udc": self.udc() or None,
            "state": self.state(),
            "modes": [
                {"format": f, "width": w, "height": h, "fps": [round(1e7 / i, 3) for i in iv]}
                for f, w, h, iv in self.modes()
            ],
            "interfaces": list(self.interfaces()) if bound else None,
            "controls": self.advertised_controls(),
            "audio": uac2.status(self.audio_function, self.audio() is not None, self.sys_root),
            "audio_problem": uac2.unsupported(self.root / "functions"),
        }


def find_udc(profile: BoardProfile, sys_root: Path = Path("/sys")) -> str:
    """The first of the profile's UDCs that exists, else the only one there is."""
    present = sorted(p.name for p in (sys_root / "class" / "udc").glob("*"))
    for name in profile.udc:
        if name in present:
            return name
    if len(present) == 1:
        return present[0]
    if not present:
        raise GadgetError("no USB device controller (UDC) in /sys/class/udc")
    raise GadgetError(f"several UDCs ({', '.join(present)}) and none in the profile: use --udc")


# -- configfs helpers: each step says what failed -------------------------------------------


def _creation_order(path: Path) -> tuple[int, str]:
    # configfs lists children newest first; descriptors follow creation order. The inode
    # numbers of configfs items grow with creation, so they restore it.
    try:
        return (path.lstat().st_ino, path.name)
    except OSError:
        return (0, path.name)


def _bitmap(bits: Any, size: int) -> str:
    value = 0
    for bit in bits:
        value |= 1 << bit
    return " ".join(str((value >> (8 * i)) & 0xFF) for i in range(size))


def _bits(text: str) -> set[int]:
    value = 0
    for i, part in enumerate(text.split()):
        value |= int(part, 0) << (8 * i)
    return {b for b in range(24) if value >> b & 1}
