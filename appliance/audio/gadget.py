"""The USB gadget's microphone as the daemon's output: the PCM f_uac2 made on the camera,
and the host's mute and volume applied to what is played there.

f_uac2 answers the host's Feature Unit requests (mute, volume) and hands them to the
gadget's own ALSA card as "PCM Playback Switch" and "PCM Playback Volume" (1/256 dB,
UAC2's unit), but changes no sample itself: a host that mutes the camera's microphone
would still be heard unless the daemon applies them. They are read with ``amixer`` (the
same alsa-utils as ``aplay``), at most every ``POLL_S``, from the audio thread.
"""

from __future__ import annotations

import contextlib
import logging
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from appliance.audio.sinks import AlsaSink

log = logging.getLogger(__name__)

# The card f_uac2 registers on the camera (its id: "UAC2_Gadget" without the underscore).
GADGET_CARD = "UAC2Gadget"
POLL_S = 0.5  # how stale the host's mute may be: a mute takes effect within this
_VALUES = re.compile(r"^\s*: values=(\S+)", re.MULTILINE)

Run = Callable[..., subprocess.CompletedProcess[str]]


def gadget_pcm(sys_root: Path = Path("/sys")) -> str | None:
    """The USB gadget's microphone PCM, where ``gadget up`` made one."""
    for card in sorted((sys_root / "class" / "sound").glob("card*")):
        with contextlib.suppress(OSError):
            if (card / "id").read_text(encoding="ascii").strip() == GADGET_CARD:
                return f"hw:CARD={GADGET_CARD},DEV=0"
    return None


class HostControls:
    """The host's mute and volume for the microphone, as a gain (0 when muted)."""

    def __init__(
        self, card: str = GADGET_CARD, command: str = "amixer", run: Run = subprocess.run
    ) -> None:
        self.card, self.command, self._run = card, command, run
        self.muted = False
        self.volume_db = 0.0
        self._read_at = -float("inf")
        self._warned = False

    def gain(self, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        if now - self._read_at >= POLL_S:
            self._read_at = now
            self._refresh()
        return 0.0 if self.muted else float(10 ** (self.volume_db / 20))

    def _refresh(self) -> None:
        switch, volume = self._get("PCM Playback Switch"), self._get("PCM Playback Volume")
        muted = switch is not None and switch.split(",")[0] == "off"
        volume_db = self.volume_db
        if volume is not None:
            with contextlib.suppress(ValueError):
                volume_db = min(0.0, max(-100.0, int(volume.split(",")[0]) / 256))
        if (muted, volume_db) != (self.muted, self.volume_db):
            log.info("audio: the host %s the microphone, volume %.1f dB",
                     "muted" if muted else "unmuted", volume_db)  # fmt: skip
        self.muted, self.volume_db = muted, volume_db

    def _get(self, name: str) -> str | None:
        exe = shutil.which(self.command)
        try:
            if exe is None:
                raise OSError(f"'{self.command}' not found (alsa-utils)")
            done = self._run(
                [exe, "-c", self.card, "cget", f"name={name}"],
                capture_output=True, text=True, timeout=POLL_S, check=False,
            )  # fmt: skip
            found = _VALUES.search(done.stdout or "")
            if done.returncode != 0 or found is None:
                raise OSError((done.stderr or "no value").strip()[:200])
            return found.group(1)
        except (OSError, subprocess.SubprocessError) as exc:
            if not self._warned:
                self._warned = True
                log.warning("audio: cannot read the host's %s (%s): not applied", name, exc)
            return None


class GadgetSink(AlsaSink):
    """``aplay`` to the gadget's PCM, the host's mute and volume applied first."""

    def __init__(self, device: str, controls: HostControls | None = None, **kwargs: str) -> None:
        super().__init__(device, **kwargs)
        self.controls = controls or HostControls()

    def write(self, samples: np.ndarray) -> bool:
        gain = self.controls.gain()
        if gain != 1.0:
            samples = (np.asarray(samples, dtype=np.float32) * np.float32(gain)).astype(
                np.float32, copy=False
            )
        return super().write(samples)
