//! Weight gradients of a backward pass kept outside candle's `GradStore`.
//!
//! ```text
//! ∂L/∂W = Σ_uses ∂L/∂W|_use        (the same sum candle's GradStore forms)
//! ```
//!
//! candle's backward gives every argument of every node its gradient through
//! `GradStore::or_insert` (a tensor of zeros) and `add`: for a weight matrix that is a zero-fill, an
//! add and two weight-sized allocations per step, a sizeable part of a VAE training step on the CPU
//! (benches/README.md, "VAE per-epoch time, second pass"). In
//! [`backward`], layers that compute their weights' gradients themselves ([`crate::dense`]) hand
//! them to [`offer`] instead, which keeps the first as it is and adds later ones, so a weight's
//! gradient costs only the product that forms it. Outside [`backward`], [`offer`] hands the
//! gradient back and the layer returns it to candle as usual.

use std::cell::RefCell;
use std::collections::HashMap;

use candle_core::backprop::GradStore;
use candle_core::{Tensor, TensorId};

thread_local! {
    /// The gradients captured by the [`backward`] running on this thread, if any.
    static CAPTURED: RefCell<Option<HashMap<TensorId, Tensor>>> = const { RefCell::new(None) };
}

/// The gradients of one backward pass: candle's store, and the weights' gradients captured beside it.
pub(crate) struct Gradients {
    store: GradStore,
    captured: HashMap<TensorId, Tensor>,
}

impl Gradients {
    /// ∂L/∂t, wherever it was kept.
    pub(crate) fn get(&self, t: &Tensor) -> Option<&Tensor> {
        self.captured.get(&t.id()).or_else(|| self.store.get(t))
    }
}

/// `loss.backward()`, with the gradients that layers [`offer`] kept out of candle's store.
pub(crate) fn backward(loss: &Tensor) -> candle_core::Result<Gradients> {
    /// Ends the capture however the backward pass ends (a panic included).
    struct Capture;
    impl Drop for Capture {
        fn drop(&mut self) {
            CAPTURED.with(|c| c.take());
        }
    }
    let _capture = Capture;
    CAPTURED.with(|c| c.replace(Some(HashMap::new())));
    let store = loss.backward()?;
    let captured = CAPTURED.with(|c| c.take()).unwrap_or_default();
    Ok(Gradients { store, captured })
}

/// Keeps `grad`, a gradient of `weight`, when a [`backward`] is capturing on this thread (`None`);
/// otherwise hands it back for candle's store (`Some(grad)`).
pub(crate) fn offer(weight: &Tensor, grad: Tensor) -> candle_core::Result<Option<Tensor>> {
    CAPTURED.with(|c| {
        let mut c = c.borrow_mut();
        let Some(map) = c.as_mut() else { return Ok(Some(grad)) };
        match map.remove(&weight.id()) {
            Some(sum) => map.insert(weight.id(), (sum + grad)?),
            None => map.insert(weight.id(), grad),
        };
        Ok(None)
    })
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Module, Var};

    use super::*;
    use crate::dense::{Activation, Dense};

    /// Two fused layers, the first used twice: the captured gradients equal candle's, and none of
    /// them is left in candle's store.
    #[test]
    fn captured_gradients_equal_candles() {
        let dev = Device::Cpu;
        let v = |n: usize, s: f64| (0..n).map(|i| ((i as f64 + 1.0) * 0.618_034 * s).fract() - 0.5).collect::<Vec<_>>();
        let w1 = Var::from_vec(v(12, 1.3), (4, 3), &dev).unwrap();
        let b1 = Var::from_vec(v(3, 2.1), 3, &dev).unwrap();
        let w2 = Var::from_vec(v(6, 3.7), (3, 2), &dev).unwrap();
        let b2 = Var::from_vec(v(2, 4.3), 2, &dev).unwrap();
        let l1 = Dense::new(w1.clone(), b1.clone(), Activation::Relu).unwrap();
        let l2 = Dense::new(w2.clone(), b2.clone(), Activation::Identity).unwrap();
        let x = Tensor::from_vec(v(20, 5.9), (5, 4), &dev).unwrap();
        let x2 = Tensor::from_vec(v(20, 6.1), (5, 4), &dev).unwrap();
        let loss = || {
            let h = (l1.forward(&x).unwrap() + l1.forward(&x2).unwrap()).unwrap();
            l2.forward(&h).unwrap().sqr().unwrap().sum_all().unwrap()
        };
        let plain = loss().backward().unwrap();
        let grads = backward(&loss()).unwrap();
        for var in [&w1, &b1, &w2, &b2] {
            let want = plain.get(var.as_tensor()).unwrap().flatten_all().unwrap().to_vec1::<f64>().unwrap();
            let got = grads.get(var.as_tensor()).unwrap().flatten_all().unwrap().to_vec1::<f64>().unwrap();
            assert!(grads.store.get(var.as_tensor()).is_none(), "captured gradients stay out of candle's store");
            for (a, b) in got.iter().zip(&want) {
                assert!((a - b).abs() < 1e-12, "captured {a} vs candle {b}");
            }
        }
        // and a plain backward afterwards captures nothing
        assert!(loss().backward().unwrap().get(w1.as_tensor()).is_some());
    }
}
