"""Summary statistics over repeated runs (seeds), with a Student-t 95% interval for the mean.

Benchmarks report a handful of seeds (often 5-20), where the normal 1.96 understates the
uncertainty of the mean noticeably; the t quantile is used instead. Implemented here because
scipy is not a dependency.
"""
from __future__ import annotations

import math
from typing import Iterable

# t(0.975, df) for df = 1..30, index df - 1 (two-sided 95%). Exact to 9 decimals.
_T975_TABLE = (
    12.706204736, 4.302652730, 3.182446305, 2.776445105, 2.570581836,
    2.446911851, 2.364624252, 2.306004135, 2.262157163, 2.228138852,
    2.200985160, 2.178812830, 2.160368656, 2.144786688, 2.131449546,
    2.119905299, 2.109815578, 2.100922040, 2.093024054, 2.085963447,
    2.079613845, 2.073873068, 2.068657610, 2.063898562, 2.059538553,
    2.055529439, 2.051830516, 2.048407142, 2.045229642, 2.042272456,
)
_Z975 = 1.959963984540054  # standard normal 0.975 quantile


def t_quantile_975(df: int) -> float:
  """The 0.975 quantile of Student's t with `df` degrees of freedom (two-sided 95%).

  Table for df <= 30; beyond, the Cornish-Fisher expansion in 1/df (Abramowitz & Stegun
  26.7.5), whose error there is below 1e-7.
  """
  if isinstance(df, bool) or not isinstance(df, int) or df < 1:
    raise ValueError(f'degrees of freedom must be an integer >= 1, got {df!r}')
  if df <= len(_T975_TABLE):
    return _T975_TABLE[df - 1]
  z = _Z975
  g1 = (z**3 + z) / 4
  g2 = (5 * z**5 + 16 * z**3 + 3 * z) / 96
  g3 = (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / 384
  g4 = (79 * z**9 + 776 * z**7 + 1482 * z**5 - 1920 * z**3 - 945 * z) / 92160
  return z + g1 / df + g2 / df**2 + g3 / df**3 + g4 / df**4


def summarize(values: Iterable[float]) -> dict[str, float]:
  """n, mean, sample std (ddof=1; 0 for n=1), min, max and the t-based 95% CI of the mean.

  With one value the interval is undefined and reported as NaN (not as the mean: a single run
  says nothing about spread). Raises ValueError for no values or non-finite ones.
  """
  xs = [float(v) for v in values]
  n = len(xs)
  if n == 0:
    raise ValueError('summarize needs at least one value')
  if not all(math.isfinite(x) for x in xs):
    raise ValueError(f'summarize needs finite values, got {xs}')
  mean = math.fsum(xs) / n
  if n == 1:
    std, low, high = 0.0, math.nan, math.nan
  else:
    std = math.sqrt(math.fsum((x - mean) ** 2 for x in xs) / (n - 1))
    half = t_quantile_975(n - 1) * std / math.sqrt(n)
    low, high = mean - half, mean + half
  return {'n': n, 'mean': mean, 'std': std, 'min': min(xs), 'max': max(xs),
          'ci95_low': low, 'ci95_high': high}
