//! The Bayesian isotropic Gaussian mixture, with the assignments summed out so that every latent
//! is continuous (the peers' `gmm`).
//!
//! ```text
//! w ~ Dirichlet(1, …, 1)            (K weights, simplex)
//! μ_kd ~ N(0, 10²)                  (K × D means)
//! σ_k ~ LogNormal(0, 1)             (one isotropic scale per component)
//! log p(x_i | w, μ, σ) = logsumexp_k [ log w_k − (D/2) log 2π − D log σ_k − ‖x_i − μ_k‖² / (2σ_k²) ]
//! ```
//!
//! The likelihood is [`elbo::mixture::MixtureLikelihood`] of (log w, μ, log σ): on the CPU one fused
//! op with its gradient in closed form, elsewhere a composition of candle ops.
//!
//! The likelihood is a sum over i.i.d. points, so the model supports minibatch SVI
//! (`Advi::batch`): N is the number of rows of the data.

use candle_core::{DType, Device, Tensor};
use elbo::mixture::MixtureLikelihood;
use elbo::special::HALF_LN_2PI;
use elbo::{Error, Latents, Model, Result, Values};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha12Rng;
use rand_distr::{Gamma, StandardNormal};

/// x_i ~ Σ_k w_k N(μ_k, σ_k² I) with the peers' priors; latents `w` (simplex `[K]`), `mu` (`[K, D]`)
/// and `sigma` (positive `[K]`).
///
/// ```
/// use elbo::prelude::*;
/// use elbo_models::GaussianMixture;
///
/// let (gmm, truth) = GaussianMixture::simulate(2, 2, 200, 1)?;
/// assert_eq!((gmm.k(), gmm.d(), gmm.n()), (2, 2, 200));
/// let fit = Advi::new(MeanField)
///     .dtype(DType::F64)
///     .steps(1_500)
///     .lr(0.05)
///     .init_value("mu", gmm.initial_means(0))
///     .fit(&gmm)?;
/// println!("{fit}"); // w[0], w[1], mu[0,0], …, sigma[1] with posterior mean, sd and quantiles
/// assert!(fit.summary().get("sigma[0]").unwrap().mean > 0.0);
/// # let _ = truth;
/// # Ok::<(), elbo::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct GaussianMixture {
    /// The points, `[N, D]`.
    x: Tensor,
    /// Their log-likelihood under the mixture.
    likelihood: MixtureLikelihood,
    k: usize,
    latents: Latents,
}

/// The parameters a data set was simulated from, and each point's component.
#[derive(Clone, Debug, PartialEq)]
pub struct GmmTruth {
    /// w, K weights summing to one.
    pub weights: Vec<f64>,
    /// μ, K rows of D coordinates.
    pub means: Vec<Vec<f64>>,
    /// σ, K isotropic scales.
    pub scales: Vec<f64>,
    /// The component each point was drawn from.
    pub labels: Vec<usize>,
}

impl GaussianMixture {
    /// A mixture of `k` components for the points `x` (`[N, D]`, f32 or f64, finite), 1 ≤ K ≤ N.
    pub fn new(x: &Tensor, k: usize) -> Result<Self> {
        elbo::runtime::default_threads(); // before the first large op sizes candle's thread pool
        let (n, d) = x.dims2().map_err(|_| Error::ModelOutput {
            problem: format!("GaussianMixture: the data must be 2-D [N, D]; it has shape {:?}", x.dims()),
        })?;
        if n == 0 || d == 0 {
            return Err(Error::EmptyData { what: format!("GaussianMixture: the data have shape [{n}, {d}]") });
        }
        if !matches!(x.dtype(), DType::F32 | DType::F64) {
            return Err(Error::config("dtype", format!("{:?}", x.dtype()), "the data must be f32 or f64"));
        }
        if k == 0 || k > n {
            return Err(Error::config("k", k, format!("the number of components must be between 1 and N = {n}")));
        }
        let host = x.flatten_all()?.to_dtype(DType::F64)?.to_vec1::<f64>()?;
        if let Some(i) = host.iter().position(|v| !v.is_finite()) {
            return Err(Error::config(
                "x",
                host[i],
                format!("data point {} (coordinate {}) is not finite", i / d, i % d),
            ));
        }
        let latents = Latents::new().simplex("w", [k]).real("mu", [k, d]).positive("sigma", [k]);
        Ok(GaussianMixture { x: x.clone(), likelihood: MixtureLikelihood::new(x)?, k, latents })
    }

    /// Simulates `n` points in `d` dimensions from `k` components (seeded): weights from a
    /// Dirichlet(5, …, 5), means uniform in [−6, 6]ᵈ at least 3.5 apart (when there is room),
    /// scales uniform in [0.6, 1.4]. f64 on the CPU.
    pub fn simulate(k: usize, d: usize, n: usize, seed: u64) -> Result<(Self, GmmTruth)> {
        if k == 0 || d == 0 || n < k {
            return Err(Error::config("simulate", format!("k = {k}, d = {d}, n = {n}"), "need k, d ≥ 1 and n ≥ k"));
        }
        let mut rng = ChaCha12Rng::seed_from_u64(seed);
        let gamma = Gamma::new(5.0, 1.0).expect("valid Gamma");
        let raw: Vec<f64> = (0..k).map(|_| rng.sample(gamma)).collect();
        let total: f64 = raw.iter().sum();
        let weights: Vec<f64> = raw.iter().map(|g| g / total).collect();
        let mut means: Vec<Vec<f64>> = Vec::with_capacity(k);
        for _ in 0..k {
            let mut best: Option<(f64, Vec<f64>)> = None;
            // up to 200 tries for a mean 3.5 away from the others; else the farthest candidate
            for _ in 0..200 {
                let m: Vec<f64> = (0..d).map(|_| rng.random_range(-6.0..6.0)).collect();
                let gap = means.iter().map(|o| distance(o, &m)).fold(f64::INFINITY, f64::min);
                if best.as_ref().is_none_or(|(g, _)| gap > *g) {
                    best = Some((gap, m));
                }
                if gap >= 3.5 {
                    break;
                }
            }
            means.push(best.expect("at least one try").1);
        }
        let scales: Vec<f64> = (0..k).map(|_| rng.random_range(0.6..1.4)).collect();
        let mut labels = Vec::with_capacity(n);
        let mut x = Vec::with_capacity(n * d);
        for _ in 0..n {
            let u: f64 = rng.random();
            let mut acc = 0.0;
            let c = weights.iter().position(|w| {
                acc += w;
                u < acc
            });
            let c = c.unwrap_or(k - 1);
            labels.push(c);
            for m in &means[c] {
                let e: f64 = rng.sample(StandardNormal);
                x.push(m + scales[c] * e);
            }
        }
        let model = GaussianMixture::new(&Tensor::from_vec(x, (n, d), &Device::Cpu)?, k)?;
        Ok((model, GmmTruth { weights, means, scales, labels }))
    }

    /// The same model with its data in `dtype` on `device`.
    pub fn to(&self, dtype: DType, device: &Device) -> Result<Self> {
        GaussianMixture::new(&self.x.to_dtype(dtype)?.to_device(device)?, self.k)
    }

    /// K, the number of components.
    pub fn k(&self) -> usize {
        self.k
    }

    /// D, the dimension of a point.
    pub fn d(&self) -> usize {
        self.x.dim(1).unwrap_or(0)
    }

    /// N, the number of points.
    pub fn n(&self) -> usize {
        self.x.dim(0).unwrap_or(0)
    }

    /// The points, `[N, D]`.
    pub fn x(&self) -> &Tensor {
        &self.x
    }

    /// K initial means (row-major K × D) by k-means++ seeding (Arthur & Vassilvitskii 2007): the
    /// first a random point, each next one a point drawn with probability ∝ its squared distance
    /// to the nearest mean so far. Give them to the fit with `.init_value("mu", …)`: from the
    /// symmetric start μ = 0 the components separate only slowly, if at all.
    pub fn initial_means(&self, seed: u64) -> Vec<f64> {
        let (n, d) = (self.n(), self.d());
        let points = self.host_points();
        let mut rng = ChaCha12Rng::seed_from_u64(seed);
        let mut means: Vec<f64> = points[rng.random_range(0..n) * d..][..d].to_vec();
        let mut nearest: Vec<f64> = (0..n).map(|i| sq_distance(&points[i * d..(i + 1) * d], &means[..d])).collect();
        for _ in 1..self.k {
            let total: f64 = nearest.iter().sum();
            let pick = if total > 0.0 {
                let mut u = rng.random::<f64>() * total;
                nearest.iter().position(|&w| {
                    u -= w;
                    u < 0.0
                })
            } else {
                None
            };
            let i = pick.unwrap_or_else(|| rng.random_range(0..n));
            let centre = points[i * d..(i + 1) * d].to_vec();
            for (j, near) in nearest.iter_mut().enumerate() {
                *near = near.min(sq_distance(&points[j * d..(j + 1) * d], &centre));
            }
            means.extend(centre);
        }
        means
    }

    /// The component of highest responsibility p(c_i = k | x_i, w, μ, σ) for every point, given
    /// point estimates (weights `[K]`, means row-major `[K × D]`, scales `[K]`).
    pub fn most_probable(&self, weights: &[f64], means: &[f64], scales: &[f64]) -> Vec<usize> {
        let d = self.d();
        let points = self.host_points();
        points
            .chunks(d)
            .map(|p| {
                (0..self.k)
                    .map(|c| {
                        let sq = sq_distance(p, &means[c * d..(c + 1) * d]);
                        weights[c].ln() - d as f64 * scales[c].ln() - sq / (2.0 * scales[c] * scales[c])
                    })
                    .enumerate()
                    .max_by(|a, b| a.1.total_cmp(&b.1))
                    .map_or(0, |(c, _)| c)
            })
            .collect()
    }

    fn host_points(&self) -> Vec<f64> {
        self.x.flatten_all().and_then(|t| t.to_dtype(DType::F64)).and_then(|t| t.to_vec1()).unwrap_or_default()
    }

    /// Σ_i log p(x_i | w, μ, σ) over every point, or over `rows`, `[S]`, given log σ.
    fn mixture_log_likelihood(
        &self,
        v: &Values<'_>,
        log_sigma: &Tensor,
        rows: Option<&Tensor>,
    ) -> candle_core::Result<Tensor> {
        let (log_w, mu) = (v.get("w")?.log()?, v.get("mu")?); // [S, K], [S, K, D]
        match rows {
            None => self.likelihood.log_likelihood(&log_w, mu, log_sigma),
            Some(rows) => self.likelihood.log_likelihood_rows(&log_w, mu, log_sigma, rows),
        }
    }

    /// log p(w) + log p(μ) + log p(σ), `[S]`, in closed form given log σ (module doc):
    ///
    /// ```text
    /// Dirichlet(1):    ln Γ(K)                                   (uniform on the simplex: no w)
    /// N(0, 10²):       Σ_kd [−μ_kd² / 200 − ln 10 − ½ ln 2π]
    /// LogNormal(0, 1): Σ_k  [−½ (ln σ_k)² − ln σ_k − ½ ln 2π]
    /// ```
    ///
    /// The same values as `elbo::dist`'s densities with fewer tensor operations per step.
    fn prior(&self, mu: &Tensor, log_sigma: &Tensor) -> candle_core::Result<Tensor> {
        let (k, kd) = (self.k as f64, (self.k * self.d()) as f64);
        let ln_gamma_k: f64 = (1..self.k).map(|i| (i as f64).ln()).sum();
        let constant = ln_gamma_k - kd * (10f64.ln() + HALF_LN_2PI) - k * HALF_LN_2PI;
        let mu_term = mu.flatten_from(1)?.sqr()?.sum(1)?.affine(-1.0 / 200.0, constant)?;
        let sigma_term = ((log_sigma.sqr()? * -0.5)? - log_sigma)?.sum(1)?;
        mu_term + sigma_term
    }
}

impl Model for GaussianMixture {
    fn latents(&self) -> &Latents {
        &self.latents
    }

    fn log_density(&self, v: &Values<'_>) -> candle_core::Result<Tensor> {
        let log_sigma = v.get("sigma")?.log()?;
        self.prior(v.get("mu")?, &log_sigma)? + self.mixture_log_likelihood(v, &log_sigma, None)?
    }

    fn data_len(&self) -> Option<usize> {
        Some(self.n())
    }

    fn log_prior(&self, v: &Values<'_>) -> candle_core::Result<Tensor> {
        self.prior(v.get("mu")?, &v.get("sigma")?.log()?)
    }

    fn log_likelihood(&self, v: &Values<'_>, rows: &Tensor) -> candle_core::Result<Tensor> {
        self.mixture_log_likelihood(v, &v.get("sigma")?.log()?, Some(rows))
    }
}

fn sq_distance(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

fn distance(a: &[f64], b: &[f64]) -> f64 {
    sq_distance(a, b).sqrt()
}
