//! TLS for the broker: rustls with the ring provider, mutual authentication mandatory.
//!
//! # Secure defaults and why
//! - **Protocol versions** TLS 1.3 and TLS 1.2 only (BSI TR-02102-2, section 3.2).
//! - **Cipher suites**, all AEAD with forward secrecy, as TR-02102-2 (2025) recommends them:
//!   TLS 1.3 `TLS_AES_256_GCM_SHA384`, `TLS_AES_128_GCM_SHA256`; TLS 1.2
//!   `TLS_ECDHE_ECDSA_WITH_AES_{256,128}_GCM_SHA{384,256}` and
//!   `TLS_ECDHE_RSA_WITH_AES_{256,128}_GCM_SHA{384,256}`. ChaCha20-Poly1305 is left out because
//!   TR-02102-2 does not list it; the CBC and CCM suites it lists are not offered by rustls.
//! - **Key exchange groups** secp384r1 and secp256r1 (TR-02102-2 table 4). X25519 is not in the
//!   recommended list and is not offered; the brainpool curves are not implemented by rustls.
//! - **Client certificates are required** and verified against the data space's CA and its CRL;
//!   the CRL's own expiry is enforced (a stale CRL refuses everyone, rather than letting revoked
//!   certificates back in), and the CRL file is re-read when it changes, without a restart.
//! - **No session resumption** on the member listener (no session cache, no tickets): a resumed
//!   session would skip the certificate check, so a certificate revoked after its first
//!   handshake would keep working. A full handshake per new connection costs little next to
//!   the kept-alive connections partner systems use.
//! - **Revocation and expiry on every request**, not only at the handshake: a kept-alive
//!   connection is as old as its client wants. [`ReloadingCrlVerifier::check`] answers for a
//!   serial and an expiry from the same CRL the handshakes use (`http::auth` asks it).
//! - **Providers admit only the broker**: [`provider_server_config`] accepts a client
//!   certificate from the data space's CA only if it carries the broker role, so no member's
//!   system, steward or board certificate reads a provider's raw data past the broker.

use std::fmt;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{CryptoProvider, ring};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig, SignatureScheme};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read the {what} '{path}': {reason}")]
    Pem { what: &'static str, path: String, reason: String },
    #[error("the {what} '{path}' holds no PEM item of the expected kind")]
    Empty { what: &'static str, path: String },
    #[error("TLS configuration rejected: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("client verifier rejected the CA or CRL: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
}

/// The crypto provider restricted to the suites and groups listed in the module docs.
pub fn bsi_provider() -> CryptoProvider {
    use ring::cipher_suite as cs;
    use ring::kx_group;
    CryptoProvider {
        cipher_suites: vec![
            cs::TLS13_AES_256_GCM_SHA384,
            cs::TLS13_AES_128_GCM_SHA256,
            cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
            cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
            cs::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
            cs::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        ],
        kx_groups: vec![kx_group::SECP384R1, kx_group::SECP256R1],
        ..ring::default_provider()
    }
}

const VERSIONS: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13, &rustls::version::TLS12];

/// Files the server's TLS needs.
#[derive(Debug, Clone)]
pub struct ServerTlsFiles {
    pub certificate: PathBuf,
    pub private_key: PathBuf,
    pub client_ca: PathBuf,
    pub crl: PathBuf,
}

/// The member listener's TLS: its configuration, and the revocation state its handshakes use,
/// for the checks on every request.
#[derive(Debug)]
pub struct MemberTls {
    pub config: ServerConfig,
    pub revocation: Arc<ReloadingCrlVerifier>,
}

/// Builds the member listener's configuration: client certificates required, checked against
/// the CA and the live CRL, no session resumption. Every file is read now, so a missing or
/// unreadable one is reported before the listener opens.
pub fn server_config(files: &ServerTlsFiles) -> Result<MemberTls, TlsError> {
    let provider = Arc::new(bsi_provider());
    let verifier = Arc::new(ReloadingCrlVerifier::new(&files.client_ca, &files.crl, provider.clone())?);
    let config = mutual_server_config(files, provider, verifier.clone())?;
    Ok(MemberTls {
        config,
        revocation: verifier,
    })
}

/// A provider API's configuration (`broker example-provider`, and the documented setup): its
/// provider certificate, and of client certificates only the broker's (the CA's, unrevoked,
/// with the broker role).
pub fn provider_server_config(files: &ServerTlsFiles) -> Result<ServerConfig, TlsError> {
    let provider = Arc::new(bsi_provider());
    let verifier = Arc::new(ReloadingCrlVerifier::new(&files.client_ca, &files.crl, provider.clone())?);
    mutual_server_config(files, provider, Arc::new(OnlyBroker(verifier)))
}

fn mutual_server_config(
    files: &ServerTlsFiles,
    provider: Arc<CryptoProvider>,
    verifier: Arc<dyn ClientCertVerifier>,
) -> Result<ServerConfig, TlsError> {
    let certs = load_certs(&files.certificate, "server certificate")?;
    let key = load_key(&files.private_key)?;
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(VERSIONS)?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    // Resumption would skip the client certificate check (see the module docs).
    config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    config.send_tls13_tickets = 0;
    Ok(config)
}

/// The public listener's configuration (the transparency report): the same certificate,
/// versions and suites, but no client certificate asked for. Nothing but the public report is
/// routed on it (`http::public`).
pub fn public_server_config(files: &ServerTlsFiles) -> Result<ServerConfig, TlsError> {
    let provider = Arc::new(bsi_provider());
    let certs = load_certs(&files.certificate, "server certificate")?;
    let key = load_key(&files.private_key)?;
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(VERSIONS)?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// A client configuration with a client certificate, trusting only `ca`: what the broker uses to
/// reach the cities' APIs and what tests and the demo use to reach the broker.
pub fn client_config(ca: &Path, certificate: &Path, private_key: &Path) -> Result<rustls::ClientConfig, TlsError> {
    let roots = root_store(ca)?;
    let certs = load_certs(certificate, "client certificate")?;
    let key = load_key(private_key)?;
    Ok(rustls::ClientConfig::builder_with_provider(Arc::new(bsi_provider()))
        .with_protocol_versions(VERSIONS)?
        .with_root_certificates(roots)
        .with_client_auth_cert(certs, key)?)
}

pub fn load_certs(path: &Path, what: &'static str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| pem_err(what, path, e))?;
    if certs.is_empty() {
        return Err(TlsError::Empty {
            what,
            path: path.display().to_string(),
        });
    }
    Ok(certs)
}

/// The `notAfter` of the first certificate in the PEM file at `path`, seconds since the epoch.
pub fn certificate_not_after(path: &Path) -> Result<i64, TlsError> {
    let certs = load_certs(path, "certificate")?;
    let bad = |reason: String| TlsError::Pem {
        what: "certificate",
        path: path.display().to_string(),
        reason,
    };
    let first = certs.first().ok_or_else(|| bad("no certificate in the file".into()))?;
    let (_, cert) = x509_parser::parse_x509_certificate(first.as_ref()).map_err(|e| bad(e.to_string()))?;
    Ok(cert.validity().not_after.timestamp())
}

pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| pem_err("private key", path, e))
}

pub fn load_crls(path: &Path) -> Result<Vec<CertificateRevocationListDer<'static>>, TlsError> {
    let crls = CertificateRevocationListDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| pem_err("CRL", path, e))?;
    if crls.is_empty() {
        return Err(TlsError::Empty {
            what: "CRL",
            path: path.display().to_string(),
        });
    }
    Ok(crls)
}

/// The serials (lower-case hex, as in [`crate::identity::Identity::serial`]) the CRL at `path`
/// revokes, sorted.
pub fn revoked_serials(path: &Path) -> Result<Vec<String>, TlsError> {
    let mut serials: Vec<String> = crl_facts(path)?.revoked.into_iter().collect();
    serials.sort();
    Ok(serials)
}

pub fn root_store(ca: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in load_certs(ca, "CA certificate")? {
        roots.add(cert)?;
    }
    Ok(roots)
}

fn pem_err(what: &'static str, path: &Path, e: rustls::pki_types::pem::Error) -> TlsError {
    let reason = match e {
        rustls::pki_types::pem::Error::Io(io) => io.to_string(),
        other => format!("{other:?}"),
    };
    TlsError::Pem {
        what,
        path: path.display().to_string(),
        reason,
    }
}

/// What identifies one version of the CRL file: replacing it (atomic rename) changes the inode,
/// rewriting it in place changes the modification time or the length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileStamp {
    ino: u64,
    mtime_ns: i128,
    len: u64,
}

fn stamp(path: &Path) -> Option<FileStamp> {
    let m = fs::metadata(path).ok()?;
    Some(FileStamp {
        ino: m.ino(),
        mtime_ns: i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()),
        len: m.len(),
    })
}

struct Current {
    stamp: Option<FileStamp>,
    verifier: Arc<dyn ClientCertVerifier>,
    /// What the same CRL says, for the checks on every request; `None` while it is unusable.
    crl: Option<Arc<CrlFacts>>,
}

/// The CRL's revoked serials (lower-case hex) and its expiry (Unix seconds).
#[derive(Debug)]
struct CrlFacts {
    revoked: std::collections::HashSet<String>,
    next_update: Option<i64>,
}

/// Why a certificate is no longer accepted on an open connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("the certificate was revoked")]
    Revoked,
    #[error("the certificate has expired")]
    Expired,
    #[error("the broker's revocation list is unusable or out of date, so no certificate is accepted until the operator renews it")]
    CrlUnusable,
}

/// A client verifier that re-reads the CRL when its file changes. Each handshake costs one
/// `stat`; a CRL that fails to load keeps the previous verifier only if it was valid, and an
/// unreadable CRL at start-up is an error, so revocation can never be switched off by a bad file.
pub struct ReloadingCrlVerifier {
    roots: Arc<RootCertStore>,
    crl_path: PathBuf,
    provider: Arc<CryptoProvider>,
    hints: Vec<DistinguishedName>,
    current: RwLock<Current>,
}

impl fmt::Debug for ReloadingCrlVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReloadingCrlVerifier")
            .field("crl_path", &self.crl_path)
            .finish_non_exhaustive()
    }
}

impl ReloadingCrlVerifier {
    pub fn new(ca: &Path, crl: &Path, provider: Arc<CryptoProvider>) -> Result<Self, TlsError> {
        let roots = Arc::new(root_store(ca)?);
        let stamp = stamp(crl);
        let verifier = build_verifier(&roots, crl, &provider)?;
        let facts = crl_facts(crl)?;
        let hints = verifier.root_hint_subjects().to_vec();
        Ok(Self {
            roots,
            crl_path: crl.to_owned(),
            provider,
            hints,
            current: RwLock::new(Current {
                stamp,
                verifier,
                crl: Some(Arc::new(facts)),
            }),
        })
    }

    fn verifier(&self) -> Arc<dyn ClientCertVerifier> {
        self.current().0
    }

    /// The verifier and the CRL's facts for the CRL file as it is now (re-read if it changed).
    fn current(&self) -> (Arc<dyn ClientCertVerifier>, Option<Arc<CrlFacts>>) {
        let now = stamp(&self.crl_path);
        {
            let cur = self.current.read().unwrap_or_else(|p| p.into_inner());
            if cur.stamp == now {
                return (cur.verifier.clone(), cur.crl.clone());
            }
        }
        let mut cur = self.current.write().unwrap_or_else(|p| p.into_inner());
        if cur.stamp != now {
            match build_verifier(&self.roots, &self.crl_path, &self.provider).and_then(|v| Ok((v, crl_facts(&self.crl_path)?))) {
                Ok((v, facts)) => {
                    tracing::info!(crl = %self.crl_path.display(), "client CRL reloaded");
                    cur.verifier = v;
                    cur.crl = Some(Arc::new(facts));
                }
                // A broken or vanished CRL file must not unrevoke anything: refuse every client
                // until a valid CRL is back.
                Err(e) => {
                    tracing::error!(crl = %self.crl_path.display(), error = %e, "CRL unusable; refusing all clients");
                    cur.verifier = Arc::new(RefuseAll(self.hints.clone()));
                    cur.crl = None;
                }
            }
            cur.stamp = now;
        }
        (cur.verifier.clone(), cur.crl.clone())
    }

    /// The CRL as the listener uses it now: `Ok(next_update)` (seconds since the epoch) while it
    /// is usable and in date, `Err` saying why not (then every client is refused).
    pub fn crl_status(&self) -> Result<i64, String> {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let facts = self.current().1.ok_or_else(|| {
            format!(
                "the CRL '{}' cannot be used (unreadable, not the CA's, or expired)",
                self.crl_path.display()
            )
        })?;
        match facts.next_update {
            Some(t) if t < now => Err(format!("the CRL '{}' expired {} s ago", self.crl_path.display(), now - t)),
            Some(t) => Ok(t),
            None => Err(format!("the CRL '{}' has no nextUpdate", self.crl_path.display())),
        }
    }

    /// Whether a certificate accepted at its connection's handshake is still good now: not
    /// revoked since, not expired since, and the CRL itself usable and in date. Costs one `stat`
    /// of the CRL file and a set lookup.
    pub fn check(&self, serial: &str, not_after: i64) -> Result<(), Refusal> {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        if not_after < now {
            return Err(Refusal::Expired);
        }
        let facts = self.current().1.ok_or(Refusal::CrlUnusable)?;
        if facts.next_update.is_some_and(|t| t < now) {
            return Err(Refusal::CrlUnusable);
        }
        if facts.revoked.contains(serial) {
            return Err(Refusal::Revoked);
        }
        Ok(())
    }
}

/// What the CRL at `path` says, read with x509-parser (the verifier has its own parsed copy).
fn crl_facts(path: &Path) -> Result<CrlFacts, TlsError> {
    let bad = |reason: String| TlsError::Pem {
        what: "CRL",
        path: path.display().to_string(),
        reason,
    };
    let mut facts = CrlFacts {
        revoked: std::collections::HashSet::new(),
        next_update: None,
    };
    for der in load_crls(path)? {
        let (_, crl) = x509_parser::parse_x509_crl(der.as_ref()).map_err(|e| bad(e.to_string()))?;
        let next = crl
            .next_update()
            .map(|t| t.timestamp())
            .ok_or_else(|| bad("the CRL has no nextUpdate".into()))?;
        facts.next_update = Some(facts.next_update.map_or(next, |n: i64| n.min(next)));
        facts.revoked.extend(
            crl.iter_revoked_certificates()
                .map(|r| r.raw_serial_as_string().replace(':', "").to_ascii_lowercase()),
        );
    }
    Ok(facts)
}

fn build_verifier(roots: &Arc<RootCertStore>, crl: &Path, provider: &Arc<CryptoProvider>) -> Result<Arc<dyn ClientCertVerifier>, TlsError> {
    Ok(WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
        .with_crls(load_crls(crl)?)
        .enforce_revocation_expiration()
        .build()?)
}

impl ClientCertVerifier for ReloadingCrlVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &self.hints
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.verifier().verify_client_cert(end_entity, intermediates, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.verifier().verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.verifier().verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

/// Stands in while the CRL is unusable: every client certificate is refused.
#[derive(Debug)]
struct RefuseAll(Vec<DistinguishedName>);

impl ClientCertVerifier for RefuseAll {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &self.0
    }
    fn verify_client_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Err(rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownRevocationStatus))
    }
    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::General("CRL unusable".into()))
    }
    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::General("CRL unusable".into()))
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        vec![SignatureScheme::ECDSA_NISTP256_SHA256]
    }
}

/// Admits only the broker's certificate: the inner verifier's checks (CA, CRL, expiry), then the
/// broker role ([`crate::identity::is_broker`]).
#[derive(Debug)]
struct OnlyBroker(Arc<ReloadingCrlVerifier>);

impl ClientCertVerifier for OnlyBroker {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.0.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verified = self.0.verify_client_cert(end_entity, intermediates, now)?;
        if crate::identity::is_broker(end_entity.as_ref()) {
            Ok(verified)
        } else {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::ApplicationVerificationFailure,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}
