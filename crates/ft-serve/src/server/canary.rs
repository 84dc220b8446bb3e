//! §11's canary: a JSONL file of inputs with their expected labels
//! (`{"text": "...", "label": "Sports"}`, or `"image"` with a base64 PNG/JPEG or `"path"` to one,
//! relative to the file) run through the model every interval; its accuracy is exported in
//! `/metrics` (`ft_canary_accuracy`), so that a model or data problem shows without traffic.
//! Canary predictions do not count in the per-label prediction metrics.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::oneshot;

use super::AppState;
use super::batcher::{Input, Job};
use super::request::TaskSpec;

/// The canary's inputs and expected labels.
#[derive(Debug, Clone)]
pub struct Canary {
    inputs: Vec<Input>,
    labels: Vec<String>,
}

impl Canary {
    /// Reads `path` for `spec`'s task (text or image classification). Errors name the file, the
    /// line and the field.
    pub fn read(path: &Path, spec: &dyn TaskSpec) -> Result<Self, String> {
        if !spec.has_labels() {
            return Err(format!("--canary: a canary checks labels; {} has none", spec.task()));
        }
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let field = spec.input_field();
        let mut out = Self { inputs: Vec::new(), labels: Vec::new() };
        for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            let at = |m: String| format!("{}:{}: {m}", path.display(), i + 1);
            let row: Value = serde_json::from_str(line).map_err(|e| at(format!("not JSON: {e}")))?;
            let label =
                row.get("label").and_then(Value::as_str).ok_or_else(|| at("no string field \"label\"".into()))?;
            let value = match (row.get(field), row.get("path").and_then(Value::as_str)) {
                (Some(v), _) => v.clone(),
                (None, Some(p)) if field == "image" => {
                    use base64::Engine;
                    let file = path.parent().unwrap_or(Path::new(".")).join(p);
                    let bytes = std::fs::read(&file).map_err(|e| at(format!("{}: {e}", file.display())))?;
                    Value::String(base64::engine::general_purpose::STANDARD.encode(bytes))
                }
                _ => return Err(at(format!("no field \"{field}\""))),
            };
            out.inputs.push(spec.input(field, &value).map_err(at)?);
            out.labels.push(label.to_string());
        }
        if out.inputs.is_empty() {
            return Err(format!("{}: no canary inputs", path.display()));
        }
        Ok(out)
    }

    /// The expected labels, one per input.
    pub fn labels(&self) -> &[String] {
        &self.labels
    }

    /// The number of inputs.
    pub fn len(&self) -> usize {
        self.inputs.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.inputs.is_empty()
    }
}

/// Runs the canary now and then every `interval`, through the same queue as requests (the
/// default adapter), forever.
pub async fn run(state: AppState, canary: Canary, interval: Duration) {
    let mut tick = tokio::time::interval(interval.max(Duration::from_millis(100)));
    loop {
        tick.tick().await;
        if !state.ready.load(std::sync::atomic::Ordering::Acquire) {
            continue;
        }
        let started = Instant::now();
        let (reply, rx) = oneshot::channel();
        let job = Job {
            inputs: canary.inputs.clone(),
            adapter: state.adapters().default,
            options: Value::Null,
            mergeable: true,
            events: None,
            reply,
            queued: Instant::now(),
            permit: None,
        };
        let accuracy = match state.queue.try_send(job) {
            Err(e) => {
                tracing::warn!(error = ?e, "canary not run: the queue is full or stopped");
                None
            }
            Ok(()) => match tokio::time::timeout(state.options.request_timeout, rx).await {
                Ok(Ok(Ok(reply))) => {
                    let right = reply
                        .values
                        .iter()
                        .zip(&canary.labels)
                        .filter(|(v, want)| state.spec.predictions(v).first().is_some_and(|(l, _)| l == *want))
                        .count();
                    Some(right as f64 / canary.labels.len() as f64)
                }
                Ok(Ok(Err(e))) => {
                    tracing::warn!(error = %e.message, "canary failed");
                    None
                }
                _ => {
                    tracing::warn!("canary not answered in time");
                    None
                }
            },
        };
        if let Some(a) = accuracy {
            tracing::info!(accuracy = a, n = canary.len(), ms = started.elapsed().as_secs_f64() * 1e3, "canary");
        }
        state.metrics.observe_canary(accuracy);
    }
}
