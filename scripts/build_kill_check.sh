#!/usr/bin/env bash
# The build's resume check with real kills: a 2-process tiny build (docs/BUILD.md's rehearsal, 60 steps a training
# stage) is SIGKILLed just after its first checkpoint in stage 3 and again in stage 4, rerun with the same command,
# and its artifacts compared with an uninterrupted build's. Usage: bash scripts/build_kill_check.sh [WORK_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
T=${1:-$(mktemp -d)}
export OMP_NUM_THREADS=1
[ -d "$T/tw/cache" ] || {
  python -m pare_bench tiny-wan "$T/tw" >/dev/null
  python -m pare_bench encode-latents --model wan2.1-t2v-1.3b --weights "$T/tw/weights" --videos "$T/tw/videos" \
    --captions "$T/tw/captions.jsonl" --out "$T/tw/cache" --frames 9 --height 32 --width 32 >/dev/null
}
printf 'include: %s\nrecovery: {steps: 60, checkpoint_every: 10}\njoint: {steps: 60, checkpoint_every: 10}\n' \
  "$PWD/tests/data/build_tiny.yaml" > "$T/kill.yaml"
launch() {
  accelerate launch --multi_gpu --num_processes 2 --num_machines 1 --mixed_precision no --dynamo_backend no \
    -m pare_bench build "$T/kill.yaml" --model "$T/tw/weights" --cache "$T/tw/cache" --out "$1"
}
rm -rf "$T/full" "$T/killed"
launch "$T/full" 2>/dev/null | grep "stage seconds"
kill_after_checkpoint() {  # $1: the stage's folder, $2: the stage
  launch "$T/killed" >/dev/null 2>&1 &
  local pid=$!
  until [ -f "$1/$2.pt.sha256" ]; do sleep 0.02; done
  sleep 0.3
  pkill -9 -f -- "--out $T/killed" || true
  wait "$pid" || true
  python -c "from pathlib import Path; from pare_bench.checkpoint import load_state; \
print('SIGKILL in $2; its checkpoint holds step', load_state(Path('$1/$2.pt'))['step'], '; finished:', Path('$1/stage.json').exists())"
}
kill_after_checkpoint "$T/killed/recovery" recovery
kill_after_checkpoint "$T/killed/pare" joint
launch "$T/killed" 2>/dev/null | grep "stage seconds"
python - "$T" <<'PY'
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file

root = Path(sys.argv[1])
for part in ("recovery/transformer", "pare/transformer", "pare/router", "pare-sd/transformer"):
    a, b = (load_file(root / run / part / "diffusion_pytorch_model.safetensors") for run in ("full", "killed"))
    gap = max(float((a[k] - b[k]).abs().max()) for k in a)
    print(f"{part}: bitwise equal {all(torch.equal(a[k], b[k]) for k in a)}, max |difference| {gap}")
PY
