//! The example functions in `examples/`, compiled into the binary and offered as templates.

use fnbox_core::Language;
use rust_embed::RustEmbed;
use serde::{Deserialize, Serialize};

#[derive(RustEmbed)]
#[folder = "../../examples/"]
#[include = "manifest.json"]
#[include = "*/handler.py"]
#[include = "*/handler.js"]
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
            let ext = match lang {
                Language::Python => "py",
                Language::Javascript => "js",
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
                });
            }
        }
    }
    out
}

pub fn find(slug: &str, language: Language) -> Option<Template> {
    all().into_iter().find(|t| t.slug == slug && t.language == language)
}
