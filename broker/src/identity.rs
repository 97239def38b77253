//! Who is calling: the identity the rest of the broker sees, derived from a verified client
//! certificate and nothing else.
//!
//! The TLS layer has already checked the chain, validity and revocation; this module only reads
//! what the data space's CA wrote into the certificate. It *parses* instead of validating: an
//! [`Identity`] can only exist with a well-formed municipality key and a known role, so code that
//! holds one never re-checks them.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

pub use crate::ns::{AGS_IRI_PREFIX, KDR as NS, ROLE_IRI_PREFIX};

/// An 8-digit German municipality key (Amtlicher Gemeindeschlüssel), e.g. Aalen `08136088`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Ags(String);

impl Ags {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The DCAT-AP.de political geocoding IRI of this municipality.
    pub fn iri(&self) -> String {
        format!("{AGS_IRI_PREFIX}{}", self.0)
    }
}

impl FromStr for Ags {
    type Err = IdentityError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() == 8 && s.bytes().all(|b| b.is_ascii_digit()) {
            Ok(Self(s.to_owned()))
        } else {
            Err(IdentityError::MalformedAgs(s.to_owned()))
        }
    }
}

impl TryFrom<String> for Ags {
    type Error = IdentityError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Ags> for String {
    fn from(a: Ags) -> Self {
        a.0
    }
}

impl fmt::Display for Ags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Ags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Ags({})", self.0)
    }
}

/// What a certificate holder may do in the data space.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// A city's application that exchanges data.
    System,
    /// A person who manages a city's datasets and policies.
    Steward,
    /// A governance-board member who reviews usage and approves policies.
    Board,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::System, Role::Steward, Role::Board];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::Steward => "steward",
            Role::Board => "board",
        }
    }

    pub fn iri(self) -> String {
        format!("{ROLE_IRI_PREFIX}{}", self.as_str())
    }
}

impl FromStr for Role {
    type Err = IdentityError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| IdentityError::UnknownRole(s.to_owned()))
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The verified identity of a peer. Built only from a certificate the TLS layer accepted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Identity {
    pub ags: Ags,
    pub organisation: String,
    pub role: Role,
    /// The certificate's common name: the system's or person's name.
    pub common_name: String,
    /// The certificate serial in lower-case hex without separators.
    pub serial: String,
    /// When the certificate expires (Unix seconds): checked on every request, not only at the
    /// handshake, so a kept-alive connection does not outlive its certificate.
    #[serde(skip)]
    pub not_after: i64,
}

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum IdentityError {
    #[error("the client certificate could not be parsed: {0}")]
    Unparseable(String),
    #[error("the client certificate names no municipality key (a SAN URI {AGS_IRI_PREFIX}<AGS>)")]
    MissingAgs,
    #[error("the client certificate names more than one municipality key")]
    AmbiguousAgs,
    #[error("'{0}' is not an 8-digit municipality key (AGS)")]
    MalformedAgs(String),
    #[error("the client certificate names no role (a SAN URI {ROLE_IRI_PREFIX}<role>)")]
    MissingRole,
    #[error("the client certificate names more than one role")]
    AmbiguousRole,
    #[error("'{0}' is not a role of this data space (system, steward, board)")]
    UnknownRole(String),
    #[error("the client certificate names no organisation (subject O)")]
    MissingOrganisation,
    #[error("no client certificate was presented")]
    NoCertificate,
    #[error("the certificate is not a {0} certificate of this data space (no SAN URI {ROLE_IRI_PREFIX}{0})")]
    NotService(&'static str),
}

/// The roles of the two kinds of service certificate, beside the member [`Role`]s: the broker's
/// own (it authenticates to providers with it) and a city's provider API (it proves to the
/// broker whose data it serves). Neither is a member role, so neither opens the broker's API.
pub const BROKER_ROLE: &str = "broker";
pub const PROVIDER_ROLE: &str = "provider";

/// What a provider's server certificate says: whose provider it is, and its serial and expiry
/// (for the revocation check).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderIdentity {
    pub ags: Ags,
    pub serial: String,
    pub not_after: i64,
}

/// The municipality a provider's server certificate names: it must carry the provider role and
/// exactly one municipality key.
pub fn provider_ags(der: &[u8]) -> Result<Ags, IdentityError> {
    provider_identity(der).map(|p| p.ags)
}

/// [`provider_ags`] with the certificate's serial and expiry.
pub fn provider_identity(der: &[u8]) -> Result<ProviderIdentity, IdentityError> {
    let (_, cert) = X509Certificate::from_der(der).map_err(|e| IdentityError::Unparseable(e.to_string()))?;
    let uris = san_uris(&cert)?;
    let role = single(&uris, ROLE_IRI_PREFIX, IdentityError::MissingRole, IdentityError::AmbiguousRole)?;
    if role != PROVIDER_ROLE {
        return Err(IdentityError::NotService(PROVIDER_ROLE));
    }
    Ok(ProviderIdentity {
        ags: single(&uris, AGS_IRI_PREFIX, IdentityError::MissingAgs, IdentityError::AmbiguousAgs)?.parse()?,
        serial: cert.raw_serial_as_string().replace(':', "").to_ascii_lowercase(),
        not_after: cert.validity().not_after.timestamp(),
    })
}

/// Whether a certificate is the broker's own (it carries the broker role and nothing else).
pub fn is_broker(der: &[u8]) -> bool {
    X509Certificate::from_der(der)
        .ok()
        .and_then(|(_, cert)| san_uris(&cert).ok())
        .is_some_and(|uris| {
            single(&uris, ROLE_IRI_PREFIX, IdentityError::MissingRole, IdentityError::AmbiguousRole) == Ok(BROKER_ROLE)
                && !uris.iter().any(|u| u.starts_with(AGS_IRI_PREFIX))
        })
}

impl Identity {
    /// Reads the identity out of a DER certificate that the TLS layer has already verified.
    pub fn from_certificate_der(der: &[u8]) -> Result<Self, IdentityError> {
        let (_, cert) = X509Certificate::from_der(der).map_err(|e| IdentityError::Unparseable(e.to_string()))?;
        let uris = san_uris(&cert)?;
        let ags = single(&uris, AGS_IRI_PREFIX, IdentityError::MissingAgs, IdentityError::AmbiguousAgs)?.parse()?;
        let role = single(&uris, ROLE_IRI_PREFIX, IdentityError::MissingRole, IdentityError::AmbiguousRole)?.parse()?;
        let organisation = first_attr(cert.subject().iter_organization()).ok_or(IdentityError::MissingOrganisation)?;
        let common_name = first_attr(cert.subject().iter_common_name()).unwrap_or_default();
        let serial = cert.raw_serial_as_string().replace(':', "").to_ascii_lowercase();
        Ok(Self {
            ags,
            organisation,
            role,
            common_name,
            serial,
            not_after: cert.validity().not_after.timestamp(),
        })
    }
}

fn san_uris(cert: &X509Certificate<'_>) -> Result<Vec<String>, IdentityError> {
    let san = cert
        .subject_alternative_name()
        .map_err(|e| IdentityError::Unparseable(e.to_string()))?;
    Ok(san
        .map(|ext| {
            ext.value
                .general_names
                .iter()
                .filter_map(|n| match n {
                    GeneralName::URI(u) => Some((*u).to_owned()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default())
}

fn single<'a>(uris: &'a [String], prefix: &str, missing: IdentityError, ambiguous: IdentityError) -> Result<&'a str, IdentityError> {
    let mut found = uris.iter().filter_map(|u| u.strip_prefix(prefix));
    let first = found.next().ok_or(missing)?;
    if found.next().is_some() {
        return Err(ambiguous);
    }
    Ok(first)
}

fn first_attr<'a, 'b: 'a>(mut attrs: impl Iterator<Item = &'a x509_parser::x509::AttributeTypeAndValue<'b>>) -> Option<String> {
    attrs.next().and_then(|a| a.as_str().ok()).map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ags_must_be_eight_digits() {
        assert!("08136088".parse::<Ags>().is_ok());
        assert!("8136088".parse::<Ags>().is_err());
        assert!("0813608x".parse::<Ags>().is_err());
        assert!("081360880".parse::<Ags>().is_err());
    }

    #[test]
    fn roles_round_trip() {
        for r in Role::ALL {
            assert_eq!(r.as_str().parse::<Role>(), Ok(r));
        }
        assert!("admin".parse::<Role>().is_err());
    }
}
