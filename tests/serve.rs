//! End-to-end: `ft serve` on a free 127.0.0.1 port, driven with a real HTTP client — the
//! notebook's `POST /predict` contract, answers equal to `ft predict`'s, concurrent requests,
//! malformed requests (4xx naming the field, the server alive), limits (413, 429), the API key,
//! and SIGTERM.

#[path = "support/mod.rs"]
mod support;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use serde_json::{Value, json};
use support::{fixture, ok};

/// A running `ft serve`, killed when dropped.
struct Server {
    child: Child,
    url: String,
    stderr: BufReader<std::process::ChildStderr>,
}

impl Server {
    fn start(extra: &[&str]) -> Self {
        let model = fixture("models/tiny-distilbert-seqcls");
        let mut child = Command::new(env!("CARGO_BIN_EXE_ft"))
            .args(["serve", "--model", model.to_str().unwrap(), "--port", "0"])
            .args(extra)
            .env("HF_HUB_OFFLINE", "1")
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("starting ft serve");
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let mut line = String::new();
        loop {
            line.clear();
            assert!(stderr.read_line(&mut line).unwrap() > 0, "ft serve exited before listening");
            if let Some(url) = line.trim().strip_prefix("ft serve: listening on ") {
                return Self { child, url: url.to_string(), stderr };
            }
        }
    }

    fn agent() -> ureq::Agent {
        ureq::Agent::config_builder().http_status_as_error(false).build().new_agent()
    }

    /// POSTs `body` to `/predict`; the status and the JSON answer.
    fn predict(&self, body: &str, headers: &[(&str, &str)]) -> (u16, Value) {
        let mut req = Self::agent().post(format!("{}/predict", self.url)).header("Content-Type", "application/json");
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let mut resp = req.send(body).expect("request");
        let status = resp.status().as_u16();
        let text = resp.body_mut().read_to_string().unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    fn get(&self, route: &str) -> (u16, Value) {
        let mut resp = Self::agent().get(format!("{}{route}", self.url)).call().expect("request");
        let status = resp.status().as_u16();
        let text = resp.body_mut().read_to_string().unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const TEXTS: [&str; 6] = [
    "Breaking: New economic policy announced by central bank",
    "The striker scored twice in the second half.",
    "A new smartphone chip promises longer battery life.",
    "Stocks rallied as the central bank held interest rates steady, and bonds fell.",
    "Rain",
    "Scientists discover a new species of frog in the rainforest of Borneo.",
];

/// `ft predict`'s answers for `TEXTS`.
fn reference(dir: &Path) -> Vec<Value> {
    let input = dir.join("in.jsonl");
    let lines: String = TEXTS.iter().map(|t| json!({"text": t}).to_string() + "\n").collect();
    std::fs::write(&input, lines).unwrap();
    let output = dir.join("out.jsonl");
    let model = fixture("models/tiny-distilbert-seqcls");
    ok(&Command::new(env!("CARGO_BIN_EXE_ft"))
        .args([
            "predict",
            "--model",
            model.to_str().unwrap(),
            "--input",
            input.to_str().unwrap(),
            "--output",
            output.to_str().unwrap(),
        ])
        .env("HF_HUB_OFFLINE", "1")
        .output()
        .unwrap());
    std::fs::read_to_string(&output).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn same(a: &Value, b: &Value) -> bool {
    a["label"] == b["label"] && (a["score"].as_f64().unwrap() - b["score"].as_f64().unwrap()).abs() <= 1e-5
}

#[test]
fn predict_answers_as_the_notebook_and_as_ft_predict_under_concurrency() {
    let tmp = tempfile::tempdir().unwrap();
    let expected = reference(tmp.path());
    let server = Server::start(&["--max-wait-ms", "20"]);
    assert_eq!(server.get("/health").0, 200);
    assert_eq!(server.get("/ready").0, 200);
    let (_, info) = server.get("/info");
    assert_eq!(info["task"], "text-classification");
    assert_eq!(info["labels"], json!(["World", "Sports", "Business", "Sci/Tech"]));

    // The notebook's request and response shape.
    let (status, answer) = server.predict(&json!({"text": TEXTS[0]}).to_string(), &[]);
    assert_eq!(status, 200);
    assert_eq!(answer.as_object().unwrap().keys().collect::<Vec<_>>(), ["label", "score"]);
    assert!(same(&answer, &expected[0]), "{answer} vs {}", expected[0]);

    // A list, and 48 concurrent single requests (batched together): each equals ft predict's.
    let (status, answer) = server.predict(&json!({"inputs": TEXTS}).to_string(), &[]);
    assert_eq!(status, 200);
    for (a, e) in answer.as_array().unwrap().iter().zip(&expected) {
        assert!(same(a, e), "{a} vs {e}");
    }
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..48)
            .map(|i| {
                let server = &server;
                let expected = &expected;
                s.spawn(move || {
                    let k = i % TEXTS.len();
                    let (status, answer) = server.predict(&json!({"text": TEXTS[k]}).to_string(), &[]);
                    assert_eq!(status, 200, "{answer}");
                    assert!(same(&answer, &expected[k]), "{answer} vs {}", expected[k]);
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
    });

    // Malformed requests: 4xx naming the field; the server answers afterwards.
    for (body, status, needle) in [
        ("{", 400, "not valid JSON"),
        ("[1, 2]", 422, "JSON object"),
        (r#"{"text": 3}"#, 422, "\"text\" must be a string"),
        (r#"{"text": ""}"#, 422, "\"text\" is empty"),
        (r#"{"text": null}"#, 422, "\"text\""),
        (r#"{"inputs": ["ok", 2]}"#, 422, "inputs[1]"),
        (r#"{"inputs": []}"#, 422, "empty list"),
        (r#"{"txt": "a"}"#, 422, "unknown field \"txt\""),
        ("{}", 422, "missing field \"text\""),
        ("", 400, "JSON"),
    ] {
        let (got, answer) = server.predict(body, &[]);
        assert_eq!(got, status, "{body}: {answer}");
        assert!(answer["error"].as_str().unwrap_or("").contains(needle), "{body}: {answer}");
    }
    let big = json!({"text": "a ".repeat(1_100_000)}).to_string();
    let (status, answer) = server.predict(&big, &[]);
    assert_eq!(status, 413);
    assert_eq!(answer["error_type"], "payload_too_large", "{answer}");
    assert_eq!(server.get("/nowhere").0, 404);
    let (status, answer) = server.get("/predict");
    assert_eq!((status, answer["error_type"].as_str()), (405, Some("method_not_allowed")), "{answer}");
    assert_eq!(server.predict(&json!({"text": "still alive"}).to_string(), &[]).0, 200);
}

#[test]
fn overload_answers_429_and_an_api_key_is_required() {
    let tmp = tempfile::tempdir().unwrap();
    let key = tmp.path().join("key");
    std::fs::write(&key, "s3cret\n").unwrap();
    // One request at a time, each batch waiting 400 ms for company: concurrent ones get 429.
    let server = Server::start(&[
        "--max-concurrent-requests",
        "1",
        "--max-wait-ms",
        "400",
        "--api-key-file",
        key.to_str().unwrap(),
    ]);
    let body = json!({"text": "hello"}).to_string();
    assert_eq!(server.predict(&body, &[]).0, 401);
    assert_eq!(server.predict(&body, &[("Authorization", "Bearer wrong")]).0, 401);
    assert_eq!(server.get("/health").0, 200);
    let statuses: Vec<u16> = std::thread::scope(|s| {
        let handles: Vec<_> =
            (0..6).map(|_| s.spawn(|| server.predict(&body, &[("Authorization", "Bearer s3cret")]).0)).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(statuses.iter().all(|s| *s == 200 || *s == 429), "{statuses:?}");
    assert!(statuses.contains(&200) && statuses.contains(&429), "{statuses:?}");
}

#[test]
fn sigterm_stops_the_server_cleanly() {
    let mut server = Server::start(&[]);
    assert_eq!(server.predict(&json!({"text": "hello"}).to_string(), &[]).0, 200);
    let pid = server.child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let status = server.child.wait().unwrap();
    assert!(status.success(), "{status}");
    let mut rest = String::new();
    let _ = std::io::Read::read_to_string(&mut server.stderr, &mut rest);
    assert!(rest.contains("stopped"), "{rest}");
}

#[test]
fn a_client_that_never_finishes_its_request_does_not_hold_up_shutdown() {
    use std::io::Write;
    let mut server = Server::start(&["--request-timeout", "1"]);
    let addr = server.url.trim_start_matches("http://").to_string();
    let mut stuck = std::net::TcpStream::connect(&addr).unwrap();
    stuck.write_all(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"text\"").unwrap();
    std::thread::sleep(std::time::Duration::from_millis(200));
    let pid = server.child.id().to_string();
    let t0 = std::time::Instant::now();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let status = server.child.wait().unwrap();
    assert!(status.success(), "{status}");
    assert!(t0.elapsed().as_secs_f64() < 10.0, "{:?}", t0.elapsed());
    drop(stuck);
}

#[test]
fn bad_arguments_are_errors() {
    let model = fixture("models/tiny-distilbert-seqcls");
    let run =
        |args: &[&str]| Command::new(env!("CARGO_BIN_EXE_ft")).args(args).env("HF_HUB_OFFLINE", "1").output().unwrap();
    support::fails(&run(&["serve", "--model", "/no/such/model", "--port", "0"]), &["/no/such/model"]);
    support::fails(
        &run(&["serve", "--model", model.to_str().unwrap(), "--task", "text-generation", "--port", "0"]),
        &["text-classification"],
    );
    support::fails(
        &run(&["serve", "--model", model.to_str().unwrap(), "--api-key-file", "/no/key", "--port", "0"]),
        &["--api-key-file"],
    );
}
