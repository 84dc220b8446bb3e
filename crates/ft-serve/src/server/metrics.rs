//! `GET /metrics`: Prometheus' text format (version 0.0.4), written by hand — request counts by
//! route and status, latency and queue-time histograms, the batch-size histogram, inputs and
//! tokens processed, requests in flight, and (§11's monitoring) predictions per label with the
//! distribution of their scores, so that drift shows, and the canary's accuracy.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};

/// Latency buckets in seconds.
const SECONDS: &[f64] = &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];
/// Batch-size buckets.
const SIZES: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0];
/// Score buckets (probabilities).
const SCORES: &[f64] = &[0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0];

/// A cumulative histogram with fixed buckets.
#[derive(Debug, Clone)]
struct Histogram {
    bounds: &'static [f64],
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        Self { bounds, counts: vec![0; bounds.len()], sum: 0.0, count: 0 }
    }

    fn observe(&mut self, v: f64) {
        for (b, c) in self.bounds.iter().zip(&mut self.counts) {
            if v <= *b {
                *c += 1;
            }
        }
        self.sum += v;
        self.count += 1;
    }

    fn write(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        for (b, c) in self.bounds.iter().zip(&self.counts) {
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{b}\"}} {c}");
        }
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}", self.count);
        let braces = if labels.is_empty() { String::new() } else { format!("{{{labels}}}") };
        let _ = writeln!(out, "{name}_sum{braces} {}", self.sum);
        let _ = writeln!(out, "{name}_count{braces} {}", self.count);
    }
}

#[derive(Debug)]
struct Inner {
    requests: BTreeMap<(String, u16), u64>,
    latency: BTreeMap<String, Histogram>,
    queue: Histogram,
    batch: Histogram,
    inputs: u64,
    tokens: u64,
    labels: BTreeMap<String, Histogram>,
    canary: Option<Canary>,
}

#[derive(Debug, Clone, Copy)]
struct Canary {
    accuracy: f64,
    runs: u64,
    failures: u64,
    last: f64,
}

/// The server's counters (shared by the handlers and the model thread).
#[derive(Debug)]
pub struct Metrics {
    inner: Mutex<Inner>,
    in_flight: AtomicI64,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            inner: Mutex::new(Inner {
                requests: BTreeMap::new(),
                latency: BTreeMap::new(),
                queue: Histogram::new(SECONDS),
                batch: Histogram::new(SIZES),
                inputs: 0,
                tokens: 0,
                labels: BTreeMap::new(),
                canary: None,
            }),
            in_flight: AtomicI64::new(0),
        }
    }
}

/// Escapes a label value (backslash, quote, newline).
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

impl Metrics {
    fn with(&self, f: impl FnOnce(&mut Inner)) {
        // A poisoned lock (a panic while holding it) still holds consistent counters.
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut g);
    }

    /// A request has started.
    pub fn start_request(&self) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
    }

    /// A request has been answered with `status` after `seconds`.
    pub fn end_request(&self, route: &str, status: u16, seconds: f64) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.with(|m| {
            *m.requests.entry((route.to_string(), status)).or_default() += 1;
            m.latency.entry(route.to_string()).or_insert_with(|| Histogram::new(SECONDS)).observe(seconds);
        });
    }

    /// A request waited `seconds` in the queue.
    pub fn observe_queue(&self, seconds: f64) {
        self.with(|m| m.queue.observe(seconds));
    }

    /// A model call ran `inputs` inputs and read `tokens` tokens.
    pub fn observe_batch(&self, inputs: usize, tokens: usize) {
        self.with(|m| {
            m.batch.observe(inputs as f64);
            m.inputs += inputs as u64;
            m.tokens += tokens as u64;
        });
    }

    /// A prediction of `label` with `score` was answered.
    pub fn observe_prediction(&self, label: &str, score: f64) {
        self.with(|m| m.labels.entry(label.to_string()).or_insert_with(|| Histogram::new(SCORES)).observe(score));
    }

    /// The canary ran: its accuracy, or `None` when it could not run.
    pub fn observe_canary(&self, accuracy: Option<f64>) {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64());
        self.with(|m| {
            let c = m.canary.get_or_insert(Canary { accuracy: f64::NAN, runs: 0, failures: 0, last: 0.0 });
            match accuracy {
                Some(a) => {
                    c.accuracy = a;
                    c.runs += 1;
                    c.last = now;
                }
                None => c.failures += 1,
            }
        });
    }

    /// The Prometheus text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        out.push_str(
            "# HELP ft_requests_total Requests answered, by route and status.\n# TYPE ft_requests_total counter\n",
        );
        for ((route, status), n) in &g.requests {
            let _ = writeln!(out, "ft_requests_total{{route=\"{}\",status=\"{status}\"}} {n}", escape(route));
        }
        out.push_str(
            "# HELP ft_request_duration_seconds Time to answer a request.\n# TYPE ft_request_duration_seconds histogram\n",
        );
        for (route, h) in &g.latency {
            h.write(&mut out, "ft_request_duration_seconds", &format!("route=\"{}\"", escape(route)));
        }
        out.push_str(
            "# HELP ft_queue_duration_seconds Time a request waited for the model.\n# TYPE ft_queue_duration_seconds histogram\n",
        );
        g.queue.write(&mut out, "ft_queue_duration_seconds", "");
        out.push_str("# HELP ft_batch_size Inputs per model call.\n# TYPE ft_batch_size histogram\n");
        g.batch.write(&mut out, "ft_batch_size", "");
        let _ = writeln!(out, "# HELP ft_inputs_total Inputs run through the model.\n# TYPE ft_inputs_total counter");
        let _ = writeln!(out, "ft_inputs_total {}", g.inputs);
        let _ =
            writeln!(out, "# HELP ft_tokens_total Tokens the model read or generated.\n# TYPE ft_tokens_total counter");
        let _ = writeln!(out, "ft_tokens_total {}", g.tokens);
        let _ =
            writeln!(out, "# HELP ft_requests_in_flight Requests being answered.\n# TYPE ft_requests_in_flight gauge");
        let _ = writeln!(out, "ft_requests_in_flight {}", self.in_flight.load(Ordering::Relaxed));
        out.push_str(
            "# HELP ft_prediction_score Scores of the top predictions, by label (counts per label: _count).\n\
             # TYPE ft_prediction_score histogram\n",
        );
        for (label, h) in &g.labels {
            h.write(&mut out, "ft_prediction_score", &format!("label=\"{}\"", escape(label)));
        }
        if let Some(c) = g.canary {
            let _ = writeln!(
                out,
                "# HELP ft_canary_accuracy Accuracy of the last canary run.\n# TYPE ft_canary_accuracy gauge"
            );
            let _ = writeln!(out, "ft_canary_accuracy {}", c.accuracy);
            let _ = writeln!(out, "# HELP ft_canary_runs_total Canary runs.\n# TYPE ft_canary_runs_total counter");
            let _ = writeln!(out, "ft_canary_runs_total {}", c.runs);
            let _ = writeln!(
                out,
                "# HELP ft_canary_failures_total Canary runs that could not run.\n# TYPE ft_canary_failures_total counter"
            );
            let _ = writeln!(out, "ft_canary_failures_total {}", c.failures);
            let _ = writeln!(
                out,
                "# HELP ft_canary_last_run_timestamp_seconds When the canary last ran.\n# TYPE ft_canary_last_run_timestamp_seconds gauge"
            );
            let _ = writeln!(out, "ft_canary_last_run_timestamp_seconds {}", c.last);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::default();
        m.start_request();
        m.end_request("/predict", 200, 0.003);
        m.observe_batch(3, 42);
        m.observe_prediction("Sci/\"Tech\"", 0.97);
        let text = m.render();
        assert!(text.contains("ft_requests_total{route=\"/predict\",status=\"200\"} 1"), "{text}");
        assert!(text.contains("ft_request_duration_seconds_bucket{route=\"/predict\",le=\"0.005\"} 1"));
        assert!(text.contains("ft_request_duration_seconds_bucket{route=\"/predict\",le=\"0.0025\"} 0"));
        assert!(text.contains("ft_batch_size_bucket{le=\"4\"} 1"));
        assert!(text.contains("ft_tokens_total 42"));
        assert!(text.contains("ft_prediction_score_count{label=\"Sci/\\\"Tech\\\"\"} 1"));
        assert!(text.contains("ft_requests_in_flight 0"));
        assert!(!text.contains("canary"));
        m.observe_canary(Some(0.75));
        assert!(m.render().contains("ft_canary_accuracy 0.75"));
    }
}
