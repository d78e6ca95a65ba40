#!/usr/bin/env bash
# The GPU figures of bench/RESULTS.md, in one run on a machine with one CUDA GPU and 16 cores:
#   bench/gpu_figures.sh OUT_DIR [GRID_SECONDS]
# Needs python3 with torch (CUDA build), numpy, scikit-learn and typer; nothing else of Lethe's
# dependencies. Writes OUT_DIR/figures.tgz (every JSON file and log) and OUT_DIR/summary.txt.
#  1. device_repro: the same model trained twice on the GPU, and once on the CPU, bit for bit.
#  2. SISA (S=16, R=8, 15,000 records) on the GPU, and on 4 CPU cores of the same machine.
#  3. The approximate benchmark (seeds 0-9, both datasets, 20/60/200 forget records, 16 models
#     per group, 16 references) on the GPU, as parallel processes on cores 0-10, for at most
#     GRID_SECONDS (default 300) of launching jobs.
set -uo pipefail
out=${1:?usage: bench/gpu_figures.sh OUT_DIR [GRID_SECONDS]}
grid_seconds=${2:-300}
py=${PYTHON:-python3}
work=$(mktemp -d)
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
mkdir -p "$out"
cd "$(dirname "$0")/.."

{ nvidia-smi -L; nproc; $py -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)'; } \
  >"$work/machine.txt" 2>&1
timeout 520 taskset -c 12-15 $py -m bench.sisa --device cpu --threads 4 --records 15000 \
  --unlearn-samples 4 --json >"$work/sisa-cpu.json" 2>"$work/sisa-cpu.log" &
$py -m bench.device_repro --device cuda >"$work/repro.json" 2>"$work/repro.log" &
timeout 120 taskset -c 11 $py -m bench.sisa --device cuda --records 15000 --unlearn-samples 16 \
  --json >"$work/sisa-cuda.json" 2>"$work/sisa-cuda.log"
echo "sisa cuda: exit $?"
taskset -c 0-10 $py -m bench.approximate_grid --out "$work/grid" --device cuda --processes 0 \
  --deadline "$grid_seconds" >"$work/grid.log" 2>&1
echo "grid: exit $?"
wait
{ cat "$work/machine.txt" "$work/repro.json" "$work/sisa-cuda.json" "$work/sisa-cpu.json";
  grep -v '^|' "$work/grid.log" | head -40; } >"$out/summary.txt" 2>&1
tar czf "$out/figures.tgz" -C "$work" .
cat "$out/summary.txt"
