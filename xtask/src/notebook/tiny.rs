//! The `--tiny` profile's data, written by the xtask itself: a small AG News look-alike (JSON
//! Lines with the recipe's `text`/`label` columns, `train.jsonl` + `test.jsonl`, read through the
//! `ag_news` recipe so that the labels get its names) and a small CoNLL-2003 look-alike (CoNLL
//! text, `token POS chunk NER` per line, `train.txt` + `valid.txt`, read through the `conll2003`
//! recipe). The words come from the tiny fixture tokenizer's vocabulary so that they tokenize to
//! whole words. Deterministic: the same files on every run.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// Rows of the tiny AG News splits (train, test) and sentences of the tiny CoNLL splits
/// (train, valid): a little more than the notebook's subsample (2,000 / 1,000), which the runs
/// take from them as from the real splits.
pub const AG_ROWS: (usize, usize) = (2400, 1200);
/// See [`AG_ROWS`].
pub const CONLL_ROWS: (usize, usize) = (2400, 1200);

/// AG News' classes in the recipe's order, with words typical of each.
const AG_CLASSES: [(&str, &[&str]); 4] = [
    (
        "World",
        &[
            "election",
            "officials",
            "Nations",
            "United",
            "security",
            "Moscow",
            "Beijing",
            "Paris",
            "visited",
            "warned",
            "proposal",
            "Macron",
            "Merkel",
            "Biden",
            "Modi",
            "Geneva",
        ],
    ),
    (
        "Sports",
        &[
            "match",
            "win",
            "title",
            "Fans",
            "stadium",
            "UEFA",
            "FIFA",
            "Messi",
            "celebrated",
            "won",
            "Mourinho",
            "Serena",
            "Williams",
            "Madrid",
            "Barc",
            "Sunday",
        ],
    ),
    (
        "Business",
        &[
            "Shares",
            "prices",
            "bank",
            "rates",
            "industry",
            "trade",
            "budget",
            "invest",
            "Barclays",
            "Siemens",
            "Toyota",
            "fell",
            "Petrobras",
            "Nestlé",
            "Novartis",
            "interest",
        ],
    ),
    (
        "Sci/Tech",
        &[
            "Google",
            "Microsoft",
            "Apple",
            "artificial",
            "intelligence",
            "Sony",
            "climate",
            "energy",
            "Airbus",
            "Volkswagen",
            "Musk",
            "Elon",
            "Cook",
            "Tim",
            "Tokyo",
            "change",
        ],
    ),
];

const FILLER: [&str; 16] = [
    "the",
    "on",
    "in",
    "said",
    "new",
    "after",
    "for",
    "with",
    "and",
    "at",
    "from",
    "to",
    "of",
    "this",
    "that",
    "yesterday",
];

/// A small deterministic generator (a 64-bit LCG; the high bits).
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((self.0 >> 33) as usize) % n.max(1)
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

/// One JSON line `{"text", "label"}` per row; labels cycle through the classes, and one word in
/// five of the class's own words is another class's (so that the task is not trivially separable).
pub fn ag_news_lines(n: usize, seed: u64) -> Vec<String> {
    let mut rng = Lcg(seed);
    (0..n)
        .map(|i| {
            let label = i % AG_CLASSES.len();
            let len = 8 + rng.below(7);
            let words: Vec<&str> = (0..len)
                .map(|k| {
                    if k % 2 == 1 {
                        rng.pick(&FILLER)
                    } else if rng.below(5) == 0 {
                        let other = rng.below(AG_CLASSES.len());
                        rng.pick(AG_CLASSES[other].1)
                    } else {
                        rng.pick(AG_CLASSES[label].1)
                    }
                })
                .collect();
            serde_json::json!({"text": words.join(" "), "label": label}).to_string()
        })
        .collect()
}

const PER: [&str; 15] = [
    "Angela Merkel",
    "Joe Biden",
    "Narendra Modi",
    "Lionel Messi",
    "Elon Musk",
    "Tim Cook",
    "Christine Lagarde",
    "Emmanuel Macron",
    "Serena Williams",
    "Boris Johnson",
    "Olaf Scholz",
    "Jacinda Ardern",
    "Satya Nadella",
    "Pedro Sánchez",
    "José Mourinho",
];
const ORG: [&str; 16] = [
    "Microsoft",
    "Google",
    "Apple",
    "Siemens",
    "Toyota",
    "Barclays",
    "Reuters",
    "UEFA",
    "FIFA",
    "Airbus",
    "Volkswagen",
    "Deutsche Bank",
    "United Nations",
    "European Union",
    "Novartis",
    "Petrobras",
];
const LOC: [&str; 17] = [
    "Paris",
    "Berlin",
    "London",
    "Tokyo",
    "Moscow",
    "Beijing",
    "Madrid",
    "Geneva",
    "Sydney",
    "Toronto",
    "Mumbai",
    "Cairo",
    "Bogotá",
    "New York",
    "São Paulo",
    "Zürich",
    "Kraków",
];
const MISC: [&str; 3] = ["European", "FIFA World Cup", "UEFA Champions"];

/// Sentence templates: words, with `{PER}`, `{ORG}`, `{LOC}`, `{MISC}` for entities.
const TEMPLATES: [&str; 8] = [
    "{PER} visited {LOC} on Monday .",
    "{ORG} shares fell in {LOC} yesterday .",
    "{PER} said {ORG} would open an office in {LOC} .",
    "{PER} met {PER} in {LOC} last week .",
    "Officials of {ORG} warned {PER} about security .",
    "{ORG} and {ORG} discussed a {MISC} trade proposal .",
    "{PER} won the {MISC} title in {LOC} on Sunday .",
    "Reporters in {LOC} talked with {PER} after the {MISC} match .",
];

/// CoNLL-2003 text: `-DOCSTART-`, then one `token POS chunk NER` line per word (IOB2 tags; POS
/// `NNP`/`NN`, chunk `B-NP`/`I-NP`/`O` — valid CoNLL-2003 tags, not linguistically right), a blank
/// line after each sentence.
pub fn conll_text(n: usize, seed: u64) -> String {
    let mut rng = Lcg(seed);
    let mut out = String::from("-DOCSTART- -X- -X- O\n\n");
    for i in 0..n {
        let template = TEMPLATES[(i + rng.below(TEMPLATES.len())) % TEMPLATES.len()];
        for slot in template.split(' ') {
            let (kind, pool): (&str, &[&str]) = match slot {
                "{PER}" => ("PER", &PER),
                "{ORG}" => ("ORG", &ORG),
                "{LOC}" => ("LOC", &LOC),
                "{MISC}" => ("MISC", &MISC),
                word => {
                    let (pos, chunk) = if word == "." { (".", "O") } else { ("NN", "B-NP") };
                    out.push_str(&format!("{word} {pos} {chunk} O\n"));
                    continue;
                }
            };
            for (k, word) in rng.pick(pool).split(' ').enumerate() {
                let (prefix, chunk) = if k == 0 { ("B", "B-NP") } else { ("I", "I-NP") };
                out.push_str(&format!("{word} NNP {chunk} {prefix}-{kind}\n"));
            }
        }
        out.push('\n');
    }
    out
}

/// Writes `DIR/ag_news/{train,test}.jsonl` and `DIR/conll2003/{train,valid}.txt`; returns the two
/// directories.
pub fn write(dir: &Path) -> Result<(PathBuf, PathBuf)> {
    let ag = dir.join("ag_news");
    let conll = dir.join("conll2003");
    for d in [&ag, &conll] {
        std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
    }
    let write = |path: PathBuf, text: String| -> Result<()> {
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))
    };
    write(ag.join("train.jsonl"), ag_news_lines(AG_ROWS.0, 1).join("\n") + "\n")?;
    write(ag.join("test.jsonl"), ag_news_lines(AG_ROWS.1, 2).join("\n") + "\n")?;
    write(conll.join("train.txt"), conll_text(CONLL_ROWS.0, 3))?;
    write(conll.join("valid.txt"), conll_text(CONLL_ROWS.1, 4))?;
    Ok((ag, conll))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn ag_news_rows_are_balanced_json() {
        let lines = ag_news_lines(40, 1);
        assert_eq!(lines.len(), 40);
        let mut counts = [0usize; 4];
        for l in &lines {
            let v: serde_json::Value = serde_json::from_str(l).expect("a JSON line");
            let label = v["label"].as_u64().expect("an integer label") as usize;
            counts[label] += 1;
            assert!(v["text"].as_str().expect("text").split(' ').count() >= 8);
        }
        assert_eq!(counts, [10; 4]);
        assert_eq!(ag_news_lines(40, 1), lines, "not deterministic");
    }

    #[test]
    fn conll_sentences_have_four_valid_fields() {
        let text = conll_text(30, 3);
        let tags = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-MISC", "I-MISC"];
        let sentences = text.split("\n\n").filter(|s| !s.trim().is_empty() && !s.starts_with("-DOCSTART-")).count();
        assert_eq!(sentences, 30);
        let mut previous = "O".to_string();
        for line in text.lines().filter(|l| !l.is_empty() && !l.starts_with("-DOCSTART-")) {
            let fields: Vec<&str> = line.split(' ').collect();
            assert_eq!(fields.len(), 4, "{line}");
            assert!(tags.contains(&fields[3]), "{line}");
            // IOB2: an I- tag continues an entity of the same type.
            if let Some(kind) = fields[3].strip_prefix("I-") {
                assert!(previous.ends_with(kind), "{line} after {previous}");
            }
            previous = fields[3].to_string();
        }
        assert!(text.contains("B-PER") && text.contains("I-LOC") && text.contains("B-MISC"));
    }
}
