//! The data space's PKI, built on rcgen: a CA, member and broker certificates, and a CRL.
//!
//! A member certificate says who the holder is in the terms the broker authorises by:
//! subject O = organisation, CN = the system's or person's name, and two SAN URIs, the
//! municipality key as DCAT-AP.de's geocoding IRI and the role as `https://w3id.org/kdr/role/<role>`.
//! Keys are ECDSA P-256 (BSI TR-02102-1 approved) and private keys are written 0600.
//!
//! Revocation state lives beside the CA (`revoked.json`); every revocation re-signs `ca.crl`
//! with a higher CRL number and replaces the file atomically, which the running broker notices.

use std::fs;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
    KeyIdMethod, KeyPair, KeyUsagePurpose, RevocationReason, RevokedCertParams, SanType, SerialNumber,
};
use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};

use crate::fsutil::{FileError, read_named, write_atomic};
use crate::identity::{Ags, BROKER_ROLE, PROVIDER_ROLE, ROLE_IRI_PREFIX, Role};

pub const CA_CERT: &str = "ca.crt";
pub const CA_KEY: &str = "ca.key";
pub const CA_CRL: &str = "ca.crl";
const REVOKED: &str = "revoked.json";
/// How long a CRL is valid before the CA must re-sign it (`broker pki crl`). The broker refuses
/// every client once its CRL has expired: better a visible outage than silently stale revocation.
pub const CRL_VALIDITY_DAYS: i64 = 30;

#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error(transparent)]
    File(#[from] FileError),
    #[error("cannot write '{path}': {source}")]
    Write { path: String, source: std::io::Error },
    #[error("certificate generation failed: {0}")]
    Rcgen(#[from] rcgen::Error),
    #[error("'{0}' already holds a CA; refusing to overwrite it")]
    CaExists(String),
    #[error("the revocation list '{path}' is corrupt: {reason}")]
    CorruptState { path: String, reason: String },
    #[error("'{0}' is not a hex certificate serial")]
    BadSerial(String),
    #[error("cannot parse certificate '{path}': {reason}")]
    BadCertificate { path: String, reason: String },
    #[error("cannot parse the private key '{path}': {reason}")]
    BadKey { path: String, reason: String },
    #[error("a PKCS#12 file needs a password of at least 8 characters (browsers refuse empty ones, and the file holds a private key)")]
    WeakPassword,
    #[error("cannot write the PKCS#12 file: {0}")]
    Pkcs12(String),
}

/// What to put into a member certificate.
#[derive(Debug, Clone)]
pub struct MemberCertSpec {
    pub common_name: String,
    pub organisation: String,
    pub ags: Ags,
    pub role: Role,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
}

impl MemberCertSpec {
    /// A certificate valid from now for `days` days.
    pub fn valid_for_days(common_name: &str, organisation: &str, ags: Ags, role: Role, days: i64) -> Self {
        let now = OffsetDateTime::now_utc();
        Self {
            common_name: common_name.to_owned(),
            organisation: organisation.to_owned(),
            ags,
            role,
            not_before: now - Duration::minutes(5),
            not_after: now + Duration::days(days),
        }
    }
}

/// A freshly issued certificate and its key, both PEM.
#[derive(Debug, Clone)]
pub struct Issued {
    pub cert_pem: String,
    pub key_pem: String,
    /// Lower-case hex, as [`crate::identity::Identity::serial`] reports it.
    pub serial: String,
}

impl Issued {
    /// Writes `<dir>/<name>.crt` and `<dir>/<name>.key` (0600).
    pub fn write(&self, dir: &Path, name: &str) -> Result<(PathBuf, PathBuf), PkiError> {
        let crt = dir.join(format!("{name}.crt"));
        let key = dir.join(format!("{name}.key"));
        write_file(&crt, self.cert_pem.as_bytes(), 0o644)?;
        write_file(&key, self.key_pem.as_bytes(), 0o600)?;
        Ok((crt, key))
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct RevocationState {
    crl_number: u64,
    revoked: Vec<RevokedEntry>,
}

#[derive(Debug, Serialize, Deserialize)]
struct RevokedEntry {
    serial: String,
    #[serde(with = "time::serde::rfc3339")]
    revoked_at: OffsetDateTime,
}

/// A CA on disk: its certificate, key and revocation state in one directory.
pub struct CertificateAuthority {
    dir: PathBuf,
    issuer: Issuer<'static, KeyPair>,
}

impl std::fmt::Debug for CertificateAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertificateAuthority")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl CertificateAuthority {
    /// Creates a new CA in `dir` (which must not hold one yet) and writes an empty CRL.
    pub fn create(dir: &Path, name: &str, days: i64) -> Result<Self, PkiError> {
        if dir.join(CA_CERT).exists() || dir.join(CA_KEY).exists() {
            return Err(PkiError::CaExists(dir.display().to_string()));
        }
        fs::create_dir_all(dir).map_err(|source| write_err(dir, source))?;
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        params.distinguished_name = dn(name, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let now = OffsetDateTime::now_utc();
        params.not_before = now - Duration::minutes(5);
        params.not_after = now + Duration::days(days);
        params.serial_number = Some(random_serial());
        params.key_identifier_method = KeyIdMethod::Sha256;
        let cert = params.self_signed(&key)?;
        write_file(&dir.join(CA_CERT), cert.pem().as_bytes(), 0o644)?;
        write_file(&dir.join(CA_KEY), key.serialize_pem().as_bytes(), 0o600)?;
        let ca = Self {
            dir: dir.to_owned(),
            issuer: Issuer::new(params, key),
        };
        ca.write_crl(&RevocationState::default())?;
        Ok(ca)
    }

    /// Opens the CA in `dir`.
    pub fn open(dir: &Path) -> Result<Self, PkiError> {
        let cert_pem = read_text(&dir.join(CA_CERT), "CA certificate")?;
        let key_pem = read_text(&dir.join(CA_KEY), "CA private key")?;
        let key = KeyPair::from_pem(&key_pem)?;
        let issuer = Issuer::from_ca_cert_pem(&cert_pem, key)?;
        Ok(Self {
            dir: dir.to_owned(),
            issuer,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn cert_path(&self) -> PathBuf {
        self.dir.join(CA_CERT)
    }

    pub fn crl_path(&self) -> PathBuf {
        self.dir.join(CA_CRL)
    }

    /// Issues a client certificate for a member's system, steward or board member.
    pub fn issue_member(&self, spec: &MemberCertSpec) -> Result<Issued, PkiError> {
        let mut params = CertificateParams::default();
        params.distinguished_name = dn(&spec.common_name, &spec.organisation);
        params.subject_alt_names = vec![SanType::URI(spec.ags.iri().try_into()?), SanType::URI(spec.role.iri().try_into()?)];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.not_before = spec.not_before;
        params.not_after = spec.not_after;
        self.sign_leaf(params)
    }

    /// Issues the broker's own certificate: server authentication for the listed DNS names and
    /// IP addresses, and client authentication for fetching from the cities' APIs. It carries
    /// the broker role (`https://w3id.org/kdr/role/broker`), by which providers admit the broker
    /// and no one else.
    pub fn issue_server(&self, common_name: &str, organisation: &str, names: &[String], days: i64) -> Result<Issued, PkiError> {
        let mut params = CertificateParams::new(names.to_vec())?;
        params.distinguished_name = dn(common_name, organisation);
        params
            .subject_alt_names
            .push(SanType::URI(format!("{ROLE_IRI_PREFIX}{BROKER_ROLE}").try_into()?));
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
        let now = OffsetDateTime::now_utc();
        params.not_before = now - Duration::minutes(5);
        params.not_after = now + Duration::days(days);
        self.sign_leaf(params)
    }

    /// Issues a city's provider certificate: server authentication only, for the listed DNS
    /// names and IP addresses, with the city's municipality key and the provider role
    /// (`https://w3id.org/kdr/role/provider`). The broker fetches a city's data only from a
    /// server that presents one with that city's key.
    pub fn issue_provider(
        &self,
        common_name: &str,
        organisation: &str,
        ags: &Ags,
        names: &[String],
        days: i64,
    ) -> Result<Issued, PkiError> {
        let mut params = CertificateParams::new(names.to_vec())?;
        params.distinguished_name = dn(common_name, organisation);
        params.subject_alt_names.push(SanType::URI(ags.iri().try_into()?));
        params
            .subject_alt_names
            .push(SanType::URI(format!("{ROLE_IRI_PREFIX}{PROVIDER_ROLE}").try_into()?));
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let now = OffsetDateTime::now_utc();
        params.not_before = now - Duration::minutes(5);
        params.not_after = now + Duration::days(days);
        self.sign_leaf(params)
    }

    fn sign_leaf(&self, mut params: CertificateParams) -> Result<Issued, PkiError> {
        let key = KeyPair::generate()?;
        let serial = random_serial();
        let serial_hex = crate::hex::encode(&serial.to_bytes());
        params.serial_number = Some(serial);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.use_authority_key_identifier_extension = true;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            serial: serial_hex,
        })
    }

    /// Revokes a certificate by serial (hex, colons allowed) and re-signs the CRL.
    pub fn revoke(&self, serial_hex: &str) -> Result<(), PkiError> {
        let serial = normalise_serial(serial_hex)?;
        let mut state = self.load_state()?;
        if !state.revoked.iter().any(|r| r.serial == serial) {
            state.revoked.push(RevokedEntry {
                serial,
                revoked_at: OffsetDateTime::now_utc(),
            });
        }
        state.crl_number += 1;
        self.write_crl(&state)?;
        self.save_state(&state)
    }

    /// Re-signs the CRL with the current revocations (e.g. before it expires).
    pub fn resign_crl(&self) -> Result<(), PkiError> {
        self.resign_crl_until(OffsetDateTime::now_utc() + Duration::days(CRL_VALIDITY_DAYS))
    }

    /// Re-signs the CRL with `next_update` as its end (a shorter validity; a time already past
    /// makes an expired CRL, which the broker treats as unusable: every client is refused).
    pub fn resign_crl_until(&self, next_update: OffsetDateTime) -> Result<(), PkiError> {
        let mut state = self.load_state()?;
        state.crl_number += 1;
        self.write_crl_until(&state, next_update)?;
        self.save_state(&state)
    }

    fn write_crl(&self, state: &RevocationState) -> Result<(), PkiError> {
        self.write_crl_until(state, OffsetDateTime::now_utc() + Duration::days(CRL_VALIDITY_DAYS))
    }

    fn write_crl_until(&self, state: &RevocationState, next_update: OffsetDateTime) -> Result<(), PkiError> {
        let now = OffsetDateTime::now_utc();
        let revoked_certs = state
            .revoked
            .iter()
            .map(|r| {
                Ok(RevokedCertParams {
                    serial_number: SerialNumber::from_slice(&unhex(&r.serial)?),
                    revocation_time: r.revoked_at,
                    reason_code: Some(RevocationReason::Unspecified),
                    invalidity_date: None,
                })
            })
            .collect::<Result<Vec<_>, PkiError>>()?;
        let params = CertificateRevocationListParams {
            this_update: (now - Duration::minutes(5)).min(next_update - Duration::minutes(1)),
            next_update,
            crl_number: SerialNumber::from_slice(&state.crl_number.max(1).to_be_bytes()),
            issuing_distribution_point: None,
            revoked_certs,
            key_identifier_method: KeyIdMethod::Sha256,
        };
        let crl = params.signed_by(&self.issuer)?;
        write_file(&self.crl_path(), crl.pem()?.as_bytes(), 0o644)
    }

    fn load_state(&self) -> Result<RevocationState, PkiError> {
        let path = self.dir.join(REVOKED);
        if !path.exists() {
            return Ok(RevocationState::default());
        }
        let bytes = read_named(&path, "revocation state")?;
        serde_json::from_slice(&bytes).map_err(|e| PkiError::CorruptState {
            path: path.display().to_string(),
            reason: e.to_string(),
        })
    }

    fn save_state(&self, state: &RevocationState) -> Result<(), PkiError> {
        let bytes = serde_json::to_vec_pretty(state).map_err(|e| PkiError::CorruptState {
            path: self.dir.join(REVOKED).display().to_string(),
            reason: e.to_string(),
        })?;
        write_file(&self.dir.join(REVOKED), &bytes, 0o644)
    }
}

/// Reads the serial of a PEM certificate file, for `broker pki revoke --cert`.
pub fn serial_of_cert_file(path: &Path) -> Result<String, PkiError> {
    let pem = read_named(path, "certificate")?;
    let bad = |reason: String| PkiError::BadCertificate {
        path: path.display().to_string(),
        reason,
    };
    let (_, pem) = x509_parser::pem::parse_x509_pem(&pem).map_err(|e| bad(e.to_string()))?;
    let cert = pem.parse_x509().map_err(|e| bad(e.to_string()))?;
    Ok(cert.raw_serial_as_string().replace(':', "").to_ascii_lowercase())
}

/// A member certificate, its key and the CA certificate as one PKCS#12 file, for importing
/// into a browser (or the operating system's certificate store) to open the console.
///
/// Encrypted with PBES2 (PBKDF2-HMAC-SHA-256, AES-256-CBC) and an HMAC-SHA-256 MAC: what
/// OpenSSL 3 writes by default and Chromium, Firefox, Windows and NSS's `pk12util` read. The
/// password protects the private key on its way to the browser: at least 8 characters.
pub fn export_pkcs12(cert: &Path, key: &Path, ca: &Path, password: &str) -> Result<Vec<u8>, PkiError> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    if password.chars().count() < 8 {
        return Err(PkiError::WeakPassword);
    }
    let bad_cert = |path: &Path, reason: String| PkiError::BadCertificate {
        path: path.display().to_string(),
        reason,
    };
    let mut chain = Vec::new();
    for path in [cert, ca] {
        let der = CertificateDer::from_pem_file(path).map_err(|e| bad_cert(path, e.to_string()))?;
        chain.push(p12_keystore::Certificate::from_der(der.as_ref()).map_err(|e| bad_cert(path, e.to_string()))?);
    }
    let bad_key = |reason: String| PkiError::BadKey {
        path: key.display().to_string(),
        reason,
    };
    let der = match PrivateKeyDer::from_pem_file(key).map_err(|e| bad_key(e.to_string()))? {
        PrivateKeyDer::Pkcs8(k) => k.secret_pkcs8_der().to_vec(),
        _ => return Err(bad_key("not a PKCS#8 key (the broker's `pki` writes PKCS#8)".into())),
    };
    let private = p12_keystore::PrivateKey::from_der(&der).map_err(|e| bad_key(e.to_string()))?;
    let serial = serial_of_cert_file(cert)?;
    let alias = chain.first().map(|c| c.subject().to_owned()).unwrap_or_else(|| serial.clone());
    let mut store = p12_keystore::KeyStore::new();
    store.add_entry(
        &alias,
        p12_keystore::KeyStoreEntry::PrivateKeyChain(p12_keystore::PrivateKeyChain::new(serial.as_bytes(), private, chain)),
    );
    store.writer(password).write().map_err(|e| PkiError::Pkcs12(e.to_string()))
}

fn dn(common_name: &str, organisation: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CountryName, "DE");
    dn.push(DnType::OrganizationName, organisation);
    dn.push(DnType::CommonName, common_name);
    dn
}

/// 16 random bytes with the top bit cleared, so the DER INTEGER stays positive and at most 20 octets.
fn random_serial() -> SerialNumber {
    let mut bytes = *uuid::Uuid::new_v4().as_bytes();
    bytes[0] &= 0x7f;
    bytes[0] |= 0x01; // no leading zero byte: the serial's hex stays 32 digits
    SerialNumber::from_slice(&bytes)
}

fn normalise_serial(s: &str) -> Result<String, PkiError> {
    let cleaned: String = s.chars().filter(|c| *c != ':').collect::<String>().to_ascii_lowercase();
    unhex(&cleaned)?;
    Ok(cleaned)
}

/// A certificate serial's bytes: 1 to 20 of them (RFC 5280), in hex.
fn unhex(s: &str) -> Result<Vec<u8>, PkiError> {
    crate::hex::decode(s)
        .filter(|b| (1..=20).contains(&b.len()))
        .ok_or_else(|| PkiError::BadSerial(s.to_owned()))
}

fn read_text(path: &Path, what: &str) -> Result<String, PkiError> {
    let bytes = read_named(path, what)?;
    String::from_utf8(bytes).map_err(|_| PkiError::BadCertificate {
        path: path.display().to_string(),
        reason: "not UTF-8 PEM".into(),
    })
}

fn write_file(path: &Path, bytes: &[u8], mode: u32) -> Result<(), PkiError> {
    write_atomic(path, bytes, mode).map_err(|source| write_err(path, source))
}

fn write_err(path: &Path, source: std::io::Error) -> PkiError {
    PkiError::Write {
        path: path.display().to_string(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Identity;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn member_certificate_carries_identity_and_key_is_private() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ca = CertificateAuthority::create(dir.path(), "Test CA", 30).expect("ca");
        let spec = MemberCertSpec::valid_for_days("Fachverfahren", "Stadt Aalen", "08136088".parse().expect("ags"), Role::System, 10);
        let issued = ca.issue_member(&spec).expect("issue");
        let (crt, key) = issued.write(dir.path(), "aalen-system").expect("write");
        let mode = fs::metadata(&key).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(
            fs::metadata(dir.path().join(CA_KEY)).expect("meta").permissions().mode() & 0o777,
            0o600
        );
        let pem = fs::read(&crt).expect("read");
        let (_, pem) = x509_parser::pem::parse_x509_pem(&pem).expect("pem");
        let id = Identity::from_certificate_der(&pem.contents).expect("identity");
        assert_eq!(id.ags.as_str(), "08136088");
        assert_eq!(id.role, Role::System);
        assert_eq!(id.organisation, "Stadt Aalen");
        assert_eq!(id.serial, issued.serial);
        assert_eq!(serial_of_cert_file(&crt).expect("serial"), issued.serial);
    }

    #[test]
    fn ca_refuses_to_overwrite_and_reopens() {
        let dir = tempfile::tempdir().expect("tempdir");
        CertificateAuthority::create(dir.path(), "Test CA", 30).expect("ca");
        assert!(matches!(
            CertificateAuthority::create(dir.path(), "Again", 30),
            Err(PkiError::CaExists(_))
        ));
        let ca = CertificateAuthority::open(dir.path()).expect("open");
        ca.revoke("0a:0b").expect("revoke");
        ca.revoke("0A0B").expect("revoke twice is idempotent");
        let state = ca.load_state().expect("state");
        assert_eq!(state.revoked.len(), 1);
        assert_eq!(state.crl_number, 2);
        assert!(ca.revoke("xyz").is_err());
    }
}
