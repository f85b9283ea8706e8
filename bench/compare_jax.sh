#!/usr/bin/env bash
# pclab's CPU backend against the JAX baseline (one μPC iteration as a single XLA `jit`, f32),
# run alternately in the same session so both see the same machine load; prints both medians.
#   bench/compare_jax.sh [WIDTH HIDDEN T BATCH ROUNDS]     (defaults: 128 32 32 64 5)
# Needs Python 3 with pip; installs jax and optax into target/jax-venv on first use.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-128} H=${2:-32} T=${3:-32} B=${4:-64} ROUNDS=${5:-5}
venv=target/jax-venv
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import jax, optax" 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet jax optax
fi
cargo build --release --quiet
pc=() jx=()
for r in $(seq "$ROUNDS"); do
  pc+=("$(./target/release/pclab bench --rules mupc --depth "$H" --width "$N" --steps "$T" --batch "$B" --backend cpu --json \
          | python3 -c 'import json,sys; print(json.load(sys.stdin)["ms_per_iteration"])')")
  jx+=("$("$venv/bin/python" bench/jax_baseline.py "$N" "$H" "$T" "$B" 10 | sed -E 's/.*: ([0-9.]+) ms\/iteration.*/\1/')")
  echo "round $r: pclab ${pc[-1]} ms  jax ${jx[-1]} ms"
done
python3 - "$N" "$H" "$T" "$B" "${pc[*]}" "${jx[*]}" <<'PY'
import statistics, sys
n, h, t, b = (int(v) for v in sys.argv[1:5])
pc = [float(v) for v in sys.argv[5].split()]; jx = [float(v) for v in sys.argv[6].split()]
flops = 2 * b * n * n * (2 * (h - 1) * t + 2 * (h - 1)) + 2 * b * 784 * n * 2 + 2 * b * n * 10 * (2 * t + 2)
mp, mj = statistics.median(pc), statistics.median(jx)
print(f"N={n} H={h} T={t} B={b}: pclab {mp:.1f} ms ({flops / mp / 1e6:.0f} GFLOP/s), "
      f"jax {mj:.1f} ms ({flops / mj / 1e6:.0f} GFLOP/s): pclab is {mj / mp:.2f}x the speed of the JAX jit")
PY
