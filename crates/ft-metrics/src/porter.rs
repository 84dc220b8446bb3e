//! The Porter stemmer exactly as NLTK's `PorterStemmer()` implements it in its default
//! `NLTK_EXTENSIONS` mode: the one `rouge_score` uses with `use_stemmer=True`.
//!
//! NLTK's extensions to Martin Porter's algorithm: a pool of irregular forms (`dying` → `die`,
//! `skies` → `sky`, ...), words of at most two letters left alone, `ies`/`ied` → `ie` in
//! four-letter words, `y` → `i` only after a consonant that is not the first letter, `alli` →
//! `al` applied recursively, `fulli` → `ful`, `logi` → `log`, and a two-letter word counting as
//! consonant-vowel-consonant.

type Word = Vec<char>;

/// A rule's condition on the stem left once the suffix is removed.
type Cond<'a> = Option<Box<dyn Fn(&[char]) -> bool + 'a>>;

/// Stems one word (NLTK's `PorterStemmer().stem(word)`, which lowercases first).
pub fn stem(word: &str) -> String {
    let lower = word.to_lowercase();
    if let Some(s) = irregular(&lower) {
        return s.to_string();
    }
    if word.chars().count() <= 2 {
        return lower;
    }
    let mut w: Word = lower.chars().collect();
    w = step1a(w);
    w = step1b(w);
    w = step1c(w);
    w = step2(w);
    w = step3(w);
    w = step4(w);
    w = step5a(w);
    w = step5b(w);
    w.into_iter().collect()
}

fn irregular(word: &str) -> Option<&'static str> {
    Some(match word {
        "sky" | "skies" => "sky",
        "dying" => "die",
        "lying" => "lie",
        "tying" => "tie",
        "news" => "news",
        "innings" | "inning" => "inning",
        "outings" | "outing" => "outing",
        "cannings" | "canning" => "canning",
        "howe" => "howe",
        "proceed" => "proceed",
        "exceed" => "exceed",
        "succeed" => "succeed",
        _ => return None,
    })
}

fn is_vowel(c: char) -> bool {
    matches!(c, 'a' | 'e' | 'i' | 'o' | 'u')
}

/// Whether `word[i]` is a consonant: not a vowel, and `y` only when it follows a vowel (or starts
/// the word); a run of `y`s alternates.
fn is_consonant(word: &[char], mut i: usize) -> bool {
    if is_vowel(word[i]) {
        return false;
    }
    if word[i] == 'y' {
        let mut negate = false;
        while i > 0 && word[i] == 'y' {
            negate = !negate;
            i -= 1;
        }
        // A `y` run alternates: y after a consonant is a vowel, after a vowel a consonant.
        return is_vowel(word[i]) == negate;
    }
    true
}

fn consonant_flags(word: &[char]) -> Vec<bool> {
    let mut flags: Vec<bool> = Vec::with_capacity(word.len());
    for (i, &c) in word.iter().enumerate() {
        let f = if is_vowel(c) {
            false
        } else if c == 'y' {
            i == 0 || !flags[i - 1]
        } else {
            true
        };
        flags.push(f);
    }
    flags
}

/// Porter's m: the number of vowel-consonant sequences.
fn measure(stem: &[char]) -> usize {
    consonant_flags(stem).windows(2).filter(|w| !w[0] && w[1]).count()
}

fn has_positive_measure(stem: &[char]) -> bool {
    measure(stem) > 0
}

fn contains_vowel(stem: &[char]) -> bool {
    !consonant_flags(stem).iter().all(|&c| c)
}

fn ends_double_consonant(word: &[char]) -> bool {
    let n = word.len();
    n >= 2 && word[n - 1] == word[n - 2] && is_consonant(word, n - 1)
}

fn ends_cvc(word: &[char]) -> bool {
    let n = word.len();
    (n >= 3
        && is_consonant(word, n - 3)
        && !is_consonant(word, n - 2)
        && is_consonant(word, n - 1)
        && !matches!(word[n - 1], 'w' | 'x' | 'y'))
        || (n == 2 && !is_consonant(word, 0) && is_consonant(word, 1))
}

fn ends_with(word: &[char], suffix: &str) -> bool {
    let s: Vec<char> = suffix.chars().collect();
    word.len() >= s.len() && word[word.len() - s.len()..] == s[..]
}

fn strip(word: &[char], suffix: &str) -> Word {
    word[..word.len() - suffix.chars().count()].to_vec()
}

fn join(stem: &[char], replacement: &str) -> Word {
    let mut w = stem.to_vec();
    w.extend(replacement.chars());
    w
}

/// NLTK's `_apply_rule_list`: the first rule whose suffix matches decides; `*d` matches a double
/// consonant.
fn apply_rules(word: Word, rules: &[(&str, String, Cond<'_>)]) -> Word {
    for (suffix, replacement, cond) in rules {
        let ok = |stem: &[char]| cond.as_ref().is_none_or(|c| c(stem));
        if *suffix == "*d" && ends_double_consonant(&word) {
            let stem = word[..word.len() - 2].to_vec();
            return if ok(&stem) { join(&stem, replacement) } else { word };
        }
        if ends_with(&word, suffix) {
            let stem = strip(&word, suffix);
            return if ok(&stem) { join(&stem, replacement) } else { word };
        }
    }
    word
}

fn rule<'a>(suffix: &'a str, replacement: &str, cond: Cond<'a>) -> (&'a str, String, Cond<'a>) {
    (suffix, replacement.to_string(), cond)
}

fn positive<'a>() -> Cond<'a> {
    Some(Box::new(has_positive_measure))
}

fn step1a(word: Word) -> Word {
    if ends_with(&word, "ies") && word.len() == 4 {
        return join(&strip(&word, "ies"), "ie");
    }
    apply_rules(word, &[rule("sses", "ss", None), rule("ies", "i", None), rule("ss", "ss", None), rule("s", "", None)])
}

fn step1b(word: Word) -> Word {
    if ends_with(&word, "ied") {
        return join(&strip(&word, "ied"), if word.len() == 4 { "ie" } else { "i" });
    }
    if ends_with(&word, "eed") {
        let stem = strip(&word, "eed");
        return if measure(&stem) > 0 { join(&stem, "ee") } else { word };
    }
    let mut intermediate = None;
    for suffix in ["ed", "ing"] {
        if ends_with(&word, suffix) {
            let s = strip(&word, suffix);
            if contains_vowel(&s) {
                intermediate = Some(s);
                break;
            }
        }
    }
    let Some(stem) = intermediate else {
        return word;
    };
    // contains_vowel guarantees a last letter.
    let last = stem.last().copied().unwrap_or('e');
    apply_rules(
        stem,
        &[
            rule("at", "ate", None),
            rule("bl", "ble", None),
            rule("iz", "ize", None),
            ("*d", last.to_string(), Some(Box::new(move |_: &[char]| !matches!(last, 'l' | 's' | 'z')))),
            rule("", "e", Some(Box::new(|s: &[char]| measure(s) == 1 && ends_cvc(s)))),
        ],
    )
}

fn step1c(word: Word) -> Word {
    apply_rules(word, &[rule("y", "i", Some(Box::new(|s: &[char]| s.len() > 1 && is_consonant(s, s.len() - 1))))])
}

fn step2(word: Word) -> Word {
    if ends_with(&word, "alli") && has_positive_measure(&strip(&word, "alli")) {
        return step2(join(&strip(&word, "alli"), "al"));
    }
    let before_ogi: Word = word[..word.len().saturating_sub(3)].to_vec();
    let rules = [
        rule("ational", "ate", positive()),
        rule("tional", "tion", positive()),
        rule("enci", "ence", positive()),
        rule("anci", "ance", positive()),
        rule("izer", "ize", positive()),
        rule("bli", "ble", positive()),
        rule("alli", "al", positive()),
        rule("entli", "ent", positive()),
        rule("eli", "e", positive()),
        rule("ousli", "ous", positive()),
        rule("ization", "ize", positive()),
        rule("ation", "ate", positive()),
        rule("ator", "ate", positive()),
        rule("alism", "al", positive()),
        rule("iveness", "ive", positive()),
        rule("fulness", "ful", positive()),
        rule("ousness", "ous", positive()),
        rule("aliti", "al", positive()),
        rule("iviti", "ive", positive()),
        rule("biliti", "ble", positive()),
        rule("fulli", "ful", positive()),
        rule("logi", "log", Some(Box::new(move |_: &[char]| has_positive_measure(&before_ogi)))),
    ];
    apply_rules(word, &rules)
}

fn step3(word: Word) -> Word {
    apply_rules(
        word,
        &[
            rule("icate", "ic", positive()),
            rule("ative", "", positive()),
            rule("alize", "al", positive()),
            rule("iciti", "ic", positive()),
            rule("ical", "ic", positive()),
            rule("ful", "", positive()),
            rule("ness", "", positive()),
        ],
    )
}

fn step4(word: Word) -> Word {
    let gt1 = || -> Cond<'static> { Some(Box::new(|s: &[char]| measure(s) > 1)) };
    apply_rules(
        word,
        &[
            rule("al", "", gt1()),
            rule("ance", "", gt1()),
            rule("ence", "", gt1()),
            rule("er", "", gt1()),
            rule("ic", "", gt1()),
            rule("able", "", gt1()),
            rule("ible", "", gt1()),
            rule("ant", "", gt1()),
            rule("ement", "", gt1()),
            rule("ment", "", gt1()),
            rule("ent", "", gt1()),
            rule("ion", "", Some(Box::new(|s: &[char]| measure(s) > 1 && matches!(s.last(), Some('s' | 't'))))),
            rule("ou", "", gt1()),
            rule("ism", "", gt1()),
            rule("ate", "", gt1()),
            rule("iti", "", gt1()),
            rule("ous", "", gt1()),
            rule("ive", "", gt1()),
            rule("ize", "", gt1()),
        ],
    )
}

fn step5a(word: Word) -> Word {
    if ends_with(&word, "e") {
        let stem = strip(&word, "e");
        let m = measure(&stem);
        if m > 1 || (m == 1 && !ends_cvc(&stem)) {
            return stem;
        }
    }
    word
}

fn step5b(word: Word) -> Word {
    let m = measure(&word[..word.len().saturating_sub(1)]);
    apply_rules(word, &[rule("ll", "l", Some(Box::new(move |_: &[char]| m > 1)))])
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::stem;

    #[test]
    fn classic_and_nltk_examples() {
        for (w, s) in [
            ("caresses", "caress"),
            ("ponies", "poni"),
            ("ties", "tie"),
            ("cats", "cat"),
            ("feed", "feed"),
            ("agreed", "agre"),
            ("plastered", "plaster"),
            ("motoring", "motor"),
            ("sing", "sing"),
            ("conflated", "conflat"),
            ("troubled", "troubl"),
            ("sized", "size"),
            ("hopping", "hop"),
            ("falling", "fall"),
            ("filing", "file"),
            ("happy", "happi"),
            ("relational", "relat"),
            ("generalization", "gener"),
            ("dying", "die"),
            ("skies", "sky"),
            ("running", "run"),
            ("analogi", "analog"),
            ("is", "is"),
        ] {
            assert_eq!(stem(w), s, "{w}");
        }
    }
}
