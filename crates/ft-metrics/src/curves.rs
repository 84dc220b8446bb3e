//! Training curves — loss and evaluation metrics against the optimizer step — as PNG, for
//! training reports. Same drawing stack as [`crate::plot`] (plotters without C libraries, the
//! bundled DejaVu Sans).

use std::io::Cursor;

use plotters::prelude::*;

use crate::error::{MetricsError, Result};
use crate::plot::{FAMILY, ensure_font};

/// One named line: `(x, y)` points.
#[derive(Debug, Clone)]
pub struct Series {
    /// Legend label.
    pub name: String,
    /// Points, in x order.
    pub points: Vec<(f64, f64)>,
}

fn err(message: impl Into<String>) -> MetricsError {
    MetricsError::Plot { what: "the training curves".into(), message: message.into() }
}

const COLORS: [RGBColor; 6] =
    [RGBColor(31, 119, 180), RGBColor(255, 127, 14), RGBColor(44, 160, 44), RGBColor(214, 39, 40), RGBColor(148, 103, 189), RGBColor(140, 86, 75)];

/// Draws the series on one chart (800 × 480 px) and returns PNG bytes. Non-finite points are
/// skipped; at least one finite point is needed.
pub fn line_chart_png(title: &str, x_label: &str, y_label: &str, series: &[Series]) -> Result<Vec<u8>> {
    ensure_font()?;
    let finite: Vec<(f64, f64)> =
        series.iter().flat_map(|s| s.points.iter().copied()).filter(|(x, y)| x.is_finite() && y.is_finite()).collect();
    if finite.is_empty() {
        return Err(err("no finite points to draw"));
    }
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for (x, y) in &finite {
        x0 = x0.min(*x);
        x1 = x1.max(*x);
        y0 = y0.min(*y);
        y1 = y1.max(*y);
    }
    if x1 <= x0 {
        x1 = x0 + 1.0;
    }
    let pad = ((y1 - y0) * 0.05).max(1e-6);
    let (y0, y1) = (y0 - pad, y1 + pad);
    let (w, h) = (800u32, 480u32);
    let mut buf = vec![0u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        let draw = || -> std::result::Result<(), Box<dyn std::error::Error + '_>> {
            root.fill(&WHITE)?;
            let mut chart = ChartBuilder::on(&root)
                .caption(title, (FAMILY, 22))
                .margin(16)
                .x_label_area_size(44)
                .y_label_area_size(64)
                .build_cartesian_2d(x0..x1, y0..y1)?;
            chart.configure_mesh().x_desc(x_label).y_desc(y_label).label_style((FAMILY, 14)).draw()?;
            for (i, s) in series.iter().enumerate() {
                let color = COLORS[i % COLORS.len()];
                let pts: Vec<(f64, f64)> = s.points.iter().copied().filter(|(x, y)| x.is_finite() && y.is_finite()).collect();
                chart
                    .draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))?
                    .label(s.name.clone())
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2)));
                chart.draw_series(pts.into_iter().map(|p| Circle::new(p, 3, color.filled())))?;
            }
            chart.configure_series_labels().background_style(WHITE.mix(0.8)).border_style(BLACK).label_font((FAMILY, 14)).draw()?;
            root.present()?;
            Ok(())
        };
        draw().map_err(|e| err(e.to_string()))?;
    }
    let img = image::RgbImage::from_raw(w, h, buf).ok_or_else(|| err("pixel buffer size"))?;
    let mut png = Vec::new();
    img.write_to(&mut Cursor::new(&mut png), image::ImageFormat::Png).map_err(|e| err(format!("encoding PNG: {e}")))?;
    Ok(png)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn draws_a_png() {
        let s = vec![
            Series { name: "loss".into(), points: vec![(50.0, 1.2), (100.0, 0.8), (150.0, 0.5)] },
            Series { name: "eval_loss".into(), points: vec![(125.0, 0.6), (250.0, f64::NAN)] },
        ];
        let png = line_chart_png("AG News", "step", "loss", &s).unwrap();
        assert_eq!(&png[1..4], b"PNG");
        assert!(line_chart_png("x", "x", "y", &[Series { name: "e".into(), points: vec![] }]).is_err());
    }
}
