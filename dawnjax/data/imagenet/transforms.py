"""Host-side image transforms: crop boxes (pure functions of the image size and random numbers)
and one Pillow decode -> crop -> resize per image.

The randomness is drawn by the batch planner in the main process (seeded by seed, epoch, step)
and shipped as uniforms, so a batch's pixels do not depend on which worker decoded which image.
The box arithmetic follows torchvision's RandomResizedCrop (10 tries, then a centre crop with the
aspect ratio clamped) and its eval transform (resize the shorter side to size/crop_ratio, centre
crop), expressed as a box in source pixels so that one `Image.resize(box=...)` does crop and
resize together.
"""
from __future__ import annotations

import dataclasses
import io
import math

import numpy as np
from PIL import Image

from dawnjax.errors import DataError

RRC_TRIES = 10  # torchvision's attempts before the fallback
UNIFORMS_PER_TRY = 4  # area, log aspect ratio, top, left


@dataclasses.dataclass(frozen=True)
class Crop:
  """How to turn one source image into a size x size training or evaluation input."""
  size: int
  train: bool
  scale: tuple[float, float] = (0.08, 1.0)  # area fraction range (train)
  ratio: tuple[float, float] = (3 / 4, 4 / 3)  # aspect ratio range (train)
  crop_ratio: float = 0.875  # eval: crop side / resized shorter side (224 of 256)


def random_resized_crop_box(width: int, height: int, uniforms: np.ndarray,
                            scale: tuple[float, float], ratio: tuple[float, float]):
  """(left, top, w, h) of a random crop, from uniforms [RRC_TRIES, 4] in [0, 1)."""
  area = width * height
  log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
  for u_area, u_ratio, u_top, u_left in uniforms:
    target = area * (scale[0] + (scale[1] - scale[0]) * float(u_area))
    aspect = math.exp(log_lo + (log_hi - log_lo) * float(u_ratio))
    w = int(round(math.sqrt(target * aspect)))
    h = int(round(math.sqrt(target / aspect)))
    if 0 < w <= width and 0 < h <= height:
      top = min(int(float(u_top) * (height - h + 1)), height - h)
      left = min(int(float(u_left) * (width - w + 1)), width - w)
      return left, top, w, h
  # Fallback: the whole image, cropped to the nearest allowed aspect ratio.
  in_ratio = width / height
  if in_ratio < min(ratio):
    w, h = width, int(round(width / min(ratio)))
  elif in_ratio > max(ratio):
    w, h = int(round(height * max(ratio))), height
  else:
    w, h = width, height
  return (width - w) // 2, (height - h) // 2, w, h


def center_crop_box(width: int, height: int, size: int, crop_ratio: float):
  """(left, top, w, h) of torchvision's Resize(int(size / crop_ratio)) + CenterCrop(size)."""
  resized_short = int(size / crop_ratio)
  side = min(width, height) * size / resized_short
  return (width - side) / 2, (height - side) / 2, side, side


def decode_crop_resize(blob: bytes, name: str, crop: Crop, uniforms: np.ndarray | None,
                       out: np.ndarray) -> None:
  """Decodes `blob`, crops the box `crop` picks, resizes it to out's [size, size, 3] in place.

  JPEGs are decoded at 1/2, 1/4 or 1/8 scale (libjpeg's DCT scaling via Image.draft) whenever
  the crop box still has at least `size` pixels per side at that scale: a 500x375 ImageNet image
  cropped to 128 px decodes several times faster, and the final antialiased resize from at least
  the target size loses nothing visible.
  """
  try:
    with Image.open(io.BytesIO(blob)) as image:
      width, height = image.size
      if crop.train:
        left, top, w, h = random_resized_crop_box(width, height, uniforms, crop.scale, crop.ratio)
      else:
        left, top, w, h = center_crop_box(width, height, crop.size, crop.crop_ratio)
      reduce = 1
      if image.format == 'JPEG':
        while reduce < 8 and min(w, h) >= 2 * reduce * crop.size:
          reduce *= 2
        if reduce > 1:
          image.draft('RGB', (width // reduce, height // reduce))
      sx, sy = image.size[0] / width, image.size[1] / height
      if image.mode != 'RGB':
        image = image.convert('RGB')  # greyscale and CMYK JPEGs exist in ImageNet
      box = (left * sx, top * sy, (left + w) * sx, (top + h) * sy)
      resized = image.resize((crop.size, crop.size), Image.BILINEAR, box=box)
      out[...] = np.asarray(resized)
  except DataError:
    raise
  except Exception as e:  # Pillow reports damaged files through many exception types
    raise DataError(f'{name}: cannot decode image ({type(e).__name__}: {e}); the file is corrupt, '
                    'replace or remove it') from None
