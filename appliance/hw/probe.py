"""What hardware and backends this machine has, and which backend each part will use.

:func:`probe` never raises and never prints a traceback: a missing or broken library
(``jetson_utils``, ``tensorrt``; a broken CUDA install raises OSError while loading its
shared libraries) becomes a reason string. Every filesystem path is taken below
``root`` so tests build fake sysfs/devfs trees in a temporary directory.

``python -m appliance.hw.probe`` prints the report as JSON.
"""

from __future__ import annotations

import dataclasses
import errno
import importlib
import json
import re
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from appliance.hw.profile import BoardProfile, ProfileError, detect_board

Importer = Callable[[str], ModuleType]


@dataclasses.dataclass
class PartReport:
    """The backend a part will use, why, and what was seen on the way."""

    backend: str
    reason: str
    details: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class Temperature:
    zone: str  # thermal_zoneN
    type: str  # what the driver calls it: cpu-thermal, GPU-therm, x86_pkg_temp ...
    celsius: float | None
    error: str = ""


@dataclasses.dataclass
class HardwareReport:
    board: str
    board_detected: bool
    board_reason: str
    capture: PartReport
    inference: PartReport
    uvc: PartReport
    hotplug: PartReport
    gpu: PartReport
    temperatures: list[Temperature]
    # Zones the board profile names (for throttling decisions) that this machine lacks.
    thermal_zones_missing: list[str] = dataclasses.field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _try_import(name: str, importer: Importer) -> tuple[ModuleType | None, str]:
    """(module, "") or (None, why not). Never raises for a broken install."""
    try:
        return importer(name), ""
    except ImportError as exc:
        return None, f"{name} is not installed ({exc})"
    except Exception as exc:  # OSError from missing CUDA libraries, RuntimeError from drivers
        return None, f"{name} failed to load: {type(exc).__name__}: {exc}"


def _version(module: ModuleType) -> str:
    return str(getattr(module, "__version__", "unknown version"))


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return None


def _natural(path: Path) -> tuple[str, int]:
    match = re.search(r"(\d+)$", path.name)
    return (path.name.rstrip("0123456789"), int(match.group(1)) if match else -1)


def _under(root: Path, absolute: str) -> Path:
    return root / absolute.lstrip("/")


# --- parts ---------------------------------------------------------------------------------


def _video_nodes(root: Path) -> list[dict[str, str]]:
    """Every /dev/video* node with the name its driver gave it in sysfs."""
    nodes = []
    for node in sorted(_under(root, "/dev").glob("video*"), key=_natural):
        name = _read(_under(root, f"/sys/class/video4linux/{node.name}/name")) or ""
        nodes.append({"path": f"/dev/{node.name}", "name": name})
    return nodes


def _device_path(device: object) -> str:
    # The helper may return paths or small records; accept either.
    return str(getattr(device, "path", None) or getattr(device, "device", None) or device)


def _capture_devices(root: Path) -> tuple[list[str], str]:
    """(capture-capable device paths, how they were found)."""
    if root == Path("/"):
        try:
            # The V4L2 source's helper asks each node (VIDIOC_QUERYCAP) whether it captures;
            # looked up late so a missing or broken helper cannot stop the probe.
            v4l2 = importlib.import_module("appliance.capture.v4l2")
            found = v4l2.list_capture_devices()
        except Exception as exc:
            how = f"listed /dev/video* without a capability check (v4l2 helper unusable: {exc})"
        else:
            paths = [_device_path(d) for d in found]
            return paths, "queried with VIDIOC_QUERYCAP (appliance.capture.v4l2)"
    else:
        how = f"listed {root}/dev/video* (fake root: no capability check)"
    return [n["path"] for n in _video_nodes(root)], how


def _probe_capture(root: Path, importer: Importer) -> PartReport:
    devices, how = _capture_devices(root)
    details: dict[str, Any] = {"devices": devices, "devices_found_by": how}
    module, why = _try_import("jetson_utils", importer)
    if module is not None:
        return PartReport("jetson-utils", "jetson_utils imported: CSI and V4L2 zero-copy", details)
    return PartReport("v4l2 (mmap) + files/synthetic", why, details)


def _probe_inference(importer: Importer) -> PartReport:
    trt, trt_why = _try_import("tensorrt", importer)
    if trt is not None:
        return PartReport(f"tensorrt {_version(trt)}", "tensorrt imported")
    ort, ort_why = _try_import("onnxruntime", importer)
    if ort is not None:
        details: dict[str, Any] = {"tensorrt": trt_why}
        try:
            details["providers"] = list(ort.get_available_providers())
        except Exception as exc:  # an odd build: report, do not fail
            details["providers_error"] = str(exc)
        return PartReport(f"onnxruntime {_version(ort)} (CPU)", trt_why, details)
    return PartReport("none", f"{trt_why}; {ort_why}")


def _configfs_mounted(root: Path) -> bool | None:
    mounts = _read(_under(root, "/proc/mounts"))
    if mounts is None:
        return None
    return any(
        len(f) >= 3 and f[2] == "configfs" and f[1] == "/sys/kernel/config"
        for f in (line.split() for line in mounts.splitlines())
    )


def _probe_uvc(root: Path, profile: BoardProfile | None) -> PartReport:
    gadget_dir = _under(root, "/sys/kernel/config/usb_gadget")
    mounted = _configfs_mounted(root)
    udc_dir = _under(root, "/sys/class/udc")
    udcs = sorted(p.name for p in udc_dir.iterdir()) if udc_dir.is_dir() else []
    candidates = profile.udc if profile else []
    details: dict[str, Any] = {
        "configfs_mounted": mounted,
        "usb_gadget_dir": gadget_dir.is_dir(),
        "udcs": {u: _read(udc_dir / u / "state") for u in udcs},
        "profile_udcs": candidates,
    }
    # /proc/mounts is the authority; without it (some containers) the directory is.
    if mounted is False or (mounted is None and not _under(root, "/sys/kernel/config").is_dir()):
        return PartReport("unavailable", "configfs is not mounted at /sys/kernel/config", details)
    if not gadget_dir.is_dir():
        return PartReport(
            "unavailable",
            "no /sys/kernel/config/usb_gadget: libcomposite is not loaded (modprobe libcomposite)",
            details,
        )
    chosen = next((u for u in candidates if u in udcs), None)
    if chosen:
        return PartReport(f"configfs gadget on {chosen}", "the profile's UDC is present", details)
    if candidates:
        return PartReport(
            "unavailable",
            f"none of the profile's UDCs ({', '.join(candidates)}) is in /sys/class/udc "
            f"(present: {', '.join(udcs) or 'none'}); is the port in device mode?",
            details,
        )
    if udcs:
        # A board without a device port (the dev box) only has virtual controllers.
        test_udc = next((u for u in udcs if u.startswith("usbip-vudc")), udcs[0])
        return PartReport(
            f"configfs gadget on {test_udc} (test controller)",
            "the board has no UDC of its own; usbip-vudc/dummy_udc are for tests only "
            "(dummy_udc has no isochronous endpoints, so UVC cannot bind to it)",
            details,
        )
    return PartReport("unavailable", "no USB device controller in /sys/class/udc", details)


def _probe_hotplug(root: Path, importer: Importer) -> PartReport:
    module, why = _try_import("pyudev", importer)
    if module is None:
        return PartReport("polling", why)
    if not _under(root, "/run/udev/control").exists():
        # What HotplugMonitor does then: kernel uevents, nodes from devtmpfs.
        return PartReport(
            "pyudev (kernel uevents)",
            "udevd is not running (no /run/udev/control): listening to the kernel's own events",
        )
    return PartReport("pyudev", f"pyudev {_version(module)} with udevd running")


_DGPU_NODES = ["/dev/nvidiactl", "/dev/nvidia0"]
# Jetson iGPU: nvhost-ctrl-gpu up to L4T r35 (Xavier, Orin on JetPack 5); /dev/nvgpu/igpu0/*
# on newer nvgpu drivers; nvmap is the Tegra memory allocator every CUDA call goes through.
_TEGRA_NODES = ["/dev/nvhost-ctrl-gpu", "/dev/nvgpu/igpu0/ctrl", "/dev/nvmap"]


def _probe_gpu(root: Path, profile: BoardProfile | None) -> PartReport:
    dgpu = [n for n in _DGPU_NODES if _under(root, n).exists()]
    tegra = [n for n in _TEGRA_NODES if _under(root, n).exists()]
    details: dict[str, Any] = {
        "device_nodes": dgpu + tegra,
        "profile_arch": profile.gpu.arch if profile else None,
    }
    if tegra and any(n != "/dev/nvmap" for n in tegra):
        return PartReport("tegra iGPU", f"found {', '.join(tegra)}", details)
    if dgpu:
        return PartReport("nvidia dGPU", f"found {', '.join(dgpu)}", details)
    reason = "no NVIDIA GPU device nodes"
    if profile is not None and profile.gpu.arch:
        reason += f", although the {profile.name} profile expects {profile.gpu.arch}"
    return PartReport("none", reason, details)


def probe_temperatures(root: Path = Path("/")) -> list[Temperature]:
    """Every thermal zone under ``root`` (a zone that cannot be read says why)."""
    base = _under(root, "/sys/class/thermal")
    temps: list[Temperature] = []
    if not base.is_dir():
        return temps
    for zone in sorted(base.glob("thermal_zone*"), key=_natural):
        kind = _read(zone / "type") or "unknown"
        try:
            raw = (zone / "temp").read_text(encoding="ascii").strip()
            celsius = int(raw) / 1000.0  # sysfs reports millidegrees Celsius
        except OSError as exc:
            # Orin's cv*-thermal zones answer EAGAIN while their engines are power-gated;
            # one silent zone must not hide the others.
            code = errno.errorcode.get(exc.errno, "error") if exc.errno else "error"
            temps.append(Temperature(zone.name, kind, None, f"{code}: {exc.strerror or exc}"))
        except ValueError:
            temps.append(Temperature(zone.name, kind, None, f"not a number: {raw[:20]!r}"))
        else:
            temps.append(Temperature(zone.name, kind, celsius))
    return temps


def _guarded(part: str, fn: Callable[[], PartReport]) -> PartReport:
    try:
        return fn()
    except Exception as exc:  # the probe reports; it must never take the daemon down
        return PartReport("unknown", f"{part} probe failed: {type(exc).__name__}: {exc}")


def probe(
    root: Path = Path("/"),
    profiles_dir: Path | None = None,
    importer: Importer = importlib.import_module,
    machine: str | None = None,
) -> HardwareReport:
    """Look at the machine below ``root`` and decide each part's backend.

    ``importer`` imports optional libraries (tests substitute fakes); ``machine``
    overrides ``platform.machine()`` for board detection.
    """
    root = Path(root)
    profile: BoardProfile | None
    try:
        profile = detect_board(
            _under(root, "/proc/device-tree/compatible"), profiles_dir, machine=machine
        )
        board, detected, reason = profile.name, profile.detected, profile.detection_reason
    except ProfileError as exc:
        profile = None
        board, detected, reason = "unknown", False, f"board profiles unusable: {exc}"

    try:
        temperatures = probe_temperatures(root)
    except Exception:  # a very odd sysfs: no temperatures rather than no report
        temperatures = []
    seen = {t.type for t in temperatures}
    missing = [z for z in profile.thermal_zones if z not in seen] if profile else []

    return HardwareReport(
        board=board,
        board_detected=detected,
        board_reason=reason,
        capture=_guarded("capture", lambda: _probe_capture(root, importer)),
        inference=_guarded("inference", lambda: _probe_inference(importer)),
        uvc=_guarded("uvc", lambda: _probe_uvc(root, profile)),
        hotplug=_guarded("hotplug", lambda: _probe_hotplug(root, importer)),
        gpu=_guarded("gpu", lambda: _probe_gpu(root, profile)),
        temperatures=temperatures,
        thermal_zones_missing=missing,
    )


def format_report(report: HardwareReport) -> str:
    """The report for a person: one line per part, then the temperatures."""
    state = "detected" if report.board_detected else "NOT detected"
    lines = [f"board      {report.board} ({state}: {report.board_reason})"]
    for name in ("capture", "inference", "uvc", "hotplug", "gpu"):
        part: PartReport = getattr(report, name)
        lines.append(f"{name:<10} {part.backend} -- {part.reason}")
        devices = part.details.get("devices")
        if devices:
            lines.append(f"{'':<10} devices: {', '.join(devices)}")
    for t in report.temperatures:
        value = f"{t.celsius:.1f} °C" if t.celsius is not None else f"unreadable ({t.error})"
        lines.append(f"{'thermal':<10} {t.type} ({t.zone}): {value}")
    if report.thermal_zones_missing:
        lines.append(f"{'thermal':<10} missing: {', '.join(report.thermal_zones_missing)}")
    return "\n".join(lines)


def main() -> None:
    print(json.dumps(probe().to_dict(), indent=2))


if __name__ == "__main__":
    main()
