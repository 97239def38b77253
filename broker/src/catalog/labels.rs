//! German names for what people read: EU data themes (their official German labels, from the
//! Publications Office's vocabulary the shapes check against), DPV purposes (our German labels,
//! `policies/vocab/dpv-2.2-purposes-de.ttl`, with DPV's own hierarchy) and German month names.
//!
//! Why here: the vocabularies are RDF and only the catalog reads RDF (oxigraph's parsers); the
//! console and the public page get plain strings. Built once, on first use, from files compiled
//! into the binary: no lookup reaches the network or the store.

use std::collections::{BTreeMap, HashMap};
use std::sync::OnceLock;

use oxigraph::io::{RdfFormat, RdfParser};
use oxigraph::model::Term;

use crate::ns::{DPV, SKOS, THEME_PREFIX as THEME_BASE};

const DATA_THEMES: &[u8] = include_bytes!("../../../schemas/dcat-ap-de/vocab/eu-data-theme.rdf");
const DPV_PURPOSES: &[u8] = include_bytes!("../../../policies/vocab/dpv-2.2-purposes.ttl");
const DPV_PURPOSES_DE: &[u8] = include_bytes!("../../../policies/vocab/dpv-2.2-purposes-de.ttl");

/// German month names, January first.
pub const MONTHS_DE: [&str; 12] = [
    "Januar",
    "Februar",
    "März",
    "April",
    "Mai",
    "Juni",
    "Juli",
    "August",
    "September",
    "Oktober",
    "November",
    "Dezember",
];

/// One purpose of the DPV tree, for choosing in a form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PurposeNode {
    pub iri: String,
    pub label: String,
    /// Depth below `dpv:Purpose` (0 for its direct children).
    pub depth: usize,
}

/// The German labels, read once.
#[derive(Debug, Default)]
pub struct Labels {
    themes: HashMap<String, String>,
    purposes: HashMap<String, String>,
    /// The English labels (the console's English pages).
    themes_en: HashMap<String, String>,
    purposes_en: HashMap<String, String>,
    /// Narrower purposes of each purpose, by label.
    children: BTreeMap<String, Vec<String>>,
}

/// The labels compiled into the binary (parsed on first use).
pub fn labels() -> &'static Labels {
    static LABELS: OnceLock<Labels> = OnceLock::new();
    LABELS.get_or_init(Labels::read)
}

impl Labels {
    fn read() -> Self {
        let mut out = Labels::default();
        let pref = format!("{SKOS}prefLabel");
        let broader = format!("{SKOS}broader");
        for (bytes, format) in [
            (DATA_THEMES, RdfFormat::RdfXml),
            (DPV_PURPOSES_DE, RdfFormat::Turtle),
            (DPV_PURPOSES, RdfFormat::Turtle),
        ] {
            // The files are ours and tested (`labels_cover_every_theme_and_purpose`); a
            // statement that does not parse is skipped, never a panic at run time.
            for quad in RdfParser::from_format(format).for_slice(bytes).flatten() {
                let subject = quad.subject.to_string();
                let subject = subject.trim_start_matches('<').trim_end_matches('>');
                let predicate = quad.predicate.as_str();
                match (&quad.object, predicate) {
                    (Term::Literal(l), p) if p == pref && matches!(l.language(), Some("de" | "en")) => {
                        let (themes, purposes) = if l.language() == Some("de") {
                            (&mut out.themes, &mut out.purposes)
                        } else {
                            (&mut out.themes_en, &mut out.purposes_en)
                        };
                        if let Some(code) = subject.strip_prefix(THEME_BASE) {
                            themes.insert(code.to_owned(), l.value().to_owned());
                        } else if subject.starts_with(DPV) {
                            purposes.insert(subject.to_owned(), l.value().to_owned());
                        }
                    }
                    (Term::NamedNode(parent), p) if p == broader && subject.starts_with(DPV) => {
                        out.children.entry(parent.as_str().to_owned()).or_default().push(subject.to_owned());
                    }
                    _ => {}
                }
            }
        }
        out
    }

    /// The German name of an EU data theme code (`TRAN` → "Verkehr"), or the code.
    pub fn theme<'a>(&'a self, code: &'a str) -> &'a str {
        self.themes.get(code).map_or(code, String::as_str)
    }

    /// The name of an EU data theme code in `lang`, or the code.
    pub fn theme_in<'a>(&'a self, code: &'a str, lang: policy_compiler::explain::Language) -> &'a str {
        match lang {
            policy_compiler::explain::Language::De => self.theme(code),
            policy_compiler::explain::Language::En => self.themes_en.get(code).map_or(code, String::as_str),
        }
    }

    /// The name of a DPV purpose IRI in `lang`, or its local name.
    pub fn purpose_in<'a>(&'a self, iri: &'a str, lang: policy_compiler::explain::Language) -> &'a str {
        match lang {
            policy_compiler::explain::Language::De => self.purpose(iri),
            policy_compiler::explain::Language::En => self
                .purposes_en
                .get(iri)
                .map_or_else(|| iri.rsplit(['#', '/']).next().unwrap_or(iri), String::as_str),
        }
    }

    /// The German name of a DPV purpose IRI, or its local name.
    pub fn purpose<'a>(&'a self, iri: &'a str) -> &'a str {
        self.purposes
            .get(iri)
            .map_or_else(|| iri.rsplit(['#', '/']).next().unwrap_or(iri), String::as_str)
    }

    /// Every purpose under `dpv:Purpose`, depth first, siblings by German name.
    pub fn purpose_tree(&self) -> Vec<PurposeNode> {
        self.purpose_tree_in(policy_compiler::explain::Language::De)
    }

    /// The purpose tree with the names in `lang`, siblings by name.
    pub fn purpose_tree_in(&self, lang: policy_compiler::explain::Language) -> Vec<PurposeNode> {
        let mut out = Vec::new();
        let mut seen = std::collections::HashSet::new();
        self.walk(&format!("{DPV}Purpose"), 0, lang, &mut out, &mut seen);
        out
    }

    fn walk(
        &self,
        parent: &str,
        depth: usize,
        lang: policy_compiler::explain::Language,
        out: &mut Vec<PurposeNode>,
        seen: &mut std::collections::HashSet<String>,
    ) {
        let Some(children) = self.children.get(parent) else {
            return;
        };
        let mut sorted: Vec<&String> = children.iter().collect();
        sorted.sort_by_key(|c| self.purpose_in(c, lang).to_lowercase());
        for child in sorted {
            // DPV is a polyhierarchy: a purpose with two parents is listed under the first.
            if !seen.insert(child.clone()) {
                continue;
            }
            out.push(PurposeNode {
                iri: child.clone(),
                label: self.purpose_in(child, lang).to_owned(),
                depth,
            });
            self.walk(child, depth + 1, lang, out, seen);
        }
    }

    /// How many themes and purposes have German labels.
    pub fn counts(&self) -> (usize, usize) {
        (self.themes.len(), self.purposes.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_cover_every_theme_and_purpose() {
        let l = labels();
        let (themes, purposes) = l.counts();
        assert!(themes >= 13, "the 13 EU data themes have German labels: {themes}");
        assert_eq!(l.theme("TRAN"), "Verkehr");
        assert_eq!(l.theme("nope"), "nope");
        assert_eq!(l.purpose(&format!("{DPV}ResearchAndDevelopment")), "Forschung und Entwicklung");
        // Every purpose of the tree has a German label of its own, not the IRI's local name.
        let tree = l.purpose_tree();
        assert!(tree.len() >= 100, "the DPV purposes: {}", tree.len());
        assert!(purposes >= tree.len());
        for node in &tree {
            assert!(l.purposes.contains_key(&node.iri), "no German label for {}", node.iri);
        }
        let improve = tree
            .iter()
            .find(|n| n.iri.ends_with("#ImprovePublicServices"))
            .expect("ImprovePublicServices in the tree");
        assert!(improve.depth >= 1, "under ServiceProvision or similar");
    }
}
