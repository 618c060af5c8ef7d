#!/usr/bin/env bash
# On a rented GPU box: start training in the background (if not running) and poll it for up to $POLL_S
# seconds, copying the log and the checkpoint (split into 15 MB parts) to $OUT each time.
# Usage: bash scripts/device_train.sh CONFIG.json RUN_DIR [extra args for python -m d2l_rag.training]
set -u
source scripts/device_setup.sh >/dev/null
config=$1; run=$2; shift 2
mkdir -p "$run"
if ! pgrep -f "d2l_rag.training" >/dev/null && [ ! -f "$run/done" ]; then
  setsid nohup bash -c "python3 -m d2l_rag.training $config --out $run $* > $run/stdout.log 2>&1; touch $run/done" \
    >/dev/null 2>&1 < /dev/null &
  sleep 5
fi
deadline=$(( $(date +%s) + ${POLL_S:-520} ))
copy_out() {
  cp "$run/stdout.log" "$OUT/" 2>/dev/null; cp "$run/log.jsonl" "$OUT/" 2>/dev/null
  if [ -f "$run/checkpoint/hypernetwork.safetensors" ]; then
    cp "$run/checkpoint/config.json" "$OUT/ckpt_config.json"
    split -b 15M "$run/checkpoint/hypernetwork.safetensors" "$OUT/ckpt.part."
  fi
}
while [ "$(date +%s)" -lt "$deadline" ] && [ ! -f "$run/done" ]; do sleep 15; done
copy_out
tail -n 25 "$run/stdout.log"
[ -f "$run/done" ] && echo "TRAINING DONE"
nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader
