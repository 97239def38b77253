//! The JSON Schemas of `schemas/`, compiled once and used to check request bodies.
//!
//! A violation is reported with the JSON Pointer (RFC 6901) of the offending value; for a missing
//! required property the pointer names the property that should be there.

use jsonschema::Validator;
use jsonschema::error::ValidationErrorKind;
use serde::Serialize;
use serde_json::Value;

pub const DATASET: &str = include_str!("../../schemas/dataset.schema.json");
pub const PROBLEM: &str = include_str!("../../schemas/problem.schema.json");
pub const IDENTITY: &str = include_str!("../../schemas/identity.schema.json");
pub const MEMBER: &str = include_str!("../../schemas/member.schema.json");
pub const POLICY_INPUT: &str = include_str!("../../schemas/policy-input.schema.json");
pub const POLICY_DECISION: &str = include_str!("../../schemas/policy-decision.schema.json");
pub const VALIDATION: &str = include_str!("../../schemas/validation.schema.json");

/// Every schema shipped with the broker, by file name (as referenced from the OpenAPI document).
pub const ALL: &[(&str, &str)] = &[
    ("dataset.schema.json", DATASET),
    ("problem.schema.json", PROBLEM),
    ("identity.schema.json", IDENTITY),
    ("member.schema.json", MEMBER),
    ("policy-input.schema.json", POLICY_INPUT),
    ("policy-decision.schema.json", POLICY_DECISION),
    ("validation.schema.json", VALIDATION),
];

/// One thing wrong with a request body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Violation {
    /// JSON Pointer to the value (or the missing property).
    pub pointer: String,
    pub message: String,
}

#[derive(Debug, thiserror::Error)]
#[error("schema '{name}' does not compile: {reason}")]
pub struct SchemaError {
    name: &'static str,
    reason: String,
}

/// The compiled validators.
pub struct Schemas {
    dataset: Validator,
}

impl std::fmt::Debug for Schemas {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Schemas")
    }
}

impl Schemas {
    pub fn compile() -> Result<Self, SchemaError> {
        Ok(Self {
            dataset: compile("dataset.schema.json", DATASET)?,
        })
    }

    /// Checks a dataset registration body.
    pub fn check_dataset(&self, instance: &Value) -> Vec<Violation> {
        violations(&self.dataset, instance)
    }
}

/// Compiles one schema with every shipped schema registered under its `$id`, so references
/// between them resolve offline.
pub fn compile(name: &'static str, text: &str) -> Result<Validator, SchemaError> {
    let err = |reason: String| SchemaError { name, reason };
    let schema: Value = serde_json::from_str(text).map_err(|e| err(e.to_string()))?;
    let mut options = jsonschema::options().should_validate_formats(true);
    for (other, other_text) in ALL {
        let value: Value = serde_json::from_str(other_text).map_err(|e| err(format!("{other}: {e}")))?;
        let id = value.get("$id").and_then(Value::as_str).unwrap_or_default().to_owned();
        let resource = jsonschema::Resource::from_contents(value).map_err(|e| err(format!("{other}: {e}")))?;
        options = options.with_resource(id, resource);
    }
    options.build(&schema).map_err(|e| err(e.to_string()))
}

fn violations(validator: &Validator, instance: &Value) -> Vec<Violation> {
    let mut out: Vec<Violation> = validator
        .iter_errors(instance)
        .map(|e| {
            let mut pointer = e.instance_path.to_string();
            if let ValidationErrorKind::Required {
                property: Value::String(name),
            } = &e.kind
            {
                pointer = format!("{pointer}/{}", escape_pointer(name));
            }
            Violation {
                pointer,
                message: e.to_string(),
            }
        })
        .collect();
    out.sort_by(|a, b| a.pointer.cmp(&b.pointer));
    out.dedup();
    out
}

fn escape_pointer(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shipped_schema_compiles() {
        for (name, text) in ALL {
            if let Err(e) = compile(name, text) {
                panic!("{e}");
            }
        }
    }

    #[test]
    fn missing_property_is_named_by_pointer() {
        let s = Schemas::compile().expect("compile");
        let v = s.check_dataset(&serde_json::json!({"title": {"de": "x"}}));
        assert!(v.iter().any(|v| v.pointer == "/description"), "{v:?}");
        assert!(v.iter().any(|v| v.pointer == "/distributions"), "{v:?}");
    }
}
