"""DAWNBench inference: batch-1 latency, cost per item and accuracy of a trained, served model.

  python -m dawnjax.experiments.inference --task=cifar10 --checkpoint=RUN_DIR \
      --data_dir=DATA --output_dir=OUT
  python -m dawnjax.experiments.inference --task=cifar10 --exported=OUT/exported \
      --data_dir=DATA --output_dir=OUT2

--checkpoint (a training --output_dir or its model/) rebuilds the network from model.json and
benchmarks it ('native'), then writes the jax.export artifact to OUT/exported and benchmarks that
too ('exported'). --exported loads and runs only the artifact: no Flax, no model or training code.
The reported DAWNBench latency is the exported artifact's (the native one's when there is none)
mean over the whole test set in the first --latency_modes mode (default 'host_graph' where the device can run
it, else 'host_staged': image in host memory, label back in host memory). See dawnjax/inference/latency.py for
the protocol.

ImageNet (--task=imagenet): the validation split named by --data_dir (a class-folder tree or a TFDS
copy) is decoded, resized and centre-cropped on the host first, as the training run's evaluation
did, off the clock: a request is one such uint8 image (decoding is the client's work, as for the
other tasks' inputs). Each request returns the five best classes; the reported accuracy is top-5,
with top-1 beside it. Only the complete ILSVRC2012 validation split can qualify.
"""
from __future__ import annotations

import dataclasses
import datetime
import importlib.metadata
import os
import platform
from pathlib import Path
from typing import Any, Callable

from absl import app, flags

from dawnjax.experiments import common

FLAGS = flags.FLAGS
flags.DEFINE_string('task', 'cifar10', 'DAWNBench task of the model (selects the test-set reader).')
flags.DEFINE_string('checkpoint', None, 'Training --output_dir (holding model/) or a model directory.')
flags.DEFINE_string('exported', None, 'A jax.export artifact directory (written by a --checkpoint run).')
flags.DEFINE_string('data_dir', None, 'Dataset location, as for training.')
flags.DEFINE_string('cache_dir', None, 'Where prepared uint8 caches go (as for training).')
flags.DEFINE_integer('num_workers', None, 'ImageNet: processes decoding the validation images before any timing '
                     '(default: CPU cores - 1).')
flags.DEFINE_string('output_dir', None, 'Where the inference JSON, summary and exported artifact go.')
flags.DEFINE_integer('test_subset', None, 'Only N test images (tests/debugging; never a qualifying result).')
flags.DEFINE_integer('warmup', 100, 'Batch-1 calls before each timed pass (excluded, recorded).')
flags.DEFINE_list('latency_modes', [],
                  "Input modes, each once; the first is reported. A full request (image in host memory to label "
                  "in host memory): 'host_graph' (the image copied into one fixed pinned host buffer; the "
                  "program's own copy steps, inside its CUDA graph, move it to the device and the label, then a "
                  "sequence number, back to a fixed pinned host buffer; XLA FFI handlers built on first use with "
                  "the machine's C++ compiler; CPUs and CUDA GPUs), 'host_staged' (the same buffer, moved by "
                  "XLA's host-offload copies outside the graph), 'host_pinned' (a new pinned buffer per "
                  "request), 'host' (jax.device_put upload + compute + label download, three runtime "
                  "operations) or 'host_direct' (the numpy item handed to the compiled call). 'device': input "
                  "already on device, label left there. Default: host_graph,host_staged,host,device less what "
                  'the device cannot run (the summary says why). On H200s, CIFAR-10, polling: host_graph '
                  '0.075-0.128 ms, host_staged 0.12-0.31, device 0.20-0.47 '
                  '(results/cifar10_jpeg/h200_2026-12-0[23]_s1[89]_*).')
flags.DEFINE_integer('throughput_batch', 1024, 'Batch size of the throughput measurement (0: skip).')
flags.DEFINE_integer('throughput_passes', 3, 'Timed passes over the test set for throughput.')
flags.DEFINE_integer('bound_items', 1000, 'Items of the what-bounds-latency breakdown: synchronised vs '
                     'pipelined calls vs one in-program loop (0: skip).')
flags.DEFINE_enum('latency_wait', 'spin', ['block', 'spin'],
                  "How a timed call waits for its result: 'spin' (polling, as a latency-bound server busy-polls: "
                  "host_graph polls its sequence word in host memory, the other modes the result's readiness) or "
                  "'block' (the runtime's blocking wait, woken by its completion callback; host_graph 0.163-0.192 "
                  'ms instead of 0.095-0.097 on CIFAR-10 on one H200, the other modes alike either way; '
                  'kernels/latency_trace.py splits a call into launch, device and notice times).')
flags.DEFINE_enum('graph_io_copies', 'kernel', ['kernel', 'memcpy'],
                  "How host_graph's program copies the image in and the label out on a GPU (on a CPU both are a "
                  "memcpy): 'kernel', two small kernels that read and write the pinned host buffers directly "
                  "(kernel nodes only; their PTX is compiled by the driver when the program is built), or "
                  "'memcpy', the CUDA driver's async copies (copy-engine nodes in its CUDA graph). On H200s 'kernel' "
                  'was lower in 8 of 11 paired runs, by 0.003-0.028 ms (CIFAR-10 0.075-0.098 ms).')
flags.DEFINE_enum('weights', 'auto', ['auto', 'constants', 'arguments'],
                  "'constants': the weights are compiled into the executable and a call passes the input "
                  "alone, as an inference engine holds them (~0.1 ms less per call on an H200); "
                  "'arguments': the variables are passed with every call; 'auto': constants up to 256 MiB "
                  'of weights (ResNet-50: 0.5 ms less per call on an H200; larger ones make lowering slow), '
                  'else arguments.')
flags.DEFINE_bool('conv_command_buffers', True,
                  "Record cuDNN convolutions into XLA's command buffers (CUDA graphs) with the fusions around "
                  'them (--xla_gpu_enable_command_buffer=+CONVOLUTION, appended to $XLA_FLAGS before JAX '
                  'starts; no effect off GPU). A batch-1 CIFAR-10 call then launches one graph instead of '
                  'graphs split at each of its 6 convolutions. On an H200: host-mode mean 0.71-0.88 vs '
                  '0.90-1.31 ms, device work 0.075 vs 0.14-0.18 ms per request '
                  '(results/cifar10_jpeg/h200_2026-12-01_s9).')
flags.DEFINE_bool('fold_batchnorm', True,
                  'ImageNet ResNets (ignored for other tasks unless passed): fold each BatchNorm into the '
                  'convolution before it inside the served function, so that XLA runs conv + shift (+ residual) + '
                  'ReLU as one cuDNN call (all 53 of ResNet-50\'s). The same function up to rounding; the served '
                  'accuracy is measured on the folded model. On an H200, ResNet-50 at 224 px: host-mode latency '
                  '1.17-1.23 vs 1.25-1.53 ms, batch-256 throughput +25%; ResNet-18 at 64 px: device-mode latency '
                  '-0.01..-0.03 ms, host mode no gain (results/imagenet/h200_2026-12-02_s16_serve). With '
                  '--checkpoint only: an artifact keeps the form it was exported in.')
flags.DEFINE_bool('write_exported', True, 'With --checkpoint: write and benchmark the jax.export artifact.')
flags.DEFINE_list('export_platforms', [], "Platforms the artifact is lowered for, e.g. cuda,cpu "
                  '(default: this backend).')
flags.DEFINE_float('target', None, "Accuracy the served model must reach (default: the model's task target).")
flags.DEFINE_float('cost_per_hour', None, 'USD per hour of the device (default: dawnjax/prices.tsv).')
flags.DEFINE_string('author', 'dawnjax', 'Author field of the DAWNBench JSON.')
flags.DEFINE_string('author_email', 'dawnjax@users.noreply.github.com', 'authorEmail field.')
flags.DEFINE_string('notes', '', 'Free text recorded in the summary.')

SUMMARY = 'inference_summary.json'
EXPORTED_SUBDIR = 'exported'


def _versions() -> dict[str, str]:
  out = {'python': platform.python_version()}
  for name in ('jax', 'jaxlib', 'numpy', 'flax', 'orbax-checkpoint'):
    try:
      out[name] = importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
      pass
  return out


@dataclasses.dataclass(frozen=True)
class TestSet:
  """What the benchmark serves: items (one request each), how to score the predictions, and
  optionally which items form one timed unit (SQuAD: the windows of one question)."""
  name: str
  items: Any  # numpy array, one row per request
  labels: Any = None  # classifiers: the class per item
  score: Callable[[Any], float] | None = None  # None: percent of predictions equal to labels
  groups: Any = None  # unit index per item; latency is per unit (sum of its items)
  unit: str = 'image'
  subset: bool = False  # not the whole test set (besides --test_subset)
  metrics: Callable[[Any], dict[str, float]] | None = None  # named figures beside the score
  info: dict[str, Any] = dataclasses.field(default_factory=dict)  # how the items were made


def load_test_set(task: str, manifest: dict[str, Any] | None = None) -> TestSet:
  """The task's test split as served (subset as in training). SQuAD rebuilds its dev windows
  from the model's manifest (tokenizer, window sizes, dataset)."""
  from dawnjax.errors import ConfigError
  if task == 'squad':
    from dawnjax.workloads import squad
    if manifest is None or 'squad' not in (manifest.get('model_config') or {}):
      raise ConfigError('--task=squad: the model manifest lacks the SQuAD recipe (model_config.squad)')
    dev = squad.inference_eval_set(manifest['model_config'], FLAGS.data_dir, FLAGS.test_subset)
    return TestSet(dev.name, dev.items, score=dev.score, groups=dev.groups, unit='question',
                   subset=bool(manifest['model_config']['squad'].get('max_dev_questions')))
  if task == 'imagenet':
    return _imagenet_test_set(manifest or {})
  if task != 'cifar10':
    raise ConfigError(f'--task={task}: expected cifar10, imagenet or squad')
  return _cifar10_test_set()


def _cifar10_test_set() -> TestSet:
  import numpy as np
  from dawnjax.errors import ConfigError
  if not FLAGS.data_dir:
    raise ConfigError('--data_dir is required: the CIFAR-10 test set')
  from dawnjax.data.cifar10 import load_cifar10
  data = load_cifar10(FLAGS.data_dir, cache_dir=common.default_cache_dir(FLAGS.data_dir))
  images, labels = np.asarray(data.test_images), np.asarray(data.test_labels)
  if FLAGS.test_subset:
    # The same fixed sample as Cifar10Workload's --test_subset.
    keep = np.sort(np.random.default_rng(1).permutation(len(images))[:FLAGS.test_subset])
    images, labels = images[keep], labels[keep]
  return TestSet(data.name, np.ascontiguousarray(images), labels)


IMAGENET_VAL_IMAGES = 50000


def _imagenet_test_set(manifest: dict[str, Any]) -> TestSet:
  """The validation split, decoded and centre-cropped on the host before any timing, exactly as the
  training run's evaluation did (the size and crop ratio come from the model): a request is one
  such image. A model trained on synthetic data is served random images unless --data_dir is
  given (its latency, never a qualifying result)."""
  import time
  import numpy as np
  from dawnjax.data.image_decode import default_decode_workers
  from dawnjax.data.imagenet import pipeline, sources
  from dawnjax.data.imagenet.transforms import Crop
  from dawnjax.errors import ConfigError
  config = manifest.get('model_config') or {}
  shape = ((manifest.get('input') or {}).get('shape') or [])[-3:]  # an artifact's starts with batch 'b'
  if len(shape) != 3 or 'num_classes_resolved' not in config:
    raise ConfigError('--task=imagenet: the model manifest lacks its input shape or class count')
  size, classes = int(shape[0]), int(config['num_classes_resolved'])
  model_dataset = str(manifest.get('dataset', ''))
  if model_dataset.startswith('synthetic') and not FLAGS.data_dir:
    n = FLAGS.test_subset or IMAGENET_VAL_IMAGES
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)
    labels = rng.integers(0, classes, n).astype(np.int32)
    return _scored_top5(model_dataset, images, labels,
                        {'source': f'{n} random uint8 images of {size} px (the model was trained on synthetic '
                                   'data; pass --data_dir to serve real images)'})
  if not FLAGS.data_dir:
    raise ConfigError('--data_dir is required: the ImageNet validation split (a class-folder tree, '
                      'folder or .tar/.tar.gz, or a TFDS data dir holding imagenet2012/)')
  opened = sources.open_dataset('auto', FLAGS.data_dir)
  if opened.num_classes != classes:
    raise ConfigError(f'{FLAGS.data_dir} has {opened.num_classes} classes but the model has {classes}')
  ids = opened.val_ids()
  if FLAGS.test_subset:
    ids = np.sort(ids[np.random.default_rng(1).permutation(len(ids))[:FLAGS.test_subset]])
  crop = Crop(size, train=False, crop_ratio=float(config.get('eval_crop_ratio', Crop.crop_ratio)))
  workers = default_decode_workers(FLAGS.num_workers)
  stats = pipeline.PipelineStats()
  start = time.perf_counter()
  images, labels = sources.decode_rows(opened.reader, ids, crop, num_workers=workers, stats=stats)
  seconds = time.perf_counter() - start
  print(f'decoded {len(ids)} validation images to {size} px in {seconds:.1f} s on {workers} workers',
        flush=True)
  return _scored_top5(opened.name, images, labels,
                      {'source': opened.source, 'decode_seconds': seconds,
                       'preprocessing': ((manifest.get('input') or {}).get('preprocessing')
                                         or manifest.get('preprocessing')),
                       'host_pipeline': stats.as_dict(workers)})


def _scored_top5(name: str, images, labels, info: dict[str, Any]) -> TestSet:
  metrics = imagenet_metrics(labels)
  return TestSet(name, images, labels, score=lambda p: metrics(p)['top5Accuracy'], metrics=metrics, info=info)


def imagenet_metrics(labels):
  """metrics(predictions [n, k] best first) -> top-1 and top-k accuracy in percent."""
  import numpy as np
  labels = np.asarray(labels)

  def metrics(predictions) -> dict[str, float]:
    best = np.asarray(predictions).reshape(len(labels), -1)
    return {'top1Accuracy': 100.0 * float(np.mean(best[:, 0] == labels)),
            'top5Accuracy': 100.0 * float(np.mean(np.any(best[:, :5] == labels[:, None], axis=1)))}

  return metrics


def _artifact_metadata(manifest: dict[str, Any], checkpoint: Path, batchnorm_folded: bool) -> dict[str, Any]:
  keys = ('task', 'dataset', 'model', 'target', 'accuracy', 'model_config')
  return {**{k: manifest.get(k) for k in keys}, 'protocol': served_protocol(manifest),
          'preprocessing': (manifest.get('input') or {}).get('preprocessing'),
          'batchnorm_folded': batchnorm_folded, 'source_checkpoint': str(checkpoint)}


def served_protocol(manifest: dict[str, Any]) -> str:
  """What one request computes (e.g. CIFAR-10's test-time augmentation views), as the training
  run recorded it: model.json keeps it in meta, an exported artifact at the top level."""
  return (manifest.get('meta') or {}).get('protocol') or manifest.get('protocol') or 'not recorded with the model'


#: The test set a task's result must be measured on, where other datasets can serve its models.
TASK_DATASETS = {'imagenet': 'imagenet'}


def qualification(accuracy: float, threshold: float, *, subset: bool, dataset: str,
                  model_dataset: str, task: str = '') -> tuple[bool, list[str]]:
  """DAWNBench counts an inference result only at the task's accuracy on its whole test set."""
  reasons = []
  if accuracy < threshold:
    reasons.append(f'accuracy {accuracy:.2f} < target {threshold:g}')
  if subset:
    reasons.append('--test_subset: not the whole test set')
  if dataset != model_dataset:
    reasons.append(f'evaluated on {dataset}, trained on {model_dataset}')
  if dataset.startswith('synthetic'):
    reasons.append(f'{dataset} is generated data, not the task\'s test set')
  elif task in TASK_DATASETS and dataset != TASK_DATASETS[task]:
    reasons.append(f'{dataset} is not the {task} test set')
  return not reasons, reasons


CONV_COMMAND_BUFFERS = '--xla_gpu_enable_command_buffer=+CONVOLUTION'


def serving_xla_flags(env: str, conv_command_buffers: bool) -> str:
  """$XLA_FLAGS for the served executables (the added flag last, so that it wins)."""
  return common.merged_xla_flags(env, CONV_COMMAND_BUFFERS if conv_command_buffers else '', None)


def run() -> int:
  from dawnjax.errors import ConfigError, TargetNotReached
  if bool(FLAGS.checkpoint) == bool(FLAGS.exported):
    raise ConfigError('pass exactly one of --checkpoint (a trained model) or --exported (an artifact)')
  if FLAGS.exported and FLAGS['fold_batchnorm'].present:
    raise ConfigError('--fold_batchnorm applies to --checkpoint: an exported artifact keeps the form it was '
                      'exported in (its artifact.json says which)')
  if not FLAGS.output_dir:
    raise ConfigError('--output_dir is required')
  os.environ['XLA_FLAGS'] = serving_xla_flags(os.environ.get('XLA_FLAGS', ''), FLAGS.conv_command_buffers)
  import jax
  import numpy as np
  from dawnjax import cost, hardware
  from dawnjax.inference import artifact, latency
  from dawnjax.inference.benchmark import BenchConfig, benchmark
  from dawnjax.report import atomic, dawnbench, summary as summary_lib

  out = Path(FLAGS.output_dir)
  try:
    out.mkdir(parents=True, exist_ok=True)
  except OSError as err:
    raise ConfigError(f'--output_dir={out} is not writable: {err.strerror or err}') from err
  config = BenchConfig(warmup=FLAGS.warmup, modes=tuple(FLAGS.latency_modes),
                       throughput_batch=FLAGS.throughput_batch, throughput_passes=FLAGS.throughput_passes,
                       bound_items=FLAGS.bound_items, weights=FLAGS.weights, wait=FLAGS.latency_wait,
                       graph_io_copies=FLAGS.graph_io_copies)
  config.validate()
  device = jax.devices()[0]
  modes_left_out = []
  if not config.modes:
    modes, modes_left_out = latency.default_modes(device)
    config = dataclasses.replace(config, modes=modes)
    for reason in modes_left_out:
      print(f'default --latency_modes: left out: {reason}', flush=True)
  fold = False  # an artifact keeps its form (and --exported imports no model code)
  # The model first: SQuAD's test windows depend on its tokenizer and window sizes.
  if FLAGS.checkpoint:
    from dawnjax.inference import export, models
    fold = models.wants_folding(FLAGS.task, FLAGS.fold_batchnorm, explicit=FLAGS['fold_batchnorm'].present)
    saved = export.load_model(FLAGS.checkpoint)
    info = saved.manifest
    if info['task'] != FLAGS.task:
      raise ConfigError(f"--task={FLAGS.task} but the model in {saved.directory} is for {info['task']}")
  else:
    art = artifact.load_artifact(FLAGS.exported)
    info = art.manifest
    if info.get('task') != FLAGS.task:
      raise ConfigError(f"--task={FLAGS.task} but the artifact {FLAGS.exported} is for {info.get('task')}")
  test = load_test_set(FLAGS.task, info)
  dataset, images = test.name, test.items
  units = len(set(test.groups.tolist())) if test.groups is not None else len(images)
  print(f'{dataset}: {units} test {test.unit}s ({len(images)} requests); device {device.device_kind}',
        flush=True)

  def bench(fn, variables):
    return benchmark(fn, variables, images, test.labels, device, config, score=test.score,
                     groups=test.groups, metrics=test.metrics)

  paths: dict[str, dict[str, Any]] = {}
  exported_skipped = None
  predictions: dict[str, np.ndarray] = {}
  if FLAGS.checkpoint:
    classify = models.served_fn(info, fold_batchnorm=fold)
    model_dir = str(saved.directory)
    paths['native'], predictions['native'] = bench(classify, saved.variables)
    if FLAGS.write_exported:
      try:
        art_dir = artifact.export_classifier(
            classify, saved.variables, out / EXPORTED_SUBDIR, item_shape=images.shape[1:],
            item_dtype=images.dtype, metadata=_artifact_metadata(info, saved.directory, fold),
            platforms=tuple(FLAGS.export_platforms) or None,
            output=info.get('meta', {}).get('output') or models.output_description(FLAGS.task))
      except ConfigError as err:  # e.g. flatbuffers missing: the native result still stands
        exported_skipped = str(err)
        print(f'exported artifact skipped: {err}', flush=True)
      else:
        art = artifact.load_artifact(art_dir)
        paths['exported'], predictions['exported'] = bench(art.call, art.variables)
        paths['exported']['artifact'] = str(art_dir)
  else:
    model_dir = info.get('source_checkpoint')
    paths['exported'], predictions['exported'] = bench(art.call, art.variables)
    paths['exported']['artifact'] = str(art.directory)

  batchnorm_folded = fold if FLAGS.checkpoint else bool(info.get('batchnorm_folded'))
  primary_path = 'exported' if 'exported' in paths else 'native'
  mode = config.modes[0]
  primary = paths[primary_path]['modes'][mode]
  target = dict(info.get('target') or {})
  metric = dawnbench.INFERENCE_ACCURACY_FIELD[FLAGS.task]
  threshold = FLAGS.target if FLAGS.target is not None else target.get('threshold')
  if threshold is None:
    raise ConfigError('the model records no target; pass --target')
  accuracy = primary['accuracy']
  qualifies, reasons = qualification(accuracy, threshold, subset=bool(FLAGS.test_subset) or test.subset,
                                     dataset=dataset, model_dataset=info.get('dataset', dataset), task=FLAGS.task)
  price = cost.hourly_price(device.device_kind, 1, FLAGS.cost_per_hour)
  per_item = (cost.cost_per_item_usd(primary['mean_ms'], price.usd_per_hour)
              if price.usd_per_hour is not None else None)
  agree = (int(np.sum((predictions['native'] != predictions['exported']).reshape(len(images), -1).any(1)))
           if len(predictions) == 2 else None)
  hw_tag = hardware.hardware_tag(device.device_kind, 1)
  model = info.get('model') or 'model'
  summary = {
      'kind': 'inference', 'task': FLAGS.task, 'dataset': dataset, 'model': model,
      'model_dataset': info.get('dataset'), 'training_accuracy': info.get('accuracy'),
      'latency_ms': primary['mean_ms'], 'latency_p50_ms': primary['p50_ms'],
      'latency_p99_ms': primary['p99_ms'], 'accuracy_field': metric, 'accuracy': accuracy,
      'metrics': primary.get('metrics', {metric: accuracy}), 'test_set': test.info,
      'target': {'metric': metric, 'threshold': threshold}, 'qualifies': qualifies,
      'not_qualifying_because': reasons, 'reported': {
          'path': primary_path, 'mode': mode, 'wait': config.wait, 'statistic': 'mean over the test set',
          **({'graph_io_copies': config.graph_io_copies} if mode == 'host_graph' and device.platform == 'gpu' else {})},
      'cost_per_item_usd': per_item, 'price': price.as_dict(),
      'throughput_items_per_second': paths[primary_path].get('throughput', {}).get('items_per_second'),
      'paths': paths, 'native_vs_exported_predictions_differ': agree, 'exported_skipped': exported_skipped,
      'protocol': {'batch': 1, 'count': int(len(images)), 'count_rule': 'every test item once (DAWNBench)',
                   'latency_unit': (f'one {test.unit}: the sum of its requests\' latencies'
                                    if test.groups is not None else f'one {test.unit}'),
                   'warmup_calls': config.warmup, 'warmup': 'excluded from statistics, recorded per mode',
                   'compile': 'ahead of time (jit(...).lower(...).compile()), excluded',
                   'sync': 'each item closed by a device synchronisation',
                   'wait': {'block': "the runtime's blocking wait",
                            'spin': "the caller polls the result's readiness (host_graph: its sequence word in "
                                    'host memory)'}[config.wait],
                   'modes': {m: latency.DESCRIPTIONS[m] for m in config.modes},
                   'default_modes_left_out': modes_left_out,
                   **({'graph_io_copies': {'memcpy': "the CUDA driver's async copies (copy-engine graph nodes)",
                                           'kernel': 'kernels reading and writing the pinned host buffers'
                                                     }[config.graph_io_copies]}
                      if 'host_graph' in config.modes and device.platform == 'gpu' else {}),
                   'weights': {'constants': 'compiled into the executable (a call passes the input alone)',
                               'arguments': 'passed with every call'}[paths[primary_path]['weights']],
                   'served_model': served_protocol(info), 'xla_flags': os.environ['XLA_FLAGS'],
                   'batchnorm': ('folded into the convolutions (--fold_batchnorm)' if batchnorm_folded
                                 else 'as trained (--nofold_batchnorm, or a task without folding)')},
      'device': {'platform': device.platform, 'device_kind': device.device_kind, 'num_devices': 1},
      'hardware_tag': hw_tag, 'versions': _versions(),
      'checkpoint': str(FLAGS.checkpoint or ''), 'exported': str(FLAGS.exported or ''),
      'model_dir': model_dir,  # links this result to its training run in the leaderboard
      'flags': common.flag_values(), 'notes': FLAGS.notes,
  }
  summary_lib.write_summary(out / SUMMARY, summary)
  json_obj = dawnbench.inference_json(
      author=FLAGS.author, author_email=FLAGS.author_email, framework=f"JAX {jax.__version__}",
      model=model, hardware=f'1x {device.device_kind}', timestamp=datetime.date.today(),
      latency_ms=primary['mean_ms'], cost_per_item_usd=per_item, accuracy_field=metric,
      accuracy_value=accuracy, cost_per_hour=price.usd_per_hour,
      misc=summary_lib.jsonable({k: summary[k] for k in (
          'dataset', 'latency_p50_ms', 'latency_p99_ms', 'qualifies', 'not_qualifying_because',
          'reported', 'metrics', 'throughput_items_per_second', 'protocol')} | {'price_source': price.source}))
  basename = dawnbench.result_basename(FLAGS.author, model, hw_tag, 'JAX')
  atomic.atomic_write_json(out / f'{basename}.json', json_obj, indent=4)
  print(format_result(summary), flush=True)
  if accuracy < threshold:
    raise TargetNotReached(f'served accuracy {accuracy:.2f} < {threshold:g}: not a qualifying DAWNBench '
                           f'inference result; results written to {out}')
  return 0


def format_result(summary: dict[str, Any]) -> str:
  from dawnjax.report.summary import format_table
  rows = []
  for path, res in summary['paths'].items():
    for mode, m in res['modes'].items():
      tp = res.get('throughput') or {}
      rows.append({'path': path, 'mode': mode, 'n': m['n'], 'mean': m['mean_ms'], 'p50': m['p50_ms'],
                   'p99': m['p99_ms'], 'acc': m['accuracy'], 'warm': m['warmup']['calls'],
                   'tp': tp.get('items_per_second'), 'bs': tp.get('batch')})
  cols = [('path', 'path', 's'), ('mode', 'input', 's'), ('n', 'items', 'd'), ('warm', 'warm-up', 'd'),
          ('mean', 'mean ms', '.4f'), ('p50', 'p50 ms', '.4f'), ('p99', 'p99 ms', '.4f'),
          ('acc', summary['accuracy_field'], '.4g'), ('bs', 'batch', 'd'), ('tp', 'items/s', '.0f')]
  cost = summary['cost_per_item_usd']
  verdict = ('qualifies' if summary['qualifies'] else
             'NOT qualifying: ' + '; '.join(summary['not_qualifying_because']))
  tail = (f"reported: {summary['reported']['path']}/{summary['reported']['mode']} mean "
          f"{summary['latency_ms']:.4f} ms; cost/item "
          f"{'%.3g USD' % cost if cost is not None else 'unknown (no price)'}; {verdict}")
  bounds = [f"{path}: {res['bounds']['reading']}" for path, res in summary['paths'].items() if res.get('bounds')]
  named = ', '.join(f'{k} {v:.2f}' for k, v in summary['metrics'].items())
  return '\n'.join([format_table(rows, cols), *bounds, f'served accuracy: {named}', tail])


def main() -> None:
  app.run(common.main_guard(run))


if __name__ == '__main__':
  main()
