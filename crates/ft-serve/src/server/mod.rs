//! The HTTP server of `ft serve`: the notebook's `POST /predict` (§12) on axum + tokio, with the
//! model on a thread of its own fed by a dynamic batching queue ([`batcher`]).
//!
//! Routes:
//! - `POST /predict` — `{"text": "..."}` → `{"label": "...", "score": 0.97}` (the notebook's
//!   FastAPI contract), or `{"inputs": ["...", ...]}` → a list of those.
//! - `GET /health` (the process is up), `GET /ready` (200 once the model is loaded, 503 before),
//!   `GET /info` (model, task, labels, limits, ft version).
//!
//! Limits, as text-embeddings-inference: bodies above `payload_limit` (2 MB) get 413; more than
//! `max_concurrent_requests` requests waiting or running get 429 with `Retry-After`; a request
//! not answered within `request_timeout` gets 504. Malformed JSON gets 400, a missing or
//! wrongly typed field or an empty text 422, each with `{"error": ..., "error_type": ...}`
//! naming the field; a model failure (a panic included) 500 for that batch only. With an API
//! key, requests other than `/health` need `Authorization: Bearer <key>` (401 otherwise;
//! compared in constant time). Inputs longer than the model's limit (or `max_input_length`) are
//! truncated, as the pipeline truncates.
//!
//! [`router`] returns the routes for a user's own axum app; [`serve`] binds, serves and drains
//! in-flight requests on SIGTERM / Ctrl-C.

pub mod batcher;
mod text;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use std::future::IntoFuture;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use tokio::sync::{Semaphore, oneshot};

use self::batcher::{Job, Queue, QueueError};

/// Limits and options of the server.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Largest request body in bytes (413 above).
    pub payload_limit: usize,
    /// Requests waiting or running at once (429 above).
    pub max_concurrent_requests: usize,
    /// Longest time a request may take (504 after).
    pub request_timeout: Duration,
    /// Most inputs in one `{"inputs": [...]}` request (422 above).
    pub max_inputs_per_request: usize,
    /// A bearer token every route but `/health` requires.
    pub api_key: Option<String>,
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self {
            payload_limit: 2 * 1024 * 1024,
            max_concurrent_requests: 512,
            request_timeout: Duration::from_secs(60),
            max_inputs_per_request: 1024,
            api_key: None,
        }
    }
}

/// What `/info` reports.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Info {
    /// The model's name (directory or Hub id).
    pub model: String,
    /// The task served.
    pub task: String,
    /// Label names by id.
    pub labels: Vec<String>,
    /// Batching and request limits.
    pub limits: Value,
    /// ft's version.
    pub version: String,
}

/// Shared by every request.
#[derive(Clone)]
pub struct AppState {
    queue: Queue,
    permits: Arc<Semaphore>,
    ready: Arc<AtomicBool>,
    info: Arc<Mutex<Info>>,
    options: Arc<ServerOptions>,
}

impl AppState {
    /// State for [`router`]: the batching queue, whether the model is loaded (set by the model
    /// thread), what `/info` says, and the limits.
    pub fn new(queue: Queue, ready: Arc<AtomicBool>, info: Arc<Mutex<Info>>, options: ServerOptions) -> Self {
        Self {
            queue,
            permits: Arc::new(Semaphore::new(options.max_concurrent_requests.max(1))),
            ready,
            info,
            options: Arc::new(options),
        }
    }
}

/// The routes (see the module docs), for `axum::serve` or a user's own app.
pub fn router(state: AppState) -> Router {
    let limit = state.options.payload_limit;
    Router::new()
        .route("/predict", post(predict))
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/info", get(info))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(limit))
        .with_state(state)
}

/// Binds `addr`, serves `router(state)` until SIGTERM or Ctrl-C, then lets in-flight requests
/// finish. `on_bound` gets the bound address (with the port the OS chose for port 0).
pub async fn serve(state: AppState, addr: SocketAddr, on_bound: impl FnOnce(SocketAddr)) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    on_bound(listener.local_addr()?);
    // In-flight requests get `request_timeout` to finish after the signal; then the server exits
    // anyway (a client that never finishes sending its request cannot hold it up).
    let grace = state.options.request_timeout + Duration::from_secs(1);
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let server = axum::serve(listener, router(state)).with_graceful_shutdown(async move {
        let _ = stop_rx.await;
    });
    let mut server = tokio::spawn(server.into_future());
    tokio::select! {
        done = &mut server => return done.unwrap_or_else(|e| Err(std::io::Error::other(e))),
        () = shutdown_signal() => {}
    }
    let _ = stop_tx.send(());
    match tokio::time::timeout(grace, server).await {
        Ok(done) => done.unwrap_or_else(|e| Err(std::io::Error::other(e))),
        Err(_) => {
            tracing::warn!(seconds = grace.as_secs_f64(), "requests still open after the grace period: exiting");
            Ok(())
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down: finishing the requests in flight");
}

/// A JSON error response.
fn error(status: StatusCode, error_type: &str, message: impl Into<String>) -> Response {
    (status, axum::Json(json!({"error": message.into(), "error_type": error_type}))).into_response()
}

async fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "not_found", "no such route (POST /predict, GET /health, /ready, /info)")
}

async fn method_not_allowed() -> Response {
    error(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "wrong method (POST /predict; GET /health, /ready, /info)",
    )
}

async fn health() -> Response {
    axum::Json(json!({"status": "ok"})).into_response()
}

/// Constant-time comparison of the request's bearer token with the key.
fn authorized(options: &ServerOptions, headers: &HeaderMap) -> bool {
    let Some(key) = &options.api_key else { return true };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map_or("", |(_, token)| token.trim());
    let (a, b) = (given.as_bytes(), key.as_bytes());
    let mut diff = (a.len() ^ b.len()) as u8;
    for (i, kb) in b.iter().enumerate() {
        diff |= a.get(i).copied().unwrap_or(0) ^ kb;
    }
    diff == 0 && a.len() == b.len()
}

fn unauthorized() -> Response {
    let mut r =
        error(StatusCode::UNAUTHORIZED, "unauthorized", "missing or wrong API key (Authorization: Bearer <key>)");
    r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    r
}

async fn ready(State(s): State<AppState>, headers: HeaderMap) -> Response {
    if !authorized(&s.options, &headers) {
        return unauthorized();
    }
    if s.ready.load(Ordering::Acquire) {
        axum::Json(json!({"status": "ready"})).into_response()
    } else {
        error(StatusCode::SERVICE_UNAVAILABLE, "not_ready", "the model is loading")
    }
}

async fn info(State(s): State<AppState>, headers: HeaderMap) -> Response {
    if !authorized(&s.options, &headers) {
        return unauthorized();
    }
    let info = s.info.lock().map(|i| i.clone()).unwrap_or_default();
    axum::Json(info).into_response()
}

/// The inputs of a `/predict` body, or the 4xx answer.
#[allow(clippy::result_large_err)]
fn parse_inputs(body: &[u8], max_inputs: usize) -> Result<(Vec<String>, bool), Response> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| error(StatusCode::BAD_REQUEST, "malformed_json", format!("the body is not valid JSON: {e}")))?;
    let Value::Object(map) = value else {
        return Err(error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation",
            "the body must be a JSON object with \"text\" or \"inputs\"",
        ));
    };
    let unprocessable = |m: String| error(StatusCode::UNPROCESSABLE_ENTITY, "validation", m);
    if let Some(key) = map.keys().find(|k| !matches!(k.as_str(), "text" | "inputs")) {
        return Err(unprocessable(format!("unknown field \"{key}\" (fields: text, inputs)")));
    }
    match (map.get("text"), map.get("inputs")) {
        (Some(_), Some(_)) => Err(unprocessable("give \"text\" or \"inputs\", not both".into())),
        (Some(Value::String(t)), None) => {
            if t.trim().is_empty() {
                return Err(unprocessable("field \"text\" is empty".into()));
            }
            Ok((vec![t.clone()], true))
        }
        (Some(other), None) => Err(unprocessable(format!("field \"text\" must be a string, not {}", kind(other)))),
        (None, Some(Value::Array(items))) => {
            if items.is_empty() {
                return Err(unprocessable("field \"inputs\" is an empty list".into()));
            }
            if items.len() > max_inputs {
                return Err(unprocessable(format!("field \"inputs\" has {} texts; at most {max_inputs}", items.len())));
            }
            let mut texts = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                match item {
                    Value::String(t) if !t.trim().is_empty() => texts.push(t.clone()),
                    Value::String(_) => return Err(unprocessable(format!("field \"inputs[{i}]\" is empty"))),
                    other => {
                        return Err(unprocessable(format!(
                            "field \"inputs[{i}]\" must be a string, not {}",
                            kind(other)
                        )));
                    }
                }
            }
            Ok((texts, false))
        }
        (None, Some(other)) => {
            Err(unprocessable(format!("field \"inputs\" must be a list of strings, not {}", kind(other))))
        }
        (None, None) => Err(unprocessable("missing field \"text\" (or \"inputs\")".into())),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

async fn predict(
    State(s): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Response {
    let started = Instant::now();
    if !authorized(&s.options, &headers) {
        return unauthorized();
    }
    let body = match body {
        Ok(b) => b,
        Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!("the body is larger than the payload limit ({} bytes)", s.options.payload_limit),
            );
        }
        Err(e) => return error(e.status(), "bad_body", e.body_text()),
    };
    let (inputs, single) = match parse_inputs(&body, s.options.max_inputs_per_request) {
        Ok(x) => x,
        Err(r) => return r,
    };
    if !s.ready.load(Ordering::Acquire) {
        return error(StatusCode::SERVICE_UNAVAILABLE, "not_ready", "the model is loading");
    }
    let Ok(_permit) = s.permits.clone().try_acquire_owned() else {
        let mut r = error(StatusCode::TOO_MANY_REQUESTS, "overloaded", "too many concurrent requests; retry later");
        r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return r;
    };
    let n = inputs.len();
    let (reply, rx) = oneshot::channel();
    match s.queue.try_send(Job { inputs, reply, queued: Instant::now() }) {
        Ok(()) => {}
        Err(QueueError::Full) => {
            let mut r = error(StatusCode::TOO_MANY_REQUESTS, "overloaded", "the queue is full; retry later");
            r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            return r;
        }
        Err(QueueError::Stopped) => {
            return error(StatusCode::SERVICE_UNAVAILABLE, "not_ready", "the model thread has stopped");
        }
    }
    let answer = match tokio::time::timeout(s.options.request_timeout, rx).await {
        Err(_) => return error(StatusCode::GATEWAY_TIMEOUT, "timeout", "the model did not answer in time"),
        Ok(Err(_)) => return error(StatusCode::INTERNAL_SERVER_ERROR, "model", "the model thread dropped the request"),
        Ok(Ok(Err(e))) => {
            tracing::error!(error = %e, "prediction failed");
            return error(StatusCode::INTERNAL_SERVER_ERROR, "model", e);
        }
        Ok(Ok(Ok(outputs))) => outputs,
    };
    tracing::info!(route = "/predict", inputs = n, ms = started.elapsed().as_secs_f64() * 1e3, "request");
    if single {
        axum::Json(answer.into_iter().next().unwrap_or(Value::Null)).into_response()
    } else {
        axum::Json(Value::Array(answer)).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_checked_field_by_field() {
        let status = |b: &str| match parse_inputs(b.as_bytes(), 4) {
            Ok(_) => 200,
            Err(r) => r.status().as_u16(),
        };
        assert_eq!(status(r#"{"text": "hello"}"#), 200);
        assert_eq!(status(r#"{"inputs": ["a", "b"]}"#), 200);
        for (body, code) in [
            ("{", 400),
            ("[]", 422),
            (r#"{"text": 3}"#, 422),
            (r#"{"text": ""}"#, 422),
            (r#"{"text": "a", "inputs": ["b"]}"#, 422),
            (r#"{"inputs": []}"#, 422),
            (r#"{"inputs": ["a", 1]}"#, 422),
            (r#"{"inputs": ["a","b","c","d","e"]}"#, 422),
            (r#"{"txt": "a"}"#, 422),
            ("{}", 422),
        ] {
            assert_eq!(status(body), code, "{body}");
        }
    }

    #[test]
    fn api_keys_compare_exactly() {
        let options = ServerOptions { api_key: Some("s3cret".into()), ..Default::default() };
        let mut h = HeaderMap::new();
        assert!(!authorized(&options, &h));
        for (given, ok) in
            [("Bearer s3cret", true), ("Bearer s3cre", false), ("Bearer s3cretx", false), ("s3cret", false)]
        {
            h.insert(header::AUTHORIZATION, HeaderValue::from_str(given).unwrap_or(HeaderValue::from_static("")));
            assert_eq!(authorized(&options, &h), ok, "{given}");
        }
    }
}
