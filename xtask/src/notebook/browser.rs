//! `cargo xtask check-report DIR`: opens `DIR/report.html` in headless Chromium (Debian's
//! `chromium` package) and checks that it renders without console errors, that every picture
//! loads, and that the page asks for nothing outside itself; saves a screenshot of its first
//! screens as `DIR/report-screenshot.png`.
//!
//! How: the page is copied into an empty folder (so a relative picture path would fail to
//! load), its Content-Security-Policy is widened to let one inline script run, and that script,
//! appended at the end, marks the page `data-img-check="OK"` on `load` when every `<img>` has
//! decoded (else `BROKEN:...` and a console error). Chromium runs with `--dump-dom` (the DOM
//! after `load`, on stdout), `--enable-logging=stderr` (console messages are `:CONSOLE` lines,
//! whatever their level) and every host name resolving to nothing.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// The page's policy as `report.html` writes it, and the one the check uses (inline scripts
/// allowed, nothing else).
const CSP: &str = "default-src 'none'; img-src data:; style-src 'unsafe-inline'";
const CSP_CHECK: &str = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'";

const CHECK_SCRIPT: &str = r#"<script>
window.addEventListener('load', function () {
  var bad = [];
  for (var i = 0; i < document.images.length; i++) {
    var im = document.images[i];
    if (!im.complete || im.naturalWidth === 0) { bad.push(im.alt || im.src.slice(0, 60)); }
  }
  document.documentElement.setAttribute('data-img-check', bad.length ? 'BROKEN:' + bad.join(',') : 'OK');
  document.documentElement.setAttribute('data-img-count', String(document.images.length));
  if (bad.length) console.error('BROKEN_IMAGES ' + bad.join(' '));
});
</script>
"#;

/// The Chromium binary: `FT_CHROMIUM`, Debian's `/usr/lib/chromium/chromium` (the binary
/// itself, without the launcher script's flags), or `chromium` / `chromium-browser` on the PATH.
pub fn chromium() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("FT_CHROMIUM") {
        return Some(PathBuf::from(p));
    }
    let debian = PathBuf::from("/usr/lib/chromium/chromium");
    if debian.is_file() {
        return Some(debian);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|d| ["chromium", "chromium-browser", "google-chrome"].map(|n| d.join(n)))
        .find(|p| p.is_file())
}

/// What the check found.
#[derive(Debug)]
pub struct Rendered {
    /// Pictures on the page (all loaded).
    pub images: usize,
    /// The screenshot.
    pub screenshot: PathBuf,
}

/// Renders `html` (a file) in headless Chromium and checks it (see the module docs); the
/// screenshot (1280 × `height` px) goes to `screenshot`.
pub fn check(html: &Path, screenshot: &Path, height: u32) -> Result<Rendered> {
    let chromium = chromium().context(
        "no Chromium found (apt-get install chromium, or set FT_CHROMIUM to its binary) to check the report in a browser",
    )?;
    let page = std::fs::read_to_string(html).with_context(|| format!("reading {}", html.display()))?;
    // Nothing outside the page: no remote picture, style sheet, script or frame.
    for needle in ["src=\"http", "src=\"//", "href=\"http://", "<link ", "<iframe", "@import"] {
        if page.contains(needle) {
            bail!("{}: the page refers to something outside itself ({needle}...)", html.display());
        }
    }
    if !page.contains(CSP) {
        bail!("{}: no Content-Security-Policy \"{CSP}\" (the page must not be able to load anything)", html.display());
    }
    let tmp = std::env::temp_dir().join(format!("ft-report-check-{}-{}", std::process::id(), unique()));
    std::fs::create_dir_all(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    let result = (|| {
        let copy = tmp.join("report.html");
        let checked = page.replacen(CSP, CSP_CHECK, 1) + CHECK_SCRIPT;
        std::fs::write(&copy, checked).with_context(|| format!("writing {}", copy.display()))?;
        let shot = tmp.join("screenshot.png");
        let mut cmd = Command::new(&chromium);
        cmd.args([
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--disable-dev-shm-usage",
            "--host-resolver-rules=MAP * ~NOTFOUND",
            "--enable-logging=stderr",
        ])
        .arg(format!("--user-data-dir={}", tmp.join("profile").display()))
        .arg(format!("--window-size=1280,{height}"))
        .arg(format!("--screenshot={}", shot.display()))
        .arg("--dump-dom")
        .arg(format!("file://{}", copy.display()))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let child = cmd.spawn().with_context(|| format!("starting {}", chromium.display()))?;
        let output = wait_with_timeout(child, Duration::from_secs(120))?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        if !output.status.success() {
            bail!("{} failed ({}): {}", chromium.display(), output.status, tail(&stderr));
        }
        let console: Vec<&str> = stderr.lines().filter(|l| l.contains(":CONSOLE")).collect();
        if !console.is_empty() {
            bail!("{} logged to the console:\n{}", html.display(), console.join("\n"));
        }
        let attr = |name: &str| -> Option<String> {
            let start = stdout.find(&format!("{name}=\""))? + name.len() + 2;
            Some(stdout[start..].split('"').next()?.to_string())
        };
        match attr("data-img-check").as_deref() {
            Some("OK") => {}
            Some(bad) => bail!("{}: pictures that did not load: {bad}", html.display()),
            None => bail!("{}: the page did not finish loading in Chromium (no image check result)", html.display()),
        }
        let images: usize = attr("data-img-count").and_then(|n| n.parse().ok()).unwrap_or(0);
        let bytes = std::fs::read(&shot).with_context(|| format!("Chromium wrote no screenshot {}", shot.display()))?;
        if !bytes.starts_with(b"\x89PNG\r\n\x1a\n") || bytes.len() < 10_000 {
            bail!("the screenshot {} is not a picture of a page ({} bytes)", shot.display(), bytes.len());
        }
        std::fs::write(screenshot, bytes).with_context(|| format!("writing {}", screenshot.display()))?;
        Ok(Rendered { images, screenshot: screenshot.to_path_buf() })
    })();
    let _ = std::fs::remove_dir_all(&tmp);
    result
}

fn unique() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0)
}

fn tail(s: &str) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(10)..].join("\n")
}

fn wait_with_timeout(mut child: std::process::Child, limit: Duration) -> Result<std::process::Output> {
    use std::io::Read as _;
    let mut out = child.stdout.take();
    let mut err = child.stderr.take();
    let reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(o) = out.as_mut() {
            let _ = o.read_to_end(&mut buf);
        }
        buf
    });
    let err_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(e) = err.as_mut() {
            let _ = e.read_to_end(&mut buf);
        }
        buf
    });
    let started = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().context("waiting for Chromium")? {
            break s;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            bail!("Chromium did not finish within {} s", limit.as_secs());
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let stdout = reader.join().unwrap_or_default();
    let stderr = err_reader.join().unwrap_or_default();
    Ok(std::process::Output { status, stdout, stderr })
}

/// `cargo xtask check-report DIR`.
pub fn check_report(dir: &Path) -> Result<()> {
    let html = dir.join("report.html");
    let shot = dir.join("report-screenshot.png");
    let r = check(&html, &shot, 3000)?;
    eprintln!(
        "{}: rendered in headless Chromium without console errors; {} pictures, all loaded; screenshot {}",
        html.display(),
        r.images,
        r.screenshot.display()
    );
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn skip(why: &str) {
        let test = std::thread::current().name().unwrap_or("?").to_string();
        eprintln!("SKIPPED {test}: {why}");
        if let Some(log) = std::env::var_os("FT_SKIP_LOG") {
            use std::io::Write;
            if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(log) {
                let _ = writeln!(f, "{test}: {why}");
            }
        }
    }

    /// A report page with pictures renders cleanly; a broken picture and a console error are
    /// caught.
    #[test]
    fn a_report_renders_in_headless_chromium() {
        if chromium().is_none() {
            skip("no Chromium (apt-get install chromium)");
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        let png = ft_metrics::curves::line_chart_png(
            "loss",
            "step",
            "loss",
            &[ft_metrics::curves::Series { name: "training loss".into(), points: vec![(0.0, 1.0), (10.0, 0.4)] }],
        )
        .unwrap();
        std::fs::write(tmp.path().join("loss.png"), &png).unwrap();
        let md = "# Report\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n![loss curve](loss.png)\n\n![again](loss.png)\n";
        super::super::html::write(tmp.path(), md, "t").unwrap();
        let html = tmp.path().join("report.html");
        let r = check(&html, &tmp.path().join("shot.png"), 1200).unwrap();
        assert_eq!(r.images, 2);
        assert!(std::fs::metadata(tmp.path().join("shot.png")).unwrap().len() > 10_000);

        // A picture that does not decode.
        let page = std::fs::read_to_string(&html).unwrap();
        let broken = page.replacen("data:image/png;base64,iVBOR", "data:image/png;base64,AAAA", 1);
        std::fs::write(&html, &broken).unwrap();
        let e = check(&html, &tmp.path().join("shot.png"), 1200).unwrap_err();
        let e = format!("{e:#}");
        assert!(e.contains("BROKEN_IMAGES") || e.contains("did not load"), "{e}");
        // A remote picture is refused before rendering.
        std::fs::write(&html, page.replacen("<body>", "<body><img src=\"https://example.com/x.png\">", 1)).unwrap();
        let e = check(&html, &tmp.path().join("shot.png"), 1200).unwrap_err();
        assert!(format!("{e:#}").contains("outside itself"), "{e:#}");
    }
}
