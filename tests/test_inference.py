"""Inference: model export from training, the batch-1 latency protocol, the jax.export artifact."""
import dataclasses
import itertools
import json
import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dawnjax.errors import ConfigError, ResultsError
from dawnjax.inference import benchmark, export, latency, models
from dawnjax.report import dawnbench
from dawnjax.workloads import cifar10

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, 'tests'))
from test_cifar10_workload import learnable_data  # noqa: E402

RECIPE = cifar10.CifarRecipe(widths=(8, 8, 8), dtype='float32')
ENV = dict(os.environ, JAX_PLATFORMS='cpu', PYTHONPATH=REPO + os.pathsep + os.environ.get('PYTHONPATH', ''))
N_TEST = 48


def tiny_model(seed=0):
  """The served classifier and random variables of its shapes (eval_shape: no init to compile)."""
  shapes = jax.eval_shape(lambda: cifar10.build_model(RECIPE).init(
      jax.random.PRNGKey(0), jnp.zeros((1, 32, 32, 3)), train=False))
  rng = np.random.default_rng(seed)
  # abs(): BatchNorm variances must be positive; other leaves do not care.
  variables = jax.tree_util.tree_map(lambda s: np.abs(rng.normal(0, 0.3, s.shape)).astype(s.dtype), shapes)
  return models.classifier(cifar10.inference_apply(RECIPE)), variables


def write_cifar_binary(root, data):
  """A CIFAR-10 binary-format copy of `data` (what --data_dir accepts), any size."""
  folder = root / 'cifar-10-batches-bin'
  folder.mkdir(parents=True)

  def records(x, y):
    return np.concatenate([y.astype(np.uint8)[:, None], x.transpose(0, 3, 1, 2).reshape(len(x), -1)], 1).tobytes()

  for i, idx in enumerate(np.array_split(np.arange(len(data.train_images)), 5), 1):
    (folder / f'data_batch_{i}.bin').write_bytes(records(data.train_images[idx], data.train_labels[idx]))
  (folder / 'test_batch.bin').write_bytes(records(data.test_images, data.test_labels))
  (folder / 'batches.meta.txt').write_text('\n'.join(data.classes) + '\n')
  return root


def run_module(args, timeout=600):
  proc = subprocess.run([sys.executable, *args], env=ENV, capture_output=True, text=True, timeout=timeout)
  return proc.returncode, proc.stdout, proc.stderr


# ---------------------------------------------------------------------------- harness protocol

def test_latency_protocol_batch1_every_item_warmup_excluded():
  classify, variables = tiny_model()
  images = learnable_data(n_train=64, n_test=12).test_images
  device = jax.devices()[0]
  variables = jax.device_put(variables, device)
  programs = latency.BatchOnePrograms(classify, variables, images.shape[1:], images.dtype, device)
  warmup = 3
  for wait, mode in itertools.product(latency.WAITS, latency.MODES):
    shapes, addresses, now = [], [], [0]
    program = programs(latency.PROGRAM[mode])

    def record(x):
      shapes.append(tuple(x.shape))
      now[0] += 1000 if len(shapes) <= warmup else 1  # warm-up calls "take" 1000 ms, timed ones 1 ms

    def recording(v, x):
      record(x)
      if latency.PROGRAM[mode] == 'pinned_host':  # the program itself reads the image from pinned host memory
        assert x.sharding.memory_kind == 'pinned_host'
        addresses.append(x.unsafe_buffer_pointer())
      return program(v, x)

    if mode == 'host_graph':  # the request goes through the program's own buffers
      recording = type('Recording', (), {'serve': lambda self, v, x, w: record(x) or program.serve(v, x, w)})()

    run = latency.time_items(recording, variables, images, device, mode=mode, warmup=warmup, wait=wait,
                             clock=lambda: now[0] * 1_000_000)
    assert shapes == [(1, 32, 32, 3)] * (warmup + len(images))  # batch 1; every item once after warm-up
    assert run.count == len(images) and run.warmup_ms.tolist() == [1000.0] * warmup
    stats = latency.latency_stats(run.latencies_ms)
    assert stats['n'] == len(images) and stats['mean_ms'] == stats['p99_ms'] == 1.0  # warm-up excluded
    np.testing.assert_array_equal(run.predictions, np.asarray(jax.jit(classify)(variables, images)))
    if mode == 'host_staged':  # one staging buffer: every request's image at the same address
      assert len(set(addresses)) == 1
  # graph_io_handlers: where this process built or loaded the FFI handlers (the first host_graph program does)
  assert set(programs.compile_seconds) - {'graph_io_handlers'} == {'batch_1', 'batch_1_pinned_host', 'batch_1_graph_io'}


def test_pinned_modes_need_pinned_host_memory():
  class NoHostMemory:
    device_kind = 'an accelerator without host memory spaces'

    def addressable_memories(self):
      return []

  with pytest.raises(ConfigError, match='no pinned_host memory.*host_pinned, host_staged, host_graph'):
    latency.io_sharding(NoHostMemory(), 'pinned_host')
  with pytest.raises(ConfigError, match='each once'):
    benchmark.BenchConfig(modes=('host', 'host')).validate()


def test_default_modes_leave_out_what_the_device_cannot_run(monkeypatch, tmp_path):
  from dawnjax.inference import graph_io

  class NoHostMemory:
    device_kind = 'an accelerator without host memory spaces'

    def addressable_memories(self):
      return []

  modes, left_out = latency.default_modes(NoHostMemory())
  assert modes == ('host', 'device') and len(left_out) == 1 and 'no pinned_host memory' in left_out[0]
  assert latency.default_modes(jax.devices()[0]) == (latency.DEFAULT_MODES, [])
  monkeypatch.setenv('CXX', 'no-such-compiler-here')
  modes, left_out = latency.default_modes(jax.devices()[0])
  assert modes == ('host_staged', 'host', 'device') and "'no-such-compiler-here' was not found" in left_out[0]
  monkeypatch.setenv('CXX', 'false')  # a compiler that fails: the build is tried, and host_graph left out
  monkeypatch.setenv('XDG_CACHE_HOME', str(tmp_path))
  assert 'failed' in latency.default_modes(jax.devices()[0])[1][0]
  assert graph_io.unavailable(type('Tpu', (), {'platform': 'tpu', 'device_kind': 'TPU v4'})()) is not None


def test_a_staging_buffer_whose_writes_do_not_reach_the_program_is_refused():
  device = jax.devices()[0]
  staging = latency.StagingBuffer((1, 4, 4, 3), np.uint8, device)  # its constructor's check passes here
  image = np.arange(48, dtype=np.uint8).reshape(1, 4, 4, 3)
  on_device = jax.sharding.SingleDeviceSharding(device)
  np.testing.assert_array_equal(np.asarray(jax.device_put(staging.write(image), on_device)), image)

  class Unreached(latency.StagingBuffer):
    def write(self, item):  # as if the pointer led somewhere the program does not read
      return self.array

  with pytest.raises(RuntimeError, match='did not reach the device'):
    Unreached((1, 4, 4, 3), np.uint8, device)


def test_host_graph_copies_are_steps_of_the_program_and_round_trip_any_dtype():
  from dawnjax.inference import graph_io
  device = jax.devices()[0]
  rng = np.random.default_rng(0)
  items = rng.normal(size=(5, 2, 3)).astype(np.float32)  # 4-byte items; an int16 result of 6 bytes (padded)
  variables = {'w': np.float32(3.0)}
  fn = lambda v, x: jnp.round(x[:, 0] * v['w'] * 100).astype(jnp.int16)
  for weights, copies in (('constants', 'memcpy'), ('arguments', 'memcpy'), ('constants', 'kernel')):
    # 'kernel' copies are GPU kernels; on a CPU the same program runs the handlers' memcpy.
    program = graph_io.GraphIOProgram(fn, variables, (2, 3), np.float32, device, weights,
                                      latency.io_sharding(device, 'pinned_host'), copies)
    assert program.copies == copies
    text = program._run.as_text() if weights == 'arguments' else None
    if text is not None:  # the copies are custom calls inside the program, not copies the runtime adds
      assert 'dawnjax_copy_in' in text and 'dawnjax_copy_out' in text
    addresses = (program.input.address, program.output.address)
    for wait in latency.WAITS:
      served = np.stack([program.serve(variables, items[i:i + 1], wait) for i in range(len(items))])
      np.testing.assert_array_equal(served[:, 0], np.asarray(jax.jit(fn)(variables, items)))
    assert (program.input.address, program.output.address) == addresses
    assert program._seen.value == 2 * len(items)  # the sequence word came back with every request


def test_host_graph_fails_in_one_line_where_it_cannot_run_or_its_result_never_arrives(tmp_path):
  import ctypes
  from dawnjax.inference import graph_io
  with pytest.raises(ConfigError, match='not found'):
    graph_io.build_library(tmp_path, cxx='no-such-compiler-here')
  with pytest.raises(ConfigError, match='failed'):
    graph_io.build_library(tmp_path, cxx='false')
  tpu = type('Tpu', (), {'platform': 'tpu', 'device_kind': 'TPU v5 lite'})()
  with pytest.raises(ConfigError, match='CPUs and CUDA GPUs, not TPU v5 lite'):
    graph_io.platform_of(tpu)

  device = jax.devices()[0]
  with pytest.raises(ConfigError, match='--graph_io_copies=dma: expected one of kernel, memcpy'):
    graph_io.GraphIOProgram(lambda v, x: x, None, (2,), np.int32, device, 'constants',
                            latency.io_sharding(device, 'pinned_host'), 'dma')
  program = graph_io.GraphIOProgram(lambda v, x: x.sum(axis=(1, 2)), None, (2, 2), np.int32, device, 'constants',
                                    latency.io_sharding(device, 'pinned_host'))
  item = np.ones((1, 2, 2), np.int32)
  assert program.serve(None, item, 'spin').tolist() == [4]
  program._seen = ctypes.c_uint32(0)  # as if the copy out wrote somewhere the host does not look
  for wait in latency.WAITS:
    with pytest.raises(RuntimeError, match='did not reach host memory'):
      program.serve(None, item, wait)


def test_a_spinning_wait_polls_readiness_until_the_result_is_computed():
  class Pending:
    polls = 0

    def is_ready(self):
      self.polls += 1
      return self.polls == 3

    def block_until_ready(self):
      raise AssertionError('a spinning wait must not block')

  out = Pending()
  assert latency.wait_for(out, 'spin') is out and out.polls == 3
  with pytest.raises(ValueError, match='wait'):
    latency.time_items(None, None, np.zeros((1, 32, 32, 3), np.uint8), jax.devices()[0], mode='device', warmup=0,
                       wait='sleep')
  with pytest.raises(ConfigError, match='--latency_wait'):
    benchmark.BenchConfig(wait='sleep').validate()
  with pytest.raises(ConfigError, match='--graph_io_copies=dma'):
    benchmark.BenchConfig(graph_io_copies='dma').validate()


def test_weights_compiled_in_serve_the_same_classes_with_the_input_alone():
  classify, variables = tiny_model()
  images = learnable_data(n_train=64, n_test=12).test_images
  device = jax.devices()[0]
  variables = jax.device_put(variables, device)
  predictions = {}
  for weights in ('constants', 'arguments'):
    call, _ = latency.compile_for(classify, variables, 1, images.shape[1:], images.dtype, device, weights)
    predictions[weights] = latency.time_items(call, variables, images, device, mode='host', warmup=1).predictions
    if weights == 'constants':  # the executable holds the weights: a call needs none passed
      x = jax.device_put(images[:1], device)
      np.testing.assert_array_equal(call(None, x), predictions['constants'][:1])
  np.testing.assert_array_equal(predictions['constants'], predictions['arguments'])
  with pytest.raises(ValueError, match='weights'):
    latency.compile_for(classify, variables, 1, images.shape[1:], images.dtype, device, 'baked')
  # 'auto': small weights are compiled in; BERT-Base-sized ones (lowering them as literals is slow) are not.
  assert latency.resolve_weights('auto', variables) == 'constants'
  big = {'w': jax.ShapeDtypeStruct((110_000_000,), jnp.float32)}
  assert latency.resolve_weights('auto', big) == 'arguments'
  assert latency.resolve_weights('constants', big) == 'constants'
  with pytest.raises(Exception, match='--weights'):
    benchmark.BenchConfig(weights='baked').validate()


def test_benchmark_reports_every_mode_and_throughput():
  classify, variables = tiny_model()
  data = learnable_data(n_train=64, n_test=20)
  config = benchmark.BenchConfig(warmup=2, throughput_batch=8, throughput_passes=2, bound_items=12)
  result, predictions = benchmark.benchmark(classify, variables, data.test_images, data.test_labels,
                                            jax.devices()[0], config)
  bounds = result['bounds']
  assert bounds['items'] == 12 and isinstance(bounds['host_dispatch_bound'], bool)
  assert all(bounds[f'{k}_ms_per_item'] > 0 for k in ('synchronised', 'pipelined', 'in_program'))
  assert tuple(result['modes']) == latency.DEFAULT_MODES == ('host_graph', 'host_staged', 'host', 'device')
  assert set(result['compile_seconds']) - {'graph_io_handlers'} == {'batch_1', 'batch_1_graph_io',
                                                                    'batch_1_pinned_host', 'batch_8'}
  for mode in result['modes'].values():
    assert mode['n'] == 20 and mode['warmup'] == {**mode['warmup'], 'calls': 2, 'excluded': True}
    assert mode['predictions_differ_from_first_mode'] == 0 and 0 <= mode['accuracy'] <= 100
  tp = result['throughput']
  assert (tp['batch'], tp['items'], tp['padded_items']) == (8, 20, 4) and tp['items_per_second'] > 0
  assert tp['predictions_differ_from_batch_1'] == 0 and predictions.shape == (20,)
  with pytest.raises(Exception, match='latency_modes'):
    benchmark.BenchConfig(modes=('gpu',)).validate()


def test_save_and_load_model_round_trip(tmp_path):
  _, variables = tiny_model()
  run = tmp_path / 'run'
  export.save_model(run / export.RUN_SUBDIR, task='cifar10', dataset='synthetic', model='airbench-8-8-8',
                    model_config=dataclasses.asdict(RECIPE), variables=variables,
                    accuracy={'top1Accuracy': 12.5}, meta={'seed': 0},
                    target={'metric': 'top1Accuracy', 'threshold': 94.0})
  saved = export.load_model(run)  # a run's --output_dir finds its model/
  assert saved.manifest['model'] == 'airbench-8-8-8' and saved.manifest['target']['threshold'] == 94.0
  for a, b in zip(jax.tree_util.tree_leaves(variables), jax.tree_util.tree_leaves(saved.variables)):
    np.testing.assert_array_equal(a, b)
  assert cifar10.recipe_from_config(saved.manifest['model_config']) == RECIPE
  (saved.directory / export.MANIFEST).write_text('{"kind": "something else"}')
  with pytest.raises(ResultsError, match='not a dawnjax model manifest'):
    export.load_model(run)
  with pytest.raises(ResultsError, match='no model.json'):
    export.load_model(tmp_path / 'nowhere')


# ---------------------------------------------------------------------------- end to end

@pytest.fixture(scope='module')
def trained_run(tmp_path_factory):
  """A real (tiny) training run through the CLI: its output dir holds summary.json and model/."""
  root = tmp_path_factory.mktemp('e2e')
  data = learnable_data(n_train=128, n_test=N_TEST)
  write_cifar_binary(root / 'data', data)
  out = root / 'run'
  rc, stdout, stderr = run_module([
      '-m', 'dawnjax.experiments.cifar10', f'--data_dir={root / "data"}', f'--output_dir={out}',
      '--widths=8,8,8', '--dtype=float32', '--batch_size=64', '--epochs=1', f'--eval_batch_size={N_TEST}',
      '--whiten_images=64', '--tta_level=0', '--target=0', '--cost_per_hour=2.0',
      '--overlap_upload'])  # the data uploads while the programs compile: the model served below was trained so
  assert rc == 0, stderr[-3000:]
  assert 'model export: seed 0 saved' in stdout
  return root, data


def test_training_exports_first_seed_and_prices_it(trained_run):
  root, _ = trained_run
  manifest = json.loads((root / 'run' / 'model' / 'model.json').read_text())
  assert manifest['task'] == 'cifar10' and manifest['model'] == 'airbench-8-8-8'
  assert manifest['model_config']['widths'] == [8, 8, 8] and manifest['accuracy']['seed'] == 0
  summary = json.loads((root / 'run' / 'summary.json').read_text())
  cost = summary['cost']
  assert cost['cost_per_hour_usd'] == 2.0 and 'flag --cost_per_hour' in cost['price_source']
  assert cost['time_to_target_cost_usd'] == pytest.approx(summary['time_to_target_seconds'] * 2.0 / 3600)
  # The wall breakdown accounts for the whole process: a real start-up, parts that add up to it.
  parts = summary['wall_breakdown_seconds']
  assert parts['startup'] > 0.1 and parts['warm_up'] > 0 and parts['seeds_and_reporting'] > 0
  assert parts['compile_programs'] + parts['warm_up'] == pytest.approx(summary['compile_seconds'])
  assert parts['startup'] + parts['data_load'] + summary['compile_seconds'] < summary['wall_seconds']
  from tensorboard.backend.event_processing import event_accumulator as ea
  events = ea.EventAccumulator(str(root / 'run' / 'tensorboard' / 'seed_0'))
  events.Reload()
  assert {'schedule/lr_multiplier', 'schedule/lr_filters', 'train/loss'} <= set(events.Tags()[ea.SCALARS])


def test_inference_cli_native_and_exported(trained_run):
  root, _ = trained_run
  out = root / 'run' / 'inference'
  rc, stdout, stderr = run_module([
      '-m', 'dawnjax.experiments.inference', '--task=cifar10', f'--checkpoint={root / "run"}',
      f'--data_dir={root / "data"}', f'--output_dir={out}', '--warmup=5', '--throughput_batch=16',
      '--throughput_passes=2', '--cost_per_hour=3.6'])
  assert rc == 0, stderr[-3000:]
  s = json.loads((out / 'inference_summary.json').read_text())
  assert s['protocol']['batch'] == 1 and s['protocol']['count'] == N_TEST
  # What is served is the recipe's own protocol (its test-time augmentation), and how it holds weights.
  assert 'tta_level=' in s['protocol']['served_model'] and 'compiled into' in s['protocol']['weights']
  assert all(path['weights'] == 'constants' for path in s['paths'].values())
  assert s['protocol']['xla_flags'].endswith('--xla_gpu_enable_command_buffer=+CONVOLUTION')
  assert set(s['paths']) == {'native', 'exported'} and s['reported'] == {
      'path': 'exported', 'mode': 'host_graph', 'wait': 'spin', 'statistic': 'mean over the test set'}
  assert list(s['protocol']['modes']) == ['host_graph', 'host_staged', 'host', 'device']
  assert 'sequence number' in s['protocol']['modes']['host_graph'] and 'polls' in s['protocol']['wait']
  assert s['protocol']['default_modes_left_out'] == []
  for path in s['paths'].values():
    for mode in path['modes'].values():
      assert mode['n'] == N_TEST and mode['warmup']['calls'] == 5 and mode['warmup']['excluded']
  assert s['native_vs_exported_predictions_differ'] == 0
  assert s['cost_per_item_usd'] == pytest.approx(s['latency_ms'] * 1e-6)  # 3.6 USD/h = 1e-6 USD/ms
  assert s['qualifies'] and s['latency_ms'] > 0
  (dawnbench_json,) = [p for p in out.glob('*.json') if p.name != 'inference_summary.json']
  obj = json.loads(dawnbench_json.read_text())
  dawnbench.validate_json(obj, kind='inference', task='cifar10')
  assert obj['latency'] == s['latency_ms'] and obj['top1Accuracy'] == s['accuracy']
  assert (out / 'exported' / 'artifact.json').is_file()


BLOCKED = ('flax', 'optax', 'orbax', 'orbax.checkpoint', 'dawnjax.workloads', 'dawnjax.models', 'dawnjax.train',
           'dawnjax.optim', 'dawnjax.augment', 'dawnjax.inference.export', 'dawnjax.inference.models')

WITHOUT_TRAINING_CODE = textwrap.dedent('''
    import json, sys
    for name in {blocked!r}:
      sys.modules[name] = None  # any import of these now fails
    import numpy as np
    import jax
    from dawnjax.inference import artifact
    art = artifact.load_artifact({art!r})
    images = np.load({images!r})
    print('PREDICTIONS' + json.dumps(np.asarray(jax.jit(art.call)(art.variables, images)).tolist()), flush=True)
    from dawnjax.experiments import inference
    sys.argv = ['inference', '--task=cifar10', '--exported={art}', '--data_dir={data}', '--output_dir={out}',
                '--warmup=2', '--throughput_batch=0', '--latency_modes=device', '--target=100']
    inference.main()
''')


def test_exported_artifact_runs_without_training_code(trained_run, tmp_path):
  root, data = trained_run
  art = root / 'run' / 'inference' / 'exported'
  if not art.is_dir():
    pytest.skip('needs test_inference_cli_native_and_exported first')
  np.save(tmp_path / 'images.npy', data.test_images)
  script = WITHOUT_TRAINING_CODE.format(blocked=BLOCKED, art=str(art), images=str(tmp_path / 'images.npy'),
                                        data=str(root / 'data'), out=str(tmp_path / 'out'))
  rc, stdout, stderr = run_module(['-c', script])
  # --target=100 cannot be reached: written, then reported as not qualifying (exit 2, one line).
  assert rc == 2, stderr[-3000:]
  assert 'not a qualifying DAWNBench inference result' in stderr
  exported_predictions = json.loads(stdout.split('PREDICTIONS', 1)[1].splitlines()[0])
  saved = export.load_model(root / 'run')
  classify = models.classifier(models.apply_fn_for(saved.manifest))
  native = np.asarray(jax.jit(classify)(saved.variables, data.test_images))
  np.testing.assert_array_equal(exported_predictions, native)
  s = json.loads((tmp_path / 'out' / 'inference_summary.json').read_text())
  assert not s['qualifies'] and s['not_qualifying_because'][0].startswith('accuracy')
  assert set(s['paths']) == {'exported'} and s['accuracy'] == pytest.approx(
      100 * np.mean(native == data.test_labels))


def test_leaderboard_links_latency_to_the_real_run(trained_run, tmp_path, capsys):
  root, _ = trained_run
  if not (root / 'run' / 'inference' / 'inference_summary.json').is_file():
    pytest.skip('needs test_inference_cli_native_and_exported first')
  from dawnjax.report import leaderboard
  found = leaderboard.scan([root / 'run'])
  assert found.errors == []
  (run,) = [e for e in found.entries if e.kind == 'train']
  (inf,) = [e for e in found.entries if e.kind == 'inference']
  assert run.latency_ms == inf.latency_ms and run.seeds == 1 and run.tta == '0'


def test_serving_xla_flags_add_convolution_command_buffers_last_or_nothing():
  from dawnjax.experiments import inference
  flag = '--xla_gpu_enable_command_buffer=+CONVOLUTION'
  assert inference.serving_xla_flags('--xla_gpu_autotune_level=1', True) == '--xla_gpu_autotune_level=1 ' + flag
  assert inference.serving_xla_flags('--xla_gpu_autotune_level=1', False) == '--xla_gpu_autotune_level=1'
  assert inference.serving_xla_flags('', True) == flag


def test_graph_io_copies_flag_offers_what_the_program_accepts():
  from absl import flags as absl_flags
  from dawnjax.experiments import inference  # noqa: F401 (defines the flags)
  from dawnjax.inference import graph_io
  flag = absl_flags.FLAGS['graph_io_copies']
  assert sorted(flag.parser.enum_values) == sorted(graph_io.COPIES) and flag.default == graph_io.DEFAULT_COPIES


def test_graph_io_copy_kernels_assemble_and_are_the_entries_the_handlers_load(tmp_path):
  import re
  import shutil
  from dawnjax.inference import graph_io
  source = graph_io.SOURCE.read_text()
  ptx = source[source.index('R"PTX(') + len('R"PTX('):source.index(')PTX"')]
  entries = set(re.findall(r'\.visible \.entry (\w+)\(', ptx))
  assert entries == set(re.findall(r'module_get_function\(&k\.\w+, module, "(\w+)"\)', source)) == {
      'dawnjax_copy_in', 'dawnjax_copy_out'}
  ptxas = shutil.which('ptxas')
  if ptxas is None:
    pytest.skip('no ptxas (CUDA toolkit) here: the PTX is assembled only where one is installed')
  (tmp_path / 'copies.ptx').write_text(ptx)
  done = subprocess.run([ptxas, '--gpu-name', 'sm_90', str(tmp_path / 'copies.ptx'), '-o',
                         str(tmp_path / 'copies.cubin')], capture_output=True, text=True)
  assert done.returncode == 0, done.stderr


def test_graph_io_keys_its_library_cache_once_per_process(monkeypatch):
  from dawnjax.inference import graph_io
  library = graph_io.build_library()

  def no_compiler(*args, **kwargs):
    raise AssertionError('the compiler ran again for a library this process already found')

  monkeypatch.setattr(graph_io.subprocess, 'run', no_compiler)
  assert graph_io.build_library() == library
