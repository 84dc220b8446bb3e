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
        Self::start_model("models/tiny-distilbert-seqcls", extra)
    }

    /// `ft serve --model tests/fixtures/<model> <extra>`.
    fn start_model(model: &str, extra: &[&str]) -> Self {
        let model = fixture(model);
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

    /// GETs `route`: the status and the body as text.
    fn get_text(&self, route: &str) -> (u16, String) {
        let mut resp = Self::agent().get(format!("{}{route}", self.url)).call().expect("request");
        (resp.status().as_u16(), resp.body_mut().read_to_string().unwrap_or_default())
    }

    /// POSTs a JSON body to `/predict`; the status and the raw answer.
    fn predict_raw(&self, body: &str) -> (u16, String) {
        let mut resp = Self::agent()
            .post(format!("{}/predict", self.url))
            .header("Content-Type", "application/json")
            .send(body)
            .expect("request");
        (resp.status().as_u16(), resp.body_mut().read_to_string().unwrap_or_default())
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

/// `n` concurrent single-text requests (batched together by the server): each answer equals
/// `ft predict`'s for that text.
fn concurrent_requests_match(server: &Server, expected: &[Value], n: usize) {
    concurrently(server, n, |i| (json!({"text": TEXTS[i % TEXTS.len()]}), &expected[i % TEXTS.len()]));
}

/// Sends request `case(i).0` for each `i < n` at once, each on its own thread: each answers 200
/// with what `case(i).1` says.
fn concurrently<'a>(server: &Server, n: usize, case: impl Fn(usize) -> (Value, &'a Value) + Sync) {
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..n)
            .map(|i| {
                let case = &case;
                s.spawn(move || {
                    let (body, want) = case(i);
                    let (status, answer) = server.predict(&body.to_string(), &[]);
                    assert_eq!(status, 200, "{answer}");
                    assert!(same(&answer, want), "{body}: {answer} vs {want}");
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
    });
}

/// Two model threads, each with its own copy of the model and its own kernel pool: both load
/// before the server is ready, and concurrent answers still equal `ft predict`'s.
#[test]
fn two_model_threads_answer_as_ft_predict() {
    let tmp = tempfile::tempdir().unwrap();
    let expected = reference(tmp.path());
    let server = Server::start(&["--workers", "2", "--max-wait-ms", "20"]);
    assert_eq!(server.get("/ready").0, 200);
    assert_eq!(server.get("/info").1["limits"]["workers"], 2);
    concurrent_requests_match(&server, &expected, 32);
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
    concurrent_requests_match(&server, &expected, 48);

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
    // Only JSON (or multipart) bodies: a form-encoded body (curl -d without a header) is 415.
    let mut resp = Server::agent()
        .post(format!("{}/predict", server.url))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .send(r#"{"text": "a"}"#)
        .unwrap();
    assert_eq!(resp.status().as_u16(), 415);
    assert!(resp.body_mut().read_to_string().unwrap().contains("application/json"));
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
fn sigterm_lets_a_request_in_flight_finish() {
    // Each round waits 1.5 s for company: the request is still in flight when SIGTERM comes.
    let mut server = Server::start(&["--max-wait-ms", "1500"]);
    let pid = server.child.id().to_string();
    let answer = std::thread::scope(|s| {
        let pending = s.spawn(|| server.predict(&json!({"text": "in flight"}).to_string(), &[]));
        std::thread::sleep(std::time::Duration::from_millis(400));
        assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
        pending.join().unwrap()
    });
    assert_eq!(answer.0, 200, "{}", answer.1);
    let status = server.child.wait().unwrap();
    assert!(status.success(), "{status}");
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
        &run(&["serve", "--model", model.to_str().unwrap(), "--task", "feature-extraction", "--port", "0"]),
        &["not served"],
    );
    let tmp = tempfile::tempdir().unwrap();
    let canary = tmp.path().join("canary.jsonl");
    std::fs::write(&canary, "{\"text\": \"a\", \"label\": \"World\"}\n{\"text\": \"b\"}\n").unwrap();
    support::fails(
        &run(&["serve", "--model", model.to_str().unwrap(), "--canary", canary.to_str().unwrap(), "--port", "0"]),
        &["canary.jsonl:2", "label"],
    );
    std::fs::write(&canary, "{\"text\": \"a\", \"label\": \"Wrold\"}\n").unwrap();
    support::fails(
        &run(&["serve", "--model", model.to_str().unwrap(), "--canary", canary.to_str().unwrap(), "--port", "0"]),
        &["Wrold", "not one of the model's labels"],
    );
    support::fails(
        &run(&["serve", "--model", model.to_str().unwrap(), "--api-key-file", "/no/key", "--port", "0"]),
        &["--api-key-file"],
    );
}

/// Runs `ft` with `args` (offline); its stdout, after checking it succeeded.
fn ft(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_ft")).args(args).env("HF_HUB_OFFLINE", "1").output().unwrap();
    ok(&out);
    String::from_utf8(out.stdout).unwrap()
}

/// `ft predict`'s output lines for `inputs` (JSON objects) with `extra` arguments.
fn ft_predict(dir: &Path, model: &str, inputs: &[Value], extra: &[&str]) -> Vec<Value> {
    let input = dir.join("predict-in.jsonl");
    let output = dir.join("predict-out.jsonl");
    std::fs::write(&input, inputs.iter().map(|v| v.to_string() + "\n").collect::<String>()).unwrap();
    let model = fixture(model);
    let mut args = vec!["predict", "--model", model.to_str().unwrap(), "--input", input.to_str().unwrap()];
    args.extend(["--output", output.to_str().unwrap()]);
    args.extend(extra);
    ft(&args);
    std::fs::read_to_string(&output).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

#[test]
fn top_k_metrics_openapi_and_the_canary() {
    let tmp = tempfile::tempdir().unwrap();
    let expected = reference(tmp.path());
    // Two canary texts with ft predict's labels, one with a wrong label: accuracy 2/3.
    let wrong = ["World", "Sports"].into_iter().find(|l| *l != expected[2]["label"]).unwrap();
    let canary = tmp.path().join("canary.jsonl");
    let lines = [
        json!({"text": TEXTS[0], "label": expected[0]["label"]}),
        json!({"text": TEXTS[1], "label": expected[1]["label"]}),
        json!({"text": TEXTS[2], "label": wrong}),
    ];
    std::fs::write(&canary, lines.iter().map(|l| l.to_string() + "\n").collect::<String>()).unwrap();
    let server = Server::start(&["--canary", canary.to_str().unwrap(), "--canary-interval", "1"]);

    let (status, answer) = server.predict(&json!({"text": TEXTS[0], "top_k": 3}).to_string(), &[]);
    assert_eq!(status, 200, "{answer}");
    let top = answer.as_array().unwrap();
    assert_eq!(top.len(), 3);
    assert!(same(&top[0], &expected[0]), "{answer}");
    assert!(
        top[0]["score"].as_f64() >= top[1]["score"].as_f64() && top[1]["score"].as_f64() >= top[2]["score"].as_f64()
    );
    let (status, answer) = server.predict(&json!({"inputs": [TEXTS[1]], "top_k": 1}).to_string(), &[]);
    assert_eq!(status, 200);
    assert!(same(&answer[0][0], &expected[1]), "{answer}");
    for (body, needle) in [
        (json!({"text": "a", "top_k": 0}), "\"top_k\" must be at least 1"),
        (json!({"text": "a", "top_k": "2"}), "\"top_k\" must be a positive integer"),
        (json!({"text": "a", "adapter": "x"}), "no adapter named \"x\""),
    ] {
        let (status, answer) = server.predict(&body.to_string(), &[]);
        assert_eq!(status, 422, "{body}: {answer}");
        assert!(answer["error"].as_str().unwrap().contains(needle), "{answer}");
    }

    let (status, doc) = server.get("/openapi.json");
    assert_eq!(status, 200);
    assert_eq!(doc["openapi"], "3.1.0");
    let props = &doc["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]["schema"]["properties"];
    assert!(props["text"].is_object() && props["inputs"].is_object() && props["top_k"].is_object(), "{props}");

    // The canary runs every second; its accuracy and the per-label counts are in /metrics.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let metrics = loop {
        let (status, text) = server.get_text("/metrics");
        assert_eq!(status, 200);
        if text.contains("ft_canary_accuracy") || std::time::Instant::now() > deadline {
            break text;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    let value = |name: &str| -> f64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name).and_then(|r| r.trim().parse().ok()))
            .unwrap_or_else(|| panic!("{name} not in {metrics}"))
    };
    assert!((value("ft_canary_accuracy") - 2.0 / 3.0).abs() < 1e-9, "{metrics}");
    assert!(value("ft_requests_total{route=\"/predict\",status=\"200\"}") >= 2.0, "{metrics}");
    assert_eq!(value("ft_requests_total{route=\"/predict\",status=\"422\"}"), 3.0, "{metrics}");
    let label = expected[0]["label"].as_str().unwrap();
    assert!(value(&format!("ft_prediction_score_count{{label=\"{label}\"}}")) >= 1.0, "{metrics}");
    assert!(value("ft_tokens_total") > 0.0 && value("ft_batch_size_count") >= 2.0, "{metrics}");
    assert!(metrics.contains("ft_request_duration_seconds_bucket{route=\"/predict\",le=\"+Inf\"}"), "{metrics}");
    assert!(metrics.contains("ft_queue_duration_seconds_count"), "{metrics}");
}

#[test]
fn adapters_are_chosen_per_request_and_batch_apart() {
    let tmp = tempfile::tempdir().unwrap();
    let lora = fixture("peft/distilbert-lora");
    let lora_arg = format!("lora={}", lora.display());
    let inputs: Vec<Value> = TEXTS.iter().map(|t| json!({"text": t})).collect();
    let base = ft_predict(tmp.path(), "models/tiny-distilbert-seqcls", &inputs, &[]);
    let adapted = ft_predict(tmp.path(), "models/tiny-distilbert-seqcls", &inputs, &["--adapter", &lora_arg]);
    assert!(
        base.iter().zip(&adapted).any(|(b, a)| b["score"].as_f64() != a["score"].as_f64()),
        "the adapter changes nothing"
    );
    let server = Server::start(&["--adapter", &lora_arg, "--max-wait-ms", "20"]);
    let (_, info) = server.get("/info");
    assert_eq!((info["adapters"].clone(), info["default_adapter"].clone()), (json!(["lora"]), json!("lora")));
    // Mixed concurrent requests: no adapter field (the default, lora), "lora", and null (the base).
    concurrently(&server, 36, |i| {
        let k = i % TEXTS.len();
        match i % 3 {
            0 => (json!({"text": TEXTS[k]}), &adapted[k]),
            1 => (json!({"text": TEXTS[k], "adapter": "lora"}), &adapted[k]),
            _ => (json!({"text": TEXTS[k], "adapter": null}), &base[k]),
        }
    });
}

#[test]
fn token_classification_answers_the_pipelines_entities() {
    let tmp = tempfile::tempdir().unwrap();
    let inputs: Vec<Value> = TEXTS.iter().map(|t| json!({"text": t})).collect();
    let expected = ft_predict(tmp.path(), "models/tiny-distilbert-tokcls", &inputs, &[]);
    let server = Server::start_model("models/tiny-distilbert-tokcls", &["--task", "token-classification"]);
    let (status, answer) = server.predict(&json!({"inputs": TEXTS}).to_string(), &[]);
    assert_eq!(status, 200, "{answer}");
    for (got, want) in answer.as_array().unwrap().iter().zip(&expected) {
        let want = want["entities"].as_array().unwrap();
        let got = got.as_array().unwrap();
        assert_eq!(got.len(), want.len(), "{got:?} vs {want:?}");
        for (g, w) in got.iter().zip(want) {
            assert_eq!(
                (&g["entity_group"], &g["word"], &g["start"], &g["end"]),
                (&w["entity_group"], &w["word"], &w["start"], &w["end"])
            );
            assert!((g["score"].as_f64().unwrap() - w["score"].as_f64().unwrap()).abs() <= 1e-5);
        }
    }
    let (status, one) = server.predict(&json!({"text": TEXTS[3]}).to_string(), &[]);
    assert_eq!((status, &one), (200, &answer[3]));
    let (_, info) = server.get("/info");
    assert_eq!(info["labels"].as_array().map(Vec::len), Some(9), "{info}");
    // A form field holding the text is the text (not JSON), even when it looks like a number.
    let boundary = "b0undary";
    let body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"text\"\r\n\r\n{}\r\n--{boundary}--\r\n",
        TEXTS[3]
    );
    let mut resp = Server::agent()
        .post(format!("{}/predict", server.url))
        .header("Content-Type", format!("multipart/form-data; boundary={boundary}"))
        .send(body.as_bytes())
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let form: Value = serde_json::from_str(&resp.body_mut().read_to_string().unwrap()).unwrap();
    assert_eq!(form, answer[3]);
    let body =
        format!("--{boundary}\r\nContent-Disposition: form-data; name=\"text\"\r\n\r\n123\r\n--{boundary}--\r\n");
    let resp = Server::agent()
        .post(format!("{}/predict", server.url))
        .header("Content-Type", format!("multipart/form-data; boundary={boundary}"))
        .send(body.as_bytes())
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
}

/// The `data:` payloads of a server-sent-event stream.
fn sse_events(text: &str) -> Vec<Value> {
    text.lines().filter_map(|l| l.strip_prefix("data: ")).map(|d| serde_json::from_str(d).unwrap()).collect()
}

#[test]
fn text_generation_answers_as_ft_generate_and_streams_token_by_token() {
    let gpt2 = fixture("models/tiny-gpt2");
    let lora = format!("lora={}", fixture("peft/gpt2-lora").display());
    let prompt = format!("prompt={}", fixture("peft/gpt2-prompt").display());
    let generate = |extra: &[&str]| -> String {
        let mut args = vec!["generate", "--model", gpt2.to_str().unwrap(), "--prompt", "Hello world", "--json"];
        args.extend(extra);
        let out: Value = serde_json::from_str(ft(&args).lines().next().unwrap()).unwrap();
        out["text"].as_str().unwrap().to_string()
    };
    let base = generate(&["--max-new-tokens", "6"]);
    let with_lora = generate(&["--max-new-tokens", "6", "--adapter", &lora]);
    let with_prompt = generate(&["--max-new-tokens", "6", "--adapter", &prompt]);
    let sampled = generate(&["--max-new-tokens", "6", "--do-sample", "--seed", "7", "--top-k", "20"]);
    let server = Server::start_model(
        "models/tiny-gpt2",
        &["--task", "text-generation", "--adapter", &lora, "--adapter", &prompt, "--max-wait-ms", "20"],
    );
    // Concurrent requests for each adapter, the base, and a seeded sample: each as ft generate.
    let cases = [
        (json!({"text": "Hello world", "max_new_tokens": 6}), with_lora.clone()),
        (json!({"text": "Hello world", "max_new_tokens": 6, "adapter": "prompt"}), with_prompt),
        (json!({"text": "Hello world", "max_new_tokens": 6, "adapter": null}), base),
        (
            json!({"text": "Hello world", "max_new_tokens": 6, "adapter": null, "do_sample": true, "seed": 7, "top_k": 20}),
            sampled,
        ),
    ];
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..12)
            .map(|i| {
                let (server, cases) = (&server, &cases);
                s.spawn(move || {
                    let (body, want) = &cases[i % cases.len()];
                    let (status, answer) = server.predict(&body.to_string(), &[]);
                    assert_eq!(status, 200, "{answer}");
                    assert_eq!(answer["generated_text"], json!(want), "{body}");
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
    });
    let (_, full) =
        server.predict(&json!({"text": "Hello world", "max_new_tokens": 6, "return_full_text": true}).to_string(), &[]);
    assert_eq!(full["generated_text"], json!(format!("Hello world{with_lora}")));

    // A stream: one event per token whose texts add up to the answer, then the whole text.
    let (status, text) =
        server.predict_raw(&json!({"text": "Hello world", "max_new_tokens": 6, "stream": true}).to_string());
    assert_eq!(status, 200, "{text}");
    let events = sse_events(&text);
    assert_eq!(events.len(), 7, "{text}");
    let pieces: String = events[..6].iter().map(|e| e["token"]["text"].as_str().unwrap()).collect();
    assert_eq!(pieces, with_lora);
    assert_eq!(events[6]["generated_text"], json!(with_lora));
    assert!(events[6]["token"].is_null());

    // A prompt adapter's prompts run one at a time: a list answers as each prompt alone.
    let prompts = ["Hello world", "The cat sat on", "A"];
    let alone: Vec<Value> = prompts
        .iter()
        .map(|p| server.predict(&json!({"text": p, "max_new_tokens": 4, "adapter": "prompt"}).to_string(), &[]).1)
        .collect();
    let (status, listed) =
        server.predict(&json!({"inputs": prompts, "max_new_tokens": 4, "adapter": "prompt"}).to_string(), &[]);
    assert_eq!(status, 200, "{listed}");
    assert_eq!(listed, json!(alone));

    // A request the model refuses is a 4xx before any event, streamed or not.
    for stream in [false, true] {
        let (status, text) = server
            .predict_raw(&json!({"text": "a", "do_sample": true, "temperature": -1, "stream": stream}).to_string());
        assert_eq!(status, 422, "stream {stream}: {text}");
    }
    for (body, needle) in [
        (json!({"text": "a", "do_sample": true, "num_return_sequences": 1u64 << 40}), "at most 64"),
        (json!({"text": "a", "max_new_tokens": u64::MAX}), "n_positions"),
        (json!({"text": "a", "do_sample": true, "temperature": 1e-300}), "temperature"),
        (json!({"inputs": ["a", "b"], "stream": true}), "streaming answers one"),
        (json!({"text": "a", "do_sample": true, "temperature": -1}), "temperature"),
        (json!({"text": "a", "max_new_tokens": "many"}), "\"max_new_tokens\" must be"),
        (json!({"text": "a", "max_new_tokens": 100000}), "n_positions"),
    ] {
        let (status, answer) = server.predict(&body.to_string(), &[]);
        assert_eq!(status, 422, "{body}: {answer}");
        assert!(answer["error"].as_str().unwrap().contains(needle), "{body}: {answer}");
    }
}

#[test]
fn image_classification_takes_base64_json_and_multipart_uploads() {
    use base64::Engine;
    let tmp = tempfile::tempdir().unwrap();
    let images = ["rgb.png", "photo.jpg", "gray.png"];
    let paths: Vec<_> = images.iter().map(|i| fixture(&format!("images/{i}"))).collect();
    let inputs: Vec<Value> = paths.iter().map(|p| json!({"image": p})).collect();
    let expected = ft_predict(tmp.path(), "models/tiny-resnet", &inputs, &["--task", "image-classification"]);
    let server = Server::start_model("models/tiny-resnet", &["--task", "image-classification"]);
    let b64: Vec<String> =
        paths.iter().map(|p| base64::engine::general_purpose::STANDARD.encode(std::fs::read(p).unwrap())).collect();
    let (status, answer) = server.predict(&json!({"image": b64[0]}).to_string(), &[]);
    assert_eq!(status, 200, "{answer}");
    assert!(same(&answer, &expected[0]), "{answer} vs {}", expected[0]);
    let (status, answer) =
        server.predict(&json!({"inputs": [format!("data:image/jpeg;base64,{}", b64[1]), b64[2]]}).to_string(), &[]);
    assert_eq!(status, 200, "{answer}");
    assert!(same(&answer[0], &expected[1]) && same(&answer[1], &expected[2]), "{answer}");

    // multipart/form-data: one file field "image", and a top_k field.
    let boundary = "ftboundary42";
    let mut body = Vec::new();
    body.extend(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"top_k\"\r\n\r\n2\r\n").as_bytes());
    body.extend(
        format!("--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"photo.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n")
            .as_bytes(),
    );
    body.extend(std::fs::read(&paths[1]).unwrap());
    body.extend(format!("\r\n--{boundary}--\r\n").as_bytes());
    let mut resp = Server::agent()
        .post(format!("{}/predict", server.url))
        .header("Content-Type", format!("multipart/form-data; boundary={boundary}"))
        .send(&body[..])
        .unwrap();
    let status = resp.status().as_u16();
    let answer: Value = serde_json::from_str(&resp.body_mut().read_to_string().unwrap()).unwrap();
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer.as_array().unwrap().len(), 2);
    assert!(same(&answer[0], &expected[1]), "{answer}");

    for (body, needle) in [
        (json!({"image": "not base64!"}), "not valid base64"),
        (json!({"image": base64::engine::general_purpose::STANDARD.encode(b"GIF89a....")}), "image"),
        (json!({"text": "a"}), "unknown field \"text\""),
        (json!({"image": b64[0], "adapter": "x"}), "no adapter"),
    ] {
        let (status, answer) = server.predict(&body.to_string(), &[]);
        assert_eq!(status, 422, "{answer}");
        assert!(answer["error"].as_str().unwrap().contains(needle), "{answer}");
    }
}

#[test]
fn a_client_that_trickles_its_headers_is_disconnected() {
    use std::io::{Read, Write};
    let server = Server::start(&["--header-read-timeout", "1"]);
    let addr = server.url.trim_start_matches("http://").to_string();
    let mut slow = std::net::TcpStream::connect(&addr).unwrap();
    slow.write_all(b"POST /predict HTTP/1.1\r\nHost: x\r\n").unwrap();
    slow.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
    let t0 = std::time::Instant::now();
    let mut buf = [0u8; 256];
    // The server closes the connection (EOF or reset) after the timeout, well before 10 s.
    let closed = match slow.read(&mut buf) {
        Ok(n) => n == 0 || String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 408"),
        Err(e) => e.kind() != std::io::ErrorKind::WouldBlock && e.kind() != std::io::ErrorKind::TimedOut,
    };
    assert!(closed, "the connection stayed open");
    assert!(t0.elapsed() < std::time::Duration::from_secs(5), "{:?}", t0.elapsed());
    assert_eq!(server.predict(&json!({"text": "still serving"}).to_string(), &[]).0, 200);
}

/// A text at the payload limit (2 MB in one request) is answered as its first words are: the
/// model thread tokenizes only what truncation keeps (`ft_data::clip`), so such requests cannot
/// hold it for seconds.
#[test]
fn a_two_megabyte_text_is_answered_as_its_first_words() {
    let server = Server::start(&[]);
    let sentence = "Oil prices climbed after the cartel agreed to cut output again. ";
    let long = sentence.repeat(2_000_000 / sentence.len());
    let short = sentence.repeat(300);
    let (status, got) = server.predict(&serde_json::json!({ "text": long }).to_string(), &[]);
    assert_eq!(status, 200, "{got}");
    let (status, want) = server.predict(&serde_json::json!({ "text": short }).to_string(), &[]);
    assert_eq!(status, 200, "{want}");
    assert!(same(&got, &want), "{got} vs {want}");
}
