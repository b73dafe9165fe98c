"""The latency harness: classify a test set one item at a time, as DAWNBench's inference rule asks.

Protocol (recorded with every result):
  * batch 1, every item of the test set once, in order: count = test-set size;
  * the function is compiled ahead of time (`jit(...).lower(...).compile()`) before any timing;
  * `warmup` calls on the first items precede the timed pass; they are excluded from the
    statistics and recorded separately;
  * each item is timed alone and closed by a device synchronisation, so queued work never
    hides in the next item's time;
  * input modes (MODES): 'host' = the image starts in host memory and the label ends there (upload,
    compute, download, the download requested at dispatch: a full classify request); the 'host_*'
    variants make the same request through other runtime paths (PROGRAM: the pinned ones compile a
    program that reads its input from and writes its label to pinned host memory itself;
    'host_staged' through one fixed staging buffer; the default reported one, 'host_graph', through
    two fixed pinned buffers that the program's own copy steps, inside its CUDA graph, read and
    write: graph_io.py); 'device' = the image is already on the device and the label stays there
    (compute + dispatch only);
  * Python's garbage collector is paused during timed loops, as `timeit` does, so a collection
    does not land in some item's time;
  * the wait for the result: 'block' (the runtime's blocking wait) or 'spin' (the caller polls the
    result's readiness, as a latency-bound server busy-polls, instead of sleeping until the runtime's
    completion callback wakes it; in 'host_graph' it polls the result's sequence word in host memory,
    without the runtime).
Predictions come from the same pass, so the accuracy reported beside a latency is the served
model's on exactly those calls.
"""
from __future__ import annotations

import ctypes
import dataclasses
import gc
import math
import time
from typing import Any, Callable

import jax
import numpy as np

# What each mode's request is (recorded in result files); MODES are its keys, in this order.
DESCRIPTIONS = {
    # Three runtime operations, each with its own stream and completion event.
    'host': 'host image -> device (jax.device_put), classify, label -> host (a copy requested at dispatch)',
    # The same work without the Python-level device_put.
    'host_direct': 'the host image handed to the compiled call (uploaded by its C++ dispatch), label -> host',
    # One launch per request; the put into pinned memory is a host copy, no GPU transfer.
    'host_pinned': 'host image -> a new pinned host buffer; one program moves it to the device, classifies and '
                   'writes the label to pinned host memory',
    # As host_pinned, but the input's address never changes, so XLA's command buffers (CUDA graphs) need no
    # update between calls, and there is no per-request put.
    'host_staged': "host image copied into one fixed pinned host buffer (a server's staging buffer); one program "
                   'moves it to the device, classifies and writes the label to pinned host memory',
    # As host_staged, but the program's own copy steps (XLA FFI calls) move the image in and the label out, so
    # they run inside its CUDA graph; a sequence word copied after the label says it has arrived.
    'host_graph': 'host image and a sequence number copied into one fixed pinned host buffer; one program copies '
                  'them to the device, classifies, and copies the label, then the sequence number, to a fixed '
                  'pinned host buffer (copy steps inside its CUDA graph); with --latency_wait=spin the host polls '
                  'that sequence number',
    'device': 'image already on device, label left on device'}
MODES = tuple(DESCRIPTIONS)
# The first is reported: a full request (image in host memory -> label in host memory) made the cheapest way
# measured. On H200s, polling ('spin'), CIFAR-10: host_graph 0.075-0.128 ms, host_staged 0.12-0.31, device 0.20-0.47
# (six machines); ResNet-50: 0.40-0.48, 0.55-0.67, 0.61-0.64 (results/*/h200_2026-12-0[23]_s1[89]_*).
# default_modes leaves out what a device cannot run.
DEFAULT_MODES = ('host_graph', 'host_staged', 'host', 'device')
WAITS = ('block', 'spin')
# host_graph's request completes when its sequence word lands in host memory; polling it is what makes the mode
# fast (CIFAR-10 on one H200: 0.095-0.097 ms against 0.163-0.192 with the runtime's blocking wait). The other modes
# measured alike either way (sessions 13, 17 and 18).
DEFAULT_WAIT = 'spin'
# The batch-1 program a mode's requests run (BatchOnePrograms): one whose input and output are in 'device' or
# 'pinned_host' memory (compile_for), or 'graph_io' (graph_io.GraphIOProgram, its buffers in pinned_host memory).
PROGRAM = {'host': 'device', 'host_direct': 'device', 'host_pinned': 'pinned_host', 'host_staged': 'pinned_host',
           'host_graph': 'graph_io', 'device': 'device'}


def default_modes(device) -> tuple[tuple[str, ...], list[str]]:
  """DEFAULT_MODES less those `device` cannot run, and why each was left out."""
  from dawnjax.errors import ConfigError
  from dawnjax.inference import graph_io
  modes, left_out = list(DEFAULT_MODES), []
  try:
    io_sharding(device, 'pinned_host')
  except ConfigError as err:
    left_out.append(str(err))
    modes = [m for m in modes if PROGRAM[m] == 'device']
  if 'host_graph' in modes and (reason := graph_io.unavailable(device)):
    left_out.append(reason)
    modes.remove('host_graph')
  return tuple(modes), left_out


def wait_for(out, wait: str):
  """`out` once the device has computed it: the runtime's blocking wait, or polling its readiness
  ('spin'), which keeps the calling thread awake (kernels/latency_trace.py: a no-op call's result is
  noticed ~50 us after its kernel ends with the blocking wait, on an H200 host)."""
  if wait == 'spin':
    while not out.is_ready():
      pass
    return out
  return out.block_until_ready()


@dataclasses.dataclass(frozen=True)
class LatencyRun:
  mode: str
  latencies_ms: np.ndarray  # one per item, in test-set order
  predictions: np.ndarray  # one row per item (a class, or a task's richer output)
  warmup_ms: np.ndarray  # each warm-up call, excluded from the statistics

  @property
  def count(self) -> int:
    return int(self.latencies_ms.size)


# How the served function gets its weights. 'constants': compiled into the executable, as an
# inference engine (TensorRT, a jax.export artifact with bound weights) holds them; a call passes
# the input alone. 'arguments': the variables pytree is an argument of every call, which on an H200
# cost ~0.05 ms per call for a 27-leaf pytree (kernels/latency_probe.py, noop vs noop_vars), and
# ~0.5 ms for ResNet-50's 102 MB in 267 leaves (batch 1, 224 px, H200: 1.77 vs 1.25 ms host mode,
# 1.29 vs 0.80 ms device mode; batch-1 compile 3.5 vs 5.4 s; results/imagenet/h200_2026-12-02_s16_serve).
# 'auto' picks constants up to CONSTANT_WEIGHTS_MAX_BYTES (ResNet-50 and -101): larger weights
# (BERT-Base: 440 MB) are embedded in the lowered module as literal attributes, which makes lowering
# and compiling slow, so they are passed.
WEIGHTS = ('auto', 'constants', 'arguments')
CONSTANT_WEIGHTS_MAX_BYTES = 256 << 20


def resolve_weights(weights: str, variables: Any) -> str:
  """'constants' or 'arguments' for these variables ('auto': constants if they are small)."""
  if weights not in WEIGHTS:
    raise ValueError(f'weights {weights!r}: expected one of {WEIGHTS}')
  if weights != 'auto':
    return weights
  size = sum(np.dtype(leaf.dtype).itemsize * int(np.prod(np.shape(leaf)))
             for leaf in jax.tree_util.tree_leaves(variables))
  return 'constants' if size <= CONSTANT_WEIGHTS_MAX_BYTES else 'arguments'


def io_sharding(device, memory: str = 'device') -> jax.sharding.SingleDeviceSharding:
  """Where a served call's input and output live: `device` memory, or 'pinned_host' memory."""
  if memory == 'device':
    return jax.sharding.SingleDeviceSharding(device)
  kinds = sorted(m.kind for m in device.addressable_memories())
  if memory not in kinds:
    from dawnjax.errors import ConfigError
    modes = ', '.join(m for m in MODES if PROGRAM[m] != 'device')
    raise ConfigError(f'{device.device_kind} has no {memory} memory (only {", ".join(kinds)}): the modes {modes} '
                      f'need it; pass --latency_modes without them')
  return jax.sharding.SingleDeviceSharding(device, memory_kind=memory)


def compile_for(fn: Callable[[Any, Any], Any], variables: Any, batch: int, item_shape, item_dtype,
                device, weights: str = 'arguments', memory: str = 'device') -> tuple[Callable[[Any, Any], Any], float]:
  """AOT-compiles fn(variables, inputs[batch, *item_shape]) for `device`; returns (call, seconds).

  `call(variables, inputs)` has the same signature in every `weights` mode; with 'constants' (or
  'auto' resolving to it) the executable was compiled with these `variables` bound and ignores the
  ones passed. With memory='pinned_host' the inputs and outputs live in pinned host memory and the
  program itself moves them to and from the device (the variables stay in device memory)."""
  weights = resolve_weights(weights, variables)
  io = io_sharding(device, memory)
  x_spec = jax.ShapeDtypeStruct((batch, *item_shape), np.dtype(item_dtype), sharding=io)
  served = fn
  if memory != 'device':
    on_device = jax.sharding.SingleDeviceSharding(device)
    served = lambda v, x: jax.device_put(fn(v, jax.device_put(x, on_device)), io)
  start = time.perf_counter()
  if weights == 'constants':
    bound = jax.jit(lambda x: served(variables, x), out_shardings=io).lower(x_spec).compile()
    seconds = time.perf_counter() - start
    return (lambda _variables, x: bound(x)), seconds
  compiled = jax.jit(served, out_shardings=io).lower(variables, x_spec).compile()
  return compiled, time.perf_counter() - start


class BatchOnePrograms:
  """The served function's batch-1 program of each kind a mode runs (PROGRAM), each compiled when first
  asked for; compile_seconds names them 'batch_1' (device memory) and 'batch_1_<kind>', and 'graph_io_handlers'
  the first graph_io program's build (unless cached, or default_modes built them) and registration of its FFI
  handlers. `graph_io_copies`: how the graph_io program copies (graph_io.COPIES; None: graph_io's default)."""

  def __init__(self, fn: Callable[[Any, Any], Any], variables: Any, item_shape, item_dtype, device,
               weights: str = 'arguments', graph_io_copies: str | None = None):
    def compile_kind(kind):
      if kind != 'graph_io':
        return compile_for(fn, variables, 1, item_shape, item_dtype, device, weights, kind)
      from dawnjax.inference import graph_io
      start = time.perf_counter()
      program = graph_io.GraphIOProgram(fn, variables, item_shape, item_dtype, device,
                                        resolve_weights(weights, variables), io_sharding(device, 'pinned_host'),
                                        graph_io_copies or graph_io.DEFAULT_COPIES)
      if program.build_seconds:
        self.compile_seconds['graph_io_handlers'] = program.build_seconds
      return program, time.perf_counter() - start - program.build_seconds

    self._compile = compile_kind
    self._programs: dict[str, Any] = {}
    self.compile_seconds: dict[str, float] = {}

  def __call__(self, kind: str = 'device'):
    if kind not in self._programs:
      self._programs[kind], seconds = self._compile(kind)
      self.compile_seconds['batch_1' if kind == 'device' else f'batch_1_{kind}'] = seconds
    return self._programs[kind]


class PinnedArray:
  """A JAX array in host memory (pinned, with sharding=io_sharding(device, 'pinned_host')) used through its
  address: the host reads and writes it through numpy views, programs take the array or the address.

  A jax.Array is immutable to JAX, so writing its bytes is sound only while no program reads them (each
  request's result is waited for before the next request is written) and JAX never reads the array back
  (it would cache a host copy)."""

  def __init__(self, shape, dtype, sharding: jax.sharding.Sharding):
    self.array = jax.device_put(np.zeros(shape, dtype), sharding)
    self.array.block_until_ready()
    self.address = self.array.unsafe_buffer_pointer()
    self.bytes = np.frombuffer((ctypes.c_uint8 * self.array.nbytes).from_address(self.address), np.uint8)

  def typed(self, offset: int, dtype, shape) -> np.ndarray:
    """A view of `shape` elements of `dtype` starting `offset` bytes in."""
    count = math.prod(shape)
    return self.bytes[offset:offset + count * np.dtype(dtype).itemsize].view(dtype).reshape(shape)


class StagingBuffer:
  """One pinned host buffer a server copies each request into: the same array, at the same address,
  is every call's input (PinnedArray says when writing it is sound). The constructor checks that a
  program sees what is written."""

  def __init__(self, shape, dtype, device, memory: str = 'pinned_host'):
    pinned = PinnedArray(shape, dtype, io_sharding(device, memory))
    self.array, self._view = pinned.array, pinned.typed(0, dtype, shape)
    pattern = (np.arange(self._view.size) % 251 + 1).astype(dtype).reshape(shape)
    self.write(pattern)
    seen = np.asarray(jax.device_put(self.array, jax.sharding.SingleDeviceSharding(device)))
    self.write(np.zeros(shape, dtype))
    if not np.array_equal(seen, pattern):
      raise RuntimeError(f'{device.device_kind}: bytes written to a {memory} buffer through its pointer did not '
                         f'reach the device; the host_staged mode cannot run here')

  def write(self, item: np.ndarray):
    np.copyto(self._view, item)
    return self.array


class GcPaused:
  """Python's garbage collector paused (after a collection) for a timed loop, as `timeit` does."""

  def __enter__(self):
    self._was = gc.isenabled()
    gc.collect()
    gc.disable()

  def __exit__(self, *exc):
    if self._was:
      gc.enable()


def read_back(out, wait: str = 'block'):
  """The result in host memory, its copy requested right after the dispatch so that the runtime
  queues it behind the computation rather than after np.asarray's wait: lower in 9 of 11 paired
  probe rows on an H200 by 0.01-0.09 ms, higher in 2 by 0.01-0.05 (kernels/latency_probe.py
  *_baked_host_async, results/cifar10_jpeg/h200_2026-12-01_s9)."""
  out.copy_to_host_async()
  if wait == 'spin':
    wait_for(out, wait)
  return np.asarray(out)


def request(classify, variables, images: np.ndarray, device, mode: str, wait: str = 'block') -> Callable[[int], Any]:
  """one(i): serves item i of `images` in `mode`, as one request, and returns its result once computed
  (in host memory, except in 'device' mode).

  `classify` is the batch-1 program of kind PROGRAM[mode] (BatchOnePrograms), and `variables`
  already live on `device`. Any set-up a mode needs (device-resident
  items, the staging buffer) is done here, before any timing.
  """
  if mode not in MODES:
    raise ValueError(f'mode {mode!r}: expected one of {MODES}')
  if wait not in WAITS:
    raise ValueError(f'wait {wait!r}: expected one of {WAITS}')
  n = len(images)
  if n == 0:
    raise ValueError('no items to time')
  if mode == 'device':
    items = [jax.device_put(images[i:i + 1], device) for i in range(n)]
    jax.block_until_ready(items)
    return lambda i: wait_for(classify(variables, items[i]), wait)
  if mode == 'host_pinned':
    pinned = io_sharding(device, PROGRAM[mode])
    # The label is in pinned host memory once the program is done: no copy to request.
    return lambda i: np.asarray(wait_for(classify(variables, jax.device_put(images[i:i + 1], pinned)), wait))
  if mode == 'host_staged':
    staging = StagingBuffer((1, *images.shape[1:]), images.dtype, device, PROGRAM[mode])
    return lambda i: np.asarray(wait_for(classify(variables, staging.write(images[i:i + 1])), wait))
  if mode == 'host_graph':
    return lambda i: classify.serve(variables, images[i:i + 1], wait)
  if mode == 'host_direct':
    return lambda i: read_back(classify(variables, images[i:i + 1]), wait)
  # Upload, compute and download: np.asarray waits for the result.
  return lambda i: read_back(classify(variables, jax.device_put(images[i:i + 1], device)), wait)


def time_items(classify, variables, images: np.ndarray, device, *, mode: str, warmup: int, wait: str = 'block',
               clock: Callable[[], int] = time.perf_counter_ns) -> LatencyRun:
  """Times classify(variables, one item) for every item of `images` (batch 1), in `mode`, each item
  one request (see `request`)."""
  one = request(classify, variables, images, device, mode, wait)
  n = len(images)
  warm = np.zeros(warmup, np.float64)
  times = np.zeros(n, np.float64)
  outputs = [None] * n
  with GcPaused():
    for k in range(warmup):
      start = clock()
      one(k % n)
      warm[k] = (clock() - start) / 1e6
    for i in range(n):
      start = clock()
      out = one(i)
      times[i] = (clock() - start) / 1e6
      # Read back after the clock stops ('device' mode leaves the result on device inside the timed
      # call), so the device buffer is released as a server's would be: holding all n results on
      # device gave every call a new output address, which made XLA update its command buffers
      # (CUDA graphs) on each call: with them, 0.36-0.48 ms per call before this read-back and 0.26 after,
      # on H200s (results/cifar10_jpeg/h200_2026-12-01_s9 and _s10).
      outputs[i] = np.asarray(out)
      del out
  # Along axis 0 only: a class per item stays 1-D, richer outputs (a span) keep their columns.
  predictions = np.concatenate(outputs)
  return LatencyRun(mode, times, predictions, warm)


def latency_stats(latencies_ms: np.ndarray, groups: np.ndarray | None = None) -> dict[str, float]:
  """mean, median (p50), p90, p99, min, max and std (ms) over items.

  With `groups` (a group index per item, e.g. the question of each SQuAD window) the statistics
  are over groups, each the sum of its items' latencies: one request per item, in order.
  """
  x = np.asarray(latencies_ms, np.float64)
  if groups is not None:
    x = np.bincount(np.asarray(groups), weights=x)
  return {'n': int(x.size), 'mean_ms': float(x.mean()), 'p50_ms': float(np.percentile(x, 50)),
          'p90_ms': float(np.percentile(x, 90)), 'p99_ms': float(np.percentile(x, 99)),
          'min_ms': float(x.min()), 'max_ms': float(x.max()), 'std_ms': float(x.std())}


def time_throughput(classify_batch, variables, images: np.ndarray, device, *, batch: int,
                    passes: int = 3, clock: Callable[[], int] = time.perf_counter_ns) -> dict[str, Any]:
  """Items/s classifying the whole (device-resident) set in batches of `batch`.

  The last batch is zero-padded; padded items are computed but not counted. One untimed pass
  first (warm-up), then `passes` timed passes, each dispatched back to back and synchronised once
  at its end; the median pass is reported.
  """
  n = len(images)
  chunks = -(-n // batch)
  padded = np.zeros((chunks * batch, *images.shape[1:]), images.dtype)
  padded[:n] = images
  xs = [jax.device_put(padded[c * batch:(c + 1) * batch], device) for c in range(chunks)]
  jax.block_until_ready(xs)

  def one_pass():
    return jax.block_until_ready([classify_batch(variables, x) for x in xs])

  outputs = one_pass()
  seconds = []
  with GcPaused():
    for _ in range(passes):
      start = clock()
      one_pass()
      seconds.append((clock() - start) / 1e9)
  median = float(np.median(seconds))
  predictions = np.concatenate([np.asarray(o) for o in outputs])[:n]
  return {'batch': batch, 'items': n, 'padded_items': chunks * batch - n, 'passes': passes,
          'pass_seconds': seconds, 'median_pass_seconds': median,
          'items_per_second': n / median if median > 0 else None,
          'ms_per_batch': 1e3 * median / chunks, 'predictions': predictions,
          'rule': 'device-resident inputs; one untimed warm-up pass; median of the timed passes; '
                  'padding computed but not counted'}


def accuracy_percent(predictions: np.ndarray, labels: np.ndarray) -> float:
  return 100.0 * float(np.mean(np.asarray(predictions) == np.asarray(labels)))


def time_bounds(classify, fn: Callable[[Any, Any], Any], variables, images: np.ndarray, device, *,
                items: int = 1000, clock: Callable[[], int] = time.perf_counter_ns) -> dict[str, Any]:
  """What bounds the batch-1 latency: the same items (device-resident) timed three ways.

  * synchronised: one call, wait for it, next call (what the latency statistics measure);
  * pipelined: all calls dispatched back to back, one wait at the end: per item, the host's
    dispatch cost when the device overlaps it (if it is close to 'synchronised', the host is the
    bound, not the device);
  * in_program: one compiled program classifying the items one at a time in a loop
    (`lax.map` over batch-1 calls): no Python dispatch per item, so per item it is the device's
    compute plus the runtime's per-iteration cost.
  Each after one untimed run; `classify` is the compiled batch-1 function, `fn` its source.
  """
  n = min(items, len(images))
  xs = [jax.device_put(images[i:i + 1], device) for i in range(n)]
  stacked = jax.device_put(images[:n, None], device)
  looped = jax.jit(lambda v, x: jax.lax.map(lambda item: fn(v, item), x)).lower(variables, stacked).compile()

  def synchronised():
    for x in xs:
      classify(variables, x).block_until_ready()

  def pipelined():
    jax.block_until_ready([classify(variables, x) for x in xs])

  def in_program():
    looped(variables, stacked).block_until_ready()

  out = {'items': n}
  with GcPaused():
    for name, run in (('synchronised', synchronised), ('pipelined', pipelined), ('in_program', in_program)):
      run()
      start = clock()
      run()
      out[f'{name}_ms_per_item'] = (clock() - start) / 1e6 / n
  sync, pipe, prog = (out[f'{k}_ms_per_item'] for k in ('synchronised', 'pipelined', 'in_program'))
  out['host_dispatch_bound'] = bool(pipe > 2 * prog)
  out['reading'] = (f'per item: {sync:.4f} ms synchronised, {pipe:.4f} ms pipelined (host dispatch), '
                    f'{prog:.4f} ms inside one program (device + runtime loop); '
                    + ('the host-side dispatch, not device compute, bounds batch-1 latency'
                       if out['host_dispatch_bound'] else 'device execution bounds batch-1 latency'))
  return out
