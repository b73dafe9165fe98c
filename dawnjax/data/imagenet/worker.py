"""What each decoding process runs. Imports numpy and Pillow only: spawned workers start fast.

Workers write decoded rows straight into a shared batch buffer (a memory-mapped file, see
`SharedBatchBuffer`) and return only timings: a 256 x 224 x 224 x 3 batch is 38 MB, and sending
that back through a pipe would cost the main process more than the decode saves.
"""
from __future__ import annotations

import dataclasses
import os
import tempfile
import time
import uuid
from collections import OrderedDict

import numpy as np

from dawnjax.data.imagenet.readers import Reader
from dawnjax.data.imagenet.transforms import Crop, decode_crop_resize

# /dev/shm is RAM; below this much free space there (Docker's default is 64 MB) the buffers go to
# the temp dir instead, whose page cache serves as well as long as memory is free.
_SHM = '/dev/shm'
_SHM_HEADROOM = 256 << 20


@dataclasses.dataclass(frozen=True)
class BufferSpec:
  """Where a SharedBatchBuffer lives; what workers need to map it."""
  images_path: str
  labels_path: str
  slots: int
  rows: int
  size: int


class SharedBatchBuffer:
  """`slots` batch slots of uint8 images [rows, size, size, 3] and int32 labels [rows]."""

  def __init__(self, slots: int, rows: int, size: int, directory: str | None = None):
    nbytes = slots * rows * size * size * 3
    directory = directory or _default_dir(nbytes)
    os.makedirs(directory, exist_ok=True)
    stem = os.path.join(directory, f'dawnjax_batches_{os.getpid()}_{uuid.uuid4().hex[:8]}')
    self.spec = BufferSpec(stem + '.images', stem + '.labels', slots, rows, size)
    self.images = np.memmap(self.spec.images_path, np.uint8, 'w+', shape=(slots, rows, size, size, 3))
    self.labels = np.memmap(self.spec.labels_path, np.int32, 'w+', shape=(slots, rows))

  def close(self) -> None:
    del self.images, self.labels
    for path in (self.spec.images_path, self.spec.labels_path):
      try:
        os.unlink(path)
      except OSError:
        pass


def _default_dir(nbytes: int) -> str:
  try:
    stat = os.statvfs(_SHM)
    if stat.f_bavail * stat.f_frsize >= nbytes + _SHM_HEADROOM:
      return _SHM
  except OSError:
    pass
  return tempfile.gettempdir()


@dataclasses.dataclass(frozen=True)
class Task:
  """Decode rows[j] <- image indices[j] (-1: padding, written as zeros with label -1)."""
  buffer: BufferSpec
  slot: int
  rows: np.ndarray  # int32 [n] row within the slot
  indices: np.ndarray  # int64 [n] reader row
  crop: Crop
  uniforms: np.ndarray | None  # float32 [n, RRC_TRIES, 4] (train crops)


@dataclasses.dataclass(frozen=True)
class TaskTiming:
  images: int  # real images decoded (padding not counted)
  cpu_seconds: float  # this process's CPU time for the task
  wall_seconds: float


# Per-process state, set by `init_worker` (the pool's initializer).
_reader: Reader | None = None
_buffers: OrderedDict[str, tuple[np.memmap, np.memmap]] = OrderedDict()
_MAX_MAPPED = 4  # train + eval buffers, and the ones just replaced at a stage change


def init_worker(reader: Reader) -> None:
  global _reader
  _reader = reader
  _buffers.clear()


def _mapped(spec: BufferSpec) -> tuple[np.memmap, np.memmap]:
  if spec.images_path not in _buffers:
    images = np.memmap(spec.images_path, np.uint8, 'r+',
                       shape=(spec.slots, spec.rows, spec.size, spec.size, 3))
    labels = np.memmap(spec.labels_path, np.int32, 'r+', shape=(spec.slots, spec.rows))
    _buffers[spec.images_path] = (images, labels)
    while len(_buffers) > _MAX_MAPPED:
      _buffers.popitem(last=False)
  return _buffers[spec.images_path]


def run_task(task: Task) -> TaskTiming:
  """Decodes one task's rows into the shared buffer (in a worker, or inline for 0 workers)."""
  start_wall, start_cpu = time.perf_counter(), time.process_time()
  images, labels = _mapped(task.buffer)
  count = 0
  for j, (row, index) in enumerate(zip(task.rows, task.indices)):
    if index < 0:
      images[task.slot, row] = 0
      labels[task.slot, row] = -1
      continue
    uniforms = task.uniforms[j] if task.uniforms is not None else None
    decode_crop_resize(_reader.read(int(index)), _reader.describe(int(index)), task.crop, uniforms,
                       images[task.slot, row])
    labels[task.slot, row] = _reader.label(int(index))
    count += 1
  return TaskTiming(count, time.process_time() - start_cpu, time.perf_counter() - start_wall)
