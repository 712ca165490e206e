//! Where a fit starts by default: Pathfinder's Gaussian N(m, Σ₀), with the steps run in its
//! whitened coordinates.
//!
//! ```text
//! N(m, Σ₀) = Pathfinder(model) from init_loc / init_value;   Σ₀ ≈ A Aᵀ
//!   A = chol(Σ₀) (full rank),  or  A = diag(1 / √(Σ₀⁻¹)ᵢᵢ) (mean field: the best diagonal fit to N(m, Σ₀))
//! fit q_u from N(0, I) to log p_u(u) = log p(x, m + A u) + log |det A|;  report q_z = m + A q_u
//! ```
//!
//! In u the posterior has sd about 1 in every direction, so Adam's steps of about η per coordinate
//! are steps of η posterior sds whatever the posterior's scales (1e-4 or 1e4) and correlations.
//! When Pathfinder fails on every path, the fit starts at the point with A = init_scale · I and
//! says so.
//!
//! A start that is off still adapts: every 100 steps in the first half of the budget, q_u =
//! N(μ_u, L_u L_uᵀ) is folded into the map when it has moved far from N(0, I),
//!
//! ```text
//! max |μ_u| > ½  or  max |L_u − I| > ½   ⇒   m ← m + A μ_u,  A ← A L_u,  q_u ← N(0, I)
//! ```
//!
//! (the optimiser's moments, the stopping rule and the averager start again), so that the steps
//! follow q's own scale, growing or shrinking by e at most every 100 steps.

use std::sync::Arc;

use candle_core::Tensor;

use super::{Advi, SviState};
use crate::family::affine::AffineTensors;
use crate::family::{Affine, AffineKind, AffineScale, Family, Init, VariationalFamily};
use crate::linalg::to_f64_vec;
use crate::model::LogJoint;
use crate::report::StartRecord;
use crate::stop::StopState;
use crate::Result;

/// Steps between two looks at whether q_u has moved far from N(0, I).
const ADAPT_EVERY: usize = 100;
/// How far q_u's mean (in u) or scale (entries of L_u − I) may move before it is folded into the map.
const ADAPT_TOLERANCE: f64 = 0.5;

/// The whitening of a fit: z = m + A u, on the host and as tensors.
#[derive(Clone, Debug)]
pub(crate) struct Whitening {
    pub affine: Affine,
    /// Aᵀ row-major (empty for a diagonal A), for the host's batch maps.
    at: Vec<f64>,
    /// A and Aᵀ as f64 CPU tensors for a dense A, whose batch maps are matrix products.
    dense: Option<(Tensor, Tensor)>,
    tensors: AffineTensors,
}

/// The fewest draws × dimension² for which the host's batch maps of a dense A are one matrix
/// product (gemm) instead of loops: below it the tensors' overhead costs more than it saves.
const GEMM_WORK: usize = 1 << 15;

/// A model seen in whitened coordinates: log p_u(u) = log p(x, m + A u) + log |det A|.
pub(crate) struct Whitened<'a, M: ?Sized> {
    model: &'a M,
    map: &'a AffineTensors,
    /// log |det A|, or 0 where the caller adds it on the host.
    log_det: f64,
}

impl<'a, M: LogJoint + ?Sized> Whitened<'a, M> {
    pub(crate) fn new(model: &'a M, whitening: &'a Whitening) -> Self {
        Whitened { model, map: &whitening.tensors, log_det: whitening.log_det() }
    }

    /// log p(x, m + A u) without the constant log |det A|, which a step adds to its host values
    /// (one tensor op fewer, forward and backward).
    pub(crate) fn without_log_det(model: &'a M, whitening: &'a Whitening) -> Self {
        Whitened { model, map: &whitening.tensors, log_det: 0.0 }
    }

    fn plus_log_det(&self, t: Tensor) -> candle_core::Result<Tensor> {
        if self.log_det == 0.0 {
            Ok(t)
        } else {
            t.affine(1.0, self.log_det)
        }
    }
}

impl<M: LogJoint + ?Sized> LogJoint for Whitened<'_, M> {
    fn dim(&self) -> usize {
        self.model.dim()
    }

    fn log_joint(&self, u: &Tensor) -> candle_core::Result<Tensor> {
        self.plus_log_det(self.model.log_joint(&self.map.apply(u)?)?)
    }

    fn data_len(&self) -> Option<usize> {
        self.model.data_len()
    }

    fn log_joint_minibatch(&self, u: &Tensor, rows: &Tensor) -> candle_core::Result<Tensor> {
        self.plus_log_det(self.model.log_joint_minibatch(&self.map.apply(u)?, rows)?)
    }
}

/// How a fit starts: the whitening (None: the model's coordinates) and the record of it.
pub(crate) type Begin = (Option<Arc<Whitening>>, StartRecord);

impl<F: Family> Advi<F> {
    /// Runs Pathfinder from `loc` (unless the start is a point, or the family keeps no affine
    /// map) and makes the whitening from its Gaussian; falls back to the point when it fails.
    pub(super) fn begin<M: LogJoint + ?Sized>(&self, model: &M, loc: &[f64]) -> Result<Begin> {
        if let Some(begin) = &self.begin {
            return Ok((*begin).clone());
        }
        let kind = self.family.affine_kind();
        let Some(pathfinder) = self.pathfinder.as_ref().filter(|_| kind != AffineKind::None) else {
            return Ok((None, StartRecord::Point));
        };
        let at_point = |why: String| -> Result<Begin> {
            let affine = Affine { shift: loc.to_vec(), scale: AffineScale::Diagonal(vec![self.init_scale; loc.len()]) };
            Ok((Some(Arc::new(Whitening::new(affine, self)?)), StartRecord::PathfinderFailed(why)))
        };
        let found = match pathfinder.as_start(loc.to_vec(), self.dtype, &self.device, self.seed).find(model) {
            Ok(found) => found,
            // a start where log p is not finite: the start check names the coordinates
            Err(e @ crate::Error::NonFiniteInit { .. }) => {
                return Ok((None, StartRecord::PathfinderFailed(e.to_string())))
            }
            Err(e) => return at_point(e.to_string()),
        };
        let g = &found.gaussian;
        let made = match kind {
            AffineKind::Diagonal => {
                let variance: Vec<f64> = match g.precision_diagonal() {
                    Some(p) if p.iter().all(|v| *v > 0.0 && v.is_finite()) => p.iter().map(|v| 1.0 / v).collect(),
                    _ => {
                        let cov = g.covariance();
                        (0..g.dim()).map(|i| cov[i * g.dim() + i]).collect()
                    }
                };
                Affine::from_covariance(&g.mean, &[], &variance, kind)
            }
            _ => Affine::from_covariance(&g.mean, &g.covariance(), &[], kind),
        };
        let affine = match made {
            Ok(affine) => affine,
            Err(e) => return at_point(format!("its covariance: {e}")),
        };
        let record = StartRecord::Pathfinder {
            elbo: found.paths[found.best].as_ref().map_or(f64::NAN, |r| r.elbo),
            gradient_evaluations: found.gradient_evaluations(),
            paths: found.paths.len(),
            failed: found.paths.iter().filter(|p| p.is_err()).count(),
        };
        Ok((Some(Arc::new(Whitening::new(affine, self)?)), record))
    }

    /// Folds q_u into the map when it has moved far from N(0, I) (see the module doc); returns
    /// whether it did.
    pub(super) fn adapt_whitening(&self, state: &mut SviState<F::Q>) -> Result<bool> {
        let Some(whitening) = &state.whitening else { return Ok(false) };
        if state.iteration % ADAPT_EVERY != 0 || 2 * state.iteration > self.steps {
            return Ok(false);
        }
        let Some(g) = state.q.gaussian() else { return Ok(false) };
        let d = state.q.dim();
        let mean = to_f64_vec(&g.loc()?)?;
        let tril = to_f64_vec(&g.scale_tril()?.flatten_all()?)?;
        let far = mean.iter().any(|m| m.abs() > ADAPT_TOLERANCE)
            || tril
                .iter()
                .enumerate()
                .any(|(k, l)| (l - if k / d == k % d { 1.0 } else { 0.0 }).abs() > ADAPT_TOLERANCE);
        if !far || !tril.iter().chain(&mean).all(|v| v.is_finite()) {
            return Ok(false);
        }
        let old = &whitening.affine;
        let scale = match (&old.scale, self.family.affine_kind()) {
            (AffineScale::Diagonal(_), AffineKind::Diagonal) => {
                let a = old.scale_tril(&tril);
                AffineScale::Diagonal((0..d).map(|i| a[i * d + i]).collect())
            }
            _ => AffineScale::LowerTriangular(old.scale_tril(&tril)),
        };
        let affine = Affine { shift: old.apply(&mean), scale };
        state.whitening = Some(Arc::new(Whitening::new(affine, self)?));
        let identity =
            Init { loc: vec![0.0; d], scale: 1.0, link: self.link, dtype: self.dtype, device: self.device.clone() };
        for ((_, var), (_, value)) in state.q.params().iter().zip(self.family.init(&identity)?.params()) {
            var.set(value.as_tensor())?;
        }
        state.optimizer.reset()?;
        state.recovery.rebase(state.q.params().into_iter().map(|(_, v)| v))?;
        if let Some(averager) = &mut state.averager {
            averager.restart(state.iteration);
        }
        match &mut state.stop {
            StopState::Stationary(rule) => rule.restart(state.iteration),
            StopState::Rule(rule) => rule.restart(state.iteration),
            StopState::MaxSteps => {}
        }
        Ok(true)
    }
}

impl Whitening {
    /// log |det A|.
    pub(crate) fn log_det(&self) -> f64 {
        self.tensors.log_det
    }

    /// z = m + A u for each row of `u` (row-major, D columns).
    pub(crate) fn to_model(&self, u: &[f64]) -> Result<Vec<f64>> {
        let d = self.affine.dim();
        match &self.dense {
            Some((_, at)) if u.len() * d >= GEMM_WORK => {
                let rows = Tensor::from_slice(u, (u.len() / d, d), &candle_core::Device::Cpu)?;
                let mut z = to_f64_vec(&rows.matmul(at)?)?;
                for row in z.chunks_mut(d) {
                    row.iter_mut().zip(&self.affine.shift).for_each(|(z, m)| *z += m);
                }
                Ok(z)
            }
            _ => Ok(self.affine.apply_rows(u, &self.at)),
        }
    }

    /// Aᵀ g for each row of `g`: gradients in z as gradients in u.
    pub(crate) fn gradient_to_u(&self, g: &[f64]) -> Result<Vec<f64>> {
        let d = self.affine.dim();
        match &self.dense {
            // the rows' (Aᵀ g)ᵀ = gᵀ A
            Some((a, _)) if g.len() * d >= GEMM_WORK => {
                let rows = Tensor::from_slice(g, (g.len() / d, d), &candle_core::Device::Cpu)?;
                to_f64_vec(&rows.matmul(a)?)
            }
            _ => Ok(self.affine.transpose_apply_rows(g)),
        }
    }

    fn new<F: Family>(affine: Affine, advi: &Advi<F>) -> Result<Self> {
        let tensors = affine.tensors(advi.dtype, &advi.device)?;
        let d = affine.dim();
        let at = affine.transposed();
        let dense = match &affine.scale {
            AffineScale::LowerTriangular(a) => {
                let cpu = &candle_core::Device::Cpu;
                Some((Tensor::from_slice(a, (d, d), cpu)?, Tensor::from_slice(&at, (d, d), cpu)?))
            }
            AffineScale::Diagonal(_) => None,
        };
        Ok(Whitening { at, dense, affine, tensors })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::family::FullRank;

    /// The batch maps of a dense A by matrix product (many draws) agree with the loops.
    #[test]
    fn the_matrix_product_maps_agree_with_the_loops() {
        let d = 64;
        let value = |k: usize| ((k * 7919) % 1000) as f64 / 1000.0 - 0.5;
        let a: Vec<f64> = (0..d * d)
            .map(|k| if k % d > k / d { 0.0 } else { value(k) + if k % (d + 1) == 0 { 2.0 } else { 0.0 } })
            .collect();
        let affine = Affine { shift: (0..d).map(value).collect(), scale: AffineScale::LowerTriangular(a) };
        let w = Whitening::new(affine.clone(), &Advi::new(FullRank)).unwrap();
        let rows: Vec<f64> = (0..16 * d).map(|k| value(3 * k + 1)).collect();
        assert!(rows.len() * d >= GEMM_WORK);
        let (z, g) = (w.to_model(&rows).unwrap(), w.gradient_to_u(&rows).unwrap());
        let (z_loops, g_loops) = (affine.apply_rows(&rows, &affine.transposed()), affine.transpose_apply_rows(&rows));
        assert!(z.iter().zip(&z_loops).all(|(a, b)| (a - b).abs() < 1e-12), "z");
        assert!(g.iter().zip(&g_loops).all(|(a, b)| (a - b).abs() < 1e-12), "g");
    }
}
