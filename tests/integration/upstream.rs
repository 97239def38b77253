//! The provider leg's client (`broker::upstream`) against a scripted provider: real mutual
//! TLS on 127.0.0.1, answers written byte by byte, so the framing cases a real provider can send
//! (chunked, length, HTTP/1.0 to the close, cut short, closed while idle) are each exercised.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use broker::demo::PkiLayout;
use broker::identity::Ags;
use broker::tls;
use broker::upstream::{self, UpstreamError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{TestBroker, client_config};

/// A provider that answers the n-th request on each connection with `answers[n]`, and closes
/// the connection after the last one. Counts the connections it accepted.
struct Scripted {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
}

async fn scripted(pki: &PkiLayout, answers: Vec<&'static [u8]>) -> Scripted {
    scripted_as(pki, "aalen-provider", answers).await
}

/// The scripted provider presenting `<cert>.crt` as its server certificate.
async fn scripted_as(pki: &PkiLayout, cert: &str, answers: Vec<&'static [u8]>) -> Scripted {
    let files = tls::ServerTlsFiles {
        certificate: pki.cert(cert),
        private_key: pki.key(cert),
        client_ca: pki.ca_cert(),
        crl: pki.crl(),
    };
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls::provider_server_config(&files).expect("provider TLS")));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            let (acceptor, answers) = (acceptor.clone(), answers.clone());
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else { return };
                for answer in answers {
                    if read_head(&mut tls).await.is_none() {
                        return;
                    }
                    if tls.write_all(answer).await.is_err() || tls.flush().await.is_err() {
                        return;
                    }
                }
                let _ = tls.shutdown().await;
            });
        }
    });
    Scripted { addr, accepted }
}

/// Reads one request head (a GET has no body).
async fn read_head<S: AsyncReadExt + Unpin>(s: &mut S) -> Option<Vec<u8>> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if s.read(&mut byte).await.ok()? == 0 {
            return None;
        }
        head.push(byte[0]);
    }
    Some(head)
}

async fn get(p: &Scripted, tls: &Arc<rustls::ClientConfig>, max: usize) -> Result<upstream::Response, UpstreamError> {
    get_for(p, tls, max, broker::demo::AALEN).await
}

/// A fetch of `provider`'s data from the scripted server.
async fn get_for(p: &Scripted, tls: &Arc<rustls::ClientConfig>, max: usize, provider: &str) -> Result<upstream::Response, UpstreamError> {
    let url = format!("https://127.0.0.1:{}/data", p.addr.port());
    let provider: Ags = provider.parse().expect("ags");
    let fetch = upstream::Fetch {
        url: &url,
        accept: "application/json",
        provider: &provider,
        revocation: None,
        timeout: Duration::from_secs(5),
        max_bytes: max,
    };
    upstream::get(tls, fetch).await
}

const CHUNKED: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n[1,2,\r\n2\r\n3]\r\n0\r\n\r\n";
const LENGTH: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Type: text/csv\r\nContent-Length: 6\r\n\r\na,b\n1\n";

#[actix_rt::test]
async fn chunked_and_length_bodies_are_read_whole_on_one_kept_connection() {
    let b = TestBroker::start();
    let p = scripted(&b.pki, vec![CHUNKED, LENGTH]).await;
    let tls = Arc::new(client_config(&b.pki, "broker"));
    let first = get(&p, &tls, 1 << 20).await.expect("chunked answer");
    assert_eq!((first.status.as_u16(), first.body.as_slice()), (200, b"[1,2,3]".as_slice()));
    assert_eq!(first.content_type.as_deref(), Some("application/json"));
    let second = get(&p, &tls, 1 << 20).await.expect("length answer");
    assert_eq!(second.body, b"a,b\n1\n");
    assert_eq!(second.content_type.as_deref(), Some("text/csv"));
    assert_eq!(p.accepted.load(Ordering::SeqCst), 1, "the second request reused the connection");
}

#[actix_rt::test]
async fn a_kept_connection_the_provider_closed_meanwhile_is_replaced_once() {
    let b = TestBroker::start();
    // One answer per connection, then the provider closes it: the pooled connection is dead.
    let p = scripted(&b.pki, vec![LENGTH]).await;
    let tls = Arc::new(client_config(&b.pki, "broker"));
    get(&p, &tls, 1 << 20).await.expect("first");
    tokio::time::sleep(Duration::from_millis(100)).await; // the close has arrived
    let second = get(&p, &tls, 1 << 20).await.expect("second, on a new connection");
    assert_eq!(second.body, b"a,b\n1\n");
    assert_eq!(p.accepted.load(Ordering::SeqCst), 2);
}

#[actix_rt::test]
async fn a_body_cut_short_is_an_error_not_a_short_body() {
    let b = TestBroker::start();
    let p = scripted(
        &b.pki,
        vec![b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n[1,2,3]"],
    )
    .await;
    let tls = Arc::new(client_config(&b.pki, "broker"));
    let err = get(&p, &tls, 1 << 20).await.expect_err("cut short");
    assert!(matches!(err, UpstreamError::Failed(_)), "{err}");
}

#[actix_rt::test]
async fn an_http_1_0_body_without_a_length_ends_with_the_connection() {
    let b = TestBroker::start();
    let p = scripted(&b.pki, vec![b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n[4,5]"]).await;
    let tls = Arc::new(client_config(&b.pki, "broker"));
    let r = get(&p, &tls, 1 << 20).await.expect("HTTP/1.0 answer");
    assert_eq!(r.body, b"[4,5]");
}

#[actix_rt::test]
async fn a_body_over_the_limit_is_refused_whole() {
    let b = TestBroker::start();
    let p = scripted(&b.pki, vec![CHUNKED]).await;
    let tls = Arc::new(client_config(&b.pki, "broker"));
    let err = get(&p, &tls, 6).await.expect_err("7 bytes > 6");
    assert!(matches!(err, UpstreamError::TooLarge(6)), "{err}");
}

#[actix_rt::test]
async fn a_server_without_the_publishers_provider_certificate_gets_no_request() {
    let b = TestBroker::start();
    let tls = Arc::new(client_config(&b.pki, "broker"));
    // Heidenheim's provider answering for Aalen's data; the broker's own certificate (no
    // provider role) as a provider: neither is asked anything.
    for cert in ["heidenheim-provider", "broker"] {
        let p = scripted_as(&b.pki, cert, vec![LENGTH]).await;
        let err = get(&p, &tls, 1 << 20).await.expect_err(cert);
        assert!(matches!(err, UpstreamError::WrongProvider { .. }), "{cert}: {err}");
    }
}

#[actix_rt::test]
async fn a_connection_proven_for_one_city_never_carries_a_request_for_another() {
    let b = TestBroker::start();
    let p = scripted(&b.pki, vec![LENGTH, LENGTH]).await;
    let tls = Arc::new(client_config(&b.pki, "broker"));
    get(&p, &tls, 1 << 20).await.expect("Aalen's data from Aalen's provider");
    let err = get_for(&p, &tls, 1 << 20, broker::demo::HEIDENHEIM)
        .await
        .expect_err("the pooled Aalen connection must not serve Heidenheim's data");
    assert!(matches!(err, UpstreamError::WrongProvider { .. }), "{err}");
    assert_eq!(p.accepted.load(Ordering::SeqCst), 2, "a new connection was opened and refused");
}

#[actix_rt::test]
async fn a_revoked_provider_certificate_proves_nothing() {
    let b = TestBroker::start();
    let p = scripted(&b.pki, vec![LENGTH, LENGTH]).await;
    let tls = Arc::new(client_config(&b.pki, "broker"));
    let files = tls::ServerTlsFiles {
        certificate: b.pki.cert("broker"),
        private_key: b.pki.key("broker"),
        client_ca: b.pki.ca_cert(),
        crl: b.pki.crl(),
    };
    let revocation = tls::server_config(&files).expect("tls").revocation;
    let url = format!("https://127.0.0.1:{}/data", p.addr.port());
    let aalen: Ags = broker::demo::AALEN.parse().expect("ags");
    let fetch = upstream::Fetch {
        url: &url,
        accept: "application/json",
        provider: &aalen,
        revocation: Some(&revocation),
        timeout: Duration::from_secs(5),
        max_bytes: 1 << 20,
    };
    upstream::get(&tls, fetch).await.expect("a good provider certificate");
    let serial = broker::pki::serial_of_cert_file(&b.pki.cert("aalen-provider")).expect("serial");
    b.ca().revoke(&serial).expect("revoke");
    // A new connection (a fresh TLS client, so nothing is pooled) meets the revocation.
    let fresh = Arc::new(client_config(&b.pki, "broker"));
    let err = upstream::get(&fresh, fetch).await.expect_err("revoked");
    assert!(matches!(err, UpstreamError::WrongProvider { .. }), "{err}");
    assert!(err.to_string().contains("revoked"), "{err}");
}
