"""`python -m dawnjax.report`: scanning results (malformed files included), tables, plots; cost table."""
import json

import pytest

from dawnjax import cost
from dawnjax.errors import ConfigError
from dawnjax.report import __main__ as report_main
from dawnjax.report import dawnbench as db
from dawnjax.report import leaderboard
from dawnjax.report import summary as summary_lib


def run_summary(seeds=3, times=(1.0, 2.0, 3.0), accs=(60.0, 90.0, 94.2), tta=2):
  """A summary.json as RunReporter writes it (the fields the leaderboard reads, plus a few)."""
  per_seed = [{'seed': s, 'final': {'top1Accuracy': accs[-1]}, 'timed_seconds': times[-1],
               'epochs': [{'epoch': i + 1, 'timed_seconds': t + 0.01 * s, 'metrics': {'top1Accuracy': a},
                           'train_loss': 1.0, 'epoch_seconds': 1.0} for i, (t, a) in enumerate(zip(times, accs))]}
              for s in range(seeds)]
  return {'partial': False, 'task': 'cifar10', 'dataset': 'cifar10_jpeg', 'model': 'airbench-muon-64-256-256',
          'target': {'metric': 'top1Accuracy', 'threshold': 90.5, 'rule': '...'}, 'reached_target': True,
          'seeds': seeds, 'accuracy': {'n': seeds, 'mean': accs[-1], 'std': 0.12},
          'timed_seconds': {'mean': times[-1]}, 'time_to_target_seconds': times[1] + 0.01,
          'mfu': 0.21, 'train_examples_per_second': 480000.0, 'hardware_tag': '1xH100',
          'cost': {'cost_per_hour_usd': 12.29, 'time_to_target_cost_usd': 0.0068},
          'workload': {'recipe': {'tta_level': tta}}, 'per_seed': per_seed}


def inference_summary(model_dir):
  return {'kind': 'inference', 'task': 'cifar10', 'dataset': 'cifar10_jpeg', 'model': 'airbench-muon-64-256-256',
          'hardware_tag': '1xH100', 'latency_ms': 0.21, 'latency_p99_ms': 0.3, 'accuracy_field': 'top1Accuracy',
          'accuracy': 90.1, 'target': {'metric': 'top1Accuracy', 'threshold': 90.5}, 'qualifies': False,
          'cost_per_item_usd': 7.2e-7, 'throughput_items_per_second': 250000.0, 'model_dir': str(model_dir),
          'reported': {'path': 'exported', 'mode': 'host_graph', 'wait': 'spin', 'statistic': 'mean',
                       'graph_io_copies': 'kernel'}}


THIRD_PARTY_TSV = 'epoch\thours\ttop1Accuracy\n1\t0.001\t80.0\n2\t0.002\t94.1\n3\t0.003\t94.5\n'


def third_party_json(**over):
  return {'version': 'v1.0', 'author': 'someone', 'authorEmail': 'a@b.c', 'framework': 'PyTorch',
          'model': 'ResNet-9', 'hardware': '1 V100', 'costPerHour': 3.06, 'timestamp': '2019-01-01', 'misc': {},
          **over}


@pytest.fixture
def results(tmp_path):
  """Good results of every kind, the duplicates dawnjax writes, non-results, and malformed files."""
  root = tmp_path / 'results'
  run = root / 'muon_h100'
  summary_lib.write_summary(run / 'summary.json', run_summary())
  # dawnjax's own DAWNBench copy of the same run: must not be listed twice.
  (run / 'dawnjax_airbench_1xH100_JAX.tsv').write_text(THIRD_PARTY_TSV)
  (run / 'dawnjax_airbench_1xH100_JAX.json').write_text(json.dumps(third_party_json()))
  (run / 'model').mkdir()
  (run / 'model' / 'model.json').write_text(json.dumps({'kind': 'dawnjax-model'}))  # not a result
  summary_lib.write_summary(run / 'inference' / 'inference_summary.json', inference_summary('/elsewhere/model'))
  (run / 'inference' / 'x_JAX.json').write_text(json.dumps({**third_party_json(), 'latency': 0.21,
                                                            'top1Accuracy': 90.1}))
  other = root / 'third_party'
  other.mkdir()
  (other / 'someone_resnet9.tsv').write_text(THIRD_PARTY_TSV)
  (other / 'someone_resnet9.json').write_text(json.dumps(third_party_json()))
  (other / 'someone_inference.json').write_text(json.dumps({**third_party_json(), 'latency': 0.5,
                                                            'top1Accuracy': 94.3}))
  bad = root / 'bad'
  (bad / 'truncated').mkdir(parents=True)
  (bad / 'truncated' / 'summary.json').write_text('{"schema": 1, "task": "cifar')
  (bad / 'old').mkdir()
  (bad / 'old' / 'summary.json').write_text(json.dumps({'schema': 0, 'task': 'cifar10'}))
  (bad / 'fields').mkdir()
  summary_lib.write_summary(bad / 'fields' / 'summary.json', {'task': 'cifar10'})
  (bad / 'badrow.tsv').write_text('epoch\thours\ttop1Accuracy\n1\t0.001\tninety\n')
  (bad / 'badrow.json').write_text(json.dumps(third_party_json()))
  (bad / 'lonely.json').write_text(json.dumps(third_party_json()))
  (bad / '.summary.json.123.tmp').write_text('{')  # an atomic-write leftover: ignored
  return root


def test_scan_reports_good_files_and_one_line_per_malformed(results):
  found = leaderboard.scan([results])
  assert len(found.errors) == 5, found.errors
  joined = '\n'.join(found.errors)
  for name in ('truncated/summary.json', 'old/summary.json', 'fields/summary.json', 'badrow.tsv', 'lonely.json'):
    assert sum(name in e for e in found.errors) == 1, (name, joined)
  assert 'not valid JSON' in joined and "'ninety' is not a number" in joined and 'without its TSV' in joined
  kinds = sorted((e.kind, e.source) for e in found.entries)
  assert kinds == [('inference', 'DAWNBench file'), ('inference', 'dawnjax'),
                   ('train', 'DAWNBench file'), ('train', 'dawnjax')]
  run = next(e for e in found.entries if e.source == 'dawnjax' and e.kind == 'train')
  assert (run.seeds, run.tta, run.accuracy_mean, run.mfu) == (3, '2', 94.2, 0.21)
  assert run.latency_ms == 0.21  # linked: the inference dir lies inside the run dir
  assert len(run.curve) == 3 and run.curve[0] == (pytest.approx(1.01), 60.0)
  third = next(e for e in found.entries if e.source == 'DAWNBench file' and e.kind == 'train')
  assert third.time_to_target_s == pytest.approx(7.2) and third.cost_usd == pytest.approx(3.06 * 0.002)


def test_report_cli_prints_tables_beside_records_and_writes_plots(results, tmp_path, capsys):
  pytest.importorskip('matplotlib')
  plots = tmp_path / 'plots'
  rc = report_main.main([str(results), '--plot_dir', str(plots)])
  out, err = capsys.readouterr()
  assert rc == 1  # malformed files present; the rest still reported
  assert len([ln for ln in err.splitlines() if ln.startswith('error: ')]) == 5
  assert '== cifar10: training (time to target) ==' in out and '== cifar10: inference (batch-1 latency) ==' in out
  assert 'DAWNBench record' in out and 'Custom Resnet 9' in out  # the shipped records, side by side
  assert '94.20 ± 0.12' in out and '21.0%' in out and 'imagenet' not in out
  assert 'host_graph (kernel copies), spin' in out  # how the reported latency's requests were made
  pngs = sorted(plots.glob('*.png'))
  assert [p.name for p in pngs] == ['accuracy_vs_time_cifar10.png', 'throughput_mfu.png']
  for png in pngs:
    data = png.read_bytes()
    assert data[:8] == b'\x89PNG\r\n\x1a\n' and len(data) > 1000


def test_report_cli_without_results_or_matplotlib(tmp_path, capsys, monkeypatch):
  assert report_main.main([str(tmp_path)]) == 2
  assert 'no results found' in capsys.readouterr().err
  summary_lib.write_summary(tmp_path / 'r' / 'summary.json', run_summary(seeds=1))
  monkeypatch.setitem(__import__('sys').modules, 'matplotlib', None)
  assert report_main.main([str(tmp_path), '--plot_dir', str(tmp_path / 'p'), '--no_records']) == 0
  out, err = capsys.readouterr()
  assert err.strip() == 'plots skipped: matplotlib is not installed (pip install matplotlib)'
  assert 'DAWNBench record' not in out and not (tmp_path / 'p').exists()


def test_shipped_records_parse():
  records = leaderboard.load_records()
  assert {e.task for e in records} == {'cifar10', 'imagenet', 'squad'}
  best = min(e.time_to_target_s for e in records if e.task == 'cifar10' and e.kind == 'train')
  assert best == 9.4
  baidu = next(e for e in records if e.path == 'BAIDU-USA-GAIT_BaiduNet9P_8GV100_pytorch')
  assert baidu.cost_usd == pytest.approx(44.4 / 3600 * 8.5058)


# ------------------------------------------------------------------------------------ cost

def test_price_table_lookup_and_override():
  assert cost.lookup('NVIDIA H100 80GB HBM3').match == ('h100',)
  assert cost.lookup('NVIDIA A100-SXM4-80GB').device == 'NVIDIA A100 80GB'
  assert cost.lookup('NVIDIA A100-SXM4-40GB').device == 'NVIDIA A100 40GB'
  assert cost.lookup('TPU v5 lite').device == 'Cloud TPU v5e' and cost.lookup('TPU v5').device == 'Cloud TPU v5p'
  for kind in ('TPU v2', 'TPU v3', 'TPU v4', 'TPU v6 lite', 'NVIDIA H200'):
    assert cost.lookup(kind) is not None, kind
  price = cost.hourly_price('NVIDIA H100 80GB HBM3', 8)
  assert price.usd_per_hour == pytest.approx(8 * 12.29) and 'price table' in price.source
  assert cost.hourly_price('NVIDIA H100 80GB HBM3', 8, override=20.0).usd_per_hour == 20.0
  assert cost.hourly_price('cpu', 1).usd_per_hour is None
  assert cost.cost_usd(3600, 12.29) == pytest.approx(12.29)
  assert cost.cost_per_item_usd(1.0, 3.6) == pytest.approx(1e-6)
  for row in cost.load_price_table():
    assert row.as_of and row.source  # every price says where and when it is from


def test_price_table_rejects_inconsistent_rows():
  header = '\t'.join(('match', 'device', 'usd_per_device_hour', 'offer', 'offer_usd_per_hour',
                      'devices_per_offer', 'as_of', 'source', 'note'))
  with pytest.raises(ConfigError, match='line 3'):
    cost.parse_price_table(f'# c\n{header}\nh100\tH100\t12.29\tp5\t50.0\t8\t2023-07\tAWS\t\n')
  with pytest.raises(ConfigError, match='header'):
    cost.parse_price_table('h100\tH100\n')


def test_dawnbench_inference_json_round_trips_through_the_scan(tmp_path):
  obj = db.inference_json(author='a', author_email='a@b.c', framework='JAX', model='m', hardware='1x H100',
                          timestamp='2025-01-01', latency_ms=0.2, cost_per_item_usd=1e-7,
                          accuracy_field='top1Accuracy', accuracy_value=94.1)
  (tmp_path / 'm.json').write_text(json.dumps(obj))
  (entry,) = leaderboard.scan([tmp_path]).entries
  assert (entry.kind, entry.task, entry.latency_ms, entry.cost_usd) == ('inference', 'cifar10', 0.2, 1e-7)
