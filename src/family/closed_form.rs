//! The ELBO gradient of the Gaussian families in closed form: only the model is differentiated by
//! autodiff, once, with the draws z as the leaf; the chain rule through z = μ + L ε and the
//! entropy's gradient are a few loops on the host.
//!
//! ```text
//! f(λ) = Σ_s a_s log p(x, z_s) + H(q)                 (QTerm::Entropy; a_s = 1/S for Entropy)
//!      = Σ_s a_s [log p(x, z_s) − log q_⊥(z_s)]       (QTerm::LogQ, λ fixed in q_⊥; 1/S for STL)
//! h_s  = a_s ∇_z log p(x, z_s)                        (+ a_s L⁻ᵀ ε_s for LogQ: −∇_z log q = L⁻ᵀ ε)
//! ∂f/∂μ = Σ_s h_s
//! mean-field, z = μ + σ ⊙ ε, σ = link(ω):
//!   ∂f/∂ω_i = link'(ω_i) Σ_s h_si ε_si  (+ ∂ log σ_i/∂ω_i for Entropy: 1 for Log, σ'/σ for Softplus)
//! full-rank, z = μ + s ⊙ u, u = ε + (M ⊙ T) ε, s = link(ω):
//!   ∂f/∂ω_i  = link'(ω_i) Σ_s h_si u_si  (+ ∂ log s_i/∂ω_i for Entropy)
//!   ∂f/∂M_ij = s_i Σ_s h_si ε_sj  for j < i, else 0
//! ```
//!
//! On the CPU this replaces the autodiff graph through the family (its forward ops, their backward
//! nodes and the zero-filled gradient buffers) by O(S·D) (mean-field) or O(S·D²) (full-rank) host
//! arithmetic in f64. [`FamilyGradient::Autodiff`] takes the family's part by autodiff instead
//! (the path on other devices, and for families without a closed form): one backward pass then
//! runs through the model and the family together.

use super::ScaleLink;
use crate::linalg;
use crate::objective::{Estimator, Objective, QTerm};
use crate::special::HALF_LN_2PI;

/// How the engine differentiates the ELBO estimate with respect to q's parameters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FamilyGradient {
    /// Autodiff through the model only, the family's part in closed form, on the CPU for the
    /// families that have one ([`crate::MeanFieldGaussian`], [`crate::FullRankGaussian`]); autodiff
    /// through everything otherwise.
    #[default]
    ClosedForm,
    /// The family's part by autodiff too (through z = T_λ(ε) and q's term), always.
    Autodiff,
}
/// q's parameters read to the host, with the link's terms computed once: what the closed-form
/// gradient needs. Made by [`crate::VariationalFamily::host_gaussian`].
#[derive(Clone, Debug)]
pub struct HostGaussian {
    /// μ, `[D]`.
    loc: Vec<f64>,
    /// ω, `[D]`: the raw scale (mean-field) or raw diagonal (full-rank).
    raw: Vec<f64>,
    /// M, `[D, D]` row-major, for full-rank (only its strictly lower part is used).
    off_diag: Option<Vec<f64>>,
    /// s = link(ω).
    scale: Vec<f64>,
    /// link'(ω).
    dlink: Vec<f64>,
    /// log s.
    log_scale: Vec<f64>,
    /// ∂ log s/∂ω.
    dlog: Vec<f64>,
}

/// Σ aᵢ bᵢ with four running sums, so that the loop vectorises (a single running sum is one
/// dependent add per term).
fn dot(a: &[f64], b: &[f64]) -> f64 {
    let (a4, b4) = (a.chunks_exact(4), b.chunks_exact(4));
    let tail: f64 = a4.remainder().iter().zip(b4.remainder()).map(|(x, y)| x * y).sum();
    let mut acc = [0.0; 4];
    for (x, y) in a4.zip(b4) {
        for l in 0..4 {
            acc[l] += x[l] * y[l];
        }
    }
    (acc[0] + acc[1]) + (acc[2] + acc[3]) + tail
}

impl HostGaussian {
    /// The mean-field Gaussian z = μ + link(ω) ⊙ ε.
    pub fn mean_field(loc: Vec<f64>, raw_scale: Vec<f64>, link: ScaleLink) -> Self {
        Self::new(loc, raw_scale, None, link)
    }

    /// The full-rank Gaussian z = μ + link(ω) ⊙ (ε + (M ⊙ T) ε), M row-major `[D, D]`.
    pub fn full_rank(loc: Vec<f64>, raw_diag: Vec<f64>, off_diag: Vec<f64>, link: ScaleLink) -> Self {
        Self::new(loc, raw_diag, Some(off_diag), link)
    }

    fn new(loc: Vec<f64>, raw: Vec<f64>, off_diag: Option<Vec<f64>>, link: ScaleLink) -> Self {
        let d = raw.len();
        let mut q = HostGaussian {
            loc,
            raw: vec![],
            off_diag,
            scale: Vec::with_capacity(d),
            dlink: Vec::with_capacity(d),
            log_scale: Vec::with_capacity(d),
            dlog: Vec::with_capacity(d),
        };
        for &r in &raw {
            let (s, ds, ls, dls) = match link {
                ScaleLink::Log => {
                    let s = r.exp();
                    (s, s, r, 1.0)
                }
                ScaleLink::Softplus => {
                    let s = r.max(0.0) + (-r.abs()).exp().ln_1p();
                    let sigmoid = 1.0 / (1.0 + (-r).exp());
                    (s, sigmoid, s.ln(), sigmoid / s)
                }
            };
            q.scale.push(s);
            q.dlink.push(ds);
            q.log_scale.push(ls);
            q.dlog.push(dls);
        }
        q.raw = raw;
        q
    }

    /// μ.
    pub fn loc(&self) -> &[f64] {
        &self.loc
    }

    /// D.
    pub fn dim(&self) -> usize {
        self.loc.len()
    }

    /// The parameter values in the family's `params()` order.
    pub fn into_values(self) -> Vec<Vec<f64>> {
        match self.off_diag {
            None => vec![self.loc, self.raw],
            Some(off) => vec![self.loc, self.raw, off],
        }
    }

    /// u = ε + (M ⊙ T) ε for one draw (ε itself for mean-field): z = μ + s ⊙ u.
    fn unit(&self, eps: &[f64]) -> Vec<f64> {
        match &self.off_diag {
            None => eps.to_vec(),
            Some(off) => {
                let d = eps.len();
                (0..d).map(|i| eps[i] + dot(&off[i * d..i * d + i], &eps[..i])).collect()
            }
        }
    }

    /// The draws z_s = μ + L ε_s for the rows of `eps` (`[S, D]` row-major), and the unit-scale
    /// draws u_s (z = μ + s ⊙ u) that [`HostGaussian::elbo_gradient`] takes.
    pub fn sample(&self, eps: &[f64]) -> (Vec<f64>, Vec<f64>) {
        let d = self.dim();
        let units: Vec<f64> = eps.chunks(d).flat_map(|row| self.unit(row)).collect();
        let z = units
            .chunks(d)
            .flat_map(|u| u.iter().zip(&self.scale).zip(&self.loc).map(|((u, s), m)| m + s * u))
            .collect();
        (z, units)
    }

    /// H(q) = D/2 · (1 + log 2π) + Σᵢ log sᵢ.
    pub fn entropy(&self) -> f64 {
        self.log_scale.iter().sum::<f64>() + self.dim() as f64 * (0.5 + HALF_LN_2PI)
    }

    /// log q(μ + L ε) = −½ ‖ε‖² + D/2 − H(q) for one draw.
    pub fn log_prob_of_noise(&self, eps: &[f64]) -> f64 {
        -0.5 * eps.iter().map(|e| e * e).sum::<f64>() + 0.5 * self.dim() as f64 - self.entropy()
    }

    /// The standard deviation of each coordinate under q, √diag(L Lᵀ).
    pub fn marginal_sd(&self) -> Vec<f64> {
        match &self.off_diag {
            None => self.scale.clone(),
            Some(off) => {
                let d = self.dim();
                let row = |i: usize| 1.0 + dot(&off[i * d..i * d + i], &off[i * d..i * d + i]);
                (0..d).map(|i| self.scale[i] * row(i).sqrt()).collect()
            }
        }
    }

    /// ∂f/∂λ (ascent) for each parameter in `params()` order (formulas in the module doc), from the
    /// noise `eps`, the unit-scale draws `units` of [`HostGaussian::sample`], and `dlogp`, the
    /// gradient of Σ_s log p(x, z_s) with respect to each draw (all `[S, D]` row-major), for one of
    /// the built-in estimators (every draw weighs 1/S).
    pub fn elbo_gradient(&self, eps: &[f64], units: &[f64], dlogp: &[f64], estimator: Estimator) -> Vec<Vec<f64>> {
        let s = eps.len() / self.dim().max(1);
        self.gradient(eps, units, dlogp, &vec![1.0 / s as f64; s], estimator.q_term())
    }

    /// ∂f/∂λ (ascent) for an objective that weighs draw s by `weights[s]` (a_s in
    /// [`crate::objective`]) and uses q's `term`: h_s = a_s (∇_z log p(x, z_s) + 𝟙{LogQ} L⁻ᵀ ε_s),
    /// then the chain rule of the module doc, plus ∇_ω H(q) for [`QTerm::Entropy`].
    pub fn gradient(&self, eps: &[f64], units: &[f64], dlogp: &[f64], weights: &[f64], term: QTerm) -> Vec<Vec<f64>> {
        let d = self.dim();
        // −∇_z log q(z_s) = L⁻ᵀ ε_s, through the host's L (sticking the landing only).
        let l = match (term, &self.off_diag) {
            (QTerm::LogQ, Some(off)) => {
                let mut l = vec![0.0; d * d];
                for i in 0..d {
                    for j in 0..i {
                        l[i * d + j] = self.scale[i] * off[i * d + j];
                    }
                    l[i * d + i] = self.scale[i];
                }
                Some(l)
            }
            _ => None,
        };
        let mut g_loc = vec![0.0; d];
        let mut g_scale = vec![0.0; d];
        let mut g_off = self.off_diag.as_ref().map(|_| vec![0.0; d * d]);
        for (((e, u), g), &a) in eps.chunks(d).zip(units.chunks(d)).zip(dlogp.chunks(d)).zip(weights) {
            let mut h: Vec<f64> = g.iter().map(|g| g * a).collect();
            if term == QTerm::LogQ {
                let mut score = e.to_vec();
                match &l {
                    Some(l) => linalg::solve_lower_t(l, d, &mut score),
                    None => score.iter_mut().zip(&self.scale).for_each(|(x, s)| *x /= s),
                }
                h.iter_mut().zip(&score).for_each(|(h, x)| *h += x * a);
            }
            for i in 0..d {
                g_loc[i] += h[i];
                g_scale[i] += h[i] * u[i];
            }
            if let Some(g_off) = &mut g_off {
                for i in 0..d {
                    let hs = h[i] * self.scale[i];
                    g_off[i * d..i * d + i].iter_mut().zip(&e[..i]).for_each(|(g, e)| *g += hs * e);
                }
            }
        }
        let g_raw = (0..d)
            .map(|i| match term {
                QTerm::Entropy => self.dlink[i] * g_scale[i] + self.dlog[i],
                QTerm::LogQ => self.dlink[i] * g_scale[i],
            })
            .collect();
        match g_off {
            None => vec![g_loc, g_raw],
            Some(g_off) => vec![g_loc, g_raw, g_off],
        }
    }
}
