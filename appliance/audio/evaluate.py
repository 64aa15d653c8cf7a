"""``appliance audio eval``: every noise-removal method on real speech and real noise.

What is scored (all of ../shared/data/audio, read in place):

- **mixes**: every clean speech file with every noise at each SNR, *dry* (the speech as
  recorded) and *reverb* (the speech convolved with ``REVERB_RIR``, a simulated
  11.7 x 2.6 m room, RT60 0.79 s, before the noise is added). The noise is looped or
  cut to the speech's length from an offset drawn from a generator seeded by the pair's
  names, so every run mixes the same signals. The SNR is over the whole clip, speech as
  it reaches the microphone against noise; mix and target share one gain that keeps
  the mix from clipping.
- **target**: the dry clean speech, in both conditions. Under reverb it is shifted by
  the RIR's direct path, so it lines up with the sound's first arrival; the room's
  reflections then count as distortion, because that is what a listener at the far end
  hears (none of the methods is meant to dereverberate, and the figures show it).
- **training-set pairs**: the six VoiceBank-DEMAND noisy/clean pairs of speaker p287.
  They come from VoiceBank-DEMAND's *training* split, which a network may have been
  trained on: a smoke test of the scoring against published figures, not a benchmark.
- **clean**: each clean speech file through each method, scored against itself: how
  much a method damages speech that needs nothing.

Each method streams the signal in 10-ms blocks, as the capture loop will; its output
is advanced by the method's stated latency and scored against the target at 16 kHz
(PESQ wide band's rate) with PESQ-WB, STOI and SI-SDR (``appliance.audio.metrics``).
Improvements (dPESQ, SI-SDRi) are over the unprocessed mix. Medians are reported per
method and condition. The real-time factor is the thread's CPU time in ``process``
over the audio's duration, on one thread (ONNX Runtime is given one), and wall-clock
beside it.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from appliance.audio.suppress import Suppressor

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "audio"
REVERB_RIR = "rir_sim_rt60_0.79.wav"  # known geometry; direct path at 5 ms
BLOCK = 480  # 10 ms at 48 kHz
RATE = 48_000
VBD_LABEL = "training-set pairs: smoke test, not a benchmark"
FIGURES = ("pesq", "stoi", "si_sdr")
METHODS = ("none", "spectral", "gtcrn")
SNRS = (0.0, 5.0, 10.0, 20.0)


@dataclass(frozen=True)
class Item:
    condition: str  # dry, reverb, vbd, clean
    snr: float | None  # None: not a mix made here
    name: str
    mix: np.ndarray
    target: np.ndarray

    @property
    def key(self) -> str:
        return self.condition if self.snr is None else f"{self.condition} {self.snr:g} dB"


def make_suppressor(method: str) -> Suppressor:
    """A method of ``METHODS`` by name, at full strength."""
    from appliance.audio.suppress import GtcrnSuppressor, Passthrough, SpectralSuppressor

    makers: dict[str, Callable[[], Suppressor]] = {
        "none": Passthrough,
        "spectral": SpectralSuppressor,
        "gtcrn": GtcrnSuppressor,
    }
    return makers[method]()


def _read(path: Path, seconds: float | None) -> np.ndarray:
    from appliance.audio.wav import read_wav

    samples, rate = read_wav(path)
    if rate != RATE:
        raise ValueError(f"{path}: {rate} Hz; the evaluation reads 48 kHz files")
    return samples if seconds is None else samples[: int(seconds * RATE)]


def mix_at_snr(
    speech: np.ndarray, noise: np.ndarray, snr_db: float, seed: int
) -> tuple[np.ndarray, float]:
    """(speech + noise at ``snr_db`` over the whole clip, the gain both were given)."""
    offset = int(np.random.default_rng(seed).integers(len(noise)))
    noise = np.resize(np.roll(noise, -offset), len(speech)).astype(np.float64)
    power = np.mean(noise**2)
    if power == 0:
        raise ValueError("a noise of digital silence has no SNR")
    mix = speech + noise * np.sqrt(np.mean(speech**2) / (power * 10 ** (snr_db / 10)))
    gain = min(1.0, 0.99 / np.abs(mix).max())
    return (mix * gain).astype(np.float32), gain


def items(data: Path, snrs: Sequence[float], seconds: float | None) -> Iterator[Item]:
    from scipy.signal import fftconvolve

    speech = {p.stem: _read(p, seconds) for p in sorted((data / "speech").glob("*.wav"))}
    noises = {p.stem: _read(p, None) for p in sorted((data / "noise").glob("*.wav"))}
    if not speech or not noises:
        raise ValueError(f"no speech/*.wav or noise/*.wav under {data}")
    rir = _read(data / "rir" / REVERB_RIR, None).astype(np.float64)
    rir /= np.abs(rir).max()
    direct = int(np.argmax(np.abs(rir)))
    for s_name, dry in speech.items():
        dry64 = dry.astype(np.float64)
        reverberant = fftconvolve(dry64, rir)[: len(dry)]
        shifted = np.concatenate([np.zeros(direct), dry64])[: len(dry)]
        for n_name, noise in noises.items():
            seed = zlib.crc32(f"{s_name}|{n_name}".encode())
            for snr in snrs:
                for condition, at_mic, target in (
                    ("dry", dry64, dry64),
                    ("reverb", reverberant, shifted),
                ):
                    mix, gain = mix_at_snr(at_mic, noise, snr, seed)
                    yield Item(
                        condition,
                        snr,
                        f"{s_name}+{n_name}",
                        mix,
                        (target * gain).astype(np.float32),
                    )
    for noisy in sorted((data / "paired_vbd_train").glob("*_noisy.wav")):
        clean = noisy.with_name(noisy.name.replace("_noisy", "_clean"))
        yield Item(
            "vbd", None, noisy.stem[: -len("_noisy")], _read(noisy, seconds), _read(clean, seconds)
        )
    for s_name, dry in speech.items():
        yield Item("clean", None, s_name, dry, dry)


class _Method:
    """A suppressor, its cost so far and its scores."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.suppressor = make_suppressor(name)
        self.cpu_s = self.wall_s = self.audio_s = 0.0

    def run(self, mix: np.ndarray) -> np.ndarray:
        """The output aligned with the input: streamed in blocks, latency taken off."""
        self.suppressor.reset()
        latency = self.suppressor.latency_samples
        padded = np.concatenate([mix, np.zeros(latency, dtype=np.float32)])
        cpu, wall = time.thread_time(), time.perf_counter()
        out = [self.suppressor.process(padded[i : i + BLOCK]) for i in range(0, len(padded), BLOCK)]
        self.cpu_s += time.thread_time() - cpu
        self.wall_s += time.perf_counter() - wall
        self.audio_s += len(padded) / RATE
        return np.concatenate(out)[latency:]


def _score(target16: np.ndarray, signal16: np.ndarray, with_pesq: bool) -> dict[str, float]:
    from appliance.audio import metrics

    scores = {
        "stoi": metrics.stoi(target16, signal16),
        "si_sdr": metrics.si_sdr(target16, signal16),
    }
    scores["pesq"] = metrics.pesq_wb(target16, signal16) if with_pesq else math.nan
    return scores


def evaluate(
    methods: Sequence[str],
    snrs: Sequence[float],
    seconds: float | None = None,
    data: Path = DATA,
    progress: Callable[[str], None] = lambda _: None,
) -> dict[str, Any]:
    from appliance.audio.metrics import at_16k, pesq_available

    with_pesq = pesq_available()
    runners = [_Method(m) for m in methods]  # a missing model fails here, before any work
    rows: list[dict[str, Any]] = []
    for count, item in enumerate(items(data, snrs, seconds), 1):
        target16 = at_16k(item.target, RATE)
        base = _score(target16, at_16k(item.mix, RATE), with_pesq)
        for runner in runners:
            scores = _score(target16, at_16k(runner.run(item.mix), RATE), with_pesq)
            if item.condition != "clean":  # clean speech has nothing to improve on
                scores["d_pesq"] = scores["pesq"] - base["pesq"]
                scores["si_sdri"] = scores["si_sdr"] - base["si_sdr"]
            rows.append(
                {
                    "method": runner.name,
                    "condition": item.condition,
                    "snr": item.snr,
                    "key": item.key,
                    "item": item.name,
                    **scores,
                }
            )
        if count % 25 == 0:
            progress(f"{count} signals scored")
    return {
        "settings": {
            "methods": list(methods),
            "snrs": list(snrs),
            "seconds": seconds,
            "reverb_rir": REVERB_RIR,
            "block": BLOCK,
            "metric_rate": 16000,
            "target": "dry clean speech (under reverb: shifted to the direct path)",
            "pesq": with_pesq,
        },
        "cost": {r.name: _cost(r) for r in runners},
        "summary": _summary(rows),
        "vbd_note": VBD_LABEL,
        "published": _published(),
        "rows": rows,
    }


def _cost(runner: _Method) -> dict[str, float]:
    return {
        "latency_samples": runner.suppressor.latency_samples,
        "latency_ms": runner.suppressor.latency_ms,
        "rtf_cpu": runner.cpu_s / runner.audio_s,
        "rtf_wall": runner.wall_s / runner.audio_s,
    }


def _summary(rows: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, float]]]:
    """Medians per method and condition."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row["method"], row["key"]), []).append(row)
    summary: dict[str, dict[str, dict[str, float]]] = {}
    for (method, key), members in groups.items():
        names = [k for k in (*FIGURES, "d_pesq", "si_sdri") if k in members[0]]
        cell = {k: float(np.median([m[k] for m in members])) for k in names}
        cell["n"] = len(members)
        if key == "clean":
            cell["pesq_min"] = float(np.min([m["pesq"] for m in members]))
        summary.setdefault(method, {})[key] = cell
    return summary


def _published() -> dict[str, Any]:
    from appliance.audio.suppress import gtcrn_provenance

    try:
        return {"gtcrn": gtcrn_provenance()["published_figures"]}
    except (OSError, KeyError, ValueError):
        return {}


def _fmt(value: float | None, digits: int) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:.{digits}f}"


def table(results: dict[str, Any]) -> str:
    """The medians as a markdown table, then the clean-speech and cost lines."""
    summary, cost = results["summary"], results["cost"]
    methods = list(cost)
    keys = list(dict.fromkeys(row["key"] for row in results["rows"]))
    lines = [
        "| condition | method | n | PESQ-WB | dPESQ | STOI | SI-SDR dB | SI-SDRi dB |",
        "|---|---|--:|--:|--:|--:|--:|--:|",
    ]
    for key in keys:
        label = f"vbd ({VBD_LABEL})" if key == "vbd" else key
        for method in methods:
            c = summary[method][key]
            lines.append(
                f"| {label} | {method} | {c['n']} | {_fmt(c['pesq'], 2)} | "
                f"{_fmt(c.get('d_pesq'), 2)} | {_fmt(c['stoi'], 3)} | {_fmt(c['si_sdr'], 1)} | "
                f"{_fmt(c.get('si_sdri'), 1)} |"
            )
    lines.append("")
    for method in methods:
        c, k = summary[method]["clean"], cost[method]
        lines.append(
            f"{method}: clean speech through it: PESQ-WB median {_fmt(c['pesq'], 2)}, worst "
            f"{_fmt(c['pesq_min'], 2)}; RTF {k['rtf_cpu']:.3f} (CPU, one thread; wall "
            f"{k['rtf_wall']:.3f}); latency {k['latency_ms']:.2f} ms ({k['latency_samples']} "
            "samples)"
        )
    gtcrn = results["published"].get("gtcrn", {}).get("voicebank_demand_test_vctk_trained")
    if gtcrn:
        lines.append(
            f"published GTCRN on the VoiceBank-DEMAND test set (VCTK-trained model; "
            f"ours is the DNS3-trained file): PESQ-WB {gtcrn['pesq_wb']}, "
            f"STOI {gtcrn['stoi']}"
        )
    if not results["settings"]["pesq"]:
        lines.append("PESQ: n/a, the `pesq` package is not installed (appliance.audio.metrics)")
    return "\n".join(lines)


def plot(results: dict[str, Any], folder: Path) -> list[Path]:
    """PESQ-WB and SI-SDRi against SNR, a line per method: dry solid, reverb dashed and
    hollow."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    snrs = results["settings"]["snrs"]
    written = []
    for figure, label in (("pesq", "PESQ-WB (median)"), ("si_sdri", "SI-SDR improvement, dB")):
        if figure == "pesq" and not results["settings"]["pesq"]:
            continue
        fig, ax = plt.subplots(figsize=(6, 4))
        for i, method in enumerate(results["cost"]):
            for condition, style, fill in (("dry", "-", "full"), ("reverb", "--", "none")):
                cells = [results["summary"][method][f"{condition} {s:g} dB"] for s in snrs]
                ax.plot(
                    snrs,
                    [c[figure] for c in cells],
                    style,
                    marker="o",
                    fillstyle=fill,
                    color=f"C{i}",
                    label=f"{method}, {condition}",
                )
        ax.set_xlabel("input SNR, dB")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        path = folder / f"audio-{figure.replace('_', '-')}.png"
        fig.savefig(path, dpi=120)
        plt.close(fig)
        written.append(path)
    return written


def run(args: argparse.Namespace) -> int:
    """``appliance audio eval`` (arguments in ``appliance.audio.cli``)."""
    try:
        methods = [m for m in args.methods.split(",") if m]
        snrs = [float(s) for s in args.snrs.split(",") if s]
        unknown = [m for m in methods if m not in METHODS]
        if unknown:
            raise ValueError(
                f"unknown method {', '.join(unknown)}: --methods takes {','.join(METHODS)}"
            )
        if not methods or not snrs:
            raise ValueError("--methods and --snrs need at least one value each")
    except ValueError as exc:
        print(f"audio eval: {exc}", file=sys.stderr)
        return 2
    out = sys.stderr if args.json else sys.stdout

    def progress(message: str) -> None:
        print(message, file=out, flush=True)

    try:
        results = evaluate(methods, snrs, args.seconds, args.data, progress)
    except (ValueError, OSError, RuntimeError) as exc:
        print(f"audio eval: {exc}", file=sys.stderr)
        return 1
    print(table(results), file=out, flush=True)
    if args.plots:
        for path in plot(results, args.plots):
            progress(f"wrote {path}")
    if args.json:
        print(json.dumps(_finite(results), indent=1, allow_nan=False))
    return 0


def _finite(value: Any) -> Any:
    """NaN (a figure not computed) as JSON's null."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    if isinstance(value, float) and math.isnan(value):
        return None
    return value
