"""The CIFAR-10 recipe: every choice a submission makes, as one frozen dataclass.

Kept apart from the workload (which imports Flax, optax and the model) so that the entry point
defines, parses and checks its flags before importing JAX at all: a mistyped flag or a missing
--data_dir is reported in ~0.1 s instead of after JAX's 1-2 s import.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Sequence

from dawnjax.errors import ConfigError
from dawnjax.recipe_choices import (ACTIVATIONS, BN_IMPLS, CONV1_IMPLS, NS_COEFFICIENTS, PADDED_CONV1_IMPLS,
                                    WHITEN_IMPLS)

TTA_WEIGHTINGS = ('airbench', 'equal')  # see workloads.cifar10.tta_view_list


@dataclasses.dataclass(frozen=True)
class CifarRecipe:
  """A submission for the CIFAR-10 workload (optimizer, schedule, augmentation, model size)."""
  optimizer: str = 'sgd'  # 'sgd' = airbench94, 'muon' = airbench94_muon
  batch_size: int = 1024
  epochs: float = 9.9
  label_smoothing: float = 0.2
  whiten_bias_epochs: float = 3.0
  # Steps after whiten_bias_epochs run a second compiled program that does not differentiate the
  # frozen whitening layer, so block1's first input gradient (the largest convolution backward)
  # and the bias reduction are never computed (hiverge turns off requires_grad). The epoch in
  # which the bias freezes runs as two dispatches. False: one program for every step, whose
  # whitening bias updates are zeroed.
  prune_frozen_grads: bool = True
  # Steps per host round trip in the epoch program: > 1 runs them as an inner loop with a compile-time
  # trip count, which XLA runs without reading its predicate back to the host after every step (a
  # ~50 us idle gap per step on an H200); the steps left over run one round trip each. 1 = one
  # round trip per step. The same steps in the same order either way.
  loop_chunk: int = 1
  # SGD (airbench94 units: lr and weight decay per 1024 examples, decoupled from momentum).
  lr: float = 11.5
  momentum: float = 0.85
  weight_decay: float = 0.0153
  bias_scaler: float = 64.0
  lookahead: bool = True
  # Muon (airbench94_muon).
  muon_lr: float = 0.24
  muon_momentum: float = 0.6
  bias_lr: float = 0.053
  head_lr: float = 0.67
  muon_weight_decay: float = 2e-6  # per example in the batch
  ns_steps: int = 3
  ns_coefficients: Sequence[float] = NS_COEFFICIENTS  # Newton-Schulz quintic (a, b, c)
  # Renormalise the filters to norm sqrt(cout) only on every Nth Muon step (hiverge: 8).
  muon_norm_every: int = 1
  # Decoupled decay of the filters after each Muon step, per example in the batch like
  # muon_weight_decay: p *= 1 - muon_lr(step) * muon_filter_weight_decay * batch_size.
  muon_filter_weight_decay: float = 0.0
  sgd_momentum: float = 0.85  # Nesterov momentum of the Muon recipe's SGD groups (head, biases)
  # Augmentation.
  flip: str = 'alternating'  # 'alternating' | 'random' | 'none'
  translate: int = 2
  cutout: int = 0
  # Colour jitter on the normalised image (hiverge), per image: x <- (x + U(-1, 1) * brightness)
  # * (1 + U(-1, 1) * contrast). Off when both are 0.
  brightness: float = 0.0
  contrast: float = 0.0
  # Evaluation: 0 = none, 1 = mirror, 2 = mirror + one-pixel translations (airbench).
  tta_level: int = 2
  # Selective TTA (hiverge cifar10-speedrun): only this fraction of the test set, the images the
  # plain forward pass is least confident about, gets the tta_level views; 1.0 = every image.
  tta_fraction: float = 1.0
  tta_weighting: str = 'airbench'  # TTA_WEIGHTINGS: 'airbench' (1/4, 1/4, 1/8 x 4) or 'equal' (hiverge)
  eval_batch_size: int = 2000
  # Model.
  widths: Sequence[int] = (64, 256, 256)
  whiten: bool = True
  whiten_images: int = 5000
  logit_scale: float | None = None  # None: the recipe's own (1/9 for sgd, 1/width for muon)
  head_unit_std: bool = False  # airbench94_muon rescales the head's initial weights to std 1
  bn_momentum: float = 0.6
  dtype: str = 'bfloat16'
  gelu_approximate: bool = False
  pool_impl: str = 'reshape'
  activation: str = 'gelu'  # the conv blocks' nonlinearity: 'gelu' | 'silu' (hiverge)
  bn_impl: str = 'flax'  # BN_IMPLS: 'fused' = BatchNorm + activation with a hand-written backward
  # WHITEN_IMPLS: 'elementwise' = the whitening conv as fused multiply-adds, 'pallas' = + GELU as one kernel
  whiten_impl: str = 'conv'
  # CONV1_IMPLS: 'kw_folded' = taps gathered into channels, 'padded_igemm' = Pallas filter gradient,
  # 'padded_igemm_pool' = the same with the argmax pool's backward in it
  block1_conv1_impl: str = 'conv'
  # The Pallas whitening kernel's tanh GELU through the GPU's tanh.approx.f32 (needs whiten_impl='pallas'
  # and gelu_approximate; XLA and the CPU interpreter keep the exact form).
  whiten_fast_tanh: bool = False

  def validate(self) -> None:
    if self.optimizer not in ('sgd', 'muon'):
      raise ConfigError(f"--optimizer={self.optimizer!r}: expected 'sgd' or 'muon'")
    if self.flip not in ('alternating', 'random', 'none'):
      raise ConfigError(f"--flip={self.flip!r}: expected 'alternating', 'random' or 'none'")
    if self.activation not in ACTIVATIONS:
      raise ConfigError(f'--activation={self.activation!r}: expected one of {", ".join(ACTIVATIONS)}')
    if self.bn_impl not in BN_IMPLS:
      raise ConfigError(f'--bn_impl={self.bn_impl!r}: expected one of {", ".join(BN_IMPLS)}')
    if self.whiten_impl not in WHITEN_IMPLS:
      raise ConfigError(f'--whiten_impl={self.whiten_impl!r}: expected one of {", ".join(WHITEN_IMPLS)}')
    if self.whiten_fast_tanh and not (self.whiten_impl == 'pallas' and self.gelu_approximate):
      raise ConfigError('--whiten_fast_tanh is the Pallas whitening kernel\'s tanh GELU: it needs --whiten_impl=pallas '
                        'and --gelu_approximate')
    if self.loop_chunk < 1:
      raise ConfigError(f'--loop_chunk={self.loop_chunk}: expected a number of steps >= 1')
    if self.block1_conv1_impl not in CONV1_IMPLS:
      raise ConfigError(f'--block1_conv1_impl={self.block1_conv1_impl!r}: expected one of {", ".join(CONV1_IMPLS)}')
    first = self.widths[0] if self.widths else 0
    if self.block1_conv1_impl in PADDED_CONV1_IMPLS and (first < 1 or first & (first - 1)):
      raise ConfigError(f"--block1_conv1_impl={self.block1_conv1_impl}: block1's width {first} (--widths) must be a "
                        'power of two for its Pallas kernel')
    if self.block1_conv1_impl == 'padded_igemm_pool' and self.pool_impl != 'argmax':
      raise ConfigError(f'--block1_conv1_impl=padded_igemm_pool fuses the argmax max-pool\'s backward: it needs '
                        f'--pool_impl=argmax, not {self.pool_impl!r}')
    if self.pool_impl not in ('reshape', 'window', 'argmax'):
      raise ConfigError(f"--pool_impl={self.pool_impl!r}: expected 'reshape', 'window' or 'argmax'")
    if self.tta_level not in (0, 1, 2):
      raise ConfigError(f'--tta_level={self.tta_level}: expected 0, 1 or 2')
    if self.tta_weighting not in TTA_WEIGHTINGS:
      raise ConfigError(f'--tta_weighting={self.tta_weighting!r}: expected one of {", ".join(TTA_WEIGHTINGS)}')
    if not 0.0 < self.tta_fraction <= 1.0:
      raise ConfigError(f'--tta_fraction={self.tta_fraction}: expected a fraction in (0, 1]')
    if self.epochs <= 0 or self.batch_size <= 0:
      raise ConfigError('--epochs and --batch_size must be positive')
    if self.translate < 0 or self.cutout < 0:
      raise ConfigError('--translate and --cutout must be >= 0')
    if self.brightness < 0 or self.contrast < 0:
      raise ConfigError('--brightness and --contrast must be >= 0')
    if self.muon_norm_every < 1:
      raise ConfigError(f'--muon_norm_every={self.muon_norm_every}: expected >= 1')
    if len(self.ns_coefficients) != 3:
      raise ConfigError(f'--ns_coefficients={",".join(map(str, self.ns_coefficients))}: expected 3 values a,b,c')


# Tuple fields and their element type (JSON and list flags hand them over as lists of str/numbers).
_SEQUENCE_FIELDS = {'widths': int, 'ns_coefficients': float}


def recipe_from_config(config: dict[str, Any]) -> CifarRecipe:
  """A recipe from its JSON form (dataclasses.asdict, as model.json stores it) or from flag values."""
  known = {f.name for f in dataclasses.fields(CifarRecipe)}
  unknown = sorted(set(config) - known)
  if unknown:
    raise ConfigError(f'model config has fields {unknown} that this CifarRecipe does not know; '
                      'was it written by a newer dawnjax?')
  values = dict(config)
  for name, cast in _SEQUENCE_FIELDS.items():
    if name in values:
      values[name] = tuple(cast(v) for v in values[name])
  return CifarRecipe(**values)
