"""Rebuilds a task's served function from model.json, without data or the training state.

Each builder takes the manifest's `model_config` and returns apply_fn(variables, inputs) ->
logits; they are imported lazily so that loading one task never imports another task's code.
"""
from __future__ import annotations

import importlib
from typing import Any, Callable, Mapping

from dawnjax.errors import ConfigError

# task -> 'module:function' taking model_config.
BUILDERS = {
    'cifar10': 'dawnjax.workloads.cifar10:inference_apply_from_config',
    'imagenet': 'dawnjax.workloads.imagenet:inference_apply_from_config',
    'squad': 'dawnjax.workloads.squad:inference_apply_from_config',
}
#: Tasks whose apply_fn returns logits, served as their k best classes (k = 1: the argmax class);
#: others serve apply_fn as is. ImageNet is scored on top-5 (DAWNBench), so a request returns five.
CLASSIFIERS = {'cifar10': 1, 'imagenet': 5}


#: Tasks whose served function can fold each BatchNorm into the convolution before it (--fold_batchnorm).
FOLDS_BATCHNORM = ('imagenet',)


def wants_folding(task: str, fold_batchnorm: bool, explicit: bool = False) -> bool:
  """Whether to serve `task` folded: by default wherever its models can fold; asked for explicitly
  (`explicit`) for a task that cannot, apply_fn_for then raises a clear error."""
  return fold_batchnorm and (explicit or task in FOLDS_BATCHNORM)


def apply_fn_for(manifest: Mapping[str, Any], *, fold_batchnorm: bool = False) -> Callable[[Any, Any], Any]:
  task = manifest['task']
  if task not in BUILDERS:
    raise ConfigError(f'no inference model builder for task {task!r}; known: {sorted(BUILDERS)}')
  if fold_batchnorm and task not in FOLDS_BATCHNORM:
    raise ConfigError(f'--fold_batchnorm: only {", ".join(FOLDS_BATCHNORM)} models fold their BatchNorms')
  module, name = BUILDERS[task].split(':')
  builder = getattr(importlib.import_module(module), name)
  return builder(manifest['model_config'], fold_batchnorm=True) if fold_batchnorm else builder(manifest['model_config'])


def classifier(apply_fn: Callable[[Any, Any], Any], top_k: int = 1) -> Callable[[Any, Any], Any]:
  """What is served and timed, as a client would get it: the predicted class (int32 [batch]), or
  with top_k > 1 the k best classes, best first (int32 [batch, k])."""
  import jax
  import jax.numpy as jnp

  def classify(variables, inputs):
    logits = apply_fn(variables, inputs)
    if top_k == 1:
      return jnp.argmax(logits, axis=-1).astype(jnp.int32)
    return jax.lax.top_k(logits, min(top_k, logits.shape[-1]))[1].astype(jnp.int32)

  return classify


def output_description(task: str) -> str:
  """The served output as the exported artifact's manifest records it."""
  k = CLASSIFIERS.get(task, 1)
  return 'int32 predicted class per item' if k == 1 else f'int32 [{k}] best classes per item, best first'


def served_fn(manifest: Mapping[str, Any], *, fold_batchnorm: bool = False) -> Callable[[Any, Any], Any]:
  """What the benchmark times for this model: the class for classifiers, else apply_fn itself
  (e.g. SQuAD's per-window best span)."""
  apply_fn = apply_fn_for(manifest, fold_batchnorm=fold_batchnorm)
  task = manifest['task']
  return classifier(apply_fn, CLASSIFIERS[task]) if task in CLASSIFIERS else apply_fn
