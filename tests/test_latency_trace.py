"""kernels/latency_trace.py: a traced batch-1 call split into launch, device span and completion notice."""
import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'kernels'))
import latency_trace  # noqa: E402

HOST, GPU = 1, 2


def _events():
  call = lambda ts, dur, row='served': {'ph': 'X', 'pid': HOST, 'tid': 1, 'ts': ts, 'dur': dur,
                                         'name': latency_trace.PREFIX + row}
  kernel = lambda ts, dur, name='fusion': {'ph': 'X', 'pid': GPU, 'tid': 9, 'ts': ts, 'dur': dur, 'name': name}
  host = lambda ts, dur, name: {'ph': 'X', 'pid': HOST, 'tid': 2, 'ts': ts, 'dur': dur, 'name': name}
  return [
      {'ph': 'M', 'pid': HOST, 'name': 'process_name', 'args': {'name': '/host:CPU'}},
      {'ph': 'M', 'pid': GPU, 'name': 'process_name', 'args': {'name': '/device:GPU:0'}},
      # Call 1: kernels 30..40 and 45..60 (busy 25 of a 30 us span), done at 100.
      call(0, 100), kernel(30, 10), kernel(45, 15), host(5, 20, 'Execute'),
      # Call 2: one kernel 250..270, done at 300.
      call(200, 100), kernel(250, 20), host(210, 10, 'Execute'),
      # Between the calls (a read-back after the clock) and in another row: not counted.
      host(120, 30, 'readback'), call(400, 50, 'noop'), kernel(420, 5),
  ]


def test_split_calls_separates_launch_device_and_notice():
  r = latency_trace.split_calls(_events(), 'served')
  assert r['calls'] == r['calls_with_kernels'] == 2
  assert r['wall_us'] == 100
  assert r['launch_us'] == (30 + 50) / 2
  assert r['device_us'] == (30 + 20) / 2
  assert r['notice_us'] == (40 + 30) / 2
  assert r['kernel_busy_us'] == (25 + 20) / 2
  assert r['kernels_per_call'] == 1.5
  assert r['host_events'] == [{'name': 'Execute', 'us_per_call': 15.0, 'per_call': 1.0}]
  assert r['kernels'] == [{'name': 'fusion', 'us_per_call': 22.5, 'per_call': 1.5}]
  # Call 1's one gap (40..45) between its two kernels; call 2 has none: 5 us over 2 calls, named by its kernels.
  assert r['gaps'] == [{'name': 'fusion -> fusion', 'us_per_call': 2.5, 'per_call': 0.5}]
  assert 'served: device kernels' in latency_trace.table({'served': r}, {'served': 90.0}, top=5)
  assert 'served: gaps in the device span' in latency_trace.table({'served': r}, {'served': 90.0}, top=5)
  assert latency_trace.split_calls(_events(), 'noop')['device_us'] == 5


def test_split_calls_names_a_missing_row():
  with pytest.raises(ValueError, match='no annotated calls named'):
    latency_trace.split_calls(_events(), 'readback')


def test_graph_nodes_probe_fits_the_cost_of_one_node():
  import graph_nodes_probe
  slope, intercept = graph_nodes_probe.fit([(4, 10.0), (8, 18.0), (16, 34.0)])
  assert slope == pytest.approx(2.0) and intercept == pytest.approx(2.0)
  assert graph_nodes_probe.fit([(8, 5.0), (8, 7.0)]) == (0.0, 6.0)  # one length: no slope to fit
