//! `cargo xtask fuzz`: a fuzz harness for every parser of outside input, on the stable toolchain.
//!
//! ```text
//! cargo xtask fuzz                      # every target, 10 s each
//! cargo xtask fuzz --target safetensors --seconds 60 --seed 7
//! cargo xtask fuzz --list
//! cargo xtask fuzz --replay target/fuzz/crashes          # DIR/<target>/<input> (or --target T DIR)
//! cargo xtask fuzz --replay tests/fixtures/fuzz          # the regression corpus (also a test)
//! ```
//!
//! # Design, and why
//!
//! - **Stable Rust, no new dependencies.** cargo-fuzz needs nightly (not installable here);
//!   cargo-afl needs AFL++ built with its LLVM plugins and an instrumented build of Burn, tokenizers
//!   and arrow — far too slow to build and run on a 2-core machine, and a second toolchain to keep
//!   working. So the fuzzer is written here: in-process, **coverage-blind but structure-aware**, with
//!   a SplitMix64 generator of its own ([`rng`]) and `serde_json`/`toml` (already dependencies) for
//!   structured mutation. Without coverage feedback, depth comes from structure: mutations that know
//!   JSON, TOML, safetensors headers, zip archives and the pickle opcodes inside them, PNG chunks
//!   (CRCs recomputed) and JPEG segments ([`mutate`], [`formats`]), so mutated inputs get past the
//!   first checks. A cheap substitute for coverage steers the corpus: an input whose *error*
//!   (its first line, numbers and quoted or bracketed values blanked) has not been seen before
//!   joins the corpus (at most 500 such inputs; half the mutations still start from a seed).
//! - **Seeds are real files**: the repository's fixtures (`tests/fixtures/**`, `datasets/*.toml`,
//!   the run files of `benches/runs` and of README/docs code blocks) and `../shared/data` when
//!   present (text files cut to 64 KiB), plus small generated ones ([`targets`]).
//! - **Targets call ft's public parsers** exactly as ft does, and what ft does with the result
//!   right after (tensors taken, labels and transforms derived, a saved run file read back). A
//!   target returns the parser's `Err` (the right answer to bad input); only panics and hangs are
//!   findings. Path-taking readers get the input in a scratch file under `/dev/shm` (else the
//!   system temp directory).
//! - **Findings.** Each input runs under `catch_unwind` with the panic hook silenced (message,
//!   location and, the first time a location is seen, a backtrace recorded); a watchdog thread
//!   flags an input slower than `--hang-ms` (2 s) as a hang. A panic or hang saves the input to
//!   `target/fuzz/crashes/<target>/<fnv64>` with `<fnv64>.txt` beside it (what, where, the
//!   backtrace, the command that replays it), and the run exits non-zero. The first input of each
//!   panic location is minimized first (ranges removed while it panics at the same place, 3 s).
//! - **Process isolation for what `catch_unwind` cannot catch.** Each target runs in a worker
//!   process (this binary, `fuzz --worker`) under `ulimit -v` (`--memory-mb`, 4 GiB): an input
//!   that aborts (an allocation failure — the worker's memory bound turns an OOM into one —, a stack
//!   overflow, an abort in C code) kills only the worker; the supervisor saves the input the worker
//!   had written to its in-flight file before running it, records a "died" finding, and starts a new
//!   worker for the rest of the budget. An input stuck for 5× the hang bound (at least 10 s) makes
//!   the worker exit the same way. The worker keeps its figures in a file, so that they survive it.
//! - **Bounds.** Inputs are at most `--max-len` bytes (1 MiB). Memory is bounded only by the
//!   worker's address-space limit: OOM is not caught in-process, and an input that needs more than
//!   the limit shows up as a "died" finding, not a panic.
//! - **Build.** `cargo xtask` runs the dev profile: dependencies at `opt-level = 3`, and overflow
//!   checks and debug assertions on everywhere — an arithmetic overflow is a panic here, as in
//!   cargo-fuzz's default, where a release build would wrap silently.
//!
//! Not covered: the `ft` binary's own readers (`ft predict`'s JSONL input lives in `ft-cli`, a
//! binary crate the xtask cannot link), and a config's model sizes (`vocab_size`,
//! `hidden_size`): only parsed and checked here, no model is built from a fuzzed config.
//!
//! Every crash found and fixed becomes a regression input in `tests/fixtures/fuzz/<target>/`,
//! replayed by this module's test `regression_corpus_replays_clean` (part of
//! `cargo test --workspace`): it fails if any input panics or hangs. Inputs whose name contains
//! `known-failing` reproduce a bug not yet fixed: the test skips them (it lists them), `--replay`
//! runs them.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

pub mod formats;
pub mod mutate;
pub mod rng;
pub mod targets;

use mutate::Mutator;
use rng::Rng;
use targets::{Ctx, SeedSource, Target};

/// `cargo xtask fuzz` options.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Fuzz only this target (`--list` names them).
    #[arg(long)]
    pub target: Option<String>,
    /// Seconds per target.
    #[arg(long, default_value_t = 10.0)]
    pub seconds: f64,
    /// The run's seed (default: from the clock; printed, so that a run can be repeated).
    #[arg(long)]
    pub seed: Option<u64>,
    /// List the targets and exit.
    #[arg(long)]
    pub list: bool,
    /// Run saved inputs once each instead of fuzzing: DIR/<target>/<input>, DIR holding one
    /// target's inputs (with --target, or DIR named after the target), or one input file.
    #[arg(long, value_name = "DIR")]
    pub replay: Option<PathBuf>,
    /// An input slower than this (milliseconds) is a hang.
    #[arg(long, default_value_t = 2000)]
    pub hang_ms: u64,
    /// The longest input, in bytes.
    #[arg(long, default_value_t = 1 << 20)]
    pub max_len: usize,
    /// Address-space limit of each worker process, MiB (0: none).
    #[arg(long, default_value_t = 4096)]
    pub memory_mb: u64,
    /// Where findings go (default: target/fuzz under the repository).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Internal: run one target in this process (the supervisor starts workers).
    #[arg(long, hide = true)]
    pub worker: bool,
    /// Internal: the worker's scratch directory.
    #[arg(long, hide = true)]
    pub scratch: Option<PathBuf>,
}

/// A worker's figures for one target (summed over restarts by the supervisor).
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Stats {
    /// Inputs run.
    pub tried: u64,
    /// Seconds spent.
    pub seconds: f64,
    /// Inputs that panicked.
    pub crashing_inputs: u64,
    /// Distinct panic locations (file:line:col), with a saved input each.
    pub unique_crashes: BTreeMap<String, String>,
    /// Inputs slower than the hang bound (their hashes).
    pub hangs: BTreeSet<String>,
    /// Inputs that killed the worker (their hashes).
    pub died: BTreeSet<String>,
    /// The slowest input's time, milliseconds, and hash.
    pub slowest_ms: f64,
    /// The slowest input's hash.
    pub slowest: String,
    /// Seeds, and corpus size at the end.
    pub seeds: usize,
    /// Corpus size at the end (seeds plus inputs with new outcomes).
    pub corpus: usize,
    /// Distinct outcomes (ok, or an error class).
    pub outcomes: usize,
}

impl Stats {
    fn merge(&mut self, o: Stats) {
        self.tried += o.tried;
        self.seconds += o.seconds;
        self.crashing_inputs += o.crashing_inputs;
        self.unique_crashes.extend(o.unique_crashes);
        self.hangs.extend(o.hangs);
        self.died.extend(o.died);
        if o.slowest_ms > self.slowest_ms {
            self.slowest_ms = o.slowest_ms;
            self.slowest = o.slowest;
        }
        self.seeds = self.seeds.max(o.seeds);
        self.corpus = self.corpus.max(o.corpus);
        self.outcomes = self.outcomes.max(o.outcomes);
    }

    fn findings(&self) -> usize {
        self.unique_crashes.len() + self.hangs.len() + self.died.len()
    }
}

/// FNV-1a, 64 bits.
fn fnv64_u64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// FNV-1a, 64 bits, in hex: the name of a saved input.
pub fn fnv64(bytes: &[u8]) -> String {
    format!("{:016x}", fnv64_u64(bytes))
}

fn find_target(name: &str) -> Result<Target> {
    let all = targets::all();
    let names: Vec<&str> = all.iter().map(|t| t.name).collect();
    let joined = names.join(", ");
    all.into_iter()
        .find(|t| t.name == name)
        .with_context(|| format!("unknown fuzz target '{name}' (targets: {joined})"))
}

/// Runs `cargo xtask fuzz`.
pub fn run(args: Args, root: &Path) -> Result<()> {
    if args.list {
        for t in targets::all() {
            println!("{:<15} {}", t.name, t.about.split_whitespace().collect::<Vec<_>>().join(" "));
        }
        return Ok(());
    }
    if let Some(dir) = &args.replay {
        return replay_command(dir, args.target.as_deref(), &args, root);
    }
    if args.worker {
        return worker(&args, root);
    }
    let chosen: Vec<Target> = match &args.target {
        Some(name) => vec![find_target(name)?],
        None => targets::all(),
    };
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64)
    });
    let out = args.out.clone().unwrap_or_else(|| root.join("target/fuzz"));
    eprintln!(
        "fuzzing {} target(s), {} s each, seed {seed} (repeat with --seed {seed}); findings in {}",
        chosen.len(),
        args.seconds,
        out.join("crashes").display()
    );
    let mut rows = Vec::new();
    for t in &chosen {
        let stats = supervise(t, &args, seed, &out)?;
        rows.push((t.name, stats));
    }
    println!();
    println!(
        "| target | inputs | inputs/s | crashing inputs | unique crashes | hangs | died | slowest (ms) | seeds → corpus | outcomes |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---|---:|");
    let mut findings = 0;
    for (name, s) in &rows {
        findings += s.findings();
        println!(
            "| {name} | {} | {:.0} | {} | {} | {} | {} | {:.0} | {} → {} | {} |",
            s.tried,
            s.tried as f64 / s.seconds.max(1e-9),
            s.crashing_inputs,
            s.unique_crashes.len(),
            s.hangs.len(),
            s.died.len(),
            s.slowest_ms,
            s.seeds,
            s.corpus,
            s.outcomes
        );
    }
    for (name, s) in &rows {
        for (location, hash) in &s.unique_crashes {
            println!("{name}: panic at {location}: {}", out.join("crashes").join(name).join(hash).display());
        }
        for hash in &s.hangs {
            println!("{name}: hang: {}", out.join("crashes").join(name).join(hash).display());
        }
        for hash in &s.died {
            println!("{name}: died: {}", out.join("crashes").join(name).join(hash).display());
        }
    }
    if findings > 0 {
        bail!("{findings} finding(s): inputs and reports under {}", out.join("crashes").display());
    }
    Ok(())
}

/// A scratch directory for a worker: under /dev/shm when it exists (scratch files are written
/// for every input).
fn scratch_base() -> PathBuf {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() { shm.to_path_buf() } else { std::env::temp_dir() }
}

/// Runs one target in worker processes until its budget is spent, restarting a worker that died.
fn supervise(t: &Target, args: &Args, seed: u64, out: &Path) -> Result<Stats> {
    let deadline = Instant::now() + Duration::from_secs_f64(args.seconds.max(0.0));
    let exe = std::env::current_exe().context("locating the xtask binary")?;
    let mut total = Stats::default();
    for restart in 0u64.. {
        let left = deadline.saturating_duration_since(Instant::now());
        if left < Duration::from_millis(100) || restart > 100 {
            break;
        }
        let scratch = scratch_base().join(format!("ft-fuzz-{}-{}-{restart}", std::process::id(), t.name));
        std::fs::create_dir_all(&scratch).with_context(|| format!("creating {}", scratch.display()))?;
        let worker_seed = seed ^ fnv64_u64(t.name.as_bytes()) ^ restart.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let mut worker_args: Vec<String> = vec![
            "fuzz".into(),
            "--worker".into(),
            "--target".into(),
            t.name.into(),
            "--seconds".into(),
            format!("{:.3}", left.as_secs_f64()),
            "--seed".into(),
            worker_seed.to_string(),
            "--hang-ms".into(),
            args.hang_ms.to_string(),
            "--max-len".into(),
            args.max_len.to_string(),
            "--out".into(),
            out.display().to_string(),
            "--scratch".into(),
            scratch.display().to_string(),
        ];
        let mut cmd = if args.memory_mb > 0 {
            let mut c = Command::new("sh");
            c.arg("-c").arg(format!("ulimit -v {} && exec \"$0\" \"$@\"", args.memory_mb * 1024)).arg(&exe);
            c
        } else {
            Command::new(&exe)
        };
        worker_args.iter_mut().for_each(|a| {
            cmd.arg(a.as_str());
        });
        cmd.stdout(Stdio::null()).stderr(Stdio::piped()).env("RUST_BACKTRACE", "0");
        let mut child = cmd.spawn().with_context(|| format!("starting a fuzz worker ({})", exe.display()))?;
        // The worker's stderr is shown as it comes; its tail explains a death.
        let tail = Arc::new(Mutex::new(Vec::<String>::new()));
        let forward = child.stderr.take().map(|stderr| {
            let tail = tail.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(|l| l.ok()) {
                    eprintln!("{line}");
                    if let Ok(mut t) = tail.lock() {
                        t.push(line);
                        let n = t.len();
                        if n > 40 {
                            t.drain(..n - 40);
                        }
                    }
                }
            })
        });
        // The worker ends itself at its deadline and on a stuck input; this is the safety net.
        let kill_at = Instant::now() + left + Duration::from_millis(args.hang_ms * 5) + Duration::from_secs(30);
        let status = loop {
            if let Some(s) = child.try_wait()? {
                break s;
            }
            if Instant::now() > kill_at {
                let _ = child.kill();
                break child.wait()?;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        if let Some(f) = forward {
            let _ = f.join();
        }
        // The worker keeps its figures in a file (written every second and at each finding), so
        // that they survive its death.
        let stats = std::fs::read(scratch.join(STATS_FILE)).ok().and_then(|b| serde_json::from_slice::<Stats>(&b).ok());
        let finished = status.success();
        if let Some(s) = stats {
            total.merge(s);
        }
        if !finished && status.code() != Some(3) {
            // Died: the in-flight input is the culprit.
            let input = std::fs::read(scratch.join("in-flight")).unwrap_or_default();
            let why = tail.lock().map(|t| t.join("\n")).unwrap_or_default();
            let hash = save_finding(out, t.name, &input, &format!("died: worker exited with {status}"), &why)?;
            eprintln!("{}: input {hash} killed the worker ({status}); restarting", t.name);
            total.died.insert(hash);
        }
        let _ = std::fs::remove_dir_all(&scratch);
        if finished {
            break;
        }
    }
    Ok(total)
}

/// Saves a finding's input and its report; returns the input's hash.
fn save_finding(out: &Path, target: &str, input: &[u8], what: &str, details: &str) -> Result<String> {
    let dir = out.join("crashes").join(target);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let hash = fnv64(input);
    std::fs::write(dir.join(&hash), input)?;
    let report = format!(
        "target: {target}\n{what}\ninput: {} bytes\nreplay: cargo xtask fuzz --target {target} --replay {}\n\n{details}\n",
        input.len(),
        dir.join(&hash).display()
    );
    std::fs::write(dir.join(format!("{hash}.txt")), report)?;
    Ok(hash)
}

// ---- panics ----

/// What the panic hook saw.
#[derive(Debug, Clone)]
struct PanicRecord {
    message: String,
    location: String,
    backtrace: Option<String>,
}

static QUIET_ALL: AtomicBool = AtomicBool::new(false);
static LAST_PANIC: Mutex<Option<PanicRecord>> = Mutex::new(None);
static SEEN_LOCATIONS: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

thread_local! {
    static QUIET_HERE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Installs the quiet panic hook once: while fuzzing (every thread of a worker, or the thread
/// replaying inputs) a panic is recorded, not printed; other panics go to the default hook.
fn install_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !(QUIET_ALL.load(Ordering::Relaxed) || QUIET_HERE.with(|q| q.get())) {
                return default(info);
            }
            let message = info
                .payload()
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| info.payload().downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "(non-string panic payload)".into());
            let location = info
                .location()
                .map_or("unknown location".into(), |l| format!("{}:{}:{}", l.file(), l.line(), l.column()));
            let new = SEEN_LOCATIONS.lock().map(|mut s| s.insert(location.clone())).unwrap_or(false);
            let backtrace = new.then(|| trim_backtrace(&std::backtrace::Backtrace::force_capture().to_string()));
            if let Ok(mut last) = LAST_PANIC.lock()
                && last.is_none()
            {
                *last = Some(PanicRecord { message, location, backtrace });
            }
        }));
    });
}

/// The frames of a backtrace below the panic machinery, at most 60 lines.
fn trim_backtrace(bt: &str) -> String {
    let lines: Vec<&str> = bt.lines().collect();
    let start = lines
        .iter()
        .position(|l| l.contains("rust_begin_unwind") || l.contains("core::panicking::panic_fmt"))
        .map_or(0, |i| i + 2);
    lines[start.min(lines.len())..].iter().take(60).copied().collect::<Vec<_>>().join("\n")
}

/// How one input ended.
enum Outcome {
    Ok,
    Err(String),
    Panic(PanicRecord),
}

/// Runs one input, catching a panic.
fn run_one(t: &Target, input: &[u8], ctx: &Ctx) -> Outcome {
    if let Ok(mut last) = LAST_PANIC.lock() {
        *last = None;
    }
    match std::panic::catch_unwind(AssertUnwindSafe(|| (t.run)(input, ctx))) {
        Ok(Ok(())) => Outcome::Ok,
        Ok(Err(e)) => Outcome::Err(e),
        Err(payload) => {
            let recorded = LAST_PANIC.lock().ok().and_then(|mut l| l.take());
            Outcome::Panic(recorded.unwrap_or_else(|| {
                PanicRecord {
                    message: payload
                        .downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| payload.downcast_ref::<String>().cloned())
                        .unwrap_or_default(),
                    location: "unknown location".into(),
                    backtrace: None,
                }
            }))
        }
    }
}

/// The class of an error message: quoted and bracketed values blanked, words with digits
/// (numbers, offsets, hex bytes) made `#`, the scratch path dropped; the first line, at most 120
/// characters.
fn outcome_class(e: &str, scratch: &Path) -> String {
    let mut e = e.lines().next().unwrap_or("").replace(&scratch.display().to_string(), "");
    // `--set` overrides are echoed in messages: keep the message, not the override.
    while let Some(i) = e.find("--set ") {
        let rest = &e[i + 6..];
        let end = rest.find([':', ')']).unwrap_or(rest.len());
        e = format!("{}--set{}", &e[..i], &rest[end..]);
    }
    let mut out = String::new();
    let mut quote: Option<char> = None;
    let mut depth = 0usize;
    for c in e.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => {
                quote = None;
                out.push(c);
            }
            (Some(_), _) => {}
            (None, '[' | '{') => {
                depth += 1;
                if depth == 1 {
                    out.push(c);
                }
            }
            (None, ']' | '}') if depth > 0 => depth -= 1,
            _ if depth > 0 => {}
            (None, '\'' | '"' | '`') => {
                quote = Some(c);
                out.push(c);
            }
            (None, c) => out.push(c),
        }
        if out.len() >= 160 {
            break;
        }
    }
    // Words holding a digit (numbers, hex bytes, offsets) become '#'.
    let mut class = String::new();
    let mut word = String::new();
    for c in out.chars().chain(std::iter::once(' ')) {
        if c.is_ascii_alphanumeric() || c == '_' {
            word.push(c);
            continue;
        }
        if word.chars().any(|w| w.is_ascii_digit()) {
            class.push('#');
        } else {
            class.push_str(&word);
        }
        word.clear();
        class.push(c);
    }
    class.trim_end().chars().take(120).collect()
}

// ---- the worker ----

static CURRENT_INPUT: AtomicU64 = AtomicU64::new(0);
static CURRENT_START_MS: AtomicU64 = AtomicU64::new(0);

fn worker(args: &Args, root: &Path) -> Result<()> {
    let t = find_target(args.target.as_deref().context("--worker needs --target")?)?;
    let scratch = args.scratch.clone().context("--worker needs --scratch")?;
    let out = args.out.clone().unwrap_or_else(|| root.join("target/fuzz"));
    let deadline = Instant::now() + Duration::from_secs_f64(args.seconds.max(0.0));
    let ctx = Ctx::new(&scratch.join("files"), root)?;
    let shared = root.join("../shared/data");
    let source =
        SeedSource { root: root.to_path_buf(), shared: shared.is_dir().then_some(shared), max_len: args.max_len };
    let seeds = (t.seeds)(&source);
    let mut dict: Vec<Vec<u8>> = t.dict.iter().map(|s| s.as_bytes().to_vec()).collect();
    for s in &seeds {
        mutate::harvest(&s.bytes, &mut dict);
    }
    dict.sort();
    dict.dedup();
    let mut corpus: Vec<Vec<u8>> = seeds.iter().map(|s| s.bytes.clone()).collect();
    eprintln!(
        "{}: {} seeds ({}), {} dictionary tokens, {:.1} s",
        t.name,
        seeds.len(),
        seeds.iter().take(4).map(|s| s.origin.as_str()).collect::<Vec<_>>().join(", ")
            + if seeds.len() > 4 { ", ..." } else { "" },
        dict.len(),
        args.seconds
    );
    let stats = Arc::new(Mutex::new(Stats { seeds: corpus.len(), ..Default::default() }));
    let stats_path = scratch.join(STATS_FILE);
    let mut last_write = Instant::now();
    install_hook();
    let in_flight_path = scratch.join("in-flight");
    let mut in_flight = std::fs::File::create(&in_flight_path)?;
    let started = Instant::now();
    spawn_watchdog(
        t.name,
        args.hang_ms,
        started,
        in_flight_path.clone(),
        out.clone(),
        stats.clone(),
        stats_path.clone(),
    );

    let mut rng = Rng::new(args.seed.unwrap_or(1));
    let mut outcomes: BTreeSet<String> = BTreeSet::new();
    let mut counter = 0u64;
    let max_corpus = corpus.len() + 500;
    loop {
        if Instant::now() >= deadline {
            break;
        }
        // The seeds first, then mutations (and now and then an input generated from nothing).
        let input = if (counter as usize) < seeds.len() {
            seeds[counter as usize].bytes.clone()
        } else {
            // Half the time a seed (the real files), else anything in the corpus.
            let base_index = if rng.one_in(2) { rng.below(seeds.len()) } else { rng.below(corpus.len()) };
            let mut m = Mutator {
                rng: &mut rng,
                dict: &dict,
                corpus: &corpus,
                formats: t.formats,
                parts: t.parts,
                max_len: args.max_len,
            };
            if corpus.is_empty() || m.rng.one_in(25) {
                let g = mutate::generate(&mut m);
                m.mutate(&g)
            } else {
                m.mutate(&corpus[base_index])
            }
        };
        counter += 1;
        in_flight.seek(SeekFrom::Start(0))?;
        in_flight.write_all(&input)?;
        in_flight.set_len(input.len() as u64)?;
        CURRENT_START_MS.store(started.elapsed().as_millis() as u64, Ordering::SeqCst);
        CURRENT_INPUT.store(counter, Ordering::SeqCst);
        let t0 = Instant::now();
        // Quiet on every thread while the target runs (its rayon workers too); the fuzzer's own
        // panics stay loud.
        QUIET_ALL.store(true, Ordering::SeqCst);
        let outcome = run_one(&t, &input, &ctx);
        QUIET_ALL.store(false, Ordering::SeqCst);
        let ms = t0.elapsed().as_secs_f64() * 1e3;
        CURRENT_INPUT.store(0, Ordering::SeqCst);
        let mut s = stats.lock().map_err(|_| anyhow::anyhow!("stats lock poisoned"))?;
        s.tried += 1;
        if ms > s.slowest_ms {
            s.slowest_ms = ms;
            s.slowest = fnv64(&input);
        }
        let mut found = false;
        match outcome {
            Outcome::Panic(p) => {
                s.crashing_inputs += 1;
                found = true;
                if let std::collections::btree_map::Entry::Vacant(slot) = s.unique_crashes.entry(p.location.clone()) {
                    let small = minimize(&t, &input, &p.location, &ctx, Duration::from_secs(3));
                    let details = format!(
                        "message: {}\nlocation: {}\n(minimized from {} to {} bytes)\n\nbacktrace:\n{}",
                        p.message,
                        p.location,
                        input.len(),
                        small.len(),
                        p.backtrace.as_deref().unwrap_or("(seen before)")
                    );
                    let hash = save_finding(&out, t.name, &small, &format!("panic at {}", p.location), &details)?;
                    eprintln!(
                        "{}: PANIC at {}: {} -> {}",
                        t.name,
                        p.location,
                        p.message.lines().next().unwrap_or(""),
                        out.join("crashes").join(t.name).join(&hash).display()
                    );
                    slot.insert(hash);
                }
            }
            Outcome::Ok => {
                if outcomes.insert("ok".into()) && corpus.len() < max_corpus && counter as usize > seeds.len() {
                    corpus.push(input);
                }
            }
            Outcome::Err(e) => {
                if std::env::var_os("FT_FUZZ_SHOW_OUTCOMES").is_some()
                    && !outcomes.contains(&outcome_class(&e, &scratch))
                {
                    eprintln!("new outcome: {}", outcome_class(&e, &scratch));
                }
                if outcomes.insert(outcome_class(&e, &scratch))
                    && corpus.len() < max_corpus
                    && counter as usize > seeds.len()
                {
                    corpus.push(input);
                }
            }
        }
        s.corpus = corpus.len();
        s.outcomes = outcomes.len();
        if found || last_write.elapsed() > Duration::from_secs(1) {
            s.seconds = started.elapsed().as_secs_f64();
            write_stats(&stats_path, &s)?;
            last_write = Instant::now();
        }
    }
    let mut s = stats.lock().map_err(|_| anyhow::anyhow!("stats lock poisoned"))?;
    s.seconds = started.elapsed().as_secs_f64();
    write_stats(&stats_path, &s)
}

/// The worker's figures file, in its scratch directory.
const STATS_FILE: &str = "stats.json";

/// Writes the figures atomically (the supervisor may read them after a crash at any moment).
fn write_stats(path: &Path, s: &Stats) -> Result<()> {
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_vec(s)?)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

/// A smaller input panicking at the same place: ranges removed, halves first, then ever smaller
/// pieces (delta debugging), within `budget`.
fn minimize(t: &Target, input: &[u8], location: &str, ctx: &Ctx, budget: Duration) -> Vec<u8> {
    let deadline = Instant::now() + budget;
    let mut best = input.to_vec();
    let mut chunk = best.len() / 2;
    QUIET_ALL.store(true, Ordering::SeqCst);
    while chunk > 0 && Instant::now() < deadline {
        let mut at = 0;
        let mut removed_any = false;
        while at < best.len() && Instant::now() < deadline {
            let end = (at + chunk).min(best.len());
            let mut candidate = best[..at].to_vec();
            candidate.extend_from_slice(&best[end..]);
            match run_one(t, &candidate, ctx) {
                Outcome::Panic(p) if p.location == location => {
                    best = candidate;
                    removed_any = true;
                }
                _ => at += chunk,
            }
        }
        if !removed_any {
            chunk /= 2;
        }
    }
    QUIET_ALL.store(false, Ordering::SeqCst);
    best
}

/// Flags the running input as a hang past `hang_ms`, and ends the worker (exit code 3) when it
/// is stuck for 5× that (at least 10 s).
fn spawn_watchdog(
    name: &'static str,
    hang_ms: u64,
    started: Instant,
    in_flight: PathBuf,
    out: PathBuf,
    stats: Arc<Mutex<Stats>>,
    stats_path: PathBuf,
) {
    std::thread::spawn(move || {
        let mut flagged = 0u64;
        let stuck_ms = (hang_ms * 5).max(10_000);
        loop {
            std::thread::sleep(Duration::from_millis(50));
            let current = CURRENT_INPUT.load(Ordering::SeqCst);
            if current == 0 {
                continue;
            }
            let elapsed =
                (started.elapsed().as_millis() as u64).saturating_sub(CURRENT_START_MS.load(Ordering::SeqCst));
            if elapsed > hang_ms && flagged != current {
                flagged = current;
                let input = std::fs::read(&in_flight).unwrap_or_default();
                let details = format!("the input ran for more than {hang_ms} ms");
                if let Ok(hash) = save_finding(&out, name, &input, &format!("hang (> {hang_ms} ms)"), &details) {
                    eprintln!(
                        "{name}: HANG (> {hang_ms} ms) -> {}",
                        out.join("crashes").join(name).join(&hash).display()
                    );
                    if let Ok(mut s) = stats.lock() {
                        s.hangs.insert(hash);
                        s.seconds = started.elapsed().as_secs_f64();
                        let _ = write_stats(&stats_path, &s);
                    }
                }
            }
            if elapsed > stuck_ms && flagged == current && CURRENT_INPUT.load(Ordering::SeqCst) == current {
                eprintln!("{name}: an input is stuck for {} s; the worker stops", elapsed / 1000);
                if let Ok(mut s) = stats.lock() {
                    s.seconds = started.elapsed().as_secs_f64();
                    s.slowest_ms = s.slowest_ms.max(elapsed as f64);
                    let _ = write_stats(&stats_path, &s);
                }
                std::process::exit(3);
            }
        }
    });
}

// ---- replay ----

/// One replayed input's result.
#[derive(Debug)]
pub struct Replayed {
    /// The target.
    pub target: String,
    /// The input file.
    pub path: PathBuf,
    /// `None` when it ran clean (an `Err` is clean), else what went wrong.
    pub failure: Option<String>,
    /// How long it ran.
    pub elapsed: Duration,
}

/// The inputs under `dir`: `(target, file)` pairs. `dir` may hold one directory per target, be
/// one target's directory (named after it, or `target` given), or be one input file.
pub fn corpus_files(dir: &Path, target: Option<&str>) -> Result<Vec<(String, PathBuf)>> {
    let names: Vec<&str> = targets::all().iter().map(|t| t.name).collect();
    let is_input = |p: &Path| {
        let n = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        p.is_file() && !n.starts_with('.') && !n.ends_with(".txt") && !n.ends_with(".md")
    };
    let files_in = |d: &Path| -> Result<Vec<PathBuf>> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(d)
            .with_context(|| format!("reading {}", d.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| is_input(p))
            .collect();
        v.sort();
        Ok(v)
    };
    let dir_name = dir.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let parent_name = dir.parent().and_then(|p| p.file_name()).and_then(|n| n.to_str()).unwrap_or("");
    if dir.is_file() {
        let t = target.unwrap_or(parent_name);
        return Ok(vec![(t.to_string(), dir.to_path_buf())]);
    }
    if let Some(t) = target.or(names.contains(&dir_name).then_some(dir_name)) {
        return Ok(files_in(dir)?.into_iter().map(|p| (t.to_string(), p)).collect());
    }
    let mut out = Vec::new();
    for name in names {
        let d = dir.join(name);
        if d.is_dir() {
            out.extend(files_in(&d)?.into_iter().map(|p| (name.to_string(), p)));
        }
    }
    Ok(out)
}

/// Runs each input once, in this process (panics recorded, not printed: on this thread only, or
/// on every thread with `quiet_all`, which a test must not set — it would hide other tests'
/// panics).
pub fn replay(files: &[(String, PathBuf)], root: &Path, hang: Duration, quiet_all: bool) -> Result<Vec<Replayed>> {
    install_hook();
    let scratch = scratch_base().join(format!(
        "ft-fuzz-replay-{}-{}",
        std::process::id(),
        fnv64(format!("{:?}", std::thread::current().id()).as_bytes())
    ));
    let ctx = Ctx::new(&scratch, root)?;
    let mut results = Vec::new();
    QUIET_HERE.with(|q| q.set(true));
    QUIET_ALL.store(quiet_all, Ordering::SeqCst);
    for (target, path) in files {
        let t = find_target(target)?;
        let input = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let t0 = Instant::now();
        let outcome = run_one(&t, &input, &ctx);
        let elapsed = t0.elapsed();
        let failure = match outcome {
            Outcome::Panic(p) => Some(format!("panic at {}: {}", p.location, p.message)),
            _ if elapsed > hang => Some(format!("hang: {:.1} s", elapsed.as_secs_f64())),
            _ => None,
        };
        results.push(Replayed { target: target.clone(), path: path.clone(), failure, elapsed });
    }
    QUIET_HERE.with(|q| q.set(false));
    QUIET_ALL.store(false, Ordering::SeqCst);
    let _ = std::fs::remove_dir_all(&scratch);
    Ok(results)
}

fn replay_command(dir: &Path, target: Option<&str>, args: &Args, root: &Path) -> Result<()> {
    let files = corpus_files(dir, target)?;
    if files.is_empty() {
        bail!("no inputs under {}", dir.display());
    }
    let results = replay(&files, root, Duration::from_millis(args.hang_ms), true)?;
    let mut failed = 0;
    for r in &results {
        let status = r.failure.as_deref().unwrap_or("ok");
        println!("{:<15} {:>8.1} ms  {}  {status}", r.target, r.elapsed.as_secs_f64() * 1e3, r.path.display());
        failed += r.failure.is_some() as usize;
    }
    println!("{} input(s), {failed} failing", results.len());
    if failed > 0 {
        bail!("{failed} input(s) panicked or hung");
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn root() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").to_path_buf()
    }

    /// Every input of `tests/fixtures/fuzz/<target>/` (a crash once found, then fixed) runs
    /// clean: no panic, no hang. Inputs named `known-failing` are listed, not run.
    #[test]
    fn regression_corpus_replays_clean() {
        let dir = root().join("tests/fixtures/fuzz");
        let files = corpus_files(&dir, None).unwrap();
        let (known, run): (Vec<_>, Vec<_>) = files
            .into_iter()
            .partition(|(_, p)| p.file_name().is_some_and(|n| n.to_string_lossy().contains("known-failing")));
        for (t, p) in &known {
            eprintln!("skipped (known failing, not fixed yet): {t} {}", p.display());
        }
        assert!(!run.is_empty(), "no regression inputs under {}", dir.display());
        // Debug test builds are slower than the fuzzer's: a generous bound.
        let results = replay(&run, &root(), Duration::from_secs(20), false).unwrap();
        let failures: Vec<String> = results
            .iter()
            .filter_map(|r| r.failure.as_ref().map(|f| format!("{} {}: {f}", r.target, r.path.display())))
            .collect();
        assert!(failures.is_empty(), "regression inputs failing:\n{}", failures.join("\n"));
    }

    /// The corpus folders are named after targets.
    #[test]
    fn corpus_folders_name_targets() {
        let names: Vec<&str> = targets::all().iter().map(|t| t.name).collect();
        for e in std::fs::read_dir(root().join("tests/fixtures/fuzz")).unwrap() {
            let e = e.unwrap();
            if e.path().is_dir() {
                let n = e.file_name().to_string_lossy().into_owned();
                assert!(names.contains(&n.as_str()), "tests/fixtures/fuzz/{n} is not a target ({names:?})");
            }
        }
    }

    /// The zip reader and writer of the structure-aware mutations understand `torch.save` files:
    /// an archive rewritten from its entries reads back to the same tensors.
    #[test]
    fn torch_save_archives_survive_a_rewrite() {
        let dir = tempfile::tempdir().unwrap();
        for rel in [
            "tests/fixtures/adapters/bert-houlsby/pytorch_adapter.bin",
            "tests/fixtures/adapters/distilbert-pfeiffer/pytorch_model_head.bin",
        ] {
            let bytes = std::fs::read(root().join(rel)).unwrap();
            let entries = formats::read_zip(&bytes).unwrap_or_else(|| panic!("{rel}: not read as a zip"));
            assert!(entries.iter().any(|e| e.name.ends_with(b"data.pkl")), "{rel}");
            assert!(entries.iter().all(|e| e.crc.is_none()), "{rel}: CRCs recomputed differ");
            let rewritten = dir.path().join("rewritten.bin");
            std::fs::write(&rewritten, formats::write_zip(&entries)).unwrap();
            let a = ft_hub::tensors::NamedTensors::read_pytorch(&root().join(rel)).unwrap();
            let b = ft_hub::tensors::NamedTensors::read_pytorch(&rewritten).unwrap();
            assert_eq!(a, b, "{rel}");
        }
    }

    #[test]
    fn outcome_classes_ignore_values() {
        let scratch = Path::new("/dev/shm/x");
        assert_eq!(
            outcome_class("/dev/shm/x/config.json: hidden_size 768 is not a multiple of 'abc'", scratch),
            outcome_class("/dev/shm/x/config.json: hidden_size 13 is not a multiple of 'zz'", scratch)
        );
        assert_eq!(fnv64(b""), "cbf29ce484222325");
    }

    #[test]
    fn targets_have_seeds_and_unique_names() {
        let source = SeedSource { root: root(), shared: None, max_len: 1 << 20 };
        let mut names = BTreeSet::new();
        for t in targets::all() {
            assert!(names.insert(t.name), "{} twice", t.name);
            assert!(!(t.seeds)(&source).is_empty(), "{} has no seeds", t.name);
        }
    }
}
