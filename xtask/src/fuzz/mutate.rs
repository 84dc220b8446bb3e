//! Mutations: byte-level (flips, interesting integers, ranges inserted, deleted, duplicated,
//! spliced from another input, truncation), line-level for text, and structure-aware for the
//! formats of [`Format`]: JSON and TOML values replaced by other types, huge numbers, empty or long
//! strings, keys deleted, duplicated or renamed, deep nesting; safetensors header lengths, dtypes,
//! shapes and offsets; zip entries and the pickle opcodes inside them; PNG chunks (CRCs fixed);
//! JPEG segments; the Parquet footer.

use serde_json::{Map, Value};

use super::formats::{self, ZipEntry};
use super::rng::Rng;

/// A layout an input (or one part of it) may have; a target lists the ones its inputs use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// A JSON document.
    Json,
    /// A TOML document.
    Toml,
    /// A safetensors file.
    Safetensors,
    /// A zip archive (`torch.save`'s format), its `.pkl` entries mutated as pickles.
    Zip,
    /// A bare pickle stream (the legacy `torch.save` format).
    Pickle,
    /// A PNG image.
    Png,
    /// A JPEG image.
    Jpeg,
    /// A Parquet file.
    Parquet,
    /// Text lines (CSV, CoNLL, JSON Lines, `--set` overrides).
    Lines,
}

/// Integers that break length checks: around 0, type limits, powers of two.
const INTERESTING: &[u64] = &[
    0,
    1,
    2,
    3,
    7,
    8,
    15,
    16,
    31,
    32,
    63,
    64,
    127,
    128,
    255,
    256,
    1023,
    1024,
    4095,
    4096,
    32767,
    32768,
    65535,
    65536,
    100_000,
    1 << 20,
    (1 << 31) - 1,
    1 << 31,
    (1 << 32) - 1,
    1 << 32,
    1 << 40,
    1 << 48,
    (1 << 53) + 1,
    (1 << 62),
    i64::MAX as u64,
    1 << 63,
    u64::MAX - 1,
    u64::MAX,
];

/// Numbers as text, for text formats.
const NUMBER_TEXTS: &[&str] = &[
    "0",
    "-0",
    "1",
    "-1",
    "2",
    "255",
    "256",
    "65536",
    "2147483647",
    "2147483648",
    "4294967295",
    "4294967296",
    "9223372036854775807",
    "9223372036854775808",
    "-9223372036854775808",
    "-9223372036854775809",
    "18446744073709551615",
    "18446744073709551616",
    "99999999999999999999999999999",
    "1e308",
    "1e309",
    "-1e308",
    "1e-320",
    "0.5",
    "1.0",
    "-0.0",
    "NaN",
    "nan",
    "inf",
    "-inf",
    "Infinity",
    "0x10",
    "1_000",
    "00",
    "+1",
    "1e",
    ".",
];

/// Mutates inputs of a target, given its formats, dictionary and corpus.
pub struct Mutator<'a> {
    /// The draws.
    pub rng: &'a mut Rng,
    /// Tokens worth inserting (keys, names, values from the seeds and the target's own list).
    pub dict: &'a [Vec<u8>],
    /// Inputs to splice from.
    pub corpus: &'a [Vec<u8>],
    /// The formats the target's inputs (or parts) use, tried in order.
    pub formats: &'a [Format],
    /// Whether inputs have parts ([`formats::PART_SEPARATOR`]).
    pub parts: bool,
    /// The longest input produced.
    pub max_len: usize,
}

impl Mutator<'_> {
    /// A mutated copy of `input`: a stack of 1 to 8 mutations.
    pub fn mutate(&mut self, input: &[u8]) -> Vec<u8> {
        let mut data = input.to_vec();
        let n = 1 + self.rng.small(7);
        for _ in 0..n {
            data = if self.parts { self.mutate_parts(&data) } else { self.mutate_one(&data) };
            if data.len() > self.max_len {
                data.truncate(self.max_len);
            }
        }
        data
    }

    fn mutate_parts(&mut self, input: &[u8]) -> Vec<u8> {
        let mut parts = formats::split_parts(input);
        if self.rng.one_in(10) {
            let i = self.rng.below(parts.len());
            match self.rng.below(4) {
                0 if parts.len() > 1 => {
                    parts.remove(i);
                }
                1 => parts.insert(i, parts[i].clone()),
                2 => parts.push(self.dict_token()),
                _ => parts.push(Vec::new()),
            }
        } else {
            let i = self.rng.below(parts.len());
            parts[i] = self.mutate_one(&parts[i]);
        }
        formats::join_parts(&parts)
    }

    /// One mutation, structure-aware when the data has one of the target's formats.
    pub fn mutate_one(&mut self, data: &[u8]) -> Vec<u8> {
        if self.rng.below(10) < 6 {
            for &format in self.formats {
                if let Some(out) = self.structured(format, data) {
                    return out;
                }
            }
        }
        let mut out = data.to_vec();
        self.bytes(&mut out);
        out
    }

    fn structured(&mut self, format: Format, data: &[u8]) -> Option<Vec<u8>> {
        match format {
            Format::Json => {
                let mut v = parse_json(data)?;
                self.json(&mut v);
                Some(self.write_json(&v))
            }
            Format::Toml => {
                let text = std::str::from_utf8(data).ok()?;
                let table: toml::Table = text.parse().ok()?;
                let mut v = toml_to_json(&toml::Value::Table(table));
                self.json(&mut v);
                let toml::Value::Table(t) = json_to_toml(&v)? else { return None };
                toml::to_string(&t).ok().map(String::into_bytes)
            }
            Format::Safetensors => self.safetensors(data),
            Format::Zip => self.zip(data),
            Format::Pickle => {
                if data.first() != Some(&0x80) {
                    return None;
                }
                let mut out = data.to_vec();
                self.pickle(&mut out).then_some(out)
            }
            Format::Png => self.png(data),
            Format::Jpeg => self.jpeg(data),
            Format::Parquet => self.parquet(data),
            Format::Lines => {
                let text = std::str::from_utf8(data).ok()?;
                Some(self.lines(text))
            }
        }
    }

    fn dict_token(&mut self) -> Vec<u8> {
        match self.rng.pick(self.dict) {
            Some(t) => t.clone(),
            None => b"x".to_vec(),
        }
    }

    fn interesting(&mut self) -> u64 {
        let v = INTERESTING[self.rng.below(INTERESTING.len())];
        match self.rng.below(4) {
            0 => v.wrapping_neg(),
            1 => v.wrapping_add(self.rng.range(0, 3) as u64).wrapping_sub(1),
            _ => v,
        }
    }

    fn donor(&mut self) -> Vec<u8> {
        self.rng.pick(self.corpus).cloned().unwrap_or_default()
    }

    // ---- bytes ----

    /// One byte-level mutation in place.
    pub fn bytes(&mut self, data: &mut Vec<u8>) {
        let len = data.len();
        let pos = |rng: &mut Rng| rng.below(len + 1);
        match self.rng.below(16) {
            0 | 1 if len > 0 => {
                let i = self.rng.below(len);
                data[i] ^= 1 << self.rng.below(8);
            }
            2 if len > 0 => {
                let i = self.rng.below(len);
                data[i] = self.rng.next_u64() as u8;
            }
            3 if len > 0 => {
                let i = self.rng.below(len);
                data[i] = *self.rng.pick(b"\x00\xff\x7f\x80\x01 \"'{}[],:\n\r\t\\=#-.0e").unwrap_or(&0);
            }
            4 if len > 0 => {
                // An interesting integer of 1, 2, 4 or 8 bytes, either endianness.
                let width = [1usize, 2, 4, 8][self.rng.below(4)];
                let v = self.interesting();
                let bytes =
                    if self.rng.one_in(2) { v.to_le_bytes() } else { (v << (64 - 8 * width as u32)).to_be_bytes() };
                let i = self.rng.below(len);
                let end = (i + width).min(len);
                data[i..end].copy_from_slice(&bytes[..end - i]);
            }
            5 if len > 0 => {
                let i = self.rng.below(len);
                let delta = self.rng.range(1, 35) as u8;
                data[i] = if self.rng.one_in(2) { data[i].wrapping_add(delta) } else { data[i].wrapping_sub(delta) };
            }
            6 | 7 if len > 0 => {
                let start = self.rng.below(len);
                let n = 1 + self.rng.small(len - start - 1);
                data.drain(start..start + n);
            }
            8 => {
                let n = 1 + self.rng.small(64);
                let bytes: Vec<u8> = (0..n).map(|_| self.rng.next_u64() as u8).collect();
                let at = pos(self.rng);
                data.splice(at..at, bytes);
            }
            9 | 10 => {
                let token = self.dict_token();
                let at = pos(self.rng);
                if self.rng.one_in(3) && at + token.len() <= len {
                    data[at..at + token.len()].copy_from_slice(&token);
                } else {
                    data.splice(at..at, token);
                }
            }
            11 if len > 0 => {
                // Duplicate a range somewhere else (or many times, for long or deep inputs).
                let start = self.rng.below(len);
                let n = 1 + self.rng.small((len - start - 1).min(4096));
                let chunk = data[start..start + n].to_vec();
                let times = if self.rng.one_in(4) { self.rng.range(2, 20_000 / n.max(1) + 2) } else { 1 };
                let at = pos(self.rng);
                let repeated: Vec<u8> = chunk.iter().copied().cycle().take(n * times).collect();
                data.splice(at..at, repeated);
            }
            12 => {
                // Splice: a prefix of this input, a suffix of another.
                let other = self.donor();
                if !other.is_empty() {
                    let cut = pos(self.rng);
                    let from = self.rng.below(other.len());
                    data.truncate(cut);
                    data.extend_from_slice(&other[from..]);
                }
            }
            13 => {
                let other = self.donor();
                if !other.is_empty() {
                    let start = self.rng.below(other.len());
                    let n = 1 + self.rng.small((other.len() - start - 1).min(4096));
                    let at = pos(self.rng);
                    data.splice(at..at, other[start..start + n].iter().copied());
                }
            }
            14 if len > 0 => {
                // Replace a decimal number by an interesting one.
                let start = self.rng.below(len);
                if let Some(off) = data[start..].iter().position(u8::is_ascii_digit) {
                    let s = start + off;
                    let mut e = s;
                    while e < len && (data[e].is_ascii_digit() || data[e] == b'.') {
                        e += 1;
                    }
                    let text = NUMBER_TEXTS[self.rng.below(NUMBER_TEXTS.len())];
                    data.splice(s..e, text.bytes());
                }
            }
            _ => {
                let at = pos(self.rng);
                data.truncate(at);
            }
        }
    }

    // ---- text lines ----

    fn lines(&mut self, text: &str) -> Vec<u8> {
        let mut lines: Vec<String> = text.split_inclusive('\n').map(String::from).collect();
        if lines.is_empty() {
            lines.push(String::new());
        }
        let n = lines.len();
        let i = self.rng.below(n);
        match self.rng.below(9) {
            0 if n > 1 => {
                lines.remove(i);
            }
            1 => lines.insert(i, lines[i].clone()),
            2 => {
                let j = self.rng.below(n);
                lines.swap(i, j);
            }
            3 => {
                let donor = String::from_utf8_lossy(&self.donor()).into_owned();
                if let Some(line) = self.rng.pick(&donor.split_inclusive('\n').collect::<Vec<_>>()) {
                    lines.insert(i, line.to_string());
                }
            }
            4 => {
                let special = [
                    "\n",
                    "\r\n",
                    "\t\n",
                    "\"\n",
                    "\"\"\"\n",
                    "-DOCSTART- -X- -X- O\n",
                    "\u{feff}\n",
                    "a b c d e f g h\n",
                    "x\n",
                    ",,,,\n",
                    "{}\n",
                    "[]\n",
                    "null\n",
                    "{\"text\": 1}\n",
                    "{\"text\": \"a\", \"label\": 99999999999999999999}\n",
                    "{\"tokens\": [\"a\"], \"ner_tags\": [\"B-X\", \"O\"]}\n",
                ];
                let line = special[self.rng.below(special.len())].to_string();
                lines.insert(i, line);
            }
            5 => {
                // A field of a line (split at spaces, tabs or commas) replaced.
                let sep = [' ', '\t', ','][self.rng.below(3)];
                let mut fields: Vec<String> = lines[i].split(sep).map(String::from).collect();
                let f = self.rng.below(fields.len());
                fields[f] = match self.rng.below(3) {
                    0 => String::from_utf8_lossy(&self.dict_token()).into_owned(),
                    1 => NUMBER_TEXTS[self.rng.below(NUMBER_TEXTS.len())].to_string(),
                    _ => String::new(),
                };
                lines[i] = fields.join(&sep.to_string());
            }
            6 => {
                // A very long line.
                let token = String::from_utf8_lossy(&self.dict_token()).into_owned();
                let times = self.rng.range(100, 20_000);
                lines.insert(i, format!("{}\n", token.repeat(times).chars().take(200_000).collect::<String>()));
            }
            7 => {
                let mut b = lines[i].clone().into_bytes();
                self.bytes(&mut b);
                lines[i] = String::from_utf8_lossy(&b).into_owned();
            }
            _ => {
                // Invalid UTF-8 inside a line.
                let mut b = std::mem::take(&mut lines[i]).into_bytes();
                let at = self.rng.below(b.len() + 1);
                b.splice(at..at, [0xff, 0xfe, 0xc3]);
                let mut out: Vec<u8> = lines[..i].concat().into_bytes();
                out.extend_from_slice(&b);
                out.extend_from_slice(lines[i + 1..].concat().as_bytes());
                return out;
            }
        }
        lines.concat().into_bytes()
    }

    // ---- JSON (and TOML through JSON) ----

    fn write_json(&mut self, v: &Value) -> Vec<u8> {
        let out = if self.rng.one_in(3) { serde_json::to_vec_pretty(v) } else { serde_json::to_vec(v) };
        out.unwrap_or_default()
    }

    /// A JSON value that breaks assumptions: another type, a limit, an empty or long string,
    /// deep nesting.
    pub fn interesting_json(&mut self) -> Value {
        match self.rng.below(14) {
            0 => Value::Null,
            1 => Value::Bool(self.rng.one_in(2)),
            2 => Value::from(self.interesting()),
            3 => Value::from(self.interesting() as i64),
            4 => {
                let f = [0.0, -0.0, 0.5, -1.5, 1e308, -1e308, 1e-320, 3.0, 1e19, 4294967296.5, f64::EPSILON];
                Value::from(f[self.rng.below(f.len())])
            }
            5 => Value::String(String::new()),
            6 => Value::String("a".repeat(self.rng.range(1000, 100_000))),
            7 | 8 => Value::String(String::from_utf8_lossy(&self.dict_token()).into_owned()),
            9 => Value::Array(Vec::new()),
            10 => Value::Object(Map::new()),
            11 => {
                let n = self.rng.small(8);
                Value::Array((0..n).map(|_| Value::from(self.interesting())).collect())
            }
            12 => {
                let n = self.rng.small(6);
                let mut m = Map::new();
                for _ in 0..n {
                    let k = String::from_utf8_lossy(&self.dict_token()).into_owned();
                    let v = Value::from(self.interesting() as i64);
                    m.insert(k, v);
                }
                Value::Object(m)
            }
            _ => {
                let depth = self.rng.range(2, 300);
                let mut v = Value::from(1);
                for _ in 0..depth {
                    v = if self.rng.one_in(2) {
                        Value::Array(vec![v])
                    } else {
                        Value::Object(Map::from_iter([("a".to_string(), v)]))
                    };
                }
                v
            }
        }
    }

    /// One structure-aware mutation of a JSON value.
    pub fn json(&mut self, root: &mut Value) {
        let mut paths = Vec::new();
        collect_paths(root, &mut Vec::new(), &mut paths);
        let path = self.rng.pick(&paths).cloned().unwrap_or_default();
        let donor_path = self.rng.pick(&paths).cloned().unwrap_or_default();
        let donor = node(root, &donor_path).cloned().unwrap_or(Value::Null);
        let replacement = self.interesting_json();
        let token = String::from_utf8_lossy(&self.dict_token()).into_owned();
        let Some(n) = node_mut(root, &path) else { return };
        match self.rng.below(10) {
            0 | 1 => *n = replacement,
            2 => *n = donor,
            3 => match n {
                Value::Number(x) => {
                    let f = x.as_f64().unwrap_or(0.0);
                    *n = match self.rng.below(5) {
                        0 => Value::from(-f),
                        1 => Value::from(f * 1e6),
                        2 => Value::from(x.as_i64().map_or(0, |i| i.wrapping_add(1))),
                        3 => Value::from(x.as_i64().map_or(0, |i| i.wrapping_sub(1))),
                        _ => Value::from(f + 0.5),
                    };
                }
                Value::String(s) => {
                    let mut b = std::mem::take(s).into_bytes();
                    self.bytes(&mut b);
                    *s = String::from_utf8_lossy(&b).into_owned();
                }
                Value::Bool(b) => *b = !*b,
                other => *other = replacement,
            },
            4 => match n {
                Value::Array(a) if !a.is_empty() => {
                    let i = self.rng.below(a.len());
                    a.remove(i);
                }
                Value::Object(m) if !m.is_empty() => {
                    let i = self.rng.below(m.len());
                    if let Some(k) = m.keys().nth(i).cloned() {
                        m.shift_remove(&k);
                    }
                }
                other => *other = replacement,
            },
            5 => match n {
                Value::Array(a) if !a.is_empty() => {
                    let i = self.rng.below(a.len());
                    let times = if self.rng.one_in(4) { self.rng.range(2, 1000) } else { 1 };
                    for _ in 0..times {
                        a.insert(i, a[i].clone());
                    }
                }
                Value::Object(m) if !m.is_empty() => {
                    // A key renamed, or a copy under a dictionary key.
                    let i = self.rng.below(m.len());
                    if let Some((k, v)) = m.iter().nth(i).map(|(k, v)| (k.clone(), v.clone())) {
                        if self.rng.one_in(2) {
                            m.shift_remove(&k);
                        }
                        m.insert(token, v);
                    }
                }
                other => *other = Value::Array(vec![other.clone(), donor]),
            },
            6 => match n {
                Value::Array(a) => a.push(replacement),
                Value::Object(m) => {
                    m.insert(token, replacement);
                }
                other => *other = Value::String(token),
            },
            7 => match n {
                Value::Array(a) => a.reverse(),
                Value::Object(m) => {
                    let mut items: Vec<(String, Value)> = std::mem::take(m).into_iter().collect();
                    items.reverse();
                    *m = items.into_iter().collect();
                }
                other => *other = Value::Null,
            },
            8 => {
                let depth = self.rng.range(1, 200);
                let mut v = std::mem::take(n);
                for _ in 0..depth {
                    v = Value::Array(vec![v]);
                }
                *n = v;
            }
            _ => *n = Value::String(token),
        }
    }

    // ---- binary formats ----

    fn safetensors(&mut self, data: &[u8]) -> Option<Vec<u8>> {
        let (declared, header, body) = formats::split_safetensors(data)?;
        let mut json = parse_json(header)?;
        let mut body = body.to_vec();
        let mut declared_out = None;
        match self.rng.below(8) {
            0 => {
                let candidates = [
                    0,
                    1,
                    declared.wrapping_sub(1),
                    declared + 1,
                    data.len() as u64,
                    data.len() as u64 - 7,
                    100_000_001,
                    self.interesting(),
                ];
                declared_out = Some(candidates[self.rng.below(candidates.len())]);
            }
            1..=4 => {
                // One tensor entry's dtype, shape or offsets.
                let Value::Object(map) = &mut json else { return None };
                let names: Vec<String> = map.keys().filter(|k| *k != "__metadata__").cloned().collect();
                let name = self.rng.pick(&names)?.clone();
                let other = self.rng.pick(&names)?.clone();
                let other_offsets = map.get(&other).and_then(|e| e.get("data_offsets")).cloned();
                let entry = map.get_mut(&name)?;
                let body_len = body.len() as u64;
                let value = match self.rng.below(3) {
                    0 => {
                        let dtypes =
                            ["F32", "F16", "BF16", "F64", "I64", "I32", "I8", "U8", "BOOL", "F8_E4M3", "F4", "", "f32"];
                        ("dtype", Value::from(dtypes[self.rng.below(dtypes.len())]))
                    }
                    1 => {
                        let shapes: Vec<Value> = vec![
                            serde_json::json!([]),
                            serde_json::json!([0]),
                            serde_json::json!([1]),
                            serde_json::json!([u64::MAX]),
                            serde_json::json!([1u64 << 32, 1u64 << 32]),
                            serde_json::json!([1u64 << 62, 4]),
                            serde_json::json!([-1]),
                            serde_json::json!([2, 0, 3]),
                            serde_json::json!([1, 1, 1, 1, 1, 1, 1, 1, 1]),
                            serde_json::json!(body_len / 4),
                            serde_json::json!([body_len / 4]),
                        ];
                        ("shape", shapes[self.rng.below(shapes.len())].clone())
                    }
                    _ => {
                        let a = self.rng.below(body.len() + 1) as u64;
                        let offsets = [
                            serde_json::json!([0, 0]),
                            serde_json::json!([0, body_len]),
                            serde_json::json!([body_len, 0]),
                            serde_json::json!([0, u64::MAX]),
                            serde_json::json!([u64::MAX, u64::MAX]),
                            serde_json::json!([a, body_len + 1]),
                            serde_json::json!([a, a + 4]),
                            serde_json::json!([0]),
                            serde_json::json!([0, 4, 8]),
                            other_offsets.unwrap_or(Value::Null),
                        ];
                        ("data_offsets", offsets[self.rng.below(offsets.len())].clone())
                    }
                };
                if let Value::Object(e) = entry {
                    e.insert(value.0.to_string(), value.1);
                } else {
                    *entry = value.1;
                }
            }
            5 => self.json(&mut json),
            6 => {
                let at = self.rng.below(body.len() + 1);
                if self.rng.one_in(2) {
                    body.truncate(at);
                } else {
                    body.extend((0..self.rng.small(64)).map(|_| self.rng.next_u64() as u8));
                }
            }
            _ => {
                // A header padded with spaces (as the format allows) or followed by garbage.
                let mut header = serde_json::to_vec(&json).ok()?;
                if self.rng.one_in(2) {
                    header.extend(std::iter::repeat_n(b' ', self.rng.small(64)));
                } else {
                    header.extend_from_slice(b"\x00\xff");
                }
                return Some(formats::join_safetensors(&header, &body, None));
            }
        }
        let header = serde_json::to_vec(&json).ok()?;
        Some(formats::join_safetensors(&header, &body, declared_out))
    }

    fn zip(&mut self, data: &[u8]) -> Option<Vec<u8>> {
        let mut entries = formats::read_zip(data)?;
        if entries.is_empty() {
            return None;
        }
        let pkl = entries.iter().position(|e| e.name.ends_with(b".pkl"));
        let i = match pkl {
            Some(p) if self.rng.one_in(2) => p,
            _ => self.rng.below(entries.len()),
        };
        match self.rng.below(10) {
            0..=3 => {
                let e = &mut entries[i];
                if !(e.name.ends_with(b".pkl") && self.pickle(&mut e.data)) {
                    self.bytes(&mut e.data);
                }
            }
            4 => {
                entries.remove(i);
            }
            5 => {
                let e = entries[i].clone();
                entries.insert(self.rng.below(entries.len() + 1), e);
            }
            6 => {
                let names: [&[u8]; 8] = [
                    b"archive/data.pkl",
                    b"data.pkl",
                    b"../data.pkl",
                    b"a/b/data.pkl",
                    b"archive/data/0",
                    b"archive/version",
                    b"archive/byteorder",
                    b"archive/.data/serialization_id",
                ];
                entries[i].name = names[self.rng.below(names.len())].to_vec();
            }
            7 => entries[i].crc = Some(if self.rng.one_in(2) { 0 } else { self.rng.next_u64() as u32 }),
            8 => entries[i].method = [8u16, 12, 14, 93, 99][self.rng.below(5)],
            _ => {
                let e = &mut entries[i];
                let at = self.rng.below(e.data.len() + 1);
                if self.rng.one_in(2) {
                    e.data.truncate(at);
                } else {
                    let n = self.rng.small(4096);
                    e.data.extend(std::iter::repeat_n(0u8, n));
                }
            }
        }
        let entries: Vec<ZipEntry> = entries;
        Some(formats::write_zip(&entries))
    }

    /// One mutation of a pickle at opcode boundaries; false when it has no known opcodes.
    fn pickle(&mut self, data: &mut Vec<u8>) -> bool {
        let ops = formats::pickle_ops(data);
        let Some(&(start, end)) = self.rng.pick(&ops) else { return false };
        match self.rng.below(7) {
            0 => {
                data.drain(start..end);
            }
            1 => {
                let op = data[start..end].to_vec();
                let at = self.rng.pick(&ops).map_or(0, |o| o.0);
                data.splice(at..at, op);
            }
            2 => {
                let snippet = formats::PICKLE_SNIPPETS[self.rng.below(formats::PICKLE_SNIPPETS.len())];
                data.splice(start..start, snippet.iter().copied());
            }
            3 if end > start + 1 => {
                // The opcode's argument (a length, an index, a name) mutated.
                let mut arg = data[start + 1..end].to_vec();
                self.bytes(&mut arg);
                data.splice(start + 1..end, arg);
            }
            4 => {
                let (s2, e2) = *self.rng.pick(&ops).unwrap_or(&(start, end));
                if e2 <= start || s2 >= end {
                    let (a, b) = if s2 < start { ((s2, e2), (start, end)) } else { ((start, end), (s2, e2)) };
                    let mut out = data[..a.0].to_vec();
                    out.extend_from_slice(&data[b.0..b.1]);
                    out.extend_from_slice(&data[a.1..b.0]);
                    out.extend_from_slice(&data[a.0..a.1]);
                    out.extend_from_slice(&data[b.1..]);
                    *data = out;
                }
            }
            5 => {
                let opcodes =
                    b"(.0123NRbaesut)]}ldoQKqhMJrjGUXTBcigpIL\x80\x81\x85\x86\x87\x88\x89\x8a\x8c\x93\x94\x95";
                data[start] = opcodes[self.rng.below(opcodes.len())];
            }
            _ => data.truncate(end),
        }
        true
    }

    fn png(&mut self, data: &[u8]) -> Option<Vec<u8>> {
        let mut chunks = formats::read_png(data)?;
        if chunks.is_empty() {
            return None;
        }
        let i = self.rng.below(chunks.len());
        match self.rng.below(8) {
            0 | 1 => {
                let ihdr = chunks.iter_mut().find(|c| &c.0 == b"IHDR" && c.1.len() >= 13)?;
                let h = &mut ihdr.1;
                match self.rng.below(5) {
                    0 | 1 => {
                        let dims = [0u32, 1, 2, 255, 4096, 9459, 9460, 20_000, 65_535, 100_000, 1 << 31, u32::MAX];
                        let v = dims[self.rng.below(dims.len())];
                        let at = if self.rng.one_in(2) { 0 } else { 4 };
                        h[at..at + 4].copy_from_slice(&v.to_be_bytes());
                    }
                    2 => h[8] = [0u8, 1, 2, 3, 4, 5, 8, 16, 32][self.rng.below(9)],
                    3 => h[9] = [0u8, 1, 2, 3, 4, 5, 6, 7][self.rng.below(8)],
                    _ => h[10 + self.rng.below(3)] = self.rng.below(3) as u8,
                }
            }
            2 if chunks.len() > 1 => {
                chunks.remove(i);
            }
            3 => {
                let c = chunks[i].clone();
                chunks.insert(self.rng.below(chunks.len() + 1), c);
            }
            4 => {
                let j = self.rng.below(chunks.len());
                chunks.swap(i, j);
            }
            5 => {
                let kinds: [&[u8; 4]; 6] = [b"PLTE", b"tRNS", b"IDAT", b"IEND", b"acTL", b"zzzz"];
                let kind = *kinds[self.rng.below(kinds.len())];
                let n = self.rng.small(800);
                let body = (0..n).map(|_| self.rng.next_u64() as u8).collect();
                chunks.insert(self.rng.below(chunks.len() + 1), (kind, body));
            }
            _ => self.bytes(&mut chunks[i].1),
        }
        Some(formats::write_png(&chunks))
    }

    fn jpeg(&mut self, data: &[u8]) -> Option<Vec<u8>> {
        let segments = formats::jpeg_segments(data);
        let &(start, end) = self.rng.pick(&segments)?;
        let mut out = data.to_vec();
        match self.rng.below(5) {
            0 | 1 => {
                // The frame header: precision, height, width, components.
                let sof = segments.iter().find(|&&(s, _)| matches!(data[s + 1], 0xC0..=0xC3 | 0xC9..=0xCB))?;
                let body = sof.0 + 4;
                let at = body + [0usize, 1, 3, 5, 7, 8][self.rng.below(6)];
                if at + 2 <= sof.1 {
                    let v = [0u16, 1, 2, 9460, 20_000, 65_535][self.rng.below(6)];
                    out[at..at + 2].copy_from_slice(&v.to_be_bytes());
                }
            }
            2 => {
                out.drain(start..end);
            }
            3 => {
                let seg = data[start..end].to_vec();
                out.splice(start..start, seg);
            }
            _ if end > start + 4 => {
                let mut body = out[start + 4..end].to_vec();
                let i = self.rng.below(body.len());
                body[i] = self.interesting() as u8;
                out.splice(start + 4..end, body);
            }
            _ => return None,
        }
        Some(out)
    }

    fn parquet(&mut self, data: &[u8]) -> Option<Vec<u8>> {
        if data.len() < 12 || !data.ends_with(b"PAR1") {
            return None;
        }
        let n = data.len();
        let footer = u32::from_le_bytes(data[n - 8..n - 4].try_into().ok()?) as usize;
        let mut out = data.to_vec();
        if self.rng.one_in(3) || footer + 8 > n {
            let f = footer as u32;
            let v = [0, 1, f.wrapping_add(1), f.wrapping_sub(1), n as u32, u32::MAX, 1 << 31][self.rng.below(7)];
            out[n - 8..n - 4].copy_from_slice(&v.to_le_bytes());
        } else {
            // Bytes of the Thrift footer (schema, row groups, offsets).
            let start = n - 8 - footer;
            let mut meta = out[start..n - 8].to_vec();
            self.bytes(&mut meta);
            let len = meta.len() as u32;
            out.splice(start..n - 8, meta);
            let m = out.len();
            out[m - 8..m - 4].copy_from_slice(&len.to_le_bytes());
        }
        Some(out)
    }
}

/// Parses JSON when the text starts like a JSON object or array.
pub fn parse_json(data: &[u8]) -> Option<Value> {
    let first = data.iter().find(|b| !b.is_ascii_whitespace())?;
    if *first != b'{' && *first != b'[' {
        return None;
    }
    serde_json::from_slice(data).ok()
}

fn collect_paths(v: &Value, prefix: &mut Vec<usize>, out: &mut Vec<Vec<usize>>) {
    if out.len() >= 20_000 {
        return;
    }
    out.push(prefix.clone());
    let children: Box<dyn Iterator<Item = &Value>> = match v {
        Value::Array(a) => Box::new(a.iter()),
        Value::Object(m) => Box::new(m.values()),
        _ => return,
    };
    for (i, c) in children.enumerate() {
        prefix.push(i);
        collect_paths(c, prefix, out);
        prefix.pop();
    }
}

fn node<'a>(v: &'a Value, path: &[usize]) -> Option<&'a Value> {
    let mut v = v;
    for &i in path {
        v = match v {
            Value::Array(a) => a.get(i)?,
            Value::Object(m) => m.values().nth(i)?,
            _ => return None,
        };
    }
    Some(v)
}

fn node_mut<'a>(v: &'a mut Value, path: &[usize]) -> Option<&'a mut Value> {
    let mut v = v;
    for &i in path {
        v = match v {
            Value::Array(a) => a.get_mut(i)?,
            Value::Object(m) => m.values_mut().nth(i)?,
            _ => return None,
        };
    }
    Some(v)
}

/// A TOML value as JSON (dates as strings).
pub fn toml_to_json(v: &toml::Value) -> Value {
    match v {
        toml::Value::String(s) => Value::String(s.clone()),
        toml::Value::Integer(i) => Value::from(*i),
        toml::Value::Float(f) => Value::from(*f),
        toml::Value::Boolean(b) => Value::Bool(*b),
        toml::Value::Datetime(d) => Value::String(d.to_string()),
        toml::Value::Array(a) => Value::Array(a.iter().map(toml_to_json).collect()),
        toml::Value::Table(t) => Value::Object(t.iter().map(|(k, v)| (k.clone(), toml_to_json(v))).collect()),
    }
}

/// A JSON value as TOML: `null` has no TOML form (dropped), numbers beyond `i64` become floats.
pub fn json_to_toml(v: &Value) -> Option<toml::Value> {
    Some(match v {
        Value::Null => return None,
        Value::Bool(b) => toml::Value::Boolean(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => toml::Value::Integer(i),
            None => toml::Value::Float(n.as_f64().unwrap_or(0.0)),
        },
        Value::String(s) => toml::Value::String(s.clone()),
        Value::Array(a) => toml::Value::Array(a.iter().filter_map(json_to_toml).collect()),
        Value::Object(m) => {
            toml::Value::Table(m.iter().filter_map(|(k, v)| Some((k.clone(), json_to_toml(v)?))).collect())
        }
    })
}

/// Tokens of a seed worth inserting elsewhere: JSON and TOML keys and short strings.
pub fn harvest(seed: &[u8], out: &mut Vec<Vec<u8>>) {
    fn walk(v: &Value, out: &mut Vec<Vec<u8>>) {
        if out.len() > 4000 {
            return;
        }
        match v {
            Value::String(s) if s.len() <= 40 => out.push(s.clone().into_bytes()),
            Value::Array(a) => a.iter().take(200).for_each(|c| walk(c, out)),
            Value::Object(m) => {
                for (k, c) in m.iter().take(200) {
                    if k.len() <= 60 {
                        out.push(k.clone().into_bytes());
                    }
                    walk(c, out);
                }
            }
            _ => {}
        }
    }
    for part in formats::split_parts(seed) {
        if let Some(v) = parse_json(&part) {
            walk(&v, out);
        } else if let Some(t) = std::str::from_utf8(&part).ok().and_then(|t| t.parse::<toml::Table>().ok()) {
            walk(&toml_to_json(&toml::Value::Table(t)), out);
        } else if let Some((_, header, _)) = formats::split_safetensors(&part)
            && let Some(v) = parse_json(header)
        {
            walk(&v, out);
        }
    }
}

/// A new input from nothing, in the target's first format (for JSON and TOML: an object of
/// dictionary keys and interesting values).
pub fn generate(m: &mut Mutator<'_>) -> Vec<u8> {
    match m.formats.first() {
        Some(Format::Json | Format::Toml) => {
            let mut root = Map::new();
            for _ in 0..m.rng.range(1, 12) {
                let key = String::from_utf8_lossy(&m.dict_token()).into_owned();
                let value = if m.rng.one_in(3) {
                    let mut inner = Map::new();
                    for _ in 0..m.rng.range(1, 6) {
                        let k = String::from_utf8_lossy(&m.dict_token()).into_owned();
                        let v = m.interesting_json();
                        inner.insert(k, v);
                    }
                    Value::Object(inner)
                } else {
                    m.interesting_json()
                };
                root.insert(key, value);
            }
            let root = Value::Object(root);
            if m.formats.first() == Some(&Format::Toml)
                && let Some(toml::Value::Table(t)) = json_to_toml(&root)
                && let Ok(text) = toml::to_string(&t)
            {
                return text.into_bytes();
            }
            m.write_json(&root)
        }
        Some(Format::Lines) => {
            let mut out = Vec::new();
            for _ in 0..m.rng.range(1, 20) {
                for _ in 0..m.rng.range(1, 5) {
                    out.extend_from_slice(&m.dict_token());
                    out.push(b' ');
                }
                out.push(b'\n');
            }
            out
        }
        _ => (0..m.rng.small(512)).map(|_| m.rng.next_u64() as u8).collect(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn mutations_stay_within_bounds_and_vary() {
        let mut rng = Rng::new(1);
        let dict = vec![b"hidden_size".to_vec(), b"F32".to_vec()];
        let seed = br#"{"a": [1, 2, {"b": "c"}], "d": 1.5}"#.to_vec();
        let corpus = vec![seed.clone()];
        let mut m = Mutator {
            rng: &mut rng,
            dict: &dict,
            corpus: &corpus,
            formats: &[Format::Json, Format::Lines],
            parts: false,
            max_len: 4096,
        };
        let mut distinct = std::collections::BTreeSet::new();
        for _ in 0..2000 {
            let out = m.mutate(&seed);
            assert!(out.len() <= 4096);
            distinct.insert(out);
        }
        assert!(distinct.len() > 1000, "{}", distinct.len());
        let generated = generate(&mut m);
        assert!(!generated.is_empty());
    }

    #[test]
    fn binary_mutations_keep_the_container() {
        let mut rng = Rng::new(2);
        let header = br#"{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#;
        let st = formats::join_safetensors(header, &[0; 8], None);
        let mut m = Mutator {
            rng: &mut rng,
            dict: &[],
            corpus: &[],
            formats: &[Format::Safetensors],
            parts: false,
            max_len: 1 << 20,
        };
        let mut parsed = 0;
        for _ in 0..200 {
            if let Some(out) = m.structured(Format::Safetensors, &st)
                && formats::split_safetensors(&out).is_some()
            {
                parsed += 1;
            }
        }
        assert!(parsed > 100);
    }

    #[test]
    fn toml_round_trips_through_json() {
        let t: toml::Table = "[model]\nname = \"x\"\nn = 3\n[training]\nlr = 1e-5\n".parse().unwrap();
        let back = json_to_toml(&toml_to_json(&toml::Value::Table(t.clone()))).unwrap();
        assert_eq!(back, toml::Value::Table(t));
    }
}
