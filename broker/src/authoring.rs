//! The policy workbench's guided editor: what a steward chose in a form, written as ODRL Turtle
//! in the broker's profile (`policies/README.md`).
//!
//! Why generate text and not IR: what the steward sees, edits, submits and the board approves is
//! the Turtle; the generated text goes through the same compiler and checks as a hand-written
//! policy, so the editor cannot produce anything a steward could not have written, and a bug here
//! yields a refused draft, never an unchecked policy. Everything from the form is checked or
//! escaped before it is written: purposes must be DPV purposes, partners members of the space,
//! field names become Turtle strings.

use std::fmt::Write;

use crate::identity::Ags;
use crate::ns::{AGS_IRI_PREFIX, DPV};

/// A coarsening the `kdr:generalise` duty knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Granularity {
    Month,
    Year,
    AgeBand5,
    AgeBand10,
}

impl Granularity {
    pub const ALL: [Granularity; 4] = [Self::Month, Self::Year, Self::AgeBand5, Self::AgeBand10];

    pub fn term(self) -> &'static str {
        match self {
            Self::Month => "kdr:Month",
            Self::Year => "kdr:Year",
            Self::AgeBand5 => "kdr:AgeBand5",
            Self::AgeBand10 => "kdr:AgeBand10",
        }
    }

    /// The form's value.
    pub fn key(self) -> &'static str {
        match self {
            Self::Month => "month",
            Self::Year => "year",
            Self::AgeBand5 => "age5",
            Self::AgeBand10 => "age10",
        }
    }

    /// What a steward reads.
    pub fn label_de(self) -> &'static str {
        match self {
            Self::Month => "Datum auf den Monat",
            Self::Year => "Datum auf das Jahr",
            Self::AgeBand5 => "Alter in 5-Jahres-Gruppen",
            Self::AgeBand10 => "Alter in 10-Jahres-Gruppen",
        }
    }

    pub fn from_key(key: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|g| g.key() == key)
    }
}

/// What the steward chose.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Guided {
    /// DPV purpose IRIs the partners may use the data for (at least one).
    pub purposes: Vec<String>,
    /// The partner cities (at least one).
    pub partners: Vec<Ags>,
    /// Requests a partner may make a month, if limited.
    pub max_per_month: Option<u32>,
    /// The last day (`YYYY-MM-DD`) the permission holds, if limited.
    pub until: Option<String>,
    /// Fields that leave at all (`kdr:minimise`); none means every field.
    pub keep: Vec<String>,
    pub pseudonymise: Vec<String>,
    pub generalise: Vec<(String, Granularity)>,
    /// Group-by fields and the smallest group shown, if the data leaves only aggregated.
    pub aggregate: Option<(Vec<String>, u32)>,
    /// Days after which the partner deletes the data, if required.
    pub delete_after_days: Option<u32>,
    /// A German sentence on what the policy is for.
    pub description: String,
}

/// What is wrong with a form, in German (the steward reads it beside the form).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct FormError(pub String);

impl Guided {
    /// The policy as Turtle for `dataset_iri`, with the uid `policy_iri`.
    pub fn turtle(&self, dataset_iri: &str, policy_iri: &str, known_purpose: impl Fn(&str) -> bool) -> Result<String, FormError> {
        if self.purposes.is_empty() {
            return Err(FormError("Wählen Sie mindestens einen Zweck.".into()));
        }
        if self.partners.is_empty() {
            return Err(FormError("Wählen Sie mindestens eine Partnerkommune.".into()));
        }
        for p in &self.purposes {
            if !p.starts_with(DPV) || !known_purpose(p) {
                return Err(FormError(format!("„{p}“ ist kein Zweck aus DPV.")));
            }
        }
        if let Some(until) = &self.until
            && time::Date::parse(until, time::macros::format_description!("[year]-[month]-[day]")).is_err()
        {
            return Err(FormError(format!("„{until}“ ist kein Datum (JJJJ-MM-TT).")));
        }
        let mut t = String::new();
        t.push_str("@prefix odrl: <http://www.w3.org/ns/odrl/2/> .\n@prefix dpv: <https://w3id.org/dpv#> .\n");
        t.push_str("@prefix dct: <http://purl.org/dc/terms/> .\n@prefix xsd: <http://www.w3.org/2001/XMLSchema#> .\n");
        t.push_str("@prefix kdr: <https://w3id.org/kdr/odrl#> .\n\n");
        let _ = writeln!(t, "<{policy_iri}> a odrl:Set ;\n    odrl:uid <{policy_iri}> ;");
        if !self.description.trim().is_empty() {
            let _ = writeln!(t, "    dct:description {}@de ;", string(self.description.trim()));
        }
        let rules: Vec<String> = self.partners.iter().map(|a| format!("<{policy_iri}#{}>", a.as_str())).collect();
        let _ = writeln!(t, "    odrl:permission {} .\n", rules.join(", "));
        for (partner, rule) in self.partners.iter().zip(&rules) {
            let _ = writeln!(
                t,
                "{rule} a odrl:Permission ;\n    odrl:assignee <{AGS_IRI_PREFIX}{}> ;\n    odrl:target <{dataset_iri}> ;\n    odrl:action odrl:use ;",
                partner.as_str()
            );
            let _ = write!(t, "    odrl:constraint {}", self.constraints().join(" , "));
            let duties = self.duties()?;
            if duties.is_empty() {
                t.push_str(" .\n\n");
            } else {
                let _ = write!(t, " ;\n    odrl:duty {} .\n\n", duties.join(" , "));
            }
        }
        Ok(t)
    }

    fn constraints(&self) -> Vec<String> {
        let purposes: Vec<String> = self.purposes.iter().map(|p| format!("dpv:{}", p.trim_start_matches(DPV))).collect();
        let operator = if purposes.len() == 1 { "odrl:isA" } else { "odrl:isAnyOf" };
        let mut out = vec![format!(
            "[\n        odrl:leftOperand odrl:purpose ;\n        odrl:operator {operator} ;\n        odrl:rightOperand {}\n    ]",
            purposes.join(", ")
        )];
        if let Some(n) = self.max_per_month {
            out.push(format!(
                "[\n        odrl:leftOperand odrl:count ;\n        odrl:operator odrl:lt ;\n        odrl:rightOperand \"{n}\"^^xsd:integer\n    ]"
            ));
        }
        if let Some(until) = &self.until {
            out.push(format!(
                "[\n        odrl:leftOperand odrl:dateTime ;\n        odrl:operator odrl:lteq ;\n        odrl:rightOperand \"{until}T23:59:59+01:00\"^^xsd:dateTime\n    ]"
            ));
        }
        out
    }

    fn duties(&self) -> Result<Vec<String>, FormError> {
        let mut out = Vec::new();
        if !self.keep.is_empty() {
            out.push(format!(
                "[\n        odrl:action kdr:minimise ;\n        kdr:field {}\n    ]",
                strings(&self.keep)?
            ));
        }
        if !self.pseudonymise.is_empty() {
            out.push(format!(
                "[\n        odrl:action kdr:pseudonymise ;\n        kdr:field {}\n    ]",
                strings(&self.pseudonymise)?
            ));
        }
        for (field, g) in &self.generalise {
            out.push(format!(
                "[\n        odrl:action kdr:generalise ;\n        kdr:field {} ;\n        kdr:granularity {}\n    ]",
                strings(std::slice::from_ref(field))?,
                g.term()
            ));
        }
        if let Some((by, min)) = &self.aggregate {
            out.push(format!(
                "[\n        odrl:action odrl:aggregate ;\n        kdr:groupBy {} ;\n        kdr:minGroupSize {min}\n    ]",
                strings(by)?
            ));
        }
        if let Some(days) = self.delete_after_days {
            out.push(format!(
                "[\n        odrl:action odrl:delete ;\n        kdr:retention \"P{days}D\"^^xsd:duration\n    ]"
            ));
        }
        Ok(out)
    }
}

/// Field names as Turtle strings; a name must be a name (no empty one, none over 100 characters).
fn strings(fields: &[String]) -> Result<String, FormError> {
    let mut out = Vec::with_capacity(fields.len());
    for f in fields {
        let f = f.trim();
        if f.is_empty() || f.chars().count() > 100 {
            return Err(FormError("Ein Feldname ist leer oder länger als 100 Zeichen.".into()));
        }
        out.push(string(f));
    }
    Ok(out.join(", "))
}

/// A Turtle string literal (`"..."`) holding `s` exactly.
fn string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Splits a form's comma- or line-separated field list.
pub fn field_list(text: &str) -> Vec<String> {
    text.split([',', '\n'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ags(s: &str) -> Ags {
        s.parse().expect("ags")
    }

    #[test]
    fn a_guided_policy_compiles_and_says_what_was_chosen() {
        let vocab = policy_compiler::Vocabulary::standard().expect("vocab");
        let g = Guided {
            purposes: vec![format!("{DPV}ImprovePublicServices"), format!("{DPV}ResearchAndDevelopment")],
            partners: vec![ags("08135019")],
            max_per_month: Some(50),
            until: Some("2027-12-31".into()),
            keep: vec!["bezirk".into(), "termin".into(), "geburts\"datum\\".into()],
            pseudonymise: vec!["bezirk".into()],
            generalise: vec![("termin".into(), Granularity::Month)],
            aggregate: Some((vec!["bezirk".into()], 5)),
            delete_after_days: Some(90),
            description: "Nur für \"bessere\" Dienste.\nZeile zwei".into(),
        };
        let dataset = "https://broker.kdr.example/datasets/aalen-kita-plaetze";
        let text = g
            .turtle(dataset, "https://broker.kdr.example/policies/aalen-kita-plaetze/draft", |p| {
                vocab.is_known_purpose(p)
            })
            .expect("turtle");
        let compiled = crate::policy::compile_for_dataset(text.as_bytes(), policy_compiler::parse::Syntax::Turtle, dataset, &vocab)
            .unwrap_or_else(|e| panic!("{e}\n{text}"));
        let explained = policy_compiler::explain::explain(&compiled.policy, policy_compiler::explain::Language::De);
        assert!(explained.contains("08135019") || explained.contains("Heidenheim"), "{explained}");
        assert!(text.contains(r#""geburts\"datum\\""#), "field names are escaped: {text}");
    }

    #[test]
    fn a_form_that_says_too_little_or_smuggles_terms_is_refused() {
        let known = |p: &str| p.ends_with("#ImprovePublicServices");
        let mut g = Guided {
            purposes: vec![],
            partners: vec![ags("08135019")],
            ..Guided::default()
        };
        assert!(g.turtle("d", "p", known).is_err(), "no purpose");
        g.purposes = vec!["https://evil.example/Anything".into()];
        assert!(g.turtle("d", "p", known).is_err(), "not DPV");
        g.purposes = vec![format!("{DPV}ImprovePublicServices> . <x> <y> <z")];
        assert!(g.turtle("d", "p", known).is_err(), "no IRI injection");
        g.purposes = vec![format!("{DPV}ImprovePublicServices")];
        g.until = Some("31.12.2027".into());
        assert!(g.turtle("d", "p", known).is_err(), "a date is YYYY-MM-DD");
        g.until = None;
        g.keep = vec![" ".into()];
        assert!(g.turtle("d", "p", known).is_err(), "no empty field");
        assert_eq!(field_list("a, b\n c,,"), vec!["a", "b", "c"]);
    }
}
