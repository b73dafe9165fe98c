"""A prepared dataset as uint8 .npy files, decoded once and memory-mapped on every later load.

Layout: `cache_dir/<fingerprint>/{train,test}_{images,labels}.npy` + `meta.json`. The fingerprint
hashes the source's path, sizes and modification times and FORMAT_VERSION, so a changed source
or a changed reader gets a new entry. An entry appears by renaming a finished temporary folder,
so a prepare that is killed never leaves a half-written entry behind; an entry that is damaged
anyway is rebuilt with a warning.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from typing import Callable

from absl import logging
import numpy as np

from dawnjax.data.arrays import ImageClassificationData
from dawnjax.errors import DataError

# Bump when a reader's output changes (decoding, ordering, naming): old entries then miss.
FORMAT_VERSION = 1
_ARRAYS = ('train_images', 'train_labels', 'test_images', 'test_labels')
_META = 'meta.json'
# Temporary folders of prepares this old were abandoned by a killed process.
_STALE_TMP_S = 6 * 3600


def fingerprint(source: str) -> str:
  """Hex digest identifying the bytes under `source` (a file, or a folder walked recursively)."""
  source = os.path.abspath(source)
  h = hashlib.sha256(f'dawnjax-cache-v{FORMAT_VERSION}\0{source}\0'.encode())
  if os.path.isdir(source):
    # File stats are cheap next to decoding; a folder's own mtime misses edits deeper down.
    for dirpath, dirnames, filenames in os.walk(source):
      dirnames.sort()
      for name in sorted(filenames):
        path = os.path.join(dirpath, name)
        st = os.stat(path)
        h.update(f'{os.path.relpath(path, source)}\0{st.st_size}\0{st.st_mtime_ns}\0'.encode())
  else:
    st = os.stat(source)
    h.update(f'{st.st_size}\0{st.st_mtime_ns}'.encode())
  return h.hexdigest()[:32]


def load_or_prepare(cache_dir: str, source: str,
                    prepare: Callable[[], ImageClassificationData],
                    image_shape: tuple[int, int, int] | None = None) -> ImageClassificationData:
  """Returns the cached dataset for `source`, running `prepare` and caching it on a miss.

  Arrays come back as read-only memory maps of the cache files.

  Args:
    cache_dir: folder of cache entries (created if missing).
    source: the file or folder `prepare` reads; its fingerprint names the entry.
    prepare: reads the dataset from `source`.
    image_shape: passed to `ImageClassificationData.validate` when reading an entry.
  """
  try:
    os.makedirs(cache_dir, exist_ok=True)
  except OSError as e:
    raise DataError(f'--cache_dir={cache_dir}: cannot create it ({e}); choose a writable '
                    'folder') from None
  key = fingerprint(source)
  entry = os.path.join(cache_dir, key)
  if os.path.exists(entry):
    try:
      return read_entry(entry, key, image_shape)
    except DataError as e:
      logging.warning('Rebuilding damaged dataset cache %s: %s', entry, e)
      _remove(entry)
  _remove_stale_tmp(cache_dir)
  data = prepare()
  write_entry(cache_dir, key, data)
  return read_entry(entry, key, image_shape)


def write_entry(cache_dir: str, key: str, data: ImageClassificationData) -> str:
  """Writes `data` as entry `key` of `cache_dir` atomically; returns the entry's path."""
  entry = os.path.join(cache_dir, key)
  tmp = tempfile.mkdtemp(prefix=f'.tmp-{key}-', dir=cache_dir)
  try:
    for name in _ARRAYS:
      np.save(os.path.join(tmp, f'{name}.npy'), np.ascontiguousarray(getattr(data, name)),
              allow_pickle=False)
    meta = {
        'format_version': FORMAT_VERSION,
        'fingerprint': key,
        'name': data.name,
        'classes': list(data.classes),
        'source': data.source,
        'num_train': int(data.train_images.shape[0]),
        'num_test': int(data.test_images.shape[0]),
    }
    with open(os.path.join(tmp, _META), 'w') as f:
      json.dump(meta, f, indent=1)
    try:
      os.rename(tmp, entry)
    except OSError:
      if not os.path.isdir(entry):
        raise
      # Another process finished the same entry first; its copy is as good as ours.
  except OSError as e:
    raise DataError(f'--cache_dir={cache_dir}: cannot write the dataset cache ({e}); free '
                    'space or choose another folder') from None
  finally:
    if os.path.exists(tmp):
      shutil.rmtree(tmp, ignore_errors=True)
  return entry


def read_entry(entry: str, key: str,
               image_shape: tuple[int, int, int] | None = None) -> ImageClassificationData:
  """Memory-maps a cache entry; DataError if it is incomplete, stale or inconsistent."""
  try:
    with open(os.path.join(entry, _META)) as f:
      meta = json.load(f)
    if meta.get('format_version') != FORMAT_VERSION or meta.get('fingerprint') != key:
      raise DataError(f'{entry}: written for another source or format version')
    arrays = {name: np.load(os.path.join(entry, f'{name}.npy'), mmap_mode='r',
                            allow_pickle=False) for name in _ARRAYS}
    data = ImageClassificationData(name=str(meta['name']), classes=tuple(meta['classes']),
                                   source=str(meta['source']), **arrays)
    counts = (data.train_images.shape[0], data.test_images.shape[0])
    if counts != (meta['num_train'], meta['num_test']):
      raise DataError(f'{entry}: holds {counts} images but meta.json says '
                      f'{(meta["num_train"], meta["num_test"])}')
    return data.validate(image_shape)
  except DataError:
    raise
  except (OSError, ValueError, KeyError, TypeError) as e:  # json, np.load and meta fields
    raise DataError(f'{entry}: unreadable cache entry ({type(e).__name__}: {e})') from None


def _remove(entry: str) -> None:
  # Rename first so that a concurrent reader never sees a half-deleted entry under its name.
  trash = tempfile.mkdtemp(prefix='.trash-', dir=os.path.dirname(entry))
  try:
    os.rename(entry, os.path.join(trash, 'entry'))
  except OSError:
    pass  # already moved by another process
  shutil.rmtree(trash, ignore_errors=True)


def _remove_stale_tmp(cache_dir: str) -> None:
  now = time.time()
  for name in os.listdir(cache_dir):
    path = os.path.join(cache_dir, name)
    if name.startswith(('.tmp-', '.trash-')):
      try:
        if now - os.stat(path).st_mtime > _STALE_TMP_S:
          shutil.rmtree(path, ignore_errors=True)
      except OSError:
        pass  # removed concurrently
