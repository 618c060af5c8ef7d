#!/usr/bin/env bash
# On a rented GPU box (see DEVELOPERS.md): install the carried wheels and assemble the staged GGUF halves.
# Usage: source scripts/device_setup.sh  (run from the repo root; idempotent)
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /root/site .whl/*.whl \
  2>&1 | grep -v -i warning || true
export PYTHONPATH=/root/site:$PWD
export PYTHONUNBUFFERED=1
mkdir -p /root/stage
for half in .stage/a .stage/b; do [ -d "$half" ] && cp -n "$half"/gguf.part.* /root/stage/ 2>/dev/null; done
if [ ! -f /root/stage/model.gguf ] && [ -f /root/stage/gguf.part.aa ] && [ -f /root/stage/gguf.part.ab ]; then
  cat /root/stage/gguf.part.aa /root/stage/gguf.part.ab > /root/stage/model.gguf
fi
ls -la /root/stage
