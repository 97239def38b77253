//! The console's language: German first, English on request (`/console/sprache/en`, kept in a
//! cookie for the console's paths only).
//!
//! Why a table keyed by the German text and not message identifiers: the templates stay
//! readable in the language most of their readers use, and a tidy test
//! (`every_console_text_has_an_english_translation`) fails when a German text in a template
//! has no English entry here, or an entry is no longer used.

use std::collections::HashMap;
use std::sync::OnceLock;

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest, HttpResponse, web};

/// The cookie the choice is kept in.
pub const COOKIE: &str = "konsole_sprache";

/// A language of the console.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Lang {
    #[default]
    De,
    En,
}

impl Lang {
    /// The BCP 47 tag (`<html lang>`).
    pub fn tag(self) -> &'static str {
        match self {
            Lang::De => "de",
            Lang::En => "en",
        }
    }

    /// The same language as the policy explainer and the labels name it.
    pub fn language(self) -> policy_compiler::explain::Language {
        match self {
            Lang::De => policy_compiler::explain::Language::De,
            Lang::En => policy_compiler::explain::Language::En,
        }
    }

    /// `de` in this language: itself in German, its entry of [`ENGLISH`] in English (the German
    /// text if there is none — the tidy test keeps that from happening).
    pub fn t(self, de: &'static str) -> &'static str {
        match self {
            Lang::De => de,
            Lang::En => english().get(de).copied().unwrap_or(de),
        }
    }
}

fn english() -> &'static HashMap<&'static str, &'static str> {
    static TABLE: OnceLock<HashMap<&'static str, &'static str>> = OnceLock::new();
    TABLE.get_or_init(|| ENGLISH.iter().copied().collect())
}

/// What a page needs to speak to its reader: the language chosen, and the page's own path and
/// query (where the language switch comes back to).
#[derive(Debug, Clone)]
pub struct Ui {
    pub lang: Lang,
    pub here: String,
}

impl FromRequest for Ui {
    type Error = std::convert::Infallible;
    type Future = std::future::Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        // The one cookie read by hand (actix-web's cookie support is a feature this build
        // leaves out for one value).
        let chosen = req
            .headers()
            .get_all(actix_web::http::header::COOKIE)
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(name, _)| *name == COOKIE)
            .map(|(_, value)| value);
        let lang = if chosen == Some("en") { Lang::En } else { Lang::De };
        let here = match req.uri().query() {
            Some(q) if req.method() == actix_web::http::Method::GET => format!("{}?{q}", req.path()),
            _ => req.path().to_owned(),
        };
        std::future::ready(Ok(Ui { lang, here }))
    }
}

#[derive(serde::Deserialize)]
pub struct Back {
    zurueck: Option<String>,
}

/// `GET /console/sprache/{de|en}`: keeps the choice and goes back to the page it was made on
/// (a console path only: never a redirect to elsewhere).
pub async fn switch(tag: web::Path<String>, back: web::Query<Back>) -> HttpResponse {
    let lang = if tag.as_str() == "en" { Lang::En } else { Lang::De };
    let to = back
        .zurueck
        .as_deref()
        .filter(|p| p.starts_with("/console/") && !p.contains("//") && !p.contains('\\') && p.is_ascii())
        .unwrap_or("/console/");
    // A preference, no secret: kept a year, sent to the console's paths only, never to script.
    let cookie = format!(
        "{COOKIE}={}; Path=/console; Max-Age=31536000; Secure; HttpOnly; SameSite=Strict",
        lang.tag()
    );
    HttpResponse::SeeOther()
        .insert_header(("Location", to.to_owned()))
        .insert_header(("Set-Cookie", cookie))
        .finish()
}

/// The English of every German text the console's templates show through `nav.t(…)`.
pub const ENGLISH: &[(&str, &str)] = &[
    ("Konsole", "Console"),
    ("Kommunaler Datenraum", "Municipal data space"),
    ("Kommunaler Datenraum – Konsole", "Municipal data space – console"),
    ("Zum Inhalt springen", "Skip to content"),
    ("Angemeldet mit Zertifikat:", "Signed in with certificate:"),
    ("Hauptnavigation", "Main navigation"),
    ("Übersicht", "Overview"),
    ("Datensätze", "Datasets"),
    ("Freigaben", "Approvals"),
    ("Nutzung", "Usage"),
    ("Verarbeitungsverzeichnis", "Records of processing"),
    ("Prüfprotokoll", "Audit trail"),
    // home
    ("veröffentlicht", "publishes"),
    ("Datensätze im Datenraum.", "datasets in the data space."),
    (
        "Richtlinien-Entwürfe warten auf Freigabe.",
        "policy drafts are waiting for approval.",
    ),
    (
        "Kein Richtlinien-Entwurf wartet auf Freigabe.",
        "No policy draft is waiting for approval.",
    ),
    ("Datensätze ansehen", "View datasets"),
    ("und Richtlinien bearbeiten", "and edit policies"),
    ("Entwürfe prüfen und freigeben", "Review and approve drafts"),
    ("Nutzung und Ablehnungen", "Usage and denials"),
    // datasets
    ("Datensätze von", "Datasets of"),
    ("Neuen Datensatz registrieren", "Register a new dataset"),
    ("Suchen", "Search"),
    ("Keine Datensätze gefunden.", "No datasets found."),
    ("Seite", "page"),
    ("von", "of"),
    ("Titel", "Title"),
    ("Kennung", "Identifier"),
    ("Themen", "Themes"),
    ("Nutzungsrichtlinie", "Usage policy"),
    ("Entwürfe", "Drafts"),
    ("Bearbeiten", "Edit"),
    ("Richtlinie für", "Policy for"),
    ("Seiten", "Pages"),
    ("Vorherige Seite", "Previous page"),
    ("Nächste Seite", "Next page"),
    // queue
    (
        "Richtlinien-Entwürfe, die auf Freigabe warten",
        "Policy drafts waiting for approval",
    ),
    ("Kein Entwurf wartet auf Freigabe.", "No draft is waiting for approval."),
    ("Datensatz", "Dataset"),
    ("Version", "Version"),
    ("Eingereicht von", "Submitted by"),
    ("Eingereicht am", "Submitted on"),
    ("Prüfen", "Review"),
    ("prüfen", "review"),
    // review
    ("Richtlinie", "Policy"),
    ("Status:", "Status:"),
    ("In Kraft: Version", "In force: version"),
    ("In Kraft: keine Richtlinie", "In force: no policy"),
    (
        "Der Datensatz wird derzeit mit niemandem geteilt.",
        "The dataset is currently shared with no one.",
    ),
    ("Richtlinie als Turtle (ODRL)", "Policy as Turtle (ODRL)"),
    (
        "Was-wäre-wenn: aufgezeichnete Anfragen mit Version",
        "What if: recorded requests under version",
    ),
    ("Von", "From"),
    ("Bis", "To"),
    ("Simulation berechnen", "Run the simulation"),
    ("aufgezeichnete Entscheidungen im Zeitraum", "recorded decisions in the period"),
    ("unverändert", "unchanged"),
    ("würden anders ausfallen", "would turn out differently"),
    (
        "ohne Richtlinie entschieden und nicht nachspielbar",
        "decided without a policy and not replayable",
    ),
    ("Entscheidungen, die sich ändern würden", "Decisions that would change"),
    ("Zeit", "Time"),
    ("Nutzende Kommune", "Consuming municipality"),
    ("Zweck", "Purpose"),
    ("Damals", "Then"),
    ("Mit Version", "With version"),
    ("Grund", "Reason"),
    (
        "Die Simulation spielt die im Zeitraum aufgezeichneten Anfragen an diesen Datensatz mit dieser Version nach und zeigt jede Entscheidung, die anders ausfiele.",
        "The simulation replays the requests for this dataset recorded in the period under this version and shows every decision that would turn out differently.",
    ),
    ("Entscheidung", "Decision"),
    (
        "Sie können diese Version nicht freigeben oder ablehnen:",
        "You cannot approve or reject this version:",
    ),
    ("Begründung (wird im Prüfpfad gespeichert)", "Reason (kept in the audit trail)"),
    ("Freigeben und in Kraft setzen", "Approve and put in force"),
    ("Ablehnen", "Reject"),
    // usage
    ("Jahr", "Year"),
    ("Anzeigen", "Show"),
    ("Anfragen erlaubt", "requests permitted"),
    ("abgelehnt", "denied"),
    ("Als CSV herunterladen (Excel, LibreOffice)", "Download as CSV (Excel, LibreOffice)"),
    (
        "Anfragen je Monat: erlaubt und abgelehnt. Die Zahlen stehen auch in der Tabelle.",
        "Requests per month: permitted and denied. The numbers are in the table too.",
    ),
    (
        "Anfragen nach Partnerkommune: erlaubt und abgelehnt (die zwölf häufigsten).",
        "Requests by partner municipality: permitted and denied (the twelve most frequent).",
    ),
    (
        "Anfragen nach erklärtem Zweck: erlaubt und abgelehnt (die zwölf häufigsten).",
        "Requests by declared purpose: permitted and denied (the twelve most frequent).",
    ),
    ("Ablehnungen nach Grund", "Denials by reason"),
    ("Keine Ablehnungen im Jahr.", "No denials in the year."),
    ("Anzahl", "Count"),
    ("Die Zahlen", "The numbers"),
    ("Keine Anfragen im Jahr.", "No requests in the year."),
    (
        "Anfragen nach Monat, Kommunen und Zweck",
        "Requests by month, municipalities and purpose",
    ),
    ("Monat", "Month"),
    ("Anbietende Kommune", "Providing municipality"),
    ("Erlaubt", "Permitted"),
    ("Abgelehnt", "Denied"),
    ("Geliefert", "Delivered"),
    // records of processing
    (
        "Verzeichnis der Verarbeitungstätigkeiten (Art. 30 DSGVO)",
        "Records of processing activities (Art. 30 GDPR)",
    ),
    (
        "als Verantwortliche: die Datensätze, die die Kommune über den Datenraum bereitstellt. Stand",
        "as controller: the datasets the municipality provides through the data space. As of",
    ),
    (
        "Zum Drucken die Druckfunktion des Browsers verwenden (Strg+P); Kopf und Navigation werden dabei weggelassen.",
        "To print, use the browser's print function (Ctrl+P); the header and navigation are left out.",
    ),
    (
        "Die Kommune stellt keine Datensätze bereit.",
        "The municipality provides no datasets.",
    ),
    ("Verantwortliche (Art. 30 Abs. 1 a)", "Controller (Art. 30 (1) a)"),
    ("Zwecke (b)", "Purposes (b)"),
    ("keine erlaubt", "none permitted"),
    ("Kategorien von Daten (c)", "Categories of data (c)"),
    ("Themen:", "Themes:"),
    ("übermittelte Felder:", "fields transmitted:"),
    ("Empfänger (d)", "Recipients (d)"),
    ("keine Übermittlung im Jahr", "no transmission in the year"),
    ("Löschfristen (f)", "Time limits for erasure (f)"),
    (
        "Technische und organisatorische Maßnahmen (g)",
        "Technical and organisational measures (g)",
    ),
    ("Lieferungen", "Deliveries"),
    // audit trail
    ("Zustand des Prüfprotokolls", "State of the audit trail"),
    (
        "Jede Entscheidung und jede Verwaltungsänderung steht in einer Hash-Kette; der Broker signiert ihren Stand regelmäßig (Prüfpunkt). Dieselbe Prüfung macht broker audit verify auf der Kommandozeile.",
        "Every decision and every administrative change is in a hash chain; the broker signs its state at intervals (checkpoint). The command line's broker audit verify makes the same check.",
    ),
    ("Letzter signierter Prüfpunkt", "Last signed checkpoint"),
    ("Eintrag", "Record"),
    ("signiert am", "signed on"),
    ("die Signatur ist gültig.", "the signature is valid."),
    (
        "Öffentlicher Prüfschlüssel des Brokers (Ed25519):",
        "The broker's public verification key (Ed25519):",
    ),
    ("Prüfung der ganzen Kette", "Verification of the whole chain"),
    ("Geprüft am", "Verified on"),
    ("Einträge.", "records."),
    (
        "Seit dem Start des Brokers noch nicht aus der Konsole geprüft.",
        "Not verified from the console since the broker started.",
    ),
    ("Ganze Kette jetzt prüfen", "Verify the whole chain now"),
    // dataset form
    ("Datensatz bearbeiten", "Edit dataset"),
    ("Datensatz registrieren", "Register a dataset"),
    ("ist gespeichert.", "is saved."),
    ("Nutzungsrichtlinie schreiben", "Write its usage policy"),
    ("Der Datensatz ist so nicht gespeichert", "The dataset is not saved like this"),
    (
        "Die Felder folgen dem Schema schemas/dataset.schema.json, das auch die Schnittstelle prüft; mit * markierte Felder sind Pflicht.",
        "The fields follow the schema schemas/dataset.schema.json that the API checks too; fields marked * are required.",
    ),
    ("Beschreibung", "Description"),
    (
        "Kennung (Kleinbuchstaben, Ziffern, Bindestriche; leer: wird vergeben)",
        "Identifier (lower-case letters, digits, hyphens; empty: one is chosen)",
    ),
    ("Kennung:", "Identifier:"),
    ("Titel (deutsch) *", "Title (German) *"),
    ("Titel (englisch)", "Title (English)"),
    ("Beschreibung (deutsch) *", "Description (German) *"),
    ("Beschreibung (englisch)", "Description (English)"),
    ("Themen * (EU-Datenthemen)", "Themes * (EU data themes)"),
    ("Schlagwörter * (mit Komma getrennt)", "Keywords * (separated by commas)"),
    (
        "Räumlicher Bezug * (IRIs, eine je Zeile)",
        "Spatial coverage * (IRIs, one per line)",
    ),
    ("Zeitraum: Beginn *", "Period: start *"),
    ("Zeitraum: Ende", "Period: end"),
    ("Rechte und Kontakt", "Rights and contact"),
    (
        "Lizenz (DCAT-AP.de; Lizenz oder Zugangsrechte sind Pflicht)",
        "Licence (DCAT-AP.de; a licence or access rights are required)",
    ),
    ("– keine –", "– none –"),
    ("Zugangsrechte", "Access rights"),
    ("– keine Angabe –", "– not given –"),
    ("Ansprechstelle *", "Contact point *"),
    (
        "E-Mail der Ansprechstelle (E-Mail oder Webseite ist Pflicht)",
        "Contact e-mail (an e-mail address or web page is required)",
    ),
    ("Webseite der Ansprechstelle", "Contact web page"),
    (
        "Verteilungen * (woher der Broker die Daten holt)",
        "Distributions * (where the broker gets the data)",
    ),
    (
        "Adresse: eine https-Adresse der Schnittstelle Ihrer Kommune, oder hosted, wenn Sie die Daten beim Broker hochladen. Eine leere Zeile wird ignoriert. Registrierte Schnittstellen:",
        "Address: an https address of your municipality's API, or hosted if you upload the data to the broker. An empty row is ignored. Registered APIs:",
    ),
    ("Verteilung", "Distribution"),
    ("Bezeichnung", "Title"),
    (
        "Medientyp (z. B. text/csv, application/json)",
        "Media type (e.g. text/csv, application/json)",
    ),
    ("Adresse", "Address"),
    ("Änderungen speichern", "Save changes"),
    ("Registrieren", "Register"),
    ("Daten hochladen", "Upload data"),
    (
        "Die Datensätze als CSV (mit Kopfzeile) oder JSON (eine Liste von Objekten). Der Broker speichert sie verschlüsselt und gibt sie nur nach der Nutzungsrichtlinie weiter; eine neue Datei ersetzt die alte.",
        "The records as CSV (with a header line) or JSON (a list of objects). The broker keeps them encrypted and passes them on only as the usage policy says; a new file replaces the old one.",
    ),
    ("Datei (CSV oder JSON)", "File (CSV or JSON)"),
    ("Hochladen", "Upload"),
    // workbench
    ("Nutzungsrichtlinie für", "Usage policy for"),
    (
        "ist als Entwurf eingereicht. Ein Mitglied des Governance-Gremiums prüft und gibt sie frei (vier Augen).",
        "is submitted as a draft. A member of the governance board reviews and approves it (four eyes).",
    ),
    ("1. Wer darf die Daten wofür nutzen?", "1. Who may use the data for what?"),
    ("Zwecke (DPV; Mehrfachauswahl mit Strg)", "Purposes (DPV; several with Ctrl)"),
    ("Partnerkommunen", "Partner municipalities"),
    (
        "Höchstens … Anfragen je Monat und Partner (leer: unbegrenzt)",
        "At most … requests per month and partner (empty: no limit)",
    ),
    (
        "Gültig bis einschließlich (leer: unbefristet)",
        "Valid until, inclusive (empty: no end)",
    ),
    (
        "2. Was geschieht mit den Daten auf dem Weg?",
        "2. What happens to the data on the way?",
    ),
    ("Bekannte Felder dieses Datensatzes:", "Known fields of this dataset:"),
    ("noch keine geliefert", "none delivered yet"),
    ("Felder mit Komma trennen.", "Separate fields with commas."),
    (
        "Nur diese Felder weitergeben (Datenminimierung)",
        "Pass on only these fields (data minimisation)",
    ),
    ("Pseudonymisieren", "Pseudonymise"),
    ("Vergröbern: Feld", "Generalise: field"),
    ("Vergröbern: wie", "Generalise: how"),
    (
        "Nur zusammengefasst weitergeben, gruppiert nach",
        "Pass on only aggregated, grouped by",
    ),
    ("Kleinste gezeigte Gruppe", "Smallest group shown"),
    (
        "Partner löscht die Daten nach … Tagen (leer: keine Pflicht)",
        "Partner deletes the data after … days (empty: no duty)",
    ),
    (
        "Beschreibung (für das Gremium und das Verzeichnis)",
        "Description (for the board and the records)",
    ),
    ("Richtlinie erzeugen und prüfen", "Generate and check the policy"),
    ("3. Richtlinie (ODRL, Turtle)", "3. Policy (ODRL, Turtle)"),
    ("Als Entwurf einreichen", "Submit as a draft"),
    ("So versteht der Broker diese Richtlinie", "How the broker reads this policy"),
    // granularities (authoring::Granularity::label_de)
    ("Datum auf den Monat", "date to the month"),
    ("Datum auf das Jahr", "date to the year"),
    ("Alter in 5-Jahres-Gruppen", "age in 5-year bands"),
    ("Alter in 10-Jahres-Gruppen", "age in 10-year bands"),
    // decisions in the simulation
    ("erlaubt", "permitted"),
    // fields of the dataset form, as violations name them
    ("Schlagwörter", "Keywords"),
    ("Räumlicher Bezug", "Spatial coverage"),
    ("Zeitraum", "Period"),
    ("Lizenz", "Licence"),
    ("Ansprechstelle", "Contact point"),
    ("Verteilungen", "Distributions"),
    ("Herausgeber", "Publisher"),
    ("Formular", "Form"),
    // texts the handlers choose
    ("nicht lesbar", "unreadable"),
    ("Entwurf, wartet auf Freigabe", "draft, waiting for approval"),
    ("freigegeben, in Kraft", "approved, in force"),
    ("freigegeben, abgelöst", "approved, superseded"),
    ("vom Gremium abgelehnt", "rejected by the board"),
    ("Anfragen je Monat", "Requests per month"),
    ("Anfragen nach Partnerkommune", "Requests by partner municipality"),
    ("Anfragen nach Zweck", "Requests by purpose"),
    ("Bedingung nicht erfüllt:", "Constraint not met:"),
    ("keine Löschpflicht in der Richtlinie", "no erasure duty in the policy"),
    ("öffentlich", "public"),
    ("eingeschränkt", "restricted"),
    ("nicht öffentlich", "non-public"),
    (
        "keine – nur „hosted“ (Daten hochladen) ist möglich",
        "none – only “hosted” (upload the data) is possible",
    ),
    (
        "Diese Kennung ist vergeben (oder war es: zurückgezogene Kennungen werden nicht wieder vergeben).",
        "This identifier is taken (or was: withdrawn identifiers are never given again).",
    ),
    (
        "weder CSV noch JSON (Dateiendung .csv oder .json).",
        "neither CSV nor JSON (file name ending .csv or .json).",
    ),
    (
        "Dieser Datensatz hat keine Verteilung „hosted“; der Broker holt seine Daten von der Schnittstelle der Kommune.",
        "This dataset has no “hosted” distribution; the broker fetches its data from the municipality's API.",
    ),
    ("Die Datei ist nicht lesbar:", "The file cannot be read:"),
    ("keine in Kraft", "none in force"),
    ("Noch kein Prüfpunkt signiert.", "No checkpoint signed yet."),
    ("Die Prüfpunktdatei ist nicht lesbar:", "The checkpoint file cannot be read:"),
    ("Die Prüfpunktdatei ist beschädigt.", "The checkpoint file is damaged."),
    (
        "Die Signatur des Prüfpunkts passt nicht zum öffentlichen Schlüssel des Brokers.",
        "The checkpoint's signature does not match the broker's public key.",
    ),
    (
        "nicht freigegeben (keine Richtlinie in Kraft, Datensatz geändert oder zurückgezogen)",
        "not shared (no policy in force, dataset changed or withdrawn)",
    ),
    (
        "keine Erlaubnis für diese Kommune oder Handlung",
        "no permission for this municipality or action",
    ),
    (
        "Richtlinie nicht auswertbar (abgelehnt, sicherheitshalber)",
        "policy could not be evaluated (denied, to be safe)",
    ),
];
