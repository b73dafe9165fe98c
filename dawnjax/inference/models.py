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
    'squad': 'dawnjax.workloads.squad:inference_apply_from_config',
}
#: Tasks whose apply_fn returns logits, served as the argmax class; others serve apply_fn as is.
CLASSIFIERS = ('cifar10', 'imagenet')


def apply_fn_for(manifest: Mapping[str, Any]) -> Callable[[Any, Any], Any]:
  task = manifest['task']
  if task not in BUILDERS:
    raise ConfigError(f'no inference model builder for task {task!r}; known: {sorted(BUILDERS)}')
  module, name = BUILDERS[task].split(':')
  return getattr(importlib.import_module(module), name)(manifest['model_config'])


def classifier(apply_fn: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
  """What is served and timed: the predicted class (int32) per item, as a client would get it."""
  import jax.numpy as jnp

  def classify(variables, inputs):
    return jnp.argmax(apply_fn(variables, inputs), axis=-1).astype(jnp.int32)

  return classify


def served_fn(manifest: Mapping[str, Any]) -> Callable[[Any, Any], Any]:
  """What the benchmark times for this model: the class for classifiers, else apply_fn itself
  (e.g. SQuAD's per-window best span)."""
  apply_fn = apply_fn_for(manifest)
  return classifier(apply_fn) if manifest['task'] in CLASSIFIERS else apply_fn
