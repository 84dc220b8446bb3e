//! Confusion-matrix heatmaps, as PNG and SVG: class names on the axes (true label down the left,
//! predicted label along the bottom), the count in every cell, darker blue for larger counts — the
//! picture scikit-learn's `ConfusionMatrixDisplay` draws.
//!
//! Drawn with `plotters` (no default features: no font-kit, fontconfig or freetype) and text
//! rendered by `ab_glyph` with the bundled DejaVu Sans (`assets/DejaVuSans.ttf`, Bitstream Vera
//! license in `assets/DejaVuSans-LICENSE.txt`). SVG text names the `sans-serif` family.

use std::io::Cursor;
use std::path::Path;
use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::{FontStyle, FontTransform, register_font};

use crate::error::{MetricsError, Result};

pub(crate) static FONT: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");
pub(crate) const FAMILY: &str = "sans-serif";

pub(crate) fn ensure_font() -> Result<()> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    if *REGISTERED.get_or_init(|| register_font(FAMILY, FontStyle::Normal, FONT).is_ok()) {
        Ok(())
    } else {
        Err(plot_err("the bundled DejaVu Sans font could not be read"))
    }
}

fn plot_err(message: impl Into<String>) -> MetricsError {
    MetricsError::Plot { what: "the confusion matrix".into(), message: message.into() }
}

/// What to draw: the matrix, its class names and an optional title.
#[derive(Debug, Clone, Copy)]
pub struct Heatmap<'a, S: AsRef<str>> {
    /// The square matrix: `matrix[i][j]` is the count of true class `i` predicted as class `j`
    /// (counts or normalised values, as [`crate::classification::confusion_matrix`] gives them).
    pub matrix: &'a [Vec<f64>],
    /// One name per class, in matrix order.
    pub class_names: &'a [S],
    /// A title above the matrix.
    pub title: Option<&'a str>,
}

/// Pixel sizes of the picture's parts.
struct Layout {
    n: usize,
    cell: u32,
    left: u32,
    top: u32,
    width: u32,
    height: u32,
    rotate_x: bool,
    title_w: u32,
}

const LABEL_SIZE: f64 = 17.0;
const AXIS_SIZE: f64 = 19.0;
const TITLE_SIZE: f64 = 24.0;
const MARGIN: u32 = 16;

fn text_width(text: &str, size: f64) -> Result<u32> {
    let font: FontDesc<'_> = (FAMILY, size).into_font();
    font.box_size(text).map(|(w, _)| w).map_err(|e| plot_err(format!("measuring text: {e}")))
}

fn validate<S: AsRef<str>>(h: &Heatmap<'_, S>) -> Result<()> {
    let n = h.matrix.len();
    if n == 0 {
        return Err(MetricsError::empty("matrix"));
    }
    if let Some(i) = h.matrix.iter().position(|r| r.len() != n) {
        return Err(MetricsError::input(format!("matrix[{i}]"), format!("the matrix must be square ({n}x{n})")));
    }
    crate::error::check_same_len("class_names", h.class_names.len(), "matrix", n)?;
    if h.matrix.iter().flatten().any(|x| !x.is_finite()) {
        return Err(MetricsError::input("matrix", "every value must be a finite number"));
    }
    Ok(())
}

fn layout<S: AsRef<str>>(h: &Heatmap<'_, S>) -> Result<Layout> {
    let n = h.matrix.len();
    let mut name_w = 0;
    for name in h.class_names {
        name_w = name_w.max(text_width(name.as_ref(), LABEL_SIZE)?);
    }
    let value_w = h
        .matrix
        .iter()
        .flatten()
        .map(|&v| text_width(&format_value(v, is_counts(h.matrix)), LABEL_SIZE))
        .try_fold(0, |a, w| w.map(|w| a.max(w)))?;
    let cell = (640 / n as u32).clamp(36, 90).max(value_w + 8);
    let rotate_x = name_w + 6 > cell;
    let x_labels_h = if rotate_x { name_w + 8 } else { LABEL_SIZE as u32 + 8 };
    let title_h = if h.title.is_some() { TITLE_SIZE as u32 + 16 } else { 0 };
    let left = MARGIN + AXIS_SIZE as u32 + 12 + name_w + 8;
    let top = MARGIN + title_h;
    let title_w = match h.title {
        Some(t) => text_width(t, TITLE_SIZE)?,
        None => 0,
    };
    // Wide enough for the title too (a long title is not clipped).
    let width = (left + cell * n as u32 + MARGIN).max(title_w + 2 * MARGIN);
    let height = top + cell * n as u32 + x_labels_h + AXIS_SIZE as u32 + 12 + MARGIN;
    Ok(Layout { n, cell, left, top, width, height, rotate_x, title_w })
}

fn is_counts(matrix: &[Vec<f64>]) -> bool {
    matrix.iter().flatten().all(|x| x.fract() == 0.0)
}

fn format_value(v: f64, counts: bool) -> String {
    if counts { format!("{v:.0}") } else { format!("{v:.2}") }
}

/// matplotlib's "Blues" from its lightest to its darkest shade, by `t` in [0, 1].
fn blues(t: f64) -> RGBColor {
    const STOPS: [(u8, u8, u8); 5] = [(247, 251, 255), (198, 219, 239), (107, 174, 214), (33, 113, 181), (8, 48, 107)];
    let t = t.clamp(0.0, 1.0) * (STOPS.len() - 1) as f64;
    let i = (t.floor() as usize).min(STOPS.len() - 2);
    let f = t - i as f64;
    let mix = |a: u8, b: u8| (a as f64 + (b as f64 - a as f64) * f).round() as u8;
    let (a, b) = (STOPS[i], STOPS[i + 1]);
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

fn draw<DB: DrawingBackend, S: AsRef<str>>(
    root: &DrawingArea<DB, Shift>,
    h: &Heatmap<'_, S>,
    l: &Layout,
) -> std::result::Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    root.fill(&WHITE)?;
    let max = h.matrix.iter().flatten().fold(0.0f64, |a, &b| a.max(b));
    let counts = is_counts(h.matrix);
    let label_font = (FAMILY, LABEL_SIZE).into_font();
    let (cell, left, top) = (l.cell as i32, l.left as i32, l.top as i32);
    let grid = cell * l.n as i32;

    if let Some(title) = h.title {
        let style = (FAMILY, TITLE_SIZE).into_font().color(&BLACK).pos(Pos::new(HPos::Center, VPos::Top));
        // Centred over the grid, moved inwards as far as the title needs to fit in the picture.
        let half = l.title_w as i32 / 2;
        let x = (left + grid / 2).min(l.width as i32 - MARGIN as i32 - half).max(MARGIN as i32 + half);
        root.draw(&Text::new(title.to_string(), (x, MARGIN as i32), style))?;
    }
    for (i, row) in h.matrix.iter().enumerate() {
        for (j, &v) in row.iter().enumerate() {
            let t = if max > 0.0 { v / max } else { 0.0 };
            let (x0, y0) = (left + j as i32 * cell, top + i as i32 * cell);
            root.draw(&Rectangle::new([(x0, y0), (x0 + cell, y0 + cell)], blues(t).filled()))?;
            let color = if t > 0.5 { WHITE } else { BLACK };
            let style = label_font.clone().color(&color).pos(Pos::new(HPos::Center, VPos::Center));
            root.draw(&Text::new(format_value(v, counts), (x0 + cell / 2, y0 + cell / 2), style))?;
        }
    }
    root.draw(&Rectangle::new([(left, top), (left + grid, top + grid)], BLACK.stroke_width(1)))?;

    // Class names: true labels right-aligned left of each row, predicted labels under each column.
    for (k, name) in h.class_names.iter().enumerate() {
        let c = k as i32 * cell + cell / 2;
        let style = label_font.clone().color(&BLACK).pos(Pos::new(HPos::Right, VPos::Center));
        root.draw(&Text::new(name.as_ref().to_string(), (left - 8, top + c), style))?;
        let (pos, transform) = if l.rotate_x {
            (Pos::new(HPos::Right, VPos::Center), FontTransform::Rotate270)
        } else {
            (Pos::new(HPos::Center, VPos::Top), FontTransform::None)
        };
        let style = label_font.clone().transform(transform).color(&BLACK).pos(pos);
        root.draw(&Text::new(name.as_ref().to_string(), (left + c, top + grid + 8), style))?;
    }
    // Axis titles.
    let axis = (FAMILY, AXIS_SIZE).into_font().color(&BLACK);
    let bottom = l.height as i32 - MARGIN as i32;
    root.draw(&Text::new(
        "Predicted label".to_string(),
        (left + grid / 2, bottom),
        axis.clone().pos(Pos::new(HPos::Center, VPos::Bottom)),
    ))?;
    let y_style = (FAMILY, AXIS_SIZE)
        .into_font()
        .transform(FontTransform::Rotate270)
        .color(&BLACK)
        .pos(Pos::new(HPos::Center, VPos::Top));
    root.draw(&Text::new("True label".to_string(), (MARGIN as i32, top + grid / 2), y_style))?;
    root.present()
}

/// The heatmap as PNG bytes.
pub fn confusion_matrix_png<S: AsRef<str>>(heatmap: &Heatmap<'_, S>) -> Result<Vec<u8>> {
    validate(heatmap)?;
    ensure_font()?;
    let l = layout(heatmap)?;
    let mut buf = vec![0u8; l.width as usize * l.height as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (l.width, l.height)).into_drawing_area();
        draw(&root, heatmap, &l).map_err(|e| plot_err(e.to_string()))?;
    }
    let img = image::RgbImage::from_raw(l.width, l.height, buf).ok_or_else(|| plot_err("pixel buffer size"))?;
    let mut png = Vec::new();
    img.write_to(&mut Cursor::new(&mut png), image::ImageFormat::Png)
        .map_err(|e| plot_err(format!("encoding PNG: {e}")))?;
    Ok(png)
}

/// The heatmap as an SVG document.
pub fn confusion_matrix_svg<S: AsRef<str>>(heatmap: &Heatmap<'_, S>) -> Result<String> {
    validate(heatmap)?;
    ensure_font()?;
    let l = layout(heatmap)?;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (l.width, l.height)).into_drawing_area();
        draw(&root, heatmap, &l).map_err(|e| plot_err(e.to_string()))?;
    }
    Ok(svg)
}

/// Writes the heatmap to `path`, as PNG or SVG by the file's extension (`.png` or `.svg`).
pub fn save_confusion_matrix<S: AsRef<str>>(path: &Path, heatmap: &Heatmap<'_, S>) -> Result<()> {
    let ext = path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
    let bytes = match ext.as_deref() {
        Some("png") => confusion_matrix_png(heatmap)?,
        Some("svg") => confusion_matrix_svg(heatmap)?.into_bytes(),
        _ => {
            return Err(MetricsError::arg("path", format!("`{}` should end in .png or .svg", path.display())));
        }
    };
    write_atomic(path, &bytes).map_err(|source| MetricsError::Io { path: path.display().to_string(), error: source })
}

/// Writes through a hidden temporary file in the same folder, synced, then renamed (as
/// `ft_hub::tensors::write_atomic`, which this crate does not depend on: it would bring Burn): a failed
/// write (a full disk) never leaves a partial picture under `path`, nor replaces an older one.
fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.partial-{}", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn sample() -> (Vec<Vec<f64>>, Vec<&'static str>) {
        (vec![vec![50.0, 2.0, 0.0], vec![5.0, 40.0, 7.0], vec![0.0, 3.0, 61.0]], vec!["World", "Sports", "Sci/Tech"])
    }

    #[test]
    fn png_and_svg() {
        let (m, names) = sample();
        let h = Heatmap { matrix: &m, class_names: &names, title: Some("AG News") };
        let png = confusion_matrix_png(&h).unwrap();
        assert_eq!(&png[1..4], b"PNG");
        let img = image::load_from_memory(&png).unwrap();
        assert!(img.width() > 200 && img.height() > 200);
        let svg = confusion_matrix_svg(&h).unwrap();
        assert!(svg.starts_with("<svg"));
        for text in ["Sci/Tech", "Predicted label", "True label", "\n61\n", "AG News"] {
            assert!(svg.contains(text), "{text} missing from the SVG");
        }
    }

    #[test]
    fn long_names_and_fractions() {
        let m = vec![vec![0.25, 0.75], vec![1.0, 0.0]];
        let names = ["a rather long class name", "another long class name"];
        let h = Heatmap { matrix: &m, class_names: &names, title: None };
        let svg = confusion_matrix_svg(&h).unwrap();
        assert!(svg.contains("0.75"));
        assert!(confusion_matrix_png(&h).is_ok());
    }

    #[test]
    fn bad_shapes_are_errors() {
        let m = vec![vec![1.0, 2.0]];
        let names = ["a"];
        assert!(confusion_matrix_png(&Heatmap { matrix: &m, class_names: &names, title: None }).is_err());
        let m = vec![vec![1.0]];
        let names = ["a", "b"];
        assert!(confusion_matrix_svg(&Heatmap { matrix: &m, class_names: &names, title: None }).is_err());
        let m = vec![vec![1.0]];
        let names = ["a"];
        let h = Heatmap { matrix: &m, class_names: &names, title: None };
        assert!(save_confusion_matrix(Path::new("x.jpg"), &h).is_err());
    }

    #[test]
    fn a_long_title_widens_the_picture() {
        ensure_font().unwrap();
        let (m, names) = sample();
        let short = layout(&Heatmap { matrix: &m, class_names: &names, title: Some("AG") }).unwrap();
        let title = "§4 Full fine-tuning (AG News): confusion matrix of the final evaluation";
        let long = layout(&Heatmap { matrix: &m, class_names: &names, title: Some(title) }).unwrap();
        assert!(long.width >= long.title_w + 2 * MARGIN && long.width > short.width, "{} {}", long.width, long.title_w);
    }
}
