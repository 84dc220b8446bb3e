//! Long inputs: how much of a text ft tokenizes.
//!
//! The `tokenizers` crate keeps per-character alignments while it normalizes a text, about 70
//! bytes of memory per input byte: a 100 MB one-line text would need 7 GB before truncation
//! throws almost all of it away. So when truncation is on (`max_length` = n tokens),
//! [`TextTokenizer`](crate::tokenize::TextTokenizer) tokenizes only a prefix of a long text:
//!
//! - texts up to [`CLIP_MIN_BYTES`] (64 KiB), or up to 64 bytes per kept token when that is
//!   more, are tokenized whole;
//! - a longer text is cut at the start of the last whitespace run within that budget, when it
//!   is within [`WORD_BYTES`] (4 KiB) of the budget's end; otherwise at the budget, on a
//!   character boundary. Tokenizers that
//!   split on whitespace before their model runs (BERT's WordPiece, GPT-2's byte-level BPE,
//!   SentencePiece's Metaspace) give the prefix the same tokens as the whole text up to the cut,
//!   so the first n tokens, and therefore the result, are unchanged;
//! - when the prefix yields fewer than n tokens (mostly whitespace or characters the normalizer
//!   drops), it is grown fourfold and tokenized again, up to [`MAX_TEXT_BYTES`] (16 MiB), where
//!   the text is cut for good: ft never reads more than 16 MiB of one text. Growing stops early
//!   when a round read only more of one word and gained no token (a word of hundreds of KiB,
//!   which WordPiece maps to one `[UNK]`): then the words after it are not read — the one case
//!   where the result can differ from tokenizing the whole text, and only for such a word.
//!
//! Pre-split word lists (`is_split_into_words`, CoNLL) are cut between words by the same rule.
//! Without truncation (`max_length` unset: a causal-LM corpus grouped into blocks, `ft data
//! tokenize` without `--max-length`) nothing can be dropped, and a text over
//! [`MAX_TEXT_BYTES`] is an error naming its position: split such documents first. Peak memory
//! is therefore bounded by about 80 × 16 MiB ≈ 1.3 GB per text in the worst case (megabytes of
//! whitespace before the first words), and by about 5 MB per text for ordinary text and the usual
//! `max_length` of 512 or less.

use std::borrow::Cow;

use tokenizers::tokenizer::{EncodeInput, InputSequence};

/// Texts (and word lists) up to this many bytes are always tokenized whole.
pub const CLIP_MIN_BYTES: usize = 64 * 1024;

/// Bytes of text tokenized per kept token, when that budget exceeds [`CLIP_MIN_BYTES`].
pub const CLIP_BYTES_PER_TOKEN: usize = 64;

/// The most bytes of one text (or word list) ft tokenizes: longer ones are cut here when
/// truncation is on, and refused when it is off.
pub const MAX_TEXT_BYTES: usize = 16 * 1024 * 1024;

/// The longest word [`prefix`] keeps whole: a longer run without whitespace is cut at the budget.
pub const WORD_BYTES: usize = 4096;

/// The first budget for `max_length` tokens.
pub fn first_budget(max_length: usize) -> usize {
    CLIP_MIN_BYTES.max(max_length.saturating_mul(CLIP_BYTES_PER_TOKEN)).min(MAX_TEXT_BYTES)
}

/// One input to tokenize: a text or a pre-split word list.
#[derive(Debug, Clone, Copy)]
pub enum Piece<'a> {
    /// A raw text.
    Text(&'a str),
    /// Pre-split words.
    Words(&'a [String]),
}

impl<'a> Piece<'a> {
    /// Its size in bytes.
    pub fn bytes(&self) -> usize {
        match self {
            Piece::Text(t) => t.len(),
            Piece::Words(w) => w.iter().map(String::len).sum(),
        }
    }

    /// The input for the tokenizer within `budget` bytes, and whether it was cut.
    pub fn input(&self, budget: usize) -> (EncodeInput<'a>, bool) {
        match *self {
            Piece::Text(t) => {
                let kept = prefix(t, budget);
                (EncodeInput::Single(InputSequence::Raw(Cow::Borrowed(kept))), kept.len() < t.len())
            }
            Piece::Words(words) => {
                let (kept, cut) = word_prefix(words, budget);
                (EncodeInput::Single(InputSequence::from(kept)), cut)
            }
        }
    }
}

impl Piece<'_> {
    /// Whether growing the budget from `from` to `to` bytes only lengthened the last, cut word
    /// (no whitespace, no new word read): more of a word that gave no new token, such as one
    /// WordPiece maps to a single `[UNK]`, is not read further.
    pub fn grew_within_one_word(&self, from: usize, to: usize) -> bool {
        match *self {
            Piece::Text(t) => {
                let (a, b) = (prefix(t, from).len(), prefix(t, to).len());
                !t[a.min(b)..b].contains(char::is_whitespace)
            }
            Piece::Words(w) => word_prefix(w, from).0.len() == word_prefix(w, to).0.len(),
        }
    }
}

/// The prefix of `text` tokenized within `budget` bytes (see the module docs).
pub fn prefix(text: &str, budget: usize) -> &str {
    if text.len() <= budget {
        return text;
    }
    let end = text.floor_char_boundary(budget);
    let head = &text[..end];
    // Cut at the start of the last whitespace run, so that the prefix ends with a whole word —
    // if that run is near the budget (a last word of at most WORD_BYTES): a text whose last
    // whitespace lies far back is cut at the budget instead, or its prefix would be tiny.
    if let Some(last_ws) = head.rfind(char::is_whitespace)
        && end - last_ws <= WORD_BYTES
    {
        let start = head[..last_ws].trim_end_matches(char::is_whitespace).len();
        if start > 0 {
            return &text[..start];
        }
    }
    head
}

/// The first words within `budget` bytes (at least the first word, itself cut to the budget).
fn word_prefix(words: &[String], budget: usize) -> (Vec<&str>, bool) {
    let mut kept = Vec::new();
    let mut used = 0usize;
    for word in words {
        if used + word.len() > budget {
            if kept.is_empty() {
                kept.push(prefix(word, budget));
            }
            return (kept, true);
        }
        used += word.len();
        kept.push(word.as_str());
    }
    (kept, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_texts_are_whole_and_long_ones_end_with_a_word() {
        assert_eq!(prefix("hello world", 100), "hello world");
        assert_eq!(prefix("hello   world again", 15), "hello   world");
        assert_eq!(prefix("hello   world again", 12), "hello");
        // No whitespace: a character boundary.
        assert_eq!(prefix("ééééé", 5), "éé");
        // Only leading whitespace: cut at the budget.
        assert_eq!(prefix("     abcdef", 8), "     abc");
    }

    #[test]
    fn word_lists_are_cut_between_words() {
        let words: Vec<String> = ["ab", "cd", "ef"].iter().map(|s| s.to_string()).collect();
        assert_eq!(word_prefix(&words, 4), (vec!["ab", "cd"], true));
        assert_eq!(word_prefix(&words, 6), (vec!["ab", "cd", "ef"], false));
        assert_eq!(word_prefix(&words, 1), (vec!["a"], true));
    }
}
