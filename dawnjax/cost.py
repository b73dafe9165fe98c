"""What a run costs: USD per hour of the hardware used, and the cost of seconds or of one item.

DAWNBench's cost is the on-demand price of the hardware times the time it was held: training
cost = time to target x price per device-hour x devices; inference cost per item = latency x the
same hourly price. The price comes from `--cost_per_hour` (the whole hardware, as DAWNBench's
`costPerHour`) when given, else from the list-price table `prices.tsv` beside this module; every
result records which, so a reader can redo the sum with their own price.
"""
from __future__ import annotations

import dataclasses
import functools
import os
from pathlib import Path

from dawnjax.errors import ConfigError

PRICE_TABLE = Path(__file__).with_name('prices.tsv')
_COLUMNS = ('match', 'device', 'usd_per_device_hour', 'offer', 'offer_usd_per_hour',
            'devices_per_offer', 'as_of', 'source', 'note')


@dataclasses.dataclass(frozen=True)
class Price:
  """One row of the price table: the on-demand price of one device (GPU or TPU chip)."""
  match: tuple[str, ...]  # lower-case substrings that must all occur in jax's device_kind
  device: str
  usd_per_device_hour: float
  offer: str  # what is sold at that price (instance type or TPU offer)
  offer_usd_per_hour: float
  devices_per_offer: int
  as_of: str  # yyyy-mm the figure dates from
  source: str
  note: str

  def describe(self) -> str:
    return (f'price table: {self.device} {self.usd_per_device_hour:g} USD/device-hour = '
            f'{self.offer} {self.offer_usd_per_hour:g} USD/h / {self.devices_per_offer} '
            f'({self.source}, {self.as_of})')


@dataclasses.dataclass(frozen=True)
class HourlyPrice:
  """USD per hour of all the devices a run used, and where that figure came from."""
  usd_per_hour: float | None  # None: unknown (no flag and no table row for the device)
  num_devices: int
  source: str
  price: Price | None = None  # the table row, when the table was used

  def as_dict(self) -> dict:
    out = {'usd_per_hour': self.usd_per_hour, 'num_devices': self.num_devices,
           'source': self.source}
    if self.price is not None:
      out['table_row'] = dataclasses.asdict(self.price)
    return out


def parse_price_table(text: str, where: str = 'price table') -> tuple[Price, ...]:
  """Parses the TSV (comment lines start with '#'); raises ConfigError naming the bad line."""
  lines = [(i, line) for i, line in enumerate(text.splitlines(), 1)
           if line.strip() and not line.lstrip().startswith('#')]
  if not lines or tuple(lines[0][1].split('\t')) != _COLUMNS:
    raise ConfigError(f'{where}: the first non-comment line must be the header {list(_COLUMNS)}')
  rows = []
  for line_no, line in lines[1:]:
    fields = line.split('\t')
    if len(fields) != len(_COLUMNS):
      raise ConfigError(f'{where}, line {line_no}: {len(fields)} fields, expected {len(_COLUMNS)}')
    rec = dict(zip(_COLUMNS, fields))
    try:
      per_device = float(rec['usd_per_device_hour'])
      offer_price = float(rec['offer_usd_per_hour'])
      per_offer = int(rec['devices_per_offer'])
    except ValueError:
      raise ConfigError(f'{where}, line {line_no}: prices and device counts must be numbers') from None
    if per_device <= 0 or per_offer < 1:
      raise ConfigError(f'{where}, line {line_no}: prices must be > 0 and device counts >= 1')
    # The two figures must agree, so a typo in either is caught rather than silently used.
    if abs(per_device * per_offer - offer_price) > 0.01 * offer_price:
      raise ConfigError(f'{where}, line {line_no}: {per_device} x {per_offer} devices != offer '
                        f'price {offer_price}')
    rows.append(Price(tuple(m.strip().lower() for m in rec['match'].split('+')), rec['device'],
                      per_device, rec['offer'], offer_price, per_offer, rec['as_of'],
                      rec['source'], rec['note']))
  return tuple(rows)


@functools.lru_cache(maxsize=4)
def load_price_table(path: str | os.PathLike = PRICE_TABLE) -> tuple[Price, ...]:
  try:
    text = Path(path).read_text(encoding='utf-8')
  except OSError as err:
    raise ConfigError(f'cannot read the price table {path}: {err.strerror or err}') from err
  return parse_price_table(text, str(path))


def lookup(device_kind: str, table: tuple[Price, ...] | None = None) -> Price | None:
  """The first table row whose substrings all occur in `device_kind` (case-insensitive)."""
  kind = device_kind.lower()
  for price in load_price_table() if table is None else table:
    if all(m in kind for m in price.match):
      return price
  return None


def hourly_price(device_kind: str, num_devices: int, override: float | None = None,
                 table: tuple[Price, ...] | None = None) -> HourlyPrice:
  """USD/hour for `num_devices` devices: `override` (--cost_per_hour, the whole hardware) wins."""
  if override is not None:
    if override < 0:
      raise ConfigError(f'--cost_per_hour={override}: must be >= 0')
    return HourlyPrice(float(override), num_devices, 'flag --cost_per_hour (whole hardware)')
  price = lookup(device_kind, table)
  if price is None:
    return HourlyPrice(None, num_devices, f'unknown: no --cost_per_hour and no price-table row for '
                                          f'{device_kind!r}')
  return HourlyPrice(price.usd_per_device_hour * num_devices, num_devices,
                     f'{price.describe()} x {num_devices} device(s)', price)


def cost_usd(seconds: float, usd_per_hour: float) -> float:
  """Cost of holding the hardware for `seconds`."""
  return seconds / 3600.0 * usd_per_hour


def cost_per_item_usd(latency_ms: float, usd_per_hour: float) -> float:
  """DAWNBench inference cost: the hardware's price for one item's latency."""
  return cost_usd(latency_ms / 1000.0, usd_per_hour)
