//! The dataset form: a steward registers a dataset of their city or edits one.
//!
//! The form is driven by `schemas/dataset.schema.json`, the schema the API checks: its choices
//! (themes, licences, access rights) are the schema's enumerations, the posted form becomes the
//! JSON the API would take, and [`crate::stewardship`] checks and stores it exactly as the API
//! does. What the schema refuses comes back as the same violations, each beside its field.

use std::sync::OnceLock;

use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde_json::{Map, Value, json};

use super::lang::{Lang, Ui};
use super::pages::title_of;
use super::{ConsoleError, Nav, check_form, field, fields, form, page};
use crate::catalog::Dataset;
use crate::catalog::labels::labels;
use crate::http::AppState;
use crate::http::auth::Caller;
use crate::http::problem::Problem;
use crate::identity::Role;
use crate::schema::Violation;
use crate::stewardship::{self, DatasetError};

/// The choices the schema allows, read from it once.
struct Choices {
    themes: Vec<String>,
    licences: Vec<String>,
    access_rights: Vec<String>,
    max_distributions: usize,
}

fn choices() -> &'static Choices {
    static CHOICES: OnceLock<Choices> = OnceLock::new();
    CHOICES.get_or_init(|| {
        let schema: Value = serde_json::from_str(crate::schema::DATASET).unwrap_or_default();
        let strings = |pointer: &str| -> Vec<String> {
            schema
                .pointer(pointer)
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).map(str::to_owned).collect())
                .unwrap_or_default()
        };
        Choices {
            themes: strings("/properties/themes/items/enum"),
            licences: strings("/properties/license/enum"),
            access_rights: strings("/properties/accessRights/enum"),
            max_distributions: schema
                .pointer("/properties/distributions/maxItems")
                .and_then(Value::as_u64)
                .map_or(20, |n| n as usize),
        }
    })
}

/// A checkbox or an option.
pub struct Choice {
    pub value: String,
    pub label: String,
    pub chosen: bool,
}

/// A distribution's row in the form.
pub struct DistributionRow {
    pub n: usize,
    pub title: String,
    pub media_type: String,
    pub url: String,
}

/// A violation as the steward reads it: the field's German name, a link to it, the message.
pub struct FieldError {
    pub field: String,
    pub label: &'static str,
    pub message: String,
}

#[derive(Template)]
#[template(path = "console/dataset_form.html")]
struct DatasetForm {
    nav: Nav,
    /// The dataset being edited; `None` for a new one.
    id: Option<String>,
    action: String,
    token: String,
    identifier: String,
    title_de: String,
    title_en: String,
    description_de: String,
    description_en: String,
    themes: Vec<Choice>,
    keywords: String,
    spatial: String,
    start: String,
    end: String,
    licences: Vec<Choice>,
    access_rights: Vec<Choice>,
    contact_name: String,
    contact_email: String,
    contact_url: String,
    distributions: Vec<DistributionRow>,
    providers: String,
    errors: Vec<FieldError>,
    saved: Option<String>,
    /// Whether the stored dataset has a hosted distribution (then its data is uploaded here).
    hosted: bool,
    upload_token: String,
    uploaded: Option<String>,
    upload_error: Option<String>,
}

/// The form's fields, as (name in the form, place in the schema, German label).
const FIELDS: &[(&str, &str, &str)] = &[
    ("kennung", "/identifier", "Kennung"),
    ("titel_de", "/title", "Titel"),
    ("beschreibung_de", "/description", "Beschreibung"),
    ("thema", "/themes", "Themen"),
    ("schlagwoerter", "/keywords", "Schlagwörter"),
    ("raum", "/spatial", "Räumlicher Bezug"),
    ("beginn", "/temporal", "Zeitraum"),
    ("lizenz", "/license", "Lizenz"),
    ("zugang", "/accessRights", "Zugangsrechte"),
    ("kontakt_name", "/contactPoint", "Ansprechstelle"),
    ("verteilung_typ_0", "/distributions", "Verteilungen"),
    ("kennung", "/publisher", "Herausgeber"),
];

fn field_error(v: Violation) -> FieldError {
    // The longest place that the violation is at or under; the whole form otherwise.
    let (field, label) = FIELDS
        .iter()
        .filter(|(_, place, _)| v.pointer == *place || v.pointer.starts_with(&format!("{place}/")))
        .max_by_key(|(_, place, _)| place.len())
        .map_or(("titel_de", "Formular"), |(f, _, l)| (*f, *l));
    // A distribution's row, by its number.
    let field = match v.pointer.strip_prefix("/distributions/").and_then(|r| r.split('/').next()) {
        Some(n) if n.parse::<usize>().is_ok() => format!("verteilung_typ_{n}"),
        _ => field.to_owned(),
    };
    FieldError {
        field,
        label,
        message: v.message,
    }
}

/// The form field a DCAT-AP.de shape's property belongs to.
fn shape_field(path: &str) -> (&'static str, &'static str) {
    let local = path.trim_end_matches('>').rsplit(['#', '/']).next().unwrap_or_default();
    match local {
        "title" => ("titel_de", "Titel"),
        "description" => ("beschreibung_de", "Beschreibung"),
        "theme" => ("thema", "Themen"),
        "keyword" => ("schlagwoerter", "Schlagwörter"),
        "spatial" => ("raum", "Räumlicher Bezug"),
        "temporal" | "startDate" | "endDate" => ("beginn", "Zeitraum"),
        "license" => ("lizenz", "Lizenz"),
        "accessRights" => ("zugang", "Zugangsrechte"),
        "contactPoint" | "hasEmail" | "hasURL" | "fn" => ("kontakt_name", "Ansprechstelle"),
        "distribution" | "accessURL" | "mediaType" | "format" => ("verteilung_typ_0", "Verteilungen"),
        _ => ("titel_de", "Formular"),
    }
}

fn licence_label(iri: &str) -> String {
    iri.strip_prefix("http://dcat-ap.de/def/licenses/").unwrap_or(iri).to_owned()
}

fn access_label(code: &str, lang: Lang) -> &str {
    match code {
        "PUBLIC" => lang.t("öffentlich"),
        "RESTRICTED" => lang.t("eingeschränkt"),
        "NON_PUBLIC" => lang.t("nicht öffentlich"),
        other => other,
    }
}

/// The form filled from a description's JSON (the API's shape).
fn filled(state: &AppState, caller: &Caller, ui: &Ui, req: &HttpRequest, id: Option<&Dataset>, v: &Value) -> DatasetForm {
    let s = |p: &str| v.pointer(p).and_then(Value::as_str).unwrap_or_default().to_owned();
    let list = |p: &str| -> Vec<String> {
        v.pointer(p)
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).map(str::to_owned).collect())
            .unwrap_or_default()
    };
    let c = choices();
    let themes = list("/themes");
    let licence = s("/license");
    let access = s("/accessRights");
    let mut distributions: Vec<DistributionRow> = v
        .pointer("/distributions")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .enumerate()
                .map(|(n, d)| DistributionRow {
                    n,
                    title: d.get("title").and_then(Value::as_str).unwrap_or_default().to_owned(),
                    media_type: d.get("mediaType").and_then(Value::as_str).unwrap_or_default().to_owned(),
                    url: d.get("accessURL").and_then(Value::as_str).unwrap_or_default().to_owned(),
                })
                .collect()
        })
        .unwrap_or_default();
    // One empty row to add a distribution with.
    if distributions.len() < c.max_distributions {
        distributions.push(DistributionRow {
            n: distributions.len(),
            title: String::new(),
            media_type: String::new(),
            url: String::new(),
        });
    }
    let providers: Vec<&str> = caller.member.providers.iter().map(|o| o.as_str()).collect();
    let hosted = id.is_some_and(|d| d.distributions.iter().any(|x| x.access_url == crate::catalog::Access::Hosted));
    let upload_token = id.map_or_else(String::new, |d| {
        state
            .console_csrf
            .token(&caller.identity.serial, &format!("/console/datensaetze/{}/daten", d.id))
    });
    DatasetForm {
        nav: Nav::of(caller, ui, "datasets"),
        id: id.map(|d| d.id.to_string()),
        action: req.path().to_owned(),
        token: state.console_csrf.token(&caller.identity.serial, req.path()),
        identifier: s("/identifier"),
        title_de: s("/title/de"),
        title_en: s("/title/en"),
        description_de: s("/description/de"),
        description_en: s("/description/en"),
        themes: c
            .themes
            .iter()
            .map(|t| Choice {
                value: t.clone(),
                label: labels().theme_in(t, ui.lang.language()).to_owned(),
                chosen: themes.contains(t),
            })
            .collect(),
        keywords: list("/keywords").join(", "),
        spatial: list("/spatial").join("\n"),
        start: s("/temporal/start"),
        end: s("/temporal/end"),
        licences: c
            .licences
            .iter()
            .map(|l| Choice {
                value: l.clone(),
                label: licence_label(l),
                chosen: *l == licence,
            })
            .collect(),
        access_rights: c
            .access_rights
            .iter()
            .map(|a| Choice {
                value: a.clone(),
                label: access_label(a, ui.lang).to_owned(),
                chosen: *a == access,
            })
            .collect(),
        contact_name: s("/contactPoint/name"),
        contact_email: s("/contactPoint/email"),
        contact_url: s("/contactPoint/url"),
        distributions,
        providers: if providers.is_empty() {
            ui.lang.t("keine – nur „hosted“ (Daten hochladen) ist möglich").to_owned()
        } else {
            providers.join(", ")
        },
        errors: Vec::new(),
        saved: None,
        hosted,
        upload_token,
        uploaded: None,
        upload_error: None,
    }
}

/// The posted form as the JSON the API takes. Empty fields are left out, so the schema names
/// what is missing.
fn description_json(posted: &[(String, String)], identifier: Option<&str>) -> Value {
    let text = |name: &str| field(posted, name).map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned);
    let mut out = Map::new();
    let mut put = |key: &str, value: Option<Value>| {
        if let Some(v) = value {
            out.insert(key.to_owned(), v);
        }
    };
    put(
        "identifier",
        identifier.map(|i| json!(i)).or_else(|| text("kennung").map(Value::from)),
    );
    let lang = |de: &str, en: &str| {
        let mut m = Map::new();
        if let Some(t) = text(de) {
            m.insert("de".into(), t.into());
        }
        if let Some(t) = text(en) {
            m.insert("en".into(), t.into());
        }
        (!m.is_empty()).then_some(Value::Object(m))
    };
    put("title", lang("titel_de", "titel_en"));
    put("description", lang("beschreibung_de", "beschreibung_en"));
    let themes: Vec<&str> = fields(posted, "thema");
    put("themes", (!themes.is_empty()).then(|| json!(themes)));
    let split = |name: &str, by: &[char]| -> Option<Value> {
        let items: Vec<&str> = field(posted, name)
            .unwrap_or_default()
            .split(by)
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        (!items.is_empty()).then(|| json!(items))
    };
    put("keywords", split("schlagwoerter", &[',', ';']));
    put("spatial", split("raum", &['\n', '\r', ' ', ',']));
    if let Some(start) = text("beginn") {
        let mut t = json!({ "start": start });
        if let Some(end) = text("ende") {
            t["end"] = end.into();
        }
        put("temporal", Some(t));
    }
    put("license", text("lizenz").map(Value::from));
    put("accessRights", text("zugang").map(Value::from));
    let mut contact = Map::new();
    for (form_name, key) in [("kontakt_name", "name"), ("kontakt_email", "email"), ("kontakt_url", "url")] {
        if let Some(v) = text(form_name) {
            contact.insert(key.into(), v.into());
        }
    }
    put("contactPoint", (!contact.is_empty()).then_some(Value::Object(contact)));
    let mut distributions = Vec::new();
    for n in 0..=choices().max_distributions {
        let typ = text(&format!("verteilung_typ_{n}"));
        let url = text(&format!("verteilung_url_{n}"));
        if typ.is_none() && url.is_none() {
            continue;
        }
        let mut d = Map::new();
        if let Some(t) = text(&format!("verteilung_titel_{n}")) {
            d.insert("title".into(), t.into());
        }
        if let Some(t) = typ {
            d.insert("mediaType".into(), t.into());
        }
        if let Some(u) = url {
            d.insert("accessURL".into(), u.into());
        }
        distributions.push(Value::Object(d));
    }
    put("distributions", (!distributions.is_empty()).then(|| json!(distributions)));
    Value::Object(out)
}

/// What a refused change shows: violations beside their fields, a refusal as an error page.
fn refused(e: DatasetError, form: &mut DatasetForm, lang: Lang) -> Result<(), ConsoleError> {
    match e {
        DatasetError::Invalid(violations) => {
            form.errors = violations.into_iter().map(field_error).collect();
            Ok(())
        }
        // The schema admits it, the DCAT-AP.de shapes do not (a licence on every distribution,
        // say): each finding beside the field its property belongs to.
        DatasetError::Change(crate::changes::ChangeError::Failed(crate::catalog::CatalogError::NotDcatApDe { findings, .. })) => {
            form.errors = findings
                .into_iter()
                .filter(|f| f.severity == crate::catalog::shacl::Severity::Violation)
                .map(|f| {
                    let (field, label) = shape_field(f.path.as_deref().unwrap_or_default());
                    FieldError {
                        field: field.to_owned(),
                        label,
                        message: format!("DCAT-AP.de: {}", f.message),
                    }
                })
                .collect();
            Ok(())
        }
        DatasetError::Change(crate::changes::ChangeError::Failed(
            crate::catalog::CatalogError::DatasetExists(_) | crate::catalog::CatalogError::DatasetWithdrawn(_),
        )) => {
            form.errors = vec![FieldError {
                field: "kennung".to_owned(),
                label: "Kennung",
                message: lang
                    .t("Diese Kennung ist vergeben (oder war es: zurückgezogene Kennungen werden nicht wieder vergeben).")
                    .to_owned(),
            }];
            Ok(())
        }
        other => Err(ConsoleError(crate::http::datasets::dataset_problem(other))),
    }
}

fn require_steward(caller: &Caller) -> Result<(), ConsoleError> {
    Ok(caller.require(&[Role::Steward], "das Registrieren von Datensätzen")?)
}

/// The dataset to edit: one of the caller's city.
async fn own(state: &AppState, caller: &Caller, id: &str) -> Result<Dataset, ConsoleError> {
    super::own_dataset(state, caller, id, "das Registrieren von Datensätzen").await
}

pub async fn new(
    caller: Result<Caller, Problem>,
    state: web::Data<AppState>,
    req: HttpRequest,
    ui: Ui,
) -> Result<HttpResponse, ConsoleError> {
    let caller = caller?;
    require_steward(&caller)?;
    // A start: the city as spatial coverage, its name as contact, one hosted distribution.
    let start = json!({
        "spatial": [format!("http://dcat-ap.de/def/politicalGeocoding/municipalityKey/{}", caller.identity.ags)],
        "contactPoint": { "name": caller.member.organisation },
        "accessRights": "RESTRICTED",
    });
    page(&filled(&state, &caller, &ui, &req, None, &start))
}

pub async fn create(
    caller: Result<Caller, Problem>,
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Payload,
    ui: Ui,
) -> Result<HttpResponse, ConsoleError> {
    let caller = caller?;
    let posted = form(&state, &req, body).await?;
    check_form(&state, &caller, &req, field(&posted, "token"))?;
    require_steward(&caller)?;
    let value = description_json(&posted, None);
    match stewardship::register(&state.exchange, &state.schemas, &caller.identity, &caller.member, value.clone()).await {
        Ok(d) => {
            // Edited from now on at its own address (a reload then does not register twice).
            let edit = format!("/console/datensaetze/{}/bearbeiten?gespeichert=1", d.id);
            Ok(HttpResponse::SeeOther().insert_header(("Location", edit)).finish())
        }
        Err(e) => {
            let mut f = filled(&state, &caller, &ui, &req, None, &value);
            refused(e, &mut f, ui.lang)?;
            Ok(page(&f)?)
        }
    }
}

#[derive(serde::Deserialize)]
pub struct EditQuery {
    gespeichert: Option<u8>,
}

pub async fn edit(
    caller: Result<Caller, Problem>,
    state: web::Data<AppState>,
    id: web::Path<String>,
    req: HttpRequest,
    query: web::Query<EditQuery>,
    ui: Ui,
) -> Result<HttpResponse, ConsoleError> {
    let caller = caller?;
    let dataset = own(&state, &caller, &id).await?;
    let mut f = filled(
        &state,
        &caller,
        &ui,
        &req,
        Some(&dataset),
        &stewardship::description_value(&dataset),
    );
    if query.gespeichert.is_some() {
        f.saved = Some(title_of(&dataset));
    }
    page(&f)
}

pub async fn save(
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
    let existing = own(&state, &caller, &id).await?;
    let value = description_json(&posted, Some(existing.id.as_str()));
    let result = stewardship::change(
        &state.exchange,
        &state.schemas,
        &caller.identity,
        &caller.member,
        &existing,
        value.clone(),
    )
    .await;
    match result {
        Ok(d) => {
            let mut f = filled(&state, &caller, &ui, &req, Some(&d), &stewardship::description_value(&d));
            f.saved = Some(title_of(&d));
            page(&f)
        }
        Err(e) => {
            let mut f = filled(&state, &caller, &ui, &req, Some(&existing), &value);
            refused(e, &mut f, ui.lang)?;
            page(&f)
        }
    }
}

/// A file posted with its form: the token and the file's bytes, name and media type.
struct Upload {
    token: String,
    bytes: Vec<u8>,
    file_name: String,
    media_type: String,
}

/// Reads a `multipart/form-data` body: a `token` field and a `datei` file, within the upload
/// limit and the body deadline; any other field is refused (a form we did not make).
async fn read_upload(state: &AppState, req: &HttpRequest, body: web::Payload) -> Result<Upload, ConsoleError> {
    use futures_util::StreamExt;
    let media_type = crate::http::content_type(req).unwrap_or_default();
    if !media_type.starts_with("multipart/form-data") {
        return Err(ConsoleError(Problem::unsupported_media_type(format!(
            "eine Datei kommt als multipart/form-data, nicht als {media_type}"
        ))));
    }
    let limit = state.exchange.upstream.max_bytes;
    let deadline = state.limits.settings().body_timeout;
    let bad = |detail: String| ConsoleError(Problem::bad_request("bad-form", detail));
    let reading = async {
        let mut parts = actix_multipart::Multipart::new(req.headers(), body);
        let mut out = Upload {
            token: String::new(),
            bytes: Vec::new(),
            file_name: String::new(),
            media_type: String::new(),
        };
        while let Some(field) = parts.next().await {
            let mut field = field.map_err(|e| bad(format!("das Formular ist nicht lesbar: {e}")))?;
            let name = field.name().unwrap_or_default().to_owned();
            let (cap, into_file) = match name.as_str() {
                "token" => (256, false),
                "datei" => (limit, true),
                other => return Err(bad(format!("das Formular hat kein Feld „{other}“"))),
            };
            if into_file {
                out.file_name = field
                    .content_disposition()
                    .and_then(|d| d.get_filename())
                    .unwrap_or_default()
                    .to_owned();
                out.media_type = field.content_type().map(|m| m.essence_str().to_owned()).unwrap_or_default();
            }
            let mut bytes = Vec::new();
            while let Some(chunk) = field.next().await {
                let chunk = chunk.map_err(|e| bad(format!("das Formular ist nicht lesbar: {e}")))?;
                if bytes.len() + chunk.len() > cap {
                    return Err(ConsoleError(Problem::new(
                        actix_web::http::StatusCode::PAYLOAD_TOO_LARGE,
                        "body-too-large",
                        "Content Too Large",
                        format!("„{name}“ ist größer als {} Bytes", crate::german::number(cap as u64)),
                    )));
                }
                bytes.extend_from_slice(&chunk);
            }
            if into_file {
                out.bytes = bytes;
            } else {
                out.token = String::from_utf8_lossy(&bytes).into_owned();
            }
        }
        Ok(out)
    };
    match tokio::time::timeout(deadline, reading).await {
        Ok(read) => read,
        Err(_) => Err(ConsoleError(Problem::new(
            actix_web::http::StatusCode::REQUEST_TIMEOUT,
            "body-timeout",
            "Request Timeout",
            "die Datei kam nicht rechtzeitig an",
        ))),
    }
}

/// The format of an uploaded file: its media type, else its name's ending.
fn upload_format(u: &Upload) -> Option<crate::enforce::Format> {
    use crate::enforce::Format;
    Format::from_media_type(&u.media_type).or_else(|| {
        let name = u.file_name.to_ascii_lowercase();
        if name.ends_with(".csv") {
            Some(Format::Csv)
        } else if name.ends_with(".json") {
            Some(Format::Json)
        } else {
            None
        }
    })
}

/// `POST /console/datensaetze/{id}/daten`: the steward uploads the hosted data of a dataset of
/// their city, as `PUT /v1/datasets/{id}/hosted-data` does.
pub async fn upload(
    caller: Result<Caller, Problem>,
    state: web::Data<AppState>,
    id: web::Path<String>,
    req: HttpRequest,
    body: web::Payload,
    ui: Ui,
) -> Result<HttpResponse, ConsoleError> {
    let caller = caller?;
    // Who and from where before the body is read; the token is inside it.
    super::check_origin(&req)?;
    let dataset = own(&state, &caller, &id).await?;
    let _slot = state
        .exchange
        .upload_slot()
        .await
        .map_err(|e| ConsoleError(Problem::busy(e.to_string(), 5)))?;
    let file = read_upload(&state, &req, body).await?;
    check_form(&state, &caller, &req, Some(&file.token))?;
    let edit = format!("/console/datensaetze/{}/bearbeiten", dataset.id);
    let mut f = filled(
        &state,
        &caller,
        &ui,
        &req,
        Some(&dataset),
        &stewardship::description_value(&dataset),
    );
    f.action = edit.clone();
    f.token = state.console_csrf.token(&caller.identity.serial, &edit);
    f.upload_token = state.console_csrf.token(&caller.identity.serial, req.path());
    let Some(format) = upload_format(&file) else {
        f.upload_error = Some(format!(
            "„{}“: {}",
            file.file_name,
            ui.lang.t("weder CSV noch JSON (Dateiendung .csv oder .json).")
        ));
        return page(&f);
    };
    match state.exchange.upload(&caller.identity, &dataset, format, file.bytes).await {
        Ok(records) => {
            let n = crate::german::number_in(records as u64, ui.lang.language());
            f.uploaded = Some(match ui.lang {
                Lang::De => format!(
                    "{n} Datensätze aus „{}“ sind hochgeladen und verschlüsselt gespeichert.",
                    file.file_name
                ),
                Lang::En => format!("{n} records from “{}” are uploaded and kept encrypted.", file.file_name),
            });
        }
        Err(crate::exchange::pipeline::UploadError::NotHosted(_)) => {
            f.upload_error = Some(
                ui.lang
                    .t("Dieser Datensatz hat keine Verteilung „hosted“; der Broker holt seine Daten von der Schnittstelle der Kommune.")
                    .to_owned(),
            );
        }
        Err(crate::exchange::pipeline::UploadError::Unreadable(e)) => {
            f.upload_error = Some(format!("{} {e}", ui.lang.t("Die Datei ist nicht lesbar:")));
        }
        Err(crate::exchange::pipeline::UploadError::Change(c)) => {
            return Err(ConsoleError(crate::http::change_problem(c, "the hosted data cannot be stored")));
        }
    }
    page(&f)
}
