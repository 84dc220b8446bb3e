//! The HTTP server of `ft serve`: the notebook's `POST /predict` (§12) on axum + tokio, for every
//! pipeline, with the model on a thread of its own fed by a dynamic batching queue
//! ([`batcher`]).
//!
//! Routes:
//! - `POST /predict` — one input in the task's field or `{"inputs": [...]}` (a list back), an
//!   optional `"adapter": "NAME"` (one of the loaded adapters; `null`: the base model; absent:
//!   the default adapter), and the task's options ([`tasks`]):
//!   - text-classification: `{"text": "..."}` → `{"label": "...", "score": 0.97}` (the
//!     notebook's FastAPI contract); `"top_k": k` → the k best as a list;
//!   - token-classification: `{"text"}` → the pipeline's entities;
//!   - text-generation: `{"text": prompt}` → `{"generated_text"}` with `ft generate`'s settings
//!     (`max_new_tokens`, `do_sample`, `temperature`, `top_k`, `top_p`, `repetition_penalty`,
//!     `num_return_sequences`, `seed`), `"stream": true` → server-sent events, one per token
//!     (`{"token": {"id", "text"}, "generated_text": null}`), then
//!     `{"token": null, "generated_text": ...}`;
//!   - image-classification: `{"image": "<base64>"}` or a `multipart/form-data` upload (file
//!     field `image`, several files: `inputs`) → `{"label", "score"}`, `"top_k"`.
//! - `GET /health` (the process is up), `GET /ready` (200 once the model is loaded, 503 before),
//!   `GET /info` (model, task, labels, adapters, limits, ft version), `GET /metrics`
//!   (Prometheus, [`metrics`]), `GET /openapi.json`.
//!
//! Limits, as text-embeddings-inference: bodies above `payload_limit` (2 MB) get 413; more than
//! `max_concurrent_requests` requests waiting or running get 429 with `Retry-After`; a request
//! not answered within `request_timeout` gets 504 (a stream, until its first token; after it,
//! a stream ends when the client goes). Malformed JSON gets 400, a missing, unknown or wrongly
//! typed field, an empty text or a bad setting 422, each with `{"error": ..., "error_type": ...}` naming the field; a
//! model failure (a panic included) 500 for that request only. With an API key, requests other
//! than `/health` need `Authorization: Bearer <key>` (401 otherwise, before the body is read;
//! compared in constant time). Texts longer than the model's limit (or `max_input_length`) are
//! truncated, as the pipelines truncate; a prompt too long to leave room for new tokens is 422.
//!
//! [`router`] returns the routes for a user's own axum app; [`serve`] binds, serves, runs the
//! canary and drains in-flight requests on SIGTERM / Ctrl-C.

pub mod batcher;
pub mod canary;
pub mod metrics;
mod openapi;
pub mod request;
pub mod tasks;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest, MatchedPath, Multipart, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use serde_json::{Map, Value, json};
use tokio::sync::{Semaphore, mpsc, oneshot};

use self::batcher::{Job, Queue, QueueError, Reply, RunError};
use self::metrics::Metrics;
use self::request::{Adapters, TaskSpec};

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
    /// Longest time a client may take to send its request headers ([`serve`] closes the
    /// connection after).
    pub header_read_timeout: Duration,
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self {
            payload_limit: 2 * 1024 * 1024,
            max_concurrent_requests: 512,
            request_timeout: Duration::from_secs(60),
            max_inputs_per_request: 1024,
            api_key: None,
            header_read_timeout: Duration::from_secs(10),
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
    /// Label names by id (the default adapter's head when it has its own).
    pub labels: Vec<String>,
    /// The loaded adapters.
    pub adapters: Vec<String>,
    /// The adapter a request without `"adapter"` runs (`None`: the base model).
    pub default_adapter: Option<String>,
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
    spec: Arc<dyn TaskSpec>,
    metrics: Arc<Metrics>,
}

impl AppState {
    /// State for [`router`]: the batching queue (whose model thread sets `ready` and fills
    /// `info`'s labels and adapters), the task's request fields, the limits and the metrics the
    /// queue's model thread also writes.
    pub fn new(
        queue: Queue,
        ready: Arc<AtomicBool>,
        info: Arc<Mutex<Info>>,
        options: ServerOptions,
        spec: Box<dyn TaskSpec>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            queue,
            permits: Arc::new(Semaphore::new(options.max_concurrent_requests.max(1))),
            ready,
            info,
            options: Arc::new(options),
            spec: Arc::from(spec),
            metrics,
        }
    }

    fn adapters(&self) -> Adapters {
        self.info
            .lock()
            .map(|i| Adapters { names: i.adapters.clone(), default: i.default_adapter.clone() })
            .unwrap_or_default()
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
        .route("/metrics", get(metrics_route))
        .route("/openapi.json", get(openapi_route))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(limit))
        .layer(axum::middleware::from_fn_with_state(state.clone(), track))
        .with_state(state)
}

/// Binds `addr`, serves `router(state)` (with the canary, when given, every `interval`) until
/// SIGTERM or Ctrl-C, then lets in-flight requests finish. `on_bound` gets the bound address
/// (with the port the OS chose for port 0).
///
/// Connections are HTTP/1.1 with keep-alive; a client must send its request headers within
/// `header_read_timeout` (a connection that trickles them is closed, so half-open connections
/// cannot pile up); a failed accept (out of file descriptors) is logged and retried, never fatal.
pub async fn serve(
    state: AppState,
    addr: SocketAddr,
    canary: Option<(canary::Canary, Duration)>,
    on_bound: impl FnOnce(SocketAddr),
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    on_bound(listener.local_addr()?);
    if let Some((c, interval)) = canary {
        tokio::spawn(canary::run(state.clone(), c, interval));
    }
    // In-flight requests get `request_timeout` to finish after the signal; then the server exits
    // anyway (a client that never finishes sending its request cannot hold it up).
    let grace = state.options.request_timeout + Duration::from_secs(1);
    let header_timeout = state.options.header_read_timeout;
    let app = router(state);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    // One clone per open connection: the strong count tells how many are left.
    let open = Arc::new(());
    let signal = shutdown_signal();
    tokio::pin!(signal);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        tracing::warn!(error = %e, "accepting a connection failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let (app, mut stop, token) = (app.clone(), stop_rx.clone(), open.clone());
                tokio::spawn(async move {
                    let _token = token;
                    let service = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                        let mut app = app.clone();
                        async move { tower_service::Service::call(&mut app, req).await }
                    });
                    let mut builder = hyper::server::conn::http1::Builder::new();
                    builder.timer(hyper_util::rt::TokioTimer::new()).header_read_timeout(header_timeout);
                    let conn = builder.serve_connection(hyper_util::rt::TokioIo::new(stream), service);
                    tokio::pin!(conn);
                    tokio::select! {
                        _ = conn.as_mut() => {}
                        _ = stop.changed() => {
                            conn.as_mut().graceful_shutdown();
                            let _ = conn.as_mut().await;
                        }
                    }
                });
            }
            () = &mut signal => break,
        }
    }
    drop(listener);
    let _ = stop_tx.send(true);
    let deadline = Instant::now() + grace;
    while Arc::strong_count(&open) > 1 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if Arc::strong_count(&open) > 1 {
        tracing::warn!(seconds = grace.as_secs_f64(), "requests still open after the grace period: exiting");
    }
    Ok(())
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

/// The batch size a `/predict` answer ran in, for the request's log line.
#[derive(Debug, Clone, Copy)]
struct BatchSize(usize);

/// Counts a request in `/metrics` when dropped: answered with its status, or 499 when the
/// client went away first.
struct Tracked<'a> {
    metrics: &'a Metrics,
    route: String,
    started: Instant,
    status: u16,
}

impl Drop for Tracked<'_> {
    fn drop(&mut self) {
        self.metrics.end_request(&self.route, self.status, self.started.elapsed().as_secs_f64());
    }
}

/// Counts every request in `/metrics` (by matched route and status) with its latency, and logs
/// one line per request (route, status, milliseconds, and the batch size for `/predict`).
async fn track(State(s): State<AppState>, req: Request, next: Next) -> Response {
    let route = req.extensions().get::<MatchedPath>().map_or("other", |p| p.as_str()).to_string();
    let method = req.method().clone();
    s.metrics.start_request();
    let mut tracked = Tracked { metrics: &s.metrics, route, started: Instant::now(), status: 499 };
    let response = next.run(req).await;
    tracked.status = response.status().as_u16();
    let batch = response.extensions().get::<BatchSize>().map(|b| b.0);
    tracing::info!(
        method = %method,
        route = %tracked.route,
        status = tracked.status,
        ms = tracked.started.elapsed().as_secs_f64() * 1e3,
        batch,
        "request"
    );
    response
}

/// A JSON error response.
fn error(status: StatusCode, error_type: &str, message: impl Into<String>) -> Response {
    (status, axum::Json(json!({"error": message.into(), "error_type": error_type}))).into_response()
}

fn overloaded(message: &str) -> Response {
    let mut r = error(StatusCode::TOO_MANY_REQUESTS, "overloaded", message);
    r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    r
}

const ROUTES: &str = "POST /predict; GET /health, /ready, /info, /metrics, /openapi.json";

async fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "not_found", format!("no such route ({ROUTES})"))
}

async fn method_not_allowed() -> Response {
    error(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", format!("wrong method ({ROUTES})"))
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

async fn metrics_route(State(s): State<AppState>, headers: HeaderMap) -> Response {
    if !authorized(&s.options, &headers) {
        return unauthorized();
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], s.metrics.render()).into_response()
}

async fn openapi_route(State(s): State<AppState>, headers: HeaderMap) -> Response {
    if !authorized(&s.options, &headers) {
        return unauthorized();
    }
    let info = s.info.lock().map(|i| i.clone()).unwrap_or_default();
    axum::Json(openapi::document(s.spec.as_ref(), &info, s.options.max_inputs_per_request)).into_response()
}

/// The body as a JSON object: JSON, or a multipart form (files base64-encoded, other fields
/// read as JSON values when they parse, else as strings).
async fn body_fields(s: &AppState, req: Request) -> Result<Map<String, Value>, Response> {
    let too_large = || {
        let mut r = error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the body is larger than the payload limit ({} bytes)", s.options.payload_limit),
        );
        // The rest of the body is not read: the connection closes after the answer, and says so.
        r.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
        r
    };
    let content_type =
        req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_ascii_lowercase);
    let multipart = content_type.as_deref().is_some_and(|v| v.starts_with("multipart/form-data"));
    let json = content_type.as_deref().is_none_or(|v| {
        let essence = v.split(';').next().unwrap_or("").trim();
        essence == "application/json" || essence.ends_with("+json")
    });
    if !multipart && !json {
        return Err(error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!(
                "Content-Type {}: send application/json (or multipart/form-data)",
                content_type.as_deref().unwrap_or_default()
            ),
        ));
    }
    if multipart {
        let mut form = Multipart::from_request(req, &())
            .await
            .map_err(|e| error(e.status(), "malformed_multipart", e.body_text()))?;
        let mut map = Map::new();
        let mut files: Vec<(String, Value)> = Vec::new();
        loop {
            let field = match form.next_field().await {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => return Err(too_large()),
                Err(e) => return Err(error(StatusCode::BAD_REQUEST, "malformed_multipart", e.body_text())),
            };
            let name = field.name().unwrap_or_default().to_string();
            let is_file = field.file_name().is_some();
            let data = match field.bytes().await {
                Ok(d) => d,
                Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => return Err(too_large()),
                Err(e) => return Err(error(StatusCode::BAD_REQUEST, "malformed_multipart", e.body_text())),
            };
            let field = s.spec.input_field();
            if is_file && field == "image" {
                files.push((name, Value::String(base64::engine::general_purpose::STANDARD.encode(&data))));
            } else if is_file || name == field {
                // A text input: the part's text as it is (a file part must be UTF-8).
                let text = String::from_utf8(data.to_vec()).map_err(|_| {
                    error(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "validation",
                        format!("form field \"{name}\" is not UTF-8 text"),
                    )
                })?;
                if is_file {
                    files.push((name, Value::String(text)));
                } else {
                    map.insert(name, Value::String(text));
                }
            } else {
                // Options (`top_k=2`, `adapter=x`) as JSON values when they parse, else strings.
                let text = String::from_utf8_lossy(&data).into_owned();
                let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
                map.insert(name, value);
            }
        }
        let field = s.spec.input_field();
        match files.as_slice() {
            [] => {}
            [(name, v)] if name == field => {
                map.insert(field.to_string(), v.clone());
            }
            _ => {
                map.insert("inputs".into(), Value::Array(files.into_iter().map(|(_, v)| v).collect()));
            }
        }
        return Ok(map);
    }
    let body = match Bytes::from_request(req, &()).await {
        Ok(b) => b,
        Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => return Err(too_large()),
        Err(e) => return Err(error(e.status(), "bad_body", e.body_text())),
    };
    match serde_json::from_slice(&body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation",
            format!("the body must be a JSON object with \"{}\" or \"inputs\"", s.spec.input_field()),
        )),
        Err(e) => Err(error(StatusCode::BAD_REQUEST, "malformed_json", format!("the body is not valid JSON: {e}"))),
    }
}

async fn predict(State(s): State<AppState>, req: Request) -> Response {
    let started = Instant::now();
    // The key is checked before the body is read.
    if !authorized(&s.options, req.headers()) {
        return unauthorized();
    }
    // The body must arrive within the request timeout (a client trickling it is cut off).
    let map = match tokio::time::timeout(s.options.request_timeout, body_fields(&s, req)).await {
        Ok(Ok(m)) => m,
        Ok(Err(r)) => return r,
        Err(_) => {
            let mut r = error(StatusCode::REQUEST_TIMEOUT, "timeout", "the request body did not arrive in time");
            r.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
            return r;
        }
    };
    // Checking inputs may decode images: off the async threads (and a panic there is a 500).
    let (spec, adapters, max_inputs) = (s.spec.clone(), s.adapters(), s.options.max_inputs_per_request);
    let parsed =
        match tokio::task::spawn_blocking(move || request::parse(spec.as_ref(), &adapters, &map, max_inputs)).await {
            Ok(Ok(p)) => p,
            Ok(Err(m)) => return error(StatusCode::UNPROCESSABLE_ENTITY, "validation", m),
            Err(_) => return error(StatusCode::INTERNAL_SERVER_ERROR, "internal", "checking the request failed"),
        };
    if !s.ready.load(Ordering::Acquire) {
        return error(StatusCode::SERVICE_UNAVAILABLE, "not_ready", "the model is loading");
    }
    let Ok(permit) = s.permits.clone().try_acquire_owned() else {
        return overloaded("too many concurrent requests; retry later");
    };
    let n = parsed.inputs.len();
    let adapter = parsed.adapter.clone();
    let single = parsed.single;
    let streaming = s.spec.streams(&parsed.options);
    let (events_tx, events_rx) = if streaming {
        let (tx, rx) = mpsc::unbounded_channel();
        (Some(tx), Some(rx))
    } else {
        (None, None)
    };
    let (reply, rx) = oneshot::channel();
    let job = Job {
        mergeable: s.spec.mergeable(&parsed.options),
        inputs: parsed.inputs,
        adapter: parsed.adapter,
        options: parsed.options,
        events: events_tx,
        reply,
        queued: Instant::now(),
        permit: Some(permit),
    };
    match s.queue.try_send(job) {
        Ok(()) => {}
        Err(QueueError::Full) => return overloaded("the queue is full; retry later"),
        Err(QueueError::Stopped) => {
            return error(StatusCode::SERVICE_UNAVAILABLE, "not_ready", "the model thread has stopped");
        }
    }
    if let Some(mut events) = events_rx {
        // The status is chosen when the first token (or the failure) comes: a request the model
        // refuses (a bad setting, a prompt too long) is a 4xx, not a stream with an error.
        let first = match tokio::time::timeout(s.options.request_timeout, events.recv()).await {
            Err(_) => return error(StatusCode::GATEWAY_TIMEOUT, "timeout", "the model did not start in time"),
            Ok(Some(v)) => v,
            Ok(None) => {
                return match rx.await {
                    Ok(Err(e)) => run_error(e),
                    _ => error(StatusCode::INTERNAL_SERVER_ERROR, "model", "the model ended the stream without output"),
                };
            }
        };
        tracing::debug!(route = "/predict", stream = true, adapter = ?adapter, "streaming");
        return stream(first, events, rx);
    }
    let answer = match tokio::time::timeout(s.options.request_timeout, rx).await {
        Err(_) => return error(StatusCode::GATEWAY_TIMEOUT, "timeout", "the model did not answer in time"),
        Ok(Err(_)) => return error(StatusCode::INTERNAL_SERVER_ERROR, "model", "the model thread dropped the request"),
        Ok(Ok(Err(e))) => return run_error(e),
        Ok(Ok(Ok(reply))) => reply,
    };
    let Reply { values, batch_size } = answer;
    for v in &values {
        for (label, score) in s.spec.predictions(v) {
            s.metrics.observe_prediction(&label, score);
        }
    }
    tracing::debug!(
        route = "/predict",
        inputs = n,
        batch = batch_size,
        adapter = ?adapter,
        ms = started.elapsed().as_secs_f64() * 1e3,
        "answered"
    );
    let mut response = if single {
        axum::Json(values.into_iter().next().unwrap_or(Value::Null)).into_response()
    } else {
        axum::Json(Value::Array(values)).into_response()
    };
    response.extensions_mut().insert(BatchSize(batch_size));
    response
}

fn run_error(e: RunError) -> Response {
    if e.client {
        error(StatusCode::UNPROCESSABLE_ENTITY, "validation", e.message)
    } else {
        tracing::error!(error = %e.message, "prediction failed");
        error(StatusCode::INTERNAL_SERVER_ERROR, "model", e.message)
    }
}

/// A server-sent-event stream of a generation's events, starting with `first`; a failure ends
/// it with an `error` event. (The request's permit is held by its job until the model is done.)
fn stream(
    first: Value,
    events: mpsc::UnboundedReceiver<Value>,
    done: oneshot::Receiver<Result<Reply, RunError>>,
) -> Response {
    let state = (Some(first), events, Some(done));
    let s = futures_util::stream::unfold(state, |(first, mut events, done)| async move {
        let event = |v: Value| Ok::<_, std::convert::Infallible>(Event::default().data(v.to_string()));
        if let Some(v) = first {
            return Some((event(v), (None, events, done)));
        }
        if let Some(v) = events.recv().await {
            return Some((event(v), (None, events, done)));
        }
        // The model has finished: an error is the stream's last event.
        let failure = match done?.await {
            Ok(Ok(_)) => return None,
            Ok(Err(e)) => json!({"error": e.message, "error_type": if e.client { "validation" } else { "model" }}),
            Err(_) => json!({"error": "the model thread dropped the request", "error_type": "model"}),
        };
        Some((Ok(Event::default().event("error").data(failure.to_string())), (None, events, None)))
    });
    Sse::new(s).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_keys_compare_exactly() {
        let options = ServerOptions { api_key: Some("s3cret".into()), ..Default::default() };
        let mut h = HeaderMap::new();
        assert!(!authorized(&options, &h));
        for (given, ok) in [
            ("Bearer s3cret", true),
            ("bearer s3cret", true),
            ("Bearer s3cre", false),
            ("Bearer s3cretx", false),
            ("s3cret", false),
        ] {
            h.insert(header::AUTHORIZATION, HeaderValue::from_str(given).unwrap_or(HeaderValue::from_static("")));
            assert_eq!(authorized(&options, &h), ok, "{given}");
        }
    }
}
