"""What the exported x2 network looks like from outside: no PyTorch needed to read it."""

from __future__ import annotations

SCALE = 2
TILE = 144  # LR px: a 128 px core plus an 8 px margin each side
MARGIN = 8  # >= the receptive radius: one px per 3x3 convolution (head, blocks, tail)
INPUT, OUTPUT = "lr_y", "sr_y"
OFFSET = -0.5  # the network sees and gives luma / 255 + OFFSET
OPSET = 17


def deployed_parameters(channels: int, blocks: int) -> int:
    """Parameters of the fused network (what runs on the device)."""
    per = 9 * channels * channels + channels
    return (9 * channels + channels) + blocks * per + (9 * channels * SCALE * SCALE + 4)
