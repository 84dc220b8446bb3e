//! `ft serve`: the notebook's `POST /predict` (§12) as an HTTP server (`ft_serve::server`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use ft_models::auto::{LoadOptions, Task, load};
use ft_models::device::{DEVICE_HELP, parse_device};
use ft_serve::pipeline::{PipelineOptions, TextClassificationPipeline};
use ft_serve::server::batcher::{self, BatchLimits};
use ft_serve::server::{AppState, Info, ServerOptions, serve};

/// Arguments of `ft serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// A local model directory or a Hub id (`org/name[@revision]`).
    #[arg(long)]
    model: String,
    /// The task served; `text-classification` today (token classification, generation and
    /// images come next).
    #[arg(long, default_value = "text-classification")]
    task: String,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Port (0: any free port; the address is printed on stderr).
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Most texts in one batch.
    #[arg(long, default_value_t = 32)]
    max_batch_size: usize,
    /// Longest wait (ms) for more requests after the first of a batch.
    #[arg(long, default_value_t = 5)]
    max_wait_ms: u64,
    /// Requests waiting or running at once; more get 429 with Retry-After.
    #[arg(long, default_value_t = 512)]
    max_concurrent_requests: usize,
    /// Truncate inputs to this many tokens (default: the model's limit).
    #[arg(long)]
    max_input_length: Option<usize>,
    /// Largest request body in bytes (413 above).
    #[arg(long, default_value_t = 2 * 1024 * 1024)]
    payload_limit: usize,
    /// Seconds a request may take (504 after).
    #[arg(long, default_value_t = 60)]
    request_timeout: u64,
    /// A file holding the API key requests must send as `Authorization: Bearer <key>`.
    #[arg(long)]
    api_key_file: Option<PathBuf>,
    /// Device to run on.
    #[arg(long, default_value = "cpu", help = format!("Device: {DEVICE_HELP}"))]
    device: String,
}

pub fn run(args: &ServeArgs) -> Result<()> {
    let task: Task = args.task.parse()?;
    if task != Task::SequenceClassification {
        bail!("--task {task}: ft serve answers text-classification today (the other tasks are not served yet)");
    }
    if args.max_batch_size == 0 || args.max_concurrent_requests == 0 || args.request_timeout == 0 {
        bail!("--max-batch-size, --max-concurrent-requests and --request-timeout must be at least 1");
    }
    parse_device(&args.device)?; // checked now: the model thread parses it again
    let api_key = match &args.api_key_file {
        Some(p) => {
            let key = std::fs::read_to_string(p).with_context(|| format!("reading --api-key-file {}", p.display()))?;
            let key = key.trim().to_string();
            if key.is_empty() {
                bail!("--api-key-file {}: the file is empty", p.display());
            }
            Some(key)
        }
        None => None,
    };
    let addr: SocketAddr = format!("{}:{}", args.host, args.port)
        .parse()
        .or_else(|_| {
            use std::net::ToSocketAddrs;
            format!("{}:{}", args.host, args.port)
                .to_socket_addrs()
                .map_err(anyhow::Error::from)?
                .next()
                .context("no address")
        })
        .with_context(|| format!("--host {} --port {}", args.host, args.port))?;
    let limits = BatchLimits {
        max_batch_size: args.max_batch_size,
        max_wait: Duration::from_millis(args.max_wait_ms),
        queue_capacity: args.max_concurrent_requests,
    };
    let options = ServerOptions {
        payload_limit: args.payload_limit,
        max_concurrent_requests: args.max_concurrent_requests,
        request_timeout: Duration::from_secs(args.request_timeout),
        api_key,
        ..Default::default()
    };
    let info = Arc::new(Mutex::new(Info {
        model: args.model.clone(),
        task: task.to_string(),
        labels: Vec::new(),
        limits: serde_json::json!({
            "max_batch_size": args.max_batch_size,
            "max_wait_ms": args.max_wait_ms,
            "max_concurrent_requests": args.max_concurrent_requests,
            "max_input_length": args.max_input_length,
            "payload_limit": args.payload_limit,
            "request_timeout_s": args.request_timeout,
        }),
        version: env!("CARGO_PKG_VERSION").to_string(),
    }));
    let ready = Arc::new(AtomicBool::new(false));
    let (loaded_tx, loaded_rx) = std::sync::mpsc::channel::<Result<(), String>>();
    let (model, device, max_length, batch) =
        (args.model.clone(), args.device.clone(), args.max_input_length, args.max_batch_size);
    let info_for_model = info.clone();
    let queue = batcher::start(
        limits,
        move || {
            let device = parse_device(&device).map_err(|e| e.to_string())?;
            let loaded = load(&model, Task::SequenceClassification, &LoadOptions::default(), &device)
                .and_then(|l| l.into_sequence_classifier())
                .map_err(|e| format!("loading {model}: {e}"))?;
            let pipe =
                TextClassificationPipeline::new(loaded, &PipelineOptions { batch_size: batch, max_length }, &device)
                    .map_err(|e| e.to_string())?;
            if let Ok(mut i) = info_for_model.lock() {
                i.labels = pipe.labels().to_vec();
            }
            Ok(pipe)
        },
        {
            let ready = ready.clone();
            move |r| {
                if r.is_ok() {
                    ready.store(true, Ordering::Release);
                }
                let _ = loaded_tx.send(r);
            }
        },
    );
    // The model loads before the port opens: a failure to load is an error of the command.
    match loaded_rx.recv() {
        Ok(Ok(())) => {}
        Ok(Err(e)) => bail!("{e}"),
        Err(_) => bail!("the model thread stopped while loading"),
    }
    let state = AppState::new(queue, ready, info, options);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting tokio")?;
    runtime
        .block_on(serve(state, addr, |bound| eprintln!("ft serve: listening on http://{bound}")))
        .with_context(|| format!("serving on {addr}"))?;
    eprintln!("ft serve: stopped");
    Ok(())
}
