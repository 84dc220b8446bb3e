//! Draws a confusion-matrix heatmap:
//! `cargo run -p ft-metrics --example confusion_matrix -- OUT.png|OUT.svg [long]`
//! (`long` uses long class names, drawn rotated).

use ft_metrics::classification::confusion_matrix;
use ft_metrics::plot::{Heatmap, save_confusion_matrix};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let out = args.next().unwrap_or_else(|| "confusion_matrix.png".into());
    let names: &[&str] = if args.next().as_deref() == Some("long") {
        &["World politics", "Sports results", "Business & markets", "Science / Technology"]
    } else {
        &["World", "Sports", "Business", "Sci/Tech"]
    };
    let references = [0, 0, 1, 1, 2, 2, 3, 3, 0, 1, 2, 3, 2, 2, 3, 0];
    let predictions = [0, 0, 1, 1, 2, 3, 3, 3, 1, 1, 2, 2, 2, 2, 3, 0];
    let matrix = confusion_matrix(&references, &predictions, None, None, None)?;
    save_confusion_matrix(
        std::path::Path::new(&out),
        &Heatmap { matrix: &matrix, class_names: names, title: Some("AG News (example)") },
    )?;
    println!("wrote {out}");
    Ok(())
}
