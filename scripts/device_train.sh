#!/usr/bin/env bash
# On a rented GPU box: run training stages in the background (each stage starts from the previous stage's
# checkpoint) and poll for up to $POLL_S seconds, copying logs and the newest checkpoint (15 MB parts) to $OUT.
# The chain starts once per RUN_DIR on a machine; running the same command again only polls.
# Usage: [INIT=CKPT_DIR] [BEFORE="command"] [AFTER="command"] bash scripts/device_train.sh RUN_DIR CONFIG1.json ...
# BEFORE runs before the first stage, AFTER once the stages finish (e.g. benchmarks writing to $RUN_DIR/bench,
# copied out as one bench.tgz: $OUT takes 8 files at most). The configs name the embedded model (null); the stages
# train on BASE_MODEL instead, by default the GGUF that device_setup.sh assembled.
# Two runs can share the GPU: start each with POLL_S=0 and its own TAG (files go to $OUT/$TAG), then poll the last;
# CKPT=0 leaves the checkpoint out ($OUT holds 8 files and 64 MiB at most), to fetch one run's in a later call;
# CKPT=stable sends the stable weights alone (below), for a network too big to send both at once.
# A stage with anneal_share also saves checkpoint_stable (the weights before its anneal): it comes out as
# ckpt_stable.tar.part.* (join with cat, then tar xf), next to the annealed checkpoint's ckpt.part.*.
set -u
source scripts/device_setup.sh >/dev/null
run=$1; shift
base=${BASE_MODEL:-/root/stage/model.gguf}
mkdir -p "$run"
if [ ! -f "$run/started" ]; then
  # a poll that lands on a fresh machine (the last one was taken back) must not start a chain that cannot run
  if [ ! -f "$base" ] || ! python3 -c "import d2l_rag.training.config" 2>/dev/null; then
    echo "NOT STARTED: this machine lacks $base or the carried wheels (a fresh machine?): stage it again" >&2
    exit 3
  fi
  touch "$run/started"
  script="set -u; ${BEFORE:-true} >> $run/stdout.log 2>&1; prev=\${INIT:-}; i=0"
  for config in "$@"; do
    script+="; i=\$((i+1)); stage=$run/stage\$i"
    script+="; if [ ! -f \$stage/done ]; then python3 -m d2l_rag.training $config --out \$stage --base-model $base"
    script+=" \${prev:+--init \$prev} >> $run/stdout.log 2>&1 && touch \$stage/done || { touch $run/done; exit 1; }; fi; prev=\$stage/checkpoint"
  done
  script+="; ${AFTER:-true} >> $run/stdout.log 2>&1"
  setsid nohup bash -c "$script; touch $run/done" >/dev/null 2>&1 < /dev/null &
  sleep 5
fi
out=$OUT${TAG:+/$TAG}
mkdir -p "$out"
parts() { echo $(( ($(stat -c %s "$1") + 10240 + 15728639) / 15728640 )); }  # 15 MiB parts of a file (+ tar headers)
copy_out() {
  cp "$run/stdout.log" "$out/" 2>/dev/null
  cat "$run"/stage*/log.jsonl > "$out/log.jsonl" 2>/dev/null
  # profile_at: the stages' step profiles travel in bench.tgz as bench/profiles/stageN_profile_stepM.txt
  for f in "$run"/stage*/profile_step*.txt; do
    [ -f "$f" ] && mkdir -p "$run/bench/profiles" && cp "$f" "$run/bench/profiles/$(basename "$(dirname "$f")")_$(basename "$f")"
  done
  [ -d "$run/bench" ] && tar czf "$out/bench.tgz" -C "$run" bench
  newest=$(ls -td "$run"/stage*/checkpoint 2>/dev/null | head -n 1)
  stable=$(ls -td "$run"/stage*/checkpoint_stable 2>/dev/null | head -n 1)
  [ -n "$newest" ] && [ -f "$newest/hypernetwork.safetensors" ] || newest=
  [ -n "$stable" ] && [ -f "$stable/hypernetwork.safetensors" ] || stable=
  send_newest=0 send_stable=0
  case "${CKPT:-1}" in
    1) [ -n "$newest" ] && send_newest=1
       # both only while $OUT's 8 files hold them: 4 parts of 15 MiB beside config, logs and bench.tgz
       if [ -n "$stable" ]; then
         if [ $(( ${newest:+$(parts "$newest/hypernetwork.safetensors") +} $(parts "$stable/hypernetwork.safetensors") )) -le 4 ]
         then send_stable=1
         elif [ -z "${told_stable:-}" ]; then told_stable=1
           echo "stable weights left out (too big beside the newest): fetch them with CKPT=stable"
         fi
       fi ;;
    stable) [ -n "$stable" ] && send_stable=1 ;;
  esac
  if [ "$send_newest" = 1 ]; then
    rm -f "$out"/ckpt.part.*
    cp "$newest/config.json" "$out/ckpt_config.json"
    split -b 15M "$newest/hypernetwork.safetensors" "$out/ckpt.part."
  fi
  # anneal_share: the weights where the anneal began, the next lease's start (one tar in parts: 8 files at most)
  if [ "$send_stable" = 1 ]; then
    rm -f "$out"/ckpt_stable.tar.part.*
    tar cf - -C "$stable" . | split -b 15M - "$out/ckpt_stable.tar.part."
  fi
}
# copy out every minute as well: a call cut off at its time limit still returns what $OUT holds by then
deadline=$(( $(date +%s) + ${POLL_S:-520} ))
polls=0
while [ "$(date +%s)" -lt "$deadline" ] && [ ! -f "$run/done" ]; do
  sleep 10
  polls=$((polls + 1))
  [ $((polls % 6)) = 0 ] && copy_out
done
copy_out
grep -v -e Converting -e "Loading weights" "$run/stdout.log" | tail -n 30
[ -f "$run/done" ] && echo "TRAINING DONE"
nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader
