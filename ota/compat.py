"""Will this bundle run here, and is it newer than what is installed?

Two questions the agent answers before it touches a slot:

- compatibility: the signed statement may name the boards a bundle is for (board
  profile names from ``hw/``), and the manifest's ``compatibility`` says which runtimes
  can run it (``min_onnxruntime``; ``tensorrt`` as ``">=10.0: ..."``). A bundle is
  accepted when the board is listed (or none are) and at least one runtime the device
  has is new enough.
- order: bundle versions such as ``0.10.21-1`` compare component by component, numbers
  numerically (so ``1.10`` > ``1.9``); the anti-rollback high-water mark uses this.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ota.errors import IncompatibleError

_TOKEN = re.compile(r"\d+|[A-Za-z]+")
_AT_LEAST = re.compile(r"^\s*>=\s*(\d+(?:\.\d+)*)")


@dataclass(frozen=True)
class Device:
    """What the agent checks a bundle against: the board and the runtimes installed."""

    board: str
    runtimes: Mapping[str, str] = field(default_factory=dict)  # e.g. {"onnxruntime": "1.20"}

    @classmethod
    def detect(cls) -> Device:
        """This machine: the detected board profile and the installed runtime versions."""
        from importlib import metadata

        from appliance.hw.profile import detect_board

        runtimes = {}
        for runtime, dists in (
            ("onnxruntime", ("onnxruntime", "onnxruntime-gpu")),
            ("tensorrt", ("tensorrt", "tensorrt-cu12", "tensorrt-libs")),
        ):
            for dist in dists:
                try:
                    runtimes[runtime] = metadata.version(dist)
                    break
                except metadata.PackageNotFoundError:
                    continue
        return cls(detect_board().name, runtimes)


def version_key(version: str) -> tuple[tuple[int, int | str], ...]:
    """A sort key: numbers compare as numbers, and a number sorts after letters."""
    return tuple((1, int(t)) if t.isdigit() else (0, t) for t in _TOKEN.findall(version))


def compare_versions(a: str, b: str) -> int:
    """-1, 0 or 1 as ``a`` is older than, the same as, or newer than ``b``."""
    ka, kb = version_key(a), version_key(b)
    return (ka > kb) - (ka < kb)


def check_compatible(
    manifest: Mapping[str, Any], boards: Sequence[str] | None, device: Device
) -> None:
    """Raise IncompatibleError naming every reason the bundle cannot run on ``device``."""
    name = manifest.get("name", "bundle")
    if boards is not None and device.board not in boards:
        raise IncompatibleError(
            f"{name}: built for boards {sorted(boards)}, this device is {device.board!r}"
        )
    compat = manifest.get("compatibility", {})
    reasons = []
    ort = device.runtimes.get("onnxruntime")
    need = compat.get("min_onnxruntime")
    if ort is not None:
        if need is None or compare_versions(ort, str(need)) >= 0:
            return
        reasons.append(f"onnxruntime {ort} < {need}")
    trt = device.runtimes.get("tensorrt")
    spec = _AT_LEAST.match(str(compat.get("tensorrt", "")))
    if trt is not None:
        if spec and compare_versions(trt, spec.group(1)) >= 0:
            return
        reasons.append(f"tensorrt {trt} does not satisfy {compat.get('tensorrt')!r}")
    if not device.runtimes:
        reasons.append("the device reports no inference runtime")
    raise IncompatibleError(f"{name}: no runtime here can run it: " + "; ".join(reasons))
