"""Random-access readers of encoded images, pickled once into every decoding worker.

A reader maps a row index to (encoded bytes, label). Names, offsets and labels are numpy arrays,
not Python lists: 1.28M ImageNet paths pickle in milliseconds as one buffer, and every worker
holds a compact copy. File handles are opened lazily in the process that reads.
"""
from __future__ import annotations

import os
from typing import Protocol

import numpy as np

from dawnjax.errors import DataError


class Reader(Protocol):
  """What a decoding worker needs: encoded bytes and the label of row i, and a name for errors."""

  def __len__(self) -> int: ...

  def read(self, i: int) -> bytes: ...

  def label(self, i: int) -> int: ...

  def describe(self, i: int) -> str: ...


class FileReader:
  """Files root/names[i] (a class-folder tree on disk)."""

  def __init__(self, root: str, names: np.ndarray, labels: np.ndarray):
    self.root = root
    self.names = np.asarray(names, dtype=np.bytes_)
    self.labels = np.asarray(labels, np.int32)

  def __len__(self) -> int:
    return len(self.labels)

  def describe(self, i: int) -> str:
    return os.path.join(self.root, self.names[i].decode())

  def read(self, i: int) -> bytes:
    path = self.describe(i)
    try:
      with open(path, 'rb') as f:
        return f.read()
    except OSError as e:
      raise DataError(f'{path}: cannot read ({e.strerror or e}); check the file and its '
                      'permissions') from None

  def label(self, i: int) -> int:
    return int(self.labels[i])


class PackedReader:
  """Byte ranges [offsets[i], offsets[i] + sizes[i]) of one file: an uncompressed tar read in
  place, or the packed copy of a compressed archive's members."""

  def __init__(self, path: str, offsets: np.ndarray, sizes: np.ndarray, names: np.ndarray,
               labels: np.ndarray, where: str | None = None):
    self.path = path
    self.offsets = np.asarray(offsets, np.int64)
    self.sizes = np.asarray(sizes, np.int64)
    self.names = np.asarray(names, dtype=np.bytes_)
    self.labels = np.asarray(labels, np.int32)
    self.where = where or path  # what error messages call the container
    self._fd: int | None = None
    self._pid: int | None = None

  def __getstate__(self):
    state = dict(self.__dict__)
    state['_fd'] = state['_pid'] = None  # a descriptor means nothing in another process
    return state

  def __len__(self) -> int:
    return len(self.labels)

  def describe(self, i: int) -> str:
    return f'{self.where}:{self.names[i].decode()}'

  def read(self, i: int) -> bytes:
    if self._fd is None or self._pid != os.getpid():
      try:
        self._fd = os.open(self.path, os.O_RDONLY)
      except OSError as e:
        raise DataError(f'{self.where}: cannot open ({e.strerror or e})') from None
      self._pid = os.getpid()
    size = int(self.sizes[i])
    data = os.pread(self._fd, size, int(self.offsets[i]))
    if len(data) != size:
      raise DataError(f'{self.describe(i)}: file ends early ({len(data)} of {size} bytes); the '
                      'archive is truncated, re-create it')
    return data

  def label(self, i: int) -> int:
    return int(self.labels[i])
