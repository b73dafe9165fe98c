"""Ahead-of-time compilation of several programs at once.

XLA's compile (and its GPU autotuning) runs in C++ without Python's GIL, so the independent
programs of a workload (init, epoch, evaluations) can be compiled on threads; with one thread
this is plain sequential compilation.
"""
from __future__ import annotations

import concurrent.futures
from typing import Any, Callable, Mapping


def compile_all(lowerers: Mapping[Any, Callable[[], Any]], threads: int) -> dict[Any, Any]:
  """{key: lower_fn() -> jax.stages.Lowered} -> {key: Compiled}, `threads` at a time.

  Tracing and lowering stay on the calling thread (they hold the GIL anyway and trace in a fixed
  order); only the compiles are spread.
  """
  lowered = {key: lower() for key, lower in lowerers.items()}
  if threads <= 1 or len(lowered) <= 1:
    return {key: low.compile() for key, low in lowered.items()}
  with concurrent.futures.ThreadPoolExecutor(min(threads, len(lowered))) as pool:
    futures = {key: pool.submit(low.compile) for key, low in lowered.items()}
    return {key: f.result() for key, f in futures.items()}
