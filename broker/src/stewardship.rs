//! A steward's changes to their city's dataset descriptions: register, change, withdraw.
//!
//! Why a module of its own: the API (`/v1/datasets`) and the console's form make the same
//! changes, and the rules must be one set — only stewards, only their own city's datasets, only
//! descriptions the JSON Schema admits, only access URLs at the provider origins the operator
//! registered for the city (the broker fetches a city's data only from that city), and every
//! change recorded in the audit trail before it is made ([`crate::changes`]). Each caller maps
//! [`DatasetError`] to its own answer (a problem document, a German form).

use serde_json::Value;

use crate::catalog::{Access, CatalogError, Dataset, DatasetDescription, DatasetId, Member};
use crate::changes::ChangeError;
use crate::exchange::Exchange;
use crate::identity::{Ags, Identity, Role};
use crate::schema::{Schemas, Violation};

/// Why a steward's change was not made.
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    #[error("a {0} certificate cannot change dataset descriptions; stewards do")]
    NotSteward(Role),
    #[error("a steward of {organisation} may only register datasets of {steward}, not of {publisher}")]
    OtherPublisher {
        organisation: String,
        steward: Ags,
        publisher: Ags,
    },
    #[error("dataset '{dataset}' is published by {publisher}; a steward of {steward} ({organisation}) may not {verb} it")]
    NotOwner {
        dataset: DatasetId,
        publisher: Ags,
        steward: Ags,
        organisation: String,
        verb: &'static str,
    },
    #[error("the publisher of a dataset cannot be changed")]
    PublisherChanged,
    /// The description breaks the schema or the provider rule, in these places.
    #[error("the dataset description violates schemas/dataset.schema.json in {} place(s)", .0.len())]
    Invalid(Vec<Violation>),
    #[error(transparent)]
    Change(#[from] ChangeError<CatalogError>),
}

/// Now, to the second, as dataset descriptions carry it (`dct:issued`, `dct:modified`).
pub fn now_seconds() -> String {
    let now = time::OffsetDateTime::now_utc();
    now.replace_nanosecond(0)
        .unwrap_or(now)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// Only stewards change descriptions.
pub fn require_steward(steward: &Identity) -> Result<(), DatasetError> {
    match steward.role {
        Role::Steward => Ok(()),
        other => Err(DatasetError::NotSteward(other)),
    }
}

/// Only the publishing city may change a dataset, its policy or its hosted data.
pub fn check_owner(steward: &Identity, member: &Member, dataset: &Dataset, verb: &'static str) -> Result<(), DatasetError> {
    if dataset.publisher == steward.ags {
        Ok(())
    } else {
        Err(DatasetError::NotOwner {
            dataset: dataset.id.clone(),
            publisher: dataset.publisher.clone(),
            steward: steward.ags.clone(),
            organisation: member.organisation.clone(),
            verb,
        })
    }
}

/// A description from JSON: the schema first (every violation with its place), then the
/// typed form.
pub fn description_of(schemas: &Schemas, value: Value) -> Result<DatasetDescription, DatasetError> {
    let violations = schemas.check_dataset(&value);
    if !violations.is_empty() {
        return Err(DatasetError::Invalid(violations));
    }
    serde_json::from_value(value).map_err(|e| {
        DatasetError::Invalid(vec![Violation {
            pointer: String::new(),
            message: e.to_string(),
        }])
    })
}

/// Every access URL must be at one of the provider origins registered for the steward's member
/// (the exchange checks it again on every request, and the provider's certificate too).
pub fn check_providers(member: &Member, d: &DatasetDescription) -> Result<(), DatasetError> {
    let registered: Vec<&str> = member.providers.iter().map(|o| o.as_str()).collect();
    let violations: Vec<Violation> = d
        .distributions
        .iter()
        .enumerate()
        .filter_map(|(i, dist)| match &dist.access_url {
            Access::Url(u) if !member.serves(u) => Some(Violation {
                pointer: format!("/distributions/{i}/accessURL"),
                message: if registered.is_empty() {
                    format!(
                        "{} has no registered provider API, so only 'hosted' distributions are possible; the operator registers provider origins in the configuration",
                        member.organisation
                    )
                } else {
                    format!(
                        "must be at a provider origin registered for {} ({}); the broker fetches a city's data only from that city",
                        member.organisation,
                        registered.join(", ")
                    )
                },
            }),
            _ => None,
        })
        .collect();
    if violations.is_empty() {
        Ok(())
    } else {
        Err(DatasetError::Invalid(violations))
    }
}

/// Registers `value` as a new dataset of the steward's city.
pub async fn register(
    exchange: &Exchange,
    schemas: &Schemas,
    steward: &Identity,
    member: &Member,
    value: Value,
) -> Result<Dataset, DatasetError> {
    require_steward(steward)?;
    let description = description_of(schemas, value)?;
    if let Some(p) = description.publisher.as_ref().filter(|p| **p != steward.ags) {
        return Err(DatasetError::OtherPublisher {
            organisation: member.organisation.clone(),
            steward: steward.ags.clone(),
            publisher: p.clone(),
        });
    }
    check_providers(member, &description)?;
    let id = description.identifier.clone().unwrap_or_else(DatasetId::generate);
    let now = now_seconds();
    let dataset = Dataset::from_description(id, steward.ags.clone(), description, now.clone(), now);
    let detail = serde_json::to_value(&dataset).unwrap_or_default();
    let record = crate::audit::AdminRecord::by(steward, "dataset-registered", dataset.id.as_str(), detail);
    let catalog = exchange.catalog.clone();
    let stored = dataset.clone();
    crate::changes::audited(&exchange.log, record, move || catalog.insert_dataset(&stored)).await?;
    tracing::info!(dataset = %dataset.id, by = %steward.ags, serial = %steward.serial, "dataset registered");
    Ok(dataset)
}

/// Replaces the description of `existing`, a dataset of the steward's city, with `value`.
pub async fn change(
    exchange: &Exchange,
    schemas: &Schemas,
    steward: &Identity,
    member: &Member,
    existing: &Dataset,
    value: Value,
) -> Result<Dataset, DatasetError> {
    require_steward(steward)?;
    check_owner(steward, member, existing, "change")?;
    let description = description_of(schemas, value)?;
    if description.identifier.as_ref().is_some_and(|i| *i != existing.id) {
        return Err(DatasetError::Invalid(vec![Violation {
            pointer: "/identifier".into(),
            message: format!("must be '{}', the identifier in the path", existing.id),
        }]));
    }
    if description.publisher.as_ref().is_some_and(|p| *p != existing.publisher) {
        return Err(DatasetError::PublisherChanged);
    }
    check_providers(member, &description)?;
    let dataset = Dataset::from_description(
        existing.id.clone(),
        existing.publisher.clone(),
        description,
        existing.issued.clone(),
        now_seconds(),
    );
    let detail = serde_json::to_value(&dataset).unwrap_or_default();
    let record = crate::audit::AdminRecord::by(steward, "dataset-changed", dataset.id.as_str(), detail);
    let catalog = exchange.catalog.clone();
    let stored = dataset.clone();
    crate::changes::audited(&exchange.log, record, move || catalog.replace_dataset(&stored)).await?;
    exchange.forget(&dataset.id);
    tracing::info!(dataset = %dataset.id, by = %steward.ags, serial = %steward.serial, "dataset replaced");
    Ok(dataset)
}

/// The description a dataset was registered with (what its edit form starts from).
pub fn description_value(d: &Dataset) -> Value {
    serde_json::json!({
        "identifier": d.id,
        "title": d.title,
        "description": d.description,
        "themes": d.themes,
        "keywords": d.keywords,
        "spatial": d.spatial,
        "temporal": d.temporal,
        "license": d.license,
        "accessRights": d.access_rights,
        "contactPoint": d.contact_point,
        "distributions": d.distributions,
    })
}
