//! `ft serve`: the notebook's `POST /predict` (§12) as an HTTP server (`ft_serve::server`), for
//! every pipeline, with adapters chosen per request.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use ft_models::auto::{LoadOptions, Task, load};
use ft_models::device::{DEVICE_HELP, parse_device};
use ft_serve::pipeline::{
    AggregationStrategy, ImageClassificationPipeline, PipelineOptions, TextClassificationPipeline,
    TextGenerationPipeline, TokenClassificationPipeline,
};
use ft_serve::server::batcher::{self, BatchLimits, BatchModel};
use ft_serve::server::canary::Canary;
use ft_serve::server::metrics::Metrics;
use ft_serve::server::{AppState, Info, ServerOptions, serve, tasks};

use crate::adapters::{AdapterArgs, AdapterSpec, with_adapters};

/// Arguments of `ft serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// A local model directory or a Hub id (`org/name[@revision]`); default with `--adapter`:
    /// the adapter's base model.
    #[arg(long)]
    model: Option<String>,
    /// The task served: text-classification, token-classification, text-generation or
    /// image-classification (default: the adapter's task_type, else text-classification).
    #[arg(long)]
    task: Option<String>,
    #[command(flatten)]
    adapter: AdapterArgs,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Port (0: any free port; the address is printed on stderr).
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Most inputs a model thread takes from the queue at once (run as one call of the
    /// pipeline, length-sorted).
    #[arg(long, default_value_t = 16)]
    max_batch_size: usize,
    /// Most padded tokens (rows × longest) in one forward pass: a call's inputs, sorted by
    /// length, are cut into passes of at most this many tokens (the best on a 2-core CPU for
    /// MiniLM; BENCHMARKS.md). 0: no limit beyond --max-batch-size.
    #[arg(long, default_value_t = 512)]
    max_batch_tokens: usize,
    /// Model threads taking batches from one queue. One (the default) runs each batch on a
    /// kernel thread pool of all cores: the quickest answers at light load. With more, each has
    /// its own copy of the model and a pool of cores ÷ workers threads: more requests per second
    /// under heavy load, slower answers at light load (2 on 2 cores: ~8% more at 32 clients, up
    /// to 19% in an earlier run; a third fewer at 8; BENCHMARKS.md).
    #[arg(long, default_value_t = 1)]
    workers: usize,
    /// Longest wait (ms) for more requests after the first of a batch (requests already
    /// waiting always join it).
    #[arg(long, default_value_t = 2)]
    max_wait_ms: u64,
    /// Requests waiting or running at once; more get 429 with Retry-After.
    #[arg(long, default_value_t = 512)]
    max_concurrent_requests: usize,
    /// Truncate inputs to this many tokens (default: the model's limit); text generation does
    /// not truncate prompts (as transformers' generate): a prompt too long for new tokens is 422.
    #[arg(long)]
    max_input_length: Option<usize>,
    /// Largest request body in bytes (413 above).
    #[arg(long, default_value_t = 2 * 1024 * 1024)]
    payload_limit: usize,
    /// Seconds a request may take (504 after; a stream, until its first token).
    #[arg(long, default_value_t = 60)]
    request_timeout: u64,
    /// Seconds a client may take to send its request headers (the connection is closed after).
    #[arg(long, default_value_t = 10)]
    header_read_timeout: u64,
    /// A file holding the API key requests must send as `Authorization: Bearer <key>`.
    #[arg(long)]
    api_key_file: Option<PathBuf>,
    /// Entity grouping for token classification: `simple` or `none`.
    #[arg(long, default_value = "simple")]
    aggregation_strategy: String,
    /// A JSONL file of inputs with expected labels (`{"text": ..., "label": ...}`) run every
    /// --canary-interval seconds; its accuracy is the `ft_canary_accuracy` metric.
    #[arg(long)]
    canary: Option<PathBuf>,
    /// Seconds between canary runs.
    #[arg(long, default_value_t = 60)]
    canary_interval: u64,
    /// Device to run on.
    #[arg(long, default_value = "cpu", help = format!("Device: {DEVICE_HELP}"))]
    device: String,
}

pub fn run(args: &ServeArgs) -> Result<()> {
    let specs = args.adapter.specs()?;
    let model = args.adapter.base_model(args.model.as_deref(), &specs)?;
    let task = match &args.task {
        Some(t) => t.parse::<Task>()?,
        None => AdapterArgs::task(&specs)?.unwrap_or(Task::SequenceClassification),
    };
    let task_name = match task {
        Task::SequenceClassification => "text-classification",
        Task::TokenClassification => "token-classification",
        Task::CausalLm => "text-generation",
        Task::ImageClassification => "image-classification",
        Task::FeatureExtraction => bail!(
            "--task feature-extraction is not served (tasks: text-classification, token-classification, text-generation, image-classification)"
        ),
    };
    if task == Task::ImageClassification && !specs.is_empty() {
        bail!("--adapter: adapters apply to text models, not to image-classification");
    }
    if args.max_batch_size == 0 || args.max_concurrent_requests == 0 || args.request_timeout == 0 || args.workers == 0 {
        bail!("--max-batch-size, --max-concurrent-requests, --request-timeout and --workers must be at least 1");
    }
    if args.canary_interval == 0 || args.payload_limit == 0 {
        bail!("--canary-interval and --payload-limit must be at least 1");
    }
    let max_batch_tokens = (args.max_batch_tokens > 0).then_some(args.max_batch_tokens);
    let strategy: AggregationStrategy = args.aggregation_strategy.parse()?;
    let spec = tasks::spec(task_name).context("no such task")?;
    let canary = match &args.canary {
        Some(p) => Some((
            Canary::read(p, spec.as_ref()).map_err(anyhow::Error::msg)?,
            Duration::from_secs(args.canary_interval),
        )),
        None => None,
    };
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
        workers: args.workers,
    };
    let options = ServerOptions {
        payload_limit: args.payload_limit,
        max_concurrent_requests: args.max_concurrent_requests,
        request_timeout: Duration::from_secs(args.request_timeout),
        header_read_timeout: Duration::from_secs(args.header_read_timeout.max(1)),
        api_key,
        ..Default::default()
    };
    let default_adapter = args.adapter.active.clone().or_else(|| specs.first().map(|a| a.name.clone()));
    let info = Arc::new(Mutex::new(Info {
        model: model.clone(),
        task: task_name.to_string(),
        labels: Vec::new(),
        adapters: specs.iter().map(|a| a.name.clone()).collect(),
        default_adapter,
        limits: serde_json::json!({
            "max_batch_size": args.max_batch_size,
            "max_batch_tokens": max_batch_tokens,
            "max_wait_ms": args.max_wait_ms,
            "workers": args.workers,
            "max_concurrent_requests": args.max_concurrent_requests,
            "max_input_length": args.max_input_length,
            "payload_limit": args.payload_limit,
            "request_timeout_s": args.request_timeout,
        }),
        version: env!("CARGO_PKG_VERSION").to_string(),
    }));
    let ready = Arc::new(AtomicBool::new(false));
    let metrics = Arc::new(Metrics::default());
    let (loaded_tx, loaded_rx) = std::sync::mpsc::channel::<Result<(), String>>();
    let loader = Loader {
        model: model.clone(),
        task,
        device: args.device.clone(),
        options: PipelineOptions {
            batch_size: args.max_batch_size,
            max_length: args.max_input_length,
            max_batch_tokens,
        },
        adapter: args.adapter.clone(),
        specs,
        strategy,
        info: info.clone(),
    };
    let queue = batcher::start(limits, metrics.clone(), move || loader.load().map_err(|e| format!("{e:#}")), {
        let ready = ready.clone();
        move |r| {
            if r.is_ok() {
                ready.store(true, Ordering::Release);
            }
            let _ = loaded_tx.send(r);
        }
    });
    // The model loads before the port opens: a failure to load is an error of the command.
    match loaded_rx.recv() {
        Ok(Ok(())) => {}
        Ok(Err(e)) => bail!("{e}"),
        Err(_) => bail!("the model thread stopped while loading"),
    }
    // A canary label the model does not have is a typo, not a wrong prediction.
    if let (Some((c, _)), Some(path)) = (&canary, &args.canary) {
        let labels = info.lock().map(|i| i.labels.clone()).unwrap_or_default();
        if let Some(bad) = c.labels().iter().find(|l| !labels.contains(l)) {
            bail!("--canary {}: label \"{bad}\" is not one of the model's labels {labels:?}", path.display());
        }
    }
    let state = AppState::new(queue, ready, info, options, spec, metrics);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting tokio")?;
    runtime
        .block_on(serve(state, addr, canary, |bound| eprintln!("ft serve: listening on http://{bound}")))
        .with_context(|| format!("serving on {addr}"))?;
    eprintln!("ft serve: stopped");
    Ok(())
}

/// Loads the pipeline on the model thread.
struct Loader {
    model: String,
    task: Task,
    device: String,
    options: PipelineOptions,
    adapter: AdapterArgs,
    specs: Vec<AdapterSpec>,
    strategy: AggregationStrategy,
    info: Arc<Mutex<Info>>,
}

impl Loader {
    /// Switches to every loaded adapter once (a `--max-input-length` that leaves no room for a
    /// prompt adapter's virtual tokens is an error now, not at its first request), then back to
    /// the default.
    fn check_adapters(&self, mut switch: impl FnMut(Option<&str>) -> ft_serve::Result<()>) -> Result<()> {
        for a in &self.specs {
            switch(Some(&a.name)).with_context(|| format!("--adapter {}", a.name))?;
        }
        let default = self.adapter.active.clone().or_else(|| self.specs.first().map(|a| a.name.clone()));
        switch(default.as_deref()).context("switching back to the default adapter")?;
        Ok(())
    }

    fn load(&self) -> Result<Box<dyn BatchModel>> {
        let device = parse_device(&self.device)?;
        let set_labels = |labels: Vec<String>| {
            if let Ok(mut i) = self.info.lock() {
                i.labels = labels;
            }
        };
        if self.task == Task::ImageClassification {
            let loaded = ft_models::resnet::load(&self.model, &LoadOptions::default(), &device)
                .with_context(|| format!("loading {}", self.model))?;
            let pipe = ImageClassificationPipeline::new(
                loaded,
                &PipelineOptions { max_length: None, ..self.options },
                &device,
            )?;
            set_labels(pipe.labels().to_vec());
            return Ok(Box::new(pipe));
        }
        let load_options = LoadOptions {
            num_labels: crate::adapters::head_labels(&self.specs)?,
            own_head_unused: crate::adapters::brings_head(&self.specs),
            ..Default::default()
        };
        let loaded =
            load(&self.model, self.task, &load_options, &device).with_context(|| format!("loading {}", self.model))?;
        Ok(match self.task {
            Task::SequenceClassification => {
                let loaded = with_adapters(&self.adapter, loaded.into_sequence_classifier()?, &self.specs)?;
                let mut pipe = TextClassificationPipeline::with_adapters(loaded, &self.options, &device)?;
                self.check_adapters(|a| pipe.set_adapter(a))?;
                set_labels(pipe.labels().to_vec());
                Box::new(pipe)
            }
            Task::TokenClassification => {
                let loaded = with_adapters(&self.adapter, loaded.into_token_classifier()?, &self.specs)?;
                let mut pipe =
                    TokenClassificationPipeline::with_adapters(loaded, &self.options, self.strategy, &device)?;
                self.check_adapters(|a| pipe.set_adapter(a))?;
                set_labels(pipe.labels().to_vec());
                Box::new(pipe)
            }
            Task::CausalLm => {
                let loaded = with_adapters(&self.adapter, loaded.into_causal_lm()?, &self.specs)?;
                let mut pipe = TextGenerationPipeline::with_adapters(loaded, &self.options, &device)?;
                self.check_adapters(|a| pipe.set_adapter(a))?;
                Box::new(pipe)
            }
            Task::FeatureExtraction | Task::ImageClassification => bail!("{} is not served", self.task),
        })
    }
}
