//! Refusing PyTorch files whose pickle names anything but tensor data.
//!
//! A `torch.save` file is a pickle, and a pickle is a program: its `GLOBAL`, `STACK_GLOBAL`,
//! `INST` and `EXT*` opcodes name Python callables that `REDUCE`, `OBJ` and `NEWOBJ` then call —
//! `os.system` as easily as `torch._utils._rebuild_tensor_v2`. ft never runs a pickle (the
//! `pytorch-reader` crate reads it as data), but reading on past a foreign callable would
//! accept a file that executes code in Python and hand back whatever tensors it also holds.
//! So before any tensor is read, [`check_torch_file`] walks every opcode of the file's pickles
//! and refuses the file unless each global it names is one of those `torch.load(...,
//! weights_only=True)` allows ([`ALLOWED_GLOBALS`], PyTorch 2.x's `_get_allowed_globals()`):
//! no global that PyTorch's safe mode refuses is ever accepted. (ft reads a little more than
//! that mode in form: protocol-4 pickles with `FRAME`s, which its unpickler lacks.) The format
//! and the pickles walked are decided as `pytorch-reader` decides them: the ZIP archive's
//! `data.pkl`; a legacy file's five pickles, each of which must be whole; a plain pickle.
//! PyTorch 0.1's TAR checkpoints are refused.
//!
//! The walk is a small, sound abstraction of the pickle machine: it knows which strings sit on
//! top of the stack (pushed by a string opcode or fetched from the memo), so a `STACK_GLOBAL`
//! is checked against the two strings it really takes. When it cannot tell (the strings came
//! from anything else), the file is refused. Extension-registry opcodes (`EXT1/2/4`) name
//! globals by number and are refused. The walk is linear in the pickle's size, and pickles
//! larger than [`MAX_PICKLE_BYTES`] are refused before they are read.

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::path::Path;

use crate::{HubError, Result};

/// The globals a pickle may name: `torch.load(weights_only=True)`'s allowlist (PyTorch 2.x,
/// `torch._weights_only_unpickler._get_allowed_globals()`), plus the Python 2 spelling of
/// `builtins.set` that protocol-2 pickles use.
pub const ALLOWED_GLOBALS: &[&str] = &[
    "_codecs.encode",
    "builtins.bytearray",
    "builtins.complex",
    "builtins.set",
    "__builtin__.set",
    "collections.Counter",
    "collections.OrderedDict",
    "torch.Size",
    "torch.Tensor",
    "torch.device",
    "torch.nn.parameter.Parameter",
    "torch.serialization._get_layout",
    "torch.storage.TypedStorage",
    "torch.storage.UntypedStorage",
    "torch._tensor._rebuild_from_type_v2",
    "torch._utils._rebuild_device_tensor_from_cpu_tensor",
    "torch._utils._rebuild_device_tensor_from_numpy",
    "torch._utils._rebuild_meta_tensor_no_storage",
    "torch._utils._rebuild_parameter",
    "torch._utils._rebuild_parameter_with_state",
    "torch._utils._rebuild_qtensor",
    "torch._utils._rebuild_sparse_tensor",
    "torch._utils._rebuild_tensor",
    "torch._utils._rebuild_tensor_v2",
    "torch._utils._rebuild_tensor_v3",
    "torch._utils._rebuild_wrapper_subclass",
    "torch.per_channel_affine",
    "torch.per_channel_affine_float_qparams",
    "torch.per_channel_symmetric",
    "torch.per_tensor_affine",
    "torch.per_tensor_symmetric",
];

/// Storage and legacy tensor type names (`torch.FloatStorage`, `torch.cuda.HalfTensor`, ...).
const TYPED: &[&str] = &[
    "BFloat16",
    "Bool",
    "Byte",
    "Char",
    "ComplexDouble",
    "ComplexFloat",
    "Double",
    "Float",
    "Half",
    "Int",
    "Long",
    "QInt32",
    "QInt8",
    "QUInt2x4",
    "QUInt4x2",
    "QUInt8",
    "Short",
];

/// dtype names (`torch.float32`, ...).
const DTYPES: &[&str] = &[
    "bcomplex32",
    "bfloat16",
    "bits16",
    "bits1x8",
    "bits2x4",
    "bits4x2",
    "bits8",
    "bool",
    "complex128",
    "complex32",
    "complex64",
    "float16",
    "float32",
    "float4_e2m1fn_x2",
    "float64",
    "float8_e4m3fn",
    "float8_e4m3fnuz",
    "float8_e5m2",
    "float8_e5m2fnuz",
    "float8_e8m0fnu",
    "int1",
    "int16",
    "int2",
    "int3",
    "int32",
    "int4",
    "int5",
    "int6",
    "int64",
    "int7",
    "int8",
    "qint32",
    "qint8",
    "quint2x4",
    "quint4x2",
    "quint8",
    "uint1",
    "uint16",
    "uint2",
    "uint3",
    "uint32",
    "uint4",
    "uint5",
    "uint6",
    "uint64",
    "uint7",
    "uint8",
];

/// The largest pickle checked (and so read): 100 MiB, `pytorch-reader`'s own limit.
pub const MAX_PICKLE_BYTES: u64 = 100 * 1024 * 1024;

/// Whether `module.name` may appear in a weights file.
pub fn is_allowed_global(module: &str, name: &str) -> bool {
    let full = format!("{module}.{name}");
    if ALLOWED_GLOBALS.contains(&full.as_str()) {
        return true;
    }
    let typed = |prefix: &str| {
        TYPED.iter().any(|t| name.strip_prefix(t).is_some_and(|rest| rest == "Storage" || rest == "Tensor"))
            && module == prefix
    };
    (module == "torch" && DTYPES.contains(&name))
        || typed("torch")
        || typed("torch.cuda")
        || (module == "torch.sparse" || module == "torch.cuda.sparse")
            && TYPED.iter().any(|t| name.strip_prefix(t) == Some("Tensor"))
}

/// Checks every pickle of the PyTorch file at `path` (ZIP archives of PyTorch ≥ 1.6, the
/// legacy format and plain pickles; PyTorch 0.1's TAR format is refused): an error naming the file and
/// the first global outside [`ALLOWED_GLOBALS`], or an opcode that names a global ft cannot
/// verify. Reads at most [`MAX_PICKLE_BYTES`] of pickle; tensor data is not read.
pub fn check_torch_file(path: &Path) -> Result<()> {
    torch_file_refusal(path).map_err(|message| HubError::Input(format!("{}: {message}", path.display())))
}

/// Like [`check_torch_file`], with the reason alone (for callers that name the file).
pub fn torch_file_refusal(path: &Path) -> std::result::Result<(), String> {
    let mut file = std::fs::File::open(path).map_err(|e| format!("cannot open: {e}"))?;
    let mut head = Vec::new();
    (&mut file).take(512).read_to_end(&mut head).map_err(|e| format!("cannot read: {e}"))?;
    // The format is decided as `pytorch-reader` decides it, so that the pickles checked are
    // the pickles it reads.
    if head.starts_with(b"PK\x03\x04") || head.starts_with(b"PK\x05\x06") {
        return check_pickles(&zip_pickle(path)?, 1);
    }
    if head.get(257..262) == Some(b"ustar") {
        // Its members hold streams of pickles read with their own name rules: not worth the
        // risk for a format no PyTorch has written since 2017.
        return Err("a PyTorch 0.1 TAR checkpoint: ft does not read this format \
                    (re-save it with PyTorch >= 1.6: torch.save(torch.load(f, weights_only=True), f2))"
            .into());
    }
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_PICKLE_BYTES).read_to_end(&mut bytes))
        .map_err(|e| format!("cannot read: {e}"))?;
    // The legacy format (PyTorch < 1.6): five pickles (magic, protocol, sys_info, the object,
    // the storage keys), then raw storage bytes. A plain pickle: one.
    let count = if starts_with_legacy_magic(&head) { 5 } else { 1 };
    check_pickles(&bytes, count)
}

/// The legacy magic number 0x1950a86a20f9469cfc6c in the first 64 bytes, as `LONG1` bytes
/// (protocol 2 and up) or `LONG` text (protocols 0 and 1) — `pytorch-reader`'s own test.
fn starts_with_legacy_magic(head: &[u8]) -> bool {
    const BYTES: [u8; 10] = [0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];
    const TEXT: &[u8] = b"119547037146038801333356";
    let window = &head[..head.len().min(64)];
    window.windows(BYTES.len()).any(|b| b == BYTES) || window.windows(TEXT.len()).any(|b| b == TEXT)
}

/// `data.pkl` of a PyTorch ZIP archive (the shortest root holding one, as `pytorch-reader`
/// picks it).
fn zip_pickle(path: &Path) -> std::result::Result<Vec<u8>, String> {
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let mut archive =
        zip::ZipArchive::new(std::io::BufReader::new(file)).map_err(|e| format!("not a readable ZIP archive: {e}"))?;
    let names: Vec<String> = archive.file_names().filter_map(|n| n.ok()).map(|n| n.into_owned()).collect();
    let root = names
        .iter()
        .filter_map(|n| n.strip_suffix("data.pkl"))
        .filter(|r| r.is_empty() || r.ends_with('/'))
        .min_by_key(|r| r.len())
        .map(str::to_string)
        .ok_or("no data.pkl entry in the ZIP archive (not a PyTorch checkpoint)")?;
    let entry = archive.by_name(&format!("{root}data.pkl")).map_err(|e| format!("data.pkl: {e}"))?;
    if entry.size() > MAX_PICKLE_BYTES {
        return Err(format!("data.pkl is {} bytes, above the limit of {MAX_PICKLE_BYTES}", entry.size()));
    }
    let mut pickle = Vec::new();
    entry.take(MAX_PICKLE_BYTES + 1).read_to_end(&mut pickle).map_err(|e| format!("data.pkl: {e}"))?;
    if pickle.len() as u64 > MAX_PICKLE_BYTES {
        return Err(format!("data.pkl is above the limit of {MAX_PICKLE_BYTES} bytes"));
    }
    Ok(pickle)
}

/// Checks `count` pickles of `bytes`, one after the other; each must be whole. What follows
/// the last is not pickle (a legacy file's storage bytes) and is never read as one.
pub fn check_pickles(bytes: &[u8], count: usize) -> std::result::Result<(), String> {
    let mut at = 0;
    for i in 0..count {
        let rest = bytes.get(at..).unwrap_or_default();
        let used =
            check_pickle(rest).map_err(|e| if count > 1 { format!("pickle {} of {count}: {e}", i + 1) } else { e })?;
        at += used;
    }
    Ok(())
}

/// Walks one pickle to its `STOP`: its length in bytes, or why it is refused.
pub fn check_pickle(bytes: &[u8]) -> std::result::Result<usize, String> {
    let mut r = Cursor { bytes, at: 0 };
    // Strings known to be on top of the stack, deepest first (cleared by any other push/pop).
    let mut top: Vec<String> = Vec::new();
    // Memo slots known to hold a string, and every slot's key (MEMOIZE uses their count).
    let mut memo: HashMap<u64, String> = HashMap::new();
    let mut memo_keys: HashSet<u64> = HashSet::new();
    loop {
        let at = r.at;
        let op = r.byte().ok_or("truncated pickle: no STOP opcode")?;
        let here = |m: String| format!("{m} (pickle offset {at})");
        let check = |module: &str, name: &str| -> std::result::Result<(), String> {
            if is_allowed_global(module, name) {
                Ok(())
            } else {
                Err(here(format!(
                    "the pickle names the Python global `{module}.{name}`, which is not tensor data; \
                     ft reads only what torch.load(weights_only=True) reads and runs no code \
                     (a weights file from an untrusted source? save a state_dict, or convert it to safetensors)"
                )))
            }
        };
        match op {
            b'.' => return Ok(r.at),
            // PROTO, FRAME: no stack effect.
            0x80 => r.skip(1)?,
            0x95 => r.skip(8)?,
            // PUT family: the top is copied into the memo.
            b'p' => {
                let key = r.line()?.trim().parse::<u64>().map_err(|_| here("bad PUT index".into()))?;
                put(&mut memo, &mut memo_keys, key, &top);
            }
            b'q' => {
                let key = r.uint(1)?;
                put(&mut memo, &mut memo_keys, key, &top);
            }
            b'r' => {
                let key = r.uint(4)?;
                put(&mut memo, &mut memo_keys, key, &top);
            }
            0x94 => {
                let key = memo_keys.len() as u64;
                put(&mut memo, &mut memo_keys, key, &top);
            }
            // GET family: a memo value is pushed.
            b'g' | b'h' | b'j' => {
                let key = match op {
                    b'g' => r.line()?.trim().parse::<u64>().map_err(|_| here("bad GET index".into()))?,
                    b'h' => r.uint(1)?,
                    _ => r.uint(4)?,
                };
                match memo.get(&key) {
                    Some(s) => top.push(s.clone()),
                    None => top.clear(),
                }
            }
            // Strings.
            0x8c => {
                let n = r.uint(1)? as usize;
                top.push(r.text(n)?);
            }
            b'X' => {
                let n = r.uint(4)? as usize;
                top.push(r.text(n)?);
            }
            0x8d => {
                let n = r.uint(8)?;
                top.push(r.text(usize::try_from(n).map_err(|_| "string length too large")?)?);
            }
            b'U' => {
                let n = r.uint(1)? as usize;
                top.push(r.text(n)?);
            }
            b'T' => {
                let n = r.uint(4)? as usize;
                top.push(r.text(n)?);
            }
            b'V' => {
                let line = r.line()?;
                top.push(line);
            }
            b'S' => {
                let line = r.line()?;
                top.push(line.trim().trim_matches(|c| c == '\'' || c == '"').to_string());
            }
            // Globals.
            b'c' | b'i' => {
                let module = r.line()?;
                let name = r.line()?;
                check(&module, &name)?;
                top.clear();
            }
            0x93 => {
                if top.len() < 2 {
                    return Err(here(
                        "STACK_GLOBAL takes a module and a name that ft cannot tell (not pushed as strings): \
                         the global it names cannot be verified"
                            .into(),
                    ));
                }
                let name = top.pop().unwrap_or_default();
                let module = top.pop().unwrap_or_default();
                check(&module, &name)?;
                top.clear();
            }
            0x82..=0x84 => {
                return Err(here(
                    "an extension-registry opcode (EXT1/EXT2/EXT4) names a global ft cannot verify".into(),
                ));
            }
            // Other opcodes with arguments.
            b'I' | b'L' | b'F' | b'P' => {
                r.line()?;
                top.clear();
            }
            b'K' => {
                r.skip(1)?;
                top.clear();
            }
            b'M' => {
                r.skip(2)?;
                top.clear();
            }
            b'J' => {
                r.skip(4)?;
                top.clear();
            }
            b'G' => {
                r.skip(8)?;
                top.clear();
            }
            0x8a => {
                let n = r.uint(1)? as usize;
                r.skip(n)?;
                top.clear();
            }
            0x8b => {
                let n = r.uint(4)? as usize;
                r.skip(n)?;
                top.clear();
            }
            b'C' => {
                let n = r.uint(1)? as usize;
                r.skip(n)?;
                top.clear();
            }
            b'B' => {
                let n = r.uint(4)? as usize;
                r.skip(n)?;
                top.clear();
            }
            0x8e | 0x96 => {
                let n = r.uint(8)?;
                r.skip(usize::try_from(n).map_err(|_| "length too large")?)?;
                top.clear();
            }
            // Opcodes without arguments.
            b'(' | b'0' | b'1' | b'2' | b'N' | 0x88 | 0x89 | b'R' | b'b' | b'a' | b'e' | b'd' | b'}' | b']' | b')'
            | b'l' | b't' | 0x85 | 0x86 | 0x87 | b's' | b'u' | b'o' | 0x81 | 0x92 | 0x8f | 0x90 | 0x91 | b'Q'
            | 0x97 | 0x98 => top.clear(),
            other => return Err(here(format!("invalid pickle opcode 0x{other:02x} (corrupt file?)"))),
        }
    }
}

/// `PUT`/`MEMOIZE`: the top of the stack is stored under `key` (known only if it is a string).
fn put(memo: &mut HashMap<u64, String>, keys: &mut HashSet<u64>, key: u64, top: &[String]) {
    keys.insert(key);
    match top.last() {
        Some(s) => memo.insert(key, s.clone()),
        None => memo.remove(&key),
    };
}

/// A bounds-checked reader over the pickle bytes.
struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Cursor<'_> {
    fn byte(&mut self) -> Option<u8> {
        let b = *self.bytes.get(self.at)?;
        self.at += 1;
        Some(b)
    }

    fn take(&mut self, n: usize) -> std::result::Result<&[u8], String> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.bytes.len()).ok_or_else(|| {
            format!("truncated pickle: an argument of {n} bytes at offset {} runs past the end", self.at)
        })?;
        let s = &self.bytes[self.at..end];
        self.at = end;
        Ok(s)
    }

    fn skip(&mut self, n: usize) -> std::result::Result<(), String> {
        self.take(n).map(|_| ())
    }

    fn uint(&mut self, n: usize) -> std::result::Result<u64, String> {
        let b = self.take(n)?;
        Ok(b.iter().rev().fold(0u64, |acc, &x| (acc << 8) | x as u64))
    }

    fn text(&mut self, n: usize) -> std::result::Result<String, String> {
        Ok(String::from_utf8_lossy(self.take(n)?).into_owned())
    }

    fn line(&mut self) -> std::result::Result<String, String> {
        let rest = &self.bytes[self.at..];
        let end = rest.iter().position(|&b| b == b'\n').ok_or("truncated pickle: a text argument has no newline")?;
        let s = String::from_utf8_lossy(&rest[..end]).into_owned();
        self.at += end + 1;
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `SHORT_BINUNICODE s; MEMOIZE`.
    fn str_op(s: &str) -> Vec<u8> {
        let mut v = vec![0x8c, s.len() as u8];
        v.extend_from_slice(s.as_bytes());
        v.push(0x94);
        v
    }

    #[test]
    fn files_written_by_ft_pass() {
        let bytes = crate::torch_save::torch_save_bytes([("w", &[2usize][..], &[1.0f32, 2.0][..])], "archive");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.bin");
        std::fs::write(&path, bytes).unwrap();
        check_torch_file(&path).unwrap();
    }

    /// Files PyTorch wrote in its legacy format and with pickle protocol 4 (`STACK_GLOBAL`,
    /// `FRAME`, `MEMOIZE`) pass the guard and read back with PyTorch's values; the hostile
    /// fixtures do not (`xtask/python/fixtures_hostile.py`).
    #[test]
    fn pytorch_files_pass_and_hostile_ones_do_not() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/hostile");
        let expected: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json")).unwrap()).unwrap();
        for name in ["legacy.pth", "protocol4.pth"] {
            let t = crate::tensors::NamedTensors::read_pytorch(&dir.join(name)).unwrap();
            assert_eq!(t.len(), 2, "{name}");
            for (key, want) in expected.as_object().unwrap() {
                let (shape, values) = t.get(key).unwrap();
                let want_values: Vec<f32> =
                    want["values"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect();
                assert_eq!(
                    shape,
                    want["shape"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|v| v.as_u64().unwrap() as usize)
                        .collect::<Vec<_>>()
                        .as_slice()
                );
                assert_eq!(values, want_values.as_slice(), "{name} {key}");
            }
        }
        for name in ["evil-only.pth", "evil-resnet/resnet.pth"] {
            let err = crate::tensors::NamedTensors::read_pytorch(&dir.join(name)).unwrap_err().to_string();
            assert!(err.contains("posix.system") && err.contains(name.rsplit('/').next().unwrap()), "{err}");
        }
    }

    /// A legacy file's five pickles are all walked, whatever byte the fourth starts with (a
    /// review found `)0` in front of the root pickle hid it); TAR checkpoints are refused.
    #[test]
    fn every_pickle_of_a_legacy_file_is_walked_and_tar_is_refused() {
        let mut file = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19.".to_vec();
        file.extend(b"\x80\x02M\xe9\x03."); // protocol 1001
        file.extend(b"\x80\x02}q\x00."); // sys_info
        file.extend(b")0\x80\x02cposix\nsystem\nX\x04\x00\x00\x00echo\x85R."); // the object
        file.extend(b"\x80\x02]q\x00."); // storage keys
        file.extend([0u8; 16]); // storage bytes
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("legacy.pth");
        std::fs::write(&path, &file).unwrap();
        let err = check_torch_file(&path).unwrap_err().to_string();
        assert!(err.contains("`posix.system`") && err.contains("pickle 4 of 5"), "{err}");
        // A legacy file cut short of its five pickles is refused too.
        std::fs::write(&path, &file[..40]).unwrap();
        assert!(check_torch_file(&path).is_err());
        let mut tar = vec![0u8; 1024];
        tar[..6].copy_from_slice(b"pickle");
        tar[257..262].copy_from_slice(b"ustar");
        std::fs::write(&path, &tar).unwrap();
        assert!(check_torch_file(&path).unwrap_err().to_string().contains("TAR"));
    }

    #[test]
    fn a_global_calling_os_system_is_refused() {
        // protocol 2: c os\nsystem\n (V echo\n t R .
        let pickle = b"\x80\x02cos\nsystem\nq\x00X\x04\x00\x00\x00echoq\x01\x85q\x02Rq\x03.";
        let err = check_pickle(pickle).unwrap_err();
        assert!(err.contains("`os.system`"), "{err}");
    }

    #[test]
    fn stack_global_is_checked_against_the_strings_it_really_takes() {
        // Allowed names pushed last but popped away: the real STACK_GLOBAL takes os.system.
        let mut p = vec![0x80, 4];
        p.extend(str_op("os"));
        p.extend(str_op("system"));
        p.extend(str_op("torch._utils"));
        p.extend(str_op("_rebuild_tensor_v2"));
        p.extend([b'0', b'0', 0x93, b'.']);
        assert!(check_pickle(&p).is_err());
        // Fetched back from the memo: checked by name.
        let mut p = vec![0x80, 4];
        p.extend(str_op("os")); // memo 0
        p.extend(str_op("system")); // memo 1
        p.extend([b'0', b'0', b'h', 0, b'h', 1, 0x93, b'.']);
        let err = check_pickle(&p).unwrap_err();
        assert!(err.contains("`os.system`"), "{err}");
        // The legitimate protocol-4 spelling passes.
        let mut p = vec![0x80, 4];
        p.extend(str_op("collections"));
        p.extend(str_op("OrderedDict"));
        p.extend([0x93, 0x94, b')', b'R', b'.']);
        assert_eq!(check_pickle(&p).unwrap(), p.len());
        // A memo slot overwritten by a non-string is no longer trusted.
        let mut p = vec![0x80, 4];
        p.extend(str_op("collections")); // memo 0
        p.extend(str_op("OrderedDict")); // memo 1
        p.extend([b'N', b'q', 1, b'0', b'h', 0, b'h', 1, 0x93, b'.']);
        assert!(check_pickle(&p).unwrap_err().contains("cannot be verified"));
    }

    #[test]
    fn extension_opcodes_and_garbage_are_refused() {
        assert!(check_pickle(b"\x80\x02\x82\x01.").unwrap_err().contains("extension"));
        assert!(check_pickle(b"\x80\x02\xff.").unwrap_err().contains("invalid pickle opcode"));
        assert!(check_pickle(b"\x80\x02X\xff\xff\xff\x7f").unwrap_err().contains("truncated"));
        assert!(check_pickle(b"\x80\x02").unwrap_err().contains("no STOP"));
    }

    #[test]
    fn the_allowlist_covers_storages_dtypes_and_rebuilds() {
        for (m, n) in [
            ("torch", "FloatStorage"),
            ("torch.cuda", "HalfTensor"),
            ("torch", "bfloat16"),
            ("torch._utils", "_rebuild_tensor_v2"),
            ("collections", "OrderedDict"),
            ("torch.sparse", "FloatTensor"),
        ] {
            assert!(is_allowed_global(m, n), "{m}.{n}");
        }
        for (m, n) in [
            ("os", "system"),
            ("builtins", "eval"),
            ("torch", "load"),
            ("torch.cuda", "Storage"),
            ("torchvision.models.resnet", "ResNet"),
        ] {
            assert!(!is_allowed_global(m, n), "{m}.{n}");
        }
    }
}
