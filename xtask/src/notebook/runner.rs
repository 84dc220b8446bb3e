//! Running `ft` for the notebook: building the release binary, running it with its output kept,
//! and the facts a report states (version, commit, machine, date).

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

use super::root;

/// Builds `ft` in release mode and returns the binary's path (from cargo's JSON messages, so that
/// `CARGO_TARGET_DIR` and cargo configuration are honoured).
pub(crate) fn build_ft() -> Result<PathBuf> {
    let mut cmd = crate::cargo_command();
    cmd.current_dir(root()).args(["build", "--release", "-p", "ft-cli", "--message-format=json-render-diagnostics"]);
    eprintln!("+ {cmd:?}");
    let out = cmd.stderr(Stdio::inherit()).output().with_context(|| format!("starting {cmd:?}"))?;
    if !out.status.success() {
        bail!("cargo build --release -p ft-cli failed with {}", out.status);
    }
    let mut exe = None;
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else { continue };
        if let (true, Some(p)) =
            (v["reason"] == "compiler-artifact" && v["target"]["name"] == "ft", v["executable"].as_str())
        {
            exe = Some(PathBuf::from(p));
        }
    }
    exe.context("cargo build --release -p ft-cli reported no `ft` executable")
}

/// `ft --version`, and the git commit of the working tree (with a note when it has changes).
pub fn provenance(ft: &Path) -> (String, String) {
    let version = Command::new(ft)
        .arg("--version")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown (ft --version failed)".into());
    let git = |args: &[&str]| -> Option<String> {
        let o = Command::new("git").current_dir(root()).args(args).output().ok()?;
        o.status.success().then(|| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let commit = match git(&["rev-parse", "HEAD"]) {
        Some(c) => {
            let dirty = git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
            if dirty { format!("{c} (with uncommitted changes)") } else { c }
        }
        None => "unknown (not a git checkout)".into(),
    };
    (version, commit)
}

/// UTC date and time, `YYYY-MM-DD HH:MM UTC`.
pub fn now_utc() -> String {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02} UTC", rem / 3600, rem % 3600 / 60)
}

pub fn machine() -> String {
    ft_hub::machine::Machine::current().to_string()
}

/// The file beside `stderr_file` where [`run_ft`] records the process's peak resident memory.
pub fn peak_memory_file(stderr_file: &Path) -> PathBuf {
    let mut name = stderr_file.as_os_str().to_owned();
    name.push(".peak-rss-mib");
    PathBuf::from(name)
}

/// The peak resident memory (MiB) [`run_ft`] recorded for the run that logged to `stderr_file`.
pub fn peak_memory_mib(stderr_file: &Path) -> Option<f64> {
    std::fs::read_to_string(peak_memory_file(stderr_file)).ok()?.trim().parse().ok()
}

/// `VmHWM` (peak resident set) of process `pid` in MiB, while it runs (Linux).
fn vm_hwm_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// Runs `ft` with `args`: stdout (the JSON-lines log of `ft train`) into `stdout_file`, stderr
/// shown and kept in `stderr_file`. Returns whether it succeeded and stderr's last lines. The
/// process's peak resident memory (its `VmHWM`, sampled every 100 ms) goes to
/// [`peak_memory_file`] (Linux; nothing elsewhere).
pub fn run_ft(
    ft: &Path,
    args: &[OsString],
    offline: bool,
    stdout_file: &Path,
    stderr_file: &Path,
) -> Result<(bool, String)> {
    let stdout = std::fs::File::create(stdout_file).with_context(|| format!("creating {}", stdout_file.display()))?;
    let mut log = std::fs::File::create(stderr_file).with_context(|| format!("creating {}", stderr_file.display()))?;
    let mut cmd = Command::new(ft);
    // Plain text logs (tracing colours them otherwise; escapes are stripped below as well).
    cmd.current_dir(root()).args(args).stdout(stdout).stderr(Stdio::piped()).env("NO_COLOR", "1");
    if offline {
        cmd.env("HF_HUB_OFFLINE", "1");
    }
    eprintln!("+ {}{}", if offline { "HF_HUB_OFFLINE=1 " } else { "" }, shell_words(ft, args));
    let mut child = cmd.spawn().with_context(|| format!("starting {}", ft.display()))?;
    let pid = child.id();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let done = done.clone();
        std::thread::spawn(move || {
            let mut peak: Option<f64> = None;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                if let Some(m) = vm_hwm_mib(pid) {
                    peak = Some(peak.map_or(m, |p: f64| p.max(m)));
                }
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            peak
        })
    };
    let mut tail: std::collections::VecDeque<String> = std::collections::VecDeque::new();
    if let Some(err) = child.stderr.take() {
        let mut reader = BufReader::new(err);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            let n = reader.read_until(b'\n', &mut buf).with_context(|| format!("reading {}'s stderr", ft.display()))?;
            if n == 0 {
                break;
            }
            let line = strip_ansi(String::from_utf8_lossy(&buf).trim_end());
            eprintln!("    {line}");
            writeln!(log, "{line}").with_context(|| format!("writing {}", stderr_file.display()))?;
            tail.push_back(line);
            if tail.len() > 15 {
                tail.pop_front();
            }
        }
    }
    let status = child.wait().with_context(|| format!("waiting for {}", ft.display()))?;
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    if let Ok(Some(peak)) = sampler.join() {
        let file = peak_memory_file(stderr_file);
        std::fs::write(&file, format!("{peak:.1}\n")).with_context(|| format!("writing {}", file.display()))?;
    }
    Ok((status.success(), tail.into_iter().collect::<Vec<_>>().join("\n")))
}

/// Text without ANSI escape sequences (`ESC [ ... letter`).
pub fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            chars.next();
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

pub fn shell_words(ft: &Path, args: &[OsString]) -> String {
    std::iter::once(ft.as_os_str())
        .chain(args.iter().map(OsString::as_os_str))
        .map(|a| {
            let s = a.to_string_lossy();
            if s.chars().any(|c| c.is_whitespace() || "'\"$\\".contains(c)) {
                format!("'{}'", s.replace('\'', "'\\''"))
            } else {
                s.into_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colours_are_stripped() {
        assert_eq!(strip_ansi("\u{1b}[2m2026\u{1b}[0m \u{1b}[33m WARN\u{1b}[0m x"), "2026  WARN x");
    }

    #[test]
    fn dates_are_civil() {
        let d = now_utc();
        assert!(d.len() == "2025-01-01 00:00 UTC".len() && d.ends_with(" UTC") && d.starts_with("20"), "{d}");
    }
}
