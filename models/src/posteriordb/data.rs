//! A posteriordb `data.json`, read field by field, and the models' data held as tensors of both
//! float dtypes.
//!
//! ```text
//! data.json = { "N": 46, "y": [y_1, …, y_N], "alpha": [[a_11, a_12], [a_21, a_22]], … }
//! ```
//!
//! Integer and real fields follow the Stan program's data block; every error names the file and the
//! field, and says what was expected.

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use elbo::{Error, Result};

/// A parsed posteriordb data file: its fields by name.
///
/// ```
/// use elbo_models::posteriordb::Data;
///
/// let data = Data::parse(r#"{"N": 2, "y": [1.5, -0.5]}"#, "inline")?;
/// assert_eq!(data.int("N")?, 2);
/// assert_eq!(data.reals("y", 2)?, [1.5, -0.5]);
/// assert!(data.reals("y", 3).is_err()); // the length is checked
/// # Ok::<(), elbo::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Data {
    origin: String,
    json: serde_json::Value,
}

impl Data {
    /// Reads and parses the file at `path`.
    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::DataFile {
            path: path.display().to_string(),
            problem: format!("cannot be read ({e})"),
        })?;
        Data::parse(&text, path.display().to_string())
    }

    /// Parses `text`; `origin` names it in errors (a path).
    pub fn parse(text: &str, origin: impl Into<String>) -> Result<Self> {
        let origin = origin.into();
        let json: serde_json::Value = serde_json::from_str(text)
            .map_err(|e| Error::DataFile { path: origin.clone(), problem: format!("is not valid JSON: {e}") })?;
        if !json.is_object() {
            return Err(Error::DataFile { path: origin, problem: "must hold one JSON object of data fields".into() });
        }
        Ok(Data { origin, json })
    }

    /// Where the data came from (the path given to [`Data::read`]).
    pub fn origin(&self) -> &str {
        &self.origin
    }

    fn bad(&self, key: &str, problem: impl std::fmt::Display) -> Error {
        Error::DataFile { path: self.origin.clone(), problem: format!("field `{key}` {problem}") }
    }

    fn field(&self, key: &str) -> Result<&serde_json::Value> {
        self.json.get(key).ok_or_else(|| self.bad(key, "is missing"))
    }

    /// The non-negative integer field `key`.
    pub fn int(&self, key: &str) -> Result<usize> {
        let v = self.field(key)?;
        v.as_u64()
            .and_then(|n| usize::try_from(n).ok())
            .ok_or_else(|| self.bad(key, format!("must be a non-negative integer, not {v}")))
    }

    /// The array field `key` of `len` finite numbers.
    pub fn reals(&self, key: &str, len: usize) -> Result<Vec<f64>> {
        let v = self.field(key)?;
        let array = v.as_array().ok_or_else(|| self.bad(key, "must be an array of numbers"))?;
        if array.len() != len {
            return Err(self.bad(key, format!("has {} values, but the model needs {len}", array.len())));
        }
        array
            .iter()
            .enumerate()
            .map(|(i, x)| {
                x.as_f64()
                    .filter(|x| x.is_finite())
                    .ok_or_else(|| self.bad(key, format!("element {i} ({x}) is not a finite number")))
            })
            .collect()
    }

    /// The matrix field `key` (an array of `rows` arrays of `cols` finite numbers), row-major.
    pub fn matrix(&self, key: &str, rows: usize, cols: usize) -> Result<Vec<f64>> {
        let v = self.field(key)?;
        let array = v.as_array().ok_or_else(|| self.bad(key, "must be an array of rows"))?;
        if array.len() != rows {
            return Err(self.bad(key, format!("has {} rows, but the model needs {rows}", array.len())));
        }
        let mut out = Vec::with_capacity(rows * cols);
        for (r, row) in array.iter().enumerate() {
            let row = row.as_array().ok_or_else(|| self.bad(key, format!("row {r} is not an array")))?;
            if row.len() != cols {
                return Err(self.bad(key, format!("row {r} has {} values, but the model needs {cols}", row.len())));
            }
            for (c, x) in row.iter().enumerate() {
                let x = x
                    .as_f64()
                    .filter(|x| x.is_finite())
                    .ok_or_else(|| self.bad(key, format!("element [{r}][{c}] ({x}) is not a finite number")))?;
                out.push(x);
            }
        }
        Ok(out)
    }

    /// The array field `key` of `len` values, each > 0 (for data the model takes logarithms of,
    /// or that are rates and distances).
    pub fn positive_reals(&self, key: &str, len: usize) -> Result<Vec<f64>> {
        let values = self.reals(key, len)?;
        match values.iter().position(|&x| x <= 0.0) {
            Some(i) => Err(self.bad(key, format!("element {i} ({}) is not positive", values[i]))),
            None => Ok(values),
        }
    }
}

/// Data as CPU tensors in f64 and f32, so that a model evaluates in the dtype of the values it is
/// given without converting its data at every call (other devices get a copy per call).
#[derive(Clone, Debug)]
pub(crate) struct DataTensor {
    f64: Tensor,
    f32: Tensor,
}

impl DataTensor {
    /// `values` (row-major) of `shape`, on the CPU.
    pub(crate) fn new(values: Vec<f64>, shape: &[usize]) -> Result<Self> {
        let f64 = Tensor::from_vec(values, shape, &Device::Cpu)?;
        let f32 = f64.to_dtype(DType::F32)?;
        Ok(DataTensor { f64, f32 })
    }

    /// The data in the dtype and on the device of `x` (f32 or f64).
    pub(crate) fn like(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let t = match x.dtype() {
            DType::F64 => &self.f64,
            DType::F32 => &self.f32,
            other => candle_core::bail!("the posteriordb models evaluate in f32 or f64, not {other:?}"),
        };
        if x.device().same_device(t.device()) {
            Ok(t.clone())
        } else {
            t.to_device(x.device())
        }
    }
}
