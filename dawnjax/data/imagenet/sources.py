"""Opening an ImageNet-style dataset (a TFDS copy or a class-folder tree), and decoding a split
into one uint8 array: what the training workload and the inference benchmark share, so that a
served model is scored on exactly the images its training run evaluated.
"""
from __future__ import annotations

import dataclasses
import os

import numpy as np

from dawnjax.data.imagenet import pipeline
from dawnjax.data.imagenet.readers import Reader
from dawnjax.data.imagenet.transforms import Crop
from dawnjax.errors import ConfigError

KINDS = ('auto', 'tree', 'tfds')
IMAGENET_NAME = 'imagenet'  # the complete ILSVRC2012 split sizes; anything else is named otherwise


@dataclasses.dataclass(frozen=True)
class OpenedDataset:
  """A reader over train rows [0, num_train) then validation rows [num_train, num_train + num_val)."""
  reader: Reader
  name: str  # what results are reported under: 'imagenet' only for the complete ILSVRC2012
  num_train: int
  num_val: int
  num_classes: int
  source: str

  def val_ids(self) -> np.ndarray:
    return self.num_train + np.arange(self.num_val)


def open_dataset(kind: str, data_dir: str, *, scratch_dir: str | None = None) -> OpenedDataset:
  """The TFDS copy ('tfds', or 'auto' when `data_dir` holds imagenet2012/) or the class-folder
  tree at `data_dir`; reads listings only, decodes nothing."""
  if kind not in KINDS:
    raise ConfigError(f'dataset {kind!r}: expected one of {KINDS}')
  if kind == 'tfds' or (kind == 'auto' and os.path.isdir(os.path.join(data_dir, 'imagenet2012'))):
    from dawnjax.data.imagenet.tfds_source import TfdsReader  # pylint: disable=import-outside-toplevel
    reader = TfdsReader(data_dir)
    complete = (reader.num_train, reader.num_val) == (1281167, 50000)
    return OpenedDataset(reader, IMAGENET_NAME if complete else 'imagenet_incomplete', reader.num_train,
                         reader.num_val, len(reader.classes), f'TFDS imagenet2012 (array_record) in {data_dir}')
  from dawnjax.data.imagenet.tree import find_tree  # pylint: disable=import-outside-toplevel
  tree = find_tree(data_dir, scratch_dir=scratch_dir)
  source = tree.source + (f' (val = {tree.val_folder}/)' if tree.val_folder != 'val' else '')
  return OpenedDataset(tree.reader, tree.name, tree.num_train, tree.num_val, len(tree.classes), source)


def decode_rows(reader: Reader, ids: np.ndarray, crop: Crop, *, num_workers: int, batch: int = 256,
                buffer_dir: str | None = None,
                stats: pipeline.PipelineStats | None = None) -> tuple[np.ndarray, np.ndarray]:
  """(uint8 [n, size, size, 3], int32 [n]) of reader rows `ids`, in order, through the training
  run's host loader (the same decode, crop and resize), on `num_workers` processes (0: this one)."""
  ids = np.asarray(ids, np.int64)
  n = len(ids)
  images = np.empty((n, crop.size, crop.size, 3), np.uint8)
  labels = np.empty(n, np.int32)
  if n == 0:
    return images, labels
  batch = max(1, min(batch, n))
  loader = pipeline.HostLoader(reader, num_workers=num_workers, buffer_dir=buffer_dir)
  loader.start()
  position = 0

  def keep(batch_images, batch_labels, _flips):
    nonlocal position
    rows = min(batch, n - position)  # the last batch's padding rows are dropped here
    images[position:position + rows] = batch_images[:rows]
    labels[position:position + rows] = batch_labels[:rows]
    position += rows

  try:
    for _ in loader.iterate(pipeline.eval_requests(ids, batch, crop), keep, prefetch=1, stats=stats):
      pass
  finally:
    loader.close()
  return images, labels
