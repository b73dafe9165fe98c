"""The workload API: what a task must provide to the shared training loop.

A workload is data + model + target + evaluation (AlgoPerf's split). It never reads a clock:
`dawnjax.train.loop` owns timing, so every task is timed the same way. Every method that
launches device work may return before the work is done; the loop synchronises.
"""
from __future__ import annotations

import abc
import dataclasses
from typing import Any, Callable, Mapping


@dataclasses.dataclass(frozen=True)
class Target:
  """The quality bar for time-to-accuracy, e.g. top1Accuracy >= 94.0 (percent)."""
  metric: str
  threshold: float
  higher_is_better: bool = True

  def reached(self, value: float) -> bool:
    return value >= self.threshold if self.higher_is_better else value <= self.threshold


@dataclasses.dataclass(frozen=True)
class FlopCounts:
  """Model FLOPs from XLA's cost analysis of the compiled programs (0 where unknown)."""
  train_per_example: float = 0.0
  eval_per_example: float = 0.0


class Workload(abc.ABC):
  """One benchmark task. Subclasses are configured explicitly through their constructor."""

  #: DAWNBench task family: selects the TSV columns ('cifar10', 'imagenet', 'squad').
  task: str
  #: Name under which results are reported, e.g. 'cifar10_jpeg' (never the official name for a copy).
  dataset_name: str
  #: Human-readable model name for the DAWNBench JSON.
  model_name: str
  target: Target

  @abc.abstractmethod
  def load_data(self) -> None:
    """Reads/prepares the dataset and places what belongs on device there (timed as data load)."""

  @abc.abstractmethod
  def compile(self, *, epoch_evals: bool = True) -> FlopCounts:
    """Ahead-of-time compiles every program the run executes (timed as compile). `epoch_evals`:
    whether the untimed per-epoch `evaluate(final=False)` will run; when it will not, a workload
    whose per-epoch evaluation is a program of its own may skip compiling it."""

  def program_fingerprint(self, *, epoch_evals: bool = True) -> dict[str, Any] | None:
    """What, besides dawnjax's code and the software/XLA environment, decides the programs that
    `compile` builds (recipe, data shapes, mesh), for `dawnjax.train.executable_cache`. Called
    after `load_data`. None (the default): this workload's programs are not cached."""
    del epoch_evals
    return None

  def compiled_programs(self) -> dict[str, Any]:
    """Name -> the `jax.stages.Compiled` programs `compile` built (where program_fingerprint is set)."""
    raise NotImplementedError

  def restore_programs(self, programs: dict[str, Any]) -> None:
    """Takes programs from `compiled_programs` of an earlier process instead of compiling."""
    raise NotImplementedError

  @abc.abstractmethod
  def init(self, seed: int) -> Any:
    """Returns a fresh training state for `seed` (inside the timed region: it may use data)."""

  @property
  @abc.abstractmethod
  def num_epochs(self) -> int:
    """Number of epoch boundaries; the last epoch may be partial."""

  @abc.abstractmethod
  def train_examples(self, epoch: int) -> int:
    """Training examples processed in `epoch` (for throughput and MFU)."""

  def train_steps(self, epoch: int) -> int:
    """Optimizer steps in `epoch` (0-based); maps --profile_steps onto epochs."""
    raise NotImplementedError(f'{type(self).__name__} does not report steps per epoch')

  @abc.abstractmethod
  def train_epoch(self, state: Any, epoch: int) -> tuple[Any, Mapping[str, Any]]:
    """Runs one epoch; returns the new state and device-side training scalars (e.g. loss)."""

  @abc.abstractmethod
  def evaluate(self, state: Any, *, final: bool) -> dict[str, float]:
    """Returns host floats keyed by metric name. `final` selects the reported protocol (e.g. TTA)."""

  def eval_examples(self) -> int:
    """Examples in one evaluation pass (for the eval share of MFU)."""
    return 0

  def describe(self) -> dict[str, Any]:
    """Configuration recorded in the summary JSON."""
    return {}

  def wait_for_data(self) -> None:
    """Optional: block until data that `load_data` left uploading in the background is on the devices.
    The loop calls it after compiling (or loading the programs), and counts the wait as data time."""

  def warm_up(self) -> None:
    """Optional: execute the compiled programs once on throwaway state, off the clock.

    The first execution of a program pays one-off costs (module load, cuDNN/cuBLAS handles and
    plans); with a warm compilation cache nothing else has paid them yet, so the first seed's first
    epoch ran ~0.23 s slower on an H100. The loop counts this in compile seconds, as the
    published speedruns exclude their warm-up run. Worth it only where an epoch is short."""

  def schedule_scalars(self, epoch: int) -> dict[str, float]:
    """Host floats describing the optimizer schedule after `epoch` (0-based), e.g. the learning
    rate, for TensorBoard. Must not touch the device: it runs between timed epochs."""
    return {}

  def inference_model(self, state: Any) -> tuple[Callable[[Any, Any], Any], Any, dict[str, Any]]:
    """(apply_fn, variables, info) to serve the trained `state`; optional (NotImplementedError).

    apply_fn(variables, inputs) -> logits takes what a client sends (uint8 images for vision
    tasks), so preprocessing is part of the served model, and one call per item: any test-time
    augmentation the reported accuracy used is batched inside that call (CIFAR-10 serves its
    TTA views as one forward pass), so latency and accuracy describe one model. `variables` is the pytree to
    save. `info` is JSON-able and rebuilds apply_fn without data: 'task', 'dataset', 'model',
    'model_config' (the recipe), 'input' ({'shape': per-item shape, 'dtype'}), 'target'
    ({'metric', 'threshold'}).
    """
    raise NotImplementedError(f'{type(self).__name__} does not provide an inference model yet')
