//! OUT/curves.png: loss and accuracy against epoch, train and test, drawn with plotters.

use crate::train::EpochMetrics;
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

/// Two panels: loss (left) and accuracy in % (right), train and test lines.
pub fn curves(path: &Path, history: &[EpochMetrics]) -> Result<()> {
    register_font();
    let err = |e: &dyn std::fmt::Display| anyhow!("{}: cannot draw curves: {e}", path.display());
    let root = BitMapBackend::new(path, (1000, 420)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let panels = root.split_evenly((1, 2));
    let epochs = history.len().max(1) as f64;
    type Series = (&'static str, fn(&EpochMetrics) -> f64);
    let sets: [(&str, [Series; 2]); 2] = [
        ("loss", [("train", |m| m.train_loss), ("test", |m| m.test_loss)]),
        ("accuracy (%)", [("train", |m| 100.0 * m.train_accuracy), ("test", |m| 100.0 * m.test_accuracy)]),
    ];
    for (panel, (title, series)) in panels.iter().zip(sets) {
        let values: Vec<f64> = history.iter().flat_map(|m| series.iter().map(move |(_, f)| f(m))).collect();
        let lo = values.iter().cloned().fold(f64::INFINITY, f64::min).min(0.0);
        let hi = values.iter().cloned().fold(f64::NEG_INFINITY, f64::max).max(lo + 1e-6) * 1.05;
        let mut chart = ChartBuilder::on(panel)
            .caption(title, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(52)
            .build_cartesian_2d(0.0..epochs, lo..hi)
            .map_err(|e| err(&e))?;
        chart.configure_mesh().x_desc("epoch").draw().map_err(|e| err(&e))?;
        for ((name, f), color) in series.iter().zip([BLUE, RED]) {
            let pts: Vec<(f64, f64)> = history.iter().map(|m| (m.epoch as f64, f(m))).collect();
            chart
                .draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))
                .map_err(|e| err(&e))?
                .label(*name)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2)));
            chart.draw_series(pts.iter().map(|p| Circle::new(*p, 3, color.filled()))).map_err(|e| err(&e))?;
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
