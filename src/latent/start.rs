//! Where an optimisation starts (stochastic ADVI, MAP, Laplace, DADVI): an unconstrained point
//! z₀ = `init_loc` (or 0), with the blocks named by `init_value` set to u = T⁻¹(value), the inverse
//! of each block's bijector.

use crate::model::LogJoint;
use crate::{Error, Result};

/// Where an optimisation starts: `init_loc` (or 0), with the blocks given by `init_value`
/// (constrained values by name) overwritten.
#[derive(Clone, Debug, Default)]
pub(crate) struct Start {
    pub loc: Option<Vec<f64>>,
    pub values: Vec<(String, Vec<f64>)>,
}

impl Start {
    pub(crate) fn value(&mut self, name: &str, values: &[f64]) {
        self.values.retain(|(n, _)| n != name);
        self.values.push((name.to_string(), values.to_vec()));
    }

    /// The unconstrained starting point for `model`, after checking the model's declaration.
    pub(crate) fn point<M: LogJoint + ?Sized>(&self, model: &M) -> Result<Vec<f64>> {
        // a bad declaration is the error to report, before what it does to dim()
        if let Some(latents) = model.named_latents() {
            latents.validate()?;
        }
        let d = model.dim();
        if d == 0 {
            return Err(Error::ModelOutput {
                problem: "dim() is 0: a model needs at least one latent coordinate".into(),
            });
        }
        let latents = crate::model::latents_of(model);
        let mut loc = match &self.loc {
            Some(loc) if loc.len() != d => {
                return Err(Error::DimensionMismatch { what: "init_loc".into(), expected: d, got: loc.len() })
            }
            Some(loc) => loc.clone(),
            None => vec![0.0; d],
        };
        if let Some(i) = loc.iter().position(|x| !x.is_finite()) {
            return Err(Error::config("init_loc", loc[i], format!("coordinate {i} is not finite")));
        }
        for (name, values) in &self.values {
            let u = latents.unconstrain(name, values)?;
            let block = latents.block(name)?;
            loc[block.offset()..block.offset() + block.unconstrained_len()].copy_from_slice(&u);
        }
        Ok(loc)
    }
}
