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


# A training phase as checkpoints record it: [first step, clean share, loss, scales, face
# share]. Phases recorded before a field existed stop early; they had its default.
PHASE_FIELDS = ("from_step", "clean_share", "loss", "scales", "face_share")
_PHASE_DEFAULTS = (0, 0.5, "l1", [1.0], None)


def phase_fields(phase: list) -> dict:
    """A recorded phase by field name, with the fields it predates filled in."""
    if not 1 <= len(phase) <= len(PHASE_FIELDS):
        raise ValueError(f"not a training phase: {phase!r}")
    values = list(phase) + list(_PHASE_DEFAULTS[len(phase) :])
    return dict(zip(PHASE_FIELDS, values, strict=True))


def last_phase(config: dict) -> dict:
    """The settings a checkpoint's network was last trained with, by field name."""
    return phase_fields((config.get("history") or [[0]])[-1])
