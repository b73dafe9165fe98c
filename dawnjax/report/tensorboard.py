"""TensorBoard event files without TensorFlow.

Uses the `tensorboard` pip package's own pure-Python record writer and protos, so GPU images
that carry no TensorFlow can still log curves that `tensorboard --logdir` reads.
"""
from __future__ import annotations

import os
import time
from typing import Mapping

from tensorboard.compat.proto import event_pb2, summary_pb2
from tensorboard.plugins.text import summary_v2 as text_summary
from tensorboard.summary.writer.event_file_writer import EventFileWriter


class ScalarWriter:
  """Writes scalars (and text) to one new event file in `logdir`.

  Writes are queued and flushed by a background thread every `flush_secs`, so logging never
  waits on the disk inside a training loop; `flush()`/`close()` force them out. Values are
  converted with float(), which waits for a device array to be computed: log values the loop
  has already fetched, or do it outside the timed region.
  """

  def __init__(self, logdir: str | os.PathLike, *, flush_secs: float = 30.0,
               filename_suffix: str = ''):
    self._writer = EventFileWriter(os.fspath(logdir), flush_secs=flush_secs,
                                   filename_suffix=filename_suffix)
    self._closed = False

  @property
  def logdir(self) -> str:
    return self._writer.get_logdir()

  def _add(self, summary: summary_pb2.Summary, step: int) -> None:
    if self._closed:
      raise ValueError('ScalarWriter is closed')
    self._writer.add_event(event_pb2.Event(wall_time=time.time(), step=int(step),
                                           summary=summary))

  def scalar(self, tag: str, value: float, step: int) -> None:
    """Logs one scalar (stored as `simple_value`, which every TensorBoard version reads)."""
    self.scalars({tag: value}, step)

  def scalars(self, values: Mapping[str, float], step: int) -> None:
    """Logs several scalars at one step in a single event."""
    summary = summary_pb2.Summary(value=[
        summary_pb2.Summary.Value(tag=tag, simple_value=float(v)) for tag, v in values.items()])
    self._add(summary, step)

  def text(self, tag: str, string: str, step: int = 0) -> None:
    """Logs a string (Markdown in TensorBoard's Text tab), e.g. the run's flags."""
    self._add(text_summary.text_pb(tag, string), step)

  def flush(self) -> None:
    if not self._closed:
      self._writer.flush()

  def close(self) -> None:
    """Flushes and closes the file; safe to call twice."""
    if not self._closed:
      self._closed = True
      self._writer.close()

  def __enter__(self) -> ScalarWriter:
    return self

  def __exit__(self, *exc_info) -> None:
    self.close()
