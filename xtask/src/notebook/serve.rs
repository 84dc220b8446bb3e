//! §12 Deployment: `ft serve` on §4's fine-tuned classifier — the notebook's FastAPI request
//! and its answer, a short load measurement (concurrent clients on 127.0.0.1), a look at
//! `/metrics`, and a SIGTERM that must end the server cleanly.

use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use super::{Outcome, Section, notes};

/// The notebook's example request (§12, Option A).
const NOTEBOOK_TEXT: &str = "Breaking: New economic policy announced by central bank";

/// Texts for the load measurement (AG News-like, one per class).
const LOAD_TEXTS: [&str; 4] = [
    "Wall St. Bears Claw Back Into the Black (Reuters) Reuters - Short-sellers, Wall Street's dwindling band of ultra-cynics, are seeing green again.",
    "Olympic champion sprinter fails a doping test and is banned from the games in Athens.",
    "Rebels attack a convoy near the capital as peace talks stall for a third week.",
    "A new search engine promises faster results by indexing the web with cheaper hardware.",
];

/// One HTTP/1.1 request on a fresh connection: the status and the body.
fn http(addr: &str, method: &str, path: &str, body: Option<&str>) -> Result<(u16, String)> {
    let mut s = TcpStream::connect(addr).with_context(|| format!("connecting to {addr}"))?;
    s.set_read_timeout(Some(Duration::from_secs(120)))?;
    let body = body.unwrap_or("");
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw);
    let (head, rest) = text.split_once("\r\n\r\n").context("no end of headers in the answer")?;
    let status: u16 = head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).context("no status in the answer")?;
    Ok((status, rest.to_string()))
}

/// Requests/s and latency percentiles of `clients` threads sending `LOAD_TEXTS` for `seconds`.
fn load(addr: &str, clients: usize, seconds: f64) -> Result<(f64, f64, f64, usize, usize)> {
    let stop = Instant::now() + Duration::from_secs_f64(seconds);
    let started = Instant::now();
    let results: Vec<Result<(Vec<f64>, usize)>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..clients)
            .map(|c| {
                scope.spawn(move || -> Result<(Vec<f64>, usize)> {
                    let mut lat = Vec::new();
                    let mut failed = 0;
                    let mut i = c;
                    while Instant::now() < stop {
                        let body = serde_json::json!({"text": LOAD_TEXTS[i % LOAD_TEXTS.len()]}).to_string();
                        i += 1;
                        let t = Instant::now();
                        match http(addr, "POST", "/predict", Some(&body)) {
                            Ok((200, _)) => lat.push(t.elapsed().as_secs_f64() * 1e3),
                            _ => failed += 1,
                        }
                    }
                    Ok((lat, failed))
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or_else(|_| Err(anyhow::anyhow!("a client panicked")))).collect()
    });
    let wall = started.elapsed().as_secs_f64();
    let mut lat = Vec::new();
    let mut failed = 0;
    for r in results {
        let (l, f) = r?;
        lat.extend(l);
        failed += f;
    }
    lat.sort_by(f64::total_cmp);
    let q = |p: f64| {
        lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1))).copied().unwrap_or(f64::NAN)
    };
    Ok((lat.len() as f64 / wall, q(0.5), q(0.99), lat.len(), failed))
}

/// Runs §12 on the classifier `§4` wrote under `out`.
pub fn section_serve(ft: &Path, tiny: bool, offline: bool, out: &Path, dir: &Path) -> Result<Outcome> {
    let started = Instant::now();
    let section = Section::Serve;
    let model = out.join(Section::Full.dir()).join("output");
    let link = section.dir();
    let mut md = String::new();
    let _ = writeln!(md, "{}\n", notes(section));
    if !model.join("config.json").is_file() {
        let _ = writeln!(md, "**No §4 model** at `{}`: run §4 first (`--sections 4,12`).", model.display());
        return Ok(Outcome {
            section,
            ok: false,
            headline: "no §4 model".into(),
            runtime: "—".into(),
            wall_s: started.elapsed().as_secs_f64(),
            markdown: md,
        });
    }
    let stderr_log = dir.join("stderr.log");
    let mut cmd = Command::new(ft);
    cmd.args(["serve", "--model"]).arg(&model).args(["--port", "0"]).stderr(Stdio::piped()).stdout(Stdio::null());
    cmd.env("NO_COLOR", "1");
    if offline {
        cmd.env("HF_HUB_OFFLINE", "1");
    }
    eprintln!("+ {} serve --model {} --port 0", ft.display(), model.display());
    let mut child = cmd.spawn().with_context(|| format!("starting {}", ft.display()))?;
    let mut stderr = BufReader::new(child.stderr.take().context("no stderr")?);
    let mut log = String::new();
    let addr = loop {
        let mut line = String::new();
        if stderr.read_line(&mut line)? == 0 {
            let _ = child.wait();
            std::fs::write(&stderr_log, &log)?;
            bail!("ft serve exited before listening; see {}", stderr_log.display());
        }
        log.push_str(&line);
        if let Some(url) = line.trim().strip_prefix("ft serve: listening on http://") {
            break url.to_string();
        }
    };
    // The rest of stderr goes to the log as it comes.
    let drain = std::thread::spawn(move || {
        let mut rest = String::new();
        let _ = stderr.read_to_string(&mut rest);
        rest
    });
    let result = (|| -> Result<String> {
        let mut body = String::new();
        let request = serde_json::json!({"text": NOTEBOOK_TEXT}).to_string();
        let (status, answer) = http(&addr, "POST", "/predict", Some(&request))?;
        let _ = writeln!(body, "The notebook's request and `ft serve`'s answer (HTTP {status}):\n");
        let _ = writeln!(
            body,
            "```sh\ncurl -s localhost:8080/predict -H 'Content-Type: application/json' -d '{request}'\n{answer}\n```\n"
        );
        if status != 200 {
            bail!("the notebook's request got HTTP {status}: {answer}");
        }
        let (seconds, levels): (f64, &[usize]) = if tiny { (1.0, &[1, 8]) } else { (10.0, &[1, 8, 32]) };
        let _ = writeln!(
            body,
            "Load on 127.0.0.1 ({seconds:.0} s per level, a new connection per request, one text per request; \
             `benches/serve_compare.py` compares with the notebook's FastAPI app):\n\n\
             | clients | requests/s | p50 ms | p99 ms | answered | failed |\n|---|---|---|---|---|---|"
        );
        for &c in levels {
            let (rps, p50, p99, n, failed) = load(&addr, c, seconds)?;
            let _ = writeln!(body, "| {c} | {rps:.1} | {p50:.0} | {p99:.0} | {n} | {failed} |");
            if failed > 0 {
                bail!("{failed} requests failed under {c} clients");
            }
        }
        let (_, metrics) = http(&addr, "GET", "/metrics", None)?;
        let lines: Vec<&str> = metrics
            .lines()
            .filter(|l| {
                l.starts_with("ft_requests_total")
                    || l.starts_with("ft_batch_size_count")
                    || l.starts_with("ft_batch_size_sum")
                    || l.starts_with("ft_prediction_score_count")
                    || l.starts_with("ft_tokens_total")
            })
            .collect();
        std::fs::write(dir.join("metrics.txt"), &metrics)?;
        let _ = writeln!(
            body,
            "\nFrom `GET /metrics` afterwards ([`metrics.txt`]({link}/metrics.txt), the whole text):\n\n```\n{}\n```\n",
            lines.join("\n")
        );
        Ok(body)
    })();
    // SIGTERM: the server finishes what is in flight and exits 0.
    let term = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let exit = child.wait()?;
    log.push_str(&drain.join().unwrap_or_default());
    std::fs::write(&stderr_log, &log)?;
    let wall_s = started.elapsed().as_secs_f64();
    let clean = term.is_ok_and(|s| s.success()) && exit.success();
    match result {
        Ok(body) => {
            md.push_str(&body);
            let _ = writeln!(
                md,
                "SIGTERM: the server {} ([`stderr.log`]({link}/stderr.log)).",
                if clean { "drained and exited 0" } else { "did not exit cleanly" }
            );
            Ok(Outcome {
                section,
                ok: clean,
                headline: if clean { "served".into() } else { "unclean exit".into() },
                runtime: "—".into(),
                wall_s,
                markdown: md,
            })
        }
        Err(e) => {
            let _ = writeln!(md, "**Serving failed**: {e:#} ([`stderr.log`]({link}/stderr.log)).");
            Ok(Outcome { section, ok: false, headline: "failed".into(), runtime: "—".into(), wall_s, markdown: md })
        }
    }
}
