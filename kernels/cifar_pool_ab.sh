#!/usr/bin/env bash
# A/B of max-pool implementations (and tanh GELU) on cifar10_jpeg, 20 seeds each, one GPU.
# Run from the repo root with .data/cifar10-jpeg.tar.gz present; prints one line per run.
set -u
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
R=${R:-/tmp/runs}; mkdir -p $R
run() { name=$1; shift; python3 -m dawnjax.experiments.cifar10 --data_dir=.data/cifar10-jpeg.tar.gz --cache_dir=/tmp/cache \
  --output_dir=$R/$name "$@" 2>&1 | grep -v '^I1' > $R/$name.log; echo "== $name: $*"; tail -3 $R/$name.log | sed -n 3p; }
run muon_window20 --flagfile=experiments/cifar10/airbench94_muon.flags --seeds=20 --pool_impl=window
run muon_reshape20 --flagfile=experiments/cifar10/airbench94_muon.flags --seeds=20 --pool_impl=reshape
run muon_reshape_tanh20 --flagfile=experiments/cifar10/airbench94_muon.flags --seeds=20 --pool_impl=reshape --gelu_approximate
run sgd_reshape10 --flagfile=experiments/cifar10/airbench94.flags --seeds=10 --pool_impl=reshape
