"""The gadget builder's refusals, where no configfs or UDC exists (the build itself runs
against the real configfs in tests/vm/test_uvc_gadget.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from appliance.cli import main
from appliance.hw.profile import load_profiles
from appliance.uvc.gadget import GadgetError, _bitmap, _bits, find_udc


def profile(name: str = "jetson-orin-nano-devkit"):
    return next(p for p in load_profiles() if p.name == name)


def test_the_profiles_udc_is_preferred_then_the_only_one(tmp_path: Path) -> None:
    udc = tmp_path / "class" / "udc"
    udc.mkdir(parents=True)
    with pytest.raises(GadgetError, match="no USB device controller"):
        find_udc(profile(), tmp_path)
    (udc / "3550000.usb").mkdir()
    (udc / "other.udc").mkdir()
    assert find_udc(profile(), tmp_path) == "3550000.usb"
    with pytest.raises(GadgetError, match="several UDCs"):
        find_udc(profile("generic-x86"), tmp_path)
    (udc / "3550000.usb").rmdir()
    assert find_udc(profile("generic-x86"), tmp_path) == "other.udc"


def test_without_configfs_up_says_what_to_do_and_creates_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["gadget", "--configfs", str(tmp_path), "--board", "generic-x86"]
    assert main([*args, "up", "--udc", "usbip-vudc.0"]) == 1
    assert "modprobe libcomposite" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
    assert main([*args, "status", "--json"]) == 0
    assert '"state": "absent"' in capsys.readouterr().out


def test_control_bitmaps_round_trip() -> None:
    assert _bitmap([0, 1, 3, 4], 2) == "27 0"  # brightness, contrast, saturation, sharpness
    assert _bitmap([1, 9], 3) == "2 2 0"  # auto-exposure mode, zoom absolute
    assert _bits("27 0") == {0, 1, 3, 4} and _bits("2 2 0") == {1, 9}
