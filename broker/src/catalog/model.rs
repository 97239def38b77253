//! The catalog's typed model: members and dataset descriptions as the API speaks them.
//!
//! These types are what a request body becomes *after* JSON-Schema validation; the DCAT-AP.de
//! triples in [`super::dcat`] are produced from them and read back into them.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::identity::{Ags, Role};

/// A member municipality (or other organisation) of the data space.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Member {
    pub ags: Ags,
    pub organisation: String,
    /// The roles this member's certificates may carry.
    pub roles: Vec<Role>,
    /// A contact IRI (`mailto:` or `https:`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact: Option<String>,
    /// Where this member's own APIs answer (`https://host:port`): the only places the broker
    /// fetches this member's data from, and the only addresses it dials at all. Registered by
    /// the operator in the configuration, never by a member through the API.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub providers: Vec<Origin>,
    /// The member's GovData contributor ID (`dcatde:contributorID`, an IRI of the DCAT-AP.de
    /// contributor list such as `http://dcat-ap.de/def/contributors/datenBW`), for harvesting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contributor: Option<String>,
}

/// An `https` origin, `https://<host>:<port>` with the host in lower case and the port always
/// written out, so two spellings of one origin compare equal.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Origin(String);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("'{0}' is not an https origin (https://host or https://host:port, no user, path, query or fragment)")]
pub struct BadOrigin(pub String);

impl Origin {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The origin of an `https` URL, or `None` if it is not one (another scheme, a user part,
    /// no host, a malformed port).
    pub fn of_url(url: &str) -> Option<Self> {
        let rest = url.get(..8).filter(|s| s.eq_ignore_ascii_case("https://")).map(|_| &url[8..])?;
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let authority = &rest[..end];
        if authority.is_empty() || authority.contains('@') || authority.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return None;
        }
        let (host, port) = match authority.rsplit_once(':') {
            // `[::1]:8443`, `example.org:8443`; a bare IPv6 literal's colons are inside brackets.
            Some((h, p)) if !p.contains(']') => (h, p.parse::<u16>().ok().filter(|p| *p != 0)?),
            _ => (authority, 443),
        };
        let ok_host = !host.is_empty()
            && (host.starts_with('[') && host.ends_with(']') || host.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-'));
        ok_host.then(|| Self(format!("https://{}:{port}", host.to_ascii_lowercase())))
    }
}

impl FromStr for Origin {
    type Err = BadOrigin;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let trimmed = s.strip_suffix('/').unwrap_or(s);
        let no_path = trimmed.get(8..).is_some_and(|rest| !rest.contains(['/', '?', '#']));
        Self::of_url(trimmed).filter(|_| no_path).ok_or_else(|| BadOrigin(s.to_owned()))
    }
}

impl TryFrom<String> for Origin {
    type Error = BadOrigin;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Origin> for String {
    fn from(o: Origin) -> Self {
        o.0
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Member {
    /// The member as `viewer`'s certificates see it: where another city's APIs answer is the
    /// broker's business, not the viewer's.
    #[must_use]
    pub fn seen_by(mut self, viewer: &Ags) -> Self {
        if *viewer != self.ags {
            self.providers.clear();
        }
        self
    }

    /// Whether `url` is at one of this member's registered provider origins.
    pub fn serves(&self, url: &str) -> bool {
        Origin::of_url(url).is_some_and(|o| self.providers.contains(&o))
    }
}

/// A dataset identifier: lower-case letters, digits and hyphens, 3 to 63 characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DatasetId(String);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("'{0}' is not a dataset identifier (3-63 of a-z, 0-9 and '-', not starting with '-')")]
pub struct BadDatasetId(pub String);

impl DatasetId {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A fresh random identifier.
    pub fn generate() -> Self {
        Self(format!("ds-{}", uuid::Uuid::new_v4().simple()))
    }
}

impl FromStr for DatasetId {
    type Err = BadDatasetId;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let ok = (3..=63).contains(&s.len())
            && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !s.starts_with('-');
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(BadDatasetId(s.to_owned()))
        }
    }
}

impl TryFrom<String> for DatasetId {
    type Error = BadDatasetId;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<DatasetId> for String {
    fn from(d: DatasetId) -> Self {
        d.0
    }
}

impl fmt::Display for DatasetId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Language tags the data space accepts for titles and descriptions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Lang {
    De,
    En,
}

impl Lang {
    pub fn tag(self) -> &'static str {
        match self {
            Lang::De => "de",
            Lang::En => "en",
        }
    }

    pub fn from_tag(tag: &str) -> Option<Self> {
        match tag {
            "de" => Some(Lang::De),
            "en" => Some(Lang::En),
            _ => None,
        }
    }
}

pub type LangText = BTreeMap<Lang, String>;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Temporal {
    pub start: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContactPoint {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// Where a distribution's data comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    /// The provider city's own API, fetched by the broker over mutual TLS.
    Url(String),
    /// Uploaded by the provider's steward and kept by the broker.
    Hosted,
}

impl Serialize for Access {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Access::Url(u) => s.serialize_str(u),
            Access::Hosted => s.serialize_str("hosted"),
        }
    }
}

impl<'de> Deserialize<'de> for Access {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ok(if s == "hosted" { Access::Hosted } else { Access::Url(s) })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Distribution {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Always given when a steward registers a distribution (the schema requires it); an
    /// imported one may have none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    #[serde(rename = "accessURL")]
    pub access_url: Access,
}

/// The description a steward submits (the request body of `POST`/`PUT /v1/datasets`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DatasetDescription {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identifier: Option<DatasetId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publisher: Option<Ags>,
    pub title: LangText,
    pub description: LangText,
    pub themes: Vec<String>,
    pub keywords: Vec<String>,
    pub spatial: Vec<String>,
    pub temporal: Temporal,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub license: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_rights: Option<String>,
    pub contact_point: ContactPoint,
    pub distributions: Vec<Distribution>,
}

/// A registered dataset: the description plus what the broker knows about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Dataset {
    pub id: DatasetId,
    pub publisher: Ags,
    /// RFC 3339 timestamps.
    pub issued: String,
    pub modified: String,
    pub title: LangText,
    pub description: LangText,
    pub themes: Vec<String>,
    pub keywords: Vec<String>,
    pub spatial: Vec<String>,
    /// Always there for a registered dataset; an imported one may have none (or one the
    /// typed model cannot read, such as a blank node: the graph keeps it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temporal: Option<Temporal>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub license: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_rights: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact_point: Option<ContactPoint>,
    pub distributions: Vec<Distribution>,
}

impl Dataset {
    /// Builds the stored form of a description for `publisher`. Multi-valued properties are
    /// sets in RDF, so they are kept sorted: what is stored reads back identically.
    pub fn from_description(id: DatasetId, publisher: Ags, mut d: DatasetDescription, issued: String, modified: String) -> Self {
        for list in [&mut d.themes, &mut d.keywords, &mut d.spatial] {
            list.sort();
            list.dedup();
        }
        Self {
            id,
            publisher,
            issued,
            modified,
            title: d.title,
            description: d.description,
            themes: d.themes,
            keywords: d.keywords,
            spatial: d.spatial,
            temporal: Some(d.temporal),
            license: d.license,
            access_rights: d.access_rights,
            contact_point: Some(d.contact_point),
            distributions: d.distributions,
        }
    }
}

/// What is left of a withdrawn dataset: enough to say so, and to keep its identifier from ever
/// naming another dataset (whose data, policies or history it would otherwise inherit).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Tombstone {
    pub id: DatasetId,
    pub publisher: Ags,
    /// RFC 3339.
    pub withdrawn: String,
}

impl Dataset {
    /// The dataset as a member other than its publisher sees it: each distribution's data is
    /// at `data_access` (the broker's exchange API), never at the provider's own address.
    #[must_use]
    pub fn seen_by(mut self, viewer: &Ags, data_access: &str) -> Self {
        if *viewer != self.publisher {
            for d in &mut self.distributions {
                if let Access::Url(u) = &mut d.access_url {
                    data_access.clone_into(u);
                }
            }
        }
        self
    }

    /// SHA-256 (hex) over the distributions as stored: what a board approves a policy for. Any
    /// change of an access URL, media type or title gives another digest.
    pub fn distributions_digest(&self) -> String {
        let text = serde_json::to_string(&self.distributions).unwrap_or_default();
        crate::hex::encode(ring::digest::digest(&ring::digest::SHA256, text.as_bytes()).as_ref())
    }
}

/// Filters of `GET /v1/datasets`; every given filter must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DatasetFilter {
    /// Case-insensitive match against any keyword.
    pub keyword: Option<String>,
    /// An EU data-theme code.
    pub theme: Option<String>,
    pub publisher: Option<Ags>,
}

impl DatasetFilter {
    pub fn matches(&self, d: &Dataset) -> bool {
        let kw = self.keyword.as_ref().is_none_or(|k| {
            let k = k.to_lowercase();
            d.keywords.iter().any(|x| x.to_lowercase() == k)
        });
        let theme = self.theme.as_ref().is_none_or(|t| d.themes.iter().any(|x| x == t));
        let publisher = self.publisher.as_ref().is_none_or(|p| *p == d.publisher);
        kw && theme && publisher
    }
}

#[cfg(test)]
mod tests {
    use super::Origin;

    #[test]
    fn origins_are_compared_in_one_spelling_and_refuse_confusing_urls() {
        let o: Origin = "https://Aalen.Example".parse().expect("origin");
        assert_eq!(o.as_str(), "https://aalen.example:443");
        assert_eq!(Origin::of_url("https://aalen.example:443/api/termine?x=1"), Some(o.clone()));
        assert_eq!(Origin::of_url("https://aalen.example/"), Some(o));
        assert_eq!(
            "https://127.0.0.1:9441/".parse::<Origin>().expect("ip").as_str(),
            "https://127.0.0.1:9441"
        );
        assert_eq!(Origin::of_url("https://[::1]:8443/x").expect("v6").as_str(), "https://[::1]:8443");
        for bad in [
            "http://aalen.example",
            "https://aalen.example@heidenheim.example/",
            "https://aalen.example:0/",
            "https://aalen.example:99999/",
            "https:///path",
            "https://aalen example/",
            "file:///etc/passwd",
        ] {
            assert_eq!(Origin::of_url(bad), None, "{bad}");
        }
        assert!("https://aalen.example/api".parse::<Origin>().is_err(), "an origin has no path");
    }
}
