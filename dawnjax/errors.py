"""Errors that reach the user as one clear line.

Entry points catch `DawnjaxError` and print `str(err)` alone (no traceback), so every message
must name the flag or file at fault and what would fix it.
"""


class DawnjaxError(Exception):
  """Base class: a problem the user can fix (bad data, bad flags, unwritable output)."""


class DataError(DawnjaxError):
  """Dataset missing, corrupt or in an unrecognised format."""


class ConfigError(DawnjaxError):
  """Inconsistent or invalid flags/recipe."""


class ResultsError(DawnjaxError):
  """A results file that does not follow the DAWNBench/summary format."""


class TargetNotReached(DawnjaxError):
  """The run finished and its results are written, but the quality target was missed."""
