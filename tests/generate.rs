//! End-to-end: `ft generate` and `ft predict --task causal-lm` on the tiny GPT-2 fixture (random
//! weights, the real GPT-2 vocabulary), against what transformers computed on the same checkpoint
//! (`tests/fixtures/parity/tiny-gpt2.{json,safetensors}`, made by `xtask/python/fixtures_gpt2.py`):
//! greedy token ids, the JSON output, seeded sampling, `generation_config.json`, next-token logits
//! with truncation — and every bad setting the issue lists, each a clear error with a non-zero exit,
//! never a panic.

#[path = "support/mod.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use support::{fixture, read_safetensors};

const TOL: f64 = 1e-4;
const VOCAB: usize = 50257;

fn ft(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ft")).args(args).env("HF_HUB_OFFLINE", "1").output().expect("running ft")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn model_dir() -> PathBuf {
    fixture("models/tiny-gpt2")
}

/// `ft generate --model tiny-gpt2 <prompts> <extra>`; must succeed.
fn generate(model: &Path, prompts: &[&str], extra: &[&str]) -> Output {
    let mut args = vec!["generate", "--model", model.to_str().unwrap()];
    for p in prompts {
        args.extend(["--prompt", p]);
    }
    args.extend_from_slice(extra);
    let o = ft(&args);
    assert!(o.status.success(), "ft {args:?} failed: {}", stderr(&o));
    assert!(!stderr(&o).contains("panicked"), "{}", stderr(&o));
    o
}

/// `--json` output lines, each checked to hold exactly `prompt_ids`, `token_ids` and `text`.
fn json_lines(o: &Output) -> Vec<Value> {
    stdout(o)
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}"));
            let mut keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
            keys.sort_unstable();
            assert_eq!(keys, ["prompt_ids", "text", "token_ids"], "{l}");
            assert!(v["text"].is_string(), "{l}");
            v
        })
        .collect()
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect()
}

fn parity() -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixture("parity/tiny-gpt2.json")).unwrap()).unwrap()
}

/// A recorded `generate` call: (prompts, prompt ids, new tokens, kwargs).
type Call = (Vec<String>, Vec<Vec<u32>>, Vec<Vec<u32>>, Value);

/// The recorded `generate` call named `key`.
fn call(json: &Value, key: &str) -> Call {
    let c = json["generate"].as_array().unwrap().iter().find(|c| c["key"] == key).unwrap_or_else(|| panic!("{key}"));
    let prompts = c["prompts"].as_array().unwrap().iter().map(|p| p.as_str().unwrap().to_string()).collect();
    let prompt_ids = c["prompt_ids"].as_array().unwrap().iter().map(ids).collect();
    let new = c["new_tokens"].as_array().unwrap().iter().map(ids).collect();
    (prompts, prompt_ids, new, c["kwargs"].clone())
}

/// transformers pads a finished row with pad tokens; ft's row ends at its end-of-sequence token.
fn until_eos(row: &[u32], eos: u32) -> Vec<u32> {
    match row.iter().position(|&t| t == eos) {
        Some(i) => row[..=i].to_vec(),
        None => row.to_vec(),
    }
}

/// Checks one recorded greedy call through the CLI, with and without the cache.
fn check_greedy(key: &str, extra: &[&str]) {
    let json = parity();
    let (prompts, prompt_ids, new, kwargs) = call(&json, key);
    let refs: Vec<&str> = prompts.iter().map(String::as_str).collect();
    let n = kwargs["max_new_tokens"].as_u64().map(|n| n.to_string());
    let mut args: Vec<&str> = vec!["--json"];
    if let Some(n) = &n {
        args.extend(["--max-new-tokens", n]);
    }
    args.extend_from_slice(extra);
    let first = generate(&model_dir(), &refs, &args);
    let rows = json_lines(&first);
    assert_eq!(rows.len(), prompts.len(), "{key}: one line per prompt");
    for (r, row) in rows.iter().enumerate() {
        assert_eq!(ids(&row["prompt_ids"]), prompt_ids[r], "{key} row {r}: prompt ids");
        assert_eq!(ids(&row["token_ids"]), until_eos(&new[r], 50256), "{key} row {r}: new tokens");
    }
    args.push("--no-cache");
    let again = generate(&model_dir(), &refs, &args);
    assert_eq!(stdout(&again), stdout(&first), "{key}: --no-cache gives the same tokens");
}

#[test]
fn greedy_ids_equal_transformers_one_prompt() {
    for key in ["single_0", "single_1", "single_2"] {
        check_greedy(key, &[]);
    }
}

#[test]
fn greedy_ids_equal_transformers_default_and_capped_length() {
    // No --max-new-tokens: generate()'s 20 new tokens, capped at n_positions = 32 for a
    // 24-token prompt (8 new).
    check_greedy("default_length", &[]);
    check_greedy("capped", &[]);
}

#[test]
fn greedy_ids_equal_transformers_left_padded_batch_and_repetition_penalty() {
    check_greedy("batch", &[]);
    check_greedy("repetition_penalty", &["--repetition-penalty", "1.5"]);
}

#[test]
fn plain_output_is_prompt_then_continuation() {
    let json = parity();
    let (prompts, _, _, _) = call(&json, "batch");
    let refs: Vec<&str> = prompts.iter().map(String::as_str).collect();
    let rows = json_lines(&generate(&model_dir(), &refs, &["--max-new-tokens", "12", "--json"]));
    let plain = stdout(&generate(&model_dir(), &refs, &["--max-new-tokens", "12"]));
    let want: Vec<String> =
        prompts.iter().zip(&rows).map(|(p, r)| format!("{p}{}", r["text"].as_str().unwrap())).collect();
    assert_eq!(plain, want.join("\n---\n") + "\n");
    // The text holds the new tokens only (decoded), not the prompt.
    for (p, r) in prompts.iter().zip(&rows) {
        let text = r["text"].as_str().unwrap();
        assert!(!text.is_empty() && !text.contains(p.as_str()), "{text:?}");
    }
}

#[test]
fn generation_config_json_supplies_defaults() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("tiny-gpt2");
    std::fs::create_dir_all(&dir).unwrap();
    for e in std::fs::read_dir(model_dir()).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), dir.join(e.file_name())).unwrap();
    }
    // transformers' "eos" call: eos_token_id 19766 stops the first prompt after 4 tokens.
    let json = parity();
    let (prompts, _, new, _) = call(&json, "eos");
    std::fs::write(dir.join("generation_config.json"), r#"{"eos_token_id": 19766, "max_new_tokens": 12}"#).unwrap();
    let rows = json_lines(&generate(&dir, &[&prompts[0]], &["--json"]));
    assert_eq!(ids(&rows[0]["token_ids"]), until_eos(&new[0], 19766));
    assert_eq!(ids(&rows[0]["token_ids"]).len(), 4);
    // The command line wins over the file.
    let rows = json_lines(&generate(&dir, &[&prompts[1]], &["--json", "--max-new-tokens", "3"]));
    assert_eq!(ids(&rows[0]["token_ids"]), new[1][..3].to_vec());
    // A file that asks for sampling samples (with the seed given), and a bad value in it is an error.
    std::fs::write(dir.join("generation_config.json"), r#"{"do_sample": true, "top_k": 1, "max_new_tokens": 5}"#)
        .unwrap();
    let rows = json_lines(&generate(&dir, &[&prompts[1]], &["--json", "--seed", "1"]));
    assert_eq!(ids(&rows[0]["token_ids"]), new[1][..5].to_vec(), "top_k 1 samples the greedy tokens");
    std::fs::write(dir.join("generation_config.json"), r#"{"do_sample": true, "temperature": 0.0}"#).unwrap();
    let o = ft(&["generate", "--model", dir.to_str().unwrap(), "--prompt", "hi"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("temperature") && !stderr(&o).contains("panicked"), "{}", stderr(&o));
}

#[test]
fn seeded_sampling_is_reproducible() {
    let prompts = ["Hello, my dog is cute and", "The meaning of life is"];
    let sample = |seed: &str, extra: &[&str]| {
        let mut args = vec!["--do-sample", "--seed", seed, "--max-new-tokens", "8", "--json"];
        args.extend_from_slice(extra);
        generate(&model_dir(), &prompts, &args)
    };
    let a = sample("42", &["--num-return-sequences", "3", "--temperature", "1.5", "--top-k", "0"]);
    let rows = json_lines(&a);
    assert_eq!(rows.len(), 6, "3 sequences per prompt");
    let want_prompts = [vec![15496, 11, 616, 3290, 318, 13779, 290], vec![464, 3616, 286, 1204, 318]];
    for (i, row) in rows.iter().enumerate() {
        assert_eq!(ids(&row["prompt_ids"]), want_prompts[i / 3], "sequences are in prompt order");
        let t = ids(&row["token_ids"]);
        assert!(!t.is_empty() && t.len() <= 8);
        assert!(t.len() == 8 || t.last() == Some(&50256), "a row shorter than 8 ends at eos: {t:?}");
    }
    // Three draws of one prompt differ (random weights, temperature 1.5, no top-k: a repeat
    // of 8 tokens is practically impossible).
    assert!(rows[0]["token_ids"] != rows[1]["token_ids"] && rows[1]["token_ids"] != rows[2]["token_ids"]);
    let again = sample("42", &["--num-return-sequences", "3", "--temperature", "1.5", "--top-k", "0"]);
    assert_eq!(stdout(&again), stdout(&a), "same seed, same text");
    let other = sample("43", &["--num-return-sequences", "3", "--temperature", "1.5", "--top-k", "0"]);
    assert_ne!(stdout(&other), stdout(&a), "another seed, other text");
    let no_cache = sample("42", &["--num-return-sequences", "3", "--temperature", "1.5", "--top-k", "0", "--no-cache"]);
    assert_eq!(stdout(&no_cache), stdout(&a), "the cache does not change sampling");
    // top_k 0 disables top-k (transformers): the same as keeping the whole vocabulary.
    let all = sample("42", &["--num-return-sequences", "3", "--temperature", "1.5", "--top-k", "50257"]);
    assert_eq!(stdout(&all), stdout(&a));
    // Without --seed the seed is printed, and passing it gives the same text again.
    let o = generate(&model_dir(), &prompts[..1], &["--do-sample", "--max-new-tokens", "6", "--json"]);
    let err = stderr(&o);
    let seed = err
        .split("sampling with seed ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .unwrap_or_else(|| panic!("no seed reported: {err}"));
    let o2 = generate(&model_dir(), &prompts[..1], &["--do-sample", "--max-new-tokens", "6", "--json", "--seed", seed]);
    assert_eq!(stdout(&o2), stdout(&o));
    // top_p and the repetition penalty run through the CLI too, reproducibly.
    let p = sample("7", &["--top-p", "0.5", "--repetition-penalty", "1.3"]);
    assert_eq!(stdout(&p), stdout(&sample("7", &["--top-p", "0.5", "--repetition-penalty", "1.3"])));
    assert_eq!(json_lines(&p).len(), 2);
}

#[test]
fn sampling_with_top_k_1_is_greedy() {
    let json = parity();
    let (prompts, _, new, _) = call(&json, "single_1");
    let rows = json_lines(&generate(
        &model_dir(),
        &[&prompts[0]],
        &[
            "--do-sample",
            "--top-k",
            "1",
            "--seed",
            "9",
            "--max-new-tokens",
            "12",
            "--num-return-sequences",
            "2",
            "--json",
        ],
    ));
    assert_eq!(rows.len(), 2);
    for row in rows {
        assert_eq!(ids(&row["token_ids"]), new[0]);
    }
}

fn write_texts(dir: &Path, texts: &[&str]) -> PathBuf {
    let path = dir.join("in.jsonl");
    let lines: Vec<String> = texts.iter().map(|t| serde_json::json!({"text": t}).to_string()).collect();
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    path
}

fn predict(input: &Path, output: &Path, extra: &[&str]) -> Output {
    let model = model_dir();
    let mut args = vec![
        "predict",
        "--model",
        model.to_str().unwrap(),
        "--task",
        "causal-lm",
        "--input",
        input.to_str().unwrap(),
        "--output",
        output.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    ft(&args)
}

/// Checks `ft predict --task causal-lm` rows against transformers' logits at position
/// `min(len, limit) - 1` of each fixture text; returns the largest error.
fn check_next_token_logits(rows: &[Value], limit: usize) -> f64 {
    let json = parity();
    let exp = read_safetensors(&fixture("parity/tiny-gpt2.safetensors"));
    let subset: Vec<usize> = exp["vocab_subset"].1.iter().map(|&x| x as usize).collect();
    let mut worst = 0.0f64;
    for (i, row) in rows.iter().enumerate() {
        let mut keys: Vec<&str> = row.as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(keys, ["input_ids", "next_token_logits"]);
        let full = ids(&json["encodings"][i]["input_ids"]);
        let n = full.len().min(limit);
        assert_eq!(ids(&row["input_ids"]), full[..n].to_vec(), "text {i}: the first {n} tokens");
        let logits: Vec<f64> =
            row["next_token_logits"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect();
        assert_eq!(logits.len(), VOCAB);
        // A causal model's logits at position n - 1 do not depend on the tokens after it.
        let (_, sub) = &exp[&format!("single_{i}_logits_subset")];
        let (_, max) = &exp[&format!("single_{i}_logits_max")];
        let (_, arg) = &exp[&format!("single_{i}_logits_argmax")];
        let at = n - 1;
        for (j, &id) in subset.iter().enumerate() {
            worst = worst.max((logits[id] - sub[at * subset.len() + j]).abs());
        }
        let our_max = logits.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        worst = worst.max((our_max - max[at]).abs());
        worst = worst.max((logits[arg[at] as usize] - our_max).abs());
        if i == 0 && n == full.len() {
            let (_, want) = &exp["single_0_next_token_logits"];
            worst = worst.max(support::max_abs_diff(&logits, want));
        }
    }
    worst
}

#[test]
fn predict_causal_lm_next_token_logits_match_transformers() {
    let tmp = tempfile::tempdir().unwrap();
    let json = parity();
    let texts: Vec<&str> = json["texts"].as_array().unwrap().iter().map(|t| t.as_str().unwrap()).collect();
    // The last text has 46 tokens: truncated to n_positions = 32, keeping the first.
    assert!(json["encodings"][5]["untruncated_length"].as_u64().unwrap() > 32);
    let input = write_texts(tmp.path(), &texts);
    let output = tmp.path().join("out.jsonl");
    let o = predict(&input, &output, &["--batch-size", "4"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let rows: Vec<Value> =
        std::fs::read_to_string(&output).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(rows.len(), texts.len());
    let err = check_next_token_logits(&rows, 32);
    assert!(err <= TOL, "max abs error {err}");
    println!("ft predict --task causal-lm: max abs error vs transformers {err:.2e}");

    // --max-length 4 keeps the first 4 tokens of each text.
    let o = predict(&input, &output, &["--max-length", "4", "--batch-size", "1"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let rows: Vec<Value> =
        std::fs::read_to_string(&output).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let err = check_next_token_logits(&rows, 4);
    assert!(err <= TOL, "--max-length 4: max abs error {err}");
}

/// Runs `ft generate` that must fail: non-zero exit, the needles in stderr, nothing on stdout,
/// no panic.
fn expect_generate_error(model: &str, prompts: &[&str], extra: &[&str], needles: &[&str]) {
    let mut args = vec!["generate", "--model", model];
    for p in prompts {
        args.extend(["--prompt", p]);
    }
    args.extend_from_slice(extra);
    let o = ft(&args);
    let err = stderr(&o);
    assert!(!o.status.success(), "{args:?} succeeded: {}", stdout(&o));
    assert_eq!(o.status.code(), Some(1), "{args:?}: {err}");
    assert!(stdout(&o).is_empty(), "{args:?} printed {}", stdout(&o));
    assert!(!err.contains("panicked"), "{args:?}: {err}");
    for needle in needles {
        assert!(err.contains(needle), "{args:?}: stderr lacks '{needle}': {err}");
    }
}

#[test]
fn bad_generation_settings_are_clear_errors() {
    let m = model_dir();
    let m = m.to_str().unwrap();
    let hi = ["Hello"];
    for (extra, needles) in [
        (&["--max-new-tokens", "0"][..], &["--max-new-tokens must be at least 1"][..]),
        (&["--temperature", "0"], &["--temperature must be a positive number, got 0"]),
        (&["--do-sample", "--temperature", "0"], &["--temperature must be a positive number"]),
        (&["--do-sample", "--temperature", "-1"], &["--temperature must be a positive number, got -1"]),
        (&["--temperature", "-0.5"], &["--temperature must be a positive number, got -0.5"]),
        (&["--do-sample", "--top-p", "0"], &["--top-p must be in (0, 1], got 0"]),
        (&["--do-sample", "--top-p", "1.5"], &["--top-p must be in (0, 1], got 1.5"]),
        (&["--top-p", "-0.1"], &["--top-p must be in (0, 1]"]),
        (&["--repetition-penalty", "0"], &["--repetition-penalty must be a positive number"]),
        (&["--num-return-sequences", "0"], &["--num-return-sequences must be at least 1"]),
        (&["--num-return-sequences", "2"], &["needs sampling"]),
        (&["--max-new-tokens", "40"], &["n_positions = 32", "at most 31 new tokens"]),
        (&["--device", "tpu"], &["tpu"]),
    ] {
        expect_generate_error(m, &hi, extra, needles);
    }
}

#[test]
fn top_k_0_disables_top_k_and_is_ignored_by_greedy() {
    // Documented behaviour, as transformers: top_k 0 = no top-k filtering when sampling; greedy
    // decoding ignores sampling settings (with a warning).
    let json = parity();
    let (prompts, _, new, _) = call(&json, "single_1");
    let o = generate(&model_dir(), &[&prompts[0]], &["--top-k", "0", "--max-new-tokens", "12", "--json"]);
    assert_eq!(ids(&json_lines(&o)[0]["token_ids"]), new[0]);
    assert!(stderr(&o).contains("--top-k only apply to sampling"), "{}", stderr(&o));
}

/// A text of `n` GPT-2 tokens ("word" then " word" × (n − 1)).
fn words(n: usize) -> String {
    "word".to_string() + &" word".repeat(n - 1)
}

#[test]
fn over_long_prompts_and_missing_models_are_clear_errors() {
    let m = model_dir();
    let m = m.to_str().unwrap();
    // 41 tokens > n_positions = 32: transformers raises a ValueError (default length) or an
    // IndexError (max_new_tokens); ft refuses before generating, naming the limit.
    let long = words(41);
    expect_generate_error(m, &[&long], &[], &["the prompt has 41 tokens", "n_positions = 32", "at most 31 tokens"]);
    expect_generate_error(m, &[&long], &["--max-new-tokens", "3"], &["the prompt has 41 tokens"]);
    // Exactly n_positions tokens leave no room either.
    let exact = words(32);
    expect_generate_error(m, &[&exact], &["--max-new-tokens", "1"], &["the prompt has 32 tokens"]);
    // In a batch, the error names the prompt at fault.
    expect_generate_error(m, &["a", &long], &["--max-new-tokens", "3"], &["prompt 2:", "41 tokens"]);
    expect_generate_error(m, &["a", &words(25)], &["--max-new-tokens", "10"], &["prompt 2:", "at most 7 new tokens"]);
    // A prompt of 31 tokens still gets its one token.
    let fits = words(31);
    let rows = json_lines(&generate(&model_dir(), &[&fits], &["--max-new-tokens", "1", "--json"]));
    assert_eq!((ids(&rows[0]["prompt_ids"]).len(), ids(&rows[0]["token_ids"]).len()), (31, 1));
    // Without --max-new-tokens the default 20 is capped at n_positions: 1 new token.
    let rows = json_lines(&generate(&model_dir(), &[&fits], &["--json"]));
    assert_eq!(ids(&rows[0]["token_ids"]).len(), 1);

    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("no-such-model");
    expect_generate_error(missing.to_str().unwrap(), &["hi"], &[], &["loading model", "no-such-model"]);
    // A directory without a model, and an encoder, which has no LM head.
    expect_generate_error(tmp.path().to_str().unwrap(), &["hi"], &[], &["loading model"]);
    let bert = fixture("models/tiny-bert");
    expect_generate_error(bert.to_str().unwrap(), &["hi"], &[], &["no causal language-model head"]);
}

#[test]
fn bad_causal_lm_predictions_are_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let input = write_texts(tmp.path(), &["Hello", ""]);
    let output = tmp.path().join("out.jsonl");
    for (extra, needle) in [
        (&[][..], "in.jsonl:2: the tokenizer produced no tokens"),
        (&["--max-length", "33"], "max length 33 exceeds"),
        (&["--max-length", "0"], "max length must be at least 1"),
    ] {
        std::fs::write(&output, "previous\n").unwrap();
        let o = predict(&input, &output, extra);
        let err = stderr(&o);
        assert!(!o.status.success(), "{extra:?}");
        assert!(err.contains(needle) && !err.contains("panicked"), "{extra:?}: {err}");
        assert_eq!(std::fs::read_to_string(&output).unwrap(), "previous\n", "output was modified");
    }
}
