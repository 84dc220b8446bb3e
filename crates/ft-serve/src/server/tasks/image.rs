//! `image-classification`: `{"image": "<base64 PNG/JPEG>"}` (a `data:` URL too) or a
//! multipart upload → `{"label", "score"}`, or the `top_k` best.

use std::path::Path;

use base64::Engine;
use serde_json::{Map, Value, json};

use super::{TaskSpec, classification_output, classification_schema, top_k_option, top_prediction};
use crate::pipeline::ImageClassificationPipeline;
use crate::pipeline::softmax;
use crate::server::batcher::{BatchModel, Call, Input, Output, RunError};

/// The request fields of image classification.
pub struct ImageClassificationSpec;

/// The most pixels of one image in a request (decoding runs off the async threads; this bounds
/// its memory: 48 MiB of RGB per image).
const MAX_PIXELS: u64 = 4096 * 4096;

impl TaskSpec for ImageClassificationSpec {
    fn task(&self) -> &'static str {
        "image-classification"
    }
    fn input_field(&self) -> &'static str {
        "image"
    }
    fn input_schema(&self) -> Value {
        json!({"type": "string", "format": "byte", "description": "a PNG or JPEG file, base64 (a data: URL too)"})
    }
    fn input(&self, field: &str, value: &Value) -> Result<Input, String> {
        let Value::String(text) = value else {
            return Err(format!(
                "field \"{field}\" must be a base64 string, not {}",
                super::super::request::kind(value)
            ));
        };
        // `data:image/png;base64,....` as browsers write it.
        let b64 = match text.split_once(";base64,") {
            Some((head, rest)) if head.starts_with("data:") => rest,
            _ => text.as_str(),
        };
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .map_err(|e| format!("field \"{field}\" is not valid base64: {e}"))?;
        if let Some((w, h)) = ft_data::vision::image_dimensions(&bytes)
            && (w as u64) * (h as u64) > MAX_PIXELS
        {
            return Err(format!(
                "field \"{field}\": the image is {w}x{h}, above the server's limit of {MAX_PIXELS} pixels (4096 x 4096)"
            ));
        }
        ft_data::vision::decode_rgb(&bytes, Path::new(field)).map(Input::Image).map_err(|e| e.to_string())
    }
    fn option_schemas(&self) -> Vec<(&'static str, Value)> {
        vec![("top_k", json!({"type": "integer", "minimum": 1, "description": "answer the k best labels as a list"}))]
    }
    fn options(&self, body: &Map<String, Value>) -> Result<Value, String> {
        top_k_option(body)
    }
    fn output_schema(&self) -> Value {
        classification_schema()
    }
    fn predictions(&self, output: &Value) -> Vec<(String, f64)> {
        top_prediction(output)
    }
    fn has_labels(&self) -> bool {
        true
    }
}

impl BatchModel for ImageClassificationPipeline {
    fn run(&mut self, call: Call<'_>) -> Result<Output, RunError> {
        if call.adapter.is_some() {
            return Err(RunError::client("adapters apply to text models"));
        }
        let images: Vec<ft_data::vision::RgbImage> = call
            .inputs
            .iter()
            .filter_map(|i| match i {
                Input::Image(im) => Some(im.clone()),
                Input::Text(_) => None,
            })
            .collect();
        let out = self.predict(&images)?;
        let values =
            out.iter().map(|r| classification_output(self.labels(), &softmax(&r.logits), call.options)).collect();
        Ok(Output { values, tokens: 0 })
    }
}
