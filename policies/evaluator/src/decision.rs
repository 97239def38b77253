//! The decision document a policy's entrypoint returns (`schemas/policy-decision.schema.json`),
//! parsed strictly: a module that answers anything else has not made a decision.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::EvalError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    Permit,
    Deny,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecisionDocument {
    pub decision: Decision,
    /// Every rule's uid and whether it is active.
    pub rules: BTreeMap<String, bool>,
    /// Every constraint's uid (nested ones included) and whether it is satisfied.
    pub constraints: BTreeMap<String, bool>,
    /// What the broker must do to the data, and the consumer must honour (on permit).
    #[serde(default)]
    pub duties: Duties,
    /// Why the policy could not decide (set only on a fail-closed deny).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The decision's duties, kept as the JSON text the policy wrote: deciding does not need them
/// parsed (it is most of a permit's result), enforcing does ([`Duties::parse`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Duties(Box<RawValue>);

impl Duties {
    /// The duties as JSON values; an error if the policy wrote something that is not an array.
    pub fn parse(&self) -> Result<Vec<serde_json::Value>, serde_json::Error> {
        serde_json::from_str(self.0.get())
    }

    pub fn as_json(&self) -> &str {
        self.0.get()
    }
}

impl Default for Duties {
    fn default() -> Self {
        // "[]" is valid JSON; the fallback is unreachable and only avoids an unwrap.
        Self(RawValue::from_string("[]".into()).unwrap_or_else(|_| RawValue::NULL.to_owned()))
    }
}

impl PartialEq for Duties {
    fn eq(&self, other: &Self) -> bool {
        self.parse().ok() == other.parse().ok()
    }
}

/// One entry of an OPA result set.
#[derive(Debug, Deserialize)]
pub(crate) struct ResultItem {
    result: DecisionDocument,
}

impl DecisionDocument {
    /// The one decision of a result set (`[]` is undefined: no decision).
    pub(crate) fn from_results(mut items: Vec<ResultItem>) -> Result<Self, EvalError> {
        match items.len() {
            1 => Ok(items.remove(0).result),
            n => Err(EvalError::BadResult(format!("{n} results (undefined or ambiguous), expected 1"))),
        }
    }

    /// Reads an OPA result set, `[{"result": <document>}]`.
    pub fn from_result_set(raw: serde_json::Value) -> Result<Self, EvalError> {
        let serde_json::Value::Array(mut items) = raw else {
            return Err(EvalError::BadResult("the result set is not an array".into()));
        };
        if items.len() != 1 {
            return Err(EvalError::BadResult(format!(
                "{} results (undefined or ambiguous), expected 1",
                items.len()
            )));
        }
        let result = items
            .pop()
            .and_then(|mut i| i.get_mut("result").map(serde_json::Value::take))
            .ok_or_else(|| EvalError::BadResult("no \"result\" in the result set".into()))?;
        serde_json::from_value(result).map_err(|e| EvalError::BadResult(e.to_string()))
    }

    /// The deny a failed evaluation stands for.
    pub fn denied_by_error(e: &EvalError) -> Self {
        Self {
            decision: Decision::Deny,
            rules: BTreeMap::new(),
            constraints: BTreeMap::new(),
            duties: Duties::default(),
            error: Some(e.to_string()),
        }
    }

    pub fn permits(&self) -> bool {
        self.decision == Decision::Permit
    }

    /// The constraints that were not satisfied, by uid.
    pub fn failed_constraints(&self) -> impl Iterator<Item = &str> {
        self.constraints.iter().filter(|(_, ok)| !**ok).map(|(uid, _)| uid.as_str())
    }
}
