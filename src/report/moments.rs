//! The PSIS-reweighted moments of the draws against q's own (Yao et al. 2018; Vehtari et al.
//! 2024): with the smoothed, self-normalised weights w̃ᵢ (Σ w̃ᵢ = 1) on the draws zᵢ ~ q,
//! coordinate by coordinate of the unconstrained z,
//!
//! ```text
//! m̂_p = Σ w̃ᵢ zᵢ,    v̂_p = Σ w̃ᵢ (zᵢ − m̂_p)²        the posterior's mean and variance
//! m̂_q = 1/S Σ zᵢ,   v̂_q = 1/S Σ (zᵢ − m̂_q)²       q's, from the same draws
//! shift = (m̂_q − m̂_p) / √v̂_p                      q's mean error, in posterior sds
//! ratio = √(v̂_q / v̂_p)                            q's sd as a fraction of the posterior's
//! ```
//!
//! q's moments come from the same draws, not from its parameters, so the draws' own noise
//! cancels: where the weights are uniform (q = p) both errors are exactly 0 and 1. The Monte
//! Carlo errors are the delta method's, Σᵢ φᵢ² over each draw's influence φᵢ on the estimate:
//!
//! ```text
//! aᵢ = (zᵢ − m̂_q)/S − w̃ᵢ (zᵢ − m̂_p)                    on m̂_q − m̂_p
//! bᵢ = w̃ᵢ ((zᵢ − m̂_p)² − v̂_p) / v̂_p,  cᵢ = ((zᵢ − m̂_q)² − v̂_q) / (S v̂_q)   on log v̂_p, log v̂_q
//! φᵢ(shift) = aᵢ / √v̂_p − shift · bᵢ / 2,    φᵢ(ratio) = ratio · (cᵢ − bᵢ) / 2
//! ```
//!
//! The errors are honest while PSIS can stand in for a finite variance, that is while k̂ is below
//! about 0.7; beyond, importance sampling pulls the estimates towards q. (The k̂ of each
//! coordinate's variance functional rᵢ (zᵢⱼ − m̂_p)², Vehtari et al. 2024, is a sharper test in
//! one dimension, but it grows with D: for q = N(0, 0.9² I) of N(0, I) in D = 50 it was above 0.7
//! in some coordinate for 7 of 8 sets of 4,000 draws, so the verdict does not use it.)

use super::psis::{normalised, psis};

/// The PSIS-reweighted moments of each unconstrained coordinate against q's own, with their Monte
/// Carlo standard errors (see the module's formulas).
#[derive(Clone, Debug, PartialEq)]
pub struct Moments {
    /// m̂_p, the PSIS estimate of the posterior mean of each coordinate.
    pub mean: Vec<f64>,
    /// √v̂_p, the PSIS estimate of the posterior sd of each coordinate.
    pub sd: Vec<f64>,
    /// (m̂_q − m̂_p) / √v̂_p: how far q's mean is from the posterior's, in posterior sds.
    pub mean_shift: Vec<f64>,
    /// The Monte Carlo standard error of each [`Moments::mean_shift`].
    pub mean_shift_se: Vec<f64>,
    /// √(v̂_q / v̂_p): q's sd as a fraction of the posterior's (1 is exact).
    pub sd_ratio: Vec<f64>,
    /// The Monte Carlo standard error of each [`Moments::sd_ratio`].
    pub sd_ratio_se: Vec<f64>,
}

/// One coordinate's estimate with its Monte Carlo error: the one farthest out, given how many
/// standard errors it is allowed ([`Moments::worst_mean_shift`], [`Moments::worst_sd_ratio`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Worst {
    /// The coordinate of the unconstrained z.
    pub coordinate: usize,
    /// The estimate.
    pub value: f64,
    /// Its Monte Carlo standard error.
    pub se: f64,
}

impl Worst {
    /// How far the estimate may be from `target` at `z` standard errors: |value − target| + z se
    /// (NaN stays NaN, so that no bound holds).
    pub fn upper(&self, target: f64, z: f64) -> f64 {
        (self.value - target).abs() + z * self.se
    }
}

impl Moments {
    /// The moments of the draws `z` (row-major `[S, D]`) under the PSIS weights of their log ratios
    /// `log_ratios` (`[S]`).
    pub fn from_draws(log_ratios: &[f64], z: &[f64], d: usize) -> Self {
        let s = z.len() / d.max(1);
        let center = (0..d).map(|j| z.iter().skip(j).step_by(d).sum::<f64>() / s as f64).collect();
        let weights = normalised(&psis(log_ratios).log_weights);
        let mut acc = Accumulator::new(weights, center);
        acc.add_sums(0, z);
        acc.settle();
        acc.add_influence(0, z);
        acc.finish()
    }

    /// The coordinate whose mean shift is farthest from 0 at `z` standard errors.
    pub fn worst_mean_shift(&self, z: f64) -> Worst {
        worst(&self.mean_shift, &self.mean_shift_se, 0.0, z)
    }

    /// The coordinate whose sd ratio is farthest from 1 at `z` standard errors.
    pub fn worst_sd_ratio(&self, z: f64) -> Worst {
        worst(&self.sd_ratio, &self.sd_ratio_se, 1.0, z)
    }

    /// Whether every mean is within `shift` posterior sds and every sd within the fraction `sd`
    /// of the posterior's, each by its estimate plus `z` standard errors.
    pub fn within(&self, shift: f64, sd: f64, z: f64) -> bool {
        let all = |v: &[f64], se: &[f64], target: f64, bound: f64| {
            v.iter().zip(se).all(|(&v, &se)| (v - target).abs() + z * se <= bound)
        };
        all(&self.mean_shift, &self.mean_shift_se, 0.0, shift) && all(&self.sd_ratio, &self.sd_ratio_se, 1.0, sd)
    }
}

fn worst(value: &[f64], se: &[f64], target: f64, z: f64) -> Worst {
    let mut out = Worst { coordinate: 0, value: f64::NAN, se: f64::NAN };
    let mut far = f64::NEG_INFINITY;
    for (j, (&v, &s)) in value.iter().zip(se).enumerate() {
        let u = (v - target).abs() + z * s;
        // a NaN is the worst of all
        if u.is_nan() || u > far {
            (out, far) = (Worst { coordinate: j, value: v, se: s }, if u.is_nan() { f64::INFINITY } else { u });
        }
    }
    out
}

/// The moments in two passes over the draws, which may come in chunks of rows and be made
/// again for the second pass (so that the evaluation never holds all S × D of them): sums, then
/// the influences, which need the settled means and variances.
#[derive(Clone, Debug)]
pub(crate) struct Accumulator {
    weights: Vec<f64>,
    coords: Vec<Coordinate>,
    settled: bool,
}

/// One coordinate's sums, of y = z − centre (against cancellation; the centre is q's location).
#[derive(Clone, Debug, Default)]
struct Coordinate {
    center: f64,
    /// First pass: Σ w̃ y, Σ w̃ y², Σ y, Σ y².
    sum_w: f64,
    sum_w2: f64,
    sum_q: f64,
    sum_q2: f64,
    /// After `settle`: m̂_p, v̂_p, m̂_q, v̂_q of y.
    mp: f64,
    vp: f64,
    mq: f64,
    vq: f64,
    /// Second pass: Σ φᵢ² of the mean shift and of log ratio (see the module).
    infl_shift: f64,
    infl_ratio: f64,
}

impl Accumulator {
    /// The draws' normalised PSIS weights `[S]`, and a centre `[D]` near the draws' mean.
    pub(crate) fn new(weights: Vec<f64>, center: Vec<f64>) -> Self {
        let coords = center.into_iter().map(|center| Coordinate { center, ..Default::default() }).collect();
        Accumulator { weights, coords, settled: false }
    }

    /// The rows `first..` of the draws (row-major, D columns), first pass.
    pub(crate) fn add_sums(&mut self, first: usize, z: &[f64]) {
        for (zi, &w) in z.chunks_exact(self.coords.len()).zip(&self.weights[first..]) {
            for (c, &zij) in self.coords.iter_mut().zip(zi) {
                let y = zij - c.center;
                c.sum_w += w * y;
                c.sum_w2 += w * y * y;
                c.sum_q += y;
                c.sum_q2 += y * y;
            }
        }
    }

    /// Ends the first pass: the means and variances.
    pub(crate) fn settle(&mut self) {
        let s = self.weights.len() as f64;
        for c in &mut self.coords {
            c.mp = c.sum_w;
            c.vp = (c.sum_w2 - c.mp * c.mp).max(0.0);
            c.mq = c.sum_q / s;
            c.vq = (c.sum_q2 / s - c.mq * c.mq).max(0.0);
        }
        self.settled = true;
    }

    /// The rows `first..` of the same draws again, second pass.
    pub(crate) fn add_influence(&mut self, first: usize, z: &[f64]) {
        assert!(self.settled, "settle before the second pass");
        let s = self.weights.len() as f64;
        for (zi, &w) in z.chunks_exact(self.coords.len()).zip(&self.weights[first..]) {
            for (c, &zij) in self.coords.iter_mut().zip(zi) {
                let y = zij - c.center;
                let (dp, dq) = (y - c.mp, y - c.mq);
                let a_i = dq / s - w * dp;
                let b_i = w * (dp * dp - c.vp) / c.vp;
                let c_i = (dq * dq - c.vq) / (s * c.vq);
                let shift = (c.mq - c.mp) / c.vp.sqrt();
                let phi = a_i / c.vp.sqrt() - shift * b_i / 2.0;
                c.infl_shift += phi * phi;
                c.infl_ratio += (c_i - b_i) * (c_i - b_i) / 4.0;
            }
        }
    }

    /// Ends the second pass.
    pub(crate) fn finish(self) -> Moments {
        assert!(self.settled, "settle before finishing");
        let each = |f: &dyn Fn(&Coordinate) -> f64| self.coords.iter().map(f).collect::<Vec<f64>>();
        // an element that does not vary (a Cholesky factor's fixed entries) is exact
        let fixed = |c: &Coordinate| c.vp == 0.0 && c.vq == 0.0;
        let ratio = |c: &Coordinate| if fixed(c) { 1.0 } else { (c.vq / c.vp).sqrt() };
        let or_zero = |c: &Coordinate, v: f64| if fixed(c) { 0.0 } else { v };
        Moments {
            mean: each(&|c| c.mp + c.center),
            sd: each(&|c| c.vp.sqrt()),
            mean_shift: each(&|c| or_zero(c, (c.mq - c.mp) / c.vp.sqrt())),
            mean_shift_se: each(&|c| or_zero(c, c.infl_shift.sqrt())),
            sd_ratio: each(&ratio),
            sd_ratio_se: each(&|c| or_zero(c, ratio(c) * c.infl_ratio.sqrt())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uniform_weights_give_exact_agreement() {
        let z: Vec<f64> = (0..200).map(|i| ((i * 37) % 101) as f64 * 0.1 - 5.0).collect();
        let m = Moments::from_draws(&[-3.0; 100], &z, 2);
        assert!(m.mean_shift.iter().all(|v| v.abs() < 1e-12), "{m:?}");
        assert!(m.sd_ratio.iter().all(|v| (v - 1.0).abs() < 1e-12), "{m:?}");
        assert!(m.mean_shift_se.iter().chain(&m.sd_ratio_se).all(|v| v.abs() < 1e-12), "{m:?}");
        assert!(m.within(1e-12, 1e-12, 2.0));
    }

    #[test]
    fn an_element_that_does_not_vary_is_exact() {
        // a Cholesky factor's fixed entry: 1 in every draw, whatever the weights
        let z: Vec<f64> = (0..100).flat_map(|i| [1.0, i as f64]).collect();
        let r: Vec<f64> = (0..100).map(|i| (i % 5) as f64 * 0.1).collect();
        let m = Moments::from_draws(&r, &z, 2);
        assert_eq!((m.mean_shift[0], m.sd_ratio[0], m.mean_shift_se[0], m.sd_ratio_se[0]), (0.0, 1.0, 0.0, 0.0));
        assert!(m.mean_shift[1].abs() > 0.0 && m.sd_ratio_se[1] > 0.0, "{m:?}");
    }

    #[test]
    fn weights_on_two_points_give_their_moments() {
        // q's draws −1, 1 (mean 0, sd 1); weights ¾, ¼ (too few ratios to smooth): mean −½, sd √(¾)
        let m = Moments::from_draws(&[0.75f64.ln(), 0.25f64.ln()], &[-1.0, 1.0], 1);
        assert!((m.mean[0] + 0.5).abs() < 1e-15 && (m.sd[0] - 0.75f64.sqrt()).abs() < 1e-15);
        assert!((m.mean_shift[0] - 0.5 / 0.75f64.sqrt()).abs() < 1e-15);
        assert!((m.sd_ratio[0] - 1.0 / 0.75f64.sqrt()).abs() < 1e-15);
    }

    #[test]
    fn chunks_give_the_same_answer_as_one_pass() {
        let z: Vec<f64> = (0..300).map(|i| ((i * 53) % 97) as f64 * 0.3 + 1e3).collect();
        let r: Vec<f64> = (0..100).map(|i| (1.0 + (i % 7) as f64).ln()).collect();
        let whole = Moments::from_draws(&r, &z, 3);
        let mut acc = Accumulator::new(normalised(&psis(&r).log_weights), vec![1e3; 3]);
        for (k, rows) in z.chunks(3 * 32).enumerate() {
            acc.add_sums(32 * k, rows);
        }
        acc.settle();
        for (k, rows) in z.chunks(3 * 32).enumerate() {
            acc.add_influence(32 * k, rows);
        }
        let chunked = acc.finish();
        let close = |a: &[f64], b: &[f64]| a.iter().zip(b).all(|(x, y)| (x - y).abs() <= 1e-9 * (1.0 + x.abs()));
        assert!(close(&whole.mean, &chunked.mean) && close(&whole.mean_shift, &chunked.mean_shift));
        assert!(close(&whole.sd_ratio, &chunked.sd_ratio) && close(&whole.sd_ratio_se, &chunked.sd_ratio_se));
    }

    #[test]
    fn a_nan_coordinate_is_the_worst_and_fails_every_bound() {
        let m = Moments {
            mean: vec![0.0, f64::NAN],
            sd: vec![1.0, f64::NAN],
            mean_shift: vec![0.05, f64::NAN],
            mean_shift_se: vec![0.01, f64::NAN],
            sd_ratio: vec![1.0, f64::NAN],
            sd_ratio_se: vec![0.0, f64::NAN],
        };
        assert_eq!(m.worst_mean_shift(2.0).coordinate, 1);
        assert!(!m.within(10.0, 10.0, 2.0));
    }
}
