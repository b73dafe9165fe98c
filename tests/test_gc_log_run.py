"""kernels/gc_log_run.py: a line per slow (or full) Python garbage collection, between a run's own lines."""
import gc
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'kernels'))
import gc_log_run  # noqa: E402


def test_full_collections_are_printed_and_fast_young_ones_are_not(capsys):
  before = list(gc.callbacks)
  gc_log_run.install(min_ms=1e9)  # only full collections qualify
  try:
    gc.collect(0)
    gc.collect(2)
  finally:
    gc.callbacks[:] = before
  lines = capsys.readouterr().out.splitlines()
  assert len(lines) == 1 and lines[0].startswith('gc: generation 2 collection ')
  assert 'collected' in lines[0] and 'objects frozen' in lines[0]
