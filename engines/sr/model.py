"""The x2 network: plain 3x3 convolutions and ReLU, pixel shuffle, residual over nearest.

INT8-friendly by construction (what TensorRT fuses best and quantizes cleanly): no
batch norm, no attention, no resize operator; the residual is the input repeated into
the four sub-pixel positions, i.e. nearest-neighbour upsampling folded into the pixel
shuffle (as ECBSR does), so the layers only learn the detail.

Training uses re-parameterizable blocks (RepVGG style: 3x3 + 1x1 + identity branches),
which train better than a plain 3x3 and fold into one 3x3 convolution for export:
same function, no inference cost.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from engines.sr.spec import SCALE


class RepConv(nn.Module):
    """3x3 + 1x1 (+ identity when the widths match) while training; one 3x3 once fused."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.k3 = nn.Conv2d(cin, cout, 3, padding=1)
        self.k1 = nn.Conv2d(cin, cout, 1)
        self.identity = cin == cout
        self.fused: nn.Conv2d | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fused is not None:
            return self.fused(x)
        y = self.k3(x) + self.k1(x)
        return y + x if self.identity else y

    def fuse(self) -> None:
        weight = self.k3.weight.detach().clone()
        weight[:, :, 1, 1] += self.k1.weight.detach()[:, :, 0, 0]
        if self.identity:
            for c in range(weight.shape[0]):
                weight[c, c, 1, 1] += 1.0
        bias = self.k3.bias.detach() + self.k1.bias.detach()
        conv = nn.Conv2d(weight.shape[1], weight.shape[0], 3, padding=1)
        conv.weight.data.copy_(weight)
        conv.bias.data.copy_(bias)
        self.fused = conv


def upscale(body: nn.ModuleList, tail: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The network's shape: ReLU layers, the tail, the residual, the pixel shuffle."""
    y = x
    for layer in body:
        y = F.relu(layer(y))
    y = tail(y) + x.repeat(1, SCALE * SCALE, 1, 1)
    return F.pixel_shuffle(y, SCALE)


class SRNet(nn.Module):
    """Y (N, 1, H, W) in 0..1 -> Y (N, 1, 2H, 2W)."""

    def __init__(self, channels: int = 24, blocks: int = 4) -> None:
        super().__init__()
        self.channels, self.blocks = channels, blocks
        layers = [RepConv(1, channels)]
        layers += [RepConv(channels, channels) for _ in range(blocks)]
        self.body = nn.ModuleList(layers)
        self.tail = RepConv(channels, SCALE * SCALE)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return upscale(self.body, self.tail, x)

    def grow(self, channels: int, blocks: int) -> SRNet:
        """This network with ``channels`` channels and ``blocks`` body blocks, computing
        the same function, so training goes on from where this one ended.

        Every convolution this network has keeps its weights, and the weights from a new
        channel into an old one (or into the tail) start at zero: old channels see
        nothing new. A new channel's own weights keep PyTorch's random initialisation, so
        it carries signal at once and its outgoing weights get gradients from the first
        step. New blocks are appended before the tail with zero 3x3 and 1x1 branches:
        they see the previous ReLU's output (never negative), so ReLU(0 + x) = x, and
        their weights get gradients through the identity branch.
        """
        if channels < self.channels or blocks < self.blocks:
            raise ValueError(
                f"cannot shrink C{self.channels} M{self.blocks} to C{channels} M{blocks}"
            )
        grown = SRNet(channels, blocks)
        old = dict(self.named_modules())
        with torch.no_grad():
            for name, conv in grown.named_modules():
                if not isinstance(conv, nn.Conv2d):
                    continue
                if name not in old:  # a new block's branch
                    conv.weight.zero_()
                    conv.bias.zero_()
                    continue
                rows, cols = old[name].weight.shape[:2]
                conv.weight[:rows, :cols] = old[name].weight
                conv.weight[:rows, cols:] = 0.0
                conv.bias[:rows] = old[name].bias
        return grown

    def fuse(self) -> SRNet:
        for module in self.modules():
            if isinstance(module, RepConv):
                module.fuse()
        return self

    def centre(self) -> SRNet:
        """Take and give luma - 0.5 instead of luma (after ``fuse``).

        Symmetric INT8 (all TensorRT accepts) spends half its codes on negative values:
        a 0..1 input would be quantized in steps of two 8-bit levels, and the network,
        a sharpening filter, amplifies that noise (1.2 dB lost on Set5). Centred, the
        steps match the source's. Exact: the residual path carries the shift through,
        and the first layer's bias absorbs it (its zero padding only ever touches a
        tile's discarded margin).
        """
        first = self.body[0].fused
        if first is None:
            raise RuntimeError("fuse() before centre()")
        with torch.no_grad():
            first.bias += 0.5 * first.weight.sum(dim=(1, 2, 3))
        return self
