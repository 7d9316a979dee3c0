"""A deliberately small restoration network: the worked example of bringing your own model to bench-ir.

Two-level U-Net with a global residual; takes and returns RGB images in [0, 1], H and W multiples of 2.
"""

import torch
from torch import nn


def conv_block(channels: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1), nn.GELU(),
                         nn.Conv2d(channels, channels, 3, padding=1), nn.GELU())


class TinyUNet(nn.Module):
    def __init__(self, width: int = 16):
        super().__init__()
        self.embed = nn.Conv2d(3, width, 3, padding=1)
        self.encoder = conv_block(width)
        self.down = nn.Conv2d(width, 2 * width, 2, stride=2)
        self.middle = conv_block(2 * width)
        self.up = nn.Sequential(nn.Conv2d(2 * width, 4 * width, 1), nn.PixelShuffle(2))
        self.decoder = nn.Sequential(nn.Conv2d(2 * width, width, 1), conv_block(width))
        self.head = nn.Conv2d(width, 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = self.encoder(self.embed(x))
        deep = self.up(self.middle(self.down(skip)))
        return x + self.head(self.decoder(torch.cat([deep, skip], dim=1)))
