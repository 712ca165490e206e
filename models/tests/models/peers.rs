//! The ready models of `elbo-models` give the same log joint as the peers' ports (NumPyro, PyMC,
//! Pyro) at the parameter values of `../shared/peers/data/logp_checks.json` (copied to the
//! workspace's `tests/data/`, with the gmm data): constrained values, no Jacobian, full
//! normalising constants.

use elbo::prelude::*;
use elbo_models::GaussianMixture;
use serde_json::Value;

fn json(name: &str) -> Value {
    let path = format!("{}/../tests/data/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).expect(&path)).expect("valid JSON")
}

fn numbers(v: &Value) -> Vec<f64> {
    match v {
        Value::Array(items) => items.iter().flat_map(numbers).collect(),
        other => vec![other.as_f64().expect("a number")],
    }
}

/// The model's log density (no Jacobian) at constrained values given by name.
fn log_density<M: Model>(model: &M, params: &Value) -> f64 {
    let latents = model.latents();
    let mut z = Vec::new();
    for block in latents.blocks() {
        z.extend(latents.unconstrain(block.name(), &numbers(&params[block.name()])).unwrap());
    }
    let z = Tensor::from_vec(z, (1, latents.dim()), &Device::Cpu).unwrap();
    let (values, _) = latents.constrain(&z).unwrap();
    model.log_density(&values).unwrap().to_vec1::<f64>().unwrap()[0]
}

#[test]
fn gaussian_mixture_matches_the_peers_log_joint() {
    let data = json("gmm.json");
    let (n, d) = (data["N"].as_u64().unwrap() as usize, data["D"].as_u64().unwrap() as usize);
    let x = Tensor::from_vec(numbers(&data["x"]), (n, d), &Device::Cpu).unwrap();
    let model = GaussianMixture::new(&x, data["K"].as_u64().unwrap() as usize).unwrap();
    let checks = json("logp_checks.json");
    for check in checks["gmm"].as_array().unwrap() {
        let want = check["log_joint"].as_f64().unwrap();
        let got = log_density(&model, &check["params"]);
        // the round trip through the stick-breaking and log transforms costs a few ulps of the
        // parameters; the peers themselves agree to 2e-10 relative (PyMC)
        assert!((got - want).abs() < 1e-10 * want.abs(), "log p = {got}, peers {want}");
    }
}
