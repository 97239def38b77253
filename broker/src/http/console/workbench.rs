//! The policy workbench: a steward chooses purposes, partners, limits and duties in a form
//! ([`crate::authoring`] writes the Turtle), or edits the Turtle, checks it (compiled exactly as
//! a submission, explained in German) and submits it as a draft ([`crate::governance`]).

use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use policy_compiler::explain::explain;

use super::lang::Ui;
use super::pages::title_of;
use super::{ConsoleError, Nav, check_form, field, fields, form, members, page};
use crate::authoring::{Granularity, Guided, field_list};
use crate::catalog::Dataset;
use crate::catalog::labels::{PurposeNode, labels};
use crate::governance::{self, SubmitError};
use crate::http::AppState;
use crate::http::auth::Caller;
use crate::http::problem::Problem;
use crate::identity::Ags;

/// A purpose as an option of the form's list.
pub struct PurposeOption {
    pub iri: String,
    /// The label, indented by its depth in the DPV tree.
    pub label: String,
    pub selected: bool,
}

/// A partner city as a checkbox.
pub struct PartnerOption {
    pub ags: String,
    pub name: String,
    pub checked: bool,
}

/// A coarsening as an option.
pub struct GranularityOption {
    pub key: &'static str,
    pub label: &'static str,
    pub selected: bool,
}

#[derive(Template)]
#[template(path = "console/workbench.html")]
struct Workbench {
    nav: Nav,
    dataset: String,
    title: String,
    token: String,
    purposes: Vec<PurposeOption>,
    partners: Vec<PartnerOption>,
    max_per_month: String,
    until: String,
    keep: String,
    pseudonymise: String,
    generalise_field: String,
    granularities: Vec<GranularityOption>,
    group_by: String,
    min_group: String,
    delete_days: String,
    description: String,
    known_fields: String,
    turtle: String,
    /// The German explanation of the checked policy.
    explanation: Option<String>,
    /// What is wrong with the form or the policy.
    error: Option<String>,
    /// The draft just submitted.
    submitted: Option<u32>,
}

async fn steward_dataset(state: &AppState, caller: &Caller, id: &str) -> Result<Dataset, ConsoleError> {
    super::own_dataset(state, caller, id, "die Richtlinien-Werkbank").await
}

/// The form as it stands (empty, or as posted).
fn workbench(
    state: &AppState,
    caller: &Caller,
    ui: &Ui,
    req: &HttpRequest,
    dataset: &Dataset,
    posted: &[(String, String)],
    members: &[(Ags, String)],
) -> Workbench {
    let chosen: Vec<&str> = fields(posted, "zweck");
    let partners: Vec<&str> = fields(posted, "partner");
    let text = |name: &str| field(posted, name).unwrap_or_default().to_owned();
    let granularity = field(posted, "vergroeberung").unwrap_or("month");
    let known: Vec<String> = crate::reports::fields_of(&state.exchange.tally, dataset.id.as_str())
        .into_iter()
        .collect();
    Workbench {
        nav: Nav::of(caller, ui, "datasets"),
        dataset: dataset.id.to_string(),
        title: title_of(dataset),
        token: state.console_csrf.token(&caller.identity.serial, req.path()),
        purposes: labels()
            .purpose_tree_in(ui.lang.language())
            .into_iter()
            .map(|PurposeNode { iri, label, depth }| PurposeOption {
                selected: chosen.contains(&iri.as_str()),
                label: format!("{}{label}", "– ".repeat(depth)),
                iri,
            })
            .collect(),
        partners: members
            .iter()
            .filter(|(a, _)| *a != caller.identity.ags)
            .map(|(a, name)| PartnerOption {
                checked: partners.contains(&a.as_str()),
                ags: a.to_string(),
                name: name.clone(),
            })
            .collect(),
        max_per_month: text("hoechstens"),
        until: text("bis"),
        keep: text("behalten"),
        pseudonymise: text("pseudonymisieren"),
        generalise_field: text("vergroebern"),
        granularities: Granularity::ALL
            .into_iter()
            .map(|g| GranularityOption {
                key: g.key(),
                label: g.label_de(),
                selected: g.key() == granularity,
            })
            .collect(),
        group_by: text("gruppieren"),
        min_group: field(posted, "mindestgruppe").unwrap_or("5").to_owned(),
        delete_days: text("loeschen"),
        description: text("beschreibung"),
        known_fields: known.join(", "),
        turtle: text("turtle"),
        explanation: None,
        error: None,
        submitted: None,
    }
}

pub async fn show(
    caller: Result<Caller, Problem>,
    state: web::Data<AppState>,
    id: web::Path<String>,
    req: HttpRequest,
    ui: Ui,
) -> Result<HttpResponse, ConsoleError> {
    let caller = caller?;
    let dataset = steward_dataset(&state, &caller, &id).await?;
    let members = members(&state).await?;
    let mut w = workbench(&state, &caller, &ui, &req, &dataset, &[], &members);
    // Start from the version in force, if there is one.
    let catalog = state.catalog.clone();
    let lookup = dataset.id.clone();
    if let Some(active) = web::block(move || catalog.active_policy(&lookup)).await?? {
        w.turtle = active.source;
    }
    page(&w)
}

/// Reads the guided part of the form.
fn guided(posted: &[(String, String)]) -> Result<Guided, String> {
    let number = |name: &str, what: &str| -> Result<Option<u32>, String> {
        match field(posted, name).map(str::trim).filter(|s| !s.is_empty()) {
            None => Ok(None),
            Some(s) => s.parse().map(Some).map_err(|_| format!("„{s}“ ist keine Zahl ({what}).")),
        }
    };
    let mut partners = Vec::new();
    for a in fields(posted, "partner") {
        partners.push(a.parse::<Ags>().map_err(|_| format!("„{a}“ ist kein Gemeindeschlüssel."))?);
    }
    let generalise = match field(posted, "vergroebern").map(str::trim).filter(|s| !s.is_empty()) {
        None => Vec::new(),
        Some(f) => {
            let g = field(posted, "vergroeberung")
                .and_then(Granularity::from_key)
                .ok_or("Wählen Sie, wie vergröbert wird.")?;
            vec![(f.to_owned(), g)]
        }
    };
    let group_by = field_list(field(posted, "gruppieren").unwrap_or_default());
    let aggregate = if group_by.is_empty() {
        None
    } else {
        Some((group_by, number("mindestgruppe", "kleinste Gruppe")?.unwrap_or(5)))
    };
    Ok(Guided {
        purposes: fields(posted, "zweck").into_iter().map(str::to_owned).collect(),
        partners,
        max_per_month: number("hoechstens", "Anfragen je Monat")?,
        until: field(posted, "bis").map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned),
        keep: field_list(field(posted, "behalten").unwrap_or_default()),
        pseudonymise: field_list(field(posted, "pseudonymisieren").unwrap_or_default()),
        generalise,
        aggregate,
        delete_after_days: number("loeschen", "Tage bis zur Löschung")?,
        description: field(posted, "beschreibung").unwrap_or_default().to_owned(),
    })
}

/// The Turtle as it goes to the compiler: what the textarea holds.
fn turtle_of(w: &Workbench) -> Vec<u8> {
    w.turtle.replace("\r\n", "\n").into_bytes()
}

pub async fn post(
    caller: Result<Caller, Problem>,
    state: web::Data<AppState>,
    id: web::Path<String>,
    req: HttpRequest,
    body: web::Payload,
    ui: Ui,
) -> Result<HttpResponse, ConsoleError> {
    let caller = caller?;
    let posted = form(&state, &req, body).await?;
    check_form(&state, &caller, &req, field(&posted, "token"))?;
    let dataset = steward_dataset(&state, &caller, &id).await?;
    let members = members(&state).await?;
    let mut w = workbench(&state, &caller, &ui, &req, &dataset, &posted, &members);
    match field(&posted, "aktion") {
        Some("erzeugen") => {
            let policy_iri = format!("{}policies/{}/entwurf", state.base_iri, dataset.id);
            let dataset_iri = state.catalog.dataset_iri(&dataset.id);
            match guided(&posted).and_then(|g| {
                g.turtle(&dataset_iri, &policy_iri, |p| state.vocab.is_known_purpose(p))
                    .map_err(|e| e.0)
            }) {
                Ok(t) => {
                    w.turtle = t;
                    check(&state, &dataset, &mut w, ui.lang).await;
                }
                Err(e) => w.error = Some(e),
            }
        }
        Some("pruefen") => check(&state, &dataset, &mut w, ui.lang).await,
        Some("einreichen") => {
            match governance::submit_draft(&state.exchange, &caller.identity, &dataset, turtle_of(&w), "text/turtle").await {
                Ok(v) => {
                    w.submitted = Some(v.version);
                    w.explanation = policy_compiler::parse::parse_one(&v.source, policy_compiler::parse::Syntax::Turtle, &state.vocab)
                        .ok()
                        .map(|p| explain(&p, ui.lang.language()));
                }
                Err(e) => w.error = Some(submit_error(e)?),
            }
        }
        other => {
            return Err(ConsoleError(Problem::bad_request(
                "bad-form",
                format!("„aktion“ ist erzeugen, pruefen oder einreichen, nicht {other:?}"),
            )));
        }
    }
    page(&w)
}

/// Compiles the textarea's Turtle as a submission would be, and explains it.
async fn check(state: &AppState, dataset: &Dataset, w: &mut Workbench, lang: super::lang::Lang) {
    match governance::compile_checked(&state.exchange, dataset, turtle_of(w), policy_compiler::parse::Syntax::Turtle).await {
        Ok(c) => w.explanation = Some(explain(&c.policy, lang.language())),
        Err(e) => w.error = Some(submit_error(e).unwrap_or_else(|page| page.0.detail)),
    }
}

/// A refusal the steward can act on, in the page; anything else as an error page.
fn submit_error(e: SubmitError) -> Result<String, ConsoleError> {
    match e {
        SubmitError::Rejected(r) => Ok(format!("Die Richtlinie wird so nicht angenommen: {r}")),
        SubmitError::TooComplex | SubmitError::TooManyDrafts { .. } | SubmitError::UnsupportedMediaType(_) => Ok(e.to_string()),
        SubmitError::NotSteward(_) | SubmitError::NotOwner { .. } => Err(ConsoleError(Problem::forbidden(e.to_string()))),
        other => Err(ConsoleError(crate::http::policies::submit_problem(other))),
    }
}
