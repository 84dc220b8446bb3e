//! What a run leaves for people beside the model: the final evaluation's predictions
//! (`eval_predictions.json`), the loss curve (`loss_curve.png`) and, for sequence classification,
//! the confusion matrix (`confusion_matrix.png` and `.svg`). All written atomically.
//!
//! Pictures are a convenience: a picture that cannot be drawn (no finite loss logged, say) is
//! skipped with a warning; a file that cannot be written is an error.

use std::path::Path;

use ft_metrics::classification::confusion_matrix;
use ft_metrics::curves::{Series, line_chart_png};
use ft_metrics::plot::{Heatmap, confusion_matrix_png, confusion_matrix_svg};
use serde_json::{Value, json};

use crate::Result;
use crate::state::{write_atomic, write_json};
use crate::task::Predictions;

/// File names written into the output directory.
pub const EVAL_PREDICTIONS: &str = "eval_predictions.json";
/// The loss curve picture.
pub const LOSS_CURVE: &str = "loss_curve.png";
/// The confusion matrix picture (sequence classification), PNG.
pub const CONFUSION_PNG: &str = "confusion_matrix.png";
/// The confusion matrix picture (sequence classification), SVG.
pub const CONFUSION_SVG: &str = "confusion_matrix.svg";

/// `(step, value)` points of one key of `log_history` (entries without the key are skipped).
pub fn history_series(log_history: &[Value], key: &str) -> Vec<(f64, f64)> {
    log_history.iter().filter_map(|e| Some((e.get("step")?.as_f64()?, e.get(key)?.as_f64()?))).collect()
}

/// Writes `eval_predictions.json` — `{"label_names", "unit", "predictions", "references"}` with
/// class ids (`unit` is `"example"`, or `"token"` for token classification, where the lists hold
/// every labelled token of the evaluation data in order).
pub fn write_predictions(
    dir: &Path,
    predictions: &Predictions,
    label_names: &[String],
    token_task: bool,
) -> Result<()> {
    let value = json!({
        "label_names": label_names,
        "unit": if token_task { "token" } else { "example" },
        "predictions": predictions.predictions,
        "references": predictions.references,
    });
    write_json(&dir.join(EVAL_PREDICTIONS), &value)
}

/// Draws the training and evaluation losses against the step into `loss_curve.png`. Returns
/// whether a picture was written (not when nothing finite was logged).
pub fn write_loss_curve(dir: &Path, log_history: &[Value]) -> Result<bool> {
    let mut series = vec![Series { name: "training loss".into(), points: history_series(log_history, "loss") }];
    let eval = history_series(log_history, "eval_loss");
    if !eval.is_empty() {
        series.push(Series { name: "evaluation loss".into(), points: eval });
    }
    match line_chart_png("Loss", "step", "loss", &series) {
        Ok(png) => {
            write_atomic(&dir.join(LOSS_CURVE), &png)?;
            Ok(true)
        }
        Err(e) => {
            tracing::warn!(error = %e, "no loss curve drawn");
            Ok(false)
        }
    }
}

/// Draws the confusion matrix of `predictions` (class ids; rows are references) with the class
/// names on the axes into `confusion_matrix.png` and `.svg`. Returns whether it was drawn.
pub fn write_confusion_matrix(dir: &Path, predictions: &Predictions, label_names: &[String]) -> Result<bool> {
    let labels: Vec<i64> = (0..label_names.len() as i64).collect();
    let matrix = match confusion_matrix(&predictions.references, &predictions.predictions, Some(&labels), None, None) {
        Ok(m) => m,
        Err(e) => {
            tracing::warn!(error = %e, "no confusion matrix drawn");
            return Ok(false);
        }
    };
    let heatmap = Heatmap { matrix: &matrix, class_names: label_names, title: Some("Confusion matrix (evaluation)") };
    let (png, svg) = match (confusion_matrix_png(&heatmap), confusion_matrix_svg(&heatmap)) {
        (Ok(p), Ok(s)) => (p, s),
        (Err(e), _) | (_, Err(e)) => {
            tracing::warn!(error = %e, "no confusion matrix drawn");
            return Ok(false);
        }
    };
    write_atomic(&dir.join(CONFUSION_PNG), &png)?;
    write_atomic(&dir.join(CONFUSION_SVG), svg.as_bytes())?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn history() -> Vec<Value> {
        vec![
            json!({"step": 4, "loss": 0.9, "learning_rate": 1e-3}),
            json!({"step": 8, "loss": 0.5}),
            json!({"step": 8, "eval_loss": 0.6, "eval_accuracy": 0.75}),
            json!({"step": 8, "train_runtime": 1.0}),
        ]
    }

    #[test]
    fn series_come_from_the_history() {
        assert_eq!(history_series(&history(), "loss"), vec![(4.0, 0.9), (8.0, 0.5)]);
        assert_eq!(history_series(&history(), "eval_loss"), vec![(8.0, 0.6)]);
    }

    #[test]
    fn pictures_and_predictions_are_written() {
        let dir = tempfile::tempdir().unwrap();
        assert!(write_loss_curve(dir.path(), &history()).unwrap());
        let png = std::fs::read(dir.path().join(LOSS_CURVE)).unwrap();
        assert_eq!(&png[1..4], b"PNG");
        let p = Predictions { predictions: vec![0, 1, 1, 2], references: vec![0, 1, 2, 2], ..Default::default() };
        let names: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
        assert!(write_confusion_matrix(dir.path(), &p, &names).unwrap());
        assert!(std::fs::read_to_string(dir.path().join(CONFUSION_SVG)).unwrap().contains("Predicted label"));
        write_predictions(dir.path(), &p, &names, false).unwrap();
        let v: Value =
            serde_json::from_str(&std::fs::read_to_string(dir.path().join(EVAL_PREDICTIONS)).unwrap()).unwrap();
        assert_eq!(v["references"], json!([0, 1, 2, 2]));
        assert_eq!(v["unit"], "example");
    }

    #[test]
    fn nothing_to_draw_is_not_an_error() {
        let dir = tempfile::tempdir().unwrap();
        assert!(!write_loss_curve(dir.path(), &[json!({"step": 1, "eval_accuracy": 1.0})]).unwrap());
        assert!(!dir.path().join(LOSS_CURVE).exists());
    }
}
