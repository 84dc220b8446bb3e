//! Dynamic batching: requests queue in a bounded channel; one model thread takes what is
//! waiting — up to `max_batch_size` inputs, waiting at most `max_wait` for more after the first —
//! and runs requests for the same adapter with the same options as one call of the model (which
//! sorts by length, pads per forward pass and cuts passes by `max_batch_size` /
//! `max_batch_tokens`). Each request gets its own rows back. A call that fails is retried one
//! request at a time, so that a bad input fails its own request only; a panic inside the model
//! fails that call's requests only.
//!
//! Requests for different adapters run as separate calls, one after the other, switching the
//! active adapter between them (no weights are reloaded; measured in BENCHMARKS.md).

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TryRecvError, TrySendError, sync_channel};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use super::metrics::Metrics;

/// One input of a request.
#[derive(Debug, Clone)]
pub enum Input {
    /// A text (text classification, token classification, generation).
    Text(String),
    /// A decoded image (image classification).
    Image(ft_data::vision::RgbImage),
}

impl Input {
    /// The text, for text inputs.
    pub fn text(&self) -> Option<&str> {
        match self {
            Self::Text(t) => Some(t),
            Self::Image(_) => None,
        }
    }
}

/// Why a model call failed.
#[derive(Debug, Clone)]
pub struct RunError {
    /// The request is at fault (answered 422), not the model (500).
    pub client: bool,
    /// What went wrong.
    pub message: String,
}

impl RunError {
    /// A fault of the request (422).
    pub fn client(message: impl Into<String>) -> Self {
        Self { client: true, message: message.into() }
    }

    /// A fault of the model (500).
    pub fn server(message: impl Into<String>) -> Self {
        Self { client: false, message: message.into() }
    }
}

impl From<crate::ServeError> for RunError {
    fn from(e: crate::ServeError) -> Self {
        let client = matches!(e, crate::ServeError::Input { .. } | crate::ServeError::Options(_));
        Self { client, message: e.to_string() }
    }
}

/// One call of the model: inputs of one or more requests with the same adapter and options.
pub struct Call<'a> {
    /// The adapter to run (`None`: the base model, adapters off).
    pub adapter: Option<&'a str>,
    /// The requests' task options (e.g. `top_k`, generation settings).
    pub options: &'a Value,
    /// The inputs, request after request.
    pub inputs: Vec<&'a Input>,
    /// For a streamed request: called with each event; `false` means the client has gone.
    pub events: Option<&'a mut dyn FnMut(Value) -> bool>,
}

/// What a model call returns.
#[derive(Debug, Default)]
pub struct Output {
    /// One value per input, in order.
    pub values: Vec<Value>,
    /// Tokens the model read (prompts and generated tokens for generation; 0 for images).
    pub tokens: usize,
}

/// What the model thread runs.
pub trait BatchModel {
    /// Runs one call; one output per input, in order. An error fails the whole call.
    fn run(&mut self, call: Call<'_>) -> Result<Output, RunError>;
}

impl BatchModel for Box<dyn BatchModel> {
    fn run(&mut self, call: Call<'_>) -> Result<Output, RunError> {
        (**self).run(call)
    }
}

/// A request's answer: its outputs and the number of inputs of the call it ran in.
#[derive(Debug)]
pub struct Reply {
    /// One value per input.
    pub values: Vec<Value>,
    /// Inputs in the model call it shared.
    pub batch_size: usize,
}

/// One request's inputs and where its answer goes.
pub struct Job {
    /// The request's inputs (one or more).
    pub inputs: Vec<Input>,
    /// The adapter it runs with (`None`: the base model).
    pub adapter: Option<String>,
    /// Its task options.
    pub options: Value,
    /// Whether it may share a model call with other requests with the same adapter and options
    /// (`false`, e.g., for sampling with a seed: the result must not depend on other requests).
    pub mergeable: bool,
    /// For a streamed request: where its events go (it runs alone).
    pub events: Option<mpsc::UnboundedSender<Value>>,
    /// Its answer.
    pub reply: oneshot::Sender<Result<Reply, RunError>>,
    /// When it was queued.
    pub queued: Instant,
    /// The request's place among `max_concurrent_requests`, held until the model has run it
    /// (so that a request that timed out still counts while the model works on it).
    pub permit: Option<tokio::sync::OwnedSemaphorePermit>,
}

/// Why a job was not queued.
#[derive(Debug, PartialEq, Eq)]
pub enum QueueError {
    /// The queue is full (answer 429).
    Full,
    /// The model thread has stopped.
    Stopped,
}

/// The sending side of the queue (cloned into every request handler).
#[derive(Clone)]
pub struct Queue {
    tx: SyncSender<Job>,
}

impl Queue {
    /// Queues `job` without waiting.
    pub fn try_send(&self, job: Job) -> Result<(), QueueError> {
        self.tx.try_send(job).map_err(|e| match e {
            TrySendError::Full(_) => QueueError::Full,
            TrySendError::Disconnected(_) => QueueError::Stopped,
        })
    }
}

/// Batching limits.
#[derive(Debug, Clone, Copy)]
pub struct BatchLimits {
    /// Most inputs taken from the queue for one round of model calls.
    pub max_batch_size: usize,
    /// Longest wait for more requests after the first of a batch.
    pub max_wait: Duration,
    /// Queued requests beyond which new ones are refused.
    pub queue_capacity: usize,
    /// Model threads taking rounds from the one queue. One runs each round on the current
    /// kernel thread pool (all cores); with more, each has its own copy of the model and a pool
    /// of its share of those threads (at least one; `worker_threads`), so that their calls
    /// overlap without competing for the cores.
    pub workers: usize,
}

/// Starts the model threads: `load` builds a model on each (it need not be `Send`);
/// `on_ready` is called once, when every worker has loaded (or with the first error), before
/// the first batch. Returns the queue.
pub fn start<M, L, R>(limits: BatchLimits, metrics: Arc<Metrics>, load: L, on_ready: R) -> Queue
where
    M: BatchModel + 'static,
    L: Fn() -> Result<M, String> + Send + Sync + 'static,
    R: FnOnce(Result<(), String>) + Send + 'static,
{
    let (tx, rx) = sync_channel::<Job>(limits.queue_capacity.max(1));
    let rx = Arc::new(std::sync::Mutex::new(rx));
    let load = Arc::new(load);
    let workers = limits.workers.max(1);
    // Reported once: the first error, or Ok when the last worker has loaded.
    let ready = Arc::new(std::sync::Mutex::new((Some(on_ready), workers)));
    // The kernel threads the model threads share: those of the pool `start` is called in.
    let total_threads = rayon::current_num_threads();
    for w in 0..workers {
        let (rx, load, ready, metrics) = (rx.clone(), load.clone(), ready.clone(), metrics.clone());
        let report = move |r: Result<(), String>| {
            let mut g = ready.lock().unwrap_or_else(|p| p.into_inner());
            g.1 -= 1;
            if (r.is_err() || g.1 == 0)
                && let Some(f) = g.0.take()
            {
                f(r);
            }
        };
        std::thread::Builder::new()
            .name(format!("ft-serve-model-{w}"))
            .spawn(move || {
                // With several workers, each has a thread pool of its own for the model's
                // parallel kernels (one shared pool would run their calls one after the other)
                // with its share of the caller's threads, the first ones one more when they do
                // not divide evenly (not all of them each, which put more busy threads than
                // cores).
                let threads = worker_threads(total_threads, workers, w);
                let pool =
                    (workers > 1).then(|| rayon::ThreadPoolBuilder::new().num_threads(threads).build().ok()).flatten();
                let work = || match load() {
                    Ok(mut model) => {
                        report(Ok(()));
                        serve_batches(&mut model, &rx, limits, &metrics);
                    }
                    Err(e) => report(Err(e)),
                };
                match pool {
                    Some(p) => p.install(work),
                    None => work(),
                }
            })
            .map(|_| ())
            .unwrap_or_else(|e| tracing::error!(error = %e, "cannot start a model thread"));
    }
    Queue { tx }
}

/// Kernel threads of model thread `w` of `workers` sharing `total`: an even share, one more for
/// the first `total % workers`, at least one.
fn worker_threads(total: usize, workers: usize, w: usize) -> usize {
    (total / workers + usize::from(w < total % workers)).max(1)
}

/// Takes one round from the queue (the lock is held while it gathers, so that workers take
/// whole rounds in turn); `None` when the queue has closed.
fn next_round(rx: &std::sync::Mutex<Receiver<Job>>, limits: BatchLimits) -> Option<Vec<Job>> {
    let rx = rx.lock().unwrap_or_else(|p| p.into_inner());
    let first = rx.recv().ok()?;
    let deadline = Instant::now() + limits.max_wait;
    let mut size = first.inputs.len();
    let mut jobs = vec![first];
    while size < limits.max_batch_size {
        // What is already waiting joins the round; then wait for more until the deadline.
        let job = match rx.try_recv() {
            Ok(job) => job,
            Err(TryRecvError::Disconnected) => break,
            Err(TryRecvError::Empty) => {
                let now = Instant::now();
                if now >= deadline {
                    break;
                }
                match rx.recv_timeout(deadline - now) {
                    Ok(job) => job,
                    Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
                }
            }
        };
        size += job.inputs.len();
        jobs.push(job);
    }
    Some(jobs)
}

fn serve_batches<M: BatchModel>(
    model: &mut M,
    rx: &std::sync::Mutex<Receiver<Job>>,
    limits: BatchLimits,
    metrics: &Metrics,
) {
    while let Some(mut jobs) = next_round(rx, limits) {
        // Requests whose client has gone are not run.
        jobs.retain(|j| !j.reply.is_closed());
        for group in group_jobs(jobs) {
            run_group(model, group, metrics);
        }
    }
}

/// Groups jobs that may share a model call (same adapter and options), in arrival order; a
/// streamed or unmergeable job is a group of its own.
fn group_jobs(jobs: Vec<Job>) -> Vec<Vec<Job>> {
    let mut groups: Vec<Vec<Job>> = Vec::new();
    for job in jobs {
        let alone = job.events.is_some() || !job.mergeable;
        let home = (!alone)
            .then(|| {
                groups.iter().position(|g| {
                    let g0 = &g[0];
                    g0.events.is_none() && g0.mergeable && g0.adapter == job.adapter && g0.options == job.options
                })
            })
            .flatten();
        match home {
            Some(i) => groups[i].push(job),
            None => groups.push(vec![job]),
        }
    }
    groups
}

fn run_group<M: BatchModel>(model: &mut M, jobs: Vec<Job>, metrics: &Metrics) {
    let started = Instant::now();
    for j in &jobs {
        metrics.observe_queue(started.duration_since(j.queued).as_secs_f64());
    }
    let batch_size: usize = jobs.iter().map(|j| j.inputs.len()).sum();
    let result = {
        let events = jobs[0].events.clone();
        let mut send = |v: Value| events.as_ref().is_some_and(|tx| tx.send(v).is_ok());
        let (adapter, options) = (jobs[0].adapter.clone(), jobs[0].options.clone());
        let inputs: Vec<&Input> = jobs.iter().flat_map(|j| j.inputs.iter()).collect();
        let call = Call {
            adapter: adapter.as_deref(),
            options: &options,
            inputs,
            events: if events.is_some() { Some(&mut send) } else { None },
        };
        std::panic::catch_unwind(AssertUnwindSafe(|| model.run(call)))
            .unwrap_or_else(|_| Err(RunError::server("the model panicked on this batch")))
    };
    tracing::debug!(batch = batch_size, requests = jobs.len(), ms = started.elapsed().as_secs_f64() * 1e3, "batch");
    match result {
        Ok(out) if out.values.len() == batch_size => {
            metrics.observe_batch(batch_size, out.tokens);
            let mut values = out.values.into_iter();
            for job in jobs {
                let mine: Vec<Value> = values.by_ref().take(job.inputs.len()).collect();
                let _ = job.reply.send(Ok(Reply { values: mine, batch_size }));
            }
        }
        Ok(out) => {
            let e =
                RunError::server(format!("the model returned {} outputs for {batch_size} inputs", out.values.len()));
            for job in jobs {
                let _ = job.reply.send(Err(e.clone()));
            }
        }
        // One request's bad input must not fail the others: run them one by one.
        Err(_) if jobs.len() > 1 => {
            for job in jobs {
                run_group(model, vec![job], metrics);
            }
        }
        Err(e) => {
            for job in jobs {
                let _ = job.reply.send(Err(e.clone()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Echo;
    impl BatchModel for Echo {
        fn run(&mut self, call: Call<'_>) -> Result<Output, RunError> {
            let texts: Vec<&str> = call.inputs.iter().filter_map(|i| i.text()).collect();
            if texts.contains(&"panic") {
                panic!("asked to");
            }
            if texts.contains(&"bad") {
                return Err(RunError::client("bad input"));
            }
            let values = texts
                .iter()
                .map(|t| serde_json::json!({"text": t, "batch": texts.len(), "adapter": call.adapter}))
                .collect();
            Ok(Output { values, tokens: texts.len() })
        }
    }

    fn job(inputs: &[&str], adapter: Option<&str>) -> (Job, oneshot::Receiver<Result<Reply, RunError>>) {
        let (reply, rx) = oneshot::channel();
        let job = Job {
            inputs: inputs.iter().map(|t| Input::Text(t.to_string())).collect(),
            adapter: adapter.map(str::to_string),
            options: Value::Null,
            mergeable: true,
            events: None,
            reply,
            queued: Instant::now(),
            permit: None,
        };
        (job, rx)
    }

    /// The model threads split the kernel threads: evenly, the remainder to the first ones, at
    /// least one each.
    #[test]
    fn worker_pools_share_the_threads() {
        let share = |total, workers| (0..workers).map(|w| worker_threads(total, workers, w)).collect::<Vec<_>>();
        assert_eq!(share(2, 2), [1, 1]);
        assert_eq!(share(8, 3), [3, 3, 2]);
        assert_eq!(share(2, 3), [1, 1, 1]);
        assert_eq!(share(4, 1), [4]);
    }

    /// With two model threads, each loads its own model inside a pool of its share of the
    /// caller's threads.
    #[test]
    fn each_model_thread_loads_in_its_own_pool() {
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        let limits =
            BatchLimits { max_batch_size: 4, max_wait: Duration::from_millis(1), queue_capacity: 4, workers: 2 };
        let pool = rayon::ThreadPoolBuilder::new().num_threads(4).build().expect("a pool");
        let record = seen.clone();
        let _queue = pool.install(|| {
            start(
                limits,
                Arc::default(),
                move || {
                    record.lock().unwrap().push(rayon::current_num_threads());
                    Ok(Echo)
                },
                move |r| done_tx.send(r).unwrap(),
            )
        });
        done_rx.recv_timeout(Duration::from_secs(10)).expect("ready").expect("loaded");
        assert_eq!(*seen.lock().unwrap(), [2, 2]);
    }

    #[tokio::test]
    async fn concurrent_requests_share_batches_and_get_their_own_rows() {
        let limits =
            BatchLimits { max_batch_size: 64, max_wait: Duration::from_millis(50), queue_capacity: 16, workers: 1 };
        let queue = start(limits, Arc::default(), || Ok(Echo), |_| {});
        let mut waits = Vec::new();
        for i in 0..8 {
            let (j, rx) = job(&[&format!("a{i}"), &format!("b{i}")], if i % 2 == 0 { Some("x") } else { None });
            queue.try_send(j).unwrap_or_else(|_| panic!("queued"));
            waits.push(rx);
        }
        // A bad request in the same window fails alone.
        let (j, bad) = job(&["bad"], Some("x"));
        queue.try_send(j).unwrap_or_else(|_| panic!("queued"));
        let mut max_batch = 0;
        for (i, rx) in waits.into_iter().enumerate() {
            let out = rx.await.expect("answered").expect("ok").values;
            assert_eq!(out[0]["text"], format!("a{i}"));
            assert_eq!(out[1]["text"], format!("b{i}"));
            // Each adapter's requests run together, never mixed.
            assert_eq!(out[0]["adapter"], if i % 2 == 0 { "x".into() } else { Value::Null });
            max_batch = max_batch.max(out[0]["batch"].as_u64().unwrap_or(0));
        }
        assert!(max_batch > 2, "requests were not batched together: {max_batch}");
        assert!(bad.await.expect("answered").unwrap_err().client);
        // A panic fails its batch only; the thread lives on.
        let (j, rx) = job(&["panic"], None);
        queue.try_send(j).ok();
        assert!(rx.await.expect("answered").unwrap_err().message.contains("panicked"));
        let (j, rx) = job(&["after"], None);
        queue.try_send(j).ok();
        assert_eq!(rx.await.expect("answered").expect("ok").values[0]["text"], "after");
    }
}
