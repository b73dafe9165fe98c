"""In-memory image classification dataset: uint8 NHWC images and int32 labels per split."""
from __future__ import annotations

import dataclasses

import numpy as np

from dawnjax.errors import DataError


# eq=False: the generated __eq__ would compare arrays with `==`, which has no truth value.
@dataclasses.dataclass(frozen=True, eq=False)
class ImageClassificationData:
  """Train and test splits of one dataset, as read from disk (no normalisation, no padding).

  Attributes:
    name: dataset name results are reported under: 'cifar10' for the lossless official formats,
      'cifar10_jpeg' when the source images are JPEG files.
    train_images: uint8 [N, H, W, 3], NHWC (may be a read-only np.memmap from the cache).
    train_labels: int32 [N], indices into `classes`.
    test_images: uint8 [M, H, W, 3].
    test_labels: int32 [M].
    classes: class names; label i is classes[i].
    source: short description of where the data came from (format and path).
  """
  name: str
  train_images: np.ndarray
  train_labels: np.ndarray
  test_images: np.ndarray
  test_labels: np.ndarray
  classes: tuple[str, ...]
  source: str

  def validate(self, image_shape: tuple[int, int, int] | None = None) -> ImageClassificationData:
    """Raises DataError unless every split is well formed; returns self for chaining.

    Args:
      image_shape: required (H, W, C) of every image; None only requires 3 channels and the same
        shape in both splits.
    """
    if not self.classes or len(set(self.classes)) != len(self.classes):
      raise DataError(f'{self.source}: class names must be non-empty and unique, got '
                      f'{list(self.classes)}; check the class folders or metadata file')
    shapes = []
    for split in ('train', 'test'):
      images = getattr(self, f'{split}_images')
      labels = getattr(self, f'{split}_labels')
      where = f'{self.source} ({split} split)'
      if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.ndim != 4:
        raise DataError(f'{where}: images must be a uint8 [N, H, W, C] array, got '
                        f'{_describe(images)}; re-prepare the data')
      if image_shape is not None and images.shape[1:] != tuple(image_shape):
        raise DataError(f'{where}: images must be {tuple(image_shape)} (H, W, C), got '
                        f'{images.shape[1:]}; point --data_dir at CIFAR-10')
      if images.shape[3] != 3:
        raise DataError(f'{where}: images must have 3 (RGB) channels, got {images.shape[3]}')
      if images.shape[0] == 0:
        raise DataError(f'{where}: split is empty; check that the files are complete')
      if not isinstance(labels, np.ndarray) or labels.dtype != np.int32 or labels.ndim != 1:
        raise DataError(f'{where}: labels must be an int32 [N] array, got {_describe(labels)}')
      if labels.shape[0] != images.shape[0]:
        raise DataError(f'{where}: {images.shape[0]} images but {labels.shape[0]} labels; '
                        'the files are inconsistent, re-download them')
      low, high = int(labels.min()), int(labels.max())
      if low < 0 or high >= len(self.classes):
        raise DataError(f'{where}: labels span [{low}, {high}] but there are '
                        f'{len(self.classes)} classes; the labels or class list are corrupt')
      shapes.append(images.shape[1:])
    if shapes[0] != shapes[1]:
      raise DataError(f'{self.source}: train images are {shapes[0]} but test images are '
                      f'{shapes[1]}; both splits must come from the same dataset')
    return self


def _describe(x: object) -> str:
  if isinstance(x, np.ndarray):
    return f'{x.dtype} array of shape {x.shape}'
  return type(x).__name__
