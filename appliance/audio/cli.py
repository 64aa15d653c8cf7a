"""``appliance audio eval``: the noise-removal methods on the shared speech and noise."""

from __future__ import annotations

import argparse
from pathlib import Path


def _seconds(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def add_audio_parser(sub: argparse._SubParsersAction) -> None:
    from appliance.audio.evaluate import DATA, METHODS, SNRS

    p = sub.add_parser("audio", help="the microphone's noise removal: evaluate")
    actions = p.add_subparsers(dest="audio_command", required=True)
    ev = actions.add_parser(
        "eval", help="PESQ-WB, STOI, SI-SDR improvement, RTF and latency of each method"
    )
    ev.add_argument(
        "--methods",
        default=",".join(METHODS),
        help=f"comma-separated, of {','.join(METHODS)} (default: all)",
    )
    ev.add_argument(
        "--snrs",
        default=",".join(f"{s:g}" for s in SNRS),
        help="input SNRs of the mixes, dB, comma-separated",
    )
    ev.add_argument(
        "--seconds", type=_seconds, help="only the first N seconds of each speech file and pair"
    )
    ev.add_argument("--data", type=Path, default=DATA, help=f"the audio data ({DATA})")
    ev.add_argument("--plots", type=Path, help="write PESQ and SI-SDRi against SNR here (PNG)")
    ev.add_argument(
        "--json", action="store_true", help="print the results as JSON (the table goes to stderr)"
    )


def main(args: argparse.Namespace) -> int:
    from appliance.audio.evaluate import run

    return run(args)
