"""`load_cifar10`: finds CIFAR-10 in --data_dir in whichever form it is, reads it, caches it."""
from __future__ import annotations

import dataclasses
import functools
import os
import tarfile
import time
from typing import Callable

from absl import logging

from dawnjax.data import cache
from dawnjax.data import cifar10_formats as formats
from dawnjax.data import download as downloader
from dawnjax.data import tar_members
from dawnjax.data.arrays import ImageClassificationData
from dawnjax.errors import DataError

ACCEPTED_FORMATS = (
    f'{formats.PYTHON_DIR}/ or {formats.PYTHON_TAR} (official python version)',
    f'{formats.BINARY_DIR}/ or {formats.BINARY_TAR} (official binary version)',
    'train/<class>/*.jpg|*.png and test/<class>/... as a folder or a .tar/.tar.gz/.tgz archive',
    'a TFDS data_dir holding cifar10/<version>/ (needs tensorflow_datasets)',
)
OFFICIAL_COUNTS = (50000, 10000)
# Archive members looked at to tell an archive's format (the first ones name its top folder).
_PEEK_MEMBERS = 64


@dataclasses.dataclass(frozen=True)
class Found:
  """One readable copy of CIFAR-10."""
  kind: str  # python_dir, python_tar, binary_dir, binary_tar, image_tree or tfds
  path: str  # what the reader reads; also what the cache fingerprints


def load_cifar10(data_dir: str, *, cache_dir: str | None = None, download: bool = False,
                 num_workers: int | None = None) -> ImageClassificationData:
  """Loads CIFAR-10 (train 50,000 / test 10,000 uint8 32x32 RGB images) from `data_dir`.

  Args:
    data_dir: one of the ACCEPTED_FORMATS, or a folder containing one (lossless official
      formats are preferred when there are several).
    cache_dir: if set, the decoded arrays are kept there as .npy files and memory-mapped on
      later calls, so a JPEG tree is decoded only once.
    download: fetch the official python version into `data_dir` if nothing is found there.
    num_workers: image-decoding processes for image trees; None picks from the CPU count.

  Returns:
    The dataset; `name` is 'cifar10_jpeg' when it was read from JPEG files (a lossy copy).

  Raises:
    DataError: nothing usable in `data_dir`, the data is damaged, or the download failed.
  """
  found = find_cifar10(data_dir)
  if found is None and download:
    logging.info('No CIFAR-10 in %s; downloading %s', data_dir, downloader.CIFAR10_URL)
    downloader.download(downloader.CIFAR10_URL, data_dir, md5=downloader.CIFAR10_MD5)
    found = find_cifar10(data_dir)
  if found is None:
    missing = '' if os.path.exists(data_dir) else ' (it does not exist)'
    raise DataError(f'--data_dir={data_dir}: no CIFAR-10 found{missing}; accepted: '
                    f'{"; ".join(ACCEPTED_FORMATS)} (or pass --download where there is '
                    'internet access)')
  prepare = functools.partial(read_found, found, download=download, num_workers=num_workers)
  start = time.perf_counter()
  if cache_dir is None:
    data = prepare()
  else:
    # A TFDS data_dir may hold other datasets: only cifar10/ says whether the cache is current.
    source = os.path.join(found.path, 'cifar10') if found.kind == 'tfds' else found.path
    data = cache.load_or_prepare(cache_dir, source, prepare, formats.IMAGE_SHAPE)
  counts = (len(data.train_labels), len(data.test_labels))
  logging.info('Loaded %s from %s in %.1f s: %d train, %d test images', data.name, data.source,
               time.perf_counter() - start, *counts)
  if counts != OFFICIAL_COUNTS:
    # Not an error (subsets are useful in tests), but results on it are not CIFAR-10 results.
    logging.warning('%s holds %d train and %d test images, not the official %d and %d; is the '
                    'copy complete?', data.source, *counts, *OFFICIAL_COUNTS)
  return data


def read_found(found: Found, *, download: bool = False,
               num_workers: int | None = None) -> ImageClassificationData:
  """Reads what `find_cifar10` found."""
  readers: dict[str, Callable[[str], ImageClassificationData]] = {
      'python_dir': formats.read_python_dir,
      'python_tar': formats.read_python_tar,
      'binary_dir': formats.read_binary_dir,
      'binary_tar': formats.read_binary_tar,
      'image_tree': lambda p: formats.read_image_tree(p, num_workers=num_workers),
      'tfds': lambda p: formats.read_tfds(p, download=download),
  }
  return readers[found.kind](found.path)


def find_cifar10(data_dir: str) -> Found | None:
  """Says which form of CIFAR-10 `data_dir` is or holds; None if none."""
  if os.path.isfile(data_dir):
    return _classify_file(data_dir)
  if not os.path.isdir(data_dir):
    return None
  found = _classify_dir(data_dir)
  if found is not None:
    return found
  children = sorted(os.listdir(data_dir))
  candidates = []
  for name in (formats.PYTHON_DIR, formats.BINARY_DIR, formats.PYTHON_TAR, formats.BINARY_TAR):
    if name in children:
      candidates.append(os.path.join(data_dir, name))
  # Any other copy must say it is CIFAR in its name: a folder may hold several datasets.
  candidates += [os.path.join(data_dir, c) for c in children
                 if 'cifar' in c.lower() and os.path.join(data_dir, c) not in candidates]
  for path in candidates:
    found = _classify_file(path) if os.path.isfile(path) else _classify_dir(path)
    if found is not None:
      return found
  if _is_tfds_root(data_dir):
    return Found('tfds', data_dir)
  return None


def _classify_dir(path: str) -> Found | None:
  def has(*names):
    return all(os.path.exists(os.path.join(path, n)) for n in names)
  if has('data_batch_1') or has('batches.meta'):
    return Found('python_dir', path)
  if has('data_batch_1.bin') or has('batches.meta.txt'):
    return Found('binary_dir', path)
  if os.path.isdir(os.path.join(path, 'train')) and os.path.isdir(os.path.join(path, 'test')):
    return Found('image_tree', path)
  if os.path.basename(os.path.normpath(path)) == 'cifar10' and _is_tfds_root(
      os.path.dirname(os.path.normpath(path))):
    return Found('tfds', os.path.dirname(os.path.normpath(path)))
  return None


def _classify_file(path: str) -> Found | None:
  base = os.path.basename(path)
  if base == formats.PYTHON_TAR:
    return Found('python_tar', path)
  if base == formats.BINARY_TAR:
    return Found('binary_tar', path)
  if not base.lower().endswith(formats.ARCHIVE_EXTENSIONS):
    return None
  # A renamed official tarball still starts with its official folder.
  for name in _peek_names(path):
    first = name.split('/')[0]
    if first == formats.PYTHON_DIR:
      return Found('python_tar', path)
    if first == formats.BINARY_DIR:
      return Found('binary_tar', path)
  return Found('image_tree', path)


def _peek_names(path: str) -> list[str]:
  names = []
  try:
    with tarfile.open(path, 'r:*') as archive:
      for member in archive:
        names.append(tar_members.normalise_name(member.name))
        if len(names) >= _PEEK_MEMBERS:
          break
  except (tarfile.TarError, OSError, EOFError) as e:
    raise DataError(f'{path}: not a readable tar archive ({e}); re-download it or pass '
                    '--data_dir of another copy') from None
  return names


def _is_tfds_root(path: str) -> bool:
  root = os.path.join(path, 'cifar10')
  if not os.path.isdir(root):
    return False
  return any(os.path.exists(os.path.join(root, v, 'dataset_info.json'))
             for v in os.listdir(root))
