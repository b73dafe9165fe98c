"""The ImageNet workload: stages and schedule (pure), the entry point on real JPEGs, 8 devices,
and a smoke run of kernels/imagenet_bench.py."""
import json
import os
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest

from dawnjax import parallel
from dawnjax.errors import ConfigError
from dawnjax.workloads import imagenet as wl

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TESTS = os.path.join(REPO, 'tests')


def _env(**extra):
  env = dict(os.environ, JAX_PLATFORMS='cpu', PYTHONPATH=REPO + os.pathsep + os.environ.get('PYTHONPATH', ''))
  env.update(extra)
  return env


def test_stages_parse_plan_and_reject_bad_specs():
  specs = wl.parse_stages(['0:128:512', '3:224:256:0.25'], epochs=5, default_min_scale=0.08)
  assert specs == (wl.StageSpec(0, 128, 512, 0.08), wl.StageSpec(3, 224, 256, 0.25))
  stages = wl.plan_stages(specs, 5, num_train=1300)
  assert [(s.start_epoch, s.end_epoch, s.steps_per_epoch, s.start_step, s.num_steps) for s in stages] == [
      (0, 3, 2, 0, 6), (3, 5, 5, 6, 10)]
  assert wl.stage_at(stages, 2).size == 128 and wl.stage_at(stages, 4).size == 224
  for bad, match in ((['1:128:64'], 'start at epoch 0'), (['0:128:64', '0:224:32'], 'must increase'),
                     (['0:128'], 'start_epoch:image_size'), (['0:128:64', '9:224:32'], 'below --epochs'),
                     (['0:8:64'], 'image_size >= 16')):
    with pytest.raises(ConfigError, match=match):
      wl.parse_stages(bad, epochs=5, default_min_scale=0.08)
  with pytest.raises(ConfigError, match='exceeds'):
    wl.plan_stages(wl.parse_stages(['0:64:2048'], 5, 0.08), 5, num_train=1000)


def test_learning_rate_warmup_decays_and_batch_scaling():
  # 100 images, stage 1: batch 10 (10 steps/epoch), stage 2 from epoch 2: batch 20 (5 steps/epoch).
  recipe = wl.ImageNetRecipe(epochs=4, stages=('0:32:10', '2:32:20'), lr=1.0, lr_reference_batch=10,
                             warmup_epochs=1.0, warmup_start=0.5, schedule='cosine')
  stages = wl.plan_stages(wl.parse_stages(recipe.stages, 4, 0.08), 4, 100)
  lr = wl.learning_rate_fn(recipe, stages)
  assert float(lr(0)) == pytest.approx(0.5)  # warm-up starts at half the peak
  assert float(lr(5)) == pytest.approx(0.75)  # half-way through the 1-epoch warm-up
  assert float(lr(10)) == pytest.approx(1.0)  # peak at epoch 1
  # Epoch 2.5 = step 20 + 2.5 steps of batch 20: cosine at t=0.5, doubled by the batch.
  assert float(lr(22.5)) == pytest.approx(2.0 * 0.5 * (1 + np.cos(np.pi * 0.5)), rel=1e-5)
  step = wl.ImageNetRecipe(epochs=10, stages=('0:32:10',), lr=1.0, lr_reference_batch=10, warmup_epochs=0,
                           schedule='step', decay_epochs=(3, 6), decay_factors=(0.5, 0.1))
  f = [float(wl.lr_factor(step, e)) for e in (0, 2.99, 3, 5.9, 6, 9)]
  np.testing.assert_allclose(f, [1, 1, 0.5, 0.5, 0.05, 0.05], rtol=1e-6)
  poly = wl.ImageNetRecipe(epochs=12, warmup_epochs=2, schedule='polynomial', poly_power=2, end_lr_factor=0.1)
  assert float(wl.lr_factor(poly, 7)) == pytest.approx(0.1 + 0.9 * 0.25)


def test_no_weight_decay_or_lars_scaling_on_batchnorm_and_biases():
  params = {'stem_conv': {'kernel': 1}, 'stem_bn': {'scale': 1, 'bias': 1}, 'head': {'kernel': 1, 'bias': 1}}
  assert wl.decay_mask(params) == {'stem_conv': {'kernel': True}, 'stem_bn': {'scale': False, 'bias': False},
                                   'head': {'kernel': True, 'bias': False}}


def test_recipe_and_mesh_checks_are_config_errors():
  mesh = parallel.make_mesh(1)
  data = wl.DataConfig(dataset='synthetic')
  for recipe, match in ((wl.ImageNetRecipe(model='resnet51'), '--model'),
                        (wl.ImageNetRecipe(optimizer='adam'), '--optimizer'),
                        (wl.ImageNetRecipe(stages=('0:224:96',), ghost_batch_size=64), 'ghost_batch_size'),
                        (wl.ImageNetRecipe(schedule='step', decay_epochs=(1, 2, 3), decay_factors=(0.1, 0.2)),
                         'decay_factors')):
    with pytest.raises(ConfigError, match=match):
      wl.ImageNetWorkload(recipe, mesh, data)
  with pytest.raises(ConfigError, match='--data_dir'):
    wl.ImageNetWorkload(wl.ImageNetRecipe(), mesh, wl.DataConfig(dataset='tree'))


def test_entry_point_trains_on_real_jpeg_tree_slice_and_beats_chance(cifar10_jpeg_tarball, tmp_path):
  """The real cifar10_jpeg class-folder tree through the whole ImageNet path: host workers decode
  random-resized crops upscaled to 32 then 48 px (two stages, two programs), the loop trains and
  evaluates exact top-1/top-5, the runner writes DAWNBench + summary files."""
  out = tmp_path / 'run'
  cmd = [sys.executable, '-m', 'dawnjax.experiments.imagenet', '--dataset=tree',
         f'--data_dir={cifar10_jpeg_tarball}', f'--output_dir={out}', f'--buffer_dir={tmp_path}',
         '--train_subset=2000', '--eval_subset=500', '--num_workers=2', '--model=resnet10', '--width=16',
         '--dtype=float32', '--epochs=3', '--stages=0:32:50:0.35,1:48:50:0.35', '--eval_size=48',
         '--eval_crop_ratio=1.0', '--eval_batch_size=250', '--lr=0.2', '--lr_reference_batch=50',
         '--warmup_epochs=0.5', '--weight_decay=5e-4', '--target_metric=top1Accuracy', '--target=0',
         '--notensorboard']
  proc = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=600, cwd=REPO)
  assert proc.returncode == 0, proc.stderr[-3000:]
  summary = json.loads((out / 'summary.json').read_text())
  assert summary['dataset'] == 'cifar10_jpeg_as_imagenet_tree_subset'  # never 'imagenet'
  assert summary['task'] == 'imagenet' and summary['model'] == 'resnet10-w16'
  epochs = summary['per_seed'][0]['epochs']
  top1 = [e['metrics']['top1Accuracy'] for e in epochs]
  top5 = [e['metrics']['top5Accuracy'] for e in epochs]
  assert top1[-1] > 25.0, top1  # chance is 10%
  assert all(b >= a for a, b in zip(top1, top5)), (top1, top5)
  work = summary['workload']
  assert work['num_train'] == 2000 and work['num_eval'] == 500 and 'test/' in work['source']
  train = work['host_pipeline']['train']
  assert train['images'] == 3 * 40 * 50 and train['images_per_second_per_core'] > 0
  assert summary['flops']['train_per_example'] > 0
  manifest = json.loads((out / 'model' / 'model.json').read_text())  # exported for inference
  assert manifest['task'] == 'imagenet' and manifest['dataset'] == summary['dataset']
  tsv = next(out.glob('*.tsv')).read_text().splitlines()
  assert tsv[0].split('\t') == ['epoch', 'hours', 'top1Accuracy', 'top5Accuracy'] and len(tsv) == 4


SHARDED_SCRIPT = textwrap.dedent('''
    import json, sys
    import jax, numpy as np
    sys.path.insert(0, {tests!r})
    from test_imagenet_data import make_tree
    from dawnjax import parallel
    from dawnjax.train import loop
    from dawnjax.workloads import imagenet as wl
    assert len(jax.devices()) == 8, jax.devices()
    root = make_tree({root!r}, classes=tuple('abcd'), per_class=(16, 5))
    out = {{}}
    for n in (1, 8):
      recipe = wl.ImageNetRecipe(model='resnet10', width=4, dtype='float32', epochs=1, stages=('0:48:32',),
                                 ghost_batch_size=4, eval_size=48, eval_batch_size=8, lr=0.05,
                                 lr_reference_batch=32, warmup_epochs=0, label_smoothing=0.1)
      work = wl.ImageNetWorkload(recipe, parallel.make_mesh(n), wl.DataConfig(dataset='tree', data_dir=root))
      work.load_data(); work.compile()
      state, scalars = work.train_epoch(work.init(0), 0)
      leaves = jax.tree_util.tree_leaves(state.params)
      assert len(leaves[0].sharding.device_set) == n
      metrics = work.evaluate(state, final=True)
      again = loop.train_seed(work, 0, loop.LoopConfig(eval_every_epoch=False))
      if n == 1:  # the served model rebuilds from its JSON config and gives the same logits
        apply_fn, variables, info = work.inference_model(state)
        rebuilt = wl.inference_apply_from_config(json.loads(json.dumps(info['model_config'])))
        x = np.random.default_rng(0).integers(0, 256, (3, 48, 48, 3), np.uint8)
        np.testing.assert_allclose(apply_fn(variables, x), rebuilt(variables, x), rtol=1e-6)
        assert info['input']['shape'] == [48, 48, 3]
        sched = work.schedule_scalars(0)
        assert abs(sched['schedule/learning_rate'] - float(work.lr_fn(int(state.step)))) < 1e-6
      out[n] = dict(params=[np.asarray(x).ravel().tolist() for x in leaves],
                    stats=[np.asarray(x).ravel().tolist() for x in jax.tree_util.tree_leaves(state.batch_stats)],
                    loss=float(scalars['train_loss']), metrics=metrics, again=again.final_metrics,
                    steps=int(state.step))
      work.close()
    print('RESULT' + json.dumps(out))
''')


def test_eight_fake_devices_match_one_device(tmp_path):
  """Data parallelism over 8 (fake CPU) devices, with ghost BatchNorm over 4-image groups (one
  group per device), gives the same training steps and the same exact evaluation (20 images in
  batches of 8: the last one padded) as 1 device; a rerun of the same seed repeats it exactly."""
  script = SHARDED_SCRIPT.format(tests=TESTS, root=str(tmp_path / 'tree'))
  proc = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True, timeout=600,
                        env=_env(XLA_FLAGS='--xla_force_host_platform_device_count=8'))
  assert proc.returncode == 0, proc.stderr[-3000:]
  out = json.loads(proc.stdout.split('RESULT', 1)[1])
  one, eight = out['1'], out['8']
  assert one['steps'] == eight['steps'] == 2  # 64 images // 32
  for a, b in zip(one['params'] + one['stats'], eight['params'] + eight['stats']):
    np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-5)
  assert one['loss'] == pytest.approx(eight['loss'], rel=1e-5)
  assert one['metrics'] == eight['metrics'] == one['again'] == eight['again']


def test_benchmark_script_runs_every_part(tmp_path):  # the model part with the space-to-depth stem
  out = tmp_path / 'bench'
  cmd = [sys.executable, os.path.join(REPO, 'kernels', 'imagenet_bench.py'), f'--out_dir={out}',
         '--model=resnet10', '--width=4', '--image_size=32', '--batch_sizes=8', '--steps=2',
         '--warmup_steps=1', '--dtype=float32', '--num_jpegs=8', '--pipeline_images=32',
         '--pipeline_batch=8', '--crop_sizes=32', '--num_workers=1', '--jpeg_tree=', '--space_to_depth']
  proc = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=600, cwd=str(tmp_path))
  assert proc.returncode == 0, proc.stderr[-3000:]
  report = json.loads((out / 'imagenet_bench.json').read_text())
  run = report['model']['runs'][0]
  assert 'error' not in run and run['images_per_s_per_device'] > 0 and report['model']['space_to_depth']
  assert report['pipeline']['train_crop_per_core']['32'] > 0 and report['pipeline']['loader']['images_per_s'] > 0
  assert {r['recipe'] for r in report['projection']['rows']} >= {'mlperf_lars_resnet50', 'fastai_dawnbench_resnet50'}
  assert 'PROJECTED' in proc.stdout


def test_projection_uses_a_measured_rate_at_a_stage_size_and_flop_scales_the_rest(tmp_path):
  def fastai_hours(*extra):
    out = tmp_path / f'p{len(extra)}'
    cmd = [sys.executable, os.path.join(REPO, 'kernels', 'imagenet_bench.py'), '--parts=projection',
           '--model_rate=1000', '--projection_devices=1', f'--out_dir={out}', *extra]
    proc = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (row,) = [r for r in json.loads((out / 'imagenet_bench.json').read_text())['projection']['rows']
              if r['recipe'] == 'fastai_dawnbench_resnet50']
    return row
  flags = {k: v for k, v in (line.lstrip('-').split('=', 1) for line in open(
      os.path.join(REPO, 'experiments', 'imagenet', 'fastai_dawnbench_resnet50.flags'))
      if line.startswith('--') and '=' in line)}
  stages = wl.parse_stages(flags['stages'].split(','), int(flags['epochs']), 0.08)
  ends = [s.start_epoch for s in stages[1:]] + [int(flags['epochs'])]
  epochs_at = {s.size: end - s.start_epoch for s, end in zip(stages, ends)}
  assert 224 in epochs_at and 128 in epochs_at  # the recipe resizes progressively
  scaled = fastai_hours()
  assert scaled['hours_model_bound'] == pytest.approx(sum(
      e * 1281167 / (1000 * (224 / size)**2) for size, e in epochs_at.items()) / 3600)
  assert '128 px FLOP-scaled' in scaled['stage_rates']
  measured = fastai_hours('--size_rates=128:2000')  # slower than the FLOP scaling's 3,062 img/s
  assert '128 px measured' in measured['stage_rates']
  assert measured['hours_model_bound'] - scaled['hours_model_bound'] == pytest.approx(
      epochs_at[128] * 1281167 * (1 / 2000 - 1 / (1000 * (224 / 128)**2)) / 3600)


def test_benchmark_keeps_the_recipes_cudnn_engines_out_and_rejects_a_bad_list(tmp_path):
  base = [sys.executable, os.path.join(REPO, 'kernels', 'imagenet_bench.py'), '--parts=projection',
          '--model_rate=1000', '--projection_devices=1', f'--out_dir={tmp_path}']
  env = {k: v for k, v in _env().items() if k != 'CUDNN_ERRATA_JSON_FILE'}
  proc = subprocess.run(base, env=env, capture_output=True, text=True, timeout=120)
  assert proc.returncode == 0, proc.stderr[-3000:]
  errata = json.loads((tmp_path / 'imagenet_bench.json').read_text())['cudnn_errata']
  blocked = {r['engine'] for r in json.loads(open(errata).read())['rules']}
  (recipe,) = [line.split('=', 1)[1] for line in open(os.path.join(
      REPO, 'experiments', 'imagenet', 'synthetic_resnet50.flags')) if line.startswith('--cudnn_excluded_engines=')]
  assert blocked == {int(e) for e in recipe.split(',')}  # the benchmark times what the recipe compiles
  for bad in ('1,x', '-3'):
    proc = subprocess.run(base + [f'--cudnn_excluded_engines={bad}'], env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2 and proc.stderr.strip().count('\n') == 0, proc.stderr
    assert proc.stderr.startswith('error: --cudnn_excluded_engines')


def test_benchmark_scaling_part_over_two_fake_devices(tmp_path):
  out = tmp_path / 'bench'
  cmd = [sys.executable, os.path.join(REPO, 'kernels', 'imagenet_bench.py'), f'--out_dir={out}', '--parts=scaling',
         '--model=resnet10', '--width=4', '--image_size=32', '--batch_sizes=4', '--steps=2',
         '--warmup_steps=1', '--dtype=float32']
  env = dict(_env(), XLA_FLAGS='--xla_force_host_platform_device_count=2')
  proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, cwd=str(tmp_path))
  assert proc.returncode == 0, proc.stderr[-3000:]
  rows = json.loads((out / 'imagenet_bench.json').read_text())['scaling']['runs']
  assert [r['devices'] for r in rows] == [1, 2] and not any(r.get('error') for r in rows)
  assert rows[0]['efficiency'] == 1.0 and rows[1]['efficiency'] > 0
  assert rows[1]['images_per_s'] > 0 and 'weak scaling' in proc.stdout
