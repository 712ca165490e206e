//! The images of `vae`: an MNIST-format folder (Fashion-MNIST by default) read onto the device.

use candle_core::{Device, Tensor};
use elbo_models::idx::{read_mnist_images, Images};

use super::{AppError, Args};

/// Debian's Fashion-MNIST (package `dataset-fashion-mnist`).
pub const DEFAULT_DATA: &str = "/usr/share/datasets/fashion-mnist";
/// The one command that installs it.
pub const INSTALL_HINT: &str = "install Fashion-MNIST with `sudo apt-get install dataset-fashion-mnist` (Debian, \
                                Ubuntu), or pass --data DIR with an MNIST-format folder holding \
                                train-images-idx3-ubyte[.gz] and t10k-images-idx3-ubyte[.gz]";

/// The training and test images as `[N, P]` tensors in [0, 1].
pub struct Data {
    /// Training images.
    pub train: Tensor,
    /// Test images.
    pub test: Tensor,
    /// Rows and columns of an image.
    pub shape: (usize, usize),
}

fn to_tensor(images: &Images, keep: Option<usize>, device: &Device) -> Result<Tensor, AppError> {
    let n = keep.map_or(images.n, |k| k.min(images.n));
    let p = images.pixels_per_image();
    let values: Vec<f32> = images.pixels[..n * p].iter().map(|&v| v as f32 / 255.0).collect();
    Ok(Tensor::from_vec(values, (n, p), device)?)
}

/// Reads the images of `args.data` onto `device`.
pub fn load_data(args: &Args, device: &Device) -> Result<Data, AppError> {
    let (train, test) = read_mnist_images(&args.data)
        .map_err(|e| AppError::Data(format!("cannot read the images: {e}\n  {INSTALL_HINT}")))?;
    Ok(Data {
        train: to_tensor(&train, args.train_n, device)?,
        test: to_tensor(&test, args.test_n, device)?,
        shape: (train.rows, train.cols),
    })
}
