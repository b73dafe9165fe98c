"""ImageNet time-to-accuracy (93% top-5): `python -m dawnjax.experiments.imagenet --flagfile=...`.

Recipes are flagfiles under experiments/imagenet/ (see its README for sources and expected
epochs). Examples:
  python -m dawnjax.experiments.imagenet --flagfile=experiments/imagenet/mlperf_lars_resnet50.flags \
      --data_dir=/data/imagenet --num_workers=15 --output_dir=/tmp/runs/mlperf
  python -m dawnjax.experiments.imagenet --flagfile=experiments/imagenet/synthetic_resnet50.flags \
      --output_dir=/tmp/runs/synthetic
"""
from __future__ import annotations

import dataclasses

from absl import app, flags

from dawnjax.experiments import common

_START = common.process_start_time()

FLAGS = flags.FLAGS

_HELP = {
    'model': 'resnet18, resnet26, resnet34, resnet50, resnet101 or resnet152 (v1.5).',
    'width': 'Channels of the first stage (64 for the standard ResNets).',
    'dtype': "Compute dtype ('bfloat16', 'float32'); parameters and BatchNorm statistics stay fp32.",
    'ghost_batch_size': 'BatchNorm statistics over groups of this many images (MLPerf bn_span); '
                        '0 = over the global batch.',
    'space_to_depth': 'Stem on a 2x2 space-to-depth input (4x4 conv; for TPUs).',
    'bn_impl': "BatchNorm: 'flax' (autodiff backward) or 'fused' (BatchNorm + ReLU with a hand-written "
               'two-pass backward, same variables; dawnjax/models/batchnorm.py).',
    'pool_impl': "Stem max-pool: 'window' (flax; XLA's select-and-scatter backward) or 'argmax' (same values "
                 'and gradient, the backward as one fused pass; dawnjax/models/resnet.py).',
    'num_classes': 'Classifier outputs (0: the number of class folders).',
    'epochs': 'Training epochs.',
    'stages': 'Progressive resizing: start_epoch:image_size:global_batch[:min_scale], ... '
              '(first at epoch 0).',
    'min_scale': 'Random-resized-crop minimum area fraction (unless a stage sets its own).',
    'eval_size': 'Evaluation image size (0: the current training stage size).',
    'eval_crop_ratio': 'Evaluation centre crop / resized shorter side (0.875 = 224 of 256).',
    'eval_batch_size': 'Global evaluation batch (the last batch is padded and masked).',
    'optimizer': "'sgd' (momentum; --nesterov) or 'lars'.",
    'lr': 'Peak learning rate at --lr_reference_batch images per step.',
    'lr_reference_batch': 'Batch size --lr refers to; each stage scales it linearly to its batch.',
    'weight_decay': 'L2 weight decay (never on BatchNorm parameters or biases).',
    'warmup_epochs': 'Linear warm-up length in epochs.',
    'warmup_start': 'Learning rate at step 0 as a fraction of the peak.',
    'schedule': "'cosine', 'polynomial' or 'step' decay after warm-up.",
    'end_lr_factor': 'Final learning rate of cosine/polynomial decay as a fraction of the peak.',
    'decay_epochs': "'step' schedule: epochs at which the rate is multiplied by --decay_factors.",
    'decay_factors': "'step' schedule: one factor for all --decay_epochs, or one each.",
}


def _define_recipe_flags() -> None:
  from dawnjax.workloads.imagenet import ImageNetRecipe
  defaults = ImageNetRecipe()
  for field in dataclasses.fields(ImageNetRecipe):
    name, default = field.name, getattr(defaults, field.name)
    text = _HELP.get(name, f'Recipe field {name}.')
    if isinstance(default, bool):
      flags.DEFINE_bool(name, default, text)
    elif isinstance(default, int):
      flags.DEFINE_integer(name, default, text)
    elif isinstance(default, float):
      flags.DEFINE_float(name, default, text)
    elif isinstance(default, str):
      flags.DEFINE_string(name, default, text)
    else:
      flags.DEFINE_list(name, [str(v) for v in default], text)


def _define_flags() -> None:
  common.define_common_flags()
  _define_recipe_flags()
  flags.DEFINE_enum('dataset', 'auto', ['auto', 'tree', 'tfds', 'synthetic'],
                    "'tree': class-folder JPEG tree (folder or .tar/.tar.gz); 'tfds': TFDS imagenet2012 "
                    "(array_record); 'synthetic': device-resident random batches (the model alone); "
                    "'auto': tfds if --data_dir holds imagenet2012/, else tree.")
  flags.DEFINE_integer('num_workers', None, 'Host JPEG-decoding processes (default: CPU cores - 1).')
  flags.DEFINE_integer('prefetch', 2, 'Batches kept on device ahead of the step.')
  flags.DEFINE_integer('host_slots', 3, 'Batches decoding at once on the host.')
  flags.DEFINE_string('buffer_dir', None, 'Shared batch buffers (default: /dev/shm if it has room, '
                      'else the temp dir).')
  flags.DEFINE_integer('train_subset', None, 'Use a fixed random sample of N training images.')
  flags.DEFINE_integer('eval_subset', None, 'Use a fixed random sample of N validation images.')
  flags.DEFINE_enum('target_metric', 'top5Accuracy', ['top5Accuracy', 'top1Accuracy'],
                    'Metric of the time-to-accuracy target (DAWNBench: top5Accuracy >= 93).')
  flags.DEFINE_integer('synthetic_train_examples', 1281167, '--dataset=synthetic: images per epoch.')
  flags.DEFINE_integer('synthetic_eval_examples', 50000, '--dataset=synthetic: evaluation images.')


# Decoding workers are spawned processes, which re-run this module as '__mp_main__': they need
# neither the flags nor the JAX/Flax imports that defining them pulls in.
if __name__ != '__mp_main__':
  _define_flags()


def recipe_from_flags():
  from dawnjax.workloads.imagenet import ImageNetRecipe
  values = {}
  for field in dataclasses.fields(ImageNetRecipe):
    value = FLAGS[field.name].value
    if field.name in ('decay_epochs', 'decay_factors'):
      value = tuple(float(v) for v in value)
    elif field.name == 'stages':
      value = tuple(value)
    values[field.name] = value
  return ImageNetRecipe(**values)


def data_config_from_flags():
  from dawnjax.data.image_decode import default_decode_workers
  from dawnjax.workloads.imagenet import DataConfig
  return DataConfig(
      dataset=FLAGS.dataset, data_dir=FLAGS.data_dir, num_workers=default_decode_workers(FLAGS.num_workers),
      prefetch=FLAGS.prefetch,
      slots=FLAGS.host_slots, buffer_dir=FLAGS.buffer_dir, train_subset=FLAGS.train_subset,
      eval_subset=FLAGS.eval_subset, synthetic_train_examples=FLAGS.synthetic_train_examples,
      synthetic_eval_examples=FLAGS.synthetic_eval_examples,
      synthetic_classes=FLAGS.num_classes or 1000)


def run() -> int:
  from dawnjax.errors import ConfigError
  if FLAGS.dataset != 'synthetic' and not FLAGS.data_dir:
    raise ConfigError('--data_dir is required: a class-folder JPEG tree (folder or .tar/.tar.gz) or '
                      'a TFDS data dir; or pass --dataset=synthetic')
  common.require_output_dir()
  common.configure_jax()
  from dawnjax import parallel
  from dawnjax.experiments import runner
  from dawnjax.workloads.imagenet import ImageNetWorkload

  parallel.maybe_initialize_distributed()
  mesh = parallel.make_mesh(FLAGS.num_devices)
  workload = ImageNetWorkload(recipe_from_flags(), mesh, data_config_from_flags(),
                              target=FLAGS.target, target_metric=FLAGS.target_metric)
  try:
    runner.run_workload(workload, mesh, start_time=_START)
  finally:
    workload.close()
  return 0


def main() -> None:
  app.run(common.main_guard(run))


if __name__ == '__main__':
  main()
