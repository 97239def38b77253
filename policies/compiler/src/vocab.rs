//! The vocabularies resolved at compile time: ODRL's action hierarchy (`odrl:includedIn`) and
//! the DPV purpose taxonomy (`skos:broader`). Both ship in `policies/vocab/`.

use std::collections::{BTreeMap, BTreeSet};

use oxrdf::{NamedOrBlankNode, Term};
use oxttl::TurtleParser;

pub const ODRL: &str = "http://www.w3.org/ns/odrl/2/";
pub const DPV: &str = "https://w3id.org/dpv#";
const SKOS_BROADER: &str = "http://www.w3.org/2004/02/skos/core#broader";
/// ODRL 2.2 maps its deprecated actions to their replacements with `skos:exactMatch`
/// (`odrl:write` -> `odrl:modify`); the compiler follows that link like `odrl:includedIn`.
const SKOS_EXACT_MATCH: &str = "http://www.w3.org/2004/02/skos/core#exactMatch";

pub const ODRL22_TTL: &str = include_str!("../../vocab/ODRL22.ttl");
pub const DPV_PURPOSES_TTL: &str = include_str!("../../vocab/dpv-2.2-purposes.ttl");

/// Parent links of actions and purposes, closed transitively on demand.
#[derive(Debug, Clone, Default)]
pub struct Vocabulary {
    action_parents: BTreeMap<String, BTreeSet<String>>,
    purpose_parents: BTreeMap<String, BTreeSet<String>>,
}

#[derive(Debug, thiserror::Error)]
#[error("vocabulary '{name}' does not parse: {reason}")]
pub struct VocabError {
    name: &'static str,
    reason: String,
}

impl Vocabulary {
    /// ODRL 2.2 and DPV 2.2 purposes as shipped.
    pub fn standard() -> Result<Self, VocabError> {
        Ok(Self {
            action_parents: links("ODRL22.ttl", ODRL22_TTL, &[&format!("{ODRL}includedIn"), SKOS_EXACT_MATCH])?,
            purpose_parents: links("dpv-2.2-purposes.ttl", DPV_PURPOSES_TTL, &[SKOS_BROADER])?,
        })
    }

    /// True when `action` is `ancestor` or included in it through `odrl:includedIn` steps.
    pub fn action_within(&self, action: &str, ancestor: &str) -> bool {
        reaches(&self.action_parents, action, ancestor)
    }

    /// True when `purpose` is `ancestor` or narrower than it through `skos:broader` steps.
    pub fn purpose_within(&self, purpose: &str, ancestor: &str) -> bool {
        reaches(&self.purpose_parents, purpose, ancestor)
    }

    /// Every known action that is `action` or included in it (what a rule on `action` covers).
    pub fn actions_within(&self, action: &str) -> Vec<String> {
        within(&self.action_parents, action)
    }

    /// Every known purpose that is `purpose` or narrower (what a constraint `isA purpose` admits).
    pub fn purposes_within(&self, purpose: &str) -> Vec<String> {
        within(&self.purpose_parents, purpose)
    }

    /// Every known action IRI.
    pub fn actions(&self) -> BTreeSet<&str> {
        known(&self.action_parents)
    }

    /// Every known purpose IRI.
    pub fn purposes(&self) -> BTreeSet<&str> {
        known(&self.purpose_parents)
    }

    pub fn is_known_action(&self, iri: &str) -> bool {
        self.action_parents.contains_key(iri) || self.action_parents.values().any(|p| p.contains(iri))
    }

    pub fn is_known_purpose(&self, iri: &str) -> bool {
        self.purpose_parents.contains_key(iri) || self.purpose_parents.values().any(|p| p.contains(iri))
    }
}

fn known(parents: &BTreeMap<String, BTreeSet<String>>) -> BTreeSet<&str> {
    parents
        .iter()
        .flat_map(|(k, ps)| std::iter::once(k.as_str()).chain(ps.iter().map(String::as_str)))
        .collect()
}

fn links(name: &'static str, ttl: &str, predicates: &[&str]) -> Result<BTreeMap<String, BTreeSet<String>>, VocabError> {
    let mut map: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for triple in TurtleParser::new().for_slice(ttl.as_bytes()) {
        let t = triple.map_err(|e| VocabError {
            name,
            reason: e.to_string(),
        })?;
        if !predicates.contains(&t.predicate.as_str()) {
            continue;
        }
        if let (NamedOrBlankNode::NamedNode(s), Term::NamedNode(o)) = (t.subject, t.object) {
            map.entry(s.into_string()).or_default().insert(o.into_string());
        }
    }
    Ok(map)
}

fn within(parents: &BTreeMap<String, BTreeSet<String>>, ancestor: &str) -> Vec<String> {
    let mut all: BTreeSet<&str> = parents.keys().map(String::as_str).collect();
    all.extend(parents.values().flatten().map(String::as_str));
    all.insert(ancestor);
    all.into_iter()
        .filter(|n| reaches(parents, n, ancestor))
        .map(str::to_owned)
        .collect()
}

fn reaches(parents: &BTreeMap<String, BTreeSet<String>>, from: &str, to: &str) -> bool {
    let mut seen = BTreeSet::new();
    let mut stack = vec![from.to_owned()];
    while let Some(node) = stack.pop() {
        if node == to {
            return true;
        }
        if seen.insert(node.clone()) {
            stack.extend(parents.get(&node).into_iter().flatten().cloned());
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_is_included_in_use_and_dpv_purposes_nest() {
        let v = Vocabulary::standard().expect("vocab");
        assert!(v.action_within(&format!("{ODRL}read"), &format!("{ODRL}use")));
        assert!(!v.action_within(&format!("{ODRL}use"), &format!("{ODRL}read")));
        assert!(
            v.action_within(&format!("{ODRL}write"), &format!("{ODRL}use")),
            "deprecated write = modify, within use"
        );
        assert!(v.purpose_within(&format!("{DPV}ImprovePublicServices"), &format!("{DPV}PublicBenefit")));
        assert!(!v.purpose_within(&format!("{DPV}ImprovePublicServices"), &format!("{DPV}CommercialPurpose")));
        assert!(v.is_known_purpose(&format!("{DPV}CommercialPurpose")));
    }
}
