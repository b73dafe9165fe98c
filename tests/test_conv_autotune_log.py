"""kernels/conv_autotune_log.py: each cuDNN candidate's wall time and estimated GPU time from the picker's log."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'kernels'))
import conv_autotune_log  # noqa: E402

# conv_algorithm_picker.cc's VLOG lines (4: trying / best time; 2: a candidate's scoped timer; 1: the convolution's),
# with another file's line in between that must not end a candidate.
_LOG = """\
I1202 07:00:00.000000  111 conv_algorithm_picker.cc:900] Trying algorithm eng0{} for %cudnn-conv.1 = custom-call(), custom_call_target="__cudnn$convForward"
I1202 07:00:00.005000  222 gpu_compiler.cc:1] another thread's line
I1202 07:00:00.010000  111 conv_algorithm_picker.cc:950] Best time: 0.5 ms. Worst time: 0.6 ms. Total iterations: 2
I1202 07:00:00.012000  111 conv_algorithm_picker.cc:500] CudnnConvAlgorithmPicker::PickBestAlgorithm algo eng0{} time: 12 ms
I1202 07:00:00.030000  111 conv_algorithm_picker.cc:900] Trying algorithm eng7{k2=1} for %cudnn-conv.2 = custom_call_target="__cudnn$convBackwardFilter"
I1202 07:00:00.130000  111 conv_algorithm_picker.cc:900] Trying algorithm eng9{} for %cudnn-conv.2 = custom_call_target="__cudnn$convBackwardFilter"
I1202 07:00:00.150000  111 conv_algorithm_picker.cc:950] Best time: 1.0 ms. Worst time: 1.2 ms. Total iterations: 3
I1202 07:00:00.160000  111 conv_algorithm_picker.cc:600] GpuConvAlgorithmPicker::PickBestAlgorithmImpl for x time: 130 ms
"""


def test_candidates_are_timed_to_the_pickers_next_line():
  cands = conv_autotune_log.parse(_LOG)
  assert [(c.engine, c.kind) for c in cands] == [
      ('eng0{}', 'forward'), ('eng7{k2=1}', 'filter gradient'), ('eng9{}', 'filter gradient')]
  assert [round(c.wall, 6) for c in cands] == [0.012, 0.1, 0.03]
  assert cands[1].best_ms is None  # disqualified: never timed
  assert (cands[2].best_ms, cands[2].iterations) == (1.0, 3)
  assert abs(cands[2].gpu_seconds - 0.004) < 1e-9  # a warm-up run and 3 timed runs of 1 ms


def test_summary_splits_wall_time_by_kind():
  out = conv_autotune_log.summarise(conv_autotune_log.parse(_LOG), top=2)
  assert '| filter gradient | 2 | 1 | 0.13 | 0.00 | 0.13 | 0.100 |' in out
  assert '| all | 3 | 1 | 0.14 |' in out
  assert out.index('eng7{k2=1}') < out.index('eng9{}')  # slowest first
  assert 'no conv_algorithm_picker lines' in conv_autotune_log.summarise([])
