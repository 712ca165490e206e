//! The variational autoencoder of Kingma & Welling (2013) with MLP encoder and decoder, trained by
//! amortised VI ([`elbo::amortized`]).
//!
//! ```text
//! encoder:  h = relu(W₁ x + b₁),  [μ, log σ²] = W₂ h + b₂            P → H → 2D   (default 784–400–20)
//! decoder:  g = relu(W₃ z + b₃),  o = W₄ g + b₄                     D → H → P
//! q_φ(z | x) = N(μ, diag σ²),  p(z) = N(0, I)
//! Bernoulli (default): log p_θ(x | z) = Σ_p [x_p o_p − softplus(o_p)],   x_p ∈ [0, 1] grey levels
//! Gaussian:            log p_θ(x | z) = Σ_p [−½ ((x_p − o_p)/s)² − log s − ½ log 2π],  s fixed
//! ELBO(x) = E_q[log p_θ(x | z)] − KL(q_φ(z | x) ‖ N(0, I))
//! init: W, b ~ U(−1/√fan_in, 1/√fan_in) from the seed (the default of PyTorch's nn.Linear)
//! ```
//!
//! [`VaeTrainer`] runs Adam steps (`elbo::optim`) on minibatches with a KL weight β, skipping
//! non-finite steps as `elbo::Advi` does; [`Vae::evaluate`] gives the
//! ELBO, the KL per latent dimension and the active units on a data set; [`Vae::iw_log_likelihood`]
//! the importance-weighted estimate of log p(x).

use std::path::Path;
use std::time::{Duration, Instant};

use candle_core::{DType, Device, Module, Tensor, Var, D};
use candle_nn::VarMap;
use elbo::advi::{Recovered, Recovery};
use elbo::amortized::{
    active_units, bernoulli_logit_log_likelihood, elbo_terms, iw_log_likelihood, latent_activity, AmortizedGaussian,
    Decoder, DiagGaussian, ElboTerms, KlForm,
};
use elbo::noise::{Noise, Stream};
use elbo::observe::{FinishInfo, Observer, StartInfo, StepInfo};
use elbo::optim::{first_nonfinite, Optimizer, OptimizerState, Storage};
use elbo::special::HALF_LN_2PI;
use elbo::stop::{Context, Rule};
use elbo::LrSchedule;
use elbo::StopReason;
use elbo::{Error, Result};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha12Rng;

use crate::captured;
use crate::dense::{Activation, Dense};

/// The RNG stream of a seed that initialises the weights (apart from [`Stream`]'s).
const WEIGHT_STREAM: u64 = 16;

/// The decoder's likelihood p_θ(x | z).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum VaeLikelihood {
    /// Bernoulli on logits, for grey levels in [0, 1] (the classic choice for MNIST).
    Bernoulli,
    /// Gaussian with mean the decoder's output and a fixed standard deviation `scale`.
    Gaussian {
        /// The standard deviation s of every pixel.
        scale: f64,
    },
}

/// The sizes and likelihood of a [`Vae`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct VaeConfig {
    /// P, the length of a datum (784 for 28×28 images).
    pub input_dim: usize,
    /// H, the width of the hidden layer of the encoder and of the decoder.
    pub hidden_dim: usize,
    /// D, the latent dimension.
    pub latent_dim: usize,
    /// The decoder's likelihood.
    pub likelihood: VaeLikelihood,
    /// The dtype of the weights (F32 or F64).
    pub dtype: DType,
}

impl Default for VaeConfig {
    /// 784–400–20, Bernoulli, f32: the classic setup.
    fn default() -> Self {
        VaeConfig {
            input_dim: 784,
            hidden_dim: 400,
            latent_dim: 20,
            likelihood: VaeLikelihood::Bernoulli,
            dtype: DType::F32,
        }
    }
}

impl VaeConfig {
    fn validate(&self) -> Result<()> {
        for (name, v) in
            [("input_dim", self.input_dim), ("hidden_dim", self.hidden_dim), ("latent_dim", self.latent_dim)]
        {
            if v == 0 {
                return Err(Error::config(name, v, "every layer needs at least one unit"));
            }
        }
        if let VaeLikelihood::Gaussian { scale } = self.likelihood {
            if !(scale > 0.0 && scale.is_finite()) {
                return Err(Error::config(
                    "scale",
                    scale,
                    "the Gaussian decoder's standard deviation must be positive and finite",
                ));
            }
        }
        if !matches!(self.dtype, DType::F32 | DType::F64) {
            return Err(Error::config("dtype", format!("{:?}", self.dtype), "use DType::F32 or DType::F64"));
        }
        Ok(())
    }
}

/// The encoder x ↦ [μ, log σ²]: one ReLU hidden layer and a linear head of 2D outputs.
#[derive(Clone, Debug)]
pub struct VaeEncoder {
    hidden: Dense,
    head: Dense,
}

impl Module for VaeEncoder {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        self.head.forward(&self.hidden.forward(x)?)
    }
}

/// The decoder z ↦ o (logits or means): one ReLU hidden layer and a linear output layer, with
/// its likelihood.
#[derive(Clone, Debug)]
pub struct VaeDecoder {
    hidden: Dense,
    out: Dense,
    likelihood: VaeLikelihood,
}

impl VaeDecoder {
    /// The decoder's output o for latents `z` `[B, D]`: logits (Bernoulli) or means (Gaussian), `[B, P]`.
    pub fn output(&self, z: &Tensor) -> candle_core::Result<Tensor> {
        self.out.forward(&self.hidden.forward(z)?)
    }

    /// E[x | z]: σ(o) for the Bernoulli decoder, o for the Gaussian one, `[B, P]`.
    pub fn mean(&self, z: &Tensor) -> candle_core::Result<Tensor> {
        let o = self.output(z)?;
        match self.likelihood {
            VaeLikelihood::Bernoulli => candle_nn::ops::sigmoid(&o),
            VaeLikelihood::Gaussian { .. } => Ok(o),
        }
    }
}

impl Decoder for VaeDecoder {
    fn log_likelihood(&self, x: &Tensor, z: &Tensor) -> candle_core::Result<Tensor> {
        let o = self.output(z)?;
        match self.likelihood {
            VaeLikelihood::Bernoulli => bernoulli_logit_log_likelihood(x, &o).map_err(candle_core::Error::wrap),
            VaeLikelihood::Gaussian { scale } => {
                let p = o.dim(D::Minus1)? as f64;
                let sq = (x - o)?.sqr()?.sum(D::Minus1)?;
                sq.affine(-0.5 / (scale * scale), -p * (scale.ln() + HALF_LN_2PI))
            }
        }
    }
}

/// A variational autoencoder: the amortised Gaussian q_φ(z | x) of an MLP encoder, an MLP decoder
/// p_θ(x | z), and the prior N(0, I). Its weights live in a candle-nn `VarMap` (saved and loaded
/// as safetensors).
pub struct Vae {
    config: VaeConfig,
    varmap: VarMap,
    q: AmortizedGaussian<VaeEncoder>,
    decoder: VaeDecoder,
}

impl std::fmt::Debug for Vae {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vae").field("config", &self.config).field("num_params", &self.num_params()).finish()
    }
}

impl Vae {
    /// A VAE of the given sizes on `device`, its weights drawn from `seed` (the same seed gives the
    /// same weights, bit for bit).
    pub fn new(config: VaeConfig, seed: u64, device: &Device) -> Result<Self> {
        config.validate()?;
        elbo::runtime::default_threads();
        let varmap = VarMap::new();
        let mut rng = ChaCha12Rng::seed_from_u64(seed);
        rng.set_stream(WEIGHT_STREAM);
        let (p, h, d) = (config.input_dim, config.hidden_dim, config.latent_dim);
        // in a fixed order, so that the seed fixes every weight
        let mut layer = |name: &str, fan_in: usize, fan_out: usize, act: Activation| -> Result<Dense> {
            let w = uniform_var(&mut rng, (fan_in, fan_out), fan_in, config.dtype, device)?;
            let b = uniform_var(&mut rng, fan_out, fan_in, config.dtype, device)?;
            let mut data =
                varmap.data().lock().expect("the VarMap's lock is never poisoned: no code panics holding it");
            data.insert(format!("{name}.weight"), w.clone());
            data.insert(format!("{name}.bias"), b.clone());
            Ok(Dense::new(w, b, act)?)
        };
        let encoder = VaeEncoder {
            hidden: layer("encoder.hidden", p, h, Activation::Relu)?,
            head: layer("encoder.head", h, 2 * d, Activation::Identity)?,
        };
        let decoder = VaeDecoder {
            hidden: layer("decoder.hidden", d, h, Activation::Relu)?,
            out: layer("decoder.out", h, p, Activation::Identity)?,
            likelihood: config.likelihood,
        };
        Ok(Vae { config, varmap, q: AmortizedGaussian::new(encoder, d)?, decoder })
    }

    /// The sizes and likelihood.
    pub fn config(&self) -> &VaeConfig {
        &self.config
    }

    /// The amortised family q_φ(z | x).
    pub fn encoder(&self) -> &AmortizedGaussian<VaeEncoder> {
        &self.q
    }

    /// The decoder p_θ(x | z).
    pub fn decoder(&self) -> &VaeDecoder {
        &self.decoder
    }

    /// Every weight and bias with its name, sorted by name.
    pub fn named_vars(&self) -> Vec<(String, Var)> {
        let data = self.varmap.data().lock().expect("the VarMap's lock is never poisoned: no code panics holding it");
        let mut vars: Vec<(String, Var)> = data.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        vars
    }

    /// Every weight and bias, sorted by name.
    pub fn vars(&self) -> Vec<Var> {
        self.named_vars().into_iter().map(|(_, v)| v).collect()
    }

    /// The number of scalar parameters.
    pub fn num_params(&self) -> usize {
        self.vars().iter().map(|v| v.elem_count()).sum()
    }

    /// The device of the weights.
    pub fn device(&self) -> Device {
        self.vars().first().map_or(Device::Cpu, |v| v.device().clone())
    }

    /// q_φ(z | x_b) for each row of `x` `[B, P]`.
    pub fn posterior(&self, x: &Tensor) -> Result<DiagGaussian> {
        self.check_data(x)?;
        self.q.posterior(x)
    }

    /// The ELBO terms of the batch `x` `[B, P]` from the noise `eps` (`[B, D]` or `[S, B, D]`).
    pub fn elbo_terms(&self, x: &Tensor, eps: &Tensor, form: KlForm) -> Result<ElboTerms> {
        let q = self.posterior(x)?;
        elbo_terms(&q, &self.decoder, x, eps, form)
    }

    /// E[x | z] for latents `z` `[B, D]` (decoded means, in [0, 1] for the Bernoulli decoder).
    pub fn decode_mean(&self, z: &Tensor) -> Result<Tensor> {
        Ok(self.decoder.mean(z)?)
    }

    /// The reconstructions E[x | z = μ_φ(x)] of the rows of `x`.
    pub fn reconstruct(&self, x: &Tensor) -> Result<Tensor> {
        let q = self.posterior(x)?;
        self.decode_mean(q.loc())
    }

    /// Writes the weights to a safetensors file.
    pub fn save(&self, path: &Path) -> Result<()> {
        self.varmap.save(path).map_err(|e| Error::DataFile {
            path: path.display().to_string(),
            problem: format!("cannot save the weights: {e}"),
        })
    }

    /// Reads the weights from a safetensors file written by [`Vae::save`] for the same sizes.
    pub fn load(&mut self, path: &Path) -> Result<()> {
        if !path.is_file() {
            return Err(Error::DataFile { path: path.display().to_string(), problem: "no such file".into() });
        }
        self.varmap.load(path).map_err(|e| Error::DataFile {
            path: path.display().to_string(),
            problem: format!(
                "cannot load the weights ({e}); was it saved by a VAE of the same sizes ({}–{}–{})?",
                self.config.input_dim, self.config.hidden_dim, self.config.latent_dim
            ),
        })
    }

    /// The ELBO, its terms, the KL per dimension and the activity of each dimension on the rows of
    /// `x` `[N, P]`, in chunks of `chunk` rows, with one draw per datum from `seed`'s evaluation stream.
    pub fn evaluate(&self, x: &Tensor, chunk: usize, seed: u64) -> Result<Evaluation> {
        elbo::runtime::in_matmul_pool(x.device(), || self.evaluate_here(x, chunk, seed))
    }

    fn evaluate_here(&self, x: &Tensor, chunk: usize, seed: u64) -> Result<Evaluation> {
        self.check_data(x)?;
        let n = x.dim(0)?;
        if n == 0 {
            return Err(Error::EmptyData { what: "evaluate needs at least one datum".into() });
        }
        let chunk = chunk.max(1);
        let mut noise = Noise::new(seed, Stream::Evaluate);
        let (mut ll, mut kl) = (0.0, 0.0);
        let mut per_datum = Vec::with_capacity(n);
        let mut kl_dim = vec![0.0; self.config.latent_dim];
        let mut locs = Vec::new();
        for start in (0..n).step_by(chunk) {
            let xb = x.narrow(0, start, chunk.min(n - start))?;
            let q = self.posterior(&xb)?;
            let eps = noise.standard_normal(q.batch(), q.dim(), self.config.dtype, xb.device())?;
            let terms = elbo_terms(&q, &self.decoder, &xb, &eps, KlForm::Analytic)?;
            per_datum.extend(terms.elbo()?.to_dtype(DType::F64)?.to_vec1::<f64>()?);
            ll += sum_f64(&terms.log_likelihood)?;
            kl += sum_f64(&terms.kl)?;
            let per_dim = q.kl_standard_normal_per_dim()?.to_dtype(DType::F64)?.sum(0)?.to_vec1::<f64>()?;
            kl_dim.iter_mut().zip(per_dim).for_each(|(a, b)| *a += b);
            locs.push(q.loc().detach());
        }
        let nf = n as f64;
        let activity = latent_activity(&Tensor::cat(&locs, 0)?)?;
        let elbo = (ll - kl) / nf;
        let elbo_sd = (per_datum.iter().map(|e| (e - elbo).powi(2)).sum::<f64>() / (nf - 1.0).max(1.0)).sqrt();
        Ok(Evaluation {
            elbo,
            elbo_sd,
            log_likelihood: ll / nf,
            kl: kl / nf,
            kl_per_dim: kl_dim.into_iter().map(|v| v / nf).collect(),
            active_units: active_units(&activity),
            activity,
        })
    }

    /// The importance-weighted bound L_K averaged over the rows of `x` `[N, P]` (an estimate of the
    /// mean log p(x), per datum), with its standard error over the data; chunks of `chunk` rows.
    pub fn iw_log_likelihood(&self, x: &Tensor, k: usize, chunk: usize, seed: u64) -> Result<(f64, f64)> {
        elbo::runtime::in_matmul_pool(x.device(), || self.iw_log_likelihood_here(x, k, chunk, seed))
    }

    fn iw_log_likelihood_here(&self, x: &Tensor, k: usize, chunk: usize, seed: u64) -> Result<(f64, f64)> {
        self.check_data(x)?;
        if k == 0 {
            return Err(Error::config("k", 0, "the importance-weighted bound needs K ≥ 1 samples"));
        }
        let n = x.dim(0)?;
        if n == 0 {
            return Err(Error::EmptyData { what: "iw_log_likelihood needs at least one datum".into() });
        }
        let chunk = chunk.max(1);
        let mut noise = Noise::new(seed, Stream::Draws);
        let mut values = Vec::with_capacity(n);
        for start in (0..n).step_by(chunk) {
            let xb = x.narrow(0, start, chunk.min(n - start))?;
            let q = self.posterior(&xb)?;
            let (b, d) = (q.batch(), q.dim());
            let eps = noise.standard_normal(k * b, d, self.config.dtype, xb.device())?.reshape((k, b, d))?;
            let lk = iw_log_likelihood(&q, &self.decoder, &xb, &eps)?;
            values.extend(lk.to_dtype(DType::F64)?.to_vec1::<f64>()?);
        }
        let nf = n as f64;
        let mean = values.iter().sum::<f64>() / nf;
        let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (nf - 1.0).max(1.0);
        Ok((mean, (var / nf).sqrt()))
    }

    fn check_data(&self, x: &Tensor) -> Result<()> {
        match x.dims() {
            [_, p] if *p == self.config.input_dim && x.dtype() == self.config.dtype => Ok(()),
            _ => Err(Error::DimensionMismatch {
                what: format!(
                    "VAE data of shape {:?} and dtype {:?} (want [N, {}] in {:?})",
                    x.dims(),
                    x.dtype(),
                    self.config.input_dim,
                    self.config.dtype
                ),
                expected: self.config.input_dim,
                got: x.dims().last().copied().unwrap_or(0),
            }),
        }
    }
}

fn sum_f64(t: &Tensor) -> Result<f64> {
    Ok(t.to_dtype(DType::F64)?.sum_all()?.to_scalar::<f64>()?)
}

/// A VAE's fit to a data set, per datum (nats).
#[derive(Clone, Debug, PartialEq)]
pub struct Evaluation {
    /// The ELBO per datum (one draw per datum), higher is better.
    pub elbo: f64,
    /// The standard deviation of the per-datum ELBO estimates over the data (so the standard
    /// error of `elbo` is `elbo_sd / √N`).
    pub elbo_sd: f64,
    /// E_q[log p(x | z)] per datum.
    pub log_likelihood: f64,
    /// KL(q(z | x) ‖ N(0, I)) per datum.
    pub kl: f64,
    /// The KL per datum of each latent dimension (they sum to `kl`).
    pub kl_per_dim: Vec<f64>,
    /// A_d = Var_x(μ_d(x)) for each latent dimension.
    pub activity: Vec<f64>,
    /// The number of dimensions with A_d > 0.01.
    pub active_units: usize,
}

/// What one training step saw, per datum of its batch.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepStats {
    /// The ELBO per datum of the batch (with β = 1, whatever β the step used).
    pub elbo: f64,
    /// The KL per datum of the batch.
    pub kl: f64,
    /// Whether the weights moved: false when the batch ELBO or its gradient was not finite.
    pub taken: bool,
}

/// W, b ~ U(−1/√fan_in, 1/√fan_in), PyTorch's default for `nn.Linear`, from `rng`.
fn uniform_var(
    rng: &mut ChaCha12Rng,
    shape: impl Into<candle_core::Shape>,
    fan_in: usize,
    dtype: DType,
    device: &Device,
) -> Result<Var> {
    let shape = shape.into();
    let bound = 1.0 / (fan_in as f64).sqrt();
    let values: Vec<f64> = (0..shape.elem_count()).map(|_| rng.random_range(-bound..bound)).collect();
    Ok(Var::from_tensor(&Tensor::from_vec(values, shape, device)?.to_dtype(dtype)?)?)
}

/// Clean steps in a row between two snapshots of the weights (the point a run of non-finite
/// steps goes back to): a snapshot copies every weight, and this period keeps that within the
/// noise of a step's time (benches/README.md, "The VAE's Adam in elbo::optim").
const SNAPSHOT_EVERY: usize = 10;

/// Skipped steps in a row before the trainer restores and halves (Advi's default).
const MAX_CONSECUTIVE_NONFINITE: usize = 20;

/// Trains a [`Vae`] with Adam on minibatches: one draw of ε per datum, the ELBO with analytic KL
/// (or the entropy form), the KL weighted by β.
///
/// ```text
/// η_t = schedule(η, t, T) · 2^(−restores);   W ← Adam(W, ∇_W(−ELBO_β), η_t)
/// a step whose batch ELBO or gradient is not finite is skipped (W untouched); after K skips in a
/// row: W ← the last snapshot, fresh moments, η halved (at most 3 times), else Error::NonFinite
/// ```
///
/// The optimiser is `elbo::optim::OptimizerState` with Adam, its moments in the weights' dtype
/// updated in place on the CPU ([`Storage::InPlace`]) and as tensors elsewhere; the recovery is
/// Advi's ([`elbo::advi::Recovery`]). Observers ([`VaeTrainer::step_with`]) see every step.
#[derive(Debug)]
pub struct VaeTrainer {
    vae: Vae,
    names: Vec<String>,
    vars: Vec<Var>,
    opt: OptimizerState,
    recovery: Recovery,
    noise: Noise,
    lr: f64,
    /// Halved by each restore.
    lr_scale: f64,
    schedule: LrSchedule,
    /// The run's planned number of steps (for the schedule and the observers).
    total_steps: Option<usize>,
    form: KlForm,
    /// Steps run, taken or skipped.
    iteration: usize,
    elapsed: Duration,
    /// A stopping rule, with the batch ELBOs it sees and its decision.
    stop: Option<Box<dyn Rule>>,
    trace: Vec<f64>,
    stopped: Option<StopReason>,
}

impl VaeTrainer {
    /// Adam with learning rate `lr` on every weight of `vae`; ε from `seed`'s optimisation stream.
    pub fn new(vae: Vae, lr: f64, seed: u64) -> Result<Self> {
        let (names, vars): (Vec<String>, Vec<Var>) = vae.named_vars().into_iter().unzip();
        let storage = if vae.device().is_cpu() { Storage::InPlace } else { Storage::Tensors };
        let opt = OptimizerState::with_storage(Optimizer::adam(lr), vars.clone(), storage)?;
        let recovery = Recovery::for_vars(&vars, MAX_CONSECUTIVE_NONFINITE)?.snapshot_every(SNAPSHOT_EVERY);
        Ok(VaeTrainer {
            vae,
            names,
            vars,
            opt,
            recovery,
            noise: Noise::new(seed, Stream::Optimise),
            lr,
            lr_scale: 1.0,
            schedule: LrSchedule::Constant,
            total_steps: None,
            form: KlForm::Analytic,
            iteration: 0,
            elapsed: Duration::ZERO,
            stop: None,
            trace: Vec::new(),
            stopped: None,
        })
    }

    /// A stopping rule ([`elbo::stop::Rule`]) that sees every step's batch ELBO (its context has
    /// no q: an encoder is not one distribution); once it decides, [`VaeTrainer::stop_reason`]
    /// says why, and the caller's loop ends there.
    pub fn stop_when(mut self, rule: impl Rule + Clone + 'static) -> Self {
        self.stop = Some(Box::new(rule));
        self
    }

    /// The stopping rule's decision, once it has made one.
    pub fn stop_reason(&self) -> Option<StopReason> {
        self.stopped
    }

    /// Use this form of the KL term (default: analytic).
    pub fn kl_form(mut self, form: KlForm) -> Self {
        self.form = form;
        self
    }

    /// The step size over a run of `total_steps` steps (default: constant); observers see
    /// `total_steps` as the run's length.
    pub fn lr_schedule(mut self, schedule: LrSchedule, total_steps: usize) -> Result<Self> {
        if let LrSchedule::Exponential { final_lr } = schedule {
            if !(final_lr > 0.0 && final_lr.is_finite()) {
                return Err(Error::config("final_lr", final_lr, "must be positive and finite"));
            }
        }
        if total_steps == 0 {
            return Err(Error::config("total_steps", 0, "a schedule needs at least one step"));
        }
        self.schedule = schedule;
        self.total_steps = Some(total_steps);
        Ok(self)
    }

    /// Skipped steps in a row (a non-finite batch ELBO or gradient) before the weights go back to
    /// the last snapshot at half the step size (default 20, as `elbo::Advi`).
    pub fn max_consecutive_nonfinite(mut self, n: usize) -> Result<Self> {
        if n == 0 {
            return Err(Error::config("max_consecutive_nonfinite", 0, "must be at least 1"));
        }
        self.recovery = Recovery::for_vars(&self.vars, n)?.snapshot_every(SNAPSHOT_EVERY);
        Ok(self)
    }

    /// One Adam step on −ELBO_β of the batch `x` `[B, P]`. A step whose batch ELBO or gradient
    /// is not finite is skipped, the weights left as they were (`StepStats::taken` is false);
    /// a run of them restores and halves, or is an [`Error::NonFinite`] naming the step.
    pub fn step(&mut self, x: &Tensor, beta: f64) -> Result<StepStats> {
        self.step_with(x, beta, &mut [])
    }

    /// [`VaeTrainer::step`], and then each observer sees it (a skipped step's ELBO as NaN).
    pub fn step_with(&mut self, x: &Tensor, beta: f64, observers: &mut [&mut dyn Observer]) -> Result<StepStats> {
        let device = x.device().clone();
        let lr = self.lr();
        let start = Instant::now();
        let outcome = elbo::runtime::in_matmul_pool(&device, || self.step_here(x, beta, lr));
        self.elapsed += start.elapsed();
        self.iteration += 1;
        let stats = outcome?;
        if let Some(rule) = &mut self.stop {
            let elbo = stats.taken.then_some(stats.elbo);
            self.trace.push(elbo.unwrap_or(f64::NAN));
            let cx = Context {
                iteration: self.iteration,
                max_steps: self.total_steps.unwrap_or(usize::MAX),
                elbo,
                trace: &self.trace,
                q: None,
            };
            if self.stopped.is_none() {
                self.stopped = rule.observe(&cx)?;
            }
        }
        if !observers.is_empty() {
            let info = StepInfo {
                iteration: self.iteration,
                steps: self.total_steps.unwrap_or(usize::MAX),
                elbo: if stats.taken { stats.elbo } else { f64::NAN },
                lr,
                elapsed: self.elapsed,
            };
            for observer in observers.iter_mut() {
                observer.on_step(&info)?;
            }
        }
        Ok(stats)
    }

    /// Tells the observers that a run starts: the steps planned (from
    /// [`VaeTrainer::lr_schedule`], else unknown), the steps so far and the latent dimension.
    pub fn start(&self, observers: &mut [&mut dyn Observer]) -> Result<()> {
        let info = StartInfo {
            steps: self.total_steps.unwrap_or(usize::MAX),
            iteration: self.iteration,
            family: "amortised Gaussian",
            dim: self.vae.config.latent_dim,
        };
        observers.iter_mut().try_for_each(|o| o.on_start(&info))
    }

    /// Tells the observers that the run is over: the stopping rule's reason, else
    /// [`StopReason::MaxSteps`] (the caller ran the steps it planned).
    pub fn finish(&self, observers: &mut [&mut dyn Observer]) -> Result<()> {
        let info = FinishInfo { iterations: self.iteration, stop_reason: self.stopped.unwrap_or(StopReason::MaxSteps) };
        observers.iter_mut().try_for_each(|o| o.on_finish(&info))
    }

    fn step_here(&mut self, x: &Tensor, beta: f64, lr: f64) -> Result<StepStats> {
        let d = self.vae.config.latent_dim;
        let b = x.dims().first().copied().unwrap_or(0);
        let eps = self.noise.standard_normal(b, d, self.vae.config.dtype, x.device())?;
        let terms = self.vae.elbo_terms(x, &eps, self.form)?;
        let loss = terms.loss(beta)?;
        let elbo = terms.elbo()?.to_dtype(DType::F64)?.mean_all()?.to_scalar::<f64>()?;
        let kl = terms.kl.to_dtype(DType::F64)?.mean_all()?.to_scalar::<f64>()?;
        let skip = if elbo.is_finite() {
            let grads: Vec<Option<Tensor>> = if self.opt.storage() == Storage::InPlace {
                let grads = captured::backward(&loss)?;
                self.vars.iter().map(|v| grads.get(v.as_tensor()).cloned()).collect()
            } else {
                let grads = loss.backward()?;
                self.vars.iter().map(|v| grads.get(v.as_tensor()).map(Tensor::detach)).collect()
            };
            match first_nonfinite(&grads)? {
                Some((i, bad)) => {
                    Some(format!("the gradient of `{}` is not finite at flat indices {bad:?}", self.names[i]))
                }
                None => {
                    self.opt.step_tensors(grads, lr)?;
                    None
                }
            }
        } else {
            Some(format!("the batch ELBO is {elbo} (KL {kl})"))
        };
        match skip {
            None => {
                self.recovery.taken(&self.vars)?;
                Ok(StepStats { elbo, kl, taken: true })
            }
            Some(detail) => {
                let detail = format!("{detail}; lower the learning rate");
                if self.recovery.skipped(&self.vars, &mut self.opt, self.iteration, &detail)? == Recovered::Restored {
                    self.lr_scale *= 0.5;
                }
                Ok(StepStats { elbo, kl, taken: false })
            }
        }
    }

    /// The step size of the next step: the schedule's η_t times the restores' halvings.
    pub fn lr(&self) -> f64 {
        self.schedule.lr_at(self.lr, self.iteration, self.total_steps.unwrap_or(usize::MAX)) * self.lr_scale
    }

    /// Steps run so far, taken or skipped.
    pub fn steps(&self) -> usize {
        self.iteration
    }

    /// Steps skipped so far because the batch ELBO or the gradient was not finite.
    pub fn skipped(&self) -> usize {
        self.recovery.skipped_steps()
    }

    /// How many times a run of skipped steps restored the weights and halved the step size.
    pub fn halvings(&self) -> usize {
        self.recovery.halvings()
    }

    /// The VAE being trained.
    pub fn vae(&self) -> &Vae {
        &self.vae
    }

    /// The VAE, to load weights into (Adam's moments are kept; the point a run of non-finite
    /// steps goes back to is the next snapshot).
    pub fn vae_mut(&mut self) -> &mut Vae {
        &mut self.vae
    }

    /// The trained VAE.
    pub fn into_vae(self) -> Vae {
        self.vae
    }
}
