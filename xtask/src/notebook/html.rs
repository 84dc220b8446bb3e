//! `report.html`: the report's Markdown as one self-contained page — pictures inlined as
//! `data:` URLs, the style sheet inline, headings with GitHub's anchors (the summary table's
//! links), no script and no request to anything outside the file. A picture that cannot be
//! read is an error naming it (the page would show a broken image otherwise).
//!
//! Links to the run files, logs and output folders stay relative: they open the files beside
//! the report.

use std::path::Path;

use anyhow::{Context, Result};
use base64::Engine as _;
use pulldown_cmark::{CowStr, Event, Options, Parser, Tag, TagEnd};

const STYLE: &str = "
body { font-family: -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif; max-width: 1100px; margin: 2em auto;
       padding: 0 1.5em; color: #1f2328; line-height: 1.5; }
h1 { border-bottom: 1px solid #d0d7de; padding-bottom: .3em; }
h2 { border-bottom: 1px solid #d0d7de; padding-bottom: .3em; margin-top: 2em; }
table { border-collapse: collapse; margin: 1em 0; display: block; overflow-x: auto; }
th, td { border: 1px solid #d0d7de; padding: 4px 10px; text-align: left; vertical-align: top; }
tr:nth-child(2n) { background: #f6f8fa; }
th { background: #eaeef2; }
code { background: #eff1f3; padding: .1em .3em; border-radius: 4px; font-size: 90%; }
pre { background: #f6f8fa; padding: 1em; overflow-x: auto; border-radius: 6px; }
pre code { background: none; padding: 0; }
blockquote { border-left: 4px solid #d0d7de; margin: 1em 0; padding: .2em 1em; background: #fff8c5; }
img { max-width: 100%; height: auto; border: 1px solid #d0d7de; }
";

/// The page for `markdown`, whose image links are relative to `base` (the report's folder).
pub fn render(markdown: &str, base: &Path, title: &str) -> Result<String> {
    let options = Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH;
    let events: Vec<Event> = Parser::new_ext(markdown, options).collect();
    let mut out: Vec<Event> = Vec::with_capacity(events.len());
    let mut i = 0;
    while i < events.len() {
        match &events[i] {
            Event::Start(Tag::Heading { level, .. }) => {
                // The heading's text up to its end, for its anchor.
                let mut text = String::new();
                let mut j = i + 1;
                while j < events.len() && !matches!(events[j], Event::End(TagEnd::Heading(_))) {
                    if let Event::Text(t) | Event::Code(t) = &events[j] {
                        text.push_str(t);
                    }
                    j += 1;
                }
                out.push(Event::Start(Tag::Heading {
                    level: *level,
                    id: Some(CowStr::from(super::report::anchor(&text))),
                    classes: Vec::new(),
                    attrs: Vec::new(),
                }));
            }
            Event::Start(Tag::Image { link_type, dest_url, title, id }) => {
                let url = inline_image(dest_url, base)?;
                out.push(Event::Start(Tag::Image {
                    link_type: *link_type,
                    dest_url: CowStr::from(url),
                    title: title.clone(),
                    id: id.clone(),
                }));
            }
            // Raw HTML in the Markdown is shown as text (the report's cells hold only text).
            Event::Html(h) | Event::InlineHtml(h) => out.push(Event::Text(h.clone())),
            e => out.push(e.clone()),
        }
        i += 1;
    }
    let mut body = String::new();
    pulldown_cmark::html::push_html(&mut body, out.into_iter());
    Ok(format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; img-src data:; style-src 'unsafe-inline'\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n{body}</body>\n</html>\n",
        escape(title)
    ))
}

/// A relative picture path as a `data:` URL (PNG or JPEG); other URLs are kept.
fn inline_image(url: &str, base: &Path) -> Result<String> {
    if url.starts_with("data:") || url.contains("://") {
        return Ok(url.to_string());
    }
    let path = base.join(url);
    let bytes = std::fs::read(&path).with_context(|| format!("report.html: reading the picture {}", path.display()))?;
    let mime = if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        "image/png"
    } else if bytes.starts_with(&[0xff, 0xd8, 0xff]) {
        "image/jpeg"
    } else {
        anyhow::bail!("report.html: {} is neither a PNG nor a JPEG picture", path.display());
    };
    Ok(format!("data:{mime};base64,{}", base64::engine::general_purpose::STANDARD.encode(&bytes)))
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// Writes `report.html` beside `report.md` (atomically).
pub fn write(out: &Path, markdown: &str, title: &str) -> Result<()> {
    let html = render(markdown, out, title)?;
    let path = out.join("report.html");
    let tmp = out.join("report.html.tmp");
    std::fs::write(&tmp, html).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn pictures_are_inlined_and_headings_anchored() {
        let tmp = tempfile::tempdir().unwrap();
        let png = ft_metrics::curves::line_chart_png(
            "t",
            "x",
            "y",
            &[ft_metrics::curves::Series { name: "s".into(), points: vec![(0.0, 1.0), (1.0, 0.5)] }],
        )
        .unwrap();
        std::fs::create_dir_all(tmp.path().join("4-full")).unwrap();
        std::fs::write(tmp.path().join("4-full/loss.png"), &png).unwrap();
        let md = "# Title\n\n| a | b |\n|---|---|\n| [§4 Full (AG News)](#4-full-ag-news) | <b>x</b> |\n\n## §4 Full (AG News)\n\n![loss](4-full/loss.png)\n\n[run file](4-full/run.toml)\n";
        let html = render(md, tmp.path(), "r").unwrap();
        assert!(html.contains("<h2 id=\"4-full-ag-news\">"), "{html}");
        assert!(html.contains("src=\"data:image/png;base64,iVBORw0KGgo"), "{html}");
        assert!(!html.contains("4-full/loss.png"), "{html}");
        assert!(html.contains("<table>") && html.contains("&lt;b&gt;x&lt;/b&gt;"), "{html}");
        assert!(html.contains("href=\"4-full/run.toml\""), "{html}");
        assert!(!html.contains("<script"), "{html}");
        let e = render("![x](missing.png)", tmp.path(), "r").unwrap_err();
        assert!(format!("{e:#}").contains("missing.png"), "{e:#}");
    }
}
