"""Train the x2 network: ``python -m engines.sr.train`` (``make train-sr``), resumable.

Adam on L1 loss, cosine learning-rate decay over ``--steps`` (a resumed run may change
it); a checkpoint every
``--eval-every`` steps (model, optimizer, step, sampler state) so an interrupted run
continues where it stopped (``--resume``, the default when a checkpoint exists). Progress
goes to stdout: loss, steps per second, time left, and Set5 Y-PSNR of the current
weights (the figure is a progress indicator; the final figures come from
``python -m engines.sr.evaluate`` on the exported model).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from engines.sr.data import (
    DEFAULT_DATA,
    DEFAULT_OUT,
    Degradation,
    PairSampler,
    load_training_y,
)
from engines.sr.model import SRNet
from engines.sr.spec import deployed_parameters, phase_fields


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m engines.sr.train", description=__doc__)
    p.add_argument("--data", type=Path, default=DEFAULT_DATA)
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="checkpoints and logs")
    p.add_argument("--steps", type=int, default=60000, help="total optimizer steps")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--patch", type=int, default=48, help="LR patch side, px")
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--channels", type=int, default=24)
    p.add_argument("--blocks", type=int, default=4)
    p.add_argument("--threads", type=int, default=max(1, (os.cpu_count() or 2) - 1))
    p.add_argument("--eval-every", type=int, default=1000)
    p.add_argument("--minutes", type=float, help="stop (with a checkpoint) after this long")
    p.add_argument(
        "--clean-share",
        type=float,
        default=Degradation.clean_share,
        help="share of pairs made by plain bicubic sampling (the rest get camera damage)",
    )
    p.add_argument(
        "--scales",
        type=_scales,
        default=(1.0,),
        help="comma-separated: the natural images at these sizes too, e.g. 1,0.9,0.8,0.7,0.6",
    )
    p.add_argument(
        "--face-share",
        type=float,
        help="share of patches cut from the clip faces (default: as their pixels)",
    )
    p.add_argument(
        "--loss",
        choices=("l1", "l2"),
        default="l1",
        help="l1 trains best; l2 (what PSNR measures) for a final fine-tuning phase",
    )
    p.add_argument("--fresh", action="store_true", help="ignore an existing checkpoint")
    p.add_argument(
        "--restart",
        action="store_true",
        help="warm restart: the cosine schedule starts again (at --lr) from the resumed step",
    )
    p.add_argument(
        "--deepen",
        type=int,
        metavar="BLOCKS",
        help="grow the resumed network to this many body blocks (new ones start as "
        "identities; implies --restart with a new optimizer)",
    )
    p.add_argument(
        "--widen",
        type=int,
        metavar="CHANNELS",
        help="grow the resumed network to this many channels (the new ones start "
        "feeding nothing; implies --restart with a new optimizer)",
    )
    return p.parse_args(argv)


def _scales(text: str) -> tuple[float, ...]:
    scales = tuple(float(part) for part in text.split(","))
    if any(not 0.2 <= scale <= 1.0 for scale in scales):
        raise argparse.ArgumentTypeError(f"scales must lie within 0.2..1: {text}")
    return scales


def set5_psnr(model: SRNet, data: Path) -> float:
    """Mean Y-PSNR on Set5 under the standard protocol (float output, rounded)."""
    from engines.sr.evaluate import load_set, pair, psnr

    values = []
    model.eval()
    with torch.no_grad():
        for lr_y, ref in map(pair, load_set(data, "set5")):
            x = torch.from_numpy((lr_y / 255.0).astype(np.float32))[None, None]
            values.append(psnr(model(x)[0, 0].numpy() * 255.0, ref))
    model.train()
    return float(np.mean(values))


def cosine_lr(step: int, steps: int, peak: float, start: int = 0) -> float:
    """Cosine decay from ``start`` to peak/50 at ``steps``; a function of the step alone,
    so a resumed run may be given a new ``--steps`` and simply follows the new curve."""
    floor = peak / 50
    progress = min(1.0, max(0, step - start) / max(1, steps - start))
    return floor + (peak - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    args.out.mkdir(parents=True, exist_ok=True)
    checkpoint = args.out / "checkpoint.pt"
    print(f"loading the training images from {args.data} ...", flush=True)
    natural, faces = load_training_y(args.data, args.scales)
    degradation = Degradation(clean_share=args.clean_share)
    sampler = PairSampler(natural, faces, args.patch, degradation, face_share=args.face_share)
    model = SRNet(args.channels, args.blocks)
    opt_state = None
    step = schedule_start = 0
    restart = False
    history: list[list] = []  # [first step, clean share, loss, scales, face share] by phase
    if checkpoint.is_file() and not args.fresh:
        state = torch.load(checkpoint, weights_only=False)
        config = state["config"]
        model = SRNet(config["channels"], config["blocks"])
        model.load_state_dict(state["model"])
        sampler.rng.bit_generator.state = state["rng"]
        step = int(state["step"])
        schedule_start = int(config.get("schedule_start", 0))
        history = [list(h) for h in config.get("history", [])]
        opt_state = state["opt"]
        print(f"resumed at step {step} from {checkpoint}", flush=True)
        size = (args.widen or model.channels, args.deepen or model.blocks)
        if size != (model.channels, model.blocks):
            model, opt_state = model.grow(*size), None  # new parameters: new Adam
            print(f"grown to C{size[0]} M{size[1]} (function unchanged)", flush=True)
        restart = args.restart or opt_state is None
        if restart:
            schedule_start = step
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    if opt_state is not None:
        opt.load_state_dict(opt_state)
    phase = [step, args.clean_share, args.loss, list(args.scales), args.face_share]
    if restart or not history or list(phase_fields(history[-1]).values())[1:] != phase[1:]:
        history.append(phase)
    params = deployed_parameters(model.channels, model.blocks)
    print(
        f"{len(natural)} natural pictures (scales {args.scales}), {len(faces)} faces "
        f"(share {'by pixels' if args.face_share is None else args.face_share});\n"
        f"SRNet C{model.channels} M{model.blocks}: {params} parameters "
        f"deployed; batch {args.batch} x {args.patch}px; {args.threads} thread(s); "
        f"degradation: {degradation.describe()}",
        flush=True,
    )
    criterion = F.l1_loss if args.loss == "l1" else F.mse_loss
    started = time.monotonic()
    window_start, window_steps, losses = time.monotonic(), 0, []
    while step < args.steps:
        for group in opt.param_groups:
            group["lr"] = cosine_lr(step, args.steps, args.lr, schedule_start)
        lr, hr = sampler.batch(args.batch)
        loss = criterion(model(torch.from_numpy(lr)), torch.from_numpy(hr))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        window_steps += 1
        losses.append(loss.item())
        out_of_time = args.minutes is not None and time.monotonic() - started > args.minutes * 60
        if step % args.eval_every == 0 or step == args.steps or out_of_time:
            rate = window_steps / (time.monotonic() - window_start)
            psnr = set5_psnr(model, args.data)
            left = (args.steps - step) / rate / 60
            print(
                f"step {step}/{args.steps} loss {np.mean(losses):.5f} "
                f"lr {cosine_lr(step, args.steps, args.lr, schedule_start):.2e} {rate:.2f} steps/s "
                f"~{left:.0f} min left, Set5 Y-PSNR {psnr:.3f} dB",
                flush=True,
            )
            _save(checkpoint, model, opt, sampler, step, args, schedule_start, psnr, history)
            window_start, window_steps, losses = time.monotonic(), 0, []
        if out_of_time:
            print(f"stopped after {args.minutes} min; run again to continue", flush=True)
            break
    return 0


def _save(
    path: Path,
    model: SRNet,
    opt: torch.optim.Optimizer,
    sampler: PairSampler,
    step: int,
    args: argparse.Namespace,
    schedule_start: int,
    psnr: float,
    history: list[list],
) -> None:
    state = {
        "model": model.state_dict(),
        "opt": opt.state_dict(),
        "rng": sampler.rng.bit_generator.state,
        "step": step,
        "config": {
            "channels": model.channels,
            "blocks": model.blocks,
            "patch": args.patch,
            "batch": args.batch,
            "lr": args.lr,
            "steps": args.steps,
            "schedule_start": schedule_start,
            "clean_share": args.clean_share,
            "loss": args.loss,
            "scales": list(args.scales),
            "face_share": args.face_share,
            # by phase: [first step, clean share, loss, scales, face share] (spec.phase_fields)
            "history": history,
        },
    }
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)
    with (path.parent / "progress.jsonl").open("a") as log:
        log.write(json.dumps({"step": step, "set5_psnr": round(psnr, 4)}) + "\n")


if __name__ == "__main__":
    raise SystemExit(main())
