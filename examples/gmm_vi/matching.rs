//! Label matching: the likelihood of a mixture is invariant under relabelling its components, so a
//! fit finds the truth up to a permutation π; we take the π minimising Σ_k ‖μ̂_π(k) − μ_k‖².

use super::fit::Fitted;
use super::Mixture;

/// The largest K for which the label matching tries every permutation (8! = 40,320).
const BRUTE_FORCE_K: usize = 8;

/// A fit's estimates in the truth's component order.
pub struct Matched {
    /// `matching[k]` = the fitted component shown as component k.
    pub matching: Vec<usize>,
    /// Posterior means, matched.
    pub estimate: Mixture,
    /// Posterior standard deviations, in the order of `estimate`.
    pub posterior_sd: Mixture,
    /// max over k, d of |μ̂_kd − μ_kd| after matching; `None` without a truth.
    pub max_abs_mean_error: Option<f64>,
}

/// `fit`'s components matched to `truth`'s (left in the fitted order without a truth).
pub fn matched(fit: &Fitted, truth: Option<&Mixture>) -> Matched {
    let matching = match truth {
        Some(truth) => match_components(&fit.mean.means, &truth.means),
        None => (0..fit.mean.weights.len()).collect(),
    };
    let estimate = fit.mean.permuted(&matching);
    let posterior_sd = fit.sd.permuted(&matching);
    let max_abs_mean_error = truth.map(|t| {
        t.means.iter().flatten().zip(estimate.means.iter().flatten()).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max)
    });
    Matched { matching, estimate, posterior_sd, max_abs_mean_error }
}

impl Mixture {
    /// The components in the order `order` (component k of the result is `order[k]` of self).
    fn permuted(&self, order: &[usize]) -> Mixture {
        Mixture {
            weights: order.iter().map(|&j| self.weights[j]).collect(),
            means: order.iter().map(|&j| self.means[j].clone()).collect(),
            scales: order.iter().map(|&j| self.scales[j]).collect(),
        }
    }
}

/// The fitted component to show as each true one: the permutation π minimising
/// Σ_k ‖μ̂_π(k) − μ_k‖², by trying every one for K ≤ 8 and greedily (closest pair first) beyond.
pub fn match_components(estimated: &[Vec<f64>], truth: &[Vec<f64>]) -> Vec<usize> {
    let k = truth.len().min(estimated.len());
    let cost = |t: usize, e: usize| -> f64 { truth[t].iter().zip(&estimated[e]).map(|(a, b)| (a - b).powi(2)).sum() };
    if k <= BRUTE_FORCE_K {
        let mut perm: Vec<usize> = (0..k).collect();
        let mut best = perm.clone();
        let mut best_cost = f64::INFINITY;
        permute(&mut perm, 0, &mut |p| {
            let c: f64 = p.iter().enumerate().map(|(t, &e)| cost(t, e)).sum();
            if c < best_cost {
                best_cost = c;
                best = p.to_vec();
            }
        });
        best
    } else {
        let mut pairs: Vec<(f64, usize, usize)> =
            (0..k).flat_map(|t| (0..k).map(move |e| (t, e))).map(|(t, e)| (cost(t, e), t, e)).collect();
        pairs.sort_by(|a, b| a.0.total_cmp(&b.0));
        let mut out = vec![usize::MAX; k];
        let mut used = vec![false; k];
        for (_, t, e) in pairs {
            if out[t] == usize::MAX && !used[e] {
                out[t] = e;
                used[e] = true;
            }
        }
        out
    }
}

/// Calls `visit` with every permutation of `p[i..]` (Heap's algorithm would do too; K ≤ 8).
fn permute(p: &mut Vec<usize>, i: usize, visit: &mut impl FnMut(&[usize])) {
    if i == p.len() {
        visit(p);
        return;
    }
    for j in i..p.len() {
        p.swap(i, j);
        permute(p, i + 1, visit);
        p.swap(i, j);
    }
}
