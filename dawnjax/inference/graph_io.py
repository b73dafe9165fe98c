"""A batch-1 request whose copies are steps of the served program: mode 'host_graph'.

The image is written into one fixed pinned host buffer; the program's first step copies it to the device and
its last copies the result, then a sequence word, to a second fixed pinned host buffer. Both copies are XLA FFI
calls (graph_io.cc) that XLA records into the CUDA graph it launches for the program, where JAX's own
host-offload copies (mode 'host_staged') run as async copies outside the graph. The host learns that the result
is there either from the runtime ('block') or by polling the sequence word in host memory ('spin'), the way a
latency-bound server polls a completion flag instead of sleeping until the runtime's callback wakes it.

The handlers are C++ against the FFI headers that ship with jaxlib, built on first use with the machine's C++
compiler (`$CXX`, else `c++`) into a cache keyed by the source, the headers and the compiler, and registered
for the CPU (plain memcpy, which the tests use) and CUDA GPUs. On a GPU the copies are made one of two ways
(COPIES): 'memcpy', the CUDA driver's async copies, which the graph runs on its copy engines; or 'kernel', two
small kernels (PTX in graph_io.cc, compiled by the driver when first loaded) whose threads read and write the
pinned host memory themselves, so the graph holds kernels only.
"""
from __future__ import annotations

import ctypes
import functools
import hashlib
import math
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from dawnjax.errors import ConfigError
from dawnjax.inference.latency import PinnedArray

SOURCE = Path(__file__).with_name('graph_io.cc')
COPY_IN, COPY_OUT = 'dawnjax_copy_in', 'dawnjax_copy_out'
# The handlers' symbols in the built library, per JAX platform name.
SYMBOLS = {'cpu': ('DawnjaxCopyInCpu', 'DawnjaxCopyOutCpu'), 'cuda': ('DawnjaxCopyInCuda', 'DawnjaxCopyOutCuda')}
SEQ = np.dtype(np.uint32)  # the sequence word, first in the input buffer and last in the result buffer
# How the copies are made on a GPU (on a CPU both are a memcpy): 'memcpy' (the driver's async copies: copy-engine
# nodes in the graph) or 'kernel' (kernels that load and store the mapped pinned host memory: kernel nodes).
# 'kernel' by measurement on H200s: lower in 8 of 11 paired runs (CIFAR-10, ResNet-50, SQuAD) by 0.003-0.028 ms,
# higher in 3 by up to 0.026 (results/cifar10_jpeg/h200_2026-12-03_s19_copies): the device span loses the wait
# behind the copy engine (~27 us CIFAR-10, ~100 us ResNet-50), though the graph's first kernel then starts later.
COPIES = ('kernel', 'memcpy')
DEFAULT_COPIES = 'kernel'


def default_cache_dir() -> Path:
  return Path(os.environ.get('XDG_CACHE_HOME') or Path.home() / '.cache') / 'dawnjax' / 'ffi'


_built: dict[tuple[str, str], Path] = {}  # (cache dir, compiler) -> library, so a process keys the cache once


def build_library(cache_dir: Path | None = None, cxx: str | None = None) -> Path:
  """The handlers' shared library, built unless the cache holds one for this source, these headers and this
  compiler. A missing or failing compiler is a ConfigError naming it."""
  cxx = cxx or os.environ.get('CXX') or 'c++'
  cache_dir = Path(cache_dir or default_cache_dir())
  known = _built.get((str(cache_dir), cxx))
  if known is not None and known.exists():
    return known
  _built[(str(cache_dir), cxx)] = library = _build_library(cache_dir, cxx)
  return library


def _build_library(cache_dir: Path, cxx: str) -> Path:
  compiler = shutil.which(cxx)
  if compiler is None:
    raise ConfigError(f'--latency_modes=host_graph builds XLA FFI handlers with a C++ compiler: {cxx!r} was not '
                      f'found (set $CXX, or leave host_graph out)')
  include = Path(jax.ffi.include_dir())
  key = hashlib.sha256(SOURCE.read_bytes())
  for header in sorted((include / 'xla' / 'ffi' / 'api').glob('*.h')):
    key.update(header.read_bytes())
  version = subprocess.run([compiler, '--version'], capture_output=True, text=True).stdout
  key.update(f'{compiler}\n{version}'.encode())
  library = cache_dir / f'graph_io-{key.hexdigest()[:16]}.so'
  if library.exists():
    return library
  cache_dir.mkdir(parents=True, exist_ok=True)
  fd, partial = tempfile.mkstemp(dir=cache_dir, suffix='.so.partial')
  os.close(fd)
  command = [compiler, '-O2', '-std=c++17', '-shared', '-fPIC', '-isystem', str(include), str(SOURCE), '-o', partial,
             '-ldl']
  built = subprocess.run(command, capture_output=True, text=True)
  if built.returncode:
    os.unlink(partial)
    first = next((line for line in built.stderr.splitlines() if 'error' in line),
                 built.stderr.strip()[:200] or f'exit status {built.returncode}')
    raise ConfigError(f'--latency_modes=host_graph: building {SOURCE.name} with {cxx} failed: {first}')
  os.replace(partial, library)  # atomic: a concurrent build leaves one whole library
  return library


def platform_of(device) -> str:
  """The handlers' platform for `device` ('cpu' or 'cuda'); a ConfigError elsewhere."""
  if device.platform == 'cpu':
    return 'cpu'
  if device.platform == 'gpu' and 'cuda' in device.client.platform_version.lower():
    return 'cuda'
  raise ConfigError(f'--latency_modes=host_graph runs on CPUs and CUDA GPUs, not {device.device_kind}; '
                    f'leave it out')


def unavailable(device, cache_dir: Path | None = None) -> str | None:
  """Why host_graph cannot run on `device` (no handlers for its platform; no C++ compiler, or a failed build,
  which this tries), or None."""
  try:
    platform_of(device)
    build_library(cache_dir)
  except ConfigError as err:
    return str(err)
  return None


_registered: set[str] = set()  # the FFI registry is per process, so this record of it is too
_library: list[ctypes.CDLL] = []  # the loaded handlers' library, once registered


def register(platform: str, cache_dir: Path | None = None) -> float:
  """Builds (or finds) the library and registers its handlers for `platform`, once per process; returns the
  seconds this call spent doing so."""
  if platform in _registered:
    return 0.0
  start = time.perf_counter()
  library = ctypes.cdll.LoadLibrary(str(build_library(cache_dir)))
  _library[:] = [library]
  for target, symbol in zip((COPY_IN, COPY_OUT), SYMBOLS[platform]):
    jax.ffi.register_ffi_target(target, jax.ffi.pycapsule(getattr(library, symbol)),
                                platform='CUDA' if platform == 'cuda' else platform)
  _registered.add(platform)
  return time.perf_counter() - start


def load_copy_kernels(device) -> None:
  """Loads the 'kernel' copies' module into `device`'s CUDA context (once per context; register first). Loading
  a module is not allowed while XLA records the handlers into its graph, so it happens here, before any call."""
  log = ctypes.create_string_buffer(4096)
  rc = _library[0].DawnjaxGraphIoLoadKernels(ctypes.c_int(device.local_hardware_id), log, ctypes.c_size_t(len(log)))
  if rc:
    detail = log.value.decode(errors='replace').strip().splitlines()
    raise ConfigError(f'--graph_io_copies=kernel: loading the copy kernels on {device.device_kind} failed '
                      f'(CUresult {rc}){": " + detail[0] if detail else ""}; use --graph_io_copies=memcpy')


def device_pointer(device, host_address: int) -> int:
  """The address at which `device`'s kernels reach pinned host memory at `host_address`."""
  out = ctypes.c_uint64()
  rc = _library[0].DawnjaxGraphIoDevicePointer(ctypes.c_int(device.local_hardware_id), ctypes.c_uint64(host_address),
                                               ctypes.byref(out))
  if rc:
    raise ConfigError(f'--graph_io_copies=kernel: pinned host memory at {host_address:#x} is not mapped into '
                      f'{device.device_kind} (CUresult {rc}); use --graph_io_copies=memcpy')
  return out.value


def _from_bytes(raw, dtype: np.dtype, shape):
  if dtype.itemsize == 1:
    return jax.lax.bitcast_convert_type(raw, dtype).reshape(shape)
  return jax.lax.bitcast_convert_type(raw.reshape(-1, dtype.itemsize), dtype).reshape(shape)


def _to_bytes(x):
  if x.dtype == jnp.bool_:
    x = x.astype(jnp.uint8)
  return jax.lax.bitcast_convert_type(x, jnp.uint8).reshape(-1)


class GraphIOProgram:
  """The served function's batch-1 program for mode 'host_graph', with its two pinned buffers.

  `serve(variables, item, wait)` makes one request (`variables` are ignored where the weights are compiled in):
  writes the item and a new sequence number into the input buffer, runs the program, waits for the sequence
  number to come back with the result (see the module's docstring) and returns a copy of the result. Calls must
  not overlap: the buffers are the program's, one request at a time. `copies`: COPIES."""

  def __init__(self, fn: Callable[[Any, Any], Any], variables: Any, item_shape, item_dtype, device,
               weights: str, pinned: jax.sharding.Sharding, copies: str = DEFAULT_COPIES):
    if copies not in COPIES:
      raise ConfigError(f'--graph_io_copies={copies}: expected one of {", ".join(COPIES)}')
    platform = platform_of(device)
    self.build_seconds = register(platform)  # the handlers built (or found) and registered
    self.copies = copies
    by_kernel = copies == 'kernel' and platform == 'cuda'
    if by_kernel:
      load_copy_kernels(device)
    item_dtype = np.dtype(item_dtype)
    item_shape = (1, *item_shape)
    spec = jax.ShapeDtypeStruct(item_shape, item_dtype)
    result = jax.eval_shape(fn, variables, spec)
    if not isinstance(result, jax.ShapeDtypeStruct):
      raise ConfigError('--latency_modes=host_graph serves functions that return one array')
    item_bytes = math.prod(item_shape) * item_dtype.itemsize
    result_bytes = math.prod(result.shape) * np.dtype(result.dtype).itemsize
    pad = -result_bytes % SEQ.itemsize  # the sequence word aligned
    self.input = PinnedArray(SEQ.itemsize + item_bytes, np.uint8, pinned)  # JAX never reads or writes them again
    self.output = PinnedArray(result_bytes + pad + SEQ.itemsize, np.uint8, pinned)
    self._item = self.input.typed(SEQ.itemsize, item_dtype, item_shape)
    self._sent = self.input.typed(0, SEQ, ())
    self._result = self.output.typed(0, result.dtype, result.shape)
    self._seen = ctypes.c_uint32.from_address(self.output.address + result_bytes + pad)
    self._seq = 0
    copy_in = jax.ffi.ffi_call(COPY_IN, jax.ShapeDtypeStruct((self.input.bytes.size,), np.uint8))
    src, dst = self.input.address, self.output.address
    if by_kernel:
      src, dst = device_pointer(device, src), device_pointer(device, dst)
    src, dst, tail, kernel = (np.int64(v) for v in (src, dst, SEQ.itemsize, by_kernel))

    def graph_io_program(v, token):
      raw = copy_in(src=src, kernel=kernel)
      y = fn(v, _from_bytes(raw[SEQ.itemsize:], item_dtype, item_shape))
      body = jnp.concatenate([_to_bytes(y), jnp.zeros(pad, jnp.uint8), raw[:SEQ.itemsize]])
      # The token is the program's only output, aliased to its donated input: the same buffer every call, so
      # XLA's command buffers see no new address (a new output address per call makes them update).
      copy_out = jax.ffi.ffi_call(COPY_OUT, jax.ShapeDtypeStruct(token.shape, token.dtype),
                                  input_output_aliases={1: 0})
      return copy_out(body, token, dst=dst, tail=tail, kernel=kernel)

    on_device = jax.sharding.SingleDeviceSharding(device)
    self._token = jax.device_put(np.zeros(1, np.int32), on_device)
    if weights == 'constants':  # bound by partial: compiled into the program
      compiled = jax.jit(functools.partial(graph_io_program, variables), donate_argnums=0).lower(self._token).compile()
      self._run = lambda _variables, token: compiled(token)
    else:
      self._run = jax.jit(graph_io_program, donate_argnums=1).lower(variables, self._token).compile()

  def serve(self, variables, item: np.ndarray, wait: str = 'block') -> np.ndarray:
    self._seq = self._seq % 0xFFFFFFFF + 1  # never 0, the buffer's initial value
    np.copyto(self._item, item)
    self._sent[...] = self._seq
    self._token = self._run(variables, self._token)
    if wait == 'spin':
      self._poll()
    else:
      self._token.block_until_ready()
      if self._seen.value != self._seq:
        raise RuntimeError(f'host_graph: request {self._seq} finished but its result did not reach host memory')
    return self._result.copy()

  def _poll(self, check_every: int = 1024):
    spins = 0
    while self._seen.value != self._seq:
      spins += 1
      # The runtime is asked now and then, so a failed program (which never writes the word) raises here.
      if spins % check_every == 0 and self._token.is_ready() and self._seen.value != self._seq:
        self._token.block_until_ready()
        raise RuntimeError(f'host_graph: request {self._seq} finished but its result did not reach host memory')
