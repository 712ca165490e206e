//! The two pictures of `gmm_vi`, drawn with plotters into PNG files:
//!
//! - the clusters: the points (first two dimensions) coloured by their most probable component,
//!   each fitted component as circles of radius σ̂_k and 2σ̂_k around μ̂_k (posterior means), the
//!   true means marked × (for D = 1: a histogram stacked by component, under the fitted densities
//!   w_k N(x | μ_k, σ_k²) and their sum);
//! - the ELBO trace: every step's one-sample estimate and its moving average, the other restarts'
//!   moving averages in grey.
//!
//! Text uses DejaVu Sans, registered at run time from [`FONT`]; without it the plots are drawn
//! with no text at all.

#[path = "../common/font.rs"]
mod font;
pub use font::{register_font, FONT};

use std::error::Error;
use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::Mixture;

/// Tableau 10, a palette designed for categories (distinct in hue, similar in weight).
const PALETTE: [RGBColor; 10] = [
    RGBColor(0x4e, 0x79, 0xa7),
    RGBColor(0xf2, 0x8e, 0x2b),
    RGBColor(0xe1, 0x57, 0x59),
    RGBColor(0x76, 0xb7, 0xb2),
    RGBColor(0x59, 0xa1, 0x4f),
    RGBColor(0xed, 0xc9, 0x48),
    RGBColor(0xb0, 0x7a, 0xa1),
    RGBColor(0xff, 0x9d, 0xa7),
    RGBColor(0x9c, 0x75, 0x5f),
    RGBColor(0xba, 0xb0, 0xac),
];
const INK: RGBColor = RGBColor(0x22, 0x22, 0x22);
const GRID: RGBColor = RGBColor(0xe4, 0xe4, 0xe4);

type PlotResult = Result<(), Box<dyn Error>>;

/// Colour of component k.
pub fn colour(k: usize) -> RGBColor {
    PALETTE[k % PALETTE.len()]
}

/// What the cluster plot shows.
pub struct Clusters<'a> {
    /// The points, N rows of D values.
    pub x: &'a [Vec<f64>],
    /// The most probable component of each point, in the order of `estimate`.
    pub labels: &'a [usize],
    /// Posterior means of the parameters.
    pub estimate: &'a Mixture,
    /// The truth, if known (same component order as `estimate`).
    pub truth: Option<&'a Mixture>,
    /// The title.
    pub title: String,
}

/// Draws a title and a smaller subtitle, centred in `area` (the band above a chart).
fn draw_title<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, title: &str, subtitle: &str) -> PlotResult
where
    DB::ErrorType: 'static,
{
    let (w, _) = area.dim_in_pixel();
    let centre = |size: f64| ("sans-serif", size).into_font().color(&INK).pos(Pos::new(HPos::Center, VPos::Top));
    area.draw(&Text::new(title.to_string(), (w as i32 / 2, 12), centre(24.0)))?;
    area.draw(&Text::new(subtitle.to_string(), (w as i32 / 2, 44), centre(16.0).color(&RGBColor(0x55, 0x55, 0x55))))?;
    Ok(())
}

/// Points of the circle of radius r around (cx, cy), closed.
fn circle(cx: f64, cy: f64, r: f64) -> Vec<(f64, f64)> {
    (0..=120)
        .map(|i| {
            let t = i as f64 / 120.0 * std::f64::consts::TAU;
            (cx + r * t.cos(), cy + r * t.sin())
        })
        .collect()
}

/// `lo..hi` widened by `pad` of its span on each side (by 1 if it is empty).
fn padded(lo: f64, hi: f64, pad: f64) -> (f64, f64) {
    let span = if hi > lo { hi - lo } else { 1.0 };
    (lo - pad * span, hi + pad * span)
}

/// The cluster plot (D ≥ 2: first two dimensions; D = 1: stacked histogram and densities).
pub fn clusters(path: &Path, plot: &Clusters<'_>, text: bool) -> Result<(), String> {
    let drawn =
        if plot.x.first().map_or(0, |r| r.len()) >= 2 { scatter(path, plot, text) } else { density(path, plot, text) };
    drawn.map_err(|e| e.to_string())
}

fn subtitle(plot: &Clusters<'_>) -> String {
    let d = plot.x.first().map_or(0, |r| r.len());
    let dims = if d > 2 { format!(", first 2 of D = {d} dimensions") } else { String::new() };
    let truth = if plot.truth.is_some() { "; × true means" } else { "" };
    format!("N = {} points coloured by most probable component{dims}{truth}", plot.x.len())
}

/// A legend entry's symbol.
enum Symbol {
    Dot(RGBColor),
    Line { dashed: bool },
    Mean,
    Cross,
}

/// Draws a legend of symbols and lines of text down a side panel (pixel coordinates).
fn side_legend<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, entries: &[(Option<Symbol>, String)]) -> PlotResult
where
    DB::ErrorType: 'static,
{
    let font = ("sans-serif", 16).into_font().color(&INK);
    let mut y = 30;
    for (symbol, label) in entries {
        let (x, cy) = (14, y + 9);
        match symbol {
            Some(Symbol::Dot(c)) => area.draw(&Circle::new((x + 10, cy), 6, c.mix(0.8).filled()))?,
            Some(Symbol::Line { dashed: false }) => {
                area.draw(&PathElement::new(vec![(x, cy), (x + 22, cy)], INK.stroke_width(3)))?
            }
            Some(Symbol::Line { dashed: true }) => {
                for start in [x, x + 9, x + 18] {
                    area.draw(&PathElement::new(vec![(start, cy), (start + 5, cy)], INK.stroke_width(2)))?;
                }
            }
            Some(Symbol::Mean) => area.draw(&Circle::new((x + 10, cy), 5, INK.filled()))?,
            Some(Symbol::Cross) => area.draw(&Cross::new((x + 10, cy), 7, INK.stroke_width(3)))?,
            None => {}
        }
        if !label.is_empty() {
            area.draw(&Text::new(label.clone(), (x + 34, y), font.clone()))?;
        }
        y += 26;
    }
    Ok(())
}

/// A tick label: whole numbers without decimals, others with one.
fn tick(v: &f64) -> String {
    if (v - v.round()).abs() < 1e-9 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

fn scatter(path: &Path, plot: &Clusters<'_>, text: bool) -> PlotResult {
    const W: u32 = 1200;
    const H: u32 = 880;
    const SIDE: u32 = 300;
    const TOP: u32 = 72;
    const MARGIN: u32 = 18;
    const X_AREA: u32 = 50;
    const Y_AREA: u32 = 60;
    let est = plot.estimate;
    let k = est.weights.len();

    // data range, fitted 2σ circles and true means included, then equal units per pixel on both axes
    let mut xs: Vec<f64> = plot.x.iter().map(|r| r[0]).collect();
    let mut ys: Vec<f64> = plot.x.iter().map(|r| r[1]).collect();
    for c in 0..k {
        let (m, r) = (&est.means[c], 2.0 * est.scales[c]);
        if m.iter().chain([&r]).all(|v| v.is_finite()) {
            xs.extend([m[0] - r, m[0] + r]);
            ys.extend([m[1] - r, m[1] + r]);
        }
    }
    if let Some(t) = plot.truth {
        xs.extend(t.means.iter().map(|m| m[0]));
        ys.extend(t.means.iter().map(|m| m[1]));
    }
    let range = |v: &[f64]| {
        let lo = v.iter().copied().filter(|x| x.is_finite()).fold(f64::INFINITY, f64::min);
        let hi = v.iter().copied().filter(|x| x.is_finite()).fold(f64::NEG_INFINITY, f64::max);
        if lo.is_finite() {
            padded(lo, hi, 0.04)
        } else {
            (-1.0, 1.0)
        }
    };
    let ((x0, x1), (y0, y1)) = (range(&xs), range(&ys));
    let (pw, ph) = ((W - SIDE - 2 * MARGIN - Y_AREA) as f64, (H - TOP - 2 * MARGIN - X_AREA) as f64);
    let unit = ((x1 - x0) / pw).max((y1 - y0) / ph);
    let (cx, cy) = ((x0 + x1) / 2.0, (y0 + y1) / 2.0);
    let (x0, x1) = (cx - unit * pw / 2.0, cx + unit * pw / 2.0);
    let (y0, y1) = (cy - unit * ph / 2.0, cy + unit * ph / 2.0);

    let root = BitMapBackend::new(path, (W, H)).into_drawing_area();
    root.fill(&WHITE)?;
    let (top, body) = root.split_vertically(TOP);
    let (body, side) = body.split_horizontally(W - SIDE);
    if text {
        draw_title(&top, &plot.title, &subtitle(plot))?;
    }
    let mut builder = ChartBuilder::on(&body);
    builder.margin(MARGIN);
    builder.x_label_area_size(X_AREA).y_label_area_size(Y_AREA); // without text they hold only the axes
    let mut chart = builder.build_cartesian_2d(x0..x1, y0..y1)?;
    let mut mesh = chart.configure_mesh();
    mesh.bold_line_style(GRID).light_line_style(WHITE).axis_style(INK);
    if text {
        mesh.x_desc("x₀")
            .y_desc("x₁")
            .x_label_formatter(&tick)
            .y_label_formatter(&tick)
            .label_style(("sans-serif", 15))
            .axis_desc_style(("sans-serif", 17));
    } else {
        mesh.x_labels(0).y_labels(0);
    }
    mesh.draw()?;

    // the points, light, under everything else
    for c in 0..k.max(1) {
        let style = colour(c).mix(0.45).filled();
        let points = plot.x.iter().zip(plot.labels).filter(|(_, &l)| l == c).map(|(r, _)| (r[0], r[1]));
        chart.draw_series(points.map(|p| Circle::new(p, 3, style)))?;
    }
    // fitted components: 2σ dashed, 1σ solid, the mean as a dot
    for c in 0..k {
        let (m, s) = (&est.means[c], est.scales[c]);
        if !(m[0].is_finite() && m[1].is_finite() && s.is_finite()) {
            continue;
        }
        let dark = colour(c).mix(1.0);
        chart.draw_series(DashedLineSeries::new(circle(m[0], m[1], 2.0 * s), 8, 5, dark.stroke_width(2)))?;
        chart.draw_series(LineSeries::new(circle(m[0], m[1], s), dark.stroke_width(3)))?;
        chart.draw_series(std::iter::once(Circle::new((m[0], m[1]), 5, INK.filled())))?;
    }
    if let Some(t) = plot.truth {
        chart.draw_series(t.means.iter().map(|m| Cross::new((m[0], m[1]), 9, INK.stroke_width(3))))?;
    }
    if text {
        let mut entries: Vec<(Option<Symbol>, String)> = vec![(None, "fitted (posterior means)".into())];
        for c in 0..k.min(PALETTE.len()) {
            let (w, s, m) = (est.weights[c], est.scales[c], &est.means[c]);
            entries.push((Some(Symbol::Dot(colour(c))), format!("{c}: w = {w:.2}, σ = {s:.2}")));
            entries.push((None, format!("μ = ({:.2}, {:.2})", m[0], m[1])));
        }
        if k > PALETTE.len() {
            entries.push((None, format!("… {} more; colours repeat", k - PALETTE.len())));
        }
        entries.push((None, String::new()));
        entries.push((Some(Symbol::Line { dashed: false }), "circle of radius σ".into()));
        entries.push((Some(Symbol::Line { dashed: true }), "circle of radius 2σ".into()));
        entries.push((Some(Symbol::Mean), "fitted mean μ".into()));
        if plot.truth.is_some() {
            entries.push((Some(Symbol::Cross), "true mean".into()));
        }
        side_legend(&side, &entries)?;
    }
    root.present()?;
    Ok(())
}

/// w N(x | μ, σ²).
fn weighted_normal(x: f64, w: f64, mu: f64, sigma: f64) -> f64 {
    let z = (x - mu) / sigma;
    w * (-0.5 * z * z).exp() / (sigma * (std::f64::consts::TAU).sqrt())
}

fn density(path: &Path, plot: &Clusters<'_>, text: bool) -> PlotResult {
    const W: u32 = 1000;
    const H: u32 = 620;
    const BINS: usize = 60;
    let est = plot.estimate;
    let k = est.weights.len();
    let xs: Vec<f64> = plot.x.iter().filter_map(|r| r.first().copied()).collect();
    let lo = xs.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = xs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let (x0, x1) = if lo.is_finite() { padded(lo, hi, 0.05) } else { (-1.0, 1.0) };
    let width = (x1 - x0) / BINS as f64;
    // counts[bin][component], as densities (each bar's area is its share of the points)
    let mut counts = vec![vec![0.0; k.max(1)]; BINS];
    let scale = 1.0 / (xs.len().max(1) as f64 * width);
    for (x, &l) in xs.iter().zip(plot.labels) {
        let b = (((x - x0) / width) as usize).min(BINS - 1);
        counts[b][l.min(k.max(1) - 1)] += scale;
    }
    let grid: Vec<f64> = (0..=400).map(|i| x0 + (x1 - x0) * i as f64 / 400.0).collect();
    let mixture = |m: &Mixture, x: f64| -> f64 {
        (0..m.weights.len()).map(|c| weighted_normal(x, m.weights[c], m.means[c][0], m.scales[c])).sum()
    };
    let top_bar = counts.iter().map(|b| b.iter().sum::<f64>()).fold(0.0, f64::max);
    let top_curve = grid.iter().map(|&x| mixture(est, x)).fold(0.0, f64::max);
    let y1 = 1.1 * top_bar.max(top_curve).max(1e-12);

    let root = BitMapBackend::new(path, (W, H)).into_drawing_area();
    root.fill(&WHITE)?;
    let (top, body) = root.split_vertically(72);
    if text {
        draw_title(&top, &plot.title, &subtitle(plot))?;
    }
    let mut builder = ChartBuilder::on(&body);
    builder.margin(18);
    builder.x_label_area_size(50).y_label_area_size(70);
    let mut chart = builder.build_cartesian_2d(x0..x1, 0.0..y1)?;
    let mut mesh = chart.configure_mesh();
    mesh.bold_line_style(GRID).light_line_style(WHITE).axis_style(INK);
    if text {
        mesh.x_desc("x")
            .y_desc("density")
            .x_label_formatter(&tick)
            .label_style(("sans-serif", 15))
            .axis_desc_style(("sans-serif", 17));
    } else {
        mesh.x_labels(0).y_labels(0);
    }
    mesh.draw()?;
    for (b, shares) in counts.iter().enumerate() {
        let left = x0 + b as f64 * width;
        let mut base = 0.0;
        for (c, h) in shares.iter().enumerate() {
            if *h > 0.0 {
                let bar = Rectangle::new([(left, base), (left + width, base + h)], colour(c).mix(0.45).filled());
                chart.draw_series(std::iter::once(bar))?;
                base += h;
            }
        }
    }
    for c in 0..k {
        let curve = grid.iter().map(|&x| (x, weighted_normal(x, est.weights[c], est.means[c][0], est.scales[c])));
        let series = chart.draw_series(LineSeries::new(curve, colour(c).stroke_width(3)))?;
        if text && k <= PALETTE.len() {
            let (w, m, s) = (est.weights[c], est.means[c][0], est.scales[c]);
            series
                .label(format!("component {c}: w = {w:.2}, μ = {m:.2}, σ = {s:.2}"))
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour(c).stroke_width(3)));
        }
    }
    let total = chart.draw_series(LineSeries::new(grid.iter().map(|&x| (x, mixture(est, x))), INK.stroke_width(2)))?;
    if text {
        total.label("fitted mixture").legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], INK.stroke_width(2)));
    }
    if let Some(t) = plot.truth {
        let curve = grid.iter().map(|&x| (x, mixture(t, x)));
        let series = chart.draw_series(DashedLineSeries::new(curve, 8, 5, INK.mix(0.6).stroke_width(2)))?;
        if text {
            series
                .label("true mixture")
                .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], INK.mix(0.6).stroke_width(2)));
        }
    }
    if text {
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(0xaa, 0xaa, 0xaa))
            .label_font(("sans-serif", 15))
            .draw()?;
    }
    root.present()?;
    Ok(())
}

/// What the trace plot shows.
pub struct Trace<'a> {
    /// The per-step ELBO estimates of every fit (NaN for skipped steps).
    pub traces: &'a [&'a [f64]],
    /// The fit that was kept.
    pub best: usize,
    /// Steps in the moving average.
    pub window: usize,
    /// The title.
    pub title: String,
    /// The kept fit's final ELBO and its standard error.
    pub final_elbo: (f64, f64),
}

/// The centred moving average: at step i, the mean of the finite values among steps
/// i − ⌊w/2⌋ … i + ⌊w/2⌋ (fewer at the ends; NaN where there are none). Centred, it does not lag.
pub fn moving_average(trace: &[f64], window: usize) -> Vec<f64> {
    let half = window / 2;
    // prefix sums and counts of the finite values
    let (mut sum, mut count) = (vec![0.0; trace.len() + 1], vec![0usize; trace.len() + 1]);
    for (i, &v) in trace.iter().enumerate() {
        let ok = v.is_finite();
        sum[i + 1] = sum[i] + if ok { v } else { 0.0 };
        count[i + 1] = count[i] + usize::from(ok);
    }
    (0..trace.len())
        .map(|i| {
            let (lo, hi) = (i.saturating_sub(half), (i + half + 1).min(trace.len()));
            match count[hi] - count[lo] {
                0 => f64::NAN,
                n => (sum[hi] - sum[lo]) / n as f64,
            }
        })
        .collect()
}

/// Runs of consecutive points from index `from` on with a finite value inside [lo, hi], as
/// (step, value) lines (steps counted from 1).
fn segments(values: &[f64], from: usize, lo: f64, hi: f64) -> Vec<Vec<(f64, f64)>> {
    let mut out: Vec<Vec<(f64, f64)>> = vec![];
    let mut run = vec![];
    for (i, &v) in values.iter().enumerate().skip(from) {
        if v.is_finite() && (lo..=hi).contains(&v) {
            run.push(((i + 1) as f64, v));
        } else if !run.is_empty() {
            out.push(std::mem::take(&mut run));
        }
    }
    if !run.is_empty() {
        out.push(run);
    }
    out
}

/// The ELBO trace plot, in two panels: the whole fit (its y range leaves out the first 2 % of
/// steps, whose climb from the start would flatten the rest), and a zoom on the second half, where
/// the step-to-step noise of the estimate shows. Lines leaving a panel are cut.
pub fn elbo_trace(path: &Path, plot: &Trace<'_>, text: bool) -> Result<(), String> {
    trace_plot(path, plot, text).map_err(|e| e.to_string())
}

/// The finite values of `v` from index `from` on.
fn finite_from(v: &[f64], from: usize) -> Vec<f64> {
    v.iter().skip(from).copied().filter(|x| x.is_finite()).collect()
}

/// The p-quantile of the values (by sorting; NaN for none).
fn quantile(mut v: Vec<f64>, p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * p).round() as usize]
}

fn trace_plot(path: &Path, plot: &Trace<'_>, text: bool) -> PlotResult {
    const W: u32 = 1000;
    const H: u32 = 860;
    const TOP: u32 = 72;
    let Some(best) = plot.traces.get(plot.best) else { return Ok(()) };
    let smooth: Vec<Vec<f64>> = plot.traces.iter().map(|t| moving_average(t, plot.window)).collect();
    let steps = plot.traces.iter().map(|t| t.len()).max().unwrap_or(0).max(2);

    // whole fit: every fit's moving average after the first 2 % of steps, and the kept fit's raw top
    let burn = steps / 50;
    let lows: Vec<f64> = smooth.iter().flat_map(|s| finite_from(s, burn)).collect();
    let lo = lows.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = finite_from(best, burn).into_iter().chain(lows.iter().copied()).fold(f64::NEG_INFINITY, f64::max);
    let whole = if lo.is_finite() && hi.is_finite() { padded(lo, hi, 0.05) } else { (-1.0, 1.0) };
    // second half: the kept fit's raw values between their 0.5 % and 100 % quantiles
    let half = steps / 2;
    let tail = finite_from(best, half);
    let (lo, hi) = (quantile(tail.clone(), 0.005), quantile(tail, 1.0));
    let zoom = if lo.is_finite() && hi.is_finite() { padded(lo, hi, 0.08) } else { whole };

    let root = BitMapBackend::new(path, (W, H)).into_drawing_area();
    root.fill(&WHITE)?;
    let (top, body) = root.split_vertically(TOP);
    let (upper, lower) = body.split_vertically((H - TOP) / 2);
    if text {
        let (e, se) = plot.final_elbo;
        let more = if plot.traces.len() > 1 {
            format!("; best of {} restarts, the others' moving averages in grey", plot.traces.len())
        } else {
            String::new()
        };
        draw_title(&top, &plot.title, &format!("final ELBO {e:.2} ± {se:.2} (fresh draws){more}"))?;
    }
    trace_panel(&upper, plot, &smooth, (1.0, steps as f64), whole, Some("the whole fit"), text)?;
    trace_panel(&lower, plot, &smooth, ((half + 1) as f64, steps as f64), zoom, None, text)?;
    root.present()?;
    Ok(())
}

/// One panel of the trace plot over steps `x` and ELBO values `y`; with a legend for the whole
/// fit, else titled as the zoom.
fn trace_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    plot: &Trace<'_>,
    smooth: &[Vec<f64>],
    x: (f64, f64),
    y: (f64, f64),
    whole: Option<&str>,
    text: bool,
) -> PlotResult
where
    DB::ErrorType: 'static,
{
    let mut builder = ChartBuilder::on(area);
    builder.margin(14).margin_left(18).margin_right(24);
    builder.x_label_area_size(42).y_label_area_size(80);
    if text {
        builder.caption(whole.unwrap_or("zoom: the second half"), ("sans-serif", 16));
    }
    let mut chart = builder.build_cartesian_2d(x.0..x.1, y.0..y.1)?;
    let mut mesh = chart.configure_mesh();
    mesh.bold_line_style(GRID).light_line_style(WHITE).axis_style(INK);
    if text {
        mesh.x_desc("step")
            .y_desc("ELBO (nats)")
            .x_label_formatter(&|v| format!("{v:.0}"))
            .y_label_formatter(&|v| format!("{v:.0}"))
            .label_style(("sans-serif", 14))
            .axis_desc_style(("sans-serif", 15));
    } else {
        mesh.x_labels(0).y_labels(0);
    }
    mesh.draw()?;
    // only the points with steps in x (1-based)
    let from = (x.0 as usize).saturating_sub(1);
    let grey = RGBColor(0xa0, 0xa0, 0xa0);
    for (i, s) in smooth.iter().enumerate() {
        if i != plot.best {
            for seg in segments(s, from, y.0, y.1) {
                chart.draw_series(LineSeries::new(seg, grey.stroke_width(2)))?;
            }
        }
    }
    let raw = colour(0).mix(0.35);
    for (j, seg) in segments(plot.traces[plot.best], from, y.0, y.1).into_iter().enumerate() {
        let series = chart.draw_series(LineSeries::new(seg, raw.stroke_width(1)))?;
        if text && whole.is_some() && j == 0 {
            series
                .label("ELBO estimate of each step (1 draw of q)")
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], raw.stroke_width(2)));
        }
    }
    let dark = RGBColor(0x1f, 0x3a, 0x5f);
    for (j, seg) in segments(&smooth[plot.best], from, y.0, y.1).into_iter().enumerate() {
        let series = chart.draw_series(LineSeries::new(seg, dark.stroke_width(3)))?;
        if text && whole.is_some() && j == 0 {
            series
                .label(format!("centred moving average over {} steps", plot.window))
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], dark.stroke_width(3)));
        }
    }
    if text && whole.is_some() {
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(0xaa, 0xaa, 0xaa))
            .label_font(("sans-serif", 14))
            .draw()?;
    }
    Ok(())
}
