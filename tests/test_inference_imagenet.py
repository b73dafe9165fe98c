"""ImageNet inference: a trained ResNet served one validation image at a time, scored on top-5 (and
top-1) exactly as its training run evaluated it, and never reported as ImageNet on another tree."""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from dawnjax import parallel
from dawnjax.errors import ConfigError
from dawnjax.experiments import inference
from dawnjax.inference import export, models
from dawnjax.report import dawnbench
from dawnjax.workloads import imagenet as wl

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, 'tests'))
from test_imagenet_data import make_tree  # noqa: E402

ENV = dict(os.environ, JAX_PLATFORMS='cpu', PYTHONPATH=REPO + os.pathsep + os.environ.get('PYTHONPATH', ''))
CLASSES = tuple('abcdefgh')  # 8 classes: top-5 is not trivially 100%
PER_CLASS = (12, 4)


def run_inference(*args):
  proc = subprocess.run([sys.executable, '-m', 'dawnjax.experiments.inference', '--task=imagenet', *args],
                        env=ENV, capture_output=True, text=True, timeout=600)
  return proc.returncode, proc.stdout, proc.stderr


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
  """One epoch of a tiny ResNet on a class-folder tree, its evaluation, and its exported model."""
  root = tmp_path_factory.mktemp('imagenet_inference')
  tree = make_tree(str(root / 'tree'), classes=CLASSES, per_class=PER_CLASS)
  recipe = wl.ImageNetRecipe(model='resnet10', width=4, dtype='float32', epochs=1, stages=('0:32:32',),
                             eval_size=32, eval_crop_ratio=0.75, eval_batch_size=16, lr=0.05,
                             lr_reference_batch=32, warmup_epochs=0)
  work = wl.ImageNetWorkload(recipe, parallel.make_mesh(1), wl.DataConfig(dataset='tree', data_dir=tree))
  try:
    work.load_data()
    work.compile()
    state, _ = work.train_epoch(work.init(0), 0)
    metrics = work.evaluate(state, final=True)
    export.export_trained(work, state, root / 'run' / 'model', seed=0, final_metrics=metrics, meta={})
  finally:
    work.close()
  assert 0 < metrics['top1Accuracy'] <= metrics['top5Accuracy'] < 100.0  # top-5 of 8 classes is a real test
  return root, tree, metrics


def test_top5_classifier_returns_the_best_classes_best_first():
  logits = np.array([[0.1, 3.0, 2.0, -1.0, 0.5, 2.5, 0.0]], np.float32)
  classify = models.classifier(lambda _v, x: x, top_k=5)
  np.testing.assert_array_equal(classify(None, logits), [[1, 5, 2, 4, 0]])
  np.testing.assert_array_equal(models.classifier(lambda _v, x: x)(None, logits), [1])
  labels = np.array([5, 3])
  metrics = inference.imagenet_metrics(labels)(np.array([[1, 5, 2, 4, 6], [3, 0, 1, 2, 4]]))
  assert metrics == {'top1Accuracy': 50.0, 'top5Accuracy': 100.0}


def test_served_model_scores_exactly_what_training_evaluated_and_is_not_called_imagenet(trained):
  root, tree, trained_metrics = trained
  out = root / 'served'
  rc, stdout, stderr = run_inference(
      f'--checkpoint={root / "run"}', f'--data_dir={tree}', f'--output_dir={out}', '--num_workers=2',
      '--warmup=2', '--throughput_batch=8', '--throughput_passes=1', '--bound_items=0',
      '--latency_modes=host,device', '--nofold_batchnorm', '--target=0')
  assert rc == 0, stderr[-3000:]
  s = json.loads((out / 'inference_summary.json').read_text())
  assert s['protocol']['batchnorm'].startswith('as trained')
  n_val = len(CLASSES) * PER_CLASS[1]
  assert s['protocol']['count'] == n_val and s['accuracy_field'] == 'top5Accuracy'
  # The same images (host decode, resize, centre crop) through the same network, one at a time.
  assert s['metrics']['top1Accuracy'] == pytest.approx(trained_metrics['top1Accuracy'])
  assert s['metrics']['top5Accuracy'] == pytest.approx(trained_metrics['top5Accuracy'])
  assert s['accuracy'] == s['metrics']['top5Accuracy'] < 100.0
  for path in s['paths'].values():
    assert path['throughput']['metrics'] == s['metrics']
    for mode in path['modes'].values():
      assert mode['n'] == n_val and mode['metrics'] == s['metrics']
  assert s['native_vs_exported_predictions_differ'] == 0
  assert not s['qualifies'] and s['not_qualifying_because'] == ['tree_as_imagenet_tree is not the imagenet test set']
  assert s['test_set']['host_pipeline']['images'] == n_val and 'class-folder' in s['test_set']['source']
  assert 'centre crop 32' in s['test_set']['preprocessing']
  artifact = json.loads((out / 'exported' / 'artifact.json').read_text())
  assert artifact['output'].startswith('int32 [5] best classes') and artifact['input']['shape'] == ['b', 32, 32, 3]
  (result,) = [p for p in out.glob('*.json') if p.name != 'inference_summary.json']
  obj = json.loads(result.read_text())
  dawnbench.validate_json(obj, kind='inference', task='imagenet')
  assert obj['top5Accuracy'] == s['accuracy'] and obj['misc']['metrics'] == s['metrics']
  assert 'served accuracy: top1Accuracy' in stdout

  # The exported artifact alone, decoded again: the same figures.
  again = root / 'served_again'
  rc, _, stderr = run_inference(f'--exported={out / "exported"}', f'--data_dir={tree}', f'--output_dir={again}',
                                '--num_workers=0', '--warmup=1', '--throughput_batch=0', '--bound_items=0',
                                '--latency_modes=device', '--target=0')
  assert rc == 0, stderr[-3000:]
  assert json.loads((again / 'inference_summary.json').read_text())['metrics'] == s['metrics']


def test_folded_batchnorm_is_the_default_serves_the_trained_classes_and_says_so(trained, tmp_path):
  root, tree, trained_metrics = trained
  out = tmp_path / 'folded'
  rc, _, stderr = run_inference(
      f'--checkpoint={root / "run"}', f'--data_dir={tree}', f'--output_dir={out}', '--num_workers=0',
      '--warmup=1', '--throughput_batch=0', '--bound_items=0', '--latency_modes=device', '--target=0')
  assert rc == 0, stderr[-3000:]
  s = json.loads((out / 'inference_summary.json').read_text())
  assert s['protocol']['batchnorm'].startswith('folded into the convolutions')
  assert s['metrics'] == pytest.approx(trained_metrics)  # float32: folding changes only rounding
  assert s['native_vs_exported_predictions_differ'] == 0
  assert json.loads((out / 'exported' / 'artifact.json').read_text())['batchnorm_folded'] is True
  rc, _, stderr = run_inference(f'--exported={out / "exported"}', f'--data_dir={tree}', '--fold_batchnorm',
                                f'--output_dir={tmp_path / "again"}')
  assert rc != 0 and 'an exported artifact keeps the form it was exported in' in stderr.strip().splitlines()[-1]
  with pytest.raises(ConfigError, match='only imagenet models fold'):
    models.apply_fn_for({'task': 'cifar10', 'model_config': {}}, fold_batchnorm=True)


def test_synthetic_model_is_timed_on_random_images_and_never_qualifies(trained, tmp_path):
  root, _, _ = trained
  model = tmp_path / 'model'
  shutil.copytree(root / 'run' / 'model', model)
  manifest = json.loads((model / 'model.json').read_text())
  manifest['dataset'] = wl.SYNTHETIC_NAME  # as a --dataset=synthetic run records it
  (model / 'model.json').write_text(json.dumps(manifest))
  rc, _, stderr = run_inference(f'--checkpoint={model}', f'--output_dir={tmp_path / "out"}', '--test_subset=6',
                                '--warmup=1', '--throughput_batch=0', '--bound_items=0', '--latency_modes=device',
                                '--nowrite_exported', '--target=0')
  assert rc == 0, stderr[-3000:]
  s = json.loads((tmp_path / 'out' / 'inference_summary.json').read_text())
  assert s['protocol']['count'] == 6 and 'random uint8 images of 32 px' in s['test_set']['source']
  assert not s['qualifies'] and any('generated data' in r for r in s['not_qualifying_because'])


def test_missing_data_or_other_class_count_is_one_clear_line(trained, tmp_path):
  root, _, _ = trained
  rc, _, stderr = run_inference(f'--checkpoint={root / "run"}', f'--output_dir={tmp_path / "a"}')
  assert rc != 0 and '--data_dir is required: the ImageNet validation split' in stderr.strip().splitlines()[-1]
  other = make_tree(str(tmp_path / 'three'), per_class=(2, 1))
  rc, _, stderr = run_inference(f'--checkpoint={root / "run"}', f'--data_dir={other}',
                                f'--output_dir={tmp_path / "b"}', '--num_workers=0')
  assert rc != 0 and 'has 3 classes but the model has 8' in stderr.strip().splitlines()[-1]



def test_latency_trace_serves_a_trained_checkpoint_as_the_benchmark_does(trained, tmp_path):
  root, _, _ = trained
  proc = subprocess.run([sys.executable, os.path.join(REPO, 'kernels', 'latency_trace.py'),
                         f'--checkpoint={root / "run"}', '--calls=3', '--warmup=1', f'--trace_dir={tmp_path}'],
                        env=ENV, capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert 'latency trace of imagenet resnet10-w4 (BatchNorm folded)' in proc.stdout
  assert 'served ' in proc.stdout and 'readback_spin' in proc.stdout
