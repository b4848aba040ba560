//! The rules a function must satisfy. Every failure names its field, so the API can
//! answer 422 with the reason and the UI can show it next to the field.

use serde::{Deserialize, Serialize};

use crate::Function;

/// Bounds and defaults that apply to every function.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Limits {
    pub max_code_bytes: usize,
    pub min_timeout_ms: u32,
    pub max_timeout_ms: u32,
    pub default_timeout_ms: u32,
    pub min_memory_mb: u32,
    pub max_memory_mb: u32,
    pub default_memory_mb: u32,
    pub max_concurrency: u32,
    pub default_concurrency: u32,
    pub max_env_vars: usize,
    pub max_description_chars: usize,
    /// Largest event a function may be invoked with.
    pub max_input_bytes: usize,
    /// Largest serialized return value; larger ones fail with `OutputTooLarge`.
    pub max_output_bytes: usize,
    /// Logs kept per execution; the rest is cut with a marker.
    pub max_log_bytes: usize,
    /// How much of the input and output is kept in the execution record.
    pub max_recorded_bytes: usize,
    /// An error's type, message and stack are cut to these in the record and the answer
    /// (a function chooses them, and an uncapped one was 7.8 MB).
    pub max_error_type_bytes: usize,
    pub max_error_message_bytes: usize,
    pub max_error_stack_bytes: usize,
    /// Deepest nesting of arrays and objects accepted in any JSON body (the invoke event
    /// included). Deeper bodies are refused before they are parsed: serde_json and the
    /// bootstraps' parsers recurse, so depth is what a hostile body would use to hurt them.
    pub max_json_depth: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_code_bytes: 256 * 1024,
            min_timeout_ms: 100,
            max_timeout_ms: 300_000,
            default_timeout_ms: 5_000,
            min_memory_mb: 32,
            max_memory_mb: 2048,
            default_memory_mb: 128,
            max_concurrency: 64,
            default_concurrency: 4,
            max_env_vars: 64,
            max_description_chars: 1024,
            max_input_bytes: 1024 * 1024,
            max_output_bytes: 6 * 1024 * 1024,
            max_log_bytes: 256 * 1024,
            max_recorded_bytes: 64 * 1024,
            max_error_type_bytes: 256,
            max_error_message_bytes: 16 * 1024,
            max_error_stack_bytes: 64 * 1024,
            max_json_depth: MAX_JSON_DEPTH,
        }
    }
}

/// The default of [`Limits::max_json_depth`].
pub const MAX_JSON_DEPTH: usize = 64;

/// True when `json` nests arrays/objects deeper than `max`. A single pass over the bytes
/// that skips strings (and escapes inside them) and allocates nothing, so it can run on every
/// body before parsing. It does not validate: malformed JSON is left to the parser.
pub fn json_too_deep(json: &[u8], max: usize) -> bool {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &b in json {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

/// One broken rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FieldError {
    pub field: String,
    pub message: String,
    /// For code errors: where in the code (1-based), so an editor can point at it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub column: Option<u32>,
}

/// Every broken rule of one request, so a user can fix them all at once.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{}", summary(.0))]
pub struct ValidationErrors(pub Vec<FieldError>);

fn summary(errors: &[FieldError]) -> String {
    errors.iter().map(|e| format!("{}: {}", e.field, e.message)).collect::<Vec<_>>().join("; ")
}

impl ValidationErrors {
    pub fn single(field: &str, message: impl Into<String>) -> Self {
        ValidationErrors(vec![FieldError { field: field.into(), message: message.into(), line: None, column: None }])
    }

    fn push(&mut self, field: &str, message: impl Into<String>) {
        self.0.push(FieldError { field: field.into(), message: message.into(), line: None, column: None });
    }

    fn into_result(self) -> Result<(), ValidationErrors> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(self)
        }
    }
}

/// Names are DNS-label-like so they fit in URLs, container labels and metric labels.
pub fn validate_name(name: &str) -> Result<(), ValidationErrors> {
    let mut errs = ValidationErrors::default();
    check_name(name, &mut errs);
    errs.into_result()
}

fn check_name(name: &str, errs: &mut ValidationErrors) {
    if name.is_empty() || name.len() > 63 {
        errs.push("name", "must be 1 to 63 characters long");
    } else if !name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') {
        errs.push("name", "may contain only lowercase letters, digits and '-'");
    } else if name.starts_with('-') || name.ends_with('-') {
        errs.push("name", "must start and end with a letter or digit");
    }
}

/// Checks a complete function (after defaults and patches were applied).
pub fn validate_function(f: &Function, limits: &Limits) -> Result<(), ValidationErrors> {
    let mut errs = ValidationErrors::default();
    check_name(&f.name, &mut errs);
    if f.code.trim().is_empty() {
        errs.push("code", "must not be empty");
    } else if f.code.len() > limits.max_code_bytes {
        errs.push("code", format!("must be at most {} KiB (is {} bytes)", limits.max_code_bytes / 1024, f.code.len()));
    }
    if f.code.contains('\0') {
        errs.push("code", "must not contain NUL characters");
    }
    if !(limits.min_timeout_ms..=limits.max_timeout_ms).contains(&f.timeout_ms) {
        errs.push(
            "timeout_ms",
            format!("must be between {} and {} (got {})", limits.min_timeout_ms, limits.max_timeout_ms, f.timeout_ms),
        );
    }
    if !(limits.min_memory_mb..=limits.max_memory_mb).contains(&f.memory_mb) {
        errs.push(
            "memory_mb",
            format!("must be between {} and {} (got {})", limits.min_memory_mb, limits.max_memory_mb, f.memory_mb),
        );
    }
    if f.concurrency == 0 || f.concurrency > limits.max_concurrency {
        errs.push("concurrency", format!("must be between 1 and {} (got {})", limits.max_concurrency, f.concurrency));
    }
    if f.max_retries > crate::function::MAX_RETRIES {
        errs.push("max_retries", format!("must be between 0 and {} (got {})", crate::function::MAX_RETRIES, f.max_retries));
    }
    if f.description.chars().count() > limits.max_description_chars {
        errs.push("description", format!("must be at most {} characters", limits.max_description_chars));
    }
    if let Some(deps) = &f.dependencies {
        if let Err(e) = crate::Dependencies::parse(f.language, deps) {
            errs.0.extend(e.0);
        }
    }
    if f.env.len() > limits.max_env_vars {
        errs.push("env", format!("at most {} variables", limits.max_env_vars));
    }
    for (k, v) in &f.env {
        let valid_key = !k.is_empty()
            && k.len() <= 128
            && !k.as_bytes()[0].is_ascii_digit()
            && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !valid_key {
            errs.push("env", format!("`{k}` is not a valid variable name (letters, digits, '_', not starting with a digit)"));
        }
        if v.len() > 4096 || v.contains('\0') {
            errs.push("env", format!("value of `{k}` must be at most 4096 bytes without NUL"));
        }
    }
    if let Some(sample) = &f.sample_input {
        if serde_json::to_vec(sample).map(|v| v.len()).unwrap_or(usize::MAX) > limits.max_input_bytes {
            errs.push("sample_input", "is larger than the input limit");
        }
    }
    errs.into_result()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{FunctionSpec, Language, Runtime};

    fn function() -> Function {
        Function::from_spec(
            FunctionSpec {
                name: "ok-name-1".into(),
                language: Language::Python,
                runtime: Runtime::Docker,
                code: "def handler(e): pass".into(),
                description: String::new(),
                timeout_ms: None,
                memory_mb: None,
                concurrency: None,
                max_retries: None,
                env: Default::default(),
                sample_input: None,
                dependencies: None,
                http: Default::default(),
            },
            &Limits::default(),
            chrono::Utc::now(),
        )
    }

    #[test]
    fn accepts_defaults() {
        assert_eq!(validate_function(&function(), &Limits::default()), Ok(()));
    }

    #[test]
    fn names_every_broken_field() {
        let mut f = function();
        f.name = "Bad_Name".into();
        f.timeout_ms = 50;
        f.memory_mb = 4096;
        f.env.insert("1X".into(), "v".into());
        let errs = validate_function(&f, &Limits::default()).expect_err("invalid");
        let fields: Vec<_> = errs.0.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["name", "timeout_ms", "memory_mb", "env"]);
        assert!(errs.0[1].message.contains("between 100 and 300000"));
    }

    #[test]
    fn name_rules() {
        assert!(validate_name("a").is_ok());
        assert!(validate_name(&"a".repeat(63)).is_ok());
        assert!(validate_name(&"a".repeat(64)).is_err());
        assert!(validate_name("-a").is_err());
        assert!(validate_name("").is_err());
        assert!(validate_name("a/b").is_err());
    }

    #[test]
    fn json_depth_scan() {
        let nested = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        assert!(!json_too_deep(nested(64).as_bytes(), 64));
        assert!(json_too_deep(nested(65).as_bytes(), 64));
        assert!(json_too_deep(nested(1000).as_bytes(), 64));
        // Brackets inside strings do not count, escaped quotes do not end a string.
        let s = format!(r#"{{"a": "{}\\\" {}", "b": [1, {{"c": []}}]}}"#, "[".repeat(100), "{".repeat(100));
        assert!(!json_too_deep(s.as_bytes(), 4), "{s}");
        assert!(json_too_deep(s.as_bytes(), 3), "{s}");
        assert!(json_too_deep(br#"{"a": {"b": {"c": {}}}}"#, 3));
        assert!(!json_too_deep(br#"{"a": {"b": {"c": 1}}}"#, 3));
        assert!(!json_too_deep(b"", 0));
        assert!(!json_too_deep(b"]]]]{}", 1));
    }

    #[test]
    fn code_size_limit() {
        let mut f = function();
        f.code = "x".repeat(256 * 1024 + 1);
        assert!(validate_function(&f, &Limits::default()).is_err());
    }
}
