"""kernels/autotune_log.py: XLA's autotuner profiling spans per thread and the wall time they cover."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'kernels'))
import autotune_log  # noqa: E402

# autotuner.cc's lines (JAX 0.11's XLA) from two compile threads: 111 profiles a convolution (0.0 -> 2.0 s), 222 a
# GEMM that waits for the runner meanwhile (1.0 -> 2.5 s); another file's line in between is ignored.
_LOG = """\
I1202 07:00:00.000000  111 autotuner.cc:228] Using runner 0
I1202 07:00:00.500000  111 autotuner.cc:187] Found only one supported config: NATIVE_EMITTER : native_emitter { }
I1202 07:00:01.000000  222 autotuner.cc:228] Using runner 0
I1202 07:00:01.500000  999 gpu_compiler.cc:1] not the autotuner
I1202 07:00:02.000000  111 autotuner.cc:253] {CUDNN :  duration: 137.9us, scratch_bytes: 131}
I1202 07:00:02.000000  111 autotuner.cc:253] {CUDNN :  duration: 656.797363ms, scratch_bytes: 0}
I1202 07:00:02.000000  111 autotuner.cc:256] {CUDNN :  COMPILATION FAILED: INVALID_ARGUMENT: no. duration: 0, scratch_bytes: 0}
I1202 07:00:02.500000  222 autotuner.cc:253] {CUBLASLT :  duration: 7.648us, scratch_bytes: 33554432}
"""


def test_spans_run_from_using_runner_to_the_threads_last_result():
  conv, gemm = autotune_log.parse(_LOG)
  assert (conv.backend, conv.seconds, conv.failed) == ('CUDNN', 2.0, 1)
  assert [round(d * 1e6, 1) for d in conv.durations] == [137.9, 656797.4]
  assert (gemm.backend, gemm.seconds) == ('CUBLASLT', 1.5)
  assert autotune_log.covered_seconds([conv, gemm]) == 2.5  # the overlap counted once


def test_summary_by_backend():
  out = autotune_log.summarise(autotune_log.parse(_LOG), top=1)
  assert '| CUDNN | 1 | 2 | 1 | 2.00 | 0.657 |' in out
  assert '| all | 2 | 3 | 1 | 2.50 | 0.657 |' in out
  assert '656.8, 0.1' in out  # the longest span's slowest candidates, ms
  assert 'no autotuner profiling lines' in autotune_log.summarise([])
