#!/usr/bin/env bash
# GPU check of the dense index builder and dense search (run on a CUDA machine from the repository root):
#   bash bench/gpu_check.sh
# 1. builds the MiniLM index of convdr/cast20/mini on the CPU and with --device cuda (fp32 and --fp16) and
#    compares the vectors; 2. searches with --device cuda (faiss-gpu if installed) and compares the run
#    with the CPU run; 3. runs a 1-process torchrun build + merge. Prints passages/s of each build.
set -euo pipefail
PY=${PY:-.venv/bin/python}
export CONVDR_PYSERINI_MIRROR=${CONVDR_PYSERINI_MIRROR:-$(cd .. && pwd)/shared/data}
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
OUT=${OUT:-$(mktemp -d)}
echo "outputs in $OUT"
$PY - <<'EOF'
import torch, faiss
print("torch", torch.__version__, "cuda available:", torch.cuda.is_available(),
      torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")
print("faiss", faiss.__version__, "GPUs seen by faiss:", faiss.get_num_gpus() if hasattr(faiss, "get_num_gpus") else 0)
EOF
build() {  # name, extra args
  local name=$1; shift
  $PY -m convdr_pyserini.index dense --collection convdr/cast20/mini --encoder minilm --output "$OUT/$name" \
      --overwrite "$@" 2>&1 | tr '\r' '\n' | grep -E "wrote|error" || true
  $PY -c "import json,sys; m=json.load(open('$OUT/$name/meta.json')); print('  $name:', m['count'], 'passages in', m['encode_seconds'], 's =', round(m['count']/max(m['encode_seconds'],1e-9),1), 'passages/s on', m['device'])"
}
build cpu --device cpu
build cuda --device cuda --batch-size 256
build cuda-fp16 --device cuda --batch-size 256 --fp16
$PY - "$OUT" <<'EOF'
import sys, faiss, numpy as np
out = sys.argv[1]
cpu = faiss.read_index(f"{out}/cpu/index").reconstruct_n(0, 1426)
for name in ("cuda", "cuda-fp16"):
    other = faiss.read_index(f"{out}/{name}/index").reconstruct_n(0, 1426)
    cosine = (cpu * other).sum(1) / np.linalg.norm(cpu, axis=1) / np.linalg.norm(other, axis=1)
    print(f"  {name} vs cpu: min cosine {cosine.min():.6f}, max |diff| {np.abs(cpu - other).max():.2e}")
    assert cosine.min() > 0.999, name
EOF
for device in cpu cuda; do
  $PY -m convdr_pyserini.search --topics convdr/cast20/mini --encoder minilm --query manual --index "$OUT/cpu" \
      --device $device --hits 100 --tag t --output "$OUT/run.$device.trec" 2>&1 | tr '\r' '\n' | grep -E "wrote|note|error"
done
$PY - "$OUT" <<'EOF'
import sys
out = sys.argv[1]
def top(path):
    run = {}
    for line in open(path):
        qid, _, docid, rank, _, _ = line.split()
        if int(rank) <= 10:
            run.setdefault(qid, []).append(docid)
    return run
cpu, gpu = top(f"{out}/run.cpu.trec"), top(f"{out}/run.cuda.trec")
same = sum(cpu[q] == gpu[q] for q in cpu)
print(f"  search --device cuda vs cpu: identical top-10 for {same}/{len(cpu)} queries")
EOF
$PY -m torch.distributed.run --nproc_per_node 1 -m convdr_pyserini.index dense --collection convdr/cast20/mini \
    --encoder minilm --output "$OUT/dist" --device cuda --batch-size 256 --overwrite 2>&1 | tr '\r' '\n' | grep -E "wrote|error" || true
echo "torchrun with one process builds an unsharded index (WORLD_SIZE=1):"; ls "$OUT/dist"
$PY -m convdr_pyserini.index dense --collection convdr/cast20/mini --encoder minilm --output "$OUT/sharded" \
    --device cuda --shard 0/2 --chunk-size 512 2>&1 | tr '\r' '\n' | grep -E "wrote|error"
$PY -m convdr_pyserini.index dense --collection convdr/cast20/mini --encoder minilm --output "$OUT/sharded" \
    --device cuda --shard 1/2 --chunk-size 512 2>&1 | tr '\r' '\n' | grep -E "wrote|error"
$PY -m convdr_pyserini.index merge --input "$OUT/sharded" --output "$OUT/merged" 2>&1 | tr '\r' '\n' | grep -E "wrote|error"
echo "gpu_check done"
