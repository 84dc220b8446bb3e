//! A stand-in Hugging Face Hub on 127.0.0.1, speaking the routes `hf-hub` (and
//! `huggingface_hub`) use:
//!
//! - `GET /{repo_id}/resolve/{revision}/{file}` with a `Range` header: `206 Partial Content` with
//!   `Content-Range`, `ETag` and `X-Repo-Commit` (what `hf-hub` reads to place the file in the
//!   cache), or `404` when the repository or file does not exist;
//! - `GET /api/models/{repo_id}/revision/{revision}`: the repository's commit and file list;
//! - dataset repositories (see [`HubServer::start_with_datasets`]):
//!   `GET /datasets/{repo_id}/resolve/{revision}/{path}` and
//!   `GET /api/datasets/{repo_id}/revision/{revision}` (files listed recursively), where the
//!   revision may be `main` or another branch such as `refs%2Fconvert%2Fparquet` (URL-encoded).
//!
//! Each repository is served from a local directory. The server counts requests so that tests
//! can check that offline mode makes none.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The commit every served repository reports (for dataset repositories: their `main`).
pub const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

/// The commit a dataset repository's other branches (e.g. `refs/convert/parquet`) report.
pub const BRANCH_COMMIT: &str = "fedcba9876543210fedcba9876543210fedcba98";

/// A running stand-in Hub; it stops when dropped (its thread exits with the test process).
pub struct HubServer {
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    requests: Arc<AtomicUsize>,
}

impl HubServer {
    /// Serves `repos`: Hub id → local directory.
    pub fn start(repos: HashMap<String, PathBuf>) -> Self {
        Self::start_with_datasets(repos, HashMap::new())
    }

    /// Serves model repositories and dataset repositories. Dataset keys are `id` (the `main`
    /// branch) or `id@branch` (e.g. `org/name@refs/convert/parquet`) → local directory.
    pub fn start_with_datasets(repos: HashMap<String, PathBuf>, datasets: HashMap<String, PathBuf>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(AtomicUsize::new(0));
        let counter = requests.clone();
        let repos = Arc::new(repos);
        let datasets = Arc::new(datasets);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                counter.fetch_add(1, Ordering::SeqCst);
                let repos = repos.clone();
                let datasets = datasets.clone();
                std::thread::spawn(move || {
                    let _ = handle(stream, &repos, &datasets);
                });
            }
        });
        Self { endpoint, requests }
    }

    /// Requests served so far.
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

fn handle(
    mut stream: TcpStream,
    repos: &HashMap<String, PathBuf>,
    datasets: &HashMap<String, PathBuf>,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let mut range: Option<String> = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" || line == "\n" {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            if k.trim().eq_ignore_ascii_case("range") {
                range = Some(v.trim().to_string());
            }
        }
    }
    let mut parts = request_line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    if method != "GET" && method != "HEAD" {
        return respond(&mut stream, "405 Method Not Allowed", &[], b"");
    }
    if let Some(rest) = path.strip_prefix("/api/datasets/") {
        for (key, dir) in datasets {
            let (id, branch) = key.split_once('@').unwrap_or((key.as_str(), "main"));
            if decode(rest) == format!("{id}/revision/{branch}") {
                let commit = if branch == "main" { COMMIT } else { BRANCH_COMMIT };
                let mut files = Vec::new();
                list_recursive(dir, dir, &mut files)?;
                files.sort();
                let siblings: Vec<String> = files.iter().map(|f| format!("{{\"rfilename\":\"{f}\"}}")).collect();
                let body = format!("{{\"id\":\"{id}\",\"sha\":\"{commit}\",\"siblings\":[{}]}}", siblings.join(","));
                return respond(&mut stream, "200 OK", &[("Content-Type", "application/json".into())], body.as_bytes());
            }
        }
        return respond(&mut stream, "404 Not Found", &[], b"{\"error\":\"Repository not found\"}");
    }
    if let Some(rest) = path.strip_prefix("/datasets/") {
        let rest = decode(rest);
        for (key, dir) in datasets {
            let (id, branch) = key.split_once('@').unwrap_or((key.as_str(), "main"));
            let Some(file) = rest.strip_prefix(&format!("{id}/resolve/{branch}/")) else { continue };
            let commit = if branch == "main" { COMMIT } else { BRANCH_COMMIT };
            return serve_file(&mut stream, method, range.as_deref(), &dir.join(file), commit);
        }
        return respond(
            &mut stream,
            "404 Not Found",
            &[("X-Error-Code", "RepoNotFound".into())],
            b"Repository not found",
        );
    }
    if let Some(rest) = path.strip_prefix("/api/models/") {
        for (id, dir) in repos {
            if let Some(_rev) = rest.strip_prefix(&format!("{id}/revision/")) {
                let mut files: Vec<String> =
                    std::fs::read_dir(dir)?.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
                files.sort();
                let siblings: Vec<String> = files.iter().map(|f| format!("{{\"rfilename\":\"{f}\"}}")).collect();
                let body = format!("{{\"id\":\"{id}\",\"sha\":\"{COMMIT}\",\"siblings\":[{}]}}", siblings.join(","));
                return respond(&mut stream, "200 OK", &[("Content-Type", "application/json".into())], body.as_bytes());
            }
        }
        return respond(&mut stream, "404 Not Found", &[], b"{\"error\":\"Repository not found\"}");
    }
    for (id, dir) in repos {
        let Some(rest) = path.strip_prefix(&format!("/{id}/resolve/")) else { continue };
        let Some((_rev, file)) = rest.split_once('/') else { continue };
        return serve_file(&mut stream, method, range.as_deref(), &dir.join(file), COMMIT);
    }
    respond(&mut stream, "404 Not Found", &[("X-Error-Code", "RepoNotFound".into())], b"Repository not found")
}

fn serve_file(
    stream: &mut TcpStream,
    method: &str,
    range: Option<&str>,
    full: &Path,
    commit: &str,
) -> std::io::Result<()> {
    let Ok(mut f) = std::fs::File::open(full) else {
        return respond(stream, "404 Not Found", &[("X-Error-Code", "EntryNotFound".into())], b"Entry not found");
    };
    let mut body = Vec::new();
    f.read_to_end(&mut body)?;
    let size = body.len();
    let etag = format!("\"{:016x}{:08x}\"", fnv(&body), size);
    let (start, end) = match range.and_then(|r| r.strip_prefix("bytes=")) {
        Some(spec) => {
            let (a, b) = spec.split_once('-').unwrap_or((spec, ""));
            let a: usize = a.parse().unwrap_or(0);
            let b: usize =
                if b.is_empty() { size.saturating_sub(1) } else { b.parse().unwrap_or(size.saturating_sub(1)) };
            (a.min(size), (b + 1).min(size))
        }
        None => (0, size),
    };
    let headers = vec![
        ("ETag", etag),
        ("X-Repo-Commit", commit.to_string()),
        ("Content-Range", format!("bytes {}-{}/{}", start, end.saturating_sub(1), size)),
        ("Accept-Ranges", "bytes".to_string()),
    ];
    let status = if range.is_some() { "206 Partial Content" } else { "200 OK" };
    let body = if method == "HEAD" { &[][..] } else { &body[start..end] };
    respond(stream, status, &headers, body)
}

/// `%2F` and other percent-escapes decoded.
fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Some(v) = std::str::from_utf8(&b[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn list_recursive(root: &Path, dir: &Path, out: &mut Vec<String>) -> std::io::Result<()> {
    for e in std::fs::read_dir(dir)?.flatten() {
        let p = e.path();
        if p.is_dir() {
            list_recursive(root, &p, out)?;
        } else if let Ok(rel) = p.strip_prefix(root) {
            out.push(rel.to_string_lossy().replace('\\', "/"));
        }
    }
    Ok(())
}

fn respond(stream: &mut TcpStream, status: &str, headers: &[(&str, String)], body: &[u8]) -> std::io::Result<()> {
    let mut head = format!("HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n", body.len());
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;
    stream.flush()
}

fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf29ce484222325u64, |h, &b| (h ^ b as u64).wrapping_mul(0x100000001b3))
}
