#!/usr/bin/env bash
# Device checks (issue 17): the CUDA tests, then GPU throughput of the Markov engine, of simulate()
# end to end and of the trajectory engine, each next to the device's own floor measured in the same
# run (torch.rand float32 uniforms per second). Needs an NVIDIA GPU and a python with torch; CI never
# runs it. Logs go to stdout; sizes are chosen to finish in about five minutes on one H200.
#
#   bash bench/gpu_check.sh            (PY=python3 by default; DEVICE=cpu SMALL=1 for a dry run here)
set -u
PY=${PY:-python3}
DEVICE=${DEVICE:-cuda}
export PYTHONPATH=$PWD:$PWD/bench/gpu_shim${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
scale() { if [ "${SMALL:-0}" = 1 ]; then echo "$2"; else echo "$1"; fi; }
step() { echo; echo "== $*"; }

step "device"
nvidia-smi -L 2>/dev/null || echo "(no nvidia-smi)"
$PY - <<'PY'
import time, torch
print("torch", torch.__version__, "cuda available:", torch.cuda.is_available())
if torch.cuda.is_available():
    print("device:", torch.cuda.get_device_name(0))
    g = torch.Generator(device="cuda").manual_seed(0)
    out = torch.empty(1 << 28, device="cuda")
    for _ in range(3):
        torch.rand(out.shape, generator=g, out=out)
    torch.cuda.synchronize(); t0 = time.perf_counter()
    for _ in range(10):
        torch.rand(out.shape, generator=g, out=out)
    torch.cuda.synchronize()
    print(f"floor: torch.rand float32 on the GPU {10 * out.numel() / (time.perf_counter() - t0):.3e} uniforms/s")
try:
    import numba, numba.cuda
    print("numba", numba.__version__, "cuda available:", numba.cuda.is_available())
except Exception as exc:  # noqa: BLE001 - a probe
    print("numba: not usable:", exc)
PY

if [ "$DEVICE" = cuda ]; then
  step "CUDA tests, and the fused kernels' tests"
  timeout 180 $PY -m pytest -q -p no:cacheprovider tests/loans/test_fused_kernel.py tests/loans/test_engine.py \
    tests/macro/test_vae.py -k "cuda or fused or uniforms or thread" 2>&1 | tail -5
fi

step "the GPU's pool cashflows equal the CPU's, bit for bit (10k loans x 60 months x $(scale 200 4), macro matrices)"
timeout 150 $PY - "$DEVICE" "$(scale 200 4)" <<'PY'
import sys, time
import numpy as np
sys.path.insert(0, "bench")
from bench_engine import synthetic_book
from creditsim.loans.engine import simulate_pool_cashflows
from creditsim.transitions.markov import MarkovTransitionModel
device, sims = sys.argv[1], int(sys.argv[2])
book, model = synthetic_book(10_000), MarkovTransitionModel.default()
rng = np.random.default_rng(1)
shock = np.cumsum(rng.normal(0, 0.15, (sims, 60, len(model.macro_mean_))), axis=1)
mats = model.scenario_matrices(model.macro_mean_ + model.macro_std_ * shock)
out = {}
for dev in ("cpu", device):
    t0 = time.perf_counter()
    out[dev] = simulate_pool_cashflows(book, mats, sims, seed=3, n_months=60, chunk_size=sims, device=dev).cashflows
    print(f"{dev}: {time.perf_counter() - t0:.2f} s")
gap = np.abs(out["cpu"] - out[device]).max()
print("bit-identical" if np.array_equal(out["cpu"], out[device]) else f"DIFFERENT: max gap {gap}")
PY

step "Markov engine, homogeneous matrices, 10k loans x 60 months x $(scale 10000 20) scenarios"
timeout 120 $PY bench/bench_engine.py --device "$DEVICE" --sims "$(scale 10000 20)" --chunk 5000 --loan-chunk 16384 --threads 4
step "Markov engine, per-scenario macro matrices, 10k x 60 x $(scale 2000 10)"
timeout 120 $PY bench/bench_engine.py --device "$DEVICE" --macro --sims "$(scale 2000 10)" --chunk 2000 --loan-chunk 16384 --threads 4
step "simulate, Markov engine + waterfall, 10k x 60 x $(scale 2000 20)"
timeout 120 $PY bench/bench_simulate.py --device "$DEVICE" --sims "$(scale 2000 20)" --chunk 1000 --threads 4
step "simulate, trajectory engine, 10k x 60 x $(scale 4 2)"
timeout 100 $PY bench/bench_simulate.py --device "$DEVICE" --engine trajectory --sims "$(scale 4 2)" --chunk "$(scale 4 2)" --threads 4
echo; echo "== done"
