#!/usr/bin/env bash
# On a rented GPU box (see DEVELOPERS.md): install the carried wheels and assemble the staged GGUF parts.
# The 98 MB GGUF travels in parts (.stage/0, .stage/1, ... one carried per call, each with model.sha256) because
# a call carries 64 MiB at most, the package's own checkpoint included. The parts are joined once their
# concatenation matches the hash, so a missing or damaged part never yields a model.
# Usage: source scripts/device_setup.sh  (run from the repo root; idempotent)
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /root/site .whl/*.whl \
  2>&1 | grep -v -i warning || true
export PYTHONPATH=/root/site:$PWD
export PYTHONUNBUFFERED=1
mkdir -p /root/stage
for part in .stage/*; do [ -d "$part" ] && cp -n "$part"/gguf.part.* "$part"/model.sha256 /root/stage/ 2>/dev/null; done
if [ ! -f /root/stage/model.gguf ] && [ -f /root/stage/model.sha256 ]; then
  cat /root/stage/gguf.part.* > /root/stage/joined.gguf
  if [ "$(sha256sum /root/stage/joined.gguf | cut -d' ' -f1)" = "$(cat /root/stage/model.sha256)" ]; then
    mv /root/stage/joined.gguf /root/stage/model.gguf
    # reports name the model by its file name: give it the package's own name as well
    ln -sf model.gguf /root/stage/SmolLM2-135M-Instruct.Q4_1.gguf
  else
    rm -f /root/stage/joined.gguf
  fi
fi
ls -la /root/stage
