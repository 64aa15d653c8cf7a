"""The hardware probe on fake sysfs/devfs trees: a Jetson-like one and an empty one."""

from __future__ import annotations

import errno
import json
import types
from pathlib import Path

import pytest

from appliance.hw.probe import format_report, probe

HW_DIR = Path(__file__).resolve().parents[2] / "hw"


def _file(root: Path, path: str, content: str | bytes = "") -> Path:
    target = root / path.lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        target.write_bytes(content)
    else:
        target.write_text(content)
    return target


def _importer(
    available: dict[str, dict[str, object]], broken: dict[str, BaseException] | None = None
):
    """An import function that knows only ``available`` and fails for ``broken``."""
    broken = broken or {}

    def importer(name: str) -> types.ModuleType:
        if name in broken:
            raise broken[name]
        if name in available:
            module = types.ModuleType(name)
            for key, value in available[name].items():
                setattr(module, key, value)
            return module
        raise ModuleNotFoundError(f"No module named '{name}'")

    return importer


@pytest.fixture
def orin_root(tmp_path: Path) -> Path:
    root = tmp_path / "orin"
    _file(
        root,
        "/proc/device-tree/compatible",
        b"nvidia,p3768-0000+p3767-0005\0nvidia,p3767-0005\0nvidia,tegra234\0",
    )
    _file(
        root,
        "/proc/mounts",
        "sysfs /sys sysfs rw 0 0\nconfigfs /sys/kernel/config configfs rw 0 0\n",
    )
    (root / "sys/kernel/config/usb_gadget").mkdir(parents=True)
    _file(root, "/sys/class/udc/3550000.usb/state", "not attached\n")
    for i, (kind, milli) in enumerate(
        [("cpu-thermal", "48500"), ("gpu-thermal", "47250"), ("soc0-thermal", "49000")]
    ):
        _file(root, f"/sys/class/thermal/thermal_zone{i}/type", kind + "\n")
        _file(root, f"/sys/class/thermal/thermal_zone{i}/temp", milli + "\n")
    # cv0-thermal: exists, but its temp cannot be read (a directory stands in for EAGAIN).
    _file(root, "/sys/class/thermal/thermal_zone3/type", "cv0-thermal\n")
    (root / "sys/class/thermal/thermal_zone3/temp").mkdir()
    _file(root, "/sys/class/thermal/thermal_zone10/type", "tj-thermal\n")
    _file(root, "/sys/class/thermal/thermal_zone10/temp", "50937\n")
    _file(root, "/dev/nvmap")
    _file(root, "/dev/nvgpu/igpu0/ctrl")
    _file(root, "/dev/video0")
    _file(root, "/sys/class/video4linux/video0/name", "vi-output, imx219 9-0010\n")
    _file(root, "/run/udev/control")
    return root


def test_jetson_tree(orin_root: Path) -> None:
    importer = _importer(
        {
            "jetson_utils": {},
            "tensorrt": {"__version__": "10.3.0"},
            "pyudev": {"__version__": "0.24.1"},
        }
    )
    report = probe(orin_root, HW_DIR, importer=importer, machine="aarch64")

    assert report.board == "jetson-orin-nano-devkit"
    assert report.board_detected
    assert report.capture.backend == "jetson-utils"
    assert report.capture.details["devices"] == ["/dev/video0"]
    assert report.inference.backend == "tensorrt 10.3.0"
    assert report.uvc.backend == "configfs gadget on 3550000.usb"
    assert report.uvc.details["udcs"] == {"3550000.usb": "not attached"}
    assert report.hotplug.backend == "pyudev"
    assert report.gpu.backend == "tegra iGPU"
    assert "/dev/nvgpu/igpu0/ctrl" in report.gpu.details["device_nodes"]

    temps = {t.type: t for t in report.temperatures}
    assert temps["cpu-thermal"].celsius == pytest.approx(48.5)
    assert temps["tj-thermal"].celsius == pytest.approx(50.937)
    assert temps["cv0-thermal"].celsius is None and temps["cv0-thermal"].error
    # natural order: thermal_zone10 after thermal_zone3
    assert [t.zone for t in report.temperatures][-1] == "thermal_zone10"
    assert report.thermal_zones_missing == []

    json.dumps(report.to_dict())  # the report is plain data
    text = format_report(report)
    assert "board      jetson-orin-nano-devkit (detected:" in text
    assert "uvc        configfs gadget on 3550000.usb" in text
    assert "cv0-thermal (thermal_zone3): unreadable" in text


def test_jetson_tree_on_jetpack5_udc_name(orin_root: Path) -> None:
    (orin_root / "sys/class/udc/3550000.usb/state").unlink()
    (orin_root / "sys/class/udc/3550000.usb").rmdir()
    _file(orin_root, "/sys/class/udc/3550000.xudc/state", "configured\n")
    report = probe(orin_root, HW_DIR, importer=_importer({}), machine="aarch64")
    assert report.uvc.backend == "configfs gadget on 3550000.xudc"


def test_jetson_without_udc_says_why(orin_root: Path) -> None:
    (orin_root / "sys/class/udc/3550000.usb/state").unlink()
    (orin_root / "sys/class/udc/3550000.usb").rmdir()
    report = probe(orin_root, HW_DIR, importer=_importer({}), machine="aarch64")
    assert report.uvc.backend == "unavailable"
    assert "3550000.usb" in report.uvc.reason and "device mode" in report.uvc.reason


def test_empty_tree(tmp_path: Path) -> None:
    report = probe(tmp_path, HW_DIR, importer=_importer({}), machine="x86_64")

    assert report.board == "generic-x86"
    assert report.board_detected
    assert report.capture.backend == "v4l2 (mmap) + files/synthetic"
    assert "jetson_utils is not installed" in report.capture.reason
    assert report.capture.details["devices"] == []
    assert report.inference.backend == "none"
    assert "tensorrt is not installed" in report.inference.reason
    assert "onnxruntime is not installed" in report.inference.reason
    assert report.uvc.backend == "unavailable"
    assert "configfs" in report.uvc.reason
    assert report.hotplug.backend == "polling"
    assert report.gpu.backend == "none"
    assert report.temperatures == []
    assert report.thermal_zones_missing == ["x86_pkg_temp", "acpitz"]


def test_empty_tree_on_arm_is_flagged_undetected(tmp_path: Path) -> None:
    report = probe(tmp_path, HW_DIR, importer=_importer({}), machine="aarch64")
    assert report.board == "generic-x86"
    assert not report.board_detected


def test_broken_libraries_are_reasons_not_tracebacks(tmp_path: Path) -> None:
    importer = _importer(
        {"onnxruntime": {"__version__": "1.20.1", "get_available_providers": lambda: ["CPU"]}},
        broken={
            "jetson_utils": OSError("libcudart.so.12: cannot open shared object file"),
            "tensorrt": RuntimeError("CUDA initialization failure with error: 35"),
            "pyudev": ImportError("libudev.so.1: cannot open shared object file"),
        },
    )
    report = probe(tmp_path, HW_DIR, importer=importer, machine="x86_64")
    assert report.capture.backend == "v4l2 (mmap) + files/synthetic"
    assert "jetson_utils failed to load: OSError: libcudart" in report.capture.reason
    assert report.inference.backend == "onnxruntime 1.20.1 (CPU)"
    assert "RuntimeError: CUDA initialization failure" in report.inference.reason
    assert report.inference.details["providers"] == ["CPU"]
    assert report.hotplug.backend == "polling"
    assert "libudev" in report.hotplug.reason


def test_pyudev_without_udevd_uses_kernel_events(orin_root: Path) -> None:
    (orin_root / "run/udev/control").unlink()
    report = probe(orin_root, HW_DIR, importer=_importer({"pyudev": {}}), machine="aarch64")
    assert report.hotplug.backend == "pyudev (kernel uevents)"
    assert "/run/udev/control" in report.hotplug.reason


def test_dev_box_with_test_udc(tmp_path: Path) -> None:
    _file(tmp_path, "/proc/mounts", "configfs /sys/kernel/config configfs rw 0 0\n")
    (tmp_path / "sys/kernel/config/usb_gadget").mkdir(parents=True)
    _file(tmp_path, "/sys/class/udc/dummy_udc.0/state", "not attached\n")
    _file(tmp_path, "/sys/class/udc/usbip-vudc.0/state", "not attached\n")
    _file(tmp_path, "/dev/nvidiactl")
    _file(tmp_path, "/dev/nvidia0")
    report = probe(tmp_path, HW_DIR, importer=_importer({}), machine="x86_64")
    assert report.uvc.backend == "configfs gadget on usbip-vudc.0 (test controller)"
    assert "tests only" in report.uvc.reason
    assert report.gpu.backend == "nvidia dGPU"


def test_configfs_without_libcomposite(tmp_path: Path) -> None:
    _file(tmp_path, "/proc/mounts", "configfs /sys/kernel/config configfs rw 0 0\n")
    (tmp_path / "sys/kernel/config").mkdir(parents=True)
    report = probe(tmp_path, HW_DIR, importer=_importer({}), machine="x86_64")
    assert report.uvc.backend == "unavailable"
    assert "libcomposite" in report.uvc.reason


def test_unusable_profiles_still_give_a_report(tmp_path: Path) -> None:
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    (profiles / "generic-x86.yaml").write_text("name: generic-x86\n")
    report = probe(tmp_path, profiles, importer=_importer({}), machine="x86_64")
    assert report.board == "unknown"
    assert not report.board_detected
    assert "generic-x86.yaml" in report.board_reason
    assert report.uvc.backend == "unavailable"


def test_thermal_read_errors_keep_their_errno(tmp_path: Path, monkeypatch) -> None:
    _file(tmp_path, "/sys/class/thermal/thermal_zone0/type", "cv1-thermal\n")
    temp = _file(tmp_path, "/sys/class/thermal/thermal_zone0/temp", "")
    real_read_text = Path.read_text

    def read_text(self: Path, *args, **kwargs) -> str:
        if self == temp:
            raise OSError(errno.EAGAIN, "Resource temporarily unavailable")
        return real_read_text(self, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", read_text)
    report = probe(tmp_path, HW_DIR, importer=_importer({}), machine="x86_64")
    (t,) = report.temperatures
    assert t.celsius is None
    assert t.error == "EAGAIN: Resource temporarily unavailable"
