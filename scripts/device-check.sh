#!/usr/bin/env bash
# Runs on a lent GPU machine (the workplace's `device` tool), from the repository root there,
# over what scripts/device-pack.sh packed into .dev/: the Vulkan tests, the reference pack
# and self-test on the real driver, the CPU's AVX-512 kernels, then the Vulkan and CPU
# benchmarks, a per-op profile of a TinyLlama-1.1B decode and the GPU's read bandwidth.
# Everything lands in $OUT.
# The Vulkan loader travels as Debian packages in .gl/ (see docs/device.md).
set -u
OUT=${OUT:-/tmp/device-out}
mkdir -p "$OUT"
exec > >(tee "$OUT/log.txt") 2>&1
root=$PWD
step() { printf '\n=== %s (%ds)\n' "$*" "$SECONDS"; }

step setup
for f in .gl/*.deb; do dpkg -x "$f" /; done
ldconfig
icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
if ! ls /usr/share/vulkan/icd.d/*nvidia* /etc/vulkan/icd.d/*nvidia* >/dev/null 2>&1 && [ -f $icd ]; then
    export VK_DRIVER_FILES=$icd
fi
# shellcheck disable=SC1091
. .dev/paths  # build=, shared=: where the binaries look for themselves and the test data
mkdir -p "$(dirname "$build")" "$(dirname "$shared")"
[ -e "$build" ] || ln -s "$root/.dev/build" "$build"
[ -e "$shared" ] || ln -s "$root/.dev/shared" "$shared"
export LD_LIBRARY_PATH=$root/.dev/lib CI=true
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,clocks.max.mem --format=csv
lscpu | grep -E 'Model name|^CPU\(s\)'

step devices
"$build"/tools/mllm-run --list-devices
"$build"/tools/mllm-run --self-test --backend vulkan

step tests
cd "$build/.." || exit 1
timeout -k 10 150 "$build"/tests/test_backends --gtest_filter='Vulkan*' --gtest_brief=1 >"$OUT/tests.txt" 2>&1 &
timeout -k 10 150 "$build"/tests/test_runtime --gtest_brief=1 \
    --gtest_filter='VulkanSession*:*VulkanShapes*:*VulkanPerplexity*:*ReferenceTest*vulkan*' >"$OUT/tests_runtime.txt" 2>&1 &
timeout -k 10 150 "$build"/tests/test_tools --gtest_filter='MllmRunVulkan*' --gtest_brief=1 >"$OUT/tests_tools.txt" 2>&1 &
wait
tail -n 4 "$OUT"/tests*.txt
timeout -k 10 120 python3 "$shared"/tools/check-reference "$build" --backend vulkan | tail -n 12

step cpu kernels
# The host CPU usually has AVX-512 VNNI, which this project's own machines lack: its kernels
# against scalar and bit for bit against AVX2, natively; then AVX-512 vs AVX2 (MLLM_CPU_ISA)
# on the 128-token GEMMs, where the integer multiply-adds are the bottleneck.
grep -o -w -m1 avx512_vnni /proc/cpuinfo || echo "no avx512_vnni on this host"
timeout -k 10 60 "$build"/tests/test_backends --gtest_filter='*QuantMatmul*:CpuFeatures*' \
    --gtest_brief=1 | tail -n 3
for isa in avx512vnni avx2; do
    MLLM_CPU_ISA=$isa timeout -k 10 40 "$build"/perf/mllm-bench \
        --benchmark_filter='BM_QuantMatmul/gemm128_(Q4_0|Q8_0|Q4_K)/rows:2048' \
        --benchmark_out="$OUT/cpu_gemm_$isa.json" --benchmark_out_format=json | tail -n 4
done

step benchmarks
timeout -k 10 240 "$build"/perf/mllm-bench \
    --benchmark_filter='(Decode|Prefill128)/(vulkan/)?(SmolLM2-135M|TinyLlama-1.1B)/' \
    --benchmark_out="$OUT/bench.json" --benchmark_out_format=json

step profile
MLLM_VK_PROFILE=1 timeout 40 "$build"/tools/mllm-run -m "$build"/perf-models/TinyLlama-1.1B-q4_0.gguf \
    -p "The" -n 64 --temp 0 --backend vulkan >/dev/null

step gpu read bandwidth
timeout 40 python3 - <<'PY'
import torch
x = torch.ones(1 << 30, dtype=torch.float32, device="cuda")  # 4 GiB
for _ in range(3):
    x.sum()
start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
start.record()
for _ in range(20):
    x.sum()
end.record()
torch.cuda.synchronize()
print("read bandwidth %.0f GB/s" % (20 * x.numel() * 4 / (start.elapsed_time(end) / 1e3) / 1e9))
PY
step done
