//! Every namespace the broker writes or reads, defined once.
//!
//! Why one module: an IRI that differs by one character is a different term, and a graph written
//! with one spelling and read with another silently loses statements. The policy namespaces come
//! from the policy compiler, which defines what its IR means.

pub use policy_compiler::ir::KDR as KDR_ODRL;
pub use policy_compiler::vocab::{DPV, ODRL};

/// DCAT 3.
pub const DCAT: &str = "http://www.w3.org/ns/dcat#";
/// Dublin Core terms.
pub const DCT: &str = "http://purl.org/dc/terms/";
/// DCAT-AP.de's own properties.
pub const DCATDE: &str = "http://dcat-ap.de/def/dcatde/";
pub const VCARD: &str = "http://www.w3.org/2006/vcard/ns#";
pub const FOAF: &str = "http://xmlns.com/foaf/0.1/";
/// The EU data themes (`dcat:theme`).
pub const THEME_PREFIX: &str = "http://publications.europa.eu/resource/authority/data-theme/";
/// The EU access-rights table (`dct:accessRights`).
pub const ACCESS_RIGHT_PREFIX: &str = "http://publications.europa.eu/resource/authority/access-right/";
pub const MEDIA_TYPE_PREFIX: &str = "https://www.iana.org/assignments/media-types/";
/// The EU file-type table (`dct:format`).
pub const FILE_TYPE_PREFIX: &str = "http://publications.europa.eu/resource/authority/file-type/";
/// The EU language table (`dct:language`).
pub const LANGUAGE_PREFIX: &str = "http://publications.europa.eu/resource/authority/language/";
/// DCAT-AP.de's controlled vocabularies (licences, contributors, geocoding levels, ...).
pub const DCATDE_DEF: &str = "http://dcat-ap.de/def/";
/// The DCAT-AP.de licence vocabulary.
pub const LICENSES_PREFIX: &str = "http://dcat-ap.de/def/licenses/";
pub const ADMS: &str = "http://www.w3.org/ns/adms#";
pub const SKOS: &str = "http://www.w3.org/2004/02/skos/core#";
/// The ISA Location Core vocabulary (`locn:geometry`).
pub const LOCN: &str = "http://www.w3.org/ns/locn#";
/// GeoSPARQL, whose geometry literals DCAT-AP.de puts under `locn:geometry`.
pub const GSP: &str = "http://www.opengis.net/ont/geosparql#";
/// The EU distribution-status table (DCAT-AP.de 3.0's `adms:status` values).
pub const DISTRIBUTION_STATUS_PREFIX: &str = "http://publications.europa.eu/resource/authority/distribution-status/";
/// DCAT-AP.de's geocoding IRI prefix for municipality keys; the AGS travels in a SAN URI of this form.
pub const AGS_IRI_PREFIX: &str = "http://dcat-ap.de/def/politicalGeocoding/municipalityKey/";
/// The project's own namespace for terms the standards lack (roles, problem types, profile terms).
pub const KDR: &str = "https://w3id.org/kdr/";
/// Role IRIs in certificates are `{KDR}role/{name}`: the member roles, and the `broker` and
/// `provider` roles of the two kinds of service certificate.
pub const ROLE_IRI_PREFIX: &str = "https://w3id.org/kdr/role/";
