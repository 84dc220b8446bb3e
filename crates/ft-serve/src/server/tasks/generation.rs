//! `text-generation`: `{"text": prompt}` → `{"generated_text"}` (the continuation, as
//! text-generation-inference; `"return_full_text": true` puts the prompt first, as transformers'
//! pipeline), with `ft generate`'s settings; `"stream": true` answers server-sent events, one
//! per token, then the whole text.

use serde_json::{Map, Value, json};

use super::{TaskSpec, optional};
use crate::pipeline::TextGenerationPipeline;
use crate::server::batcher::{BatchModel, Call, Output, RunError};
use ft_models::generation::GenerationConfig;

/// The request fields of text generation.
pub struct TextGenerationSpec;

/// Most sequences (prompts × `num_return_sequences`) in one request.
const MAX_SEQUENCES: u64 = 64;

/// Generation settings a request may give, with their kinds (checked by the model's
/// `GenerationConfig`, whose messages name the setting).
const SETTINGS: &[(&str, &str, &str)] = &[
    ("max_new_tokens", "integer", "a positive integer"),
    ("do_sample", "boolean", "a boolean"),
    ("temperature", "number", "a number"),
    ("top_k", "integer", "a non-negative integer"),
    ("top_p", "number", "a number"),
    ("repetition_penalty", "number", "a number"),
    ("num_return_sequences", "integer", "a positive integer"),
];

impl TaskSpec for TextGenerationSpec {
    fn task(&self) -> &'static str {
        "text-generation"
    }
    fn option_schemas(&self) -> Vec<(&'static str, Value)> {
        let mut out: Vec<(&'static str, Value)> = SETTINGS.iter().map(|(k, t, _)| (*k, json!({"type": t}))).collect();
        out.push(("seed", json!({"type": "integer", "minimum": 0, "description": "sampling seed (reproducible)"})));
        out.push(("stream", json!({"type": "boolean", "description": "server-sent events, one per token"})));
        out.push(("return_full_text", json!({"type": "boolean", "description": "the prompt before the continuation"})));
        out
    }
    fn options(&self, body: &Map<String, Value>) -> Result<Value, String> {
        let mut out = Map::new();
        for (k, kind, expected) in SETTINGS {
            let v = match *kind {
                "boolean" => optional::<bool>(body, k, expected)?.map(Value::from),
                "number" => optional::<f64>(body, k, expected)?.map(Value::from),
                _ => optional::<u64>(body, k, expected)?.map(Value::from),
            };
            if let Some(v) = v {
                out.insert(k.to_string(), v);
            }
        }
        if let Some(seed) = optional::<u64>(body, "seed", "a non-negative integer")? {
            out.insert("seed".into(), seed.into());
        }
        for flag in ["stream", "return_full_text"] {
            if optional::<bool>(body, flag, "a boolean")? == Some(true) {
                out.insert(flag.into(), true.into());
            }
        }
        let sequences = out.get("num_return_sequences").and_then(Value::as_u64).unwrap_or(1);
        if out.contains_key("stream") && sequences > 1 {
            return Err("field \"num_return_sequences\": a stream returns one sequence".into());
        }
        // Every sequence is a row of the batch with the vocabulary's logits at each step.
        let prompts = body.get("inputs").and_then(Value::as_array).map_or(1, Vec::len) as u64;
        if prompts.saturating_mul(sequences) > MAX_SEQUENCES {
            return Err(format!(
                "field \"num_return_sequences\": {sequences} sequences for {prompts} prompts; at most {MAX_SEQUENCES} per request"
            ));
        }
        Ok(Value::Object(out))
    }
    fn mergeable(&self, options: &Value) -> bool {
        // A seeded request must not depend on the other requests of its batch (the model's
        // generation_config.json may sample even when the request does not say so).
        options.get("seed").is_none()
    }
    fn streams(&self, options: &Value) -> bool {
        options.get("stream") == Some(&Value::Bool(true))
    }
    fn output_schema(&self) -> Value {
        let one = json!({"type": "object", "properties": {"generated_text": {"type": "string"}}});
        json!({"oneOf": [one.clone(), {"type": "array", "items": one, "description": "num_return_sequences > 1"}]})
    }
}

impl BatchModel for TextGenerationPipeline {
    fn run(&mut self, call: Call<'_>) -> Result<Output, RunError> {
        self.set_adapter(call.adapter)?;
        let prompts: Vec<&str> = call.inputs.iter().filter_map(|i| i.text()).collect();
        let mut settings = call.options.as_object().cloned().unwrap_or_default();
        let seed = settings.remove("seed").and_then(|v| v.as_u64());
        let full = settings.remove("return_full_text").is_some();
        settings.remove("stream");
        let overrides: GenerationConfig =
            serde_json::from_value(Value::Object(settings)).map_err(|e| RunError::client(e.to_string()))?;
        let with_prompt = |i: usize, text: &str| if full { format!("{}{text}", prompts[i]) } else { text.to_string() };
        if let Some(events) = call.events {
            let prompt = prompts.first().copied().unwrap_or_default();
            let mut n = 0usize;
            let g = self.generate_stream(prompt, &overrides, seed, &mut |id, text| {
                n += 1;
                events(json!({"token": {"id": id, "text": text}, "generated_text": null}))
            })?;
            let text = with_prompt(0, &g.text);
            events(json!({"token": null, "generated_text": text, "details": {"generated_tokens": n}}));
            let tokens = g.prompt_ids.len() + g.token_ids.len();
            return Ok(Output { values: vec![json!({"generated_text": text})], tokens });
        }
        let out = if self.num_virtual_tokens() > 0 && prompts.len() > 1 {
            // With a prompt or prefix adapter, PEFT pads prompts after the virtual tokens, which
            // changes a prompt's continuation with its batch: one prompt at a time, as alone.
            let mut all = Vec::new();
            for (i, p) in prompts.iter().enumerate() {
                for mut g in self.generate(&[p], &overrides, seed)? {
                    g.prompt_index = i;
                    all.push(g);
                }
            }
            all
        } else {
            self.generate(&prompts, &overrides, seed)?
        };
        let tokens = out.iter().map(|g| g.prompt_ids.len() + g.token_ids.len()).sum();
        let mut per_prompt: Vec<Vec<Value>> = vec![Vec::new(); prompts.len()];
        for g in out {
            if let Some(slot) = per_prompt.get_mut(g.prompt_index) {
                slot.push(json!({"generated_text": with_prompt(g.prompt_index, &g.text)}));
            }
        }
        let values =
            per_prompt.into_iter().map(|mut v| if v.len() == 1 { v.remove(0) } else { Value::Array(v) }).collect();
        Ok(Output { values, tokens })
    }
}
