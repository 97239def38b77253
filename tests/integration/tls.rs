//! Mutual TLS: who gets in, and who is refused at the handshake or with 403.

use crate::support::{TestBroker, anonymous_config, json, raw_request};
use std::sync::Arc;

#[actix_rt::test]
async fn valid_member_certificate_is_accepted_and_whoami_reports_it() {
    let b = TestBroker::start();
    let mut resp = b
        .client("heidenheim-system")
        .get(b.url("/v1/whoami"))
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), 200);
    let body = json(&mut resp).await;
    assert_eq!(body["ags"], "08135019");
    assert_eq!(body["role"], "system");
    assert_eq!(body["organisation"], "Stadt Heidenheim an der Brenz");
    let serial = broker::pki::serial_of_cert_file(&b.pki.cert("heidenheim-system")).expect("serial");
    assert_eq!(body["serial"], serial.as_str());
    assert_eq!(body["member"]["organisation"], "Stadt Heidenheim an der Brenz");
}

#[actix_rt::test]
async fn missing_client_certificate_is_refused_at_the_handshake() {
    let b = TestBroker::start();
    let err = raw_request(b.addr, anonymous_config(&b.pki)).await.expect_err("must be refused");
    assert!(err.contains("CertificateRequired"), "{err}");
}

#[actix_rt::test]
async fn certificate_from_another_ca_is_refused() {
    let b = TestBroker::start();
    let err = raw_request(b.addr, b.client_config("wrong-ca")).await.expect_err("must be refused");
    assert!(err.contains("UnknownCA"), "{err}");
}

#[actix_rt::test]
async fn expired_certificate_is_refused() {
    let b = TestBroker::start();
    let err = raw_request(b.addr, b.client_config("expired")).await.expect_err("must be refused");
    assert!(err.contains("CertificateExpired"), "{err}");
}

#[actix_rt::test]
async fn revoked_certificate_is_refused_after_crl_update_without_restart() {
    let b = TestBroker::start();
    let before = raw_request(b.addr, b.client_config("revoked"))
        .await
        .expect("accepted before revocation");
    assert!(before.contains("200"), "{before}");
    let serial = broker::pki::serial_of_cert_file(&b.pki.cert("revoked")).expect("serial");
    b.ca().revoke(&serial).expect("revoke");
    let err = raw_request(b.addr, b.client_config("revoked"))
        .await
        .expect_err("must be refused after revocation");
    assert!(err.contains("CertificateRevoked"), "{err}");
    // Everyone else still gets in.
    let other = raw_request(b.addr, b.client_config("aalen-system"))
        .await
        .expect("others unaffected");
    assert!(other.contains("200"), "{other}");
}

#[actix_rt::test]
async fn unusable_crl_file_refuses_everyone_instead_of_ignoring_revocation() {
    let b = TestBroker::start();
    std::fs::write(b.pki.crl(), b"garbage").expect("corrupt CRL");
    let err = raw_request(b.addr, b.client_config("aalen-system")).await.expect_err("fail closed");
    assert!(!err.is_empty());
    b.ca().resign_crl().expect("fresh CRL");
    let ok = raw_request(b.addr, b.client_config("aalen-system"))
        .await
        .expect("back after a valid CRL");
    assert!(ok.contains("200"), "{ok}");
}

#[actix_rt::test]
async fn certificate_of_a_non_member_gets_403() {
    let b = TestBroker::start();
    let mut resp = b.client("non-member").get(b.url("/v1/whoami")).send().await.expect("request");
    assert_eq!(resp.status(), 403);
    assert_eq!(
        resp.headers().get("content-type").and_then(|v| v.to_str().ok()),
        Some("application/problem+json")
    );
    let body = json(&mut resp).await;
    assert!(body["detail"].as_str().unwrap_or_default().contains("08111000"), "{body}");
}

#[actix_rt::test]
async fn certificate_without_role_or_ags_gets_403_naming_what_is_missing() {
    let b = TestBroker::start();
    let mut resp = b.client("no-role").get(b.url("/v1/whoami")).send().await.expect("request");
    assert_eq!(resp.status(), 403);
    let body = json(&mut resp).await;
    assert!(body["detail"].as_str().unwrap_or_default().contains("municipality key"), "{body}");
}

#[actix_rt::test]
async fn member_role_not_assigned_gets_403() {
    use broker::catalog::MemberRegistry;
    let b = TestBroker::start();
    let mut aalen = b.catalog.member(&"08136088".parse().expect("ags")).expect("read").expect("member");
    aalen.roles.retain(|r| *r != broker::identity::Role::Board);
    b.catalog.put_member(&aalen).expect("update member");
    let resp = b.client("aalen-board").get(b.url("/v1/whoami")).send().await.expect("request");
    assert_eq!(resp.status(), 403);
    let ok = b.client("aalen-steward").get(b.url("/v1/whoami")).send().await.expect("request");
    assert_eq!(ok.status(), 200);
}

#[actix_rt::test]
async fn tls12_with_a_bsi_suite_works_but_chacha20_only_is_refused() {
    let b = TestBroker::start();
    let mut provider = broker::tls::bsi_provider();
    let tls12 = rustls::ClientConfig::builder_with_provider(Arc::new(provider.clone()))
        .with_protocol_versions(&[&rustls::version::TLS12])
        .expect("tls12")
        .with_root_certificates(broker::tls::root_store(&b.pki.ca_cert()).expect("roots"))
        .with_client_auth_cert(
            broker::tls::load_certs(&b.pki.cert("aalen-system"), "c").expect("c"),
            broker::tls::load_key(&b.pki.key("aalen-system")).expect("k"),
        )
        .expect("client");
    let ok = raw_request(b.addr, tls12).await.expect("TLS 1.2 with AES-GCM accepted");
    assert!(ok.contains("200"), "{ok}");

    provider.cipher_suites = vec![rustls::crypto::ring::cipher_suite::TLS13_CHACHA20_POLY1305_SHA256];
    let chacha = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("tls13")
        .with_root_certificates(broker::tls::root_store(&b.pki.ca_cert()).expect("roots"))
        .with_client_auth_cert(
            broker::tls::load_certs(&b.pki.cert("aalen-system"), "c").expect("c"),
            broker::tls::load_key(&b.pki.key("aalen-system")).expect("k"),
        )
        .expect("client");
    let err = raw_request(b.addr, chacha).await.expect_err("ChaCha20 is not offered");
    assert!(err.contains("HandshakeFailure"), "{err}");
}
