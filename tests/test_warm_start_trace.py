"""kernels/warm_start_trace.py: a whole process's trace split into its annotated stages."""
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'kernels'))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
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


def test_a_whole_cpu_run_traced_without_python_frames_has_every_stage(tmp_path):
  # A real (tiny) training through the entry point under the tracer; its summary must name each stage the loop ran.
  from test_cifar10_workload import learnable_data
  from test_inference import ENV, REPO, write_cifar_binary
  data = write_cifar_binary(tmp_path / 'data', learnable_data(n_train=128, n_test=48))
  script = os.path.join(REPO, 'kernels', 'warm_start_trace.py')
  run = subprocess.run(
      [sys.executable, script, 'run', '--no-python_frames', f'--trace_dir={tmp_path / "trace"}', '--',
       f'--data_dir={data}', f'--output_dir={tmp_path / "run"}', '--widths=8,8,8', '--dtype=float32',
       '--batch_size=64', '--epochs=1', '--eval_batch_size=48', '--whiten_images=64', '--tta_level=0',
       '--target=0', '--notensorboard', '--noexport_model', '--nowarm_up'],
      env=ENV, capture_output=True, text=True, timeout=600)
  assert run.returncode == 0, run.stderr[-2000:]
  summary = subprocess.run([sys.executable, script, 'summary', f'--trace_dir={tmp_path / "trace"}', '--top=3'],
                           env=ENV, capture_output=True, text=True, timeout=120)
  assert summary.returncode == 0, summary.stderr[-2000:]
  stages = {line.split()[0]: int(line.split()[1]) for line in summary.stdout.splitlines()[1:]
            if line and not line.startswith(' ')}
  assert {'run_workload', 'load_data', 'compile', 'train_seed', 'init', 'train_epoch', 'evaluate',
          'reporter.on_seed_end', 'reporter.finish'} <= set(stages)
  assert stages['train_seed'] == 1 and stages['train_epoch'] == 1
