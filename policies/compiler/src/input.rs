//! The policy input document: what the broker passes to a compiled policy for one request
//! (`schemas/policy-input.schema.json`). Time is milliseconds since the epoch, so policies
//! compare numbers and never parse or read a clock themselves.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::eval::{Request, World};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PolicyInput {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assignee: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purpose: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipient: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spatial: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub now_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<i64>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub part_of: BTreeMap<String, BTreeSet<String>>,
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub violated_duties: BTreeSet<String>,
}

/// Milliseconds since the epoch of an `xsd:dateTime`; a value without a time zone is taken as UTC.
pub fn datetime_ms(lexical: &str) -> Option<i64> {
    let with_zone = if has_zone(lexical) {
        lexical.to_owned()
    } else {
        format!("{lexical}Z")
    };
    let t = OffsetDateTime::parse(&with_zone, &Rfc3339).ok()?;
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()
}

fn has_zone(s: &str) -> bool {
    s.ends_with('Z') || s.rfind(['+', '-']).is_some_and(|i| i > 10 && s[i..].contains(':'))
}

impl PolicyInput {
    /// The request and world this input describes (for the reference evaluator).
    pub fn to_request_world(&self) -> (Request, World) {
        let now = self
            .now_ms
            .and_then(|ms| OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok())
            .and_then(|t| t.format(&Rfc3339).ok());
        let req = Request {
            assignee: self.assignee.clone(),
            action: self.action.clone(),
            target: self.target.clone(),
            purpose: self.purpose.clone(),
            recipient: self.recipient.clone(),
            spatial: self.spatial.clone(),
        };
        let world = World {
            now,
            part_of: self.part_of.clone(),
            violated_duties: self.violated_duties.clone(),
            count: self.count,
        };
        (req, world)
    }

    pub fn from_request(req: &Request, world: &World) -> Self {
        Self {
            assignee: req.assignee.clone(),
            action: req.action.clone(),
            target: req.target.clone(),
            purpose: req.purpose.clone(),
            recipient: req.recipient.clone(),
            spatial: req.spatial.clone(),
            now_ms: world.now.as_deref().and_then(datetime_ms),
            count: world.count,
            part_of: world.part_of.clone(),
            violated_duties: world.violated_duties.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datetimes_become_epoch_milliseconds() {
        assert_eq!(datetime_ms("1970-01-01T00:00:01.5Z"), Some(1500));
        assert_eq!(datetime_ms("1970-01-01T01:00:00+01:00"), Some(0));
        assert_eq!(datetime_ms("1970-01-01T00:00:02"), Some(2000));
        assert_eq!(datetime_ms("yesterday"), None);
    }
}
