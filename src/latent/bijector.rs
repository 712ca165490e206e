//! Bijectors: smooth invertible maps f from unconstrained ℝⁿ onto the support of a constrained
//! block, with log |det J_f| (the transforms of the Stan reference manual, "Constraint
//! transforms", with Stan's stick-breaking simplex). A block of constrained shape `shape` holds
//! independent copies along its leading axes; the simplex and ordered transforms act on the last
//! axis (length K), the correlation Cholesky transform on the last two (K × K). Every draw of a
//! batch of S is mapped at once.
//!
//! ```text
//! real               x = u                                              log|J| = 0
//! positive           x = eᵘ                                             log|J| = Σ u
//! positive softplus  x = softplus(u) = log(1 + eᵘ)                      log|J| = Σ log σ(u)
//! lower bound a      x = a + eᵘ                                         log|J| = Σ u
//! upper bound b      x = b − eᵘ                                         log|J| = Σ u
//! interval (a, b)    x = a + (b − a) σ(u) = b − (b − a) σ(−u)           log|J| = Σ [log(b − a) + log σ(u) + log σ(−u)]
//! simplex            v_k = u_k − log(K − k),  z_k = σ(v_k)              (k = 1 … K−1)
//!                    x_k = z_k Π_{j<k} (1 − z_j),  x_K = Π_{j<K} (1 − z_j)
//!                    log|J| = Σ_k [log z_k + (K − k) log(1 − z_k)]      (u = 0 maps to the centre 1/K)
//! ordered            x_1 = u_1,     x_k = x_{k−1} + e^{u_k}             log|J| = Σ_{k≥2} u_k
//! positive ordered   x_1 = e^{u_1}, x_k = x_{k−1} + e^{u_k}             log|J| = Σ_k u_k
//! correlation        z_ij = tanh(u_ij) for i > j, u in row-major order of the strictly lower triangle
//! Cholesky factor    L_ij = z_ij Π_{k<j} √(1 − z_ik²),  L_ii = Π_{k<i} √(1 − z_ik²),  L_ij = 0 for j > i
//!                    log|J| = Σ_{i>j} (i − j + 1) · ½ log(1 − z_ij²)    (i, j from 0)
//! ```
//!
//! Log-determinant conventions: for the simplex, the Jacobian of u ↦ (x_1 … x_{K−1}) (x_K is
//! determined by the others); for the correlation Cholesky factor, the Jacobian of u ↦ the
//! strictly lower entries L_ij (i > j) in row-major order (the diagonal is determined by the
//! unit row norms); for all others the elementwise Jacobian. log|J| is summed over the block.
//!
//! Numerics. Everything is computed in log space, so that no step divides or subtracts nearly
//! equal numbers and nothing overflows before the result itself does:
//!
//! ```text
//! simplex      log z_k = log σ(v_k),  log(1 − z_k) = log σ(−v_k),
//!              log Π_{j<k} (1 − z_j) = exclusive cumulative sum of log(1 − z_j),  x_k = exp(…)
//! correlation  h_ij = ½ log(1 − tanh² u_ij) = log 2 − u_ij − softplus(−2 u_ij)   (finite for all u)
//!              log Π_{k<j} √(1 − z_ik²) = exclusive cumulative sum of h along row i
//! ```
//!
//! Cumulative sums are products with constant 0/1 triangular matrices. The one branch (the
//! interval picks its form by the sign of u) has bounded derivatives on both sides, so gradients
//! are finite wherever the values are.
//!
//! Limits (f64, measured in `tests/latent/bijectors.rs`). Values, log-determinants and gradients are
//! finite for |u| ≤ 700 (eᵘ overflows past 709; in f32 past 88), and x lies in the closure of the
//! support. Strictly inside, and recoverable by `inverse`, is what f64 can represent:
//! - next to a nonzero bound c, x = c ± scale·eᵘ rounds onto c for u < log(|c| / scale) − 36.7,
//!   and `inverse` recovers u to 1e-10 only down to about log(|c| / scale) − 16 (x is stored to
//!   ulp(c)); a bound at 0 has no such limit (the interval computes x from the nearer bound);
//! - softplus: on the CPU `special::softplus` is exact, so x > 0 and the round trip holds for all
//!   |u| ≤ 700; on other devices it is the composite log(1 + eᵘ), with which x rounds to 0 below
//!   u ≈ −37 and round-trips to 1e-10 only above u ≈ −16;
//! - ordered: x_k − x_{k−1} = e^{u_k} is lost below ulp(x_k); the round trip needs increments
//!   ≳ 1e-6 |x_k| (|u| ≤ 6 for K ≤ 4), strict increase ≳ 1e-16 |x_k|;
//! - simplex and correlation entries are ≈ e^{−Σ|u|} over a vector or row; they underflow to 0
//!   once that sum passes about 708.
//!
//! Inverses run on the host in f64 and avoid any cancellation that the transform does not force
//! (the ordered increments x_k − x_{k−1} are the one it does):
//!
//! ```text
//! simplex      u_k = log x_k − log Σ_{j>k} x_j + log(K − k)            (suffix sums, not 1 − Σ_{j≤k} x_j)
//! correlation  t_ij = ‖(L_i,j+1 … L_ii)‖,  r_ij = ‖(L_ij … L_ii)‖         (hypot: no underflow of squares)
//!              u_ij = atanh(L_ij / r_ij) = sign(L_ij) [log(r_ij + |L_ij|) − log t_ij]
//! interval     u = log(x − a) − log(b − x)
//! softplus     u = x + log(−expm1(−x))
//! ```
//!
//! Supports are open sets ([`Bijector::check_support`]): a value on a bound (a zero simplex
//! entry, x = a) has no finite preimage. Sums to one and unit row norms are checked to within
//! 1e-8 (Stan's constraint tolerance).

use std::fmt;

use candle_core::{bail, DType, Device, Tensor};

use crate::special::{log_sigmoid, softplus};

/// Tolerance of the equality constraints (simplex sums, unit row norms) in `check_support`.
const TOLERANCE: f64 = 1e-8;

/// A bijection from unconstrained ℝⁿ to a constrained set, applied blockwise to a batch of S draws.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Bijector {
    /// The identity: x = u, unconstrained reals.
    Real,
    /// x = eᵘ, positive reals.
    Positive,
    /// x = softplus(u) = log(1 + eᵘ), positive reals; about linear for large u.
    PositiveSoftplus,
    /// x = a + eᵘ, reals above the lower bound a.
    LowerBounded(f64),
    /// x = b − eᵘ, reals below the upper bound b.
    UpperBounded(f64),
    /// x = a + (b − a) σ(u), the open interval (a, b).
    Interval(f64, f64),
    /// Stick-breaking over the last axis: K − 1 unconstrained coordinates → K positive entries
    /// summing to one; u = 0 maps to the centre (1/K, …, 1/K).
    Simplex,
    /// Strictly increasing along the last axis: x_1 = u_1, x_k = x_{k−1} + e^{u_k}.
    Ordered,
    /// Positive and strictly increasing along the last axis: x_1 = e^{u_1}, x_k = x_{k−1} + e^{u_k}.
    PositiveOrdered,
    /// The last two axes (K × K) are the lower Cholesky factor L of a correlation matrix L Lᵀ:
    /// lower triangular, positive diagonal, unit-norm rows; K(K − 1)/2 unconstrained coordinates.
    CorrCholesky,
}

/// How a block of constrained shape `shape` splits into independent copies of the bijector's unit
/// (one element, one last-axis vector, one K × K matrix).
#[derive(Clone, Copy, Debug)]
struct Blocks {
    /// Number of independent copies.
    copies: usize,
    /// K: the length of the last axis (simplex, ordered) or the matrix order (CorrCholesky); 1
    /// for elementwise bijectors.
    k: usize,
    /// Unconstrained coordinates per copy.
    free: usize,
}

impl Bijector {
    /// Checks the parameters (bounds finite, a < b) — Err(reason) otherwise.
    pub fn validate(&self) -> Result<(), String> {
        let finite = |what: &str, v: f64| {
            if v.is_finite() {
                Ok(())
            } else {
                Err(format!("the {what} {v} is not finite"))
            }
        };
        match *self {
            Bijector::LowerBounded(a) => finite("lower bound", a),
            Bijector::UpperBounded(b) => finite("upper bound", b),
            Bijector::Interval(a, b) => {
                finite("lower bound", a)?;
                finite("upper bound", b)?;
                if a >= b {
                    Err(format!("the interval ({a}, {b}) is empty: the lower bound must be below the upper bound"))
                } else if !(b - a).is_finite() {
                    Err(format!("the width of the interval ({a}, {b}) overflows f64"))
                } else {
                    Ok(())
                }
            }
            _ => Ok(()),
        }
    }

    /// Number of unconstrained coordinates for a block whose constrained shape is `shape` (leading
    /// axes are independent copies; simplex/ordered act on the last axis, CorrCholesky on the last
    /// two, which must be equal). Err(reason) for a shape the bijector cannot take (an axis of
    /// length 0, an empty shape for the vector and matrix bijectors, a non-square matrix …).
    pub fn unconstrained_len(&self, shape: &[usize]) -> Result<usize, String> {
        let b = self.blocks(shape)?;
        b.copies.checked_mul(b.free).ok_or_else(|| format!("a block of shape {shape:?} is too large"))
    }

    /// Valid parameters and shape: the copies and the unconstrained length, or a candle error.
    fn layout(&self, shape: &[usize]) -> candle_core::Result<(Blocks, usize)> {
        self.validate()
            .and_then(|()| Ok((self.blocks(shape)?, self.unconstrained_len(shape)?)))
            .map_err(|e| candle_core::Error::msg(format!("bijector {self}: {e}")))
    }

    fn blocks(&self, shape: &[usize]) -> Result<Blocks, String> {
        if let Some(axis) = shape.iter().position(|&d| d == 0) {
            return Err(format!("shape {shape:?} has length 0 along axis {axis}: a block needs at least one value"));
        }
        let count = |dims: &[usize]| {
            dims.iter()
                .try_fold(1usize, |acc, &d| acc.checked_mul(d))
                .ok_or_else(|| format!("a block of shape {shape:?} is too large"))
        };
        match self {
            Bijector::Simplex | Bijector::Ordered | Bijector::PositiveOrdered => {
                let Some((&k, lead)) = shape.split_last() else {
                    return Err(format!("the {self} transform acts on the last axis, but the shape [] has none"));
                };
                let free = if *self == Bijector::Simplex { k - 1 } else { k };
                Ok(Blocks { copies: count(lead)?, k, free })
            }
            Bijector::CorrCholesky => {
                if shape.len() < 2 {
                    return Err(format!("a {self} needs two axes (K × K), but the shape is {shape:?}"));
                }
                let (lead, mat) = shape.split_at(shape.len() - 2);
                if mat[0] != mat[1] {
                    return Err(format!(
                        "a {self} is square, but the last two axes of shape {shape:?} are {} × {}",
                        mat[0], mat[1]
                    ));
                }
                let k = mat[0];
                Ok(Blocks { copies: count(lead)?, k, free: k * (k - 1) / 2 })
            }
            _ => Ok(Blocks { copies: count(shape)?, k: 1, free: 1 }),
        }
    }

    /// `u`: `[S, n]` unconstrained → (x: `[S, shape…]` constrained, log|det J| summed over the
    /// block: `[S]`). Differentiable in u. Fails for invalid parameters or shapes, a `u` that is not
    /// `[S, n]` with n = [`Bijector::unconstrained_len`], or an integer dtype.
    pub fn forward(&self, u: &Tensor, shape: &[usize]) -> candle_core::Result<(Tensor, Tensor)> {
        let (blocks, n) = self.layout(shape)?;
        let (s, cols) = match u.dims() {
            &[s, cols] => (s, cols),
            dims => bail!("bijector {self}: u must have shape [S, {n}], got {dims:?}"),
        };
        if cols != n {
            bail!("bijector {self}: a block of shape {shape:?} has {n} unconstrained coordinates, but u has {cols}");
        }
        if !u.dtype().is_float() {
            bail!("bijector {self}: u must be a float tensor, got {:?}", u.dtype());
        }
        let out_shape: Vec<usize> = std::iter::once(s).chain(shape.iter().copied()).collect();
        let (dtype, device) = (u.dtype(), u.device());
        let b = s * blocks.copies;
        let k = blocks.k;
        let (x, log_det) = match *self {
            Bijector::Real => (u.clone(), Tensor::zeros(s, dtype, device)?),
            Bijector::Positive => (u.exp()?, u.sum(1)?),
            Bijector::PositiveSoftplus => (softplus(u)?, log_sigmoid(u)?.sum(1)?),
            Bijector::LowerBounded(a) => ((u.exp()? + a)?, u.sum(1)?),
            Bijector::UpperBounded(ub) => (u.exp()?.affine(-1.0, ub)?, u.sum(1)?),
            Bijector::Interval(a, ub) => {
                // a + (b − a) σ(u) below the midpoint, b − (b − a) σ(−u) above it: x never rounds
                // past a bound (a + fl(b − a) can exceed b), and it keeps relative precision next
                // to a bound that is 0. Both branches have bounded derivatives, so where_cond
                // passes no NaN to the gradient.
                let low = candle_nn::ops::sigmoid(u)?.affine(ub - a, a)?;
                let high = candle_nn::ops::sigmoid(&u.neg()?)?.affine(a - ub, ub)?;
                let x = u.ge(0.0)?.where_cond(&high, &low)?;
                let log_det = (log_sigmoid(u)? + log_sigmoid(&u.neg()?)?)?.sum(1)?;
                (x, (log_det + n as f64 * (ub - a).ln())?)
            }
            Bijector::Simplex | Bijector::CorrCholesky if k == 1 => {
                (Tensor::ones(out_shape.as_slice(), dtype, device)?, Tensor::zeros(s, dtype, device)?)
            }
            Bijector::Ordered if k == 1 => (u.clone(), Tensor::zeros(s, dtype, device)?),
            Bijector::Simplex => {
                let u = u.reshape((b, k - 1))?;
                let offsets = constant((1..k).rev().map(|r| (r as f64).ln()).collect(), k - 1, &u)?;
                let v = u.broadcast_sub(&offsets)?;
                let log_z = log_sigmoid(&v)?;
                let log_1mz = log_sigmoid(&v.neg()?)?;
                let log_rest = log_1mz.matmul(&triangle(k - 1, false, &u)?)?;
                let head = (&log_z + log_rest)?.exp()?;
                let last = log_1mz.sum_keepdim(1)?.exp()?;
                let weights = constant((1..k).rev().map(|r| r as f64).collect(), k - 1, &u)?;
                let log_det = (log_z + log_1mz.broadcast_mul(&weights)?)?.reshape((s, n))?.sum(1)?;
                (Tensor::cat(&[head, last], 1)?, log_det)
            }
            Bijector::Ordered | Bijector::PositiveOrdered => {
                let u = u.reshape((b, k))?;
                let (steps, log_det) = if *self == Bijector::Ordered {
                    let rest = u.narrow(1, 1, k - 1)?;
                    let log_det = rest.sum(1)?.reshape((s, blocks.copies))?.sum(1)?;
                    (Tensor::cat(&[u.narrow(1, 0, 1)?, rest.exp()?], 1)?, log_det)
                } else {
                    (u.exp()?, u.reshape((s, n))?.sum(1)?)
                };
                (steps.matmul(&triangle(k, true, &u)?)?, log_det)
            }
            Bijector::CorrCholesky => {
                let m = blocks.free;
                let u = u.reshape((b, m))?;
                let z = u.tanh()?;
                // h = ½ log(1 − tanh² u) = log 2 − u − softplus(−2u)
                let h = ((u.neg()? - softplus(&(&u * -2.0)?)?)? + std::f64::consts::LN_2)?;
                // Scatter the strictly lower entries into K × K (row-major); the extra index m
                // points at an appended zero column and fills the diagonal and upper triangle.
                let mut index = vec![m as u32; k * k];
                let mut weights = Vec::with_capacity(m);
                let mut pos = 0u32;
                for i in 1..k {
                    for j in 0..i {
                        index[i * k + j] = pos;
                        pos += 1;
                        weights.push((i - j + 1) as f64);
                    }
                }
                let index = Tensor::from_vec(index, k * k, device)?;
                let zero = Tensor::zeros((b, 1), dtype, device)?;
                let square = |t: &Tensor| Tensor::cat(&[t, &zero], 1)?.index_select(&index, 1)?.reshape((b * k, k));
                // log Π_{k<j} √(1 − z_ik²): exclusive cumulative sums along each row
                let log_scale = square(&h)?.matmul(&triangle(k, false, &u)?)?.reshape((b, k, k))?;
                let z_eye = square(&z)?.reshape((b, k, k))?.broadcast_add(&Tensor::eye(k, dtype, device)?)?;
                let l = (z_eye * log_scale.exp()?)?;
                let log_det = h.broadcast_mul(&constant(weights, m, &u)?)?.reshape((s, n))?.sum(1)?;
                (l, log_det)
            }
        };
        Ok((x.reshape(out_shape)?, log_det))
    }

    /// `x`: `[S, shape…]` → u: `[S, n]`, computed on the host in f64 and returned with x's dtype and
    /// device. Not differentiable (it is meant for user-given initial values). Fails, naming the
    /// draw and the violation, when a draw is outside the support ([`Bijector::check_support`];
    /// for f32 tensors sums and norms need only be 1 within 1e-5, for f16/bf16 within 1e-2).
    /// The simplex and correlation inverses only use ratios within a vector or row, so they
    /// ignore a scale error within the tolerance.
    pub fn inverse(&self, x: &Tensor, shape: &[usize]) -> candle_core::Result<Tensor> {
        let (blocks, n) = self.layout(shape)?;
        let dims = x.dims();
        if dims.is_empty() || &dims[1..] != shape {
            bail!("bijector {self}: x must have shape [S, {}], got {dims:?}", shape_list(shape));
        }
        if !x.dtype().is_float() {
            bail!("bijector {self}: x must be a float tensor, got {:?}", x.dtype());
        }
        let s = dims[0];
        // sums and norms of low-precision values are only as exact as their dtype
        let tolerance = match x.dtype() {
            DType::F64 => TOLERANCE,
            DType::F32 => 1e-5,
            _ => 1e-2,
        };
        let values = x.detach().to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?;
        let len = blocks.copies * self.unit_len(blocks.k);
        let mut u = Vec::with_capacity(s * n);
        for (draw, xs) in values.chunks(len).take(s).enumerate() {
            if let Some(problem) = self.violation(xs, shape, tolerance) {
                bail!("bijector {self}: draw {draw} is outside the support: {problem}");
            }
            self.inverse_draw(xs, blocks, &mut u);
        }
        Tensor::from_vec(u, (s, n), &Device::Cpu)?.to_dtype(x.dtype())?.to_device(x.device())
    }

    /// Number of constrained values in one copy.
    fn unit_len(&self, k: usize) -> usize {
        match self {
            Bijector::CorrCholesky => k * k,
            _ => k,
        }
    }

    /// Appends the unconstrained coordinates of one draw (already checked to be in the support).
    fn inverse_draw(&self, xs: &[f64], blocks: Blocks, u: &mut Vec<f64>) {
        let k = blocks.k;
        match *self {
            Bijector::Real => u.extend_from_slice(xs),
            Bijector::Positive => u.extend(xs.iter().map(|x| x.ln())),
            Bijector::PositiveSoftplus => u.extend(xs.iter().map(|&x| x + (-(-x).exp_m1()).ln())),
            Bijector::LowerBounded(a) => u.extend(xs.iter().map(|x| (x - a).ln())),
            Bijector::UpperBounded(b) => u.extend(xs.iter().map(|x| (b - x).ln())),
            Bijector::Interval(a, b) => u.extend(xs.iter().map(|x| (x - a).ln() - (b - x).ln())),
            Bijector::Simplex => {
                for v in xs.chunks(k) {
                    // suffix[j] = Σ_{i ≥ j} x_i
                    let mut suffix = vec![0.0; k + 1];
                    for j in (0..k).rev() {
                        suffix[j] = suffix[j + 1] + v[j];
                    }
                    u.extend((0..k - 1).map(|j| v[j].ln() - suffix[j + 1].ln() + ((k - 1 - j) as f64).ln()));
                }
            }
            Bijector::Ordered | Bijector::PositiveOrdered => {
                for v in xs.chunks(k) {
                    u.push(if *self == Bijector::Ordered { v[0] } else { v[0].ln() });
                    u.extend(v.windows(2).map(|w| (w[1] - w[0]).ln()));
                }
            }
            Bijector::CorrCholesky => {
                for l in xs.chunks(k * k) {
                    for i in 1..k {
                        let row = &l[i * k..i * k + i + 1];
                        // tail = √t_ij = ‖(L_i,j+1 … L_ii)‖, built from the diagonal leftwards with
                        // hypot: squares of entries below 1e-154 would underflow
                        let mut tail = row[i];
                        let mut row_u = vec![0.0; i];
                        for j in (0..i).rev() {
                            let r = row[j].hypot(tail);
                            row_u[j] = row[j].signum() * ((r + row[j].abs()).ln() - tail.ln());
                            tail = r;
                        }
                        u.extend(row_u);
                    }
                }
            }
        }
    }

    /// For one draw's constrained values (row-major, `shape`): None if inside the support, else
    /// Some(description of the first violation), naming the flat (row-major, 0-based) index and
    /// the value, e.g. "element 3 = -0.5 is not positive", "elements 0 to 2 sum to 1.2, not 1",
    /// "row 2 has norm 0.9, not 1". Supports are open: bounds themselves are outside. Sums and
    /// row norms must be 1 within 1e-8.
    pub fn check_support(&self, x: &[f64], shape: &[usize]) -> Option<String> {
        self.violation(x, shape, TOLERANCE)
    }

    /// `check_support` with `tolerance` for the equality constraints.
    fn violation(&self, x: &[f64], shape: &[usize], tolerance: f64) -> Option<String> {
        if let Err(e) = self.validate() {
            return Some(e);
        }
        let blocks = match self.blocks(shape) {
            Ok(b) => b,
            Err(e) => return Some(e),
        };
        let k = blocks.k;
        let len = blocks.copies * self.unit_len(k);
        if x.len() != len {
            return Some(format!("a block of shape {shape:?} has {len} values, got {}", x.len()));
        }
        if let Some((i, v)) = x.iter().enumerate().find(|(_, v)| !v.is_finite()) {
            return Some(format!("element {i} = {v} is not finite"));
        }
        let first = |ok: &dyn Fn(f64) -> bool, what: &str| {
            x.iter().enumerate().find(|(_, &v)| !ok(v)).map(|(i, v)| format!("element {i} = {v} {what}"))
        };
        match *self {
            Bijector::Real => None,
            Bijector::Positive | Bijector::PositiveSoftplus => first(&|v| v > 0.0, "is not positive"),
            Bijector::LowerBounded(a) => first(&|v| v > a, &format!("is not above the lower bound {a}")),
            Bijector::UpperBounded(b) => first(&|v| v < b, &format!("is not below the upper bound {b}")),
            Bijector::Interval(a, b) => first(&|v| a < v && v < b, &format!("is not inside ({a}, {b})")),
            Bijector::Simplex => first(&|v| v > 0.0, "is not positive").or_else(|| {
                x.chunks(k).enumerate().find_map(|(c, v)| {
                    let sum: f64 = v.iter().sum();
                    ((sum - 1.0).abs() > tolerance)
                        .then(|| format!("elements {} to {} sum to {sum}, not 1", c * k, c * k + k - 1))
                })
            }),
            Bijector::Ordered | Bijector::PositiveOrdered => x.chunks(k).enumerate().find_map(|(c, v)| {
                if *self == Bijector::PositiveOrdered && v[0] <= 0.0 {
                    return Some(format!("element {} = {} is not positive", c * k, v[0]));
                }
                v.windows(2).position(|w| w[1] <= w[0]).map(|j| {
                    let i = c * k + j + 1;
                    format!("element {i} = {} is not greater than element {} = {}", v[j + 1], i - 1, v[j])
                })
            }),
            Bijector::CorrCholesky => x.chunks(k * k).enumerate().find_map(|(c, l)| {
                let matrix = if blocks.copies > 1 { format!("matrix {c}, ") } else { String::new() };
                (0..k).find_map(|i| {
                    let row = &l[i * k..(i + 1) * k];
                    let at = |j: usize| c * k * k + i * k + j;
                    if let Some(j) = (i + 1..k).find(|&j| row[j] != 0.0) {
                        return Some(format!("element {} = {} is above the diagonal, not 0", at(j), row[j]));
                    }
                    if row[i] <= 0.0 {
                        return Some(format!("element {} = {} is on the diagonal and not positive", at(i), row[i]));
                    }
                    let norm = row.iter().map(|v| v * v).sum::<f64>().sqrt();
                    ((norm - 1.0).abs() > tolerance).then(|| format!("{matrix}row {i} has norm {norm}, not 1"))
                })
            }),
        }
    }
}

impl fmt::Display for Bijector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Bijector::Real => write!(f, "real"),
            Bijector::Positive => write!(f, "positive"),
            Bijector::PositiveSoftplus => write!(f, "positive (softplus)"),
            Bijector::LowerBounded(a) => write!(f, "lower-bounded ({a}, ∞)"),
            Bijector::UpperBounded(b) => write!(f, "upper-bounded (−∞, {b})"),
            Bijector::Interval(a, b) => write!(f, "interval ({a}, {b})"),
            Bijector::Simplex => write!(f, "simplex"),
            Bijector::Ordered => write!(f, "ordered"),
            Bijector::PositiveOrdered => write!(f, "positive ordered"),
            Bijector::CorrCholesky => write!(f, "Cholesky factor of a correlation matrix"),
        }
    }
}

/// `shape` as "2, 3" (for messages).
fn shape_list(shape: &[usize]) -> String {
    shape.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ")
}

/// A constant host vector as a tensor of `like`'s dtype and device.
fn constant(values: Vec<f64>, len: usize, like: &Tensor) -> candle_core::Result<Tensor> {
    Tensor::from_vec(values, len, &Device::Cpu)?.to_dtype(like.dtype())?.to_device(like.device())
}

/// The n × n 0/1 matrix M with M_jk = 1 for j < k (or j ≤ k when `inclusive`): for a batch of
/// row vectors, `v.matmul(M)` is the exclusive (inclusive) cumulative sum along the row.
fn triangle(n: usize, inclusive: bool, like: &Tensor) -> candle_core::Result<Tensor> {
    let m: Vec<f64> = (0..n * n)
        .map(|p| {
            let (j, k) = (p / n, p % n);
            f64::from(u8::from(j < k || (inclusive && j == k)))
        })
        .collect();
    Tensor::from_vec(m, (n, n), &Device::Cpu)?.to_dtype(like.dtype())?.to_device(like.device())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::linalg::to_f64_vec;

    fn host(t: &Tensor) -> Vec<f64> {
        to_f64_vec(t).unwrap()
    }

    #[test]
    fn zero_maps_to_the_centre_of_the_simplex_and_the_identity_correlation() {
        for k in 1..=5 {
            let u = Tensor::zeros((2, k - 1), DType::F64, &Device::Cpu).unwrap();
            let (x, _) = Bijector::Simplex.forward(&u, &[k]).unwrap();
            assert!(host(&x).iter().all(|v| (v - 1.0 / k as f64).abs() < 1e-15), "K = {k}: {x}");
            let u = Tensor::zeros((2, k * (k - 1) / 2), DType::F64, &Device::Cpu).unwrap();
            let (l, log_det) = Bijector::CorrCholesky.forward(&u, &[k, k]).unwrap();
            let eye = host(&Tensor::eye(k, DType::F64, &Device::Cpu).unwrap().repeat((2, 1)).unwrap());
            assert_eq!(host(&l), eye);
            assert!(host(&log_det).iter().all(|v| v.abs() < 1e-15));
        }
    }

    #[test]
    fn two_by_two_correlation_factor_matches_the_closed_form() {
        // K = 2: L = [[1, 0], [z, √(1 − z²)]], log|J| = log(1 − z²)
        let u = Tensor::new(&[[0.7f64], [-2.5]], &Device::Cpu).unwrap();
        let (l, log_det) = Bijector::CorrCholesky.forward(&u, &[2, 2]).unwrap();
        let (l, log_det) = (host(&l), host(&log_det));
        for (d, u) in [0.7f64, -2.5].into_iter().enumerate() {
            let z = u.tanh();
            let want = [1.0, 0.0, z, (1.0 - z * z).sqrt()];
            for (got, want) in l[4 * d..4 * d + 4].iter().zip(want) {
                assert!((got - want).abs() < 1e-15, "{got} vs {want}");
            }
            assert!((log_det[d] - (1.0 - z * z).ln()).abs() < 1e-13);
        }
    }
}
