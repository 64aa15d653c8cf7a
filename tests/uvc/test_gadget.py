"""The gadget builder: its refusals where no configfs or UDC exists, and the composite
(camera and microphone) against a fake configfs that models what the builder relies on
(tests/uvc/fake_configfs.py); the real configfs and host drivers are in
tests/vm/test_uvc_gadget.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from appliance.cli import main
from appliance.hw.profile import AudioSpec, load_profiles
from appliance.uvc.gadget import Gadget, GadgetError, Identity, _bitmap, _bits, find_udc
from tests.uvc.fake_configfs import UAC2_6_1, UAC2_NEWER, UAC2_OLD, FakeConfigfs


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


# -- the composite gadget against a fake configfs (tests/uvc/fake_configfs.py) --------------

UDC = "usbip-vudc.0"
IDENTITY = Identity("Appliance project", "AI Conference Camera", "test-1")


def _setup(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, uac2: dict[str, str] | None = UAC2_NEWER
) -> tuple[Gadget, FakeConfigfs]:
    sys_root = tmp_path / "sys"
    (sys_root / "class" / "udc" / UDC).mkdir(parents=True)
    (sys_root / "class" / "udc" / UDC / "state").write_text("not attached\n")
    fake = FakeConfigfs(tmp_path / "config", sys_root, uac2).install(monkeypatch)
    return Gadget(tmp_path / "config", sys_root=sys_root), fake


def _without_microphone(board=None):
    board = board or profile("generic-x86")
    return board.model_copy(update={"audio": None})


def test_the_composite_is_the_camera_and_a_48k_mono_microphone(tmp_path, monkeypatch) -> None:
    gadget, _ = _setup(tmp_path, monkeypatch)
    assert gadget.up(profile("generic-x86"), IDENTITY, UDC, take_udc=False)
    root = gadget.root
    # Two functions in one configuration: the interface association triplet (EF/02/01).
    assert [(root / a).read_text() for a in ("bDeviceClass", "bDeviceSubClass")] == [
        "0xef",
        "0x02",
    ]
    assert (root / "bDeviceProtocol").read_text() == "0x01"
    config = root / "configs" / "c.1"
    links = sorted(p.name for p in config.iterdir() if p.is_symlink())
    assert links == ["uac2.0", "uvc.0"]
    assert (config / "uac2.0").resolve() == root / "functions" / "uac2.0"
    fn = root / "functions" / "uac2.0"
    attrs = {p.name: p.read_text().strip() for p in fn.iterdir()}
    # Microphone only: the device-to-host stream, 48 kHz mono 16-bit; no speaker stream.
    assert (attrs["p_chmask"], attrs["p_srate"], attrs["p_ssize"]) == ("1", "48000", "2")
    assert attrs["c_chmask"] == "0"
    # The microphone's input terminal is f_uac2's c_terminal_type; p_terminal_type (the
    # speaker's output terminal) keeps its default.
    assert attrs["c_terminal_type"] == str(0x0201) and attrs["p_terminal_type"] == str(0x0301)
    assert attrs["p_mute_present"] == "1" and attrs["p_volume_present"] == "1"
    assert attrs["function_name"] == "Conference camera microphone"
    assert (root / "UDC").read_text() == UDC

    audio = gadget.status()["audio"]
    assert audio["linked"] and not audio["speaker"]
    assert (audio["sample_rate"], audio["channels"], audio["sample_size"]) == (48000, 1, 2)
    assert audio["terminal_type"] == "0x0201 (set through c_terminal_type)"
    assert audio["controls"] == ["mute", "volume"]
    assert audio["not_on_this_kernel"] == []
    assert audio["set"]["c_chmask"] == "0" and audio["set"]["c_terminal_type"] == "513"
    assert audio["alsa"] == "hw:CARD=UAC2Gadget,DEV=0"
    assert gadget.status()["interfaces"] == [0, 1]  # the camera keeps interfaces 0 and 1


def test_a_board_without_a_microphone_builds_the_camera_alone(tmp_path, monkeypatch) -> None:
    gadget, fake = _setup(tmp_path, monkeypatch)
    no_audio = _without_microphone()
    mic_off = profile("generic-x86").model_copy(
        update={"audio": AudioSpec(microphone=False, sample_rate=48000)}
    )
    for board in (no_audio, mic_off):
        assert gadget.up(board, IDENTITY, UDC, take_udc=False)
        assert not (gadget.root / "functions" / "uac2.0").exists()
        config = gadget.root / "configs" / "c.1"
        assert [p.name for p in config.iterdir() if p.is_symlink()] == ["uvc.0"]
        status = gadget.status()
        assert status["audio"] is None and len(status["modes"]) == 5
        assert not any("uac2" in path for path in fake.tree())
        assert not (tmp_path / "sys" / "class" / "sound" / "card0").exists()
        gadget.down()


def test_up_is_idempotent_and_rebuilds_when_the_microphone_comes_or_goes(
    tmp_path, monkeypatch
) -> None:
    gadget, fake = _setup(tmp_path, monkeypatch)
    with_mic, without = profile("generic-x86"), _without_microphone()
    assert gadget.up(with_mic, IDENTITY, UDC, take_udc=False)
    built = fake.tree()
    assert not gadget.up(with_mic, IDENTITY, UDC, take_udc=False)  # left alone
    assert fake.tree() == built
    assert gadget.up(without, IDENTITY, UDC, take_udc=False)  # lost: rebuilt
    assert gadget.status()["audio"] is None
    assert not gadget.up(without, IDENTITY, UDC, take_udc=False)
    assert gadget.up(with_mic, IDENTITY, UDC, take_udc=False)  # gained: rebuilt
    assert gadget.status()["audio"]["linked"]
    assert fake.tree() == built
    mic = with_mic.microphone
    assert mic is not None
    stereo = with_mic.model_copy(update={"audio": mic.model_copy(update={"channels": 2})})
    assert gadget.up(stereo, IDENTITY, UDC, take_udc=False)  # another stream: rebuilt
    assert (gadget.root / "functions" / "uac2.0" / "p_chmask").read_text().strip() == "3"
    assert not gadget.up(stereo, IDENTITY, UDC, take_udc=False)


def test_down_leaves_nothing(tmp_path, monkeypatch) -> None:
    gadget, fake = _setup(tmp_path, monkeypatch)
    gadget.up(profile("generic-x86"), IDENTITY, UDC, take_udc=False)
    assert (tmp_path / "sys" / "class" / "sound" / "card0").is_dir()
    gadget.down()
    assert fake.tree() == []
    assert not (tmp_path / "sys" / "class" / "sound" / "card0").exists()  # unbound first
    assert gadget.status() == {
        "gadget": None,
        "udc": None,
        "state": "absent",
        "modes": [],
        "audio": None,
        "audio_problem": None,
    }
    gadget.down()  # twice is fine


def test_linux_6_1_has_no_terminal_type_attribute_and_status_says_so(tmp_path, monkeypatch) -> None:
    gadget, _ = _setup(tmp_path, monkeypatch, uac2=UAC2_6_1)
    assert gadget.up(profile("generic-x86"), IDENTITY, UDC, take_udc=False)
    fn = gadget.root / "functions" / "uac2.0"
    assert not (fn / "c_terminal_type").exists() and not (fn / "p_terminal_type").exists()
    assert (fn / "p_srate").read_text().strip() == "48000"
    audio = gadget.status()["audio"]
    assert audio["not_on_this_kernel"] == ["c_terminal_type"]
    assert audio["terminal_type"].startswith("not settable on this kernel")
    assert "MICROPHONE since Linux 5.17" in audio["terminal_type"]
    assert audio["controls"] == ["mute", "volume"]
    assert not gadget.up(profile("generic-x86"), IDENTITY, UDC, take_udc=False)


def test_an_older_f_uac2_without_controls_or_names_still_builds(tmp_path, monkeypatch) -> None:
    gadget, _ = _setup(tmp_path, monkeypatch, uac2=UAC2_OLD)
    assert gadget.up(profile("generic-x86"), IDENTITY, UDC, take_udc=False)
    audio = gadget.status()["audio"]
    assert audio["controls"] == []
    assert audio["not_on_this_kernel"] == [
        "c_terminal_type",
        "p_mute_present",
        "p_volume_present",
        "function_name",
    ]
    assert (audio["sample_rate"], audio["channels"]) == (48000, 1)


def test_without_usb_f_uac2_the_camera_comes_up_alone_and_says_why(tmp_path, monkeypatch) -> None:
    gadget, fake = _setup(tmp_path, monkeypatch, uac2=None)
    assert gadget.up(profile("generic-x86"), IDENTITY, UDC, take_udc=False)
    assert gadget.audio() is None and gadget.udc() == UDC  # a webcam, bound
    assert "modprobe usb_f_uac2" in gadget.status()["audio_problem"]
    assert not [p for p in fake.tree() if p.startswith("appliance/functions/uac2")]  # no probe left
    assert not gadget.up(profile("generic-x86"), IDENTITY, UDC, take_udc=False)  # idempotent
    gadget.down()
    assert fake.tree() == []


def test_gadget_cli_up_and_status_name_the_microphone(tmp_path, monkeypatch, capsys) -> None:
    _setup(tmp_path, monkeypatch)
    args = ["gadget", "--configfs", str(tmp_path / "config"), "--board", "generic-x86"]
    assert main([*args, "up", "--udc", UDC, "--serial", "t"]) == 0
    assert "(generic-x86: camera and microphone)" in capsys.readouterr().out
    assert main([*args, "status"]) == 0
    out = capsys.readouterr().out
    assert "microphone: 48000 Hz, 1 channel(s), 16-bit, controls ['mute', 'volume']" in out
    assert "terminal type: 0x0201 (set through c_terminal_type)" in out
    assert main([*args, "down"]) == 0
