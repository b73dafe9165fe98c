#!/usr/bin/env bash
# CIFAR-10 (cifar10_jpeg) speed A/B on one GPU: every variant is one process of the real entry
# point; prints timed/compile/wall seconds, accuracy mean±std and XLA's per-program compile times
# (JAX_LOG_COMPILES). Variants are lines of "NAME SEEDS [ENV=VAL ...] -- [FLAGS ...]" (space-separated " -- ") on stdin or in $1.
# Run from the repo root with .data/cifar10-jpeg.tar.gz present; writes logs and summaries under $OUT.
#   echo "base 20 -- --flagfile=experiments/cifar10/fast.flags" | bash kernels/h100_cifar_speed_ab.sh
# AB_TIMEOUT=SECONDS stops each variant's process after that long (a variant that may be far slower).
set -u
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}; R=$OUT/runs; mkdir -p $R
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm,power.limit --format=csv,noheader
# Decode the JPEGs once, outside every measured process (the cold-wall rows still pay the
# memory-mapped cache load and upload, as a user's second run would).
python3 -c "from dawnjax.data.cifar10 import load_cifar10; load_cifar10('.data/cifar10-jpeg.tar.gz', cache_dir='/tmp/cache')"
# The published figures to beat, as rows of the same table (kernels/cifar10_speedrun_anchors.tsv).
grep -v '^#' kernels/cifar10_speedrun_anchors.tsv | tail -n +2 | while IFS=$'\t' read -r n runs acc std timed comp; do
  printf 'published: %s: seeds %d acc %s±%s timed %s compile %s (same H100 and data)\n' \
    "$n" "$runs" "$acc" "$std" "$timed" "$comp"
done | tee -a $OUT/table.txt
while read -r name seeds rest; do
  [ -z "$name" ] || [ "${name:0:1}" = "#" ] && continue
  envs=" ${rest%% -- *}"; flagsv=" ${rest#* -- }"  # split on the first " -- " only
  [ "${rest#-- }" != "$rest" ] && envs="" && flagsv=" ${rest#-- }"
  # eval: an ENV value may hold spaces when quoted, e.g. XLA_FLAGS='--xla_a=1 --xla_b=2'.
  eval /usr/bin/time -f '"process_wall %e"' timeout ${AB_TIMEOUT:-0} env JAX_LOG_COMPILES=1 $envs python3 -m dawnjax.experiments.cifar10 \
    --data_dir=.data/cifar10-jpeg.tar.gz --cache_dir=/tmp/cache --seeds=$seeds --noeval_every_epoch \
    --notensorboard --noexport_model --output_dir=$R/$name $flagsv > $R/$name.log 2>&1
  python3 - $R/$name $name "$envs" "$flagsv" <<'PY'
import json, re, sys
d, name, envs, flagsv = sys.argv[1:]
log = open(d + '.log').read()
try:
  s = json.load(open(d + '/summary.json'))
except OSError:
  print(f'{name}: FAILED\n' + '\n'.join(log.splitlines()[-8:])); sys.exit()
comp = re.findall(r'Finished XLA compilation of jit\((\w+)\) in ([\d.]+) sec', log)
wall = re.findall(r'process_wall ([\d.]+)', log)
a, t, b = s['accuracy'], s['timed_seconds'], s.get('wall_breakdown_seconds', {})
print(f"{name:18s} seeds {s['seeds']:2d} acc {a['mean']:.2f}±{a['std']:.2f} timed {t['mean']:.4f}±{t['std']:.4f} "
      f"compile {s['compile_seconds']:.1f} (warm-up {b.get('warm_up') or 0:.1f}) data {s['data_load_seconds']:.1f} "
      f"start-up {b.get('startup') or 0:.1f} wall {s['wall_seconds']:.1f} exe-cache {s.get('executable_cache', '-')!r} "
      f"process {wall[-1] if wall else '?'} MFU {100 * (s.get('mfu') or 0):.1f}% | "
      + ' '.join(f'{k}={float(v):.1f}' for k, v in comp) + f' | {envs.strip()} {flagsv.strip()}')
PY
done < "${1:-/dev/stdin}" | tee -a $OUT/table.txt
