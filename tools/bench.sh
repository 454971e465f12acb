#!/usr/bin/env bash
# `make bench`: the engine against PyTorch on the same cores, in one run.
# Prints each case of both, then `RATIO <case> ours_ms=<x> peer_ms=<y> speedup=<y/x>`.
set -euo pipefail
cd "$(dirname "$0")/.."
what="${1:-}"
echo "# $(date -u +%FT%TZ) $(nproc) cores; load average: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# other processes running or stopped now (state, command):"
ps -eo stat=,pid=,comm= | awk -v self=$$ '$1 ~ /^[RT]/ && $2 != self && $3 != "ps" && $3 != "awk" {print "#   " $0}'
# Ours and PyTorch alternate for BENCH_ROUNDS rounds (the machine is shared:
# a neighbour's burst then hits both), each case a median over all rounds.
rounds="${BENCH_ROUNDS:-3}"
have_torch=0
/usr/bin/python3 -c "import torch" 2>/dev/null && have_torch=1
[ $have_torch = 1 ] || echo "# python3-torch is not installed: no PyTorch comparison (make bench installs it as root)"
ours_all=""; peer_all=""
if [ "$what" != web ] && [ "$what" != mesh ]; then
  for r in $(seq "$rounds"); do
    o=$(build/reage-bench $what); echo "$o" | sed "s/^CASE/CASE(round $r)/"; ours_all="$ours_all$o"$'\n'
    if [ $have_torch = 1 ]; then
      p=$(GLIBC_TUNABLES=glibc.malloc.mmap_threshold=4294967296:glibc.malloc.trim_threshold=17179869184 \
          /usr/bin/python3 tools/torch_peer.py $what)
      echo "$p" | sed "s/^CASE/PEER(round $r)/"; peer_all="$peer_all$p"$'\n'
    fi
  done
fi
median() { # median of the ms= values of case $2 in the CASE lines of $1
  echo "$1" | awk -v n="$2" '$1 == "CASE" && $2 == n {split($3, a, "="); print a[2]}' | sort -g |
    awk '{v[NR] = $1} END {if (NR) printf "%.1f", NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'
}
for name in $(echo "$ours_all" | awk '$1 == "CASE" {print $2}' | sort -u); do
  o=$(median "$ours_all" "$name"); p=$(median "$peer_all" "$name")
  echo "CASE $name ms=$o (median of $rounds rounds)"
  [ -n "$p" ] && awk -v n="$name" -v o="$o" -v p="$p" 'BEGIN {printf "RATIO %s ours_ms=%s peer_ms=%s speedup=%.2f\n", n, o, p, p / o}'
done

# Inference in the browser's engine against ONNX Runtime Web, on the same generator.
if [ "$what" = "" ] || [ "$what" = "web" ]; then
  build/reage-bench infer
  if [ -d node_modules/onnxruntime-web ]; then
    build/reage-bench blobs build >/dev/null
    if /usr/bin/python3 -c "import torch" 2>/dev/null; then
      build/reage-parity weights/reage.blob build/parity.f32 >/dev/null && /usr/bin/python3 tools/torch_check.py weights/reage.blob build/parity.f32 2>/dev/null
      for r in 128 256; do /usr/bin/python3 tools/torch_check.py build/gen$r.blob - build/gen$r.onnx >/dev/null 2>&1; done
    fi
    node tools/bench_web.mjs build
  else
    echo "# onnxruntime-web (npm ci) is needed for the browser benchmark"
  fi
fi

# The face mesh: natively, and in the browser's engine against MediaPipe's own solution.
if [ "$what" = "" ] || [ "$what" = "mesh" ]; then
  build/reage-bench mesh | grep -v '^conv '
  node tools/bench_mesh.mjs
fi
