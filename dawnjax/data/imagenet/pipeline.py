"""Host input pipeline: batch plans (pure) and the loader that decodes them in worker processes.

Plans. Every host computes the same global plan from (seed, epoch): a permutation of the
training set, and per step the crop uniforms and flip bits of the whole global batch. Each host
then keeps its own contiguous rows of every global batch (rows [h*B/P, (h+1)*B/P) on host h of
P), so a run's batches are identical whatever the number of hosts, and together the hosts read
each file exactly once per epoch. Evaluation batches cover the split in order and pad the last
batch with index -1 (zeros, label -1, masked out of the counts): nothing is dropped.

Loader. `HostLoader.iterate` runs a producer thread that keeps up to `slots` batches decoding
in a process pool (each batch split into tasks of a few rows, written into a shared-memory slot),
then, in batch order, hands each finished slot to `transfer` (device_put with the batch
sharding, on the same thread, so the host->device copy overlaps the step running on device) and
queues the device arrays, `prefetch` deep. The training loop only dequeues and dispatches: it
never waits on the device, and waits on the host only if decoding is slower than the model.
"""
from __future__ import annotations

import atexit
import collections
import concurrent.futures
import dataclasses
import math
import multiprocessing
import queue
import threading
import time
from typing import Any, Callable, Iterable, Iterator

import numpy as np

from dawnjax.data.imagenet import worker
from dawnjax.data.imagenet.readers import Reader
from dawnjax.data.imagenet.transforms import RRC_TRIES, UNIFORMS_PER_TRY, Crop
from dawnjax.errors import ConfigError

_SHUFFLE_STREAM, _AUGMENT_STREAM = 0x5EED, 0xA46


@dataclasses.dataclass(frozen=True)
class BatchRequest:
  """This host's rows of one global batch."""
  indices: np.ndarray  # int64 [rows]: reader rows; -1 = padding
  crop: Crop
  uniforms: np.ndarray | None  # float32 [rows, RRC_TRIES, 4] for training crops
  flips: np.ndarray  # bool [rows]: mirror on device (always False for evaluation)


def local_rows(global_batch: int, process_index: int, process_count: int) -> slice:
  """The contiguous rows of every global batch that host `process_index` reads."""
  if global_batch % process_count:
    raise ConfigError(f'global batch {global_batch} is not divisible by {process_count} hosts')
  per_host = global_batch // process_count
  return slice(process_index * per_host, (process_index + 1) * per_host)


def train_requests(example_ids: np.ndarray, global_batch: int, crop: Crop, seed: int, epoch: int, *,
                   process_index: int = 0, process_count: int = 1) -> Iterator[BatchRequest]:
  """One epoch of shuffled training batches (the last partial batch is dropped, as is usual)."""
  n = len(example_ids)
  perm = np.random.default_rng([seed, epoch, _SHUFFLE_STREAM]).permutation(n)
  mine = local_rows(global_batch, process_index, process_count)
  for step in range(n // global_batch):
    rows = perm[step * global_batch:(step + 1) * global_batch]
    rng = np.random.default_rng([seed, epoch, step, _AUGMENT_STREAM])
    uniforms = rng.random((global_batch, RRC_TRIES, UNIFORMS_PER_TRY), dtype=np.float32)
    flips = rng.random(global_batch) < 0.5
    yield BatchRequest(np.asarray(example_ids, np.int64)[rows[mine]], crop, uniforms[mine],
                       flips[mine])


def eval_requests(example_ids: np.ndarray, global_batch: int, crop: Crop, *,
                  process_index: int = 0, process_count: int = 1) -> Iterator[BatchRequest]:
  """The split in order, in whole batches; the last one padded with -1."""
  ids = np.asarray(example_ids, np.int64)
  steps = math.ceil(len(ids) / global_batch)
  padded = np.full(steps * global_batch, -1, np.int64)
  padded[:len(ids)] = ids
  mine = local_rows(global_batch, process_index, process_count)
  no_flip = np.zeros(mine.stop - mine.start, bool)
  for step in range(steps):
    yield BatchRequest(padded[step * global_batch:(step + 1) * global_batch][mine], crop, None,
                       no_flip)


@dataclasses.dataclass
class PipelineStats:
  """Cumulative host-pipeline counters (all iterations of one loader)."""
  images: int = 0
  cpu_seconds: float = 0.0  # decode CPU time summed over workers
  batches: int = 0
  active_seconds: float = 0.0  # wall time while iterating (first request to last batch out)
  wait_seconds: float = 0.0  # time the consumer (training loop) blocked waiting for a batch

  def as_dict(self, num_workers: int) -> dict[str, Any]:
    per_core = self.images / self.cpu_seconds if self.cpu_seconds > 0 else None
    return {
        'images': self.images,
        'batches': self.batches,
        'workers': num_workers,
        'images_per_second_per_core': per_core,
        'images_per_second': self.images / self.active_seconds if self.active_seconds > 0 else None,
        'decode_cpu_seconds': self.cpu_seconds,
        'consumer_wait_seconds': self.wait_seconds,
        'input_bound_fraction': self.wait_seconds / self.active_seconds if self.active_seconds > 0 else None,
        'note': 'per core = images / decode CPU seconds of the workers; consumer wait = time the '
                'training loop blocked on input (near 0 when the host keeps up)',
    }


_END = object()


class HostLoader:
  """Decodes BatchRequests with a pool of `num_workers` processes (0: in the producer thread)."""

  def __init__(self, reader: Reader, *, num_workers: int, slots: int = 3,
               buffer_dir: str | None = None, max_rows_per_task: int = 32):
    if num_workers < 0:
      raise ConfigError(f'--num_workers={num_workers}: must be >= 0')
    self.reader = reader
    self.num_workers = num_workers
    self.slots = max(2, slots)
    self.buffer_dir = buffer_dir
    self.max_rows_per_task = max_rows_per_task
    self.stats = PipelineStats()
    self._pool: concurrent.futures.ProcessPoolExecutor | None = None
    self._buffers: collections.OrderedDict[tuple[int, int], worker.SharedBatchBuffer] = (
        collections.OrderedDict())

  def start(self) -> None:
    """Starts the worker processes (spawned: the parent may already run JAX threads)."""
    atexit.register(self.close)  # the shared buffers live in /dev/shm: never leave them behind
    if self.num_workers == 0:
      worker.init_worker(self.reader)
    elif self._pool is None:
      ctx = multiprocessing.get_context('spawn')
      self._pool = concurrent.futures.ProcessPoolExecutor(
          self.num_workers, mp_context=ctx, initializer=worker.init_worker,
          initargs=(self.reader,))
      # Start every worker now (not at the first batch, inside the timed region).
      list(self._pool.map(_noop, range(self.num_workers)))

  def close(self) -> None:
    if self._pool is not None:
      self._pool.shutdown(wait=True, cancel_futures=True)
      self._pool = None
    while self._buffers:
      self._buffers.popitem()[1].close()

  def _buffer(self, rows: int, size: int) -> worker.SharedBatchBuffer:
    key = (rows, size)
    if key not in self._buffers:
      # Keep the train and eval buffers of the current stage; older stages' go.
      while len(self._buffers) >= 2:
        self._buffers.popitem(last=False)[1].close()
      self._buffers[key] = worker.SharedBatchBuffer(self.slots, rows, size, self.buffer_dir)
    self._buffers.move_to_end(key)
    return self._buffers[key]

  def iterate(self, requests: Iterable[BatchRequest], transfer: Callable[..., Any], *,
              prefetch: int = 2, stats: PipelineStats | None = None) -> Iterator[Any]:
    """Yields transfer(images, labels, flips) per request, in order.

    `transfer` gets uint8 [rows, size, size, 3] and int32 [rows] views of a shared slot that is
    reused as soon as it returns, so it must copy (device_put + block_until_ready does).
    All requests must have the same row count and crop size. Counters go to `stats` (default:
    self.stats), e.g. to keep training and evaluation apart.
    """
    stats = self.stats if stats is None else stats
    requests = iter(requests)
    first = next(requests, None)
    if first is None:
      return
    buffer = self._buffer(len(first.indices), first.crop.size)
    out: queue.Queue = queue.Queue(maxsize=max(1, prefetch))
    stop = threading.Event()
    start = time.perf_counter()
    thread = threading.Thread(
        target=self._produce,
        args=(_chain(first, requests), buffer, transfer, out, stop, stats),
        name='dawnjax-host-loader', daemon=True)
    thread.start()
    try:
      while True:
        wait_start = time.perf_counter()
        item = out.get()
        stats.wait_seconds += time.perf_counter() - wait_start
        if item is _END:
          break
        if isinstance(item, BaseException):
          raise item
        stats.batches += 1
        yield item
    finally:
      stop.set()
      while thread.is_alive():  # unblock a producer stuck on a full queue
        try:
          out.get(timeout=0.05)
        except queue.Empty:
          pass
      thread.join()
      stats.active_seconds += time.perf_counter() - start

  def _tasks(self, request: BatchRequest, buffer: worker.SharedBatchBuffer, slot: int):
    rows = len(request.indices)
    if rows != buffer.spec.rows or request.crop.size != buffer.spec.size:
      raise ConfigError('all batches of one iteration must have the same rows and crop size')
    # A few tasks per worker per batch: balanced across workers, little per-task overhead.
    per_task = max(1, min(self.max_rows_per_task, math.ceil(rows / max(1, 2 * self.num_workers))))
    for lo in range(0, rows, per_task):
      hi = min(rows, lo + per_task)
      uniforms = None if request.uniforms is None else request.uniforms[lo:hi]
      yield worker.Task(buffer.spec, slot, np.arange(lo, hi, dtype=np.int32),
                        request.indices[lo:hi], request.crop, uniforms)

  def _produce(self, requests, buffer, transfer, out, stop, stats: PipelineStats) -> None:
    try:
      free = list(range(buffer.spec.slots))
      pending: collections.deque = collections.deque()
      exhausted = False
      while not stop.is_set():
        while free and not exhausted:
          request = next(requests, None)
          if request is None:
            exhausted = True
            break
          slot = free.pop()
          if self._pool is None:
            futures = [_done(worker.run_task(t)) for t in self._tasks(request, buffer, slot)]
          else:
            futures = [self._pool.submit(worker.run_task, t)
                       for t in self._tasks(request, buffer, slot)]
          pending.append((slot, request, futures))
        if not pending:
          break
        slot, request, futures = pending.popleft()
        for future in futures:
          timing = future.result()
          stats.images += timing.images
          stats.cpu_seconds += timing.cpu_seconds
        item = transfer(buffer.images[slot], buffer.labels[slot], request.flips)
        free.append(slot)
        _put(out, item, stop)
      for _, _, futures in pending:  # stopped early: let running tasks finish before slots go
        for future in futures:
          future.cancel()
        concurrent.futures.wait(futures)
    except BaseException as e:  # re-raised in the consuming thread
      _put(out, e, stop)
      return
    _put(out, _END, stop)


def _put(out: queue.Queue, item: Any, stop: threading.Event) -> None:
  while not stop.is_set():
    try:
      out.put(item, timeout=0.1)
      return
    except queue.Full:
      pass


def _chain(first, rest):
  yield first
  yield from rest


def _done(value) -> concurrent.futures.Future:
  future: concurrent.futures.Future = concurrent.futures.Future()
  future.set_result(value)
  return future


def _noop(_):
  return None


def make_transfer(images_sharding, labels_sharding, *, copy_first: bool,
                  global_rows: int | None = None) -> Callable[..., tuple[Any, Any, Any]]:
  """transfer(images, labels, flips) -> device arrays, returning only once the copy is done.

  Args:
    images_sharding, labels_sharding: NamedShardings splitting the batch axis over the mesh.
    copy_first: copy out of the shared slot first. Needed on the CPU backend, where device_put
      may alias (not copy) page-aligned host memory, which the next batch then overwrites.
    global_rows: the global batch when this process holds only its rows (multi-host): arrays
      are then assembled with jax.make_array_from_process_local_data.
  """
  import jax  # pylint: disable=import-outside-toplevel

  def put(x, sharding):
    if copy_first:
      x = np.array(x)
    if global_rows is None:
      return jax.device_put(x, sharding)
    return jax.make_array_from_process_local_data(sharding, np.asarray(x),
                                                  (global_rows,) + x.shape[1:])

  def transfer(images, labels, flips):
    x = put(images, images_sharding)
    y = put(np.array(labels), labels_sharding)
    f = put(np.asarray(flips), labels_sharding)
    # The slot is rewritten as soon as we return: wait for the host->device copy (not for any
    # computation), on this background thread.
    x.block_until_ready()
    return x, y, f

  return transfer
