#!/usr/bin/env bash
# GPU correctness and speed check, run on a lent GPU machine (no Rust toolchain there): the `ft`
# binary and the encoder bench are built here with `--features vulkan` and carried over in
# gpu-bin/. Writes predictions and timings under $OUT; compare them with the CPU's with
# benches/gpu_compare.py.
#   usage: OUT=dir benches/gpu_check.sh
set -uo pipefail
OUT=${OUT:-gpu-out}
mkdir -p "$OUT"
BIN=gpu-bin/ft
BENCH=gpu-bin/encoder
# Machines whose image lacks the Vulkan loader (libvulkan.so.1) get Debian's, carried in gpu-bin/;
# the NVIDIA driver's own ICD (nvidia_icd.json -> libGLX_nvidia.so.0) does the rest.
if [ -f gpu-bin/libvulkan.so.1 ] && ! ldconfig -p | grep -q libvulkan.so.1; then
  export LD_LIBRARY_PATH="$PWD/gpu-bin${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi
# The binaries travel xz-compressed (a stripped vulkan build is ~110 MB).
for f in "$BIN" "$BENCH"; do
  if [ ! -x "$f" ] && [ -f "$f.xz" ]; then
    xz -dk "$f.xz" 2>/dev/null || python3 -c "import lzma,sys; open(sys.argv[1],'wb').write(lzma.open(sys.argv[1]+'.xz').read())" "$f"
    chmod +x "$f"
  fi
done
{
  nvidia-smi -L
  ldd --version | head -1
  ls /usr/share/vulkan/icd.d /etc/vulkan/icd.d 2>/dev/null
  ldconfig -p | grep -i libvulkan
} > "$OUT/machine.txt" 2>&1
cat "$OUT/machine.txt"
in=tests/fixtures/inputs/news.jsonl
python3 - "$in" "$OUT/long.jsonl" <<'PY' 2>/dev/null || cp "$in" "$OUT/long.jsonl"
import json, sys
texts = [json.loads(l)["text"] for l in open(sys.argv[1])]
with open(sys.argv[2], "w") as f:
    for i in range(64):
        f.write(json.dumps({"text": " ".join(texts[j % len(texts)] for j in range(i % 7 + 1))}) + "\n")
PY
for m in tiny-bert-seqcls:text-classification tiny-distilbert-seqcls:text-classification \
         tiny-bert-tokcls:token-classification tiny-distilbert-tokcls:token-classification; do
  model=${m%%:*}; task=${m##*:}
  for dev in cpu vulkan; do
    start=$(date +%s.%N)
    "$BIN" predict --model "tests/fixtures/models/$model" --task "$task" \
      --input "$OUT/long.jsonl" --output "$OUT/$model.$dev.jsonl" --device "$dev" 2>&1 | tail -3
    echo "$model $dev $(echo "$(date +%s.%N) - $start" | bc 2>/dev/null) s"
  done
done
# Encoder forward, DistilBERT-base dims, batch 32 x 128 (criterion; short measurement).
FT_BENCH_DEVICE=vulkan FT_BENCH_SECONDS=20 timeout 240 "$BENCH" --bench 2>&1 | tail -15 | tee "$OUT/bench-vulkan.txt"
