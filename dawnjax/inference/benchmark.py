"""Benchmarks one served function (native jit or exported artifact) on a test set: latency per input
mode, accuracy from the same calls, and throughput at a large batch. Returns plain dicts."""
from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import numpy as np

from dawnjax.inference import latency


@dataclasses.dataclass(frozen=True)
class BenchConfig:
  warmup: int = 100  # batch-1 calls before each timed pass, excluded from the statistics
  modes: tuple[str, ...] = ()  # the first is the reported DAWNBench latency; () = latency.default_modes(device)
  throughput_batch: int = 1024  # 0 skips the throughput measurement
  throughput_passes: int = 3
  bound_items: int = 1000  # items of the what-bounds-latency breakdown (latency.time_bounds); 0 skips
  weights: str = 'auto'  # latency.WEIGHTS: compiled into the executables, passed per call, or by size
  wait: str = latency.DEFAULT_WAIT  # latency.WAITS: how a timed call waits for its result
  graph_io_copies: str | None = None  # graph_io.COPIES: how host_graph's program copies (None: its default)

  def validate(self) -> None:
    from dawnjax.errors import ConfigError
    if self.warmup < 0 or self.throughput_batch < 0 or self.throughput_passes < 1 or self.bound_items < 0:
      raise ConfigError('--warmup, --throughput_batch and --bound_items must be >= 0, --throughput_passes >= 1')
    bad = [m for m in self.modes if m not in latency.MODES]
    if bad or len(set(self.modes)) != len(self.modes):
      raise ConfigError(f'--latency_modes={",".join(self.modes)}: expected some of {latency.MODES}, each once')
    if self.weights not in latency.WEIGHTS:
      raise ConfigError(f'--weights={self.weights}: expected one of {", ".join(latency.WEIGHTS)}')
    if self.wait not in latency.WAITS:
      raise ConfigError(f'--latency_wait={self.wait}: expected one of {", ".join(latency.WAITS)}')
    from dawnjax.inference import graph_io
    if self.graph_io_copies is not None and self.graph_io_copies not in graph_io.COPIES:
      raise ConfigError(f'--graph_io_copies={self.graph_io_copies}: expected one of {", ".join(graph_io.COPIES)}')


def benchmark(fn: Callable[[Any, Any], Any], variables: Any, images: np.ndarray, labels: np.ndarray | None,
              device, config: BenchConfig, *, score: Callable[[np.ndarray], float] | None = None,
              groups: np.ndarray | None = None,
              metrics: Callable[[np.ndarray], dict[str, float]] | None = None) -> tuple[dict[str, Any], np.ndarray]:
  """Returns (result dict, predictions of the first mode's pass).

  `score(predictions)` gives the accuracy (default: percent of predictions equal to `labels`);
  `groups` makes latency per group of items (see latency.latency_stats); `metrics(predictions)`
  adds named figures beside it (ImageNet: top-1 beside the scored top-5).
  """
  if score is None:
    score = lambda predictions: latency.accuracy_percent(predictions, labels)
  variables = jax.device_put(variables, device)
  item_shape, dtype = images.shape[1:], images.dtype
  weights = latency.resolve_weights(config.weights, variables)
  batch_1 = latency.BatchOnePrograms(fn, variables, item_shape, dtype, device, weights, config.graph_io_copies)
  # The throughput program's compile time joins the batch-1 programs' in this one dict.
  result: dict[str, Any] = {'compile_seconds': batch_1.compile_seconds, 'weights': weights, 'modes': {}}

  reference = None
  for mode in config.modes or latency.default_modes(device)[0]:
    run = latency.time_items(batch_1(latency.PROGRAM[mode]), variables, images, device, mode=mode,
                             warmup=config.warmup, wait=config.wait)
    if reference is None:
      reference = run.predictions
    result['modes'][mode] = {
        **latency.latency_stats(run.latencies_ms, groups),
        'accuracy': score(run.predictions),
        **({'metrics': metrics(run.predictions)} if metrics else {}),
        'predictions_differ_from_first_mode': _rows_differ(run.predictions, reference),
        'warmup': {'calls': int(run.warmup_ms.size), 'excluded': True,
                   'first_call_ms': float(run.warmup_ms[0]) if run.warmup_ms.size else None,
                   'mean_ms': float(run.warmup_ms.mean()) if run.warmup_ms.size else None},
    }
  if config.bound_items:
    result['bounds'] = latency.time_bounds(batch_1('device'), fn, variables, images, device, items=config.bound_items)
  if config.throughput_batch:
    many, compile_b = latency.compile_for(fn, variables, config.throughput_batch, item_shape, dtype, device,
                                          weights)
    result['compile_seconds'][f'batch_{config.throughput_batch}'] = compile_b
    tp = latency.time_throughput(many, variables, images, device, batch=config.throughput_batch,
                                 passes=config.throughput_passes)
    predictions = tp.pop('predictions')
    tp['accuracy'] = score(predictions)
    if metrics:
      tp['metrics'] = metrics(predictions)
    tp['predictions_differ_from_batch_1'] = _rows_differ(predictions, reference)
    result['throughput'] = tp
  return result, reference


def _rows_differ(a: np.ndarray, b: np.ndarray) -> int:
  """Items whose prediction rows differ (a class, or every column of a richer output)."""
  ne = np.asarray(a) != np.asarray(b)
  return int(np.sum(ne.reshape(ne.shape[0], -1).any(axis=1))) if ne.ndim else int(ne)
