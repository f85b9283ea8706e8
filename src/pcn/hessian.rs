//! The inference landscape's curvature (docs/maths.md §8): the Hessian of one sample's energy `F` with
//! respect to the stacked hidden activities `(z_1, …, z_H)`, an `(N·H) × (N·H)` symmetric
//! block-tridiagonal matrix. With `J_l = τI + a_h W_{l+1} diag φ'(z_l)` (`l < H`) and
//! `J_H = a_L W_L diag φ'(z_H)`, a Hessian-vector product costs two matrix products per layer:
//!
//! ```text
//! u_1 = v_1,   u_l = v_l − J_{l−1} v_{l−1}   (l = 2 … H),   u_L = −J_H v_H
//! (Hv)_l = u_l − J_lᵀ u_{l+1} − c_l ⊙ v_l,    c_l = a_{l+1} φ''(z_l) ⊙ (W_{l+1}ᵀ e_{l+1})
//! ```
//!
//! The curvature term `c_l` vanishes for linear and ReLU networks. The condition number is
//! `κ = |λ_max| / |λ_min|` with the algebraically extreme eigenvalues (the matrix can be indefinite
//! for tanh away from the feedforward point). Small networks get every eigenvalue from the dense
//! matrix (faer, f64); real sizes use [`BlockHessian`] (exact extremes by bisection with
//! block-Cholesky definiteness tests, `O(H·N³)` each) or [`lanczos`] with full
//! reorthogonalisation, which needs only products and reports its iterations and the residual of
//! each extreme.

use super::energy::errors;
use super::linalg::{gemm, Mat, Real, View};
use super::network::seeded_rng;
use super::network::Network;
use rand_distr::{Distribution, StandardNormal};

/// What the Hessian needs of one sample at given activities: `φ'(z_l)` and the curvature term
/// `c_l`, for `l = 1 … H`.
#[derive(Clone, Debug, PartialEq)]
pub struct HessianPoint<T> {
    /// `φ'(z_l)`, each of length `N`.
    pub dphi: Vec<Vec<T>>,
    /// `c_l = a_{l+1} φ''(z_l) ⊙ (W_{l+1}ᵀ e_{l+1})`, each of length `N`.
    pub curv: Vec<Vec<T>>,
}

impl<T: Real> HessianPoint<T> {
    /// The point of sample `row` of the batch `(x, y)` at activities `z` (`z_1 … z_H`, each
    /// `(B, N)`).
    pub fn new(net: &Network<T>, x: &Mat<T>, y: &Mat<T>, z: &[Mat<T>], row: usize) -> Self {
        let a = net.arch;
        let (e, _) = errors(net, x, y, z);
        let mut dphi = Vec::with_capacity(a.hidden);
        let mut curv = Vec::with_capacity(a.hidden);
        for l in 1..=a.hidden {
            let zl = z[l - 1].row(row);
            dphi.push(zl.iter().map(|&v| a.act.df(v)).collect());
            let next = &net.weights[l]; // W_{l+1}, (out, N)
            let e_next = e[l].row(row);
            let mut back = vec![T::zero(); a.width];
            gemm(T::one(), View::new(e_next, 1, next.rows), next.view(), T::zero(), &mut back);
            let scale = T::of(if l < a.hidden { net.scalings.a_hidden } else { net.scalings.a_out });
            curv.push(zl.iter().zip(&back).map(|(&v, &b)| scale * a.act.ddf(v) * b).collect());
        }
        HessianPoint { dphi, curv }
    }

    /// `N·H`, the Hessian's size.
    pub fn dim(&self) -> usize {
        self.dphi.iter().map(Vec::len).sum()
    }
}

/// `J_l v` (length `N`, or `O` for `l = H`).
fn jac<T: Real>(net: &Network<T>, p: &HessianPoint<T>, l: usize, v: &[T], out: &mut [T]) {
    let a = net.arch;
    let w = &net.weights[l]; // W_{l+1}
    let dv: Vec<T> = v.iter().zip(&p.dphi[l - 1]).map(|(&v, &d)| v * d).collect();
    let (scale, tau) = if l < a.hidden { (net.scalings.a_hidden, a.tau()) } else { (net.scalings.a_out, 0.0) };
    // Row-vector form: (φ' ⊙ v) W_{l+1}ᵀ.
    gemm(T::of(scale), View::new(&dv, 1, w.cols), w.view().t(), T::zero(), out);
    if tau != 0.0 {
        for (o, &x) in out.iter_mut().zip(v) {
            *o = *o + T::of(tau) * x;
        }
    }
}

/// `J_lᵀ u` (length `N`).
fn jac_t<T: Real>(net: &Network<T>, p: &HessianPoint<T>, l: usize, u: &[T], out: &mut [T]) {
    let a = net.arch;
    let w = &net.weights[l];
    let (scale, tau) = if l < a.hidden { (net.scalings.a_hidden, a.tau()) } else { (net.scalings.a_out, 0.0) };
    gemm(T::of(scale), View::new(u, 1, w.rows), w.view(), T::zero(), out);
    for ((o, &d), &x) in out.iter_mut().zip(&p.dphi[l - 1]).zip(u.iter().chain(std::iter::repeat(&T::zero()))) {
        *o = *o * d + if tau != 0.0 { T::of(tau) * x } else { T::zero() };
    }
}

/// The product's first stage: `u_1 … u_H` (length `N` each) and `u_L` (length `O`), from `v`
/// stacked `(z_1, …, z_H)`. Twin of `hvp.wgsl`'s `hvp_u`.
pub fn hvp_u<T: Real>(net: &Network<T>, p: &HessianPoint<T>, v: &[T]) -> Vec<Vec<T>> {
    let (n, h) = (net.arch.width, net.arch.hidden);
    assert_eq!(v.len(), n * h, "hvp: v must have N·H entries");
    let mut u: Vec<Vec<T>> = Vec::with_capacity(h + 1);
    u.push(v[..n].to_vec());
    let mut jv = vec![T::zero(); n];
    for l in 2..=h {
        jac(net, p, l - 1, &v[(l - 2) * n..(l - 1) * n], &mut jv);
        u.push(v[(l - 1) * n..l * n].iter().zip(&jv).map(|(&a, &b)| a - b).collect());
    }
    let mut out_l = vec![T::zero(); net.arch.output];
    jac(net, p, h, &v[(h - 1) * n..], &mut out_l);
    u.push(out_l.iter().map(|&x| -x).collect());
    u
}

/// The product's last stage: `(Hv)_l = u_l − J_lᵀ u_{l+1} − c_l ⊙ v_l`, from [`hvp_u`]'s `u`.
/// Twin of `hvp.wgsl`'s `hvp_out` (whose `J_lᵀ u_{l+1}` comes from `back_project`).
pub fn hvp_out<T: Real>(net: &Network<T>, p: &HessianPoint<T>, v: &[T], u: &[Vec<T>]) -> Vec<T> {
    let (n, h) = (net.arch.width, net.arch.hidden);
    let mut hv = vec![T::zero(); n * h];
    let mut jtu = vec![T::zero(); n];
    for l in 1..=h {
        jac_t(net, p, l, &u[l], &mut jtu);
        let vl = &v[(l - 1) * n..l * n];
        for (i, o) in hv[(l - 1) * n..l * n].iter_mut().enumerate() {
            *o = u[l - 1][i] - jtu[i] - p.curv[l - 1][i] * vl[i];
        }
    }
    hv
}

/// The Hessian-vector product `H v` at `p`; `v` and the result are stacked `(z_1, …, z_H)`.
pub fn hvp<T: Real>(net: &Network<T>, p: &HessianPoint<T>, v: &[T]) -> Vec<T> {
    let u = hvp_u(net, p, v);
    hvp_out(net, p, v, &u)
}

/// The dense Hessian (row-major, `dim × dim`), column by column from [`hvp`]: for small networks.
pub fn dense_hessian<T: Real>(net: &Network<T>, p: &HessianPoint<T>) -> Vec<f64> {
    let d = p.dim();
    let mut m = vec![0.0; d * d];
    let mut e = vec![T::zero(); d];
    for j in 0..d {
        e[j] = T::one();
        for (i, v) in hvp(net, p, &e).into_iter().enumerate() {
            m[i * d + j] = v.f64();
        }
        e[j] = T::zero();
    }
    m
}

/// Every eigenvalue of a symmetric `dim × dim` matrix, ascending (faer, f64).
pub fn eigenvalues(m: &[f64], dim: usize) -> Result<Vec<f64>, String> {
    let a = faer::Mat::<f64>::from_fn(dim, dim, |i, j| m[i * dim + j]);
    a.self_adjoint_eigenvalues(faer::Side::Lower).map_err(|e| format!("eigenvalues did not converge: {e:?}"))
}

/// The extreme eigenvalues of a symmetric operator and how well they are known.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Extremes {
    /// Algebraically smallest eigenvalue (estimate).
    pub lambda_min: f64,
    /// Algebraically largest eigenvalue (estimate).
    pub lambda_max: f64,
    /// `|λ_max| / |λ_min|`.
    pub kappa: f64,
    /// Lanczos iterations (operator applications) used; for a dense solve, the dimension.
    pub iterations: usize,
    /// `‖A s − θ s‖` of the Ritz pair of λ_min: some eigenvalue lies within it.
    pub residual_min: f64,
    /// The same for λ_max.
    pub residual_max: f64,
    /// Both residuals met the tolerance (or the Krylov space became invariant).
    pub converged: bool,
}

/// `κ = |λ_max| / |λ_min|`.
pub fn kappa(lambda_min: f64, lambda_max: f64) -> f64 {
    lambda_max.abs() / lambda_min.abs()
}

impl Extremes {
    /// The exact extremes of a full spectrum (ascending).
    pub fn of_spectrum(eig: &[f64]) -> Self {
        let (lo, hi) = (eig.first().copied().unwrap_or(f64::NAN), eig.last().copied().unwrap_or(f64::NAN));
        Extremes {
            lambda_min: lo,
            lambda_max: hi,
            kappa: kappa(lo, hi),
            iterations: eig.len(),
            residual_min: 0.0,
            residual_max: 0.0,
            converged: true,
        }
    }
}

/// Lanczos settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LanczosConfig {
    /// Most iterations (capped at the dimension).
    pub max_iter: usize,
    /// Stop when each extreme's residual is at most `tol · |θ|`.
    pub tol: f64,
    /// Seed of the start vector.
    pub seed: u64,
}

impl Default for LanczosConfig {
    fn default() -> Self {
        LanczosConfig { max_iter: 2000, tol: 1e-3, seed: 0 }
    }
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Lanczos with full reorthogonalisation, one iteration at a time (so a page can spread it over
/// frames): the extreme eigenvalues of a symmetric operator of size `dim` from operator
/// applications only. The tridiagonal matrix's extreme eigenvalues come from bisection (Sturm
/// counts) and their residuals `β_k |s_k|` from inverse iteration, both `O(k)`.
#[derive(Clone, Debug)]
pub struct Lanczos {
    cfg: LanczosConfig,
    max_iter: usize,
    basis: Vec<Vec<f64>>,
    alpha: Vec<f64>,
    beta: Vec<f64>,
    w: Vec<f64>,
    /// The latest estimate.
    pub estimate: Option<Extremes>,
}

impl Lanczos {
    /// A start from a seeded random unit vector.
    pub fn new(dim: usize, cfg: LanczosConfig) -> Result<Self, String> {
        if dim == 0 {
            return Err("the operator has dimension 0".into());
        }
        let q = start_vector(dim, cfg.seed);
        let max_iter = cfg.max_iter.clamp(1, dim);
        Ok(Lanczos {
            cfg,
            max_iter,
            basis: vec![q],
            alpha: Vec::new(),
            beta: Vec::new(),
            w: vec![0.0; dim],
            estimate: None,
        })
    }

    /// Iterations done.
    pub fn iterations(&self) -> usize {
        self.alpha.len()
    }

    /// One iteration with `apply` (`out ← A v`); the result once converged, invariant or out of
    /// iterations.
    pub fn step(&mut self, mut apply: impl FnMut(&[f64], &mut [f64])) -> Option<Extremes> {
        let j = self.alpha.len();
        apply(&self.basis[j], &mut self.w);
        let a = dot(&self.basis[j], &self.w);
        self.alpha.push(a);
        // Full reorthogonalisation (twice is enough, Kahan–Parlett) also removes α_j q_j, β q_{j−1}.
        for _ in 0..2 {
            for b in &self.basis {
                let c = dot(b, &self.w);
                self.w.iter_mut().zip(b).for_each(|(x, y)| *x -= c * y);
            }
        }
        let b = dot(&self.w, &self.w).sqrt();
        let ext = assess(&self.alpha, &self.beta, b, 1e-12, self.cfg.tol);
        let done = ext.converged;
        self.estimate = Some(ext);
        if done || j + 1 == self.max_iter {
            return self.estimate.clone();
        }
        self.beta.push(b);
        self.basis.push(self.w.iter().map(|v| v / b).collect());
        None
    }
}

/// The estimate after a Lanczos iteration: `alpha` (α_0 … α_j) and `beta` (β_0 … β_{j−1}) are the
/// tridiagonal so far, `next_beta` the norm of the new residual vector. The Krylov space counts as
/// invariant when `next_beta ≤ invariant · max |T|` (the precision of the arithmetic that built it);
/// converged when that, or each extreme's residual is at most `tol · |θ|`.
pub fn assess(alpha: &[f64], beta: &[f64], next_beta: f64, invariant: f64, tol: f64) -> Extremes {
    let scale = alpha.iter().chain(beta).fold(0.0f64, |m, v| m.max(v.abs())).max(f64::MIN_POSITIVE);
    let stopped = next_beta <= invariant * scale;
    let ext = ritz_extremes(alpha, beta, if stopped { 0.0 } else { next_beta });
    let converged =
        stopped || (ext.residual_min <= tol * ext.lambda_min.abs() && ext.residual_max <= tol * ext.lambda_max.abs());
    Extremes { converged, ..ext }
}

/// The unit start vector of a Lanczos run with `seed` (the same in [`Lanczos`] and on the GPU).
pub fn start_vector(dim: usize, seed: u64) -> Vec<f64> {
    let mut rng = seeded_rng(seed, 0x1a4c205);
    let mut q: Vec<f64> = (0..dim).map(|_| StandardNormal.sample(&mut rng)).collect();
    let norm = dot(&q, &q).sqrt();
    q.iter_mut().for_each(|v| *v /= norm);
    q
}

/// [`Lanczos`] run to the end.
pub fn lanczos(dim: usize, mut apply: impl FnMut(&[f64], &mut [f64]), cfg: LanczosConfig) -> Result<Extremes, String> {
    let mut l = Lanczos::new(dim, cfg)?;
    loop {
        if let Some(e) = l.step(&mut apply) {
            return Ok(e);
        }
    }
}

/// Eigenvalues of the symmetric tridiagonal `T` (diagonal `a`, off-diagonal `b`) below `x`.
fn sturm_count(a: &[f64], b: &[f64], x: f64) -> usize {
    let mut count = 0;
    let mut d = 1.0;
    for i in 0..a.len() {
        let off = if i == 0 { 0.0 } else { b[i - 1] * b[i - 1] };
        d = a[i] - x - if i == 0 { 0.0 } else { off / d };
        if d == 0.0 {
            d = -f64::EPSILON * (a[i].abs() + x.abs()).max(f64::MIN_POSITIVE);
        }
        if d < 0.0 {
            count += 1;
        }
    }
    count
}

/// The `i`-th smallest eigenvalue of `T` by bisection inside the Gershgorin bounds.
fn tridiag_eigenvalue(a: &[f64], b: &[f64], i: usize) -> f64 {
    let k = a.len();
    let radius = |r: usize| (if r > 0 { b[r - 1].abs() } else { 0.0 }) + (if r + 1 < k { b[r].abs() } else { 0.0 });
    let mut lo = (0..k).map(|r| a[r] - radius(r)).fold(f64::INFINITY, f64::min);
    let mut hi = (0..k).map(|r| a[r] + radius(r)).fold(f64::NEG_INFINITY, f64::max);
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if mid <= lo || mid >= hi {
            break;
        }
        if sturm_count(a, b, mid) > i {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    0.5 * (lo + hi)
}

/// `|s_k|`, the last component of the unit eigenvector of `T` for eigenvalue `theta`, by inverse
/// iteration (a tridiagonal solve with a slightly shifted `theta`, three times).
fn last_component(a: &[f64], b: &[f64], theta: f64) -> f64 {
    let k = a.len();
    if k == 1 {
        return 1.0;
    }
    let scale = a.iter().chain(b).fold(0.0f64, |m, v| m.max(v.abs())).max(f64::MIN_POSITIVE);
    let shift = theta + 1e-10 * scale;
    let mut x = vec![1.0 / (k as f64).sqrt(); k];
    for _ in 0..3 {
        // Thomas algorithm on (T − shift·I) y = x.
        let (mut c, mut d) = (vec![0.0; k], vec![0.0; k]);
        let mut piv = a[0] - shift;
        for i in 0..k {
            if i > 0 {
                piv = a[i] - shift - b[i - 1] * c[i - 1];
            }
            if piv.abs() < 1e-300 {
                piv = 1e-300;
            }
            c[i] = if i + 1 < k { b[i] / piv } else { 0.0 };
            d[i] = (x[i] - if i > 0 { b[i - 1] * d[i - 1] } else { 0.0 }) / piv;
        }
        for i in (0..k - 1).rev() {
            d[i] -= c[i] * d[i + 1];
        }
        let n = dot(&d, &d).sqrt();
        if !(n.is_finite() && n > 0.0) {
            break;
        }
        x = d.into_iter().map(|v| v / n).collect();
    }
    x[k - 1].abs()
}

/// Ritz values at the ends of the tridiagonal `T_k` and their residuals `β_k |s_k|`.
fn ritz_extremes(alpha: &[f64], beta: &[f64], next_beta: f64) -> Extremes {
    let k = alpha.len();
    let (lo, hi) = (tridiag_eigenvalue(alpha, beta, 0), tridiag_eigenvalue(alpha, beta, k - 1));
    let res = |theta: f64| if next_beta == 0.0 { 0.0 } else { next_beta * last_component(alpha, beta, theta) };
    Extremes {
        lambda_min: lo,
        lambda_max: hi,
        kappa: kappa(lo, hi),
        iterations: k,
        residual_min: res(lo),
        residual_max: res(hi),
        converged: false,
    }
}

/// How the extremes are computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// Every eigenvalue of the dense matrix (faer): `O((N·H)³)`, small networks.
    Dense,
    /// Bisection with block-Cholesky definiteness tests ([`BlockHessian`]): `O(H·N³)` per test.
    Blocks,
    /// [`Lanczos`] from Hessian-vector products only: `O(k·H·N²)` plus the basis.
    Lanczos,
}

/// Widest network [`Method::auto`] gives to [`Method::Blocks`].
pub const BLOCKS_UP_TO_WIDTH: usize = 256;

impl Method {
    /// Dense up to `N·H ≤ dense_up_to`, blocks up to width [`BLOCKS_UP_TO_WIDTH`], else Lanczos.
    pub fn auto(width: usize, depth: usize, dense_up_to: usize) -> Self {
        if width * depth <= dense_up_to {
            Method::Dense
        } else if width <= BLOCKS_UP_TO_WIDTH {
            Method::Blocks
        } else {
            Method::Lanczos
        }
    }

    /// `dense`, `blocks` or `lanczos`.
    pub fn name(self) -> &'static str {
        match self {
            Method::Dense => "dense",
            Method::Blocks => "blocks",
            Method::Lanczos => "lanczos",
        }
    }
}

impl std::str::FromStr for Method {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "dense" => Ok(Method::Dense),
            "blocks" => Ok(Method::Blocks),
            "lanczos" => Ok(Method::Lanczos),
            other => Err(format!("unknown method '{other}': use dense, blocks or lanczos")),
        }
    }
}

/// κ and the extremes at `p` by `method` (in f64; `cfg.tol` is also the blocks' bisection
/// accuracy).
pub fn extremes<T: Real>(
    net: &Network<T>,
    p: &HessianPoint<T>,
    method: Method,
    cfg: LanczosConfig,
) -> Result<Extremes, String> {
    let d = p.dim();
    match method {
        Method::Dense => return Ok(Extremes::of_spectrum(&eigenvalues(&dense_hessian(net, p), d)?)),
        Method::Blocks => return Ok(BlockHessian::new(net, p).extremes(cfg.tol)),
        Method::Lanczos => {}
    }
    let mut vt = vec![T::zero(); d];
    lanczos(
        d,
        |v, out| {
            vt.iter_mut().zip(v).for_each(|(a, &b)| *a = T::of(b));
            for (o, r) in out.iter_mut().zip(hvp(net, p, &vt)) {
                *o = r.f64();
            }
        },
        cfg,
    )
}

/// The Hessian by its blocks, for exact extremes at sizes where the dense matrix is too big: with
/// `J_l` as in the module notes, the diagonal blocks are `A_l = I + J_lᵀ J_l − diag(c_l)` and the
/// blocks below them `H_{l+1,l} = −J_l` (`N × N` each; f64). `H − tI` is positive definite exactly
/// when every Schur complement `S_1 = A_1 − tI`, `S_l = A_l − tI − J_{l−1} S_{l−1}⁻¹ J_{l−1}ᵀ` has
/// a Cholesky factor, so bisection on `t` finds λ_min — and on `−H`, λ_max — at `O(H·N³)` per
/// test instead of the dense `O((N·H)³)`, and with no Krylov convergence to wait for.
#[derive(Clone, Debug, Default)]
pub struct BlockHessian {
    diag: Vec<faer::Mat<f64>>,
    /// `J_1 … J_{H−1}`.
    jac: Vec<faer::Mat<f64>>,
}

/// Bisection steps at most per extreme.
const MAX_BISECTIONS: usize = 200;

impl BlockHessian {
    /// The blocks at `p`.
    pub fn new<T: Real>(net: &Network<T>, p: &HessianPoint<T>) -> Self {
        let mut h = BlockHessian { diag: Vec::new(), jac: Vec::new() };
        while h.add_layer(net, p) {}
        h
    }

    /// Adds the next layer's blocks (`O(N³)`); false once every layer is in. Lets a page build a
    /// deep Hessian a layer per step instead of in one long task.
    pub fn add_layer<T: Real>(&mut self, net: &Network<T>, p: &HessianPoint<T>) -> bool {
        let a = net.arch;
        let (n, l) = (a.width, self.diag.len() + 1);
        if l > a.hidden {
            return false;
        }
        // J_l: (out × N), J[i][j] = τ δ_ij + a W_{l+1}[i][j] φ'(z_l)[j].
        let w = &net.weights[l];
        let (scale, tau) = if l < a.hidden { (net.scalings.a_hidden, a.tau()) } else { (net.scalings.a_out, 0.0) };
        let j = faer::Mat::<f64>::from_fn(w.rows, n, |i, k| {
            scale * w.data[i * w.cols + k].f64() * p.dphi[l - 1][k].f64() + if i == k { tau } else { 0.0 }
        });
        let mut d = j.transpose() * &j;
        for i in 0..n {
            d[(i, i)] += 1.0 - p.curv[l - 1][i].f64();
        }
        self.diag.push(d);
        if l < a.hidden {
            self.jac.push(j);
        }
        true
    }

    /// Layers whose blocks are in.
    pub fn layers(&self) -> usize {
        self.diag.len()
    }

    /// `N·H`.
    pub fn dim(&self) -> usize {
        self.diag.iter().map(|d| d.nrows()).sum()
    }

    /// The dense matrix (row-major), for checking.
    pub fn to_dense(&self) -> Vec<f64> {
        let (n, d) = (self.diag[0].nrows(), self.dim());
        let mut m = vec![0.0; d * d];
        for (l, a) in self.diag.iter().enumerate() {
            for i in 0..n {
                for j in 0..n {
                    m[(l * n + i) * d + l * n + j] = a[(i, j)];
                }
            }
        }
        for (l, jl) in self.jac.iter().enumerate() {
            for i in 0..n {
                for j in 0..n {
                    // H_{l+1,l} = −J_l and its transpose above the diagonal.
                    m[((l + 1) * n + i) * d + l * n + j] = -jl[(i, j)];
                    m[(l * n + j) * d + (l + 1) * n + i] = -jl[(i, j)];
                }
            }
        }
        m
    }

    /// Whether `sign·H − t·I` is positive definite (block Cholesky of its Schur complements).
    pub fn definite(&self, sign: f64, t: f64) -> bool {
        let mut test = DefinitenessTest::new(sign, t);
        loop {
            if let Some(yes) = test.step(self) {
                return yes;
            }
        }
    }

    /// Gershgorin's lower bound on λ_min of `sign·H`, and the smallest diagonal entry (an upper
    /// bound on it).
    fn bracket(&self, sign: f64) -> (f64, f64) {
        let n = self.diag[0].nrows();
        let (mut lo, mut hi) = (f64::INFINITY, f64::INFINITY);
        for (l, a) in self.diag.iter().enumerate() {
            for i in 0..n {
                let mut off = (0..n).filter(|&j| j != i).map(|j| a[(i, j)].abs()).sum::<f64>();
                if l > 0 {
                    off += (0..n).map(|j| self.jac[l - 1][(i, j)].abs()).sum::<f64>();
                }
                if l < self.jac.len() {
                    off += (0..n).map(|j| self.jac[l][(j, i)].abs()).sum::<f64>();
                }
                lo = lo.min(sign * a[(i, i)] - off);
                hi = hi.min(sign * a[(i, i)]);
            }
        }
        (lo, hi)
    }

    /// λ_min and λ_max to relative accuracy `tol`; `iterations` counts the Cholesky sweeps, the
    /// residuals are the bisection brackets' half-widths.
    pub fn extremes(self, tol: f64) -> Extremes {
        let mut b = BlockBisection::new(self, tol);
        loop {
            if let Some(e) = b.step() {
                return e;
            }
        }
    }
}

/// One definiteness test of `sign·H − t·I`, a block at a time.
#[derive(Clone, Debug)]
struct DefinitenessTest {
    sign: f64,
    t: f64,
    layer: usize,
    /// The next Schur complement (before its factorisation).
    schur: Option<faer::Mat<f64>>,
}

impl DefinitenessTest {
    fn new(sign: f64, t: f64) -> Self {
        DefinitenessTest { sign, t, layer: 0, schur: None }
    }

    /// Factorises one Schur complement; the answer once known.
    fn step(&mut self, h: &BlockHessian) -> Option<bool> {
        use faer::linalg::matmul::matmul;
        use faer::linalg::triangular_solve::solve_lower_triangular_in_place;
        let n = h.diag[0].nrows();
        let (sign, t) = (self.sign, self.t);
        let shifted = |a: &faer::Mat<f64>| {
            faer::Mat::<f64>::from_fn(n, n, |i, j| sign * a[(i, j)] - if i == j { t } else { 0.0 })
        };
        let l = self.layer;
        let s = self.schur.take().unwrap_or_else(|| shifted(&h.diag[0]));
        let Ok(llt) = s.llt(faer::Side::Lower) else { return Some(false) };
        let Some(jl) = h.jac.get(l) else { return Some(true) };
        // S_{l+1} = sign·A_{l+1} − tI − (sign J_l) S_l⁻¹ (sign J_l)ᵀ = … − Yᵀ Y with Y = L⁻¹ J_lᵀ.
        let mut y = jl.transpose().to_owned();
        solve_lower_triangular_in_place(llt.L(), y.as_mut(), faer::Par::Seq);
        let mut next = shifted(&h.diag[l + 1]);
        matmul(next.as_mut(), faer::Accum::Add, y.transpose(), y.as_ref(), -1.0, faer::Par::Seq);
        self.schur = Some(next);
        self.layer += 1;
        None
    }
}

/// [`BlockHessian::extremes`] a block-Cholesky step at a time (each `O(N³)`), so a page can
/// spread it over frames: bisection for λ_min of `H`, then of `−H`.
#[derive(Clone, Debug)]
pub struct BlockBisection {
    blocks: BlockHessian,
    tol: f64,
    sign: f64,
    lo: f64,
    hi: f64,
    test: Option<(f64, DefinitenessTest)>,
    tests: usize,
    /// `(value, half-width, tests)` of λ_min, once bracketed.
    first: Option<(f64, f64, usize)>,
    /// The latest estimate: both extremes once known.
    pub estimate: Option<Extremes>,
}

impl BlockBisection {
    /// Ready to bisect to relative accuracy `tol`.
    pub fn new(blocks: BlockHessian, tol: f64) -> Self {
        let (lo, hi) = blocks.bracket(1.0);
        BlockBisection { blocks, tol, sign: 1.0, lo, hi, test: None, tests: 0, first: None, estimate: None }
    }

    /// Definiteness tests completed.
    pub fn iterations(&self) -> usize {
        self.first.map_or(0, |f| f.2) + self.tests
    }

    /// One block step; both extremes once bracketed.
    pub fn step(&mut self) -> Option<Extremes> {
        if let Some((mid, mut test)) = self.test.take() {
            match test.step(&self.blocks) {
                None => self.test = Some((mid, test)),
                Some(true) => self.lo = mid,
                Some(false) => self.hi = mid,
            }
            return None;
        }
        let (lo, hi) = (self.lo, self.hi);
        // Geometric steps once the bracket is positive, so a tiny λ_min costs few tests.
        let mid = if lo > 0.0 { (lo * hi).sqrt() } else { 0.5 * (lo + hi) };
        let narrow = hi - lo <= self.tol * lo.abs().max(hi.abs()) || mid <= lo || mid >= hi;
        if !narrow && self.tests < MAX_BISECTIONS {
            self.tests += 1;
            self.test = Some((mid, DefinitenessTest::new(self.sign, mid)));
            return None;
        }
        let found = (0.5 * (lo + hi), 0.5 * (hi - lo), self.tests);
        let Some((lo, r_lo, t_lo)) = self.first else {
            self.first = Some(found);
            self.sign = -1.0;
            (self.lo, self.hi) = self.blocks.bracket(-1.0);
            self.tests = 0;
            return None;
        };
        let (hi, r_hi) = (-found.0, found.1);
        let tol = self.tol;
        // A definiteness test in f64 cannot place λ_min much closer to 0 than ε·|λ_max|: beyond
        // κ ≈ 4·10¹² the value is only an order of magnitude, and is not called converged.
        let resolved = lo.abs() > 1e3 * f64::EPSILON * hi.abs();
        let e = Extremes {
            lambda_min: lo,
            lambda_max: hi,
            kappa: kappa(lo, hi),
            iterations: t_lo + found.2,
            residual_min: r_lo,
            residual_max: r_hi,
            converged: resolved && r_lo <= tol * lo.abs() && r_hi <= tol * hi.abs(),
        };
        self.estimate = Some(e.clone());
        Some(e)
    }
}
