"""kernels/warm_start_trace.py: a whole process's trace split into its annotated stages."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'kernels'))
import warm_start_trace  # noqa: E402

HOST, GPU = 1, 2


def _events():
  x = lambda pid, tid, ts, dur, name: {'ph': 'X', 'pid': pid, 'tid': tid, 'ts': ts, 'dur': dur, 'name': name}
  stage = lambda ts, dur, name: x(HOST, 1, ts, dur, warm_start_trace.PREFIX + name)
  return [
      {'ph': 'M', 'pid': HOST, 'name': 'process_name', 'args': {'name': '/host:CPU'}},
      {'ph': 'M', 'pid': GPU, 'name': 'process_name', 'args': {'name': '/device:GPU:0'}},
      stage(0, 1000, 'load'), stage(1000, 1000, 'warm_up'),
      # load: an import of 600 us holding 400 us of exec on the same thread, and a 300 us load on another.
      x(HOST, 1, 10, 600, 'import'), x(HOST, 1, 100, 400, 'exec'), x(HOST, 3, 50, 300, 'deserialize'),
      # warm_up: a 500 us execute with a nested 100 us plan build, and a GPU kernel of 200 us.
      x(HOST, 1, 1100, 500, 'Execute'), x(HOST, 1, 1200, 100, 'BuildPlan'), x(GPU, 9, 1300, 200, 'conv'),
  ]


def test_self_times_subtract_nested_events_on_the_same_thread_only():
  own = {e['name']: t for e, t in warm_start_trace.self_times([e for e in _events() if e['ph'] == 'X'])}
  assert own['import'] == 200 and own['exec'] == 400 and own['deserialize'] == 300
  assert own['Execute'] == 400 and own['BuildPlan'] == 100
  assert own[warm_start_trace.PREFIX + 'load'] == 1000 - 600


def test_stage_table_lists_each_stage_with_its_gpu_time_and_host_self_times():
  lines = warm_start_trace.stage_table(_events(), top=5).splitlines()
  load = lines.index(next(line for line in lines if line.startswith('load ')))
  warm = lines.index(next(line for line in lines if line.startswith('warm_up ')))
  assert lines[load].split()[1:] == ['1', '1.0', '0.0'] and lines[warm].split()[1:] == ['1', '1.0', '0.2']
  assert [line.split()[1] for line in lines[load + 1:warm]] == ['exec', 'deserialize', 'import']
  assert [line.split()[1] for line in lines[warm + 1:]] == ['Execute', 'BuildPlan']
