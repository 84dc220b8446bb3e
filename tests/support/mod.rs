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
    let dir = std::env::var_os("FT_MINILM_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| ".".into())).join(".cache/ft-minilm"));
    if dir.join("model.safetensors").is_file() {
        return Some(dir);
    }
    let shared = shared()?;
    let script = shared.join("scripts/fetch-minilm.sh");
    let lock = dir.with_extension("lock");
    if let Some(parent) = lock.parent() {
        let _ = std::fs::create_dir_all(parent);
    }
    // The first test to create the lock file fetches; the others wait for it to go away.
    match std::fs::OpenOptions::new().write(true).create_new(true).open(&lock) {
        Ok(_) => {
            let status = Command::new("bash").arg(&script).arg(&dir).status();
            let _ = std::fs::remove_file(&lock);
            if !matches!(status, Ok(s) if s.success()) {
                skip(&format!("all-MiniLM-L6-v2 could not be fetched with {}", script.display()));
                return None;
            }
        }
        Err(_) => {
            let start = std::time::Instant::now();
            while lock.exists() && start.elapsed() < std::time::Duration::from_secs(600) {
                std::thread::sleep(std::time::Duration::from_millis(200));
            }
        }
    }
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
