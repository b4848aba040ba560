//! `PATCH /api/v1/functions/{name}`: a JSON merge patch (RFC 7396) of a function, turned into
//! the [`FunctionPatch`] that `PUT` takes, so both go through one update path (validation,
//! versions, builds, `If-Match`).

use serde_json::{Map, Value};

use crate::{Function, FunctionPatch, ValidationErrors};

/// RFC 7396 §2: `patch` applied to `target`. An object merges member by member (`null`
/// removes one), anything else replaces the target.
pub fn merge(target: &mut Value, patch: &Value) {
    let Value::Object(members) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Value::Object(t) = target {
        for (k, v) in members {
            if v.is_null() {
                t.remove(k);
            } else {
                merge(t.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
    }
}

/// Members a merge patch may remove with `null`: they are optional on a function.
const REMOVABLE: &[&str] = &["sample_input", "dependencies", "description", "http"];
/// Read-only members of the document (ignored, `null` or not; `name` is checked).
const READ_ONLY: &[&str] =
    &["id", "env_names", "build", "serving_version", "url", "version", "created_at", "updated_at", "last_execution"];

impl FunctionPatch {
    /// The update that merge patch `patch` makes to `current`, as the function's document
    /// (what `GET` returns) would change: `sample_input` merges into the current example,
    /// `env` is already a merge patch of the variables, `null` removes an optional member
    /// (`description` becomes empty, `http` off) and is refused for a required one. Read-only
    /// members are ignored, and `name` must be the function's, as for `PUT`. Each member is
    /// read on its own, so every wrong one is named.
    pub fn from_merge_patch(current: &Function, patch: Value) -> Result<FunctionPatch, ValidationErrors> {
        let Value::Object(members) = patch else {
            return Err(ValidationErrors::single("body", "a merge patch of a function is a JSON object"));
        };
        let mut errors = Vec::new();
        let mut out = FunctionPatch::default();
        for (key, mut value) in members {
            if value.is_null() && !READ_ONLY.contains(&key.as_str()) {
                match key.as_str() {
                    "description" => value = Value::String(String::new()),
                    "http" => value = Value::String(crate::HttpAccess::Off.as_str().to_owned()),
                    k if REMOVABLE.contains(&k) => {}
                    "env" => {
                        errors.push(("env".to_owned(), "`null` would remove every variable; remove each with `\"NAME\": null`".to_owned()));
                        continue;
                    }
                    _ => {
                        errors.push((key, "cannot be removed (`null`); give a value or leave it out".to_owned()));
                        continue;
                    }
                }
            } else if key == "sample_input" && value.is_object() {
                let mut target = current.sample_input.clone().unwrap_or(Value::Null);
                merge(&mut target, &value);
                value = target;
            }
            let one = Value::Object(Map::from_iter([(key.clone(), value)]));
            match serde_json::from_value::<FunctionPatch>(one) {
                Ok(p) => out.take_from(p),
                Err(e) => {
                    let msg = e.to_string();
                    errors.push((key, msg.split(" at line ").next().unwrap_or(&msg).to_owned()));
                }
            }
        }
        if let Some(msg) = out.renames(&current.name) {
            errors.push(("name".to_owned(), msg));
        }
        if errors.is_empty() {
            Ok(out)
        } else {
            Err(ValidationErrors(
                errors
                    .into_iter()
                    .map(|(field, message)| crate::FieldError { field, message, line: None, column: None })
                    .collect(),
            ))
        }
    }

    /// Moves the fields `other` sets into `self` (each patch of [`Self::from_merge_patch`] sets one).
    fn take_from(&mut self, other: FunctionPatch) {
        macro_rules! take {
            ($($f:ident),*) => { $( if other.$f.is_some() { self.$f = other.$f; } )* };
        }
        take!(
            name, description, language, runtime, code, timeout_ms, memory_mb, concurrency, max_retries, env, sample_input,
            dependencies, http
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn function() -> Function {
        let spec = serde_json::from_value(json!({
            "name": "hello", "language": "python", "code": "def handler(e): return 1",
            "sample_input": {"a": 1, "b": {"c": 2}}, "description": "d"
        }))
        .expect("spec");
        Function::from_spec(spec, &crate::Limits::default(), chrono::Utc::now())
    }

    #[test]
    fn rfc7396_examples() {
        // RFC 7396 appendix A, a few of them.
        for (target, patch, want) in [
            (json!({"a": "b"}), json!({"a": "c"}), json!({"a": "c"})),
            (json!({"a": "b"}), json!({"a": null}), json!({})),
            (json!({"a": [{"b": "c"}]}), json!({"a": [1]}), json!({"a": [1]})),
            (json!({"e": null}), json!({"a": 1}), json!({"e": null, "a": 1})),
            (json!([1, 2]), json!({"a": "b", "c": null}), json!({"a": "b"})),
            (json!({}), json!({"a": {"bb": {"ccc": null}}}), json!({"a": {"bb": {}}})),
        ] {
            let mut t = target;
            merge(&mut t, &patch);
            assert_eq!(t, want);
        }
    }

    #[test]
    fn merges_the_example_removes_optionals_and_refuses_required_nulls() {
        let f = function();
        let p = FunctionPatch::from_merge_patch(&f, json!({"sample_input": {"b": {"c": null, "d": 3}}, "timeout_ms": 900}))
            .expect("patch");
        assert_eq!(p.sample_input, Some(Some(json!({"a": 1, "b": {"d": 3}}))));
        assert_eq!(p.timeout_ms, Some(900));
        assert_eq!(p.code, None, "what the patch leaves out is kept");
        let p = FunctionPatch::from_merge_patch(&f, json!({"sample_input": null, "description": null, "env": {"K": null}}))
            .expect("patch");
        assert_eq!((p.sample_input, p.description.as_deref()), (Some(None), Some("")));
        assert_eq!(p.env, Some([("K".to_owned(), None)].into()));
        let e = FunctionPatch::from_merge_patch(&f, json!({"code": null, "env": null, "memory_mb": "big", "nope": 1, "name": "x"}))
            .expect_err("refused");
        let mut fields: Vec<_> = e.0.iter().map(|f| f.field.as_str()).collect();
        fields.sort();
        assert_eq!(fields, ["code", "env", "memory_mb", "name", "nope"], "{e}");
        assert!(FunctionPatch::from_merge_patch(&f, json!([1])).is_err());
    }

    #[test]
    fn the_document_get_returns_is_a_patch_that_changes_nothing() {
        let mut f = function();
        f.env.insert("SECRET".into(), "s".into());
        let doc = serde_json::to_value(crate::FunctionInfo::of(&f, true)).expect("json");
        let put: FunctionPatch = serde_json::from_value(doc.clone()).expect("PUT takes what GET returns");
        let mut after = f.clone();
        assert!(!after.apply(put, chrono::Utc::now()));
        assert_eq!(after, f, "nothing changed, env values kept");
        let patch = FunctionPatch::from_merge_patch(&f, doc).expect("PATCH too");
        let mut after = f.clone();
        assert!(!after.apply(patch, chrono::Utc::now()));
        assert_eq!(after, f);
    }
}
