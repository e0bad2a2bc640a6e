#!/usr/bin/env bash
# On a machine with a CUDA GPU: the CUDA tests, then every benchmark on the GPU, each output kept in
# benchmarks/gpu-results/ (pass the number of repeats as the first argument; default 3). Stops at once
# when torch sees no CUDA device; a step that fails is named at the end and the script exits 1.
set -uo pipefail
cd "$(dirname "$0")/.."
repeats="${1:-3}"
out=benchmarks/gpu-results
mkdir -p "$out"
python -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print(torch.cuda.get_device_name())" \
    | tee "$out/device.txt" || { echo "gpu.sh: no CUDA device for torch (the error above); nothing was measured" >&2; exit 1; }
failed=()
step() {  # step NAME COMMAND...: the command's output in $out/NAME.txt; a failure is remembered
    local name="$1"
    shift
    "$@" 2>&1 | tee "$out/$name.txt" || failed+=("$name")
}
step tests bash -c "python -m pytest -q -m gpu 2>&1 | tail -n 30; exit \${PIPESTATUS[0]}"
for bench in ism pgd min_edits bounds variants; do
    step "$bench" python "benchmarks/bench_$bench.py" --device cuda --repeats "$repeats"
done
# Scale out: in process, then one Ray actor per GPU; sequences per second per GPU.
step scale python benchmarks/bench_scale.py --device cuda --channels 32 --kernel 15 --shard-size 250 --repeats "$repeats"
if ((${#failed[@]})); then
    echo "gpu.sh: failed: ${failed[*]} (see $out/)" >&2
    exit 1
fi
