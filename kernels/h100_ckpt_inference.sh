#!/usr/bin/env bash
# One GPU, cifar10_jpeg, fast.flags: (1) 10 seeds checkpointing every epoch + the same 10 seeds
# without (in-process baseline), (2) a separate 10-seed run with checkpointing off that also exports
# its first seed's model, (3) batch-1 latency of that served model (TTA views batched) with XLA's
# defaults and with command buffers (CUDA graphs) for every thunk kind.
# Run from the repo root with .data/cifar10-jpeg.tar.gz present; writes under $OUT.
set -u
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}; R=/tmp/runs; mkdir -p $R
train() { name=$1; shift; python3 -m dawnjax.experiments.cifar10 --flagfile=experiments/cifar10/fast.flags \
  --data_dir=.data/cifar10-jpeg.tar.gz --cache_dir=/tmp/cache --seeds=10 --output_dir=$R/$name "$@" 2>&1 \
  | grep -v '^[IW]1' > $R/$name.log; echo "== $name: $*"; tail -4 $R/$name.log; }
train ckpt_on --checkpoint_every_epochs=1 --checkpoint_baseline --noexport_model
train ckpt_off --checkpoint_every_epochs=0
infer() { name=$1; shift; env "$@" python3 -m dawnjax.experiments.inference --task=cifar10 --checkpoint=$R/ckpt_off \
  --data_dir=.data/cifar10-jpeg.tar.gz --cache_dir=/tmp/cache --output_dir=$R/$name 2>&1 | grep -v '^[IW]1' > $R/$name.log
  echo "== $name: $*"; tail -12 $R/$name.log; }
infer infer_default
infer infer_cmdbuf XLA_FLAGS="--xla_gpu_enable_command_buffer=FUSION,CUBLAS,CUBLASLT,CUSTOM_CALL,CUDNN --xla_gpu_graph_min_graph_size=1"
python3 - $R <<'PY'
import json, sys
s = json.load(open(sys.argv[1] + '/ckpt_on/summary.json'))
print(json.dumps(s.get('checkpointing'), indent=1)[:2500])
PY
tar czf $OUT/runs.tgz --exclude='*/model/*' --exclude='*/exported/*' --exclude='*/checkpoints/*' -C $R .
