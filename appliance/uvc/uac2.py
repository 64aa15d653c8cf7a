"""The camera's microphone in the USB gadget: f_uac2 in configfs, device to host only.

f_uac2 names its two streams from the gadget's ALSA side: ``p_*`` ("playback") is what
the gadget plays to the host, i.e. the host's microphone; ``c_*`` ("capture") is the
host's speaker. The microphone is ``p_chmask``/``p_srate``/``p_ssize``; ``c_chmask 0``
drops the speaker stream, and with it the host-to-device endpoint and its feedback
endpoint that Windows' usbaudio2 and macOS are picky about.

The terminal type (Windows fails with Code 10 on UNDEFINED): f_uac2 has declared the
microphone's input terminal MICROPHONE (0x0201) since Linux 5.17 (commit 5432184107cd,
also in the 5.10 and 5.15 stable updates; Debian 12's 6.1 has it, measured). Newer
kernels let configfs set it -- through ``c_terminal_type``: the kernel writes that one
into the device-to-host input terminal and ``p_terminal_type`` into the speaker's output
terminal, which a microphone-only function does not have. So ``c_terminal_type`` is
written where it exists, ``p_terminal_type`` is left alone, and :func:`status` says
which case this kernel is.

Attributes that older kernels lack (the terminal type, the mute and volume controls,
``function_name``) are written only where configfs made them: the function directory's
files are the kernel's attribute list.
"""

from __future__ import annotations

import errno
from pathlib import Path
from typing import Any

from appliance.hw.profile import AudioSpec
from appliance.uvc import configfs as cfs

FUNCTION = "uac2.0"
FUNCTION_NAME = "Conference camera microphone"  # the interface association's string
MICROPHONE = 0x0201  # USB Audio terminal types, input terminal: microphone
# The stream, on every kernel with f_uac2; compared by `gadget up` for idempotence.
STREAM = ("p_chmask", "p_srate", "p_ssize", "c_chmask")
# Written where this kernel has them, with the value they get.
OPTIONAL = {
    "c_terminal_type": f"0x{MICROPHONE:04x}",
    "p_mute_present": "1",  # the host reads and sets mute and volume (Feature Unit)
    "p_volume_present": "1",
    "function_name": FUNCTION_NAME,
}
# The card u_audio registers for the gadget (shortname "UAC2_Gadget", id without the _).
ALSA_CARD_ID = "UAC2Gadget"


def stream(spec: AudioSpec) -> dict[str, tuple[int, ...]]:
    """The ``STREAM`` attributes as the profile wants them (one rate, no speaker)."""
    return {
        "p_chmask": ((1 << spec.channels) - 1,),
        "p_srate": (spec.sample_rate,),
        "p_ssize": (spec.sample_size,),
        "c_chmask": (0,),
    }


def current(fn: Path) -> dict[str, tuple[int, ...]] | None:
    """The ``STREAM`` attributes as configfs holds them; None without the function."""
    if not fn.is_dir():
        return None
    return {name: _ints(cfs.read(fn / name)) for name in STREAM}


NO_F_UAC2 = "this kernel has no f_uac2 (modprobe usb_f_uac2; CONFIG_USB_CONFIGFS_F_UAC2)"


def unsupported(functions: Path) -> str | None:
    """Why this kernel cannot make the microphone (None: it can), asked of configfs itself:
    a function directory that libcomposite cannot back with a module is refused."""
    if (functions / FUNCTION).is_dir():
        return None
    probe = functions / "uac2.probe"
    try:
        cfs.mkdir(probe)
    except FileNotFoundError:
        return NO_F_UAC2
    cfs.rmdir(probe)
    return None


def build(fn: Path, spec: AudioSpec) -> None:
    """Create the function and write its attributes (before it is linked: f_uac2 refuses
    changes to a function in use with EBUSY)."""
    try:
        cfs.mkdir(fn)
    except FileNotFoundError:  # libcomposite tried to load the module and found none
        raise OSError(errno.ENOENT, f"cannot create {fn}: {NO_F_UAC2}") from None
    for name, values in stream(spec).items():
        cfs.write(fn / name, ",".join(str(v) for v in values))
    for name, value in OPTIONAL.items():
        if cfs.has(fn / name):
            cfs.write(fn / name, value)


def status(fn: Path, linked: bool, sys_root: Path) -> dict[str, Any] | None:
    """What the host is offered, read back from configfs; None without the function."""
    values = current(fn)
    if values is None:
        return None
    present = {name: cfs.read(fn / name) for name in OPTIONAL if cfs.has(fn / name)}
    if "c_terminal_type" in present:
        code = _ints(present["c_terminal_type"])
        terminal = f"0x{code[0]:04x} (set through c_terminal_type)" if code else "unreadable"
    else:
        terminal = (
            "not settable on this kernel (no c_terminal_type): f_uac2's own, MICROPHONE "
            "since Linux 5.17 and its 5.10/5.15 stable updates, UNDEFINED before"
        )
    controls = [c for c in ("mute", "volume") if present.get(f"p_{c}_present") == "1"]
    return {
        "function": fn.name,
        "linked": linked,
        "sample_rate": (values["p_srate"] or (0,))[0],
        "channels": bin((values["p_chmask"] or (0,))[0]).count("1"),
        "sample_size": (values["p_ssize"] or (0,))[0],
        "speaker": values["c_chmask"] != (0,),
        "terminal_type": terminal,
        "controls": controls,
        "set": {name: ",".join(map(str, v)) for name, v in values.items()} | present,
        "not_on_this_kernel": [name for name in OPTIONAL if name not in present],
        "alsa": _alsa_device(sys_root),
    }


def _alsa_device(sys_root: Path) -> str | None:
    """The gadget's own ALSA card, where the daemon plays the microphone's samples."""
    for card in sorted((sys_root / "class" / "sound").glob("card*")):
        if cfs.read(card / "id") == ALSA_CARD_ID:
            return f"hw:CARD={ALSA_CARD_ID},DEV=0"
    return None


def _ints(text: str) -> tuple[int, ...]:
    """``48000``, ``44100,48000`` or ``0x0201`` as integers; () when unreadable."""
    try:
        return tuple(int(part, 0) for part in text.replace(",", " ").split())
    except ValueError:
        return ()
