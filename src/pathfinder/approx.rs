//! Pathfinder's Gaussian at one L-BFGS iterate: the inverse-Hessian estimate of the last J steps,
//! diagonal plus low rank, with draws and log densities in O(D J²).
//!
//! ```text
//! f = −log p(x, z);  sₖ = xₖ₊₁ − xₖ,  yₖ = ∇fₖ₊₁ − ∇fₖ;  a pair is kept when sₖᵀyₖ > 10⁻¹⁰ ‖sₖ‖ ‖yₖ‖
//! A = diag(α), α = 1 at the start, then for each kept pair (Gilbert & Lemaréchal 1989), elementwise:
//!   1/α' = a / (b α) + y² / b − a s² / (b c α²),   a = yᵀAy,  b = sᵀy,  c = sᵀA⁻¹s
//! Σ = A + [S  AY] N [S  AY]ᵀ,   N = [[R⁻ᵀ(E + YᵀAY)R⁻¹, −R⁻ᵀ], [−R⁻¹, 0]]    (Byrd, Nocedal &
//!   R = the upper triangle of SᵀY,  E = diag(sᵢᵀyᵢ)    (the last J kept pairs)    Schnabel 1994)
//! W = A^(−1/2) [S  AY] = Q B (thin QR),   K = I + B N Bᵀ = L Lᵀ
//! Σ = A^(1/2) (I + Q (K − I) Qᵀ) A^(1/2),   μ = x − Σ ∇f(x)          (a quasi-Newton step)
//! z = μ + A^(1/2) (u + Q (L − I) Qᵀ u),   u ~ N(0, I_D)
//! log q(z) = −½ (log det Σ + ‖u‖² + D log 2π),   log det Σ = Σ log α + 2 Σ log Lᵢᵢ
//! ```
//!
//! α is free of the posterior's scale: for f = κ x² / 2 one pair gives α = 1 / κ exactly.

use crate::linalg::cholesky;

/// The curvature test of a pair, relative so that it is free of the scale: sᵀy > 10⁻¹⁰ ‖s‖ ‖y‖.
const CURVATURE: f64 = 1e-10;

/// The diagonal α of the initial inverse Hessian and the last J pairs that passed the curvature
/// test, updated along the path.
#[derive(Clone, Debug)]
pub(crate) struct History {
    pub alpha: Vec<f64>,
    pairs: Vec<(Vec<f64>, Vec<f64>)>,
    memory: usize,
}

impl History {
    pub(crate) fn new(d: usize, memory: usize) -> Self {
        History { alpha: vec![1.0; d], pairs: Vec::new(), memory }
    }

    /// Takes the step from (x, g) to (x', g'); returns whether the pair was kept.
    pub(crate) fn push(&mut self, x: &[f64], g: &[f64], x_next: &[f64], g_next: &[f64]) -> bool {
        let s: Vec<f64> = x_next.iter().zip(x).map(|(a, b)| a - b).collect();
        let y: Vec<f64> = g_next.iter().zip(g).map(|(a, b)| a - b).collect();
        let b = dot(&s, &y);
        let curved = b > CURVATURE * norm(&s) * norm(&y);
        if !curved || !b.is_finite() {
            return false;
        }
        let a: f64 = y.iter().zip(&self.alpha).map(|(y, al)| y * y * al).sum();
        let c: f64 = s.iter().zip(&self.alpha).map(|(s, al)| s * s / al).sum();
        let next: Vec<f64> = (0..s.len())
            .map(|i| {
                let al = self.alpha[i];
                1.0 / (a / (b * al) + y[i] * y[i] / b - a * s[i] * s[i] / (b * c * al * al))
            })
            .collect();
        // a rounding-damaged update (not positive and finite) keeps the old diagonal
        if next.iter().all(|v| v.is_finite() && *v > 0.0) {
            self.alpha = next;
        }
        self.pairs.push((s, y));
        if self.pairs.len() > self.memory {
            self.pairs.remove(0);
        }
        true
    }

    /// The Gaussian at x (gradient g of f there), or None when the pairs give no positive
    /// definite Σ (rounding).
    pub(crate) fn gaussian(&self, x: &[f64], g: &[f64]) -> Option<LowRankGaussian> {
        let d = x.len();
        let m = self.pairs.len();
        let sqrt_alpha: Vec<f64> = self.alpha.iter().map(|a| a.sqrt()).collect();
        // W = A^(−1/2) [S  AY], column by column
        let mut w: Vec<Vec<f64>> = Vec::with_capacity(2 * m);
        for (s, _) in &self.pairs {
            w.push(s.iter().zip(&sqrt_alpha).map(|(s, r)| s / r).collect());
        }
        for (_, y) in &self.pairs {
            w.push(y.iter().zip(&sqrt_alpha).map(|(y, r)| y * r).collect());
        }
        let n = middle(&self.pairs, &self.alpha)?;
        let (q, b) = thin_qr(&w, d);
        let r = q.len();
        // K = I + B N Bᵀ (r × r), B is r × 2m
        let c = 2 * m;
        let mut k = vec![0.0; r * r];
        for i in 0..r {
            for j in 0..r {
                let mut v = if i == j { 1.0 } else { 0.0 };
                for p in 0..c {
                    for t in 0..c {
                        v += b[i * c + p] * n[p * c + t] * b[j * c + t];
                    }
                }
                k[i * r + j] = v;
            }
        }
        for i in 0..r {
            for j in 0..i {
                let v = 0.5 * (k[i * r + j] + k[j * r + i]);
                k[i * r + j] = v;
                k[j * r + i] = v;
            }
        }
        let l = if r == 0 { Vec::new() } else { cholesky(&k, r).ok()? };
        let log_det =
            self.alpha.iter().map(|a| a.ln()).sum::<f64>() + 2.0 * (0..r).map(|i| l[i * r + i].ln()).sum::<f64>();
        let mut gaussian = LowRankGaussian { mean: x.to_vec(), sqrt_alpha, q, k, l, log_det };
        let step = gaussian.covariance_times(g);
        gaussian.mean = x.iter().zip(&step).map(|(x, s)| x - s).collect();
        (gaussian.log_det.is_finite() && gaussian.mean.iter().all(|v| v.is_finite())).then_some(gaussian)
    }
}

/// N = [[R⁻ᵀ(E + YᵀAY)R⁻¹, −R⁻ᵀ], [−R⁻¹, 0]] (row-major 2m × 2m), or None when R is singular.
fn middle(pairs: &[(Vec<f64>, Vec<f64>)], alpha: &[f64]) -> Option<Vec<f64>> {
    let m = pairs.len();
    let c = 2 * m;
    // R⁻¹ of the upper triangle of SᵀY, column by column (back substitution on R X = I)
    let r: Vec<f64> =
        (0..m * m).map(|k| if k / m <= k % m { dot(&pairs[k / m].0, &pairs[k % m].1) } else { 0.0 }).collect();
    let mut r_inv = vec![0.0; m * m];
    for col in 0..m {
        for i in (0..m).rev() {
            let mut v = if i == col { 1.0 } else { 0.0 };
            for j in i + 1..m {
                v -= r[i * m + j] * r_inv[j * m + col];
            }
            let pivot = r[i * m + i];
            if pivot.is_nan() || pivot <= 0.0 {
                return None;
            }
            r_inv[i * m + col] = v / pivot;
        }
    }
    // E + YᵀAY
    let mut inner = vec![0.0; m * m];
    for i in 0..m {
        for j in 0..m {
            let yay: f64 = pairs[i].1.iter().zip(&pairs[j].1).zip(alpha).map(|((a, b), al)| a * al * b).sum();
            inner[i * m + j] = yay + if i == j { r[i * m + i] } else { 0.0 };
        }
    }
    let mut n = vec![0.0; c * c];
    for i in 0..m {
        for j in 0..m {
            // (R⁻ᵀ inner R⁻¹)_ij = Σ_pt R⁻¹_pi inner_pt R⁻¹_tj
            let mut v = 0.0;
            for p in 0..m {
                for t in 0..m {
                    v += r_inv[p * m + i] * inner[p * m + t] * r_inv[t * m + j];
                }
            }
            n[i * c + j] = v;
            n[i * c + m + j] = -r_inv[j * m + i]; // −R⁻ᵀ
            n[(m + i) * c + j] = -r_inv[i * m + j]; // −R⁻¹
        }
    }
    Some(n)
}

/// Thin QR of the columns `w` (each of length d) by modified Gram–Schmidt, twice: the orthonormal
/// columns Q (dropping those within rounding of the span of the earlier ones) and B (r × c,
/// row-major) with W = Q B.
fn thin_qr(w: &[Vec<f64>], d: usize) -> (Vec<Vec<f64>>, Vec<f64>) {
    let c = w.len();
    let mut q: Vec<Vec<f64>> = Vec::new();
    let mut coeffs: Vec<Vec<f64>> = Vec::new(); // per column: its coefficients on q
    for col in w {
        let mut v = col.clone();
        let mut coef = vec![0.0; q.len()];
        for _ in 0..2 {
            for (i, qi) in q.iter().enumerate() {
                let p = dot(qi, &v);
                coef[i] += p;
                v.iter_mut().zip(qi).for_each(|(v, q)| *v -= p * q);
            }
        }
        let len = norm(&v);
        if len > 1e-10 * norm(col) && len > 0.0 {
            coef.push(len);
            q.push(v.iter().map(|v| v / len).collect());
        }
        coeffs.push(coef);
    }
    let r = q.len();
    let mut b = vec![0.0; r * c];
    for (j, coef) in coeffs.iter().enumerate() {
        for (i, v) in coef.iter().enumerate() {
            b[i * c + j] = *v;
        }
    }
    debug_assert!(q.iter().all(|col| col.len() == d));
    (q, b)
}

/// N(μ, Σ) with Σ = A^(1/2) (I + Q (K − I) Qᵀ) A^(1/2), K = L Lᵀ (see the module formula).
#[derive(Clone, Debug)]
pub(crate) struct LowRankGaussian {
    pub mean: Vec<f64>,
    sqrt_alpha: Vec<f64>,
    /// The r orthonormal columns Q, each of length D.
    q: Vec<Vec<f64>>,
    /// K (r × r, row-major) and its Cholesky factor L.
    k: Vec<f64>,
    l: Vec<f64>,
    pub log_det: f64,
}

impl LowRankGaussian {
    pub(crate) fn dim(&self) -> usize {
        self.mean.len()
    }

    /// Σ v.
    fn covariance_times(&self, v: &[f64]) -> Vec<f64> {
        let r = self.q.len();
        let a: Vec<f64> = v.iter().zip(&self.sqrt_alpha).map(|(v, s)| v * s).collect();
        let qa: Vec<f64> = self.q.iter().map(|qi| dot(qi, &a)).collect();
        let mut out = a.clone();
        for i in 0..r {
            let coef: f64 = (0..r).map(|j| (self.k[i * r + j] - if i == j { 1.0 } else { 0.0 }) * qa[j]).sum();
            out.iter_mut().zip(&self.q[i]).for_each(|(o, q)| *o += coef * q);
        }
        out.iter().zip(&self.sqrt_alpha).map(|(o, s)| o * s).collect()
    }

    /// z = μ + A^(1/2) (u + Q (L − I) Qᵀ u) and log q(z) for standard-normal `u` (length D).
    pub(crate) fn draw(&self, u: &[f64]) -> (Vec<f64>, f64) {
        let r = self.q.len();
        let qu: Vec<f64> = self.q.iter().map(|qi| dot(qi, u)).collect();
        let mut v = u.to_vec();
        for i in 0..r {
            // ((L − I) Qᵀu)_i, L lower triangular
            let coef: f64 = (0..=i).map(|j| self.l[i * r + j] * qu[j]).sum::<f64>() - qu[i];
            v.iter_mut().zip(&self.q[i]).for_each(|(v, q)| *v += coef * q);
        }
        let z = self.mean.iter().zip(v.iter().zip(&self.sqrt_alpha)).map(|(m, (v, s))| m + s * v).collect();
        let d = u.len() as f64;
        let log_q = -0.5 * (self.log_det + dot(u, u) + d * (2.0 * std::f64::consts::PI).ln());
        (z, log_q)
    }

    /// log q(z) at any point z (length D): −½ (log det Σ + (z − μ)ᵀ Σ⁻¹ (z − μ) + D log 2π), with
    /// Σ⁻¹ = A^(−1/2) (I + Q (K⁻¹ − I) Qᵀ) A^(−1/2); `k_inv` is K⁻¹ ([`Self::k_inverse`]).
    pub(crate) fn log_density(&self, z: &[f64], k_inv: &[f64]) -> f64 {
        let r = self.q.len();
        let v: Vec<f64> = z.iter().zip(&self.mean).zip(&self.sqrt_alpha).map(|((z, m), s)| (z - m) / s).collect();
        let qv: Vec<f64> = self.q.iter().map(|qi| dot(qi, &v)).collect();
        let low: f64 = (0..r)
            .map(|a| (0..r).map(|b| qv[a] * (k_inv[a * r + b] - if a == b { 1.0 } else { 0.0 }) * qv[b]).sum::<f64>())
            .sum();
        let d = z.len() as f64;
        -0.5 * (self.log_det + dot(&v, &v) + low + d * (2.0 * std::f64::consts::PI).ln())
    }

    /// K⁻¹, or None when K cannot be inverted.
    pub(crate) fn k_inverse(&self) -> Option<Vec<f64>> {
        let r = self.q.len();
        if r == 0 {
            return Some(Vec::new());
        }
        crate::linalg::spd_inverse(&self.k, r).ok()
    }

    /// Σ as a dense row-major D × D matrix (exactly symmetric).
    pub(crate) fn covariance(&self) -> Vec<f64> {
        let (d, r) = (self.dim(), self.q.len());
        let mut cov = vec![0.0; d * d];
        // rows of Q (K − I)
        let km: Vec<f64> = (0..r * r).map(|k| self.k[k] - if k / r == k % r { 1.0 } else { 0.0 }).collect();
        for i in 0..d {
            let qi: Vec<f64> = (0..r).map(|a| self.q[a][i]).collect();
            let row: Vec<f64> = (0..r).map(|b| (0..r).map(|a| qi[a] * km[a * r + b]).sum()).collect();
            for j in 0..=i {
                let low: f64 = (0..r).map(|b| row[b] * self.q[b][j]).sum();
                let v = self.sqrt_alpha[i] * self.sqrt_alpha[j] * (if i == j { 1.0 } else { 0.0 } + low);
                cov[i * d + j] = v;
                cov[j * d + i] = v;
            }
        }
        cov
    }

    /// The diagonal of the precision Σ⁻¹ = A^(−1/2) (I + Q (K⁻¹ − I) Qᵀ) A^(−1/2), or None when K
    /// cannot be inverted.
    pub(crate) fn precision_diagonal(&self) -> Option<Vec<f64>> {
        let (d, r) = (self.dim(), self.q.len());
        let k_inv = self.k_inverse()?;
        Some(
            (0..d)
                .map(|i| {
                    let qi: Vec<f64> = (0..r).map(|a| self.q[a][i]).collect();
                    let quad: f64 = (0..r)
                        .map(|a| {
                            (0..r)
                                .map(|b| qi[a] * (k_inv[a * r + b] - if a == b { 1.0 } else { 0.0 }) * qi[b])
                                .sum::<f64>()
                        })
                        .sum();
                    (1.0 + quad) / (self.sqrt_alpha[i] * self.sqrt_alpha[i])
                })
                .collect(),
        )
    }
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(a, b)| a * b).sum()
}

fn norm(a: &[f64]) -> f64 {
    dot(a, a).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The compact form against the dense BFGS recursion from H₀ = diag(α) over the same pairs,
    /// H ← (I − ρ s yᵀ) H (I − ρ y sᵀ) + ρ s sᵀ, ρ = 1 / sᵀy; and the draws' covariance against Σ.
    #[test]
    fn the_compact_form_is_the_bfgs_recursion() {
        let h = [4.0, 1.0, 0.5, 1.0, 3.0, 0.2, 0.5, 0.2, 1e-4];
        let grad = |x: &[f64]| -> Vec<f64> { (0..3).map(|i| (0..3).map(|j| h[i * 3 + j] * x[j]).sum()).collect() };
        let xs = [[1.0, 2.0, 3.0], [0.5, 1.0, -2.0], [0.2, -0.3, 1.0], [0.1, 0.1, 0.1]];
        let mut history = History::new(3, 6);
        for w in xs.windows(2) {
            assert!(history.push(&w[0], &grad(&w[0]), &w[1], &grad(&w[1])));
        }
        let x = xs[3];
        let g = history.gaussian(&x, &grad(&x)).unwrap();
        let cov = g.covariance();
        let mut dense: Vec<f64> = (0..9).map(|k| if k % 4 == 0 { history.alpha[k / 4] } else { 0.0 }).collect();
        for (s, y) in &history.pairs {
            let rho = 1.0 / dot(s, y);
            let v: Vec<f64> = (0..9).map(|k| if k % 4 == 0 { 1.0 } else { 0.0 } - rho * s[k / 3] * y[k % 3]).collect();
            let mul = |a: &[f64], b: &[f64]| -> Vec<f64> {
                (0..9).map(|k| (0..3).map(|t| a[(k / 3) * 3 + t] * b[t * 3 + k % 3]).sum()).collect()
            };
            let vt: Vec<f64> = (0..9).map(|k| v[(k % 3) * 3 + k / 3]).collect();
            dense = mul(&mul(&v, &dense), &vt);
            (0..9).for_each(|k| dense[k] += rho * s[k / 3] * s[k % 3]);
        }
        for k in 0..9 {
            assert!((cov[k] - dense[k]).abs() < 1e-9 * dense[k].abs().max(1.0), "Σ[{k}] = {} vs {}", cov[k], dense[k]);
        }
        // the secant condition of the last pair: Σ y = s
        let (s, y) = history.pairs.last().unwrap();
        let sy = g.covariance_times(y);
        assert!(sy.iter().zip(s).all(|(a, b)| (a - b).abs() < 1e-9), "{sy:?} vs {s:?}");
        // μ = x − Σ ∇f(x)
        let step = g.covariance_times(&grad(&x));
        assert!(g.mean.iter().zip(x.iter().zip(&step)).all(|(m, (x, s))| (m - (x - s)).abs() < 1e-12));
        let log_det = crate::linalg::spd_log_det(&dense, 3).unwrap();
        assert!((g.log_det - log_det).abs() < 1e-8);
        let inv = crate::linalg::spd_inverse(&dense, 3).unwrap();
        let precision = g.precision_diagonal().unwrap();
        for i in 0..3 {
            assert!((precision[i] - inv[i * 4]).abs() < 1e-8 * inv[i * 4].abs().max(1.0), "{precision:?}");
        }
        // log q at a drawn point agrees with the draw's own log q
        let k_inv = g.k_inverse().unwrap();
        for u in [[0.3, -1.2, 0.7], [2.0, 0.1, -0.4]] {
            let (z, log_q) = g.draw(&u);
            let at = g.log_density(&z, &k_inv);
            assert!((at - log_q).abs() < 1e-8 * log_q.abs().max(1.0), "{at} vs {log_q}");
        }
        // the draw map z − μ = F u has F Fᵀ = Σ (checked on the unit vectors)
        let f: Vec<Vec<f64>> = (0..3)
            .map(|j| {
                let mut u = [0.0; 3];
                u[j] = 1.0;
                let (z, _) = g.draw(&u);
                z.iter().zip(&g.mean).map(|(z, m)| z - m).collect()
            })
            .collect();
        for i in 0..3 {
            for k in 0..3 {
                let ffk: f64 = (0..3).map(|j| f[j][i] * f[j][k]).sum();
                assert!((ffk - cov[i * 3 + k]).abs() < 1e-9 * cov[i * 3 + k].abs().max(1.0));
            }
        }
    }

    /// f = κ x² / 2 at any scale: one step gives α = Σ = 1 / κ and μ = 0.
    #[test]
    fn one_step_on_a_parabola_is_exact_at_any_scale() {
        for kappa in [1e-8, 1.0, 1e12] {
            let mut history = History::new(1, 6);
            assert!(history.push(&[3.0], &[3.0 * kappa], &[1.0], &[kappa]));
            let g = history.gaussian(&[1.0], &[kappa]).unwrap();
            let var = g.covariance()[0];
            assert!((var * kappa - 1.0).abs() < 1e-12, "κ = {kappa}: Σ = {var}");
            assert!(g.mean[0].abs() < 1e-12, "κ = {kappa}: μ = {}", g.mean[0]);
        }
    }

    #[test]
    fn a_pair_without_positive_curvature_is_dropped() {
        let mut history = History::new(2, 6);
        assert!(!history.push(&[0.0, 0.0], &[1.0, 0.0], &[1.0, 0.0], &[0.0, 0.0]));
        assert_eq!(history.alpha, vec![1.0, 1.0]);
    }
}
