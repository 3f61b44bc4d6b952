#!/usr/bin/env bash
# Train both tiny teachers side by side on one GPU (device tool), then pack the EMA weights,
# the raw weights (to resume from) and the logs into $OUT. Usage: MINUTES=7 bash scripts/gpu_teachers.sh
set -u
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
python3 -c "import torch, diffusers; print('torch', torch.__version__, 'diffusers', diffusers.__version__)"
M=${MINUTES:-7}
for model in tiny-wan-t2v tiny-wan-i2v; do
  python3 -m pare_bench train-teacher $model --out ${TEACHERS:-/tmp/teachers}/$model --device cuda --minutes $M \
    --steps 100000 --batch ${BATCH:-256} --eval-every ${EVAL_EVERY:-1000} --checkpoint-every 500 --lr ${LR:-1e-3} --warmup ${WARMUP:-200} > $OUT/$model.out 2>&1 &
done
wait
for model in tiny-wan-t2v tiny-wan-i2v; do
  d=${TEACHERS:-/tmp/teachers}/$model
  python3 - "$d" "$OUT/${model}_raw.pt" <<'PY'
import sys, torch
payload = torch.load(sys.argv[1] + "/checkpoint.pt", map_location="cpu", weights_only=True)
torch.save({k: payload[k] for k in ("model.transformer", "model.text_encoder", "state")}, sys.argv[2])
PY
  tar -C $d -cf $OUT/$model.tar ema log.jsonl
  tail -c 2000 $OUT/$model.out
done
ls -la $OUT
