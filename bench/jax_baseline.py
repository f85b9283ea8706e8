# The baseline pclab's CPU backend is compared with (bench/compare_jax.sh), as the project received it.
"""Strongest simple CPU/GPU baseline for one muPC training iteration: the whole iteration
(feedforward init, T gradient-descent inference steps, weight grads, Adam) jitted as one XLA program.
Pure JAX + optax, float32. Prints seconds per training iteration (median of REPS after warm-up).
Usage: python jax_baseline.py WIDTH HIDDEN T BATCH [REPS]
"""
import sys, time
import numpy as np
import jax, jax.numpy as jnp, optax

N, H, T, B = (int(a) for a in sys.argv[1:5]); REPS = int(sys.argv[5]) if len(sys.argv) > 5 else 5
D, O, L = 784, 10, H + 1
a1, ah, aL = 1 / np.sqrt(D), 1 / np.sqrt(N * L), 1 / N
eta_z, eta_w = 0.5, 0.1
phi = jax.nn.relu
dphi = lambda u: (u > 0).astype(u.dtype)

key = jax.random.PRNGKey(0)
k1, k2, k3, k4 = jax.random.split(key, 4)
params = {"w1": jax.random.normal(k1, (N, D)), "wh": jax.random.normal(k2, (H - 1, N, N)), "wo": jax.random.normal(k3, (O, N))}
opt = optax.adam(eta_w)
state = opt.init(params)

def errors(p, z, x, y):
    e1 = z[0] - a1 * x @ p["w1"].T
    pred = z[:-1] + ah * jnp.einsum("lbn,lmn->lbm", phi(z[:-1]), p["wh"])
    eh = z[1:] - pred
    eo = y - aL * phi(z[-1]) @ p["wo"].T
    return e1, eh, eo

@jax.jit
def step(p, s, x, y):
    z0 = a1 * x @ p["w1"].T
    def ff(z, w):
        zn = z + ah * phi(z) @ w.T
        return zn, zn
    _, zs = jax.lax.scan(ff, z0, p["wh"])
    z = jnp.concatenate([z0[None], zs], 0)                      # (H, B, N)
    def infer(z, _):
        e1, eh, eo = errors(p, z, x, y)
        e = jnp.concatenate([e1[None], eh], 0)                   # (H, B, N) errors of hidden layers
        back = jnp.einsum("lbm,lmn->lbn", eh, p["wh"])            # e_{l+1} W_{l+1}
        g_mid = e[:-1] - eh - ah * dphi(z[:-1]) * back
        g_last = e[-1] - aL * dphi(z[-1]) * (eo @ p["wo"])
        g = jnp.concatenate([g_mid, g_last[None]], 0) / B
        return z - eta_z * g, None
    z, _ = jax.lax.scan(infer, z, None, length=T)
    e1, eh, eo = errors(p, z, x, y)
    prev = phi(z)
    grads = {"w1": -(a1 / B) * e1.T @ x,
             "wh": -(ah / B) * jnp.einsum("lbm,lbn->lmn", eh, prev[:-1]),
             "wo": -(aL / B) * eo.T @ prev[-1]}
    upd, s = opt.update(grads, s, p)
    return optax.apply_updates(p, upd), s, 0.5 * (jnp.sum(e1**2) + jnp.sum(eh**2) + jnp.sum(eo**2)) / B

x = jax.random.normal(k4, (B, D)); y = jax.nn.one_hot(jnp.arange(B) % O, O)
params, state, F = step(params, state, x, y); F.block_until_ready()
ts = []
for _ in range(REPS):
    t0 = time.perf_counter(); params, state, F = step(params, state, x, y); F.block_until_ready(); ts.append(time.perf_counter() - t0)
flops = 2 * B * N * N * (2 * (H - 1) * T + 2 * (H - 1)) + 2 * B * D * N * 2 + 2 * B * N * O * (2 * T + 2)
med = float(np.median(ts))
print(f"jax-jit N={N} H={H} T={T} B={B}: {med*1e3:.1f} ms/iteration, {flops/med/1e9:.1f} GFLOP/s, energy {float(F):.4f}")
