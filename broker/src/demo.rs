//! The demo data space and the test PKI.
//!
//! `broker demo` builds a ready data space in a directory (CA, certificates for a system, a
//! steward and a board member of Aalen and Heidenheim, the broker's own certificate, a
//! configuration with both cities as members) and registers the example datasets of
//! `examples/datasets/`. `broker pki testbed` writes the certificates the TLS tests need, from
//! the same code the tests call, so the test PKI is reproducible with one command.

use std::fs;
use std::path::{Path, PathBuf};

use time::{Duration, OffsetDateTime};

use crate::catalog::{Dataset, DatasetDescription, DatasetId, Member};
use crate::identity::{Ags, Role};
use crate::pki::{CertificateAuthority, Issued, MemberCertSpec, PkiError};

pub const AALEN: &str = "08136088";
pub const HEIDENHEIM: &str = "08135019";
/// Stuttgart: a real municipality that is not a member of the demo data space.
pub const NON_MEMBER: &str = "08111000";

/// The example datasets, with the AGS of their publisher.
pub const EXAMPLE_DATASETS: &[(&str, &str)] = &[
    (AALEN, include_str!("../../examples/datasets/aalen-buergerbuero-termine.json")),
    (AALEN, include_str!("../../examples/datasets/aalen-kita-plaetze.json")),
    (
        HEIDENHEIM,
        include_str!("../../examples/datasets/heidenheim-parkhaus-belegung.json"),
    ),
    (
        HEIDENHEIM,
        include_str!("../../examples/datasets/heidenheim-einwohner-stadtteile.json"),
    ),
];

/// Where the demo cities' own APIs listen (the example datasets' access URLs point there).
pub const AALEN_PROVIDER: &str = "https://127.0.0.1:9441";
pub const HEIDENHEIM_PROVIDER: &str = "https://127.0.0.1:9442";

fn origin(s: &str) -> crate::catalog::model::Origin {
    s.parse().unwrap_or_else(|_| unreachable!("constant origin {s} is malformed"))
}

fn ags(s: &str) -> Ags {
    // The constants above are well-formed; a failure here is a programming error caught by tests.
    s.parse().unwrap_or_else(|_| unreachable!("constant AGS {s} is malformed"))
}

pub fn demo_members() -> Vec<Member> {
    vec![
        Member {
            ags: ags(AALEN),
            organisation: "Stadt Aalen".into(),
            roles: Role::ALL.to_vec(),
            contact: Some("mailto:digitalisierung@aalen.example".into()),
            providers: vec![origin(AALEN_PROVIDER)],
            contributor: None,
        },
        Member {
            ags: ags(HEIDENHEIM),
            organisation: "Stadt Heidenheim an der Brenz".into(),
            roles: Role::ALL.to_vec(),
            contact: Some("mailto:digitalisierung@heidenheim.example".into()),
            providers: vec![origin(HEIDENHEIM_PROVIDER)],
            contributor: None,
        },
    ]
}

/// The example datasets as the catalog stores them.
pub fn example_datasets() -> Result<Vec<Dataset>, serde_json::Error> {
    let now = OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let stamp = now.format(&time::format_description::well_known::Rfc3339).unwrap_or_default();
    EXAMPLE_DATASETS
        .iter()
        .map(|(publisher, json)| {
            let d: DatasetDescription = serde_json::from_str(json)?;
            let id = d.identifier.clone().unwrap_or_else(DatasetId::generate);
            Ok(Dataset::from_description(id, ags(publisher), d, stamp.clone(), stamp.clone()))
        })
        .collect()
}

/// Paths of a generated PKI.
#[derive(Debug, Clone)]
pub struct PkiLayout {
    pub dir: PathBuf,
}

impl PkiLayout {
    pub fn ca_cert(&self) -> PathBuf {
        self.dir.join("ca").join(crate::pki::CA_CERT)
    }
    pub fn crl(&self) -> PathBuf {
        self.dir.join("ca").join(crate::pki::CA_CRL)
    }
    pub fn cert(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.crt"))
    }
    pub fn key(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.key"))
    }
}

/// The member certificates of the demo: `<city>-<role>` for both cities and all roles.
pub const DEMO_PEOPLE: &[(&str, &str, &str, Role, &str)] = &[
    ("aalen-system", "Stadt Aalen", AALEN, Role::System, "Aalen Fachverfahren Bürgerbüro"),
    (
        "aalen-steward",
        "Stadt Aalen",
        AALEN,
        Role::Steward,
        "Anna Datenverantwortliche (Aalen)",
    ),
    ("aalen-board", "Stadt Aalen", AALEN, Role::Board, "Bernd Beirat (Aalen)"),
    (
        "heidenheim-system",
        "Stadt Heidenheim an der Brenz",
        HEIDENHEIM,
        Role::System,
        "Heidenheim Datenplattform",
    ),
    (
        "heidenheim-steward",
        "Stadt Heidenheim an der Brenz",
        HEIDENHEIM,
        Role::Steward,
        "Hanna Datenverantwortliche (Heidenheim)",
    ),
    (
        "heidenheim-board",
        "Stadt Heidenheim an der Brenz",
        HEIDENHEIM,
        Role::Board,
        "Heiko Beirat (Heidenheim)",
    ),
];

/// The provider certificates of the demo cities' own APIs: (file stem, organisation, AGS, CN).
pub const DEMO_PROVIDERS: &[(&str, &str, &str, &str)] = &[
    ("aalen-provider", "Stadt Aalen", AALEN, "Aalen Bürgerbüro-API"),
    (
        "heidenheim-provider",
        "Stadt Heidenheim an der Brenz",
        HEIDENHEIM,
        "Heidenheim Parkraum-API",
    ),
];

/// The password of the demo's PKCS#12 files (`<city>-steward.p12`, `<city>-board.p12`).
pub const DEMO_P12_PASSWORD: &str = "demo-passwort";

fn write_p12(path: &Path, bytes: &[u8]) -> Result<(), PkiError> {
    crate::fsutil::write_atomic(path, bytes, 0o600).map_err(|source| PkiError::Write {
        path: path.display().to_string(),
        source,
    })
}

/// The common name of a demo certificate.
pub fn person(name: &str) -> &'static str {
    DEMO_PEOPLE.iter().find(|p| p.0 == name).map_or("", |p| p.4)
}

/// Writes the demo PKI (CA, broker certificate, the [`DEMO_PEOPLE`]) into `dir`.
pub fn write_demo_pki(dir: &Path) -> Result<PkiLayout, PkiError> {
    let layout = PkiLayout { dir: dir.to_owned() };
    let ca = CertificateAuthority::create(&dir.join("ca"), "Kommunaler Datenraum Ostwürttemberg CA", 3650)?;
    let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
    ca.issue_server("broker.localhost", "Kommunaler Datenraum Broker", &names, 825)?
        .write(dir, "broker")?;
    for (name, org, city, role, cn) in DEMO_PEOPLE {
        let (crt, key) = ca
            .issue_member(&MemberCertSpec::valid_for_days(cn, org, ags(city), *role, 365))?
            .write(dir, name)?;
        // For a browser: the people (not the systems) open the console.
        if *role != Role::System {
            let p12 = crate::pki::export_pkcs12(&crt, &key, &ca.cert_path(), DEMO_P12_PASSWORD)?;
            write_p12(&dir.join(format!("{name}.p12")), &p12)?;
        }
    }
    // The cities' own APIs (`broker example-provider`), each proving whose data it serves.
    for (name, org, city, cn) in DEMO_PROVIDERS {
        ca.issue_provider(cn, org, &ags(city), &names, 825)?.write(dir, name)?;
    }
    Ok(layout)
}

/// The test PKI: the demo PKI plus the certificates the broker must refuse.
///
/// | file stem | what it is |
/// |---|---|
/// | `expired` | Aalen steward certificate that expired yesterday |
/// | `revoked` | Aalen system certificate, valid, to be revoked by the test while the broker runs |
/// | `non-member` | valid certificate of Stuttgart (AGS 08111000), not a member |
/// | `wrong-ca` | Aalen steward certificate from another CA (`other-ca/`) |
/// | `no-role` | a certificate from the right CA without the role SAN |
pub fn write_test_pki(dir: &Path) -> Result<PkiLayout, PkiError> {
    let layout = write_demo_pki(dir)?;
    let ca = CertificateAuthority::open(&dir.join("ca"))?;
    let now = OffsetDateTime::now_utc();
    let mut expired = MemberCertSpec::valid_for_days("Abgelaufen", "Stadt Aalen", ags(AALEN), Role::Steward, 1);
    expired.not_before = now - Duration::days(30);
    expired.not_after = now - Duration::days(1);
    ca.issue_member(&expired)?.write(dir, "expired")?;
    ca.issue_member(&MemberCertSpec::valid_for_days(
        "Widerrufen",
        "Stadt Aalen",
        ags(AALEN),
        Role::System,
        30,
    ))?
    .write(dir, "revoked")?;
    ca.issue_member(&MemberCertSpec::valid_for_days(
        "Stuttgart System",
        "Landeshauptstadt Stuttgart",
        ags(NON_MEMBER),
        Role::System,
        30,
    ))?
    .write(dir, "non-member")?;
    let other = CertificateAuthority::create(&dir.join("other-ca"), "Fremde CA", 3650)?;
    other
        .issue_member(&MemberCertSpec::valid_for_days(
            "Falsche CA",
            "Stadt Aalen",
            ags(AALEN),
            Role::Steward,
            30,
        ))?
        .write(dir, "wrong-ca")?;
    // The same person as `aalen-steward`, also on Aalen's governance board: may not approve
    // their own drafts (four eyes).
    ca.issue_member(&MemberCertSpec::valid_for_days(
        person("aalen-steward"),
        "Stadt Aalen",
        ags(AALEN),
        Role::Board,
        30,
    ))?
    .write(dir, "aalen-steward-as-board")?;
    let no_role: Issued = ca.issue_server("no-role", "Stadt Aalen", &["aalen.example".to_owned()], 30)?;
    no_role.write(dir, "no-role")?;
    fs::write(dir.join("README.md"), TEST_PKI_README).map_err(|source| PkiError::Write {
        path: dir.join("README.md").display().to_string(),
        source,
    })?;
    Ok(layout)
}

const TEST_PKI_README: &str = "# Test PKI\n\nGenerated by `broker pki testbed --dir <this dir>` (the integration tests call the same code).\n\n\
- `ca/`: the data space CA (`ca.crt`, `ca.key` 0600, `ca.crl`, `revoked.json`)\n\
- `broker.crt`/`.key`: the broker (localhost, 127.0.0.1)\n\
- `aalen-{system,steward,board}`, `heidenheim-{system,steward,board}`: valid member certificates\n\
- `expired`: expired yesterday; `revoked`: valid until revoked with `broker pki revoke --dir ca --cert revoked.crt`\n\
- `non-member`: Stuttgart (08111000), valid but not a member; `wrong-ca`: issued by `other-ca/`\n\
- `aalen-steward-as-board`: the person of `aalen-steward` with a board certificate (four-eyes tests)\n\
- `no-role`: right CA, but no role or AGS in the certificate\n";

/// The demo's configuration file text.
pub fn demo_config(listen: &str, data_dir: Option<&str>) -> String {
    let mut out = format!(
        "# Demo configuration written by `broker demo`.\nlisten = \"{listen}\"\nbase_iri = \"https://broker.kdr.example/\"\n\n\
[tls]\ncertificate = \"pki/broker.crt\"\nprivate_key = \"pki/broker.key\"\nclient_ca = \"pki/ca/ca.crt\"\ncrl = \"pki/ca/ca.crl\"\n\n\
[sparql]\ntimeout_ms = 5000\nmax_results = 10000\nmax_concurrent = 4\n\n[limits]\nmax_body_bytes = 65536\n# requests a second per member (all its certificates), and connections per certificate\nrequests_per_second = 1000\nconnections_per_certificate = 64\n\n"
    );
    if let Some(d) = data_dir {
        out.push_str(&format!("[storage]\ndata_dir = \"{d}\"\n\n"));
    }
    for m in demo_members() {
        let roles: Vec<String> = m.roles.iter().map(|r| format!("\"{r}\"")).collect();
        out.push_str(&format!(
            "[[members]]\nags = \"{}\"\norganisation = \"{}\"\nroles = [{}]\ncontact = \"{}\"\nproviders = [{}]\n\n",
            m.ags,
            m.organisation,
            roles.join(", "),
            m.contact.unwrap_or_default(),
            m.providers.iter().map(|o| format!("\"{o}\"")).collect::<Vec<_>>().join(", ")
        ));
    }
    out
}

/// The demo's audit and transparency settings: checkpoints every minute, and the public
/// transparency report on `public` (TLS without client certificates).
pub fn demo_public_config(public: &str) -> String {
    format!(
        "[audit]\n# a signed checkpoint every minute and on shutdown; no pruning (retention_days unset)\n\
checkpoint_interval_s = 60\n\n[transparency]\nlisten = \"{public}\"\nminimum_group = 5\n"
    )
}

/// How to call the demo broker with curl, printed when it starts.
pub fn curl_help(dir: &Path, addr: &str, public: Option<std::net::SocketAddr>) -> String {
    let d = dir.display();
    let curl = |who: &str| format!("curl --cacert {d}/pki/ca/ca.crt --cert {d}/pki/{who}.crt --key {d}/pki/{who}.key");
    format!(
        "The demo data space is running on https://{addr} (mutual TLS; certificates in {d}/pki).\n\n\
Who am I (Heidenheim's system):\n  {} https://{addr}/v1/whoami\n\n\
All datasets, or Aalen's only:\n  {} https://{addr}/v1/datasets\n  {} 'https://{addr}/v1/datasets?publisher={AALEN}'\n\n\
SPARQL over the metadata graph:\n  {} https://{addr}/v1/sparql --data-urlencode 'query=PREFIX dcat: <http://www.w3.org/ns/dcat#> PREFIX dct: <http://purl.org/dc/terms/> SELECT ?d ?title WHERE {{ ?d a dcat:Dataset ; dct:title ?title }}' -H 'Accept: text/csv'\n\n\
Register a dataset as Aalen's steward:\n  {} -X POST https://{addr}/v1/datasets -H 'Content-Type: application/json' --data @examples/datasets/aalen-kita-plaetze.json\n  (it exists already: the answer is 409; change \"identifier\" to register a new one)\n\n\
Without a certificate the TLS handshake is refused:\n  curl --cacert {d}/pki/ca/ca.crt https://{addr}/v1/whoami\n\n\
The API description: {} https://{addr}/v1/openapi.json\n\n\
Usage of the data space's data, as Aalen's board member (JSON; add -H 'Accept: text/csv' for CSV), and the records of processing (DSGVO Art. 30):\n  {} 'https://{addr}/v1/reports/usage?bucket=day'\n  {} https://{addr}/v1/reports/processing\n\n\
The audit trail, checked offline with only the broker's public key:\n  broker audit verify {d}/data/audit.jsonl --public-key {d}/data/audit-signing.pub\n{}\
Stop with Ctrl-C.\n",
        curl("heidenheim-system"),
        curl("heidenheim-system"),
        curl("heidenheim-system"),
        curl("aalen-board"),
        curl("aalen-steward"),
        curl("aalen-steward"),
        curl("aalen-board"),
        curl("aalen-board"),
        public.map_or(String::new(), |p| format!(
            "\nThe public transparency report, for citizens (no client certificate):\n  curl --cacert {d}/pki/ca/ca.crt https://{p}/transparency\n\n"
        )),
    )
}

/// The data the demo cities' own APIs serve (`examples/providers/`, embedded so the binary runs
/// anywhere).
pub fn provider_resources(city: &str) -> Option<Vec<crate::http::provider::Resource>> {
    let r = |path: &str, content_type: &str, body: &[u8]| crate::http::provider::Resource {
        path: path.into(),
        content_type: content_type.into(),
        body: body.to_vec(),
    };
    match city {
        "aalen" => Some(vec![r(
            "/appointments",
            "application/json",
            include_bytes!("../../examples/providers/aalen-buergerbuero-termine.json"),
        )]),
        "heidenheim" => Some(vec![r(
            "/parking",
            "text/csv",
            include_bytes!("../../examples/providers/heidenheim-parken.csv"),
        )]),
        _ => None,
    }
}

/// What can go wrong setting up the demo's exchange.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("demo setup: {0}")]
    Example(String),
    #[error(transparent)]
    Catalog(#[from] crate::catalog::CatalogError),
}

/// Seeds a running demo broker through its own API, as the cities' people would: each example
/// dataset registered by its publisher's steward, and the example policy of Aalen's
/// appointments submitted by Aalen's steward and approved by Aalen's board member. Every step
/// is in the audit trail. What exists already (a restarted demo) is left as it is.
pub fn seed_through_api(broker: std::net::SocketAddr, pki_dir: &Path) -> Result<(), DemoError> {
    let layout = PkiLayout { dir: pki_dir.to_owned() };
    let as_person = |name: &str| crate::client::Connection {
        broker: format!("https://{broker}"),
        ca: layout.ca_cert(),
        certificate: layout.cert(name),
        private_key: layout.key(name),
    };
    for (publisher, json) in EXAMPLE_DATASETS {
        let steward = if *publisher == AALEN {
            "aalen-steward"
        } else {
            "heidenheim-steward"
        };
        let body = Some((json.as_bytes().to_vec(), "application/json".to_owned()));
        expect(
            as_person(steward).call("POST", "/v1/datasets", body),
            &[201, 409],
            "registering an example dataset",
        )?;
    }
    let policy = "/v1/datasets/aalen-buergerbuero-termine/policy";
    if expect(
        as_person("aalen-steward").call("GET", policy, None),
        &[200, 404],
        "reading the active policy",
    )? == 200
    {
        return Ok(());
    }
    let source = include_str!("../../policies/examples/aalen-buergerbuero-termine.ttl");
    let body = Some((source.as_bytes().to_vec(), "text/turtle".to_owned()));
    let submitted = as_person("aalen-steward")
        .call("POST", &format!("{policy}/versions"), body)
        .map_err(|e| DemoError::Example(e.to_string()))?;
    let version = serde_json::from_slice::<serde_json::Value>(&submitted.body)
        .ok()
        .and_then(|v| v.get("version").and_then(serde_json::Value::as_u64))
        .ok_or_else(|| {
            DemoError::Example(format!(
                "submitting the example policy: {}",
                String::from_utf8_lossy(&submitted.body)
            ))
        })?;
    let note = Some((br#"{"note":"demo: example policy"}"#.to_vec(), "application/json".to_owned()));
    let approve = format!("{policy}/versions/{version}/approve");
    expect(
        as_person("aalen-board").call("POST", &approve, note),
        &[200],
        "approving the example policy",
    )?;
    Ok(())
}

/// The status of an answer if it is one of `wanted`, else what went wrong.
fn expect(answer: Result<crate::client::Answer, crate::client::ClientError>, wanted: &[u16], doing: &str) -> Result<u16, DemoError> {
    match answer {
        Ok(a) if wanted.contains(&a.status) => Ok(a.status),
        Ok(a) => Err(DemoError::Example(format!(
            "{doing}: {} {}",
            a.status,
            String::from_utf8_lossy(&a.body)
        ))),
        Err(e) => Err(DemoError::Example(format!("{doing}: {e}"))),
    }
}

/// The TLS files of a demo city's provider API: its provider certificate, and the data space's
/// CA and CRL to check the broker's certificate with.
pub fn provider_tls_files(layout: &PkiLayout, city: &str) -> crate::tls::ServerTlsFiles {
    crate::tls::ServerTlsFiles {
        certificate: layout.cert(&format!("{city}-provider")),
        private_key: layout.key(&format!("{city}-provider")),
        client_ca: layout.ca_cert(),
        crl: layout.crl(),
    }
}

/// Aalen's and Heidenheim's own APIs on the addresses the example datasets name
/// (127.0.0.1:9441 and :9442), each with its provider certificate and admitting only the broker.
pub fn start_example_providers(pki_dir: &Path) -> Result<Vec<crate::http::BackgroundServer>, DemoError> {
    let layout = PkiLayout { dir: pki_dir.to_owned() };
    let mut out = Vec::new();
    for (city, port) in [("aalen", 9441), ("heidenheim", 9442)] {
        let tls = crate::tls::provider_server_config(&provider_tls_files(&layout, city)).map_err(|e| DemoError::Example(e.to_string()))?;
        let resources = provider_resources(city).unwrap_or_default();
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        out.push(
            crate::http::provider::start(addr, tls, resources)
                .map_err(|e| DemoError::Example(format!("example provider of {city} on {addr}: {e}")))?,
        );
    }
    Ok(out)
}
