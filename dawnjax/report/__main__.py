"""`python -m dawnjax.report RESULTS_DIR...`: the leaderboard of every result under the directories.

Prints per task a training table (ranked by time to target) and an inference table (ranked by
latency) with the published DAWNBench records beside the runs, and writes PNG plots. Malformed
files cost one line each on stderr; everything else is still reported.
Exit status: 0 all read, 1 some files malformed, 2 nothing to report or bad arguments.
"""
from __future__ import annotations

import argparse
import sys
from typing import Sequence

from dawnjax.errors import DawnjaxError
from dawnjax.report import leaderboard


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
  parser = argparse.ArgumentParser(prog='python -m dawnjax.report', description=__doc__.split('\n')[0])
  parser.add_argument('results', nargs='+', help='directories searched recursively for results')
  parser.add_argument('--plot_dir', default='leaderboard_plots', help='where PNG plots go (default: %(default)s)')
  parser.add_argument('--no_plots', action='store_true', help='print the tables only')
  parser.add_argument('--records', default=str(leaderboard.RECORDS),
                      help='DAWNBench records TSV shown beside the runs (default: the shipped copy)')
  parser.add_argument('--no_records', action='store_true', help='leave the DAWNBench records out')
  parser.add_argument('--task', action='append', help='only this task (repeatable): cifar10, imagenet, squad')
  return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
  args = parse_args(sys.argv[1:] if argv is None else argv)
  found = leaderboard.scan(args.results)
  for line in found.errors:
    print(f'error: {line}', file=sys.stderr)
  try:
    records = [] if args.no_records else leaderboard.load_records(args.records)
  except DawnjaxError as err:
    print(f'error: {err}', file=sys.stderr)
    records = []
  entries = found.entries
  if args.task:
    entries = [e for e in entries if e.task in args.task]
    records = [e for e in records if e.task in args.task]
  else:
    # Records only for the tasks that have results: the point is the comparison.
    records = [e for e in records if e.task in {x.task for x in entries}] if entries else records
  if not entries:
    print(f"no results found under {' '.join(args.results)}", file=sys.stderr)
  print(leaderboard.format_leaderboard(entries, records))
  if entries and not args.no_plots:
    from dawnjax.report import plots
    try:
      for path in plots.write_plots(entries, args.plot_dir, records):
        print(f'plot: {path}')
    except plots.MissingMatplotlib as err:
      print(str(err), file=sys.stderr)
  if not entries:
    return 2
  return 1 if found.errors else 0


if __name__ == '__main__':
  sys.exit(main())
