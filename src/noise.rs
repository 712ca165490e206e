//! Standard-normal noise ε for the reparameterisation z = μ + L ε, from a seeded, portable host RNG.
//!
//! candle's CPU RNG cannot be seeded, so `elbo` never calls `Tensor::randn`: ε is drawn on the host
//! from ChaCha12 (value-stable across platforms) with `rand_distr::StandardNormal` in `f64`, cast to
//! the working dtype, and uploaded with `Tensor::from_vec`. The same seed therefore gives the same ε
//! in f32 and f64 (up to rounding), on every device.
//!
//! Independent streams of one seed: [`Stream::Optimise`] feeds the optimiser, [`Stream::Evaluate`]
//! the final ELBO estimate, [`Stream::Draws`] the posterior draws, [`Stream::Start`] the check of
//! the model at the start, [`Stream::Batches`] the minibatch rows.

use candle_core::{DType, Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha12Rng;
use rand_distr::StandardNormal;

use crate::{Error, Result};

/// Which independent stream of a seed to draw from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    /// Noise for the gradient steps.
    Optimise = 0,
    /// Fresh draws for the final ELBO estimate.
    Evaluate = 1,
    /// Draws returned to the user.
    Draws = 2,
    /// The few draws from the initial q on which the model is checked before the first step.
    Start = 3,
    /// The rows of each minibatch.
    Batches = 4,
    /// Pathfinder's jittered starts and the draws behind its ELBO estimates.
    Pathfinder = 5,
    /// Pathfinder's importance-weighted draws from its paths' Gaussians.
    Resample = 6,
}

/// A seeded source of standard-normal noise tensors.
#[derive(Clone, Debug)]
pub struct Noise {
    rng: ChaCha12Rng,
}

impl Noise {
    /// The stream `stream` of `seed`.
    pub fn new(seed: u64, stream: Stream) -> Self {
        let mut rng = ChaCha12Rng::seed_from_u64(seed);
        rng.set_stream(stream as u64);
        Noise { rng }
    }

    /// ε ~ N(0, I) of shape `[rows, cols]`, in `dtype` (F32 or F64) on `device`.
    pub fn standard_normal(&mut self, rows: usize, cols: usize, dtype: DType, device: &Device) -> Result<Tensor> {
        let n = rows * cols;
        let draws = (0..n).map(|_| self.rng.sample::<f64, _>(StandardNormal));
        let t = match dtype {
            DType::F64 => Tensor::from_vec(draws.collect::<Vec<f64>>(), (rows, cols), device)?,
            DType::F32 => Tensor::from_vec(draws.map(|x| x as f32).collect::<Vec<f32>>(), (rows, cols), device)?,
            other => return Err(Error::config("dtype", format!("{other:?}"), "use DType::F32 or DType::F64")),
        };
        Ok(t)
    }

    /// The same draws as [`Noise::standard_normal`], as host values (row-major `[rows, cols]`),
    /// each exactly representable in `dtype`.
    pub fn standard_normal_host(&mut self, rows: usize, cols: usize, dtype: DType) -> Result<Vec<f64>> {
        let draws = (0..rows * cols).map(|_| self.rng.sample::<f64, _>(StandardNormal));
        match dtype {
            DType::F64 => Ok(draws.collect()),
            DType::F32 => Ok(draws.map(|x| x as f32 as f64).collect()),
            other => Err(Error::config("dtype", format!("{other:?}"), "use DType::F32 or DType::F64")),
        }
    }
}

impl Noise {
    /// `n` host values uniform on [lo, hi).
    pub fn uniform_host(&mut self, n: usize, lo: f64, hi: f64) -> Vec<f64> {
        (0..n).map(|_| lo + (hi - lo) * self.rng.random::<f64>()).collect()
    }

    /// `b` distinct row indices drawn uniformly from 0..n (a minibatch without replacement),
    /// as a u32 tensor `[b]` on `device`. Needs b ≤ n < 2³².
    pub fn rows(&mut self, n: usize, b: usize, device: &Device) -> Result<Tensor> {
        let rows: Vec<u32> = rand::seq::index::sample(&mut self.rng, n, b).into_iter().map(|i| i as u32).collect();
        Ok(Tensor::from_vec(rows, b, device)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_reproducible_and_distinct() {
        let draw = |seed, stream| {
            Noise::new(seed, stream)
                .standard_normal(2, 3, DType::F64, &Device::Cpu)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f64>()
                .unwrap()
        };
        assert_eq!(draw(7, Stream::Optimise), draw(7, Stream::Optimise));
        assert_ne!(draw(7, Stream::Optimise), draw(7, Stream::Evaluate));
        assert_ne!(draw(7, Stream::Optimise), draw(8, Stream::Optimise));
    }
}
