#!/usr/bin/env bash
# bench-gpu on the lent GPU (device tool): Wan2.1-1.3B and 14B configs, random bf16 weights, 480p x 81 frames;
# per-forward latency of every variant, and 5 steps of training stages 1 and 2 at 1.3B (step time, peak memory).
# Needs the wheels in .whl/ (diffusers and friends; the device image has torch but no diffusers), carried by the
# device tool. Writes $OUT/bench_gpu.json. Usage: bash scripts/gpu_bench.sh
set -u
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
python3 -m pare_bench bench-gpu --out "$OUT/bench_gpu.json" --warmup 2 --repeats 5 --train-steps 5
