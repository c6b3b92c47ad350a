#!/usr/bin/env bash
# The EMIDEC benchmark of docs/benchmark.md, from the repository root of a fresh clone:
#   bash benchmarks/emidec/run.sh
# 1. `wsseg run-all` with benchmarks/emidec/params.yaml: trains on the train split, scores the val split
#    (data/emidec/metrics.json, report/, timings.json with each stage's time and memory);
# 2. `wsseg predict` of the 30 withheld test cases at each supervision level, read in place from
#    ../shared/data/emidec, into data/emidec/test-predictions/{pixel,slice,stack}/ (the `wsseg predict` contract).
# WSSEG_SEED=1 runs the same profile with another seed (into data/emidec-seed1); WSSEG_BENCHMARK_DIR moves
# the output folder.
set -euo pipefail
cd "$(dirname "$0")/../.."
params=benchmarks/emidec/params.yaml
source=$(python -c "import yaml, sys; print(yaml.safe_load(open(sys.argv[1]))['data']['source'])" "$params")
seed=${WSSEG_SEED:-0}
if [ "$seed" = 0 ]; then
  work=${WSSEG_BENCHMARK_DIR:-data/emidec}
else
  work=${WSSEG_BENCHMARK_DIR:-data/emidec-seed$seed}
  mkdir -p "$work"
  printf 'extends: %s\nseed: %s\n' "$PWD/$params" "$seed" > "$work/params.yaml"
  params=$work/params.yaml
fi

wsseg run-all --params "$params" --workdir "$work"
for supervision in pixel slice stack; do
  wsseg predict "$source" --split test --supervision "$supervision" \
    --params "$params" --workdir "$work" --out "$work/test-predictions/$supervision"
done
