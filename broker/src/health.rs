//! Liveness and readiness for the data centre's monitoring and load balancer.
//!
//! Ready means: the broker can make every promise it makes for a request now — the metadata
//! store answers, the audit trail can take records (nothing leaves without one), the CRL is
//! usable and in date (else every client is refused anyway), and the policy engine decides (a
//! built-in probe policy permits what it should and denies what it should). Each check names
//! what is wrong, so the page an operator reads says what to fix. Nothing here changes state.

use std::sync::Arc;

use policy_compiler::input::PolicyInput;
use policy_evaluator::LoadedModule;
use serde::Serialize;

use crate::exchange::Exchange;

/// One readiness check.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

/// All checks; ready when every one is ok.
#[derive(Debug, Clone, Serialize)]
pub struct Readiness {
    pub ready: bool,
    pub checks: Vec<Check>,
}

impl Readiness {
    pub fn of(checks: Vec<Check>) -> Self {
        Self {
            ready: checks.iter().all(|c| c.ok),
            checks,
        }
    }
}

impl Check {
    pub fn of(name: &'static str, result: Result<(), String>) -> Self {
        Self {
            name,
            ok: result.is_ok(),
            problem: result.err(),
        }
    }
}

/// The probe policy: use of a probe target for `dpv:ServiceProvision` only.
const PROBE_POLICY: &str = r#"@prefix odrl: <http://www.w3.org/ns/odrl/2/> .
@prefix dpv:  <https://w3id.org/dpv#> .
<urn:kdr:health:probe> a odrl:Set ;
    odrl:uid <urn:kdr:health:probe> ;
    odrl:permission [
        odrl:target <urn:kdr:health:target> ;
        odrl:action odrl:use ;
        odrl:constraint [
            odrl:leftOperand odrl:purpose ;
            odrl:operator odrl:eq ;
            odrl:rightOperand dpv:ServiceProvision
        ]
    ] .
"#;

/// A compiled probe policy, loaded into the engine the exchange uses.
pub struct Probe {
    module: LoadedModule,
}

impl std::fmt::Debug for Probe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Probe").finish_non_exhaustive()
    }
}

fn probe_input(purpose: &str) -> PolicyInput {
    PolicyInput {
        assignee: Some("urn:kdr:health:assignee".into()),
        action: Some("http://www.w3.org/ns/odrl/2/use".into()),
        target: Some("urn:kdr:health:target".into()),
        purpose: Some(format!("https://w3id.org/dpv#{purpose}")),
        now_ms: Some(time::OffsetDateTime::now_utc().unix_timestamp() * 1000),
        ..PolicyInput::default()
    }
}

impl Probe {
    /// Compiles the probe policy with the broker's compiler and loads it into `exchange`'s
    /// engine: a broker whose compiler or engine is broken does not start.
    pub fn new(exchange: &Exchange) -> Result<Self, String> {
        let policy = policy_compiler::parse::parse_one(PROBE_POLICY, policy_compiler::parse::Syntax::Turtle, &exchange.vocab)
            .map_err(|e| format!("the probe policy does not parse: {e}"))?;
        let bytes =
            policy_compiler::wasm::compile(&policy, &exchange.vocab).map_err(|e| format!("the probe policy does not compile: {e}"))?;
        let module = exchange
            .pool
            .engine()
            .load(&bytes)
            .map_err(|e| format!("the engine does not load the probe policy: {e}"))?;
        Ok(Self { module })
    }

    /// The engine permits the probe's purpose and denies another.
    pub async fn check(&self, exchange: &Exchange) -> Result<(), String> {
        let permitted = exchange.decide(&self.module, &probe_input("ServiceProvision")).await;
        let denied = exchange.decide(&self.module, &probe_input("CommercialPurpose")).await;
        match (permitted.permits(), denied.permits()) {
            (true, false) => Ok(()),
            (p, d) => Err(format!(
                "the policy engine decided the probe wrongly (permit expected, got {}; deny expected, got {})",
                if p { "permit" } else { "deny" },
                if d { "permit" } else { "deny" }
            )),
        }
    }
}

/// Every readiness check, on the blocking pool where they touch the disk.
pub async fn readiness(
    exchange: &Arc<Exchange>,
    audit: &Arc<crate::audit::file::FileAuditLog>,
    revocation: &Arc<crate::tls::ReloadingCrlVerifier>,
    probe: &Probe,
) -> Readiness {
    let disk = {
        let (catalog, audit, revocation) = (exchange.catalog.clone(), audit.clone(), revocation.clone());
        tokio::task::spawn_blocking(move || {
            let store = catalog
                .members()
                .map(drop)
                .map_err(|e| format!("the metadata store does not answer: {e}"));
            (store, audit.writable(), revocation.crl_status().map(drop))
        })
        .await
    };
    let (store, trail, crl) = disk.unwrap_or_else(|_| {
        let lost = || Err("the check's thread was lost".to_owned());
        (lost(), lost(), lost())
    });
    Readiness::of(vec![
        Check::of("store", store),
        Check::of("audit-trail", trail),
        Check::of("crl", crl),
        Check::of("policy-engine", probe.check(exchange).await),
    ])
}
