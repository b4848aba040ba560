//! The example functions in `examples/`, compiled into the binary and offered as templates.

use fnbox_core::Language;
use rust_embed::RustEmbed;
use serde::{Deserialize, Serialize};

#[derive(RustEmbed)]
#[folder = "../../examples/"]
#[include = "manifest.json"]
#[include = "*/handler.py"]
#[include = "*/handler.js"]
#[include = "*/requirements.txt"]
#[include = "*/package.json"]
struct Examples;

#[derive(Debug, Clone, Deserialize)]
struct ManifestEntry {
    slug: String,
    title: String,
    description: String,
    sample_input: serde_json::Value,
    #[serde(default)]
    expected_output: Option<serde_json::Value>,
    languages: Vec<Language>,
}

/// One example in one language, ready to be created as a function.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct Template {
    pub slug: String,
    pub title: String,
    pub description: String,
    pub language: Language,
    pub code: String,
    pub sample_input: serde_json::Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected_output: Option<serde_json::Value>,
    /// The example's requirements.txt (Python) or package.json (JavaScript), as text, when it
    /// uses packages: sent as the function's `dependencies`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dependencies: Option<String>,
}

fn file(path: &str) -> Option<String> {
    Examples::get(path).and_then(|f| String::from_utf8(f.data.into_owned()).ok())
}

/// Every template, in the manifest's order, Python before JavaScript.
pub fn all() -> Vec<Template> {
    let Some(manifest) = file("manifest.json") else { return Vec::new() };
    let entries: Vec<ManifestEntry> = match serde_json::from_str(&manifest) {
        Ok(e) => e,
        Err(e) => {
            tracing::error!(error = %e, "examples/manifest.json is malformed");
            return Vec::new();
        }
    };
    let mut out = Vec::new();
    for entry in entries {
        for lang in &entry.languages {
            let (ext, deps_file) = match lang {
                Language::Python => ("py", "requirements.txt"),
                Language::Javascript => ("js", "package.json"),
            };
            if let Some(code) = file(&format!("{}/handler.{ext}", entry.slug)) {
                out.push(Template {
                    slug: entry.slug.clone(),
                    title: entry.title.clone(),
                    description: entry.description.clone(),
                    language: *lang,
                    code,
                    sample_input: entry.sample_input.clone(),
                    expected_output: entry.expected_output.clone(),
                    dependencies: file(&format!("{}/{deps_file}", entry.slug)),
                });
            }
        }
    }
    out
}

pub fn find(slug: &str, language: Language) -> Option<Template> {
    all().into_iter().find(|t| t.slug == slug && t.language == language)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn examples_with_packages_carry_their_dependencies_and_they_parse() {
        let all = all();
        let yaml = find("yaml", Language::Python).expect("yaml example");
        assert!(yaml.dependencies.as_deref().unwrap_or("").contains("pyyaml==6.0.2"), "{yaml:?}");
        let timeline = find("timeline", Language::Javascript).expect("timeline example");
        assert!(timeline.dependencies.as_deref().unwrap_or("").contains("\"dayjs\""), "{timeline:?}");
        assert!(find("hello", Language::Python).expect("hello").dependencies.is_none());
        for t in all.iter().filter(|t| t.dependencies.is_some()) {
            let deps = fnbox_core::Dependencies::parse(t.language, t.dependencies.as_deref().unwrap_or(""))
                .unwrap_or_else(|e| panic!("{}/{}: {e:?}", t.slug, t.language.as_str()));
            assert!(deps.is_some(), "{} names packages", t.slug);
        }
    }
}
