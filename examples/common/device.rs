//! `--device auto|cpu|cuda` for the examples: the GPU when asked for or when one answers, else the
//! CPU with one line saying why.

use candle_core::Device;
use clap::ValueEnum;

/// Where to compute.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum DeviceArg {
    /// The GPU if built with `--features cuda` and one answers, else the CPU (saying why).
    Auto,
    /// The CPU.
    Cpu,
    /// The first CUDA GPU, or an error.
    Cuda,
}

/// The device for `arg`; for `cuda`, a one-line reason when there is none.
pub fn pick(arg: DeviceArg) -> Result<Device, String> {
    match arg {
        DeviceArg::Auto => {
            let (device, note) = elbo::runtime::cuda_or_cpu();
            if let Some(note) = note {
                eprintln!("{note}");
            }
            Ok(device)
        }
        DeviceArg::Cpu => Ok(Device::Cpu),
        DeviceArg::Cuda => Device::new_cuda(0).map_err(|e| {
            let why = e.to_string();
            let hint = if cfg!(feature = "cuda") { "" } else { " (build with --features cuda)" };
            format!("--device cuda: {}{hint}", why.lines().next().unwrap_or(""))
        }),
    }
}

/// "cpu", "cuda:0", … for reports.
pub fn name(device: &Device) -> String {
    match device {
        Device::Cpu => "cpu".into(),
        Device::Cuda(_) => "cuda:0".into(),
        other => format!("{other:?}"),
    }
}
