#!/usr/bin/env bash
# On a machine with a CUDA GPU: the CUDA tests, then every benchmark on the GPU, each output kept in
# benchmarks/gpu-results/ (pass the number of repeats as the first argument; default 3).
set -uo pipefail
cd "$(dirname "$0")/.."
repeats="${1:-3}"
out=benchmarks/gpu-results
mkdir -p "$out"
python -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print(torch.cuda.get_device_name())" \
    | tee "$out/device.txt" || exit 1
python -m pytest -q -m gpu 2>&1 | tail -n 30 | tee "$out/tests.txt"
for bench in ism pgd min_edits bounds variants; do
    python "benchmarks/bench_$bench.py" --device cuda --repeats "$repeats" 2>&1 | tee "$out/$bench.txt"
done
python benchmarks/bench_scale.py --device cuda 2>&1 | tee "$out/scale.txt"
