//! The IDX file format of MNIST and Fashion-MNIST, read from raw or gzip-compressed files.
//!
//! ```text
//! offset 0: 0x00 0x00 <type> <n_dims>          type 0x08 = unsigned byte (the only one used here)
//! offset 4: n_dims sizes, big-endian u32 each   e.g. [60000, 28, 28] for the training images
//! then:     Π sizes bytes, row-major            (nothing before, nothing after)
//! ```
//!
//! A file starting with the gzip magic 0x1f 0x8b is decompressed first, whatever its name. Every
//! way a file can be wrong (missing, bad magic, wrong type, sizes that do not match the data,
//! truncated, trailing bytes) is an [`elbo::Error::DataFile`] that names the file and the problem.

use std::io::Read;
use std::path::{Path, PathBuf};

use elbo::{Error, Result};

/// The type code of unsigned bytes.
const UBYTE: u8 = 0x08;
/// gzip's two magic bytes.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// An IDX array of unsigned bytes: its sizes and its data, row-major.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Idx {
    /// The size of each dimension.
    pub dims: Vec<usize>,
    /// Π dims bytes.
    pub data: Vec<u8>,
}

/// A set of grey-level images, N × rows × cols bytes (0 = black … 255 = white, as in MNIST).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Images {
    /// N, the number of images.
    pub n: usize,
    /// Pixel rows per image.
    pub rows: usize,
    /// Pixel columns per image.
    pub cols: usize,
    /// N · rows · cols bytes, image after image, row-major.
    pub pixels: Vec<u8>,
}

impl Images {
    /// rows · cols, the pixels per image.
    pub fn pixels_per_image(&self) -> usize {
        self.rows * self.cols
    }

    /// The grey levels scaled to [0, 1] as f32, N · rows · cols values.
    pub fn unit_interval(&self) -> Vec<f32> {
        self.pixels.iter().map(|&p| p as f32 / 255.0).collect()
    }
}

fn bad(path: &Path, problem: impl Into<String>) -> Error {
    Error::DataFile { path: path.display().to_string(), problem: problem.into() }
}

/// Reads an IDX file of unsigned bytes (raw, or gzip-compressed).
pub fn read_idx(path: &Path) -> Result<Idx> {
    let raw = std::fs::read(path).map_err(|e| bad(path, format!("cannot read it: {e}")))?;
    let bytes = if raw.starts_with(&GZIP_MAGIC) {
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(raw.as_slice())
            .read_to_end(&mut out)
            .map_err(|e| bad(path, format!("it is not a valid gzip file (truncated or corrupt?): {e}")))?;
        out
    } else {
        raw
    };
    parse_idx(&bytes).map_err(|problem| bad(path, problem))
}

/// Parses the bytes of an (uncompressed) IDX file; the error says what is wrong.
pub fn parse_idx(bytes: &[u8]) -> std::result::Result<Idx, String> {
    if bytes.len() < 4 {
        return Err(format!("it has {} bytes, fewer than the 4 of an IDX header (truncated or empty)", bytes.len()));
    }
    if bytes[0] != 0 || bytes[1] != 0 {
        return Err(format!(
            "bad magic number 0x{:02x}{:02x}{:02x}{:02x}: an IDX file starts with two zero bytes (0x0000 0803 for \
             images, 0x0000 0801 for labels)",
            bytes[0], bytes[1], bytes[2], bytes[3]
        ));
    }
    if bytes[2] != UBYTE {
        return Err(format!("data type 0x{:02x} is not supported: only unsigned bytes (0x08), as in MNIST", bytes[2]));
    }
    let n_dims = bytes[3] as usize;
    if n_dims == 0 {
        return Err("the header declares 0 dimensions".into());
    }
    let header = 4 + 4 * n_dims;
    if bytes.len() < header {
        return Err(format!(
            "truncated: the header declares {n_dims} dimensions ({header} bytes of header), but the file has {} bytes",
            bytes.len()
        ));
    }
    let dims: Vec<usize> = (0..n_dims)
        .map(|i| u32::from_be_bytes(bytes[4 + 4 * i..8 + 4 * i].try_into().expect("4 bytes")) as usize)
        .collect();
    let want = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| format!("the sizes {dims:?} overflow"))?;
    let got = bytes.len() - header;
    if got < want {
        return Err(format!("truncated: sizes {dims:?} need {want} bytes of data, the file has {got}"));
    }
    if got > want {
        return Err(format!(
            "wrong sizes: {dims:?} need {want} bytes of data, but the file has {got} ({} extra)",
            got - want
        ));
    }
    Ok(Idx { dims, data: bytes[header..].to_vec() })
}

/// The bytes of an IDX file of unsigned bytes with sizes `dims` (Π dims = `data.len()`).
pub fn encode_idx(dims: &[usize], data: &[u8]) -> Result<Vec<u8>> {
    let n: usize = dims.iter().product();
    if n != data.len() || dims.is_empty() || dims.len() > 255 || dims.iter().any(|&d| d > u32::MAX as usize) {
        return Err(Error::config(
            "dims",
            format!("{dims:?}"),
            format!("1 to 255 sizes below 2³² whose product is the data length {}", data.len()),
        ));
    }
    let mut out = vec![0, 0, UBYTE, dims.len() as u8];
    for &d in dims {
        out.extend_from_slice(&(d as u32).to_be_bytes());
    }
    out.extend_from_slice(data);
    Ok(out)
}

/// Writes an IDX file of unsigned bytes, gzip-compressed if `gzip`.
pub fn write_idx(path: &Path, dims: &[usize], data: &[u8], gzip: bool) -> Result<()> {
    use std::io::Write;
    let bytes = encode_idx(dims, data)?;
    let bytes = if gzip {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(&bytes)?;
        enc.finish()?
    } else {
        bytes
    };
    std::fs::write(path, bytes).map_err(|e| bad(path, format!("cannot write it: {e}")))
}

/// Reads a file of images: an IDX array of three dimensions [N, rows, cols].
pub fn read_images(path: &Path) -> Result<Images> {
    let idx = read_idx(path)?;
    match idx.dims[..] {
        [n, rows, cols] if n > 0 && rows > 0 && cols > 0 => Ok(Images { n, rows, cols, pixels: idx.data }),
        _ => Err(bad(path, format!("an image file must have sizes [N, rows, cols], all ≥ 1; it has {:?}", idx.dims))),
    }
}

/// The training and test images of an MNIST-format folder: `train-images-idx3-ubyte` and
/// `t10k-images-idx3-ubyte`, each raw or with `.gz` (the gzip one is taken when both are there).
/// The two sets must have the same image size.
pub fn read_mnist_images(dir: &Path) -> Result<(Images, Images)> {
    let train = read_images(&find(dir, "train-images-idx3-ubyte")?)?;
    let test_path = find(dir, "t10k-images-idx3-ubyte")?;
    let test = read_images(&test_path)?;
    if (train.rows, train.cols) != (test.rows, test.cols) {
        return Err(bad(
            &test_path,
            format!(
                "its images are {}×{}, but the training images are {}×{}",
                test.rows, test.cols, train.rows, train.cols
            ),
        ));
    }
    Ok((train, test))
}

/// `dir/stem.gz` or `dir/stem`, whichever exists.
fn find(dir: &Path, stem: &str) -> Result<PathBuf> {
    let candidates = [dir.join(format!("{stem}.gz")), dir.join(stem)];
    candidates.iter().find(|p| p.is_file()).cloned().ok_or_else(|| {
        let why = if dir.is_dir() { "the folder has neither" } else { "the folder does not exist" };
        bad(&candidates[0], format!("missing: looked for {stem}.gz and {stem} in {}, and {why}", dir.display()))
    })
}
