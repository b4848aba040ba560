//! A function's dependencies: the text of a requirements.txt (Python) or a package.json
//! (JavaScript), checked and reduced to the packages it names.
//!
//! Only registry packages are accepted: no pip options (`--index-url`, `-e`, `-r`), no URLs,
//! paths or VCS references, no npm `file:`/`git+`/`link:` specs. Packages come from the
//! registries this machine's pip and npm are configured for, and nothing a function says can
//! point the builder at another source or at a file on the host.

use std::collections::BTreeMap;

use crate::{FieldError, Language, ValidationErrors};

/// Largest dependencies text accepted.
pub const MAX_DEPENDENCIES_BYTES: usize = 64 * 1024;
/// Most packages one function may list (their own dependencies are not counted).
pub const MAX_PACKAGES: usize = 100;

/// What a dependencies text asks for, normalized: the same packages written differently
/// (order, case, spacing, comments, other package.json fields) give the same value, so the
/// same [`Dependencies::hash`] and one shared build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dependencies {
    pub language: Language,
    /// Python: one PEP 508 requirement per entry (`pyyaml==6.0.2`), sorted.
    /// JavaScript: `name@range` per entry, sorted.
    pub packages: Vec<String>,
    /// JavaScript only: name → range, as written into the package.json the builder uses.
    pub npm: BTreeMap<String, String>,
}

impl Dependencies {
    /// Parses `text` for `language`; `Ok(None)` when it names no package (an empty file).
    pub fn parse(language: Language, text: &str) -> Result<Option<Dependencies>, ValidationErrors> {
        if text.len() > MAX_DEPENDENCIES_BYTES {
            return Err(ValidationErrors::single(
                "dependencies",
                format!("must be at most {} KiB (is {} bytes)", MAX_DEPENDENCIES_BYTES / 1024, text.len()),
            ));
        }
        if text.contains('\0') {
            return Err(ValidationErrors::single("dependencies", "must not contain NUL characters"));
        }
        let deps = match language {
            Language::Python => parse_requirements(text)?,
            Language::Javascript => parse_package_json(text)?,
        };
        if deps.packages.len() > MAX_PACKAGES {
            return Err(ValidationErrors::single("dependencies", format!("at most {MAX_PACKAGES} packages")));
        }
        Ok((!deps.packages.is_empty()).then_some(deps))
    }

    /// SHA-256 (hex) of the language and the normalized packages: what builds are shared by.
    pub fn hash(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        h.update(self.language.as_str().as_bytes());
        for p in &self.packages {
            h.update(b"\n");
            h.update(p.as_bytes());
        }
        h.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The requirements.txt the builder hands to pip (Python).
    pub fn requirements_txt(&self) -> String {
        let mut s = self.packages.join("\n");
        s.push('\n');
        s
    }

    /// The package.json the builder hands to npm (JavaScript): only `dependencies`, so no
    /// scripts, workspaces or overrides from the user's file reach it.
    pub fn package_json(&self) -> String {
        let doc = serde_json::json!({
            "name": "fnbox-function",
            "version": "1.0.0",
            "private": true,
            "dependencies": self.npm,
        });
        serde_json::to_string_pretty(&doc).unwrap_or_default()
    }
}

fn line_error(line: usize, message: impl Into<String>) -> ValidationErrors {
    ValidationErrors(vec![FieldError {
        field: "dependencies".into(),
        message: message.into(),
        line: u32::try_from(line).ok(),
        column: None,
    }])
}

/// PEP 503 normalization: lowercase, runs of `-`, `_` and `.` become one `-`.
fn normalize_python_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut sep = false;
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            sep = true;
        } else {
            if sep && !out.is_empty() {
                out.push('-');
            }
            sep = false;
            out.push(c.to_ascii_lowercase());
        }
    }
    out
}

/// A requirements.txt line by line: `name[extras] specifiers ; marker`, comments and blank
/// lines. Hand-written: pip's own grammar includes options and URLs, which are exactly what
/// must be refused, and no crate parses PEP 508 into the pieces checked here.
fn parse_requirements(text: &str) -> Result<Dependencies, ValidationErrors> {
    let mut packages = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        // A comment starts at `#` at the line's start or after whitespace.
        let line = match raw.find(" #").or_else(|| raw.find("\t#")) {
            Some(at) => &raw[..at],
            None if raw.trim_start().starts_with('#') => "",
            None => raw,
        };
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if line.starts_with('-') {
            let opt = line.split_whitespace().next().unwrap_or(line);
            return Err(line_error(
                n,
                format!("line {n}: pip options such as `{opt}` are not accepted: packages come from the platform's package index"),
            ));
        }
        if line.ends_with('\\') {
            return Err(line_error(n, format!("line {n}: line continuations are not accepted")));
        }
        if line.contains("://") || line.contains(" @") || line.contains('@') || line.starts_with('.') || line.starts_with('/') || line.contains('\\') {
            return Err(line_error(
                n,
                format!("line {n}: `{line}` is a URL, path or direct reference; only packages from the index are accepted"),
            ));
        }
        let (req, marker) = match line.split_once(';') {
            Some((r, m)) => (r.trim(), Some(m.trim())),
            None => (line, None),
        };
        let name_end = req.find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))).unwrap_or(req.len());
        let name = &req[..name_end];
        if name.is_empty() || !name.starts_with(|c: char| c.is_ascii_alphanumeric()) || !name.ends_with(|c: char| c.is_ascii_alphanumeric()) {
            return Err(line_error(n, format!("line {n}: `{line}` does not start with a package name")));
        }
        let mut rest = req[name_end..].trim_start();
        let mut extras = String::new();
        if let Some(after) = rest.strip_prefix('[') {
            let Some((inside, tail)) = after.split_once(']') else {
                return Err(line_error(n, format!("line {n}: unclosed `[` in `{line}`")));
            };
            let mut list: Vec<String> = Vec::new();
            for e in inside.split(',').map(str::trim).filter(|e| !e.is_empty()) {
                if !e.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')) {
                    return Err(line_error(n, format!("line {n}: `{e}` is not a valid extra")));
                }
                list.push(normalize_python_name(e));
            }
            list.sort();
            extras = format!("[{}]", list.join(","));
            rest = tail.trim_start();
        }
        let spec: String = rest.chars().filter(|c| !c.is_whitespace()).collect();
        if !spec.is_empty() {
            for clause in spec.split(',') {
                let op_len = ["===", "~=", "==", "!=", "<=", ">=", "<", ">"]
                    .iter()
                    .find(|op| clause.starts_with(**op))
                    .map(|op| op.len());
                let Some(op_len) = op_len else {
                    return Err(line_error(n, format!("line {n}: `{clause}` is not a version specifier (like `==6.0.2` or `>=1.2`)")));
                };
                let version = &clause[op_len..];
                if version.is_empty() || !version.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '*' | '+' | '!' | '-' | '_')) {
                    return Err(line_error(n, format!("line {n}: `{clause}` has no valid version")));
                }
            }
        }
        let marker = match marker {
            Some(m) if m.is_empty() => return Err(line_error(n, format!("line {n}: empty environment marker after `;`"))),
            Some(m) => {
                if !m.chars().all(|c| c.is_ascii_alphanumeric() || " _.'\"<>=!~()-".contains(c)) {
                    return Err(line_error(n, format!("line {n}: `{m}` is not a valid environment marker")));
                }
                format!(" ; {}", m.split_whitespace().collect::<Vec<_>>().join(" "))
            }
            None => String::new(),
        };
        packages.push(format!("{}{extras}{spec}{marker}", normalize_python_name(name)));
    }
    packages.sort();
    packages.dedup();
    Ok(Dependencies { language: Language::Python, packages, npm: BTreeMap::new() })
}

/// npm's rules for a package name (lowercase, URL-safe, optionally `@scope/`).
fn valid_npm_name(name: &str) -> bool {
    let part = |p: &str| {
        !p.is_empty()
            && !p.starts_with('.')
            && !p.starts_with('_')
            && p.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '.' | '_' | '~'))
    };
    if name.len() > 214 {
        return false;
    }
    match name.strip_prefix('@') {
        Some(scoped) => matches!(scoped.split_once('/'), Some((scope, pkg)) if part(scope) && part(pkg)),
        None => part(name),
    }
}

/// A package.json's `dependencies`; every other field is ignored.
fn parse_package_json(text: &str) -> Result<Dependencies, ValidationErrors> {
    let doc: serde_json::Value = serde_json::from_str(text).map_err(|e| {
        ValidationErrors(vec![FieldError {
            field: "dependencies".into(),
            message: format!("not a valid package.json: {e}"),
            line: u32::try_from(e.line()).ok(),
            column: u32::try_from(e.column()).ok(),
        }])
    })?;
    let Some(obj) = doc.as_object() else {
        return Err(ValidationErrors::single("dependencies", "a package.json must be a JSON object"));
    };
    let mut npm = BTreeMap::new();
    match obj.get("dependencies") {
        None | Some(serde_json::Value::Null) => {}
        Some(serde_json::Value::Object(deps)) => {
            for (name, range) in deps {
                if !valid_npm_name(name) {
                    return Err(ValidationErrors::single("dependencies", format!("`{name}` is not a valid npm package name")));
                }
                let Some(range) = range.as_str() else {
                    return Err(ValidationErrors::single("dependencies", format!("`{name}`: the version must be a string")));
                };
                let range = range.trim();
                // A semver range only: `file:`, `git+…`, URLs, `user/repo` and `npm:` aliases
                // all need `:` or `/`, and would fetch from somewhere other than the registry.
                let semver = range.chars().all(|c| c.is_ascii_alphanumeric() || " .-+~^<>=|*".contains(c));
                if !semver || range.len() > 128 {
                    return Err(ValidationErrors::single(
                        "dependencies",
                        format!("`{name}`: `{range}` is not a version range; only registry packages are accepted (no file:, git, URL or alias specs)"),
                    ));
                }
                npm.insert(name.clone(), if range.is_empty() { "*".to_owned() } else { range.to_owned() });
            }
        }
        Some(_) => return Err(ValidationErrors::single("dependencies", "`dependencies` must be an object of name → version range")),
    }
    let packages = npm.iter().map(|(n, r)| format!("{n}@{r}")).collect();
    Ok(Dependencies { language: Language::Javascript, packages, npm })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn py(text: &str) -> Result<Option<Dependencies>, ValidationErrors> {
        Dependencies::parse(Language::Python, text)
    }

    fn js(text: &str) -> Result<Option<Dependencies>, ValidationErrors> {
        Dependencies::parse(Language::Javascript, text)
    }

    #[test]
    fn requirements_are_normalized_so_equal_files_share_a_hash() {
        let a = py("PyYAML == 6.0.2\n# a comment\n\nhumanize  # dates\n").expect("ok").expect("some");
        let b = py("humanize\npyyaml==6.0.2").expect("ok").expect("some");
        assert_eq!(a.packages, vec!["humanize", "pyyaml==6.0.2"]);
        assert_eq!(a.hash(), b.hash());
        let c = py("numpy[extra_b, Extra.A]>=1.26,<3 ; python_version >= '3.8'").expect("ok").expect("some");
        assert_eq!(c.packages, vec!["numpy[extra-a,extra-b]>=1.26,<3 ; python_version >= '3.8'"]);
        assert_ne!(a.hash(), c.hash());
    }

    #[test]
    fn requirements_refuse_options_urls_and_paths() {
        for bad in [
            "--index-url http://evil/simple\nrequests",
            "-r other.txt",
            "-e git+https://x/y.git#egg=y",
            "pkg @ https://evil/pkg.whl",
            "./local-dir",
            "/etc/passwd",
            "requests==",
            "requests~~1",
            "requests[",
            "a \\",
            "requests; $(rm -rf /)",
        ] {
            let e = py(bad).expect_err(bad);
            assert_eq!(e.0[0].field, "dependencies", "{bad}");
            assert_eq!(e.0[0].line, Some(1), "{bad}: {e}");
        }
        assert!(py("# only a comment\n\n").expect("ok").is_none(), "no package: no build");
        assert!(py(&"a\n".repeat(MAX_DEPENDENCIES_BYTES)).is_err(), "size limit");
    }

    #[test]
    fn package_json_keeps_only_registry_dependencies() {
        let d = js(r#"{"name":"x","scripts":{"postinstall":"curl evil"},"dependencies":{"lodash":"^4.17.21","dayjs":"1.11.x"},"devDependencies":{"jest":"*"}}"#)
            .expect("ok")
            .expect("some");
        assert_eq!(d.packages, vec!["dayjs@1.11.x", "lodash@^4.17.21"]);
        let pj = d.package_json();
        assert!(!pj.contains("postinstall") && !pj.contains("jest"), "{pj}");
        let again = js(r#"{"dependencies":{"dayjs":"1.11.x","lodash":"^4.17.21"}}"#).expect("ok").expect("some");
        assert_eq!(d.hash(), again.hash());
        assert!(js(r#"{"dependencies":{}}"#).expect("ok").is_none());
        assert!(js(r#"{"name":"no deps"}"#).expect("ok").is_none());
    }

    #[test]
    fn package_json_refuses_other_sources_and_broken_json() {
        for bad in [
            r#"{"dependencies":{"x":"file:../../etc"}}"#,
            r#"{"dependencies":{"x":"git+https://github.com/a/b"}}"#,
            r#"{"dependencies":{"x":"https://evil/x.tgz"}}"#,
            r#"{"dependencies":{"x":"user/repo"}}"#,
            r#"{"dependencies":{"x":"npm:lodash@4"}}"#,
            r#"{"dependencies":{"Bad Name":"1"}}"#,
            r#"{"dependencies":{"x":1}}"#,
            r#"{"dependencies":["lodash"]}"#,
            r#"["lodash"]"#,
        ] {
            assert!(js(bad).is_err(), "{bad}");
        }
        let e = js("{\n  \"dependencies\": {,}\n}").expect_err("broken");
        assert_eq!(e.0[0].line, Some(2), "{e}");
        assert!(e.0[0].message.contains("not a valid package.json"), "{e}");
        assert!(js(r#"{"dependencies":{"@types/node":"^20"}}"#).expect("ok").is_some());
    }
}
