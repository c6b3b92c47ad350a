"""wsseg's built-in 2D U-Net segmenter plugin."""

from wsseg_unet.loss import DiceLoss, bright_wall, dice_loss
from wsseg_unet.model import UNet
from wsseg_unet.segmenter import UNetConfig, UNetSegmenter

__all__ = ["DiceLoss", "UNet", "UNetConfig", "UNetSegmenter", "bright_wall", "dice_loss"]
