"""TFDS `imagenet2012` as a random-access reader for the same decoding workers.

Uses `tfds.data_source` (random access to records prepared in the array_record format) with the
image feature left encoded (`SkipDecoding`), so the JPEG bytes go through the same Pillow
decode/crop path as the class-folder tree, and TensorFlow is never needed at run time.
tensorflow_datasets is imported lazily, in the processes that read; without it, or without the
prepared data, the error says what to do. (Not exercised in this repository's tests: neither
TFDS nor ImageNet is available where they run.)
"""
from __future__ import annotations

from typing import Any

from dawnjax.errors import DataError

DATASET = 'imagenet2012'
SPLITS = ('train', 'validation')


def _tfds():
  try:
    import tensorflow_datasets as tfds  # pylint: disable=import-outside-toplevel
  except ImportError:
    raise DataError("--dataset=tfds needs tensorflow_datasets (pip install 'dawnjax[tfds]'); or "
                    'point --data_dir at a class-folder JPEG tree (--dataset=tree)') from None
  return tfds


def _open_split(tfds, data_dir: str | None, split: str):
  try:
    return tfds.data_source(DATASET, split=split, data_dir=data_dir,
                            decoders={'image': tfds.decode.SkipDecoding()})
  except Exception as e:  # TFDS raises its own and TensorFlow's error types
    raise DataError(f'TFDS {DATASET} ({split}) in {data_dir or "the default TFDS dir"}: cannot open '
                    f'({type(e).__name__}: {e}); prepare it once with `tfds build {DATASET} '
                    '--file_format=array_record --manual_dir=<dir with the ILSVRC2012 tars>`') from None


class TfdsReader:
  """Rows 0..num_train-1: the train split; then the validation split."""

  def __init__(self, data_dir: str | None):
    self.data_dir = data_dir
    tfds = _tfds()
    train, val = (_open_split(tfds, data_dir, s) for s in SPLITS)
    self.num_train, self.num_val = len(train), len(val)
    info = getattr(train, 'dataset_info', None)
    names = None
    if info is not None:
      names = getattr(info.features['label'], 'names', None)
    self.classes = tuple(names) if names else tuple(str(i) for i in range(1000))
    self._sources: Any = (train, val)
    self._last: tuple[int, Any] | None = None

  def __getstate__(self):
    state = dict(self.__dict__)
    state['_sources'] = None  # reopened lazily in each worker
    state['_last'] = None
    return state

  def __len__(self) -> int:
    return self.num_train + self.num_val

  def describe(self, i: int) -> str:
    split, j = self._where(i)
    return f'TFDS {DATASET} {split}[{j}]'

  def _where(self, i: int) -> tuple[str, int]:
    return ('train', i) if i < self.num_train else ('validation', i - self.num_train)

  def _record(self, i: int):
    if self._last is not None and self._last[0] == i:
      return self._last[1]
    if self._sources is None:
      tfds = _tfds()
      self._sources = tuple(_open_split(tfds, self.data_dir, s) for s in SPLITS)
    split, j = self._where(i)
    record = self._sources[0 if split == 'train' else 1][j]
    self._last = (i, record)
    return record

  def read(self, i: int) -> bytes:
    image = self._record(i)['image']
    return image if isinstance(image, bytes) else bytes(image)

  def label(self, i: int) -> int:
    return int(self._record(i)['label'])
