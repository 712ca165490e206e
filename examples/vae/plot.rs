//! The pictures of `vae`, drawn with plotters into PNG files:
//!
//! - a grid of grey-level images (test images beside their reconstructions, prior samples, the
//!   latent manifold), each pixel value v ∈ [0, 1] drawn as grey level 255 · v (0 black, 1 white,
//!   as in the data);
//! - the train and test ELBO per epoch.
//!
//! Text uses DejaVu Sans, registered at run time from [`FONT`]; without it the pictures are drawn
//! with no text at all.

#[path = "../common/font.rs"]
mod font;
pub use font::{register_font, FONT};

use std::error::Error;
use std::path::Path;

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

const INK: RGBColor = RGBColor(0x22, 0x22, 0x22);
const GRID: RGBColor = RGBColor(0xe4, 0xe4, 0xe4);
const TRAIN: RGBColor = RGBColor(0x4e, 0x79, 0xa7);
const TEST: RGBColor = RGBColor(0xe1, 0x57, 0x59);

type PlotResult = Result<(), Box<dyn Error>>;

/// Images (each `h · w` values in [0, 1], row-major) in a grid of `cols` columns, every image pixel
/// drawn as a `SCALE`×`SCALE` square, under a title band.
pub fn image_grid(
    path: &Path,
    images: &[Vec<f32>],
    (h, w): (usize, usize),
    cols: usize,
    title: &str,
    text: bool,
) -> Result<(), String> {
    grid(path, images, (h, w), cols, title, text).map_err(|e| e.to_string())
}

fn grid(path: &Path, images: &[Vec<f32>], (h, w): (usize, usize), cols: usize, title: &str, text: bool) -> PlotResult {
    const SCALE: usize = 3;
    const GAP: usize = 4;
    const TOP: usize = 40;
    let cols = cols.max(1);
    let rows = images.len().div_ceil(cols).max(1);
    let cell = (w * SCALE + GAP, h * SCALE + GAP);
    let width = (cols * cell.0 + GAP).max(if text { 560 } else { 1 });
    let height = rows * cell.1 + GAP + if text { TOP } else { 0 };
    let root = BitMapBackend::new(path, (width as u32, height as u32)).into_drawing_area();
    root.fill(&WHITE)?;
    if text {
        let style = ("sans-serif", 18.0).into_font().color(&INK).pos(Pos::new(HPos::Center, VPos::Center));
        root.draw(&Text::new(title.to_string(), (width as i32 / 2, TOP as i32 / 2), style))?;
    }
    let top = if text { TOP } else { 0 };
    for (i, img) in images.iter().enumerate() {
        let (x0, y0) = (GAP + (i % cols) * cell.0, top + GAP + (i / cols) * cell.1);
        for (j, &v) in img.iter().enumerate().take(h * w) {
            let g = (v.clamp(0.0, 1.0) * 255.0).round() as u8;
            let (px, py) = (x0 + (j % w) * SCALE, y0 + (j / w) * SCALE);
            for (dx, dy) in (0..SCALE).flat_map(|dx| (0..SCALE).map(move |dy| (dx, dy))) {
                root.draw_pixel(((px + dx) as i32, (py + dy) as i32), &RGBColor(g, g, g))?;
            }
        }
    }
    root.present()?;
    Ok(())
}

/// The train and test ELBO per image after each epoch.
pub fn elbo_curves(path: &Path, train: &[f64], test: &[f64], text: bool) -> Result<(), String> {
    curves(path, train, test, text).map_err(|e| e.to_string())
}

fn curves(path: &Path, train: &[f64], test: &[f64], text: bool) -> PlotResult {
    let n = train.len().max(test.len()).max(1);
    let all: Vec<f64> = train.iter().chain(test).copied().filter(|v| v.is_finite()).collect();
    let lo = all.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = all.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let (lo, hi) = if lo.is_finite() && hi > lo { (lo, hi) } else { (lo - 1.0, lo + 1.0) };
    let pad = 0.08 * (hi - lo);
    let root = BitMapBackend::new(path, (900, 560)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut builder = ChartBuilder::on(&root);
    builder.margin(18).margin_right(28).x_label_area_size(44).y_label_area_size(80);
    if text {
        builder.caption("VAE: ELBO per image after each epoch (nats, higher is better)", ("sans-serif", 20));
    }
    let mut chart = builder.build_cartesian_2d(0.5..(n as f64 + 0.5), (lo - pad)..(hi + pad))?;
    let mut mesh = chart.configure_mesh();
    mesh.bold_line_style(GRID).light_line_style(WHITE).axis_style(INK);
    if text {
        mesh.x_desc("epoch")
            .y_desc("ELBO per image (nats)")
            .x_labels(n.min(20))
            .x_label_formatter(&|v| format!("{v:.0}"))
            .y_label_formatter(&|v| format!("{v:.0}"))
            .label_style(("sans-serif", 14))
            .axis_desc_style(("sans-serif", 15));
    } else {
        mesh.x_labels(0).y_labels(0);
    }
    mesh.draw()?;
    for (values, colour, label) in
        [(train, TRAIN, "train (mean over the epoch's batches)"), (test, TEST, "test (end of epoch)")]
    {
        let points: Vec<(f64, f64)> = values.iter().enumerate().map(|(i, &v)| ((i + 1) as f64, v)).collect();
        let series = chart.draw_series(LineSeries::new(points.clone(), colour.stroke_width(3)))?;
        if text {
            series
                .label(label)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(3)));
        }
        chart.draw_series(points.into_iter().map(|p| Circle::new(p, 4, colour.filled())))?;
    }
    if text {
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(0xaa, 0xaa, 0xaa))
            .label_font(("sans-serif", 14))
            .draw()?;
    }
    root.present()?;
    Ok(())
}
