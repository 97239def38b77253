//! A plain-language rendering of a policy, in German and English, for governance boards: what
//! is allowed, to whom, for which purposes, and what is never allowed.

use crate::ir::{Asset, Conflict, Constraint, Duty, Granularity, LeftOperand, Operand, Operator, Party, Policy, Rule, RuleKind};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Language {
    De,
    En,
}

impl std::str::FromStr for Language {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "de" => Ok(Language::De),
            "en" => Ok(Language::En),
            other => Err(format!("'{other}' is not a supported language (de, en)")),
        }
    }
}

/// The last path or fragment segment of an IRI: `https://w3id.org/dpv#ImprovePublicServices` -> `ImprovePublicServices`.
fn short(iri: &str) -> &str {
    iri.rsplit(['#', '/']).next().filter(|s| !s.is_empty()).unwrap_or(iri)
}

fn party(p: &Option<Party>, l: Language) -> String {
    match (p, l) {
        (None, Language::De) => "jede Partei".into(),
        (None, Language::En) => "any party".into(),
        (Some(Party::One(i)), _) => municipality(i, l),
        (Some(Party::Collection(c)), Language::De) => format!("jedes Mitglied der Gruppe {}", short(c)),
        (Some(Party::Collection(c)), Language::En) => format!("every member of the group {}", short(c)),
    }
}

fn municipality(iri: &str, l: Language) -> String {
    match iri.strip_prefix("http://dcat-ap.de/def/politicalGeocoding/municipalityKey/") {
        Some(ags) if l == Language::De => format!("die Gemeinde mit dem AGS {ags}"),
        Some(ags) => format!("the municipality with AGS {ags}"),
        None => short(iri).to_owned(),
    }
}

fn target(t: &Option<Asset>, l: Language) -> String {
    match (t, l) {
        (None, Language::De) => "alle Daten".into(),
        (None, Language::En) => "any data".into(),
        (Some(Asset::One(i)), Language::De) => format!("den Datensatz {}", short(i)),
        (Some(Asset::One(i)), Language::En) => format!("the dataset {}", short(i)),
        (Some(Asset::Collection(c)), Language::De) => format!("die Datensätze der Sammlung {}", short(c)),
        (Some(Asset::Collection(c)), Language::En) => format!("the datasets of the collection {}", short(c)),
    }
}

fn op_word(op: Operator, l: Language) -> &'static str {
    match (op, l) {
        (Operator::Eq, Language::De) => "gleich",
        (Operator::Eq, Language::En) => "equal to",
        (Operator::Neq, Language::De) => "ungleich",
        (Operator::Neq, Language::En) => "other than",
        (Operator::Lt, Language::De) => "kleiner als",
        (Operator::Lt, Language::En) => "less than",
        (Operator::Lteq, Language::De) => "höchstens",
        (Operator::Lteq, Language::En) => "at most",
        (Operator::Gt, Language::De) => "größer als",
        (Operator::Gt, Language::En) => "greater than",
        (Operator::Gteq, Language::De) => "mindestens",
        (Operator::Gteq, Language::En) => "at least",
        (Operator::IsA, Language::De) => "eine Form von",
        (Operator::IsA, Language::En) => "a kind of",
        (Operator::IsAnyOf, Language::De) => "eines von",
        (Operator::IsAnyOf, Language::En) => "any of",
        (Operator::IsNoneOf, Language::De) => "keines von",
        (Operator::IsNoneOf, Language::En) => "none of",
    }
}

fn operand(o: &Operand) -> String {
    match o {
        Operand::DateTime(d) => d.clone(),
        Operand::Integer(n) => n.to_string(),
        Operand::Iri(i) => short(i).to_owned(),
        Operand::Iris(is) => is.iter().map(|i| short(i)).collect::<Vec<_>>().join(", "),
    }
}

fn constraint(c: &Constraint, l: Language) -> String {
    let join = |ops: &[Constraint], word: &str| ops.iter().map(|o| constraint(o, l)).collect::<Vec<_>>().join(word);
    match (c, l) {
        (Constraint::And { operands, .. }, Language::De) => format!("({})", join(operands, " und ")),
        (Constraint::And { operands, .. }, Language::En) => format!("({})", join(operands, " and ")),
        (Constraint::Or { operands, .. }, Language::De) => format!("({})", join(operands, " oder ")),
        (Constraint::Or { operands, .. }, Language::En) => format!("({})", join(operands, " or ")),
        (Constraint::Xone { operands, .. }, Language::De) => format!("(genau eines von: {})", join(operands, "; ")),
        (Constraint::Xone { operands, .. }, Language::En) => format!("(exactly one of: {})", join(operands, "; ")),
        (Constraint::Atomic { left, operator, right, .. }, _) => {
            let subject = match (left, l) {
                (LeftOperand::Purpose, Language::De) => "der Zweck ist",
                (LeftOperand::Purpose, Language::En) => "the purpose is",
                (LeftOperand::DateTime, Language::De) => "der Zeitpunkt ist",
                (LeftOperand::DateTime, Language::En) => "the time is",
                (LeftOperand::Count, Language::De) => "die Zahl bisheriger Nutzungen ist",
                (LeftOperand::Count, Language::En) => "the number of earlier uses is",
                (LeftOperand::Recipient, Language::De) => "der Empfänger ist",
                (LeftOperand::Recipient, Language::En) => "the recipient is",
                (LeftOperand::Spatial, Language::De) => "der Ort ist",
                (LeftOperand::Spatial, Language::En) => "the place is",
            };
            format!("{subject} {} {}", op_word(*operator, l), operand(right))
        }
    }
}

fn rule(r: &Rule, l: Language) -> String {
    let action = r.action.as_deref().map(short).unwrap_or("use");
    let mut s = match (r.kind, l) {
        (RuleKind::Permission, Language::De) => format!(
            "Erlaubt: {} darf {} nutzen (Handlung: {action})",
            party(&r.assignee, l),
            target(&r.target, l)
        ),
        (RuleKind::Permission, Language::En) => format!(
            "Allowed: {} may use {} (action: {action})",
            party(&r.assignee, l),
            target(&r.target, l)
        ),
        (RuleKind::Prohibition, Language::De) => format!(
            "Verboten: {} darf {} nicht nutzen (Handlung: {action})",
            party(&r.assignee, l),
            target(&r.target, l)
        ),
        (RuleKind::Prohibition, Language::En) => format!(
            "Forbidden: {} must not use {} (action: {action})",
            party(&r.assignee, l),
            target(&r.target, l)
        ),
        (RuleKind::Obligation, Language::De) => format!("Pflicht: {} muss {action} ausführen", party(&r.assignee, l)),
        (RuleKind::Obligation, Language::En) => format!("Obligation: {} must {action}", party(&r.assignee, l)),
    };
    if !r.constraints.is_empty() {
        let conds: Vec<String> = r.constraints.iter().map(|c| constraint(c, l)).collect();
        let word = if l == Language::De { ", wenn " } else { ", if " };
        let and = if l == Language::De { " und " } else { " and " };
        s.push_str(word);
        s.push_str(&conds.join(and));
    }
    s.push('.');
    for d in &r.duties {
        let label = if l == Language::De { "Auflage" } else { "Duty" };
        s.push_str(&format!("\n    {label}: {}", duty(d, l)));
    }
    let has = |action: &str| r.duties.iter().any(|d| short(&d.action) == action);
    if has("aggregate") && !has("addNoise") {
        let label = if l == Language::De { "Achtung" } else { "Note" };
        let warning = if l == Language::De {
            "Die Zusammenfassung ist nur durch das Unterdrücken kleiner Gruppen geschützt. Wer zwei Abrufe \
             eines wachsenden Datenbestands vergleicht, kann erkennen, was eine einzelne hinzugekommene Person \
             geändert hat; dagegen schützt nur die Auflage, Rauschen hinzuzufügen (Differential Privacy)."
        } else {
            "the aggregation is protected only by suppressing small groups. Comparing two releases of a \
             growing dataset shows what one added person changed; only the duty to add noise (differential \
             privacy) protects against that."
        };
        s.push_str(&format!("\n    {label}: {warning}"));
    }
    s
}

/// A duty as a sentence.
fn duty(d: &Duty, l: Language) -> String {
    let fields = d.fields.join(", ");
    let de = l == Language::De;
    match short(&d.action) {
        "minimise" if de => format!("Nur diese Felder werden weitergegeben: {fields}"),
        "minimise" => format!("only these fields are passed on: {fields}"),
        "pseudonymise" if de => format!("Diese Felder werden pseudonymisiert: {fields}"),
        "pseudonymise" => format!("these fields are pseudonymised: {fields}"),
        "generalise" => {
            let to = d.granularity.map(|g| granularity(g, l)).unwrap_or_default();
            if de {
                format!("Diese Felder werden vergröbert ({to}): {fields}")
            } else {
                format!("these fields are coarsened ({to}): {fields}")
            }
        }
        "aggregate" => {
            let n = d.min_group_size.unwrap_or(0);
            let by = d.group_by.join(", ");
            match (de, by.is_empty()) {
                (true, true) => format!("Nur zusammengefasst; Gruppen mit weniger als {n} Einträgen werden unterdrückt"),
                (true, false) => format!("Nur zusammengefasst nach {by}; Gruppen mit weniger als {n} Einträgen werden unterdrückt"),
                (false, true) => format!("aggregated only; groups of fewer than {n} records are suppressed"),
                (false, false) => format!("aggregated only, by {by}; groups of fewer than {n} records are suppressed"),
            }
        }
        "delete" => {
            let after = d.retention.as_deref().map(|r| duration(r, l)).unwrap_or_default();
            if de {
                format!("Der Empfänger löscht die Daten spätestens nach {after}")
            } else {
                format!("the recipient deletes the data after {after} at the latest")
            }
        }
        "addNoise" => {
            let eps = f64::from(d.epsilon_milli.unwrap_or(0)) / 1000.0;
            let budget = f64::from(d.budget_milli.unwrap_or(0)) / 1000.0;
            let releases = d.budget_milli.unwrap_or(0).checked_div(d.epsilon_milli.unwrap_or(0)).unwrap_or(0);
            let factor = (eps.exp() * 100.0).round() / 100.0;
            if de {
                format!(
                    "Die Anzahlen werden mit zufälligem Rauschen veröffentlicht (Differential Privacy, ε = {eps} je Abruf, \
                     Budget ε = {budget} je Empfänger und Monat, also höchstens {releases} Abrufe). Das heißt: \
                     Ob eine einzelne Person in den Daten ist oder nicht, ändert die Wahrscheinlichkeit jedes \
                     veröffentlichten Ergebnisses höchstens um den Faktor {factor} (e hoch ε); auch wer zwei Stände \
                     der Daten vergleicht, erfährt über eine Person kaum mehr. Ist das Budget verbraucht, wird bis \
                     zum nächsten Monat nichts mehr herausgegeben."
                )
            } else {
                format!(
                    "counts are released with random noise (differential privacy, ε = {eps} per release, budget \
                     ε = {budget} per recipient and month, so at most {releases} releases). That is: \
                     whether one person is in the data or not changes the probability of any released result \
                     by at most a factor of {factor} (e to the ε); even comparing two states of the data tells \
                     little about one person. Once the budget is spent, nothing more is released until next month."
                )
            }
        }
        "inform" if de => "Der Anbieter wird über jede Nutzung informiert".into(),
        "inform" => "the provider is informed of every use".into(),
        other => other.to_owned(),
    }
}

fn granularity(g: Granularity, l: Language) -> &'static str {
    match (g, l) {
        (Granularity::Month, Language::De) => "auf den Monat",
        (Granularity::Month, Language::En) => "to the month",
        (Granularity::Year, Language::De) => "auf das Jahr",
        (Granularity::Year, Language::En) => "to the year",
        (Granularity::AgeBand5, Language::De) => "Altersgruppen zu 5 Jahren",
        (Granularity::AgeBand5, Language::En) => "age bands of 5 years",
        (Granularity::AgeBand10, Language::De) => "Altersgruppen zu 10 Jahren",
        (Granularity::AgeBand10, Language::En) => "age bands of 10 years",
    }
}

/// `P90D` -> "90 Tagen" / "90 days"; other durations as written.
fn duration(iso: &str, l: Language) -> String {
    let unit = |c: char| match (c, l) {
        ('D', Language::De) => Some("Tagen"),
        ('D', Language::En) => Some("days"),
        ('M', Language::De) => Some("Monaten"),
        ('M', Language::En) => Some("months"),
        ('Y', Language::De) => Some("Jahren"),
        ('Y', Language::En) => Some("years"),
        _ => None,
    };
    let body = iso.strip_prefix('P').unwrap_or(iso);
    match body.char_indices().last() {
        Some((i, c)) if body[..i].chars().all(|d| d.is_ascii_digit()) && i > 0 => {
            unit(c).map_or_else(|| iso.to_owned(), |u| format!("{} {u}", &body[..i]))
        }
        _ => iso.to_owned(),
    }
}

/// The policy in plain language.
pub fn explain(policy: &Policy, l: Language) -> String {
    let mut out = match l {
        Language::De => format!("Nutzungsrichtlinie {}\n", policy.uid),
        Language::En => format!("Usage policy {}\n", policy.uid),
    };
    for r in &policy.rules {
        out.push_str("  - ");
        out.push_str(&rule(r, l));
        out.push('\n');
    }
    out.push_str(match (policy.conflict, l) {
        (Conflict::Prohibit, Language::De) => "Widersprechen sich Erlaubnis und Verbot, gilt das Verbot.\n",
        (Conflict::Prohibit, Language::En) => "Where a permission and a prohibition both apply, the prohibition wins.\n",
        (Conflict::Perm, Language::De) => "Widersprechen sich Erlaubnis und Verbot, gilt die Erlaubnis.\n",
        (Conflict::Perm, Language::En) => "Where a permission and a prohibition both apply, the permission wins.\n",
        (Conflict::Invalid, Language::De) => "Widersprechen sich Erlaubnis und Verbot, wird nichts erlaubt.\n",
        (Conflict::Invalid, Language::En) => "Where a permission and a prohibition both apply, nothing is allowed.\n",
    });
    out
}
