//! Line charts as PNG, drawn with plotters (OUT/curves.png of a training run).

use anyhow::{Result, anyhow};
use plotters::prelude::*;
use std::path::Path;
use std::sync::Once;

const FONT: &[u8] = include_bytes!("../assets/fonts/DejaVuSansMono.ttf");

fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    });
}

/// One line of a panel: its legend name and (x, y) points.
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

/// A chart with a title and its series, drawn side by side with the others. Two named series are
/// blue and red; more (one per layer) run through a palette from the first layer to the last, with
/// only the first and last named when there are many. Unnamed series repeat the named ones'
/// colours in order (a second line per layer).
pub struct Panel {
    pub title: &'static str,
    pub series: Vec<Series>,
}

fn color(i: usize, n: usize) -> RGBAColor {
    if n <= 2 {
        return [BLUE, RED][i].to_rgba();
    }
    // Hue from red (first layer) through green to violet (last).
    HSLColor(0.8 * i as f64 / (n - 1) as f64, 0.75, 0.45).to_rgba()
}

/// Panels side by side in one PNG, x from 0 to the largest x, y from min(0, values) up.
pub fn panels(path: &Path, x_desc: &str, panels: &[Panel]) -> Result<()> {
    register_font();
    let err = |e: &dyn std::fmt::Display| anyhow!("{}: cannot draw curves: {e}", path.display());
    let root = BitMapBackend::new(path, (500 * panels.len() as u32, 420)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let areas = root.split_evenly((1, panels.len()));
    for (area, panel) in areas.iter().zip(panels) {
        let points = || panel.series.iter().flat_map(|s| s.points.iter());
        let x_max = points().map(|p| p.0).fold(1.0, f64::max);
        let lo = points().map(|p| p.1).fold(f64::INFINITY, f64::min).min(0.0);
        let hi = points().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max).max(lo + 1e-6) * 1.05;
        let mut chart = ChartBuilder::on(area)
            .caption(panel.title, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(52)
            .build_cartesian_2d(0.0..x_max, lo..hi)
            .map_err(|e| err(&e))?;
        chart.configure_mesh().x_desc(x_desc).draw().map_err(|e| err(&e))?;
        let n = panel.series.iter().filter(|s| !s.name.is_empty()).count().max(1);
        for (i, series) in panel.series.iter().enumerate() {
            let color = color(i % n, n);
            let line = chart
                .draw_series(LineSeries::new(series.points.clone(), color.stroke_width(2)))
                .map_err(|e| err(&e))?;
            if !series.name.is_empty() && (n <= 8 || i == 0 || i == n - 1) {
                line.label(series.name.as_str())
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2)));
            }
            let dots = series.points.iter().map(|p| Circle::new(*p, 3, color.filled()));
            chart.draw_series(dots).map_err(|e| err(&e))?;
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(|e| err(&e))?;
    }
    root.present().map_err(|e| err(&e))?;
    Ok(())
}
