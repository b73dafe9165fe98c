"""kernels/compile_log_summary.py: XLA timer totals and per-pass times from a compile log."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'kernels'))
import compile_log_summary  # noqa: E402

# Lines in the formats of XLA's scoped timers and hlo_pass_pipeline's VLOG(1) (two compile threads).
_LOG = """\
I1201 16:50:29.711073    5098 hlo_pass_pipeline.cc:302] Running HLO pass pipeline on module jit_epoch_fn: optimization
I1201 16:50:29.800000    5098 hlo_pass_pipeline.cc:320]   HLO pass algsimp
I1201 16:50:30.000000    6150 hlo_pass_pipeline.cc:302] Running HLO pass pipeline on module jit_eval_fn: optimization
I1201 16:50:30.100000    6150 hlo_pass_pipeline.cc:320]   HLO pass algsimp
I1201 16:50:30.300000    5098 hlo_pass_pipeline.cc:320]   HLO pass config-assigner
I1201 16:50:30.400000    6150 hlo_pass_pipeline.cc:320]   HLO pass cse
I1201 16:50:41.300000    5098 hlo_pass_pipeline.cc:206] HLO pass: config-assigner time: 11 s (11000000 us) (cumulative: 11.5 s, max: 11 s, #called: 3)
I1201 16:50:41.400000    5098 gpu_compiler.cc:2345] GpuCompiler::RunHloPasses for jit_epoch_fn time: 11.7 s (11700000 us) (cumulative: 11.7 s, max: 11.7 s, #called: 1)
I1201 16:50:41.500000    6150 gpu_compiler.cc:2345] GpuCompiler::RunHloPasses for jit_eval_fn time: 500 ms (500000 us) (cumulative: 12.2 s, max: 11.7 s, #called: 2)
W1201 16:50:42.000000 140 dispatch.py:204] Finished XLA compilation of jit(epoch_fn) in 12.3 sec
"""


def test_timers_are_totalled_per_label_across_modules():
  out = compile_log_summary.summarise(_LOG)
  lines = out.splitlines()
  passes = next(l for l in lines if 'RunHloPasses' in l)
  assert passes.split()[:2] == ['12.20', '2']  # 11.7 s + 500 ms, the module names stripped
  assert any(l.split()[:2] == ['11.00', '1'] and 'config-assigner' in l for l in lines)
  assert 'JAX compile log: epoch_fn 12.3 s' in out


def test_each_pass_is_timed_to_its_own_threads_next_line():
  times = compile_log_summary.pass_times(_LOG)
  # Thread 5098: algsimp 29.8 -> 30.3 (thread 6150's lines in between do not end it), then
  # config-assigner 30.3 -> 41.3; thread 6150: algsimp 30.1 -> 30.4, cse 30.4 -> 41.5.
  assert abs(times[('jit_epoch_fn', 'algsimp')] - 0.5) < 1e-6
  assert abs(times[('jit_epoch_fn', 'config-assigner')] - 11.0) < 1e-6
  assert abs(times[('jit_eval_fn', 'algsimp')] - 0.3) < 1e-6
  assert abs(times[('jit_eval_fn', 'cse')] - 11.1) < 1e-6
