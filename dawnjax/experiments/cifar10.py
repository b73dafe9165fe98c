"""CIFAR-10 time-to-accuracy: `python -m dawnjax.experiments.cifar10 --flagfile=experiments/cifar10/fast.flags`."""
from __future__ import annotations

import dataclasses

from absl import app, flags

from dawnjax.experiments import common

_START = common.process_start_time()

FLAGS = flags.FLAGS
common.define_common_flags()

def _define_recipe_flags() -> None:
  from dawnjax.workloads.cifar10_recipe import CifarRecipe
  defaults = CifarRecipe()
  helps = {
      'optimizer': "'sgd' (airbench94: SGD-Nesterov per-group rates + lookahead) or 'muon' (airbench94_muon).",
      'batch_size': 'Global batch size (split over all devices).',
      'epochs': 'Training epochs (fractional: the last epoch is partial).',
      'flip': "'alternating' (airbench), 'random' or 'none'.",
      'translate': 'Random translation in pixels, reflect padding.',
      'cutout': 'Cutout square size in pixels (0 = off).',
      'tta_level': 'Final evaluation: 0 none, 1 mirror, 2 mirror + translate.',
      'whiten_fast_tanh': ("The Pallas whitening kernel's tanh GELU through the GPU's tanh.approx.f32 "
                           'instruction (relative error ~2^-11, under a bf16 step except for near-zero outputs of '
                           'large negative inputs); needs --whiten_impl=pallas and --gelu_approximate. XLA (TPU) '
                           "and Pallas's CPU interpreter compute the exact form."),
      'loop_chunk': ('Steps the epoch program runs per host round trip: > 1 runs them as an inner loop of '
                     'that many steps whose trip count XLA knows, so the host does not read the loop '
                     'predicate back after every step (the leftover steps still do); 1 = every step. The '
                     'same steps in the same order.'),
      'tta_fraction': ('Selective TTA: the fraction of test images, least confident first, that get '
                       'the tta_level views (hiverge cifar10-speedrun uses 0.2); 1.0 = all.'),
      'bn_impl': ("BatchNorm + activation: 'flax' (nn.BatchNorm, autodiff backward) or 'fused' (same "
                  "forward and variables, two-pass hand-written backward; dawnjax/models/batchnorm.py)."),
      'whiten_impl': ("The whitening layer: 'conv' (a cuDNN convolution), 'elementwise' (the same sums "
                      'as multiply-adds of shifted slices, fused by XLA with the bias and the GELU; '
                      "models/airbench.PatchWhiten), 'matmul' (the same sums as one matmul of the 2x2 "
                      "patches, 12 values per pixel, by the kernel) or 'pallas' (the sums, the bias and the "
                      'GELU as one Pallas kernel on GPUs, XLA elsewhere; models/whiten_kernel.py). Model '
                      "FLOPs count convolutions and matmuls only, so 'elementwise' and 'pallas' leave out "
                      "the whitening\'s 2x2x3x24 multiply-adds: "
                      '~0.55 of ~710 MFLOP per training image, MFU understated by ~0.08%.'),
      'block1_conv1_impl': ("Block1's first conv (3x3, the 24 whitened channels in): 'conv' (nn.Conv), "
                            "'kw_folded' (its three horizontal taps gathered into 72 channels, then a 3x1 "
                            'conv: the same sums, one extra pass to write the gathered input; '
                            "models/airbench.KwFoldedConv) or 'padded_igemm' (the whitening pass writes 8 "
                            "zero channels after the 24, cuDNN's forward runs on 32, the filter gradient is "
                            'a Pallas implicit GEMM, per batch shard on several devices; '
                            "models/airbench.PaddedIgemmConv) or 'padded_igemm_pool' (the same, with the argmax "
                            "max-pool after it fused into the filter gradient's loads; needs --pool_impl=argmax; "
                            'measured slower). The same variables and model FLOPs (counted on nn.Conv) in each.'),
      'tta_weighting': ("Weights of the TTA views: 'airbench' (1/4 image, 1/4 mirror, 1/8 each translated "
                        "view) or 'equal' (1/6 each, hiverge)."),
      'widths': 'Channel widths of the three conv groups.',
      'whiten': 'Data-whitening first layer (fixed, from patch covariance).',
      'whiten_bias_epochs': 'Epochs during which the whitening layer\'s bias trains; frozen after.',
      'prune_frozen_grads': ('Steps after --whiten_bias_epochs run a second compiled program that does not '
                             'differentiate the frozen whitening layer (no block1 input gradient, no bias '
                             'reduction), as hiverge turns off requires_grad; off: one program.'),
      'dtype': "Compute dtype ('bfloat16' or 'float32'); BatchNorm statistics stay fp32.",
      'logit_scale': "Logit multiplier (default: the optimizer recipe's own).",
      'activation': ("Nonlinearity of the conv blocks: 'gelu' (airbench; --gelu_approximate for the tanh "
                     "form) or 'silu' (hiverge). The one after the whitening layer is always GELU."),
      'muon_norm_every': ('Muon: rescale each filter bank to norm sqrt(cout) only on steps N, 2N, ... '
                          '(1-based, as hiverge, which uses 8); 1 = every step (airbench94_muon).'),
      'muon_filter_weight_decay': ('Muon: decoupled decay of the filters after each step, per example in '
                                   'the batch like --muon_weight_decay: p *= 1 - lr_t * this * batch_size, '
                                   'lr_t the scheduled --muon_lr (hiverge: 1.0418e-06; 0 = off).'),
      'ns_coefficients': ('Muon: quintic Newton-Schulz coefficients a,b,c (default Keller Jordan\'s; '
                          'hiverge: 3.4576,-4.7391,2.0843).'),
      'sgd_momentum': ('Muon recipe: Nesterov momentum of the SGD groups (head, whitening bias, '
                       'BatchNorm biases); airbench94_muon 0.85, hiverge 0.825.'),
      'brightness': ('Colour jitter: add U(-1,1) * this to each normalised image (one draw per image '
                     'and step; hiverge: 0.1399; 0 = off).'),
      'contrast': ('Colour jitter: then multiply each normalised image by 1 + U(-1,1) * this '
                   '(hiverge: 0.1308; 0 = off).'),
  }
  for field in dataclasses.fields(CifarRecipe):
    name, default = field.name, getattr(defaults, field.name)
    text = helps.get(name, f'Recipe field {name}.')
    if isinstance(default, bool):
      flags.DEFINE_bool(name, default, text)
    elif isinstance(default, int):
      flags.DEFINE_integer(name, default, text)
    elif isinstance(default, float) or (default is None and name == 'logit_scale'):
      flags.DEFINE_float(name, default, text)
    elif isinstance(default, str):
      flags.DEFINE_string(name, default, text)
    elif isinstance(default, (tuple, list)):
      flags.DEFINE_list(name, [str(v) for v in default], text)


_define_recipe_flags()
flags.DEFINE_integer('train_subset', None, 'Use only the first N training images (tests, debugging).')
flags.DEFINE_integer('test_subset', None, 'Use only the first N test images (tests, debugging).')
flags.DEFINE_bool('overlap_upload', False, 'Upload the data to the devices on a thread while the programs compile '
                  'or load from the executable cache; the wait left after them counts as data-load seconds. Off: '
                  'on an H200, warm starts (8 + 8 processes) lost 0.21 s of data time and gained 0.16 s of program '
                  'loading, wall -0.04 s after start-up (predicted -0.1..-0.2; kernels/h100_cifar_next.sh overlap29).')
flags.DEFINE_bool('warm_up', True, 'Execute init, the first epoch of each epoch program and the evaluations once on a throwaway seed '
                  'before seed 0, counted as compile seconds (first-execution costs: module load, '
                  'cuDNN plans; ~0.25 s on an H100), as the published speedruns exclude their warm-up run.')


def recipe_from_flags():
  from dawnjax.workloads.cifar10_recipe import CifarRecipe, recipe_from_config
  return recipe_from_config({field.name: FLAGS[field.name].value for field in dataclasses.fields(CifarRecipe)})


def run() -> int:
  from dawnjax.errors import ConfigError
  if not FLAGS.data_dir:
    raise ConfigError('--data_dir is required: a CIFAR-10 folder or archive (python-pickle, binary, '
                      'class-folder images, or a TFDS data dir)')
  common.require_output_dir()
  common.configure_jax()
  from dawnjax import parallel
  from dawnjax.data.cifar10 import load_cifar10
  from dawnjax.experiments import runner
  from dawnjax.workloads.cifar10 import Cifar10Workload

  parallel.maybe_initialize_distributed()
  mesh = parallel.make_mesh(FLAGS.num_devices)
  cache_dir = common.default_cache_dir(FLAGS.data_dir)
  workload = Cifar10Workload(
      recipe_from_flags(), mesh, target=FLAGS.target, train_subset=FLAGS.train_subset,
      test_subset=FLAGS.test_subset, warm_up=FLAGS.warm_up, overlap_upload=FLAGS.overlap_upload,
      data_loader=lambda: load_cifar10(FLAGS.data_dir, cache_dir=cache_dir, download=FLAGS.download))
  runner.run_workload(workload, mesh, start_time=_START)
  return 0


def main() -> None:
  app.run(common.main_guard(run))


if __name__ == '__main__':
  main()
