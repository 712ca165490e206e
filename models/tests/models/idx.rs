//! The IDX reader (`elbo_models::idx`): files written here are read back exactly, raw and gzip;
//! every malformed file is an `Error::DataFile` that names the file and says what is wrong.

use std::path::{Path, PathBuf};

use elbo::Error;
use elbo_models::idx::{encode_idx, read_idx, read_images, read_mnist_images, write_idx, Idx};

/// A fresh, empty folder under the system's temporary folder, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("elbo-idx-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
    fn join(&self, file: &str) -> PathBuf {
        self.0.join(file)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn pixels(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 37 % 256) as u8).collect()
}

/// The problem text of a DataFile error for `path`, or a panic saying what came instead.
fn problem(result: elbo::Result<impl std::fmt::Debug>, path: &Path) -> String {
    match result {
        Err(Error::DataFile { path: p, problem }) => {
            assert_eq!(p, path.display().to_string(), "the error names the file");
            problem
        }
        other => panic!("expected a DataFile error for {}, got {other:?}", path.display()),
    }
}

#[test]
fn round_trip_raw_and_gzip() {
    let dir = TempDir::new("round-trip");
    let data = pixels(3 * 4 * 5);
    for gzip in [false, true] {
        let path = dir.join(if gzip { "a.gz" } else { "a" });
        write_idx(&path, &[3, 4, 5], &data, gzip).unwrap();
        assert_eq!(read_idx(&path).unwrap(), Idx { dims: vec![3, 4, 5], data: data.clone() });
        let images = read_images(&path).unwrap();
        assert_eq!((images.n, images.rows, images.cols), (3, 4, 5));
        assert_eq!(images.pixels, data);
        let unit = images.unit_interval();
        assert_eq!(unit[1], data[1] as f32 / 255.0);
    }
    // gzip is recognised by its magic bytes, not by the name
    let path = dir.join("compressed-without-suffix");
    write_idx(&path, &[2, 2], &[1, 2, 3, 4], true).unwrap();
    assert_eq!(read_idx(&path).unwrap().data, vec![1, 2, 3, 4]);
}

#[test]
fn mnist_folder_takes_gzip_or_raw() {
    let dir = TempDir::new("folder");
    write_idx(&dir.join("train-images-idx3-ubyte.gz"), &[6, 2, 3], &pixels(36), true).unwrap();
    write_idx(&dir.join("t10k-images-idx3-ubyte"), &[2, 2, 3], &pixels(12), false).unwrap();
    let (train, test) = read_mnist_images(&dir.0).unwrap();
    assert_eq!((train.n, test.n, train.rows, train.cols), (6, 2, 2, 3));
    assert_eq!(test.pixels, pixels(12));
}

#[test]
fn every_malformed_file_has_its_error() {
    let dir = TempDir::new("malformed");
    let good = encode_idx(&[2, 3, 4], &pixels(24)).unwrap();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("empty", vec![], "fewer than the 4 of an IDX header"),
        ("bad-magic", [&[0x1au8, 0x2b][..], &good[2..]].concat(), "bad magic number 0x1a2b0803"),
        ("float-type", [&[0u8, 0, 0x0d][..], &good[3..]].concat(), "data type 0x0d is not supported"),
        ("zero-dims", vec![0, 0, 8, 0], "0 dimensions"),
        ("short-header", good[..9].to_vec(), "truncated: the header declares 3 dimensions"),
        (
            "short-data",
            good[..good.len() - 5].to_vec(),
            "truncated: sizes [2, 3, 4] need 24 bytes of data, the file has 19",
        ),
        (
            "trailing",
            [&good[..], &[7u8, 7][..]].concat(),
            "wrong sizes: [2, 3, 4] need 24 bytes of data, but the file has 26",
        ),
    ];
    for (name, bytes, want) in cases {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        let got = problem(read_idx(&path), &path);
        assert!(got.contains(want), "{name}: `{got}` does not say `{want}`");
    }

    // a truncated gzip stream
    let path = dir.join("cut.gz");
    write_idx(&path, &[50, 28, 28], &pixels(50 * 784), true).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let got = problem(read_idx(&path), &path);
    assert!(got.contains("not a valid gzip file"), "{got}");

    // a missing file, and a missing folder
    let path = dir.join("nothing-here");
    assert!(problem(read_idx(&path), &path).contains("cannot read it"));
    let err = read_mnist_images(&dir.join("no-such-folder")).unwrap_err().to_string();
    assert!(err.contains("missing") && err.contains("the folder does not exist"), "{err}");
    let err = read_mnist_images(&dir.0).unwrap_err().to_string();
    assert!(err.contains("train-images-idx3-ubyte.gz") && err.contains("the folder has neither"), "{err}");

    // labels (one dimension) are not images
    let path = dir.join("labels");
    write_idx(&path, &[24], &pixels(24), false).unwrap();
    assert!(problem(read_images(&path), &path).contains("must have sizes [N, rows, cols]"));

    // training and test images of different sizes
    write_idx(&dir.join("train-images-idx3-ubyte"), &[2, 3, 4], &pixels(24), false).unwrap();
    write_idx(&dir.join("t10k-images-idx3-ubyte"), &[2, 4, 3], &pixels(24), false).unwrap();
    let err = read_mnist_images(&dir.0).unwrap_err().to_string();
    assert!(err.contains("its images are 4×3, but the training images are 3×4"), "{err}");
}

#[test]
fn encode_checks_sizes_against_the_data() {
    assert!(encode_idx(&[2, 3], &[0; 5]).is_err());
    assert!(encode_idx(&[], &[]).is_err());
    assert_eq!(encode_idx(&[1], &[9]).unwrap(), vec![0, 0, 8, 1, 0, 0, 0, 1, 9]);
}
