//! Tokenization with a model's own `tokenizer.json`, as transformers' fast tokenizers do it.
//!
//! [`TextTokenizer`] wraps the `tokenizers` crate. Padding and truncation settings stored in a
//! Hub `tokenizer.json` are cleared on load (transformers ignores them too: padding and
//! truncation are per-call arguments there); truncation is then set from `max_length` with
//! transformers' `truncation=True` semantics: keep the first tokens, counting the special tokens
//! the post-processor adds (`[CLS]`, `[SEP]`). Offsets are in characters, as Python reports them.
//! Of a very long text only a prefix that yields the same tokens is tokenized, and no text over
//! 16 MiB is read whole ([`crate::clip`]): memory stays bounded whatever the input.

use std::path::{Path, PathBuf};

use tokenizers::decoders::DecoderWrapper;
use tokenizers::tokenizer::{Decoder, EncodeInput};
use tokenizers::{PostProcessor, Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy};

use crate::clip::{MAX_TEXT_BYTES, Piece, first_budget};
use crate::hub::RepoFiles;
use crate::{DataError, Result};

/// One encoded text (or pre-split word list), unpadded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    /// Token ids, special tokens included.
    pub input_ids: Vec<u32>,
    /// Segment ids (`token_type_ids`), all 0 for a single sequence.
    pub type_ids: Vec<u32>,
    /// The word each token comes from; `None` for special tokens.
    pub word_ids: Vec<Option<u32>>,
    /// `(start, end)` character offsets of each token in the text; `(0, 0)` for special tokens.
    pub offsets: Vec<(usize, usize)>,
    /// 1 for tokens the post-processor added (`[CLS]`, `[SEP]`), else 0.
    pub special_tokens_mask: Vec<u32>,
}

impl Encoded {
    /// Number of tokens.
    pub fn len(&self) -> usize {
        self.input_ids.len()
    }

    /// Whether there are no tokens at all.
    pub fn is_empty(&self) -> bool {
        self.input_ids.is_empty()
    }
}

/// Token ids of one encoded text, without offsets (see [`TextTokenizer::encode_ids_batch`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenIds {
    /// Token ids, special tokens included.
    pub input_ids: Vec<u32>,
    /// Segment ids (`token_type_ids`).
    pub type_ids: Vec<u32>,
    /// The word each token comes from; `None` for special tokens.
    pub word_ids: Vec<Option<u32>>,
}

/// A tokenizer loaded from `tokenizer.json`, with transformers' truncation semantics.
#[derive(Debug, Clone)]
pub struct TextTokenizer {
    inner: Tokenizer,
    path: PathBuf,
    max_length: Option<usize>,
    pad_id: u32,
    unk_id: Option<u32>,
    model_max_length: Option<usize>,
}

/// The fields of `tokenizer_config.json` that change what the tokenizer produces.
#[derive(Debug, Default, serde::Deserialize)]
struct TokenizerConfig {
    model_max_length: Option<f64>,
    pad_token: Option<SpecialToken>,
    unk_token: Option<SpecialToken>,
}

/// A special token as `tokenizer_config.json` writes it: a string or an `AddedToken` object.
#[derive(Debug, serde::Deserialize)]
#[serde(untagged)]
enum SpecialToken {
    Plain(String),
    Added { content: String },
}

impl SpecialToken {
    fn content(&self) -> &str {
        match self {
            Self::Plain(s) => s,
            Self::Added { content } => content,
        }
    }
}

impl TextTokenizer {
    /// Loads `tokenizer.json` (and, when given, `tokenizer_config.json` for the pad/unk tokens and
    /// `model_max_length`). No truncation until [`with_max_length`](Self::with_max_length).
    pub fn from_files(tokenizer_json: &Path, tokenizer_config: Option<&Path>) -> Result<Self> {
        let invalid = |message: String| DataError::Tokenizer {
            path: tokenizer_json.to_path_buf(),
            message: format!("not a valid tokenizer.json: {message}"),
        };
        let text = std::fs::read_to_string(tokenizer_json)
            .map_err(|source| DataError::Io { path: tokenizer_json.to_path_buf(), error: source })?;
        // Checked as plain JSON first: the `tokenizers` crate panics on some malformed files
        // (a syntax error inside `decoder`, a template naming an undefined special token).
        let json: serde_json::Value = serde_json::from_str(&text).map_err(|e| invalid(e.to_string()))?;
        if let Some(problem) = json.get("post_processor").and_then(template_problem) {
            return Err(invalid(format!("post_processor: {problem}")));
        }
        let mut inner: Tokenizer = text.parse().map_err(|e| invalid(format!("{e}")))?;
        inner.with_padding(None);
        inner
            .with_truncation(None)
            .map_err(|e| DataError::Tokenizer { path: tokenizer_json.to_path_buf(), message: e.to_string() })?;
        let config = match tokenizer_config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|source| DataError::Io { path: path.to_path_buf(), error: source })?;
                serde_json::from_str::<TokenizerConfig>(&text).map_err(|e| DataError::Tokenizer {
                    path: path.to_path_buf(),
                    message: format!("invalid tokenizer_config.json: {e}"),
                })?
            }
            None => TokenizerConfig::default(),
        };
        let lookup = |tok: &Option<SpecialToken>, fallbacks: &[&str]| {
            tok.as_ref()
                .and_then(|t| inner.token_to_id(t.content()))
                .or_else(|| fallbacks.iter().find_map(|t| inner.token_to_id(t)))
        };
        let pad_id = lookup(&config.pad_token, &["[PAD]", "<pad>"]).unwrap_or(0);
        let unk_id = lookup(&config.unk_token, &["[UNK]", "<unk>"]);
        // transformers writes a huge sentinel (1e30) when the length is unknown.
        let model_max_length =
            config.model_max_length.filter(|&n| n.is_finite() && n > 0.0 && n < 1e9).map(|n| n as usize);
        Ok(Self { inner, path: tokenizer_json.to_path_buf(), max_length: None, pad_id, unk_id, model_max_length })
    }

    /// Loads the tokenizer of a model repository (`tokenizer.json`, plus `tokenizer_config.json`
    /// when present).
    pub fn from_repo(files: &RepoFiles) -> Result<Self> {
        let json = files.get_required("tokenizer.json")?;
        let config = files.get_optional("tokenizer_config.json")?;
        Self::from_files(&json, config.as_deref())
    }

    /// Truncates every encoding to at most `max_length` tokens, special tokens included
    /// (transformers' `truncation=True, max_length=N`); `None` turns truncation off.
    pub fn with_max_length(mut self, max_length: Option<usize>) -> Result<Self> {
        let special = self.inner.get_post_processor().map_or(0, |p| p.added_tokens(false));
        if let Some(n) = max_length
            && n < special
        {
            return Err(DataError::Tokenizer {
                path: self.path.clone(),
                message: format!(
                    "max_length {n} is shorter than the {special} special tokens the tokenizer adds to every sequence"
                ),
            });
        }
        let params = max_length.map(|max_length| TruncationParams {
            direction: TruncationDirection::Right,
            max_length,
            strategy: TruncationStrategy::LongestFirst,
            stride: 0,
        });
        self.inner.with_truncation(params).map_err(|e| DataError::Tokenizer {
            path: self.path.clone(),
            message: format!("max_length {max_length:?}: {e}"),
        })?;
        self.max_length = max_length;
        Ok(self)
    }

    /// The truncation length in use.
    pub fn max_length(&self) -> Option<usize> {
        self.max_length
    }

    /// `model_max_length` from `tokenizer_config.json`, when it is a real limit.
    pub fn model_max_length(&self) -> Option<usize> {
        self.model_max_length
    }

    /// Id of the padding token (0 when the tokenizer defines none).
    pub fn pad_id(&self) -> u32 {
        self.pad_id
    }

    /// Id of the unknown token, when there is one.
    pub fn unk_id(&self) -> Option<u32> {
        self.unk_id
    }

    /// The `tokenizer.json` this was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Vocabulary size, added tokens included.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// The token with the highest id (added tokens included), when the vocabulary is not empty.
    pub fn max_token(&self) -> Option<(String, u32)> {
        self.inner.get_vocab(true).into_iter().max_by_key(|(_, id)| *id)
    }

    /// The token string of `id`.
    pub fn id_to_token(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id)
    }

    /// The id of a token string.
    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// Joins tokens back into text with the tokenizer's decoder (transformers'
    /// `convert_tokens_to_string` for fast tokenizers); plain space-joining without a decoder.
    pub fn tokens_to_string(&self, tokens: Vec<String>) -> String {
        match self.inner.get_decoder() {
            Some(decoder) => decode_with(decoder, tokens.clone()).unwrap_or_else(|| tokens.join(" ")),
            None => tokens.join(" "),
        }
    }

    /// Decodes ids to text.
    pub fn decode(&self, ids: &[u32], skip_special_tokens: bool) -> Result<String> {
        self.inner
            .decode(ids, skip_special_tokens)
            .map_err(|e| DataError::Tokenizer { path: self.path.clone(), message: format!("decode: {e}") })
    }

    /// Encodes texts in parallel, with special tokens and the configured truncation.
    pub fn encode_batch(&self, texts: &[&str]) -> Result<Vec<Encoded>> {
        let pieces: Vec<Piece> = texts.iter().map(|t| Piece::Text(t)).collect();
        self.encode_clipped(&pieces, |inputs| self.encode_inputs(inputs), Encoded::len)
    }

    /// Encodes pre-split words (transformers' `is_split_into_words=True`): word ids index the
    /// given words, offsets are relative to each word.
    pub fn encode_words_batch(&self, words: &[Vec<String>]) -> Result<Vec<Encoded>> {
        let pieces: Vec<Piece> = words.iter().map(|w| Piece::Words(w)).collect();
        self.encode_clipped(&pieces, |inputs| self.encode_inputs(inputs), Encoded::len)
    }

    /// Encodes texts in parallel like [`encode_batch`](Self::encode_batch), without offsets or
    /// word ids (the faster path for dataset tokenization).
    pub fn encode_ids_batch(&self, texts: &[&str]) -> Result<Vec<TokenIds>> {
        let pieces: Vec<Piece> = texts.iter().map(|t| Piece::Text(t)).collect();
        self.encode_clipped(&pieces, |inputs| self.encode_ids_inputs(inputs), |e| e.input_ids.len())
    }

    /// Encodes pre-split words in parallel (`is_split_into_words=True`), with word ids but
    /// without character offsets.
    pub fn encode_words_ids_batch(&self, words: &[&[String]]) -> Result<Vec<TokenIds>> {
        let pieces: Vec<Piece> = words.iter().map(|w| Piece::Words(w)).collect();
        // The offset-free path of `tokenizers` drops word ids: use the byte-offset one.
        let run = |inputs: Vec<EncodeInput>| -> Result<Vec<TokenIds>> {
            let encodings = self
                .inner
                .encode_batch(inputs, true)
                .map_err(|e| DataError::Encode { index: 0, message: e.to_string() })?;
            Ok(encodings.into_iter().map(Self::token_ids).collect())
        };
        self.encode_clipped(&pieces, run, |e| e.input_ids.len())
    }

    /// Runs `encode` on the pieces, tokenizing only what truncation can keep of long ones (see
    /// [`crate::clip`]); without truncation, a piece over [`MAX_TEXT_BYTES`] is an error.
    fn encode_clipped<T>(
        &self,
        pieces: &[Piece],
        encode: impl Fn(Vec<EncodeInput>) -> Result<Vec<T>>,
        len: impl Fn(&T) -> usize,
    ) -> Result<Vec<T>> {
        let Some(max_length) = self.max_length else {
            if let Some((index, piece)) = pieces.iter().enumerate().find(|(_, p)| p.bytes() > MAX_TEXT_BYTES) {
                return Err(DataError::Encode {
                    index,
                    message: format!(
                        "the text is {} bytes, above ft's limit of {MAX_TEXT_BYTES} bytes for one text without truncation: \
                         set a max_length, or split the text into smaller documents",
                        piece.bytes()
                    ),
                });
            }
            return encode(pieces.iter().map(|p| p.input(usize::MAX).0).collect());
        };
        let budget = first_budget(max_length);
        let (inputs, cut): (Vec<_>, Vec<bool>) = pieces.iter().map(|p| p.input(budget)).unzip();
        let mut out = encode(inputs)?;
        for (i, piece) in pieces.iter().enumerate() {
            let mut budget = budget;
            // Too few tokens from the prefix (whitespace, dropped characters): read more of it.
            while cut[i] && len(&out[i]) < max_length && budget < MAX_TEXT_BYTES && piece.bytes() > budget {
                let grown = budget.saturating_mul(4).min(MAX_TEXT_BYTES);
                let Some(e) = encode(vec![piece.input(grown).0])?.into_iter().next() else { break };
                let gained = len(&e) > len(&out[i]);
                out[i] = e;
                if !gained && piece.grew_within_one_word(budget, grown) {
                    break; // more of one word that gives no new token (crate::clip)
                }
                budget = grown;
            }
        }
        Ok(out)
    }

    fn token_ids(e: tokenizers::Encoding) -> TokenIds {
        TokenIds {
            input_ids: e.get_ids().to_vec(),
            type_ids: e.get_type_ids().to_vec(),
            word_ids: e.get_word_ids().to_vec(),
        }
    }

    fn encode_ids_inputs(&self, inputs: Vec<EncodeInput>) -> Result<Vec<TokenIds>> {
        let encodings = self
            .inner
            .encode_batch_fast(inputs, true)
            .map_err(|e| DataError::Encode { index: 0, message: e.to_string() })?;
        Ok(encodings.into_iter().map(Self::token_ids).collect())
    }

    fn encode_inputs(&self, inputs: Vec<EncodeInput>) -> Result<Vec<Encoded>> {
        let encodings = self
            .inner
            .encode_batch_char_offsets(inputs, true)
            .map_err(|e| DataError::Encode { index: 0, message: e.to_string() })?;
        Ok(encodings
            .into_iter()
            .map(|e| Encoded {
                input_ids: e.get_ids().to_vec(),
                type_ids: e.get_type_ids().to_vec(),
                word_ids: e.get_word_ids().to_vec(),
                offsets: e.get_offsets().to_vec(),
                special_tokens_mask: e.get_special_tokens_mask().to_vec(),
            })
            .collect())
    }
}

/// Why a `post_processor` would fail at encoding time: a `TemplateProcessing` whose template
/// names a special token its `special_tokens` does not define (also inside a `Sequence`).
fn template_problem(processor: &serde_json::Value) -> Option<String> {
    match processor.get("type")?.as_str()? {
        "Sequence" => processor.get("processors")?.as_array()?.iter().find_map(template_problem),
        "TemplateProcessing" => {
            let defined = processor.get("special_tokens").and_then(|t| t.as_object());
            ["single", "pair"].iter().find_map(|key| {
                processor.get(*key)?.as_array()?.iter().find_map(|piece| {
                    let id = piece.get("SpecialToken")?.get("id")?.as_str()?;
                    let ok = defined.and_then(|d| d.get(id)).is_some();
                    (!ok).then(|| {
                        format!(
                            "the {key} template uses the special token '{id}', which special_tokens does not define"
                        )
                    })
                })
            })
        }
        _ => None,
    }
}

fn decode_with(decoder: &DecoderWrapper, tokens: Vec<String>) -> Option<String> {
    decoder.decode(tokens).ok()
}
