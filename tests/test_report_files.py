"""Result writers: DAWNBench JSON/TSV, atomic writes, statistics, TensorBoard, summaries."""
import datetime
import json
import math
import os

import numpy as np
import pytest

from dawnjax.errors import ResultsError
from dawnjax.report import atomic
from dawnjax.report import dawnbench as db
from dawnjax.report import stats
from dawnjax.report import summary
from dawnjax.report.tensorboard import ScalarWriter

ROWS = {
    'cifar10': [
        db.EpochRow(0, 0.00063263, {'top1Accuracy': 54.1}),
        db.EpochRow(1, 0.00126519, {'top1Accuracy': 93.99}),
        db.EpochRow(2, 0.0019044111111111111, {'top1Accuracy': 94.2}),
    ],
    'imagenet': [
        db.EpochRow(1, 0.07166666666666667, {'top1Accuracy': 33.57, 'top5Accuracy': 68.93}),
        db.EpochRow(2.5, 0.1461111111111111, {'top1Accuracy': 52.51, 'top5Accuracy': 93.0}),
    ],
    'squad': [
        db.EpochRow(1, 0.7638888888888888, {'f1Score': 0.5369029640999999}),
        db.EpochRow(2, 1.5238381055555557, {'f1Score': 0.7310130}),
    ],
}


def _training_json(**overrides):
  kwargs = dict(author='dawnjax', author_email='dawnjax@example.com', framework='JAX 0.4.35',
                model='ResNet-9', hardware='1 NVIDIA H100 80GB', timestamp='2025-01-31',
                cost_per_hour=3.0, misc={'seed': 0})
  kwargs.update(overrides)
  return db.training_json(**kwargs)


# --- TSV --------------------------------------------------------------------------------------

@pytest.mark.parametrize('task', sorted(db.TSV_COLUMNS))
def test_tsv_round_trip(task, tmp_path):
  text = db.format_tsv(task, ROWS[task])
  assert text.splitlines()[0] == '\t'.join(db.TSV_COLUMNS[task])
  assert db.parse_tsv(text) == ROWS[task]  # task inferred from the header
  assert db.parse_tsv(text, task=task) == ROWS[task]
  path = tmp_path / f'{task}.tsv'
  path.write_text(text)
  assert db.parse_tsv(path) == ROWS[task]
  assert db.parse_tsv(str(path)) == ROWS[task]


def test_tsv_keeps_int_epochs_and_float_epochs_apart():
  rows = db.parse_tsv(db.format_tsv('imagenet', ROWS['imagenet']))
  assert type(rows[0].epoch) is int and type(rows[1].epoch) is float


def test_parse_tsv_reads_published_entry_with_blank_lines_and_crlf():
  text = 'epoch\thours\ttop1Accuracy\r\n0\t0.00063263\t54.10\r\n\r\n1\t0.00126519\t69.75\r\n\n'
  rows = db.parse_tsv(text)
  assert [r.epoch for r in rows] == [0, 1]
  assert rows[1].metrics == {'top1Accuracy': 69.75}


def test_parse_tsv_task_mismatch():
  text = db.format_tsv('cifar10', ROWS['cifar10'])
  with pytest.raises(ResultsError, match=r'line 1: .*not the imagenet header'):
    db.parse_tsv(text, task='imagenet')


@pytest.mark.parametrize('text, message', [
    ('epoch\thours\taccuracy\n0\t0.1\t50\n', r'line 1: header .* matches no DAWNBench task'),
    ('epoch\thours\ttop1Accuracy\n0\t0.1\t50\n1\t0.2\n', r'line 3: 2 tab-separated fields'),
    ('epoch\thours\ttop1Accuracy\n0\tabc\t50\n', r"line 2: hours 'abc' is not a number"),
    ('epoch\thours\ttop1Accuracy\n0\t0.1\tnan\n', r'line 2: top1Accuracy must be a finite'),
    ('epoch\thours\ttop1Accuracy\n1\t0.1\t50\n1\t0.2\t60\n', r'line 3: epoch 1 does not increase'),
    ('epoch\thours\ttop1Accuracy\n1\t0.2\t50\n2\t0.1\t60\n',
     r'line 3: hours 0.1 does not increase'),
    ('epoch\thours\tf1Score\n1\t0.2\t73.1\n', r'line 2: f1Score=73.1 is outside \[0, 1\]'),
    ('\n\n', r'empty'),
])
def test_parse_tsv_errors_name_file_and_line(text, message, tmp_path):
  path = tmp_path / 'bad.tsv'
  path.write_text(text)
  with pytest.raises(ResultsError, match=message) as err:
    db.parse_tsv(path)
  assert str(path) in str(err.value)


def test_parse_tsv_missing_file(tmp_path):
  with pytest.raises(ResultsError, match='cannot read'):
    db.parse_tsv(tmp_path / 'absent.tsv')


def test_format_tsv_rejects_bad_rows():
  with pytest.raises(ResultsError, match='do not match the squad columns'):
    db.format_tsv('squad', [db.EpochRow(1, 0.1, {'top1Accuracy': 50.0})])
  with pytest.raises(ResultsError, match='unknown DAWNBench task'):
    db.format_tsv('mnist', [])
  with pytest.raises(ResultsError, match='epoch 1 does not increase'):
    db.format_tsv('cifar10', [db.EpochRow(1, 0.1, {'top1Accuracy': 50.0}),
                              db.EpochRow(1, 0.2, {'top1Accuracy': 60.0})])


# --- first crossing ---------------------------------------------------------------------------

def _rows(values, metric='top1Accuracy'):
  return [db.EpochRow(i, 0.01 * (i + 1), {metric: v}) for i, v in enumerate(values)]


def test_first_crossing_takes_first_row_not_best():
  rows = _rows([50.0, 94.5, 93.0, 96.0])
  assert db.first_crossing(rows, 'top1Accuracy', 94.0).epoch == 1


def test_first_crossing_equality_counts():
  rows = _rows([50.0, 93.99, 94.0, 95.0])
  assert db.first_crossing(rows, 'top1Accuracy', 94.0).epoch == 2


def test_first_crossing_none_when_never_reached():
  assert db.first_crossing(_rows([50.0, 93.99, float('nan')]), 'top1Accuracy', 94.0) is None
  assert db.first_crossing([], 'top1Accuracy', 94.0) is None


def test_first_crossing_lower_is_better():
  rows = _rows([3.0, 2.0, 1.5, 1.0], metric='loss')
  assert db.first_crossing(rows, 'loss', 1.5, higher_is_better=False).epoch == 2
  assert db.first_crossing(rows, 'loss', 0.5, higher_is_better=False) is None


def test_first_crossing_imagenet_top5():
  row = db.first_crossing(ROWS['imagenet'], 'top5Accuracy', 93.0)
  assert row.epoch == 2.5 and row.hours == pytest.approx(0.1461111111111111)


def test_first_crossing_unknown_metric():
  with pytest.raises(ResultsError, match="no metric 'top5Accuracy'"):
    db.first_crossing(ROWS['cifar10'], 'top5Accuracy', 93.0)


# --- JSON -------------------------------------------------------------------------------------

def test_training_json_fields_and_order():
  obj = _training_json(code_url='https://example.com/dawnjax')
  assert list(obj) == ['version', 'author', 'authorEmail', 'framework', 'codeURL', 'model',
                       'hardware', 'costPerHour', 'timestamp', 'misc']
  assert obj['version'] == 'v1.0'
  assert 'logFilename' not in obj  # None optionals are omitted, not null


def test_training_json_accepts_date():
  assert _training_json(timestamp=datetime.date(2025, 2, 3))['timestamp'] == '2025-02-03'


def test_inference_json():
  obj = db.inference_json(author='a', author_email='a@b.c', framework='JAX', model='ResNet-9',
                          hardware='1 H100', timestamp='2025-01-31', latency_ms=0.12,
                          cost_per_item_usd=1e-7, accuracy_field='top1Accuracy',
                          accuracy_value=94.1, misc={})
  assert (obj['latency'], obj['cost'], obj['top1Accuracy']) == (0.12, 1e-7, 94.1)
  db.validate_json(obj, kind='inference', task='cifar10')
  with pytest.raises(ResultsError, match="'top5Accuracy' is missing"):
    db.validate_json(obj, kind='inference', task='imagenet')
  with pytest.raises(ResultsError, match='accuracy_field'):
    db.inference_json(author='a', author_email='a@b.c', framework='JAX', model='m',
                      hardware='h', timestamp='2025-01-31', latency_ms=1.0,
                      cost_per_item_usd=None, accuracy_field='accuracy', accuracy_value=94.0)


def _without(obj, field):
  return {k: v for k, v in obj.items() if k != field}


@pytest.mark.parametrize('mutate, field', [
    (lambda o: _without(o, 'version'), 'version'),
    (lambda o: {**o, 'version': 'v2.0'}, 'version'),
    (lambda o: _without(o, 'author'), 'author'),
    (lambda o: {**o, 'author': 3}, 'author'),
    (lambda o: {**o, 'model': ''}, 'model'),
    (lambda o: {**o, 'timestamp': '2025/01/31'}, 'timestamp'),
    (lambda o: {**o, 'timestamp': '2025-02-30'}, 'timestamp'),
    (lambda o: {**o, 'timestamp': 20250131}, 'timestamp'),
    (lambda o: {**o, 'costPerHour': '3.0'}, 'costPerHour'),
    (lambda o: {**o, 'costPerHour': True}, 'costPerHour'),
    (lambda o: {**o, 'costPerHour': -1.0}, 'costPerHour'),
    (lambda o: {**o, 'codeURL': 5}, 'codeURL'),
    (lambda o: {**o, 'misc': []}, 'misc'),
])
def test_validate_json_names_field(mutate, field):
  obj = mutate(_training_json())
  with pytest.raises(ResultsError, match=f"field '{field}'"):
    db.validate_json(obj, kind='training')


@pytest.mark.parametrize('mutate, field', [
    (lambda o: _without(o, 'latency'), 'latency'),
    (lambda o: {**o, 'latency': 0.0}, 'latency'),
    (lambda o: {**o, 'cost': 'cheap'}, 'cost'),
    (lambda o: {**o, 'f1Score': 73.0}, 'f1Score'),
])
def test_validate_inference_json_names_field(mutate, field):
  obj = db.inference_json(author='a', author_email='a@b.c', framework='JAX', model='DrQA',
                          hardware='1 H100', timestamp='2025-01-31', latency_ms=7.5,
                          cost_per_item_usd=2e-6, accuracy_field='f1Score',
                          accuracy_value=0.75)
  with pytest.raises(ResultsError, match=f"field '{field}'"):
    db.validate_json(mutate(obj), kind='inference', task='squad')


def test_validate_json_accepts_published_entry():
  published = {'version': 'v1.0', 'author': 'Stanford DAWN',
               'authorEmail': 'dawn-bench@cs.stanford.edu', 'framework': 'TensorFlow',
               'codeURL': 'https://github.com/stanford-futuredata/dawn-benchmark',
               'model': 'ResNet 56', 'hardware': '1 K80 / 30 GB / 8 CPU (Google Cloud)',
               'costPerHour': 0.90, 'timestamp': '2017-08-14', 'misc': {}}
  db.validate_json(published)
  db.validate_json(_without(published, 'misc'))  # misc is optional upstream


def test_result_basename():
  assert (db.result_basename('Stanford DAWN', 'ResNet 56', '1k80-gc', 'TensorFlow 1.2')
          == 'Stanford-DAWN_ResNet-56_1k80-gc_TensorFlow-1.2')
  # '_' separates the parts, so it must not survive inside one; nor may path separators.
  assert db.result_basename('my_team', 'a/b', '..1h100', 'jax') == 'my-team_a-b_1h100_jax'
  with pytest.raises(ResultsError, match='hardware tag'):
    db.result_basename('a', 'b', ' / ', 'c')


def test_write_training_result(tmp_path):
  obj = _training_json()
  out = tmp_path / 'results' / 'cifar10'
  json_path, tsv_path = db.write_training_result(out, task='cifar10', rows=ROWS['cifar10'],
                                                 json_obj=obj, basename='dawnjax_resnet9_1h100_jax')
  assert json_path == out / 'dawnjax_resnet9_1h100_jax.json'
  assert tsv_path == out / 'dawnjax_resnet9_1h100_jax.tsv'
  loaded = json.loads(json_path.read_text())
  assert loaded == obj
  db.validate_json(loaded)
  assert db.parse_tsv(tsv_path, task='cifar10') == ROWS['cifar10']
  assert sorted(p.name for p in out.iterdir()) == [json_path.name, tsv_path.name]


def test_write_training_result_default_basename(tmp_path):
  json_path, _ = db.write_training_result(tmp_path, task='squad', rows=ROWS['squad'],
                                          json_obj=_training_json())
  assert json_path.name == 'dawnjax_ResNet-9_1-NVIDIA-H100-80GB_JAX-0.4.35.json'


def test_write_training_result_validates_before_writing(tmp_path):
  out = tmp_path / 'results'
  bad = {**_training_json(), 'timestamp': 'yesterday'}
  with pytest.raises(ResultsError, match="field 'timestamp'"):
    db.write_training_result(out, task='cifar10', rows=ROWS['cifar10'], json_obj=bad)
  with pytest.raises(ResultsError, match='no TSV rows'):
    db.write_training_result(out, task='cifar10', rows=[], json_obj=_training_json())
  with pytest.raises(ResultsError, match='do not match'):
    db.write_training_result(out, task='squad', rows=ROWS['cifar10'], json_obj=_training_json())
  with pytest.raises(ResultsError, match='plain file name'):
    db.write_training_result(out, task='cifar10', rows=ROWS['cifar10'],
                             json_obj=_training_json(), basename='../escape')
  assert not out.exists()


# --- atomic writes ----------------------------------------------------------------------------

def test_atomic_writes_make_parents_and_normal_mode(tmp_path):
  path = atomic.atomic_write_text(tmp_path / 'a' / 'b' / 'x.txt', 'hello\n')
  assert path.read_text() == 'hello\n'
  atomic.atomic_write_bytes(path, b'\x00\x01')
  assert path.read_bytes() == b'\x00\x01'
  atomic.atomic_write_json(path, {'k': [1, 2.5, 'é']})
  assert json.loads(path.read_text(encoding='utf-8')) == {'k': [1, 2.5, 'é']}
  umask = os.umask(0)
  os.umask(umask)
  assert (path.stat().st_mode & 0o777) == (0o666 & ~umask)
  assert os.listdir(path.parent) == ['x.txt']


@pytest.mark.parametrize('poison', [object(), float('nan')])
def test_atomic_write_json_crash_midway_keeps_old_file(tmp_path, poison):
  path = tmp_path / 'result.json'
  atomic.atomic_write_json(path, {'old': True})
  before = path.read_bytes()
  # Big enough that json has streamed part of it into the temp file before reaching the poison.
  obj = {'padding': ['x' * 100] * 1000, 'bad': poison}
  with pytest.raises((TypeError, ValueError)):
    atomic.atomic_write_json(path, obj)
  assert path.read_bytes() == before
  assert os.listdir(tmp_path) == ['result.json']  # no temp file left behind


def test_atomic_write_interrupted_before_rename_keeps_old_file(tmp_path, monkeypatch):
  path = tmp_path / 'x.txt'
  atomic.atomic_write_text(path, 'old')

  def interrupt(fd):
    raise KeyboardInterrupt  # Ctrl-C after the data is written, before the rename

  monkeypatch.setattr(atomic.os, 'fsync', interrupt)
  with pytest.raises(KeyboardInterrupt):
    atomic.atomic_write_text(path, 'new')
  assert path.read_text() == 'old'
  assert os.listdir(tmp_path) == ['x.txt']


# --- stats ------------------------------------------------------------------------------------

@pytest.mark.parametrize('df, expected', [
    (1, 12.706), (2, 4.303), (9, 2.262), (19, 2.093), (29, 2.045), (30, 2.042), (31, 2.040),
    (40, 2.021), (60, 2.000), (100, 1.984), (1000, 1.962),
])
def test_t_quantile_975_known_values(df, expected):
  assert stats.t_quantile_975(df) == pytest.approx(expected, abs=5e-4)


def test_t_quantile_975_decreases_towards_normal():
  values = [stats.t_quantile_975(df) for df in range(1, 300)]
  assert all(a > b for a, b in zip(values, values[1:]))  # no jump at the table's end
  assert values[-1] > 1.959963984540054
  with pytest.raises(ValueError):
    stats.t_quantile_975(0)


def test_summarize_hand_computed():
  s = stats.summarize([1.0, 2.0, 3.0, 4.0])
  # mean 2.5; sample variance (2.25+0.25+0.25+2.25)/3 = 5/3; half-width t(3)*std/sqrt(4).
  std = math.sqrt(5 / 3)
  half = 3.182446305 * std / 2
  assert s['n'] == 4
  assert (s['mean'], s['min'], s['max']) == (2.5, 1.0, 4.0)
  assert s['std'] == pytest.approx(std)
  assert s['ci95_low'] == pytest.approx(2.5 - half)
  assert s['ci95_high'] == pytest.approx(2.5 + half)
  assert s['ci95_low'] == pytest.approx(0.445740, abs=1e-6)


def test_summarize_ten_seeds():
  values = [90.5, 90.7, 90.6, 90.8, 90.4, 90.9, 90.6, 90.7, 90.5, 90.8]
  s = stats.summarize(values)
  assert s['mean'] == pytest.approx(np.mean(values))
  assert s['std'] == pytest.approx(np.std(values, ddof=1))
  half = 2.262157163 * np.std(values, ddof=1) / math.sqrt(10)
  assert s['ci95_high'] - s['mean'] == pytest.approx(half)


def test_summarize_single_value_and_errors():
  s = stats.summarize([1.1])
  assert (s['n'], s['mean'], s['std'], s['min'], s['max']) == (1, 1.1, 0.0, 1.1, 1.1)
  assert math.isnan(s['ci95_low']) and math.isnan(s['ci95_high'])
  with pytest.raises(ValueError):
    stats.summarize([])
  with pytest.raises(ValueError):
    stats.summarize([1.0, float('inf')])


# --- TensorBoard ------------------------------------------------------------------------------

def test_tensorboard_round_trip(tmp_path):
  from tensorboard.backend.event_processing import event_accumulator as ea

  logdir = tmp_path / 'tb'
  with ScalarWriter(logdir) as writer:
    for step in range(3):
      writer.scalar('train/loss', 1.0 / (step + 1), step)
    writer.scalars({'eval/top1Accuracy': 93.5, 'eval/seconds': 1.25}, step=2)
    writer.scalar('train/lr', np.float32(0.5), 7)  # numpy scalars are accepted
    writer.text('flags', '--seed=0 --epochs=10', step=0)
  writer.close()  # second close is a no-op
  with pytest.raises(ValueError, match='closed'):
    writer.scalar('late', 1.0, 9)

  acc = ea.EventAccumulator(str(logdir))
  acc.Reload()
  tags = acc.Tags()
  assert set(tags[ea.SCALARS]) == {'train/loss', 'eval/top1Accuracy', 'eval/seconds', 'train/lr'}
  loss = acc.Scalars('train/loss')
  assert [e.step for e in loss] == [0, 1, 2]
  assert [e.value for e in loss] == pytest.approx([1.0, 0.5, 1 / 3])
  assert [(e.step, e.value) for e in acc.Scalars('eval/top1Accuracy')] == [(2, 93.5)]
  assert [(e.step, e.value) for e in acc.Scalars('train/lr')] == [(7, 0.5)]
  assert 'flags' in tags[ea.TENSORS]
  (text_event,) = acc.Tensors('flags')
  assert text_event.tensor_proto.string_val == [b'--seed=0 --epochs=10']


# --- summary ----------------------------------------------------------------------------------

def test_write_and_read_summary(tmp_path):
  path = tmp_path / 'run' / 'summary.json'
  summary.write_summary(path, {'task': 'cifar10', 'seconds': np.float64(1.5),
                               'epochs': np.int32(10), 'loss': float('nan'),
                               'curve': np.array([1.0, 2.0]), 'stats': {'n': 3}})
  raw = json.loads(path.read_text())
  assert list(raw)[0] == 'schema'
  assert raw == {'schema': summary.SCHEMA, 'task': 'cifar10', 'seconds': 1.5, 'epochs': 10,
                 'loss': None, 'curve': [1.0, 2.0], 'stats': {'n': 3}}
  assert summary.read_summary(path) == raw


def test_summary_schema_errors(tmp_path):
  path = tmp_path / 'summary.json'
  with pytest.raises(ResultsError, match='schema'):
    summary.write_summary(path, {'schema': 999})
  path.write_text('{"schema": 0}')
  with pytest.raises(ResultsError, match='schema 0'):
    summary.read_summary(path)
  path.write_text('{not json')
  with pytest.raises(ResultsError, match='not valid JSON'):
    summary.read_summary(path)
  with pytest.raises(ResultsError, match='cannot encode'):
    summary.write_summary(tmp_path / 'other.json', {'bad': object()})
  assert not (tmp_path / 'other.json').exists()


def test_format_table():
  rows = [{'run': 'airbench', 'seconds': 1.63, 'acc': 90.81},
          {'run': 'dawnjax-resnet9', 'seconds': 12.5, 'acc': None},
          {'run': 'x'}]
  table = summary.format_table(rows, [('run', 'Run', ''), ('seconds', 'Time (s)', '.2f'),
                                      ('acc', 'Top-1 %', lambda v: f'{v:.1f}%')])
  assert table.split('\n') == [
      'Run              Time (s)  Top-1 %',
      '---------------  --------  -------',
      'airbench             1.63    90.8%',
      'dawnjax-resnet9     12.50        -',
      'x                       -        -',
  ]
  assert summary.format_table([], [('a', 'A', '')]) == 'A\n-'
