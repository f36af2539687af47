//! README.md and docs/: every relative link resolves to a file in the repository, and every
//! `#anchor` to a heading of the file it points into (GitHub's slugs).

use std::path::{Path, PathBuf};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The markdown files of the front page and docs/.
fn pages() -> Vec<PathBuf> {
    let mut pages = vec![Path::new(ROOT).join("README.md")];
    for entry in std::fs::read_dir(Path::new(ROOT).join("docs")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "md") {
            pages.push(path);
        }
    }
    pages
}

/// Targets of inline links `[text](target)` outside code blocks and code spans.
fn links(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut fenced = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        let mut in_code = false;
        let bytes: Vec<char> = line.chars().collect();
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                '`' => in_code = !in_code,
                ']' if !in_code && bytes.get(i + 1) == Some(&'(') => {
                    let rest: String = bytes[i + 2..].iter().collect();
                    if let Some(end) = rest.find(')') {
                        out.push(rest[..end].to_string());
                    }
                }
                _ => {}
            }
            i += 1;
        }
    }
    out
}

/// GitHub's anchor of a heading: lower case, spaces to '-', punctuation dropped.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

fn anchors(text: &str) -> Vec<String> {
    text.lines().filter(|l| l.starts_with('#')).map(|l| slug(l.trim_start_matches('#'))).collect()
}

#[test]
fn every_relative_link_in_readme_and_docs_resolves() {
    let mut broken = Vec::new();
    let mut checked = 0;
    for page in pages() {
        let text = std::fs::read_to_string(&page).unwrap();
        for link in links(&text) {
            if link.contains("://") || link.starts_with("mailto:") {
                continue;
            }
            checked += 1;
            let (file, anchor) = link.split_once('#').unwrap_or((&link, ""));
            let target = if file.is_empty() { page.clone() } else { page.parent().unwrap().join(file) };
            let name = page.strip_prefix(ROOT).unwrap().display().to_string();
            if !target.exists() {
                broken.push(format!("{name}: ({link}): no such file"));
            } else if !anchor.is_empty() {
                let target_text = std::fs::read_to_string(&target).unwrap_or_default();
                if !anchors(&target_text).iter().any(|a| a == anchor) {
                    broken.push(format!("{name}: ({link}): no heading with that anchor"));
                }
            }
        }
    }
    assert!(checked > 10, "only {checked} relative links found: is the link parser broken?");
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

#[test]
fn readme_stays_a_front_page() {
    let lines = std::fs::read_to_string(Path::new(ROOT).join("README.md")).unwrap().lines().count();
    assert!(lines <= 150, "README.md has {lines} lines; details belong in docs/");
}

#[test]
fn link_parser_and_slugs() {
    assert_eq!(links("a [x](b.md#c) `[y](z)` [w](https://e)"), ["b.md#c", "https://e"]);
    assert_eq!(slug(" Killed, interrupted and concurrent runs"), "killed-interrupted-and-concurrent-runs");
    assert_eq!(
        slug("Ternary layers: bit masks against dense weights"),
        "ternary-layers-bit-masks-against-dense-weights"
    );
}
