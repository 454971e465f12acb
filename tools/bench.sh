#!/usr/bin/env bash
# `make bench`: the engine against PyTorch on the same cores, in one run.
# Prints each case of both, then `RATIO <case> ours_ms=<x> peer_ms=<y> speedup=<y/x>`.
set -euo pipefail
cd "$(dirname "$0")/.."
what="${1:-}"
echo "# $(date -u +%FT%TZ) $(nproc) cores; load average: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# other processes running or stopped now (state, command):"
ps -eo stat=,pid=,comm= | awk -v self=$$ '$1 ~ /^[RT]/ && $2 != self && $3 != "ps" && $3 != "awk" {print "#   " $0}'
ours=$( [ "$what" = web ] || build/reage-bench $what)
echo "$ours"
peer=""
if /usr/bin/python3 -c "import torch" 2>/dev/null; then
  peer=$(GLIBC_TUNABLES=glibc.malloc.mmap_threshold=4294967296:glibc.malloc.trim_threshold=17179869184 \
         /usr/bin/python3 tools/torch_peer.py $what)
  echo "$peer"
else
  echo "# python3-torch is not installed: no PyTorch comparison (make bench installs it as root)"
fi
echo "$ours" | awk '/^CASE/ {split($3, a, "="); print $2, a[2]}' | while read -r name ms; do
  p=$(echo "$peer" | awk -v n="$name" '$1 == "CASE" && $2 == n {split($3, a, "="); print a[2]}')
  [ -n "$p" ] && awk -v n="$name" -v o="$ms" -v p="$p" 'BEGIN {printf "RATIO %s ours_ms=%s peer_ms=%s speedup=%.2f\n", n, o, p, p / o}'
done

# Inference in the browser's engine against ONNX Runtime Web, on the same generator.
if [ "$what" = "" ] || [ "$what" = "web" ]; then
  build/reage-bench infer
  if /usr/bin/python3 -c "import torch" 2>/dev/null && [ -d node_modules/onnxruntime-web ]; then
    build/reage-parity weights/reage.blob build/parity.f32 >/dev/null && /usr/bin/python3 tools/torch_check.py weights/reage.blob build/parity.f32 2>/dev/null
    build/reage-bench blobs build >/dev/null
    for r in 128 256; do /usr/bin/python3 tools/torch_check.py build/gen$r.blob - build/gen$r.onnx >/dev/null 2>&1; done
    node tools/bench_web.mjs build
  else
    echo "# onnxruntime-web (npm ci) and python3-torch are needed for the browser comparison"
  fi
fi
