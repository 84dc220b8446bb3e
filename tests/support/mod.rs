//! Helpers shared by the workspace's tests (included with `#[path]` from each crate's tests).
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The workspace root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .find(|p| p.join("tests/fixtures").is_dir())
        .expect("workspace root")
        .to_path_buf()
}

/// `tests/fixtures/<rel>`.
pub fn fixture(rel: &str) -> PathBuf {
    workspace().join("tests/fixtures").join(rel)
}

/// Records that the running test skips because `why`, and says so on stderr. When
/// `FT_SKIP_LOG` names a file, a line is appended there (`.ci/run` fails if any test skipped).
pub fn skip(why: &str) {
    let test = std::thread::current().name().unwrap_or("?").to_string();
    eprintln!("SKIPPED {test}: {why}");
    if let Some(log) = std::env::var_os("FT_SKIP_LOG") {
        use std::io::Write;
        if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(log) {
            let _ = writeln!(f, "{test}: {why}");
        }
    }
}

/// The shared folder beside the repository (`FT_SHARED` overrides `../shared`): real data and
/// the fetch scripts. `None` (and a skip recorded) when it is not there, as on a clean clone.
pub fn shared() -> Option<PathBuf> {
    let dir = std::env::var_os("FT_SHARED").map(PathBuf::from).unwrap_or_else(|| workspace().join("../shared"));
    if dir.join("data").is_dir() {
        Some(dir)
    } else {
        skip(&format!("needs the shared data folder ({}; set FT_SHARED)", dir.display()));
        None
    }
}

/// `shared()/data/<rel>`, or `None` (skip) when the shared folder or the file is missing.
pub fn shared_data(rel: &str) -> Option<PathBuf> {
    let p = shared()?.join("data").join(rel);
    if p.exists() {
        Some(p)
    } else {
        skip(&format!("needs {}", p.display()));
        None
    }
}

/// sentence-transformers' all-MiniLM-L6-v2 in HF layout: `FT_MINILM_DIR`, else
/// `~/.cache/ft-minilm`, fetched with the shared folder's `scripts/fetch-minilm.sh` when
/// missing (one test fetches while the others wait on a lock file). `None` (skip) when it is
/// absent and cannot be fetched.
pub fn minilm() -> Option<PathBuf> {
    let dir = std::env::var_os("FT_MINILM_DIR").map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| ".".into())).join(".cache/ft-minilm")
    });
    // A complete model is marked by `.complete`, written after the fetch into a temporary
    // folder was renamed into place: a parallel test never reads a half-written file.
    let done = dir.join(".complete");
    if done.is_file() || (dir.join("model.safetensors").is_file() && std::env::var_os("FT_MINILM_DIR").is_some()) {
        return Some(dir);
    }
    let shared = shared()?;
    let script = shared.join("scripts/fetch-minilm.sh");
    let lock_path = dir.with_extension("lock");
    if let Some(parent) = lock_path.parent() {
        let _ = std::fs::create_dir_all(parent);
    }
    // An OS file lock (released when its holder exits, even if killed): one test fetches, the
    // others wait on the lock and then find the model.
    let Ok(lock) = std::fs::OpenOptions::new().write(true).create(true).truncate(false).open(&lock_path) else {
        skip(&format!("cannot open the lock file {}", lock_path.display()));
        return None;
    };
    if lock.lock().is_err() {
        skip(&format!("cannot lock {}", lock_path.display()));
        return None;
    }
    if !done.is_file() {
        let tmp = dir.with_extension("partial");
        let _ = std::fs::remove_dir_all(&tmp);
        let status = Command::new("bash").arg(&script).arg(&tmp).status();
        let ok = matches!(status, Ok(s) if s.success()) && tmp.join("model.safetensors").is_file();
        if ok {
            let _ = std::fs::remove_dir_all(&dir);
            let _ = std::fs::rename(&tmp, &dir);
            let _ = std::fs::write(&done, b"");
        } else {
            let _ = std::fs::remove_dir_all(&tmp);
            skip(&format!("all-MiniLM-L6-v2 could not be fetched with {}", script.display()));
            return None;
        }
    }
    drop(lock);
    if dir.join("model.safetensors").is_file() {
        Some(dir)
    } else {
        skip(&format!("all-MiniLM-L6-v2 is not in {}", dir.display()));
        None
    }
}

/// All tensors of a safetensors file as (shape, f32 values) — ints converted too.
pub fn read_safetensors(path: &Path) -> HashMap<String, (Vec<usize>, Vec<f64>)> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let st = safetensors::SafeTensors::deserialize(&bytes).expect("safetensors");
    st.tensors()
        .into_iter()
        .map(|(name, view)| {
            let data = view.data();
            let values: Vec<f64> = match view.dtype() {
                safetensors::Dtype::F32 => {
                    data.chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap()) as f64).collect()
                }
                safetensors::Dtype::I64 => {
                    data.chunks_exact(8).map(|b| i64::from_le_bytes(b.try_into().unwrap()) as f64).collect()
                }
                other => panic!("{name}: unexpected dtype {other:?}"),
            };
            (name, (view.shape().to_vec(), values))
        })
        .collect()
}

/// Largest absolute difference; panics on length mismatch.
pub fn max_abs_diff(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len(), "length mismatch");
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max)
}

/// FNV-1a (64-bit) of a file's bytes, as the fixture scripts record it.
#[allow(dead_code)]
pub fn fnv(path: &Path) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())) {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// Copies the files of folder `from` into `to` (created), e.g. a checkpoint a killed run left.
#[allow(dead_code)]
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap_or_else(|e| panic!("{}: {e}", to.display()));
    for e in std::fs::read_dir(from).unwrap_or_else(|e| panic!("{}: {e}", from.display())).flatten() {
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap_or_else(|err| panic!("{}: {err}", e.path().display()));
    }
}

/// The stdout of a command that must succeed (its stderr in the failure message).
pub fn ok(o: &std::process::Output) -> String {
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "{err}");
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Asserts a command failed with a clear error: no panic, and every one of `needles` in stderr.
pub fn fails(o: &std::process::Output, needles: &[&str]) {
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(!o.status.success(), "succeeded: {}", String::from_utf8_lossy(&o.stdout));
    assert!(!err.contains("panicked"), "{err}");
    for n in needles {
        assert!(err.contains(n), "stderr lacks '{n}': {err}");
    }
}

/// A JSON file's value.
pub fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))).unwrap()
}
