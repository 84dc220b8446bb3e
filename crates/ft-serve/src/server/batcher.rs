//! Dynamic batching: requests queue in a bounded channel; one model thread takes what is
//! waiting — up to `max_batch_size` inputs, waiting at most `max_wait` for more after the first —
//! runs them as one call of the model (which sorts by length and pads per batch) and answers each
//! request with its own rows. A panic inside the model fails that batch's requests only.

use std::panic::AssertUnwindSafe;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

/// What the model thread runs: many inputs in, one result per input out (in order).
pub trait BatchModel {
    /// One output per input, in order; an error fails the whole call.
    fn run(&self, inputs: &[String]) -> Result<Vec<serde_json::Value>, String>;
}

/// One request's inputs and where its answer goes.
pub struct Job {
    /// The request's inputs (one or more texts).
    pub inputs: Vec<String>,
    /// Its answer: one value per input, or an error message.
    pub reply: oneshot::Sender<Result<Vec<serde_json::Value>, String>>,
    /// When it was queued (the batch's longest queue time is logged).
    pub queued: Instant,
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
    /// Most inputs per model call.
    pub max_batch_size: usize,
    /// Longest wait for more requests after the first of a batch.
    pub max_wait: Duration,
    /// Queued requests beyond which new ones are refused.
    pub queue_capacity: usize,
}

/// Starts the model thread: `load` builds the model there (it need not be `Send`); `on_ready`
/// is called with its result before the first batch. Returns the queue.
pub fn start<M, L, R>(limits: BatchLimits, load: L, on_ready: R) -> Queue
where
    M: BatchModel + 'static,
    L: FnOnce() -> Result<M, String> + Send + 'static,
    R: FnOnce(Result<(), String>) + Send + 'static,
{
    let (tx, rx) = sync_channel::<Job>(limits.queue_capacity.max(1));
    std::thread::Builder::new()
        .name("ft-serve-model".into())
        .spawn(move || match load() {
            Ok(model) => {
                on_ready(Ok(()));
                serve_batches(&model, &rx, limits);
            }
            Err(e) => on_ready(Err(e)),
        })
        .map(|_| ())
        .unwrap_or_else(|e| tracing::error!(error = %e, "cannot start the model thread"));
    Queue { tx }
}

fn serve_batches<M: BatchModel>(model: &M, rx: &Receiver<Job>, limits: BatchLimits) {
    while let Ok(first) = rx.recv() {
        let deadline = Instant::now() + limits.max_wait;
        let mut size = first.inputs.len();
        let mut jobs = vec![first];
        while size < limits.max_batch_size {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            match rx.recv_timeout(deadline - now) {
                Ok(job) => {
                    size += job.inputs.len();
                    jobs.push(job);
                }
                Err(RecvTimeoutError::Timeout) => break,
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        run_batch(model, jobs);
    }
}

fn run_batch<M: BatchModel>(model: &M, jobs: Vec<Job>) {
    // Requests whose client has gone are not run.
    let jobs: Vec<Job> = jobs.into_iter().filter(|j| !j.reply.is_closed()).collect();
    if jobs.is_empty() {
        return;
    }
    let inputs: Vec<String> = jobs.iter().flat_map(|j| j.inputs.iter().cloned()).collect();
    let started = Instant::now();
    let queued_ms = jobs.iter().map(|j| started.duration_since(j.queued).as_secs_f64() * 1e3).fold(0.0, f64::max);
    let result = std::panic::catch_unwind(AssertUnwindSafe(|| model.run(&inputs)))
        .unwrap_or_else(|_| Err("the model panicked on this batch".to_string()));
    tracing::debug!(
        batch = inputs.len(),
        requests = jobs.len(),
        queued_ms,
        ms = started.elapsed().as_secs_f64() * 1e3,
        "batch"
    );
    match result {
        Ok(outputs) if outputs.len() == inputs.len() => {
            let mut outputs = outputs.into_iter();
            for job in jobs {
                let mine: Vec<serde_json::Value> = outputs.by_ref().take(job.inputs.len()).collect();
                let _ = job.reply.send(Ok(mine));
            }
        }
        Ok(outputs) => {
            let e = format!("the model returned {} outputs for {} inputs", outputs.len(), inputs.len());
            for job in jobs {
                let _ = job.reply.send(Err(e.clone()));
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
        fn run(&self, inputs: &[String]) -> Result<Vec<serde_json::Value>, String> {
            if inputs.iter().any(|i| i == "panic") {
                panic!("asked to");
            }
            Ok(inputs.iter().map(|i| serde_json::json!({"text": i, "batch": inputs.len()})).collect())
        }
    }

    #[tokio::test]
    async fn concurrent_requests_share_batches_and_get_their_own_rows() {
        let limits = BatchLimits { max_batch_size: 64, max_wait: Duration::from_millis(50), queue_capacity: 16 };
        let queue = start(limits, || Ok(Echo), |_| {});
        let mut waits = Vec::new();
        for i in 0..8 {
            let (reply, rx) = oneshot::channel();
            let inputs = vec![format!("a{i}"), format!("b{i}")];
            queue.try_send(Job { inputs, reply, queued: Instant::now() }).unwrap_or_else(|_| panic!("queued"));
            waits.push(rx);
        }
        let mut max_batch = 0;
        for (i, rx) in waits.into_iter().enumerate() {
            let out = rx.await.expect("answered").expect("ok");
            assert_eq!(out[0]["text"], format!("a{i}"));
            assert_eq!(out[1]["text"], format!("b{i}"));
            max_batch = max_batch.max(out[0]["batch"].as_u64().unwrap_or(0));
        }
        assert!(max_batch > 2, "requests were not batched together: {max_batch}");
        // A panic fails its batch only; the thread lives on.
        let (reply, rx) = oneshot::channel();
        queue.try_send(Job { inputs: vec!["panic".into()], reply, queued: Instant::now() }).ok();
        assert!(rx.await.expect("answered").unwrap_err().contains("panicked"));
        let (reply, rx) = oneshot::channel();
        queue.try_send(Job { inputs: vec!["after".into()], reply, queued: Instant::now() }).ok();
        assert_eq!(rx.await.expect("answered").expect("ok")[0]["text"], "after");
    }
}
