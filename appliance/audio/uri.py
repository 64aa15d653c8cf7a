"""Audio source and sink URIs: the transport is configuration, as for the video sources.

Sources: ``alsa:DEVICE`` (``alsa:hw:1,0``, ``alsa:default``), ``file://PATH.wav`` (looped)
and ``synthetic://``. Sinks: ``gadget`` (the USB gadget's microphone where it has one),
``alsa:DEVICE``, ``file://PATH.wav``, ``memory://`` (tests) and ``null``.

Only parsing here (no numpy): the config schema validates with it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# ALSA PCM names: hw:1,0, plughw:CARD=UAC2Gadget,DEV=0, default, dsnoop:1 ...
_ALSA_DEVICE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_:,=.-]{0,127}$")


@dataclass(frozen=True)
class AudioSpec:
    scheme: str  # alsa, file, synthetic, gadget, memory, null
    target: str  # ALSA device or file path; "" otherwise
    uri: str  # the one spelling of it


def _alsa(text: str, uri: str) -> AudioSpec:
    device = text[len("alsa:") :].removeprefix("//")
    if not _ALSA_DEVICE.match(device):
        raise ValueError(f"alsa needs a PCM name, e.g. alsa:hw:1,0 or alsa:default, got {uri!r}")
    return AudioSpec("alsa", device, f"alsa:{device}")


def parse_audio_source(uri: str) -> AudioSpec:
    """``alsa:DEVICE``, ``file://PATH`` or ``synthetic://``; ValueError otherwise."""
    text = uri.strip()
    if text.startswith("alsa:"):
        return _alsa(text, uri)
    scheme, sep, rest = text.partition("://")
    if sep and scheme == "file":
        if not rest:
            raise ValueError("file audio source needs a path, e.g. file:///data/speech.wav")
        return AudioSpec("file", rest, text)
    if sep and scheme == "synthetic":
        if rest not in ("", "/"):
            raise ValueError(f"synthetic audio source takes no target, got {uri!r}")
        return AudioSpec("synthetic", "", "synthetic://")
    raise ValueError(
        f"unsupported audio source {uri!r}: use alsa:DEVICE (e.g. alsa:hw:1,0), "
        "file://PATH.wav or synthetic://"
    )


def parse_audio_sink(uri: str) -> AudioSpec:
    """``gadget``, ``alsa:DEVICE``, ``file://PATH.wav``, ``memory://`` or ``null``;
    ValueError otherwise."""
    text = uri.strip()
    if text.startswith("alsa:"):
        return _alsa(text, uri)
    if text in ("null", "null://"):
        return AudioSpec("null", "", "null")
    if text in ("gadget", "gadget://"):
        return AudioSpec("gadget", "", "gadget")
    scheme, sep, rest = text.partition("://")
    if sep and scheme == "file":
        if not rest:
            raise ValueError("file audio output needs a path, e.g. file:///tmp/out.wav")
        return AudioSpec("file", rest, text)
    if sep and scheme == "memory" and rest == "":
        return AudioSpec("memory", "", "memory://")
    raise ValueError(
        f"unsupported audio output {uri!r}: use gadget, alsa:DEVICE (e.g. alsa:hw:1,0), "
        "file://PATH.wav, memory:// or null"
    )
