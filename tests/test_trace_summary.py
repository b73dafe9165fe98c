"""kernels/trace_summary.py: device-kernel filtering, overlap-aware busy time, kernel classes."""
import gzip
import json
import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'kernels'))
import trace_summary  # noqa: E402


def _trace(tmp_path):
  events = [
      {'ph': 'M', 'pid': 1, 'name': 'process_name', 'args': {'name': '/host:CPU'}},
      {'ph': 'M', 'pid': 2, 'name': 'process_name', 'args': {'name': '/device:GPU:0'}},
      {'ph': 'X', 'pid': 1, 'tid': 1, 'ts': 0, 'dur': 500, 'name': 'python'},
      {'ph': 'X', 'pid': 2, 'tid': 7, 'ts': 0, 'dur': 100, 'name': 'sm90_xmma_fprop_implicit_gemm_bf16'},
      # Overlaps the first kernel on another stream: busy time counts 0..150 once.
      {'ph': 'X', 'pid': 2, 'tid': 8, 'ts': 50, 'dur': 100, 'name': 'input_reduce_fusion_3'},
      {'ph': 'X', 'pid': 2, 'tid': 7, 'ts': 400, 'dur': 100, 'name': 'loop_multiply_fusion'},
  ]
  d = tmp_path / 'plugins' / 'profile' / 'run'
  d.mkdir(parents=True)
  with gzip.open(d / 'perfetto_trace.json.gz', 'wt') as f:
    json.dump({'traceEvents': events}, f)
  return str(tmp_path)


def test_summary_counts_device_kernels_once_and_reports_host_gaps(tmp_path):
  kernels = trace_summary.device_kernels(trace_summary.load_events(_trace(tmp_path)))
  assert len(kernels) == 3  # the host event is not a device kernel
  assert trace_summary.busy_microseconds(kernels) == 250
  text = trace_summary.summarise(kernels, top=5, per=1.0)
  assert 'span 0.500 ms, device busy 0.250 (50.0%), host gaps 0.250' in text
  assert '| convolution (cuDNN/CUTLASS) | 0.100 |' in text
  assert '| reduction | 0.100 |' in text and '| elementwise fusion | 0.100 |' in text


def test_missing_trace_is_a_clear_error(tmp_path):
  with pytest.raises(SystemExit, match='no perfetto_trace.json.gz'):
    trace_summary.load_events(str(tmp_path))


def test_hlo_metadata_names_the_jax_op_behind_a_kernel(tmp_path):
  hlo = ('  %input_reduce_fusion_3 = (f32[64]{0}, f32[64]{0}) fusion(bf16[8,15,15,64]{3,2,1,0} %p), '
         'kind=kInput, calls=%fused_reduce, metadata={op_name="jit(epoch_fn)/while/body/block1/norm1/reduce_sum" '
         'source_file="x.py" source_line=3}\n')
  origins = trace_summary.hlo_origins(hlo)
  assert origins == {'input_reduce_fusion_3': 'while/body/block1/norm1/reduce_sum'}
  kernels = trace_summary.device_kernels(trace_summary.load_events(_trace(tmp_path)))
  assert '| 0.100 | 33.3% | while/body/block1/norm1/reduce_sum |' in trace_summary.summarise(kernels, 5, 1.0, origins)


def test_per_auto_finds_the_traced_steps_from_the_kernels_call_counts():
  def k(name, ts, dur):
    return {'name': name, 'ts': ts, 'dur': dur}
  # 3 steps: two once-per-step kernels; one kernel runs 4x per step but takes less time in all.
  kernels = [k('conv', 100 * s, 30) for s in range(3)] + [k('reduce', 100 * s + 40, 20) for s in range(3)]
  kernels += [k('ns_gemm', 100 * s + 60 + 5 * j, 2) for s in range(3) for j in range(4)]
  assert trace_summary.infer_steps(kernels) == 3


def test_idle_time_is_split_by_gap_length_and_named_by_the_kernels_around_it(tmp_path):
  kernels = trace_summary.device_kernels(trace_summary.load_events(_trace(tmp_path)))
  kernels.append({'ph': 'X', 'pid': 2, 'tid': 7, 'ts': 501.5, 'dur': 10, 'name': 'loop_add_fusion'})
  # The overlap of the first two kernels is no gap; the last kernel to end before each gap names it.
  assert trace_summary.idle_gaps(kernels) == [(250, 'input_reduce_fusion_3', 'loop_multiply_fusion'),
                                              (1.5, 'loop_multiply_fusion', 'loop_add_fusion')]
  text = trace_summary.gap_table(kernels, per=2.0)
  assert '| 1-2 us | 1 | 0.001 |' in text and '| 50-1000 us | 1 | 0.125 |' in text
  assert '| `input_reduce_fusion_3` -> `loop_multiply_fusion` | 1 | 0.125 | 250.0 |' in text
