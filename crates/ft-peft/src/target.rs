//! Which modules an adapter attaches to, by PEFT's rules (`check_target_module_exists`,
//! `_set_trainable`), on module names relative to the base model
//! (`bert.encoder.layer.0.attention.self.query`, `transformer.h.0.attn.c_attn`).

use crate::config::{LoraConfig, TargetModules};

/// Whether `pattern` matches the whole of `key` (Python's `re.fullmatch`).
fn full_match(pattern: &str, key: &str) -> bool {
    regex::Regex::new(&format!("^(?:{pattern})$")).is_ok_and(|re| re.is_match(key))
}

/// Whether `targets` names module `key`: a list entry equal to it or to a `.`-suffix of it, or a
/// regular expression matching all of it.
pub fn names(targets: &TargetModules, key: &str) -> bool {
    match targets {
        TargetModules::Regex(pattern) => full_match(pattern, key),
        TargetModules::List(list) => list.iter().any(|t| key == t || key.ends_with(&format!(".{t}"))),
    }
}

/// Whether module `key` is one of `modules_to_save` for targeting purposes (PEFT excludes those
/// from `target_modules`: `re.match(rf"(^|.*\.){m}($|\..*)", key)`).
pub fn in_modules_to_save(modules_to_save: &[String], key: &str) -> bool {
    modules_to_save.iter().any(|m| {
        regex::Regex::new(&format!(r"^(?:|.*\.){}(?:$|\..*)", regex::escape(m))).is_ok_and(|re| re.is_match(key))
    })
}

/// Whether module `key` is trained and saved whole for `modules_to_save`: PEFT's `_set_trainable`
/// uses a plain `key.endswith(name)` (so `classifier` also takes DistilBERT's `pre_classifier`).
pub fn saved_whole(modules_to_save: &[String], key: &str) -> bool {
    modules_to_save.iter().any(|m| key.ends_with(m.as_str()))
}

/// Whether LoRA attaches to module `key` (a linear layer) under `config`; `all_linear_ok` says
/// whether the layer counts for `"all-linear"` (every linear layer but the output layer).
pub fn lora_targets(config: &LoraConfig, defaults: &[&str], key: &str, all_linear_ok: bool) -> bool {
    if let Some(ex) = &config.exclude_modules
        && names(ex, key)
    {
        return false;
    }
    if in_modules_to_save(config.modules_to_save.as_deref().unwrap_or(&[]), key) {
        return false;
    }
    match &config.target_modules {
        Some(TargetModules::Regex(s)) if s.eq_ignore_ascii_case("all-linear") => all_linear_ok,
        Some(t) => names(t, key),
        None => names(&TargetModules::List(defaults.iter().map(|s| s.to_string()).collect()), key),
    }
}

/// The key of `patterns` (`rank_pattern`, `alpha_pattern`) that applies to `key`: the first
/// `k` with `re.match(rf"(.*\.)?({k})$", key)` (PEFT's `get_pattern_key`).
pub fn pattern_key<'a>(patterns: impl IntoIterator<Item = &'a String>, key: &str) -> Option<&'a String> {
    patterns.into_iter().find(|k| regex::Regex::new(&format!(r"^(?:.*\.)?(?:{k})$")).is_ok_and(|re| re.is_match(key)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_match_names_and_dotted_suffixes() {
        let t = TargetModules::List(vec!["c_proj".into(), "query".into()]);
        assert!(names(&t, "transformer.h.0.attn.c_proj"));
        assert!(names(&t, "transformer.h.3.mlp.c_proj"));
        assert!(names(&t, "bert.encoder.layer.0.attention.self.query"));
        assert!(names(&t, "query"));
        assert!(!names(&t, "bert.encoder.layer.0.attention.self.my_query"));
        let r = TargetModules::Regex(r".*\.h\.0\..*c_attn".into());
        assert!(names(&r, "transformer.h.0.attn.c_attn"));
        assert!(!names(&r, "transformer.h.10.attn.c_attn"));
    }

    #[test]
    fn modules_to_save_rules() {
        let m = vec!["classifier".to_string()];
        assert!(in_modules_to_save(&m, "classifier"));
        assert!(!in_modules_to_save(&m, "pre_classifier"));
        // ...but PEFT's endswith wraps pre_classifier too.
        assert!(saved_whole(&m, "pre_classifier"));
        assert_eq!(
            pattern_key(&["c_attn".to_string()], "transformer.h.0.attn.c_attn").map(String::as_str),
            Some("c_attn")
        );
    }
}
