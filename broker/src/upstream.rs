//! The provider leg of an exchange: an HTTP/1.1 `GET` over mutual TLS on kept-alive
//! connections, one small pool per worker thread.
//!
//! **Whose data this is.** A connection is used for a city's data only if the server at the
//! other end proved, with a certificate from the data space's CA, that it is that city's
//! provider: its certificate carries the provider role and the publisher's municipality key
//! ([`crate::identity::provider_ags`]). Checked right after the handshake, before a request is
//! sent, and kept with the pooled connection, so a connection proven for Aalen never carries a
//! request for Heidenheim's dataset. Which addresses the broker dials at all is the exchange's
//! check (the publisher's registered origins); this one holds even if an origin is mistyped or
//! its name resolves somewhere else.
//!
//! Why not awc, which the broker used here before: awc builds a new `h1::ClientCodec::default()`
//! for every request, and with it a new actix-http `ServiceConfig`, whose date service spawns a
//! task with a 500 ms interval timer and aborts it when the request is done. Under load that was
//! a task, a timer registration and about every other request an `eventfd` write to wake the
//! worker's own event loop (1,230 such writes per second on one worker, traced with `perf`),
//! besides fresh read and write buffers per request. Here the HTTP/1.1 parsing and encoding stay
//! actix-http's ([`ClientCodec`], the same codec awc uses), with one `ServiceConfig` per thread
//! and one [`Framed`] per connection, kept with its buffers between requests.
//!
//! What a caller gets is all or nothing: a status, the content type and the whole body (up to
//! a limit), or an [`UpstreamError`]. A connection goes back to the pool only after a complete
//! response whose codec allows keep-alive; a pooled connection that the provider has closed
//! meanwhile is noticed on use, and the `GET` (idempotent) is sent once more on a new one.

use std::cell::RefCell;
use std::future::poll_fn;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use actix_codec::Framed;
use actix_http::body::BodySize;
use actix_http::error::ParseError;
use actix_http::h1::{ClientCodec, Message, MessageType};
use actix_http::header::{ACCEPT, CONTENT_LENGTH, CONTENT_TYPE, HOST, HeaderValue};
use actix_http::uri::Authority;
use actix_http::{Method, RequestHead, RequestHeadType, ServiceConfig, StatusCode, Uri, Version};
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::identity::Ags;

type Connection = Framed<TlsStream<TcpStream>, ClientCodec>;

/// At most this many idle connections are kept per provider and thread.
const IDLE_PER_PROVIDER: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("is not the provider of {expected}: its certificate says {found}")]
    WrongProvider { expected: Ags, found: String },
    #[error("did not answer within {0:?}")]
    Timeout(Duration),
    #[error("cannot be reached: {0}")]
    Unreachable(String),
    #[error("sent more than {0} bytes")]
    TooLarge(usize),
    #[error("broke off the response: {0}")]
    Failed(String),
}

/// A complete response.
#[derive(Debug)]
pub struct Response {
    pub status: StatusCode,
    pub content_type: Option<String>,
    pub body: Vec<u8>,
}

struct Idle {
    /// Which client configuration (certificate, trust) the connection was made with.
    tls: Arc<rustls::ClientConfig>,
    authority: Authority,
    /// The municipality whose provider certificate the server presented.
    provider: Ags,
    conn: Connection,
}

impl Idle {
    /// Whether a request to `authority` with `tls` for `provider`'s data may use this connection.
    fn serves(&self, tls: &Arc<rustls::ClientConfig>, authority: &Authority, provider: &Ags) -> bool {
        Arc::ptr_eq(&self.tls, tls) && &self.authority == authority && &self.provider == provider
    }
}

thread_local! {
    /// One codec configuration per worker thread: its date service is a task on this thread.
    static CONFIG: RefCell<Option<ServiceConfig>> = const { RefCell::new(None) };
    static IDLE: RefCell<Vec<Idle>> = const { RefCell::new(Vec::new()) };
}

fn codec() -> ClientCodec {
    CONFIG.with(|c| ClientCodec::new(c.borrow_mut().get_or_insert_with(ServiceConfig::default).clone()))
}

/// What to fetch and from whom.
#[derive(Debug, Clone, Copy)]
pub struct Fetch<'a> {
    pub url: &'a str,
    pub accept: &'a str,
    /// The municipality the answering server must prove to be the provider of.
    pub provider: &'a Ags,
    /// The data space's revocation list: a revoked provider certificate proves nothing.
    pub revocation: Option<&'a crate::tls::ReloadingCrlVerifier>,
    pub timeout: Duration,
    pub max_bytes: usize,
}

/// `GET url` with `Accept: accept` from `provider`'s server, whole or not at all, within
/// `timeout` and `max_bytes`.
pub async fn get(tls: &Arc<rustls::ClientConfig>, fetch: Fetch<'_>) -> Result<Response, UpstreamError> {
    let target = Target::parse(fetch.url)?;
    let timeout = fetch.timeout;
    match tokio::time::timeout(timeout, exchange(tls, &target, fetch)).await {
        Ok(result) => result,
        Err(_) => Err(UpstreamError::Timeout(timeout)),
    }
}

/// Where a URL points: `https` only.
struct Target {
    uri: Uri,
    host: String,
    port: u16,
    /// `host:port` as the URL has it: the pool's key and the `Host` header (a clone shares the
    /// URL's bytes, so keying the pool allocates nothing per request).
    authority: Authority,
}

impl Target {
    fn parse(url: &str) -> Result<Self, UpstreamError> {
        let bad = |why: &str| UpstreamError::Unreachable(format!("the access URL {url} {why}"));
        let uri: Uri = url.parse().map_err(|_| bad("is not a URL"))?;
        if uri.scheme_str() != Some("https") {
            return Err(bad("is not https"));
        }
        let authority = uri.authority().cloned().ok_or_else(|| bad("has no host"))?;
        let host = authority.host();
        // `[::1]` in a URL, `::1` as a server name.
        let host = host.trim_start_matches('[').trim_end_matches(']').to_owned();
        let port = uri.port_u16().unwrap_or(443);
        Ok(Self {
            uri,
            host,
            port,
            authority,
        })
    }
}

async fn exchange(tls: &Arc<rustls::ClientConfig>, target: &Target, fetch: Fetch<'_>) -> Result<Response, UpstreamError> {
    let (accept, max_bytes, provider) = (fetch.accept, fetch.max_bytes, fetch.provider);
    if let Some(conn) = take_idle(tls, &target.authority, provider) {
        match request(conn, target, accept, max_bytes).await {
            Err(Attempt::Closed(_)) => {} // closed while idle: once more on a new connection
            Err(Attempt::Failed(e)) => return Err(e),
            Ok(r) => return Ok(keep(tls, &target.authority, provider, r)),
        }
    }
    let conn = connect(tls, target, provider, fetch.revocation).await?;
    match request(conn, target, accept, max_bytes).await {
        Ok(r) => Ok(keep(tls, &target.authority, provider, r)),
        Err(Attempt::Closed(e) | Attempt::Failed(e)) => Err(e),
    }
}

fn take_idle(tls: &Arc<rustls::ClientConfig>, authority: &Authority, provider: &Ags) -> Option<Connection> {
    IDLE.with(|idle| {
        let mut idle = idle.borrow_mut();
        let i = idle.iter().rposition(|c| c.serves(tls, authority, provider))?;
        Some(idle.swap_remove(i).conn)
    })
}

/// Puts a reusable connection back and hands on the response.
fn keep(
    tls: &Arc<rustls::ClientConfig>,
    authority: &Authority,
    provider: &Ags,
    (response, reusable): (Response, Option<Connection>),
) -> Response {
    if let Some(conn) = reusable {
        IDLE.with(|idle| {
            let mut idle = idle.borrow_mut();
            let same = idle.iter().filter(|c| c.serves(tls, authority, provider)).count();
            if same < IDLE_PER_PROVIDER {
                idle.push(Idle {
                    tls: tls.clone(),
                    authority: authority.clone(),
                    provider: provider.clone(),
                    conn,
                });
            }
        });
    }
    response
}

async fn connect(
    tls: &Arc<rustls::ClientConfig>,
    target: &Target,
    provider: &Ags,
    revocation: Option<&crate::tls::ReloadingCrlVerifier>,
) -> Result<Connection, UpstreamError> {
    let unreachable = |e: std::io::Error| UpstreamError::Unreachable(e.to_string());
    let name = ServerName::try_from(target.host.clone())
        .map_err(|_| UpstreamError::Unreachable(format!("'{}' is not a host name", target.host)))?;
    let tcp = TcpStream::connect((target.host.as_str(), target.port)).await.map_err(unreachable)?;
    tcp.set_nodelay(true).map_err(unreachable)?;
    let stream = TlsConnector::from(tls.clone()).connect(name, tcp).await.map_err(unreachable)?;
    let presented = stream.get_ref().1.peer_certificates().and_then(|c| c.first());
    match presented.map(|c| crate::identity::provider_identity(c.as_ref())) {
        Some(Ok(p)) if &p.ags == provider => match revocation.map(|r| r.check(&p.serial, p.not_after)) {
            Some(Err(refusal)) => Err(UpstreamError::WrongProvider {
                expected: provider.clone(),
                found: format!("a certificate that is no longer good: {refusal}"),
            }),
            _ => Ok(Framed::new(stream, codec())),
        },
        Some(Ok(other)) => Err(UpstreamError::WrongProvider {
            expected: provider.clone(),
            found: format!("provider of {}", other.ags),
        }),
        Some(Err(e)) => Err(UpstreamError::WrongProvider {
            expected: provider.clone(),
            found: e.to_string(),
        }),
        None => Err(UpstreamError::WrongProvider {
            expected: provider.clone(),
            found: "no certificate".into(),
        }),
    }
}

/// How one attempt ended when it did not end with a response.
enum Attempt {
    /// Nothing came back: the connection was closed (or broke) before a response began.
    Closed(UpstreamError),
    Failed(UpstreamError),
}

/// Sends the request on `conn` and reads the whole response; the connection comes back if it
/// may be used again.
async fn request(mut conn: Connection, target: &Target, accept: &str, max_bytes: usize) -> Result<(Response, Option<Connection>), Attempt> {
    let closed = |e: String| Attempt::Closed(UpstreamError::Unreachable(e));
    let mut head = RequestHead::default();
    head.method = Method::GET;
    head.uri = target.uri.clone();
    head.version = Version::HTTP_11;
    let header = |v: &str| HeaderValue::from_str(v).map_err(|e| Attempt::Failed(UpstreamError::Unreachable(e.to_string())));
    head.headers.insert(HOST, header(target.authority.as_str())?);
    head.headers.insert(ACCEPT, header(accept)?);
    Pin::new(&mut conn)
        .write(Message::Item((RequestHeadType::Owned(head), BodySize::None)))
        .map_err(|e| closed(e.to_string()))?;
    poll_fn(|cx| Pin::new(&mut conn).flush(cx))
        .await
        .map_err(|e| closed(e.to_string()))?;
    let head = match poll_fn(|cx| Pin::new(&mut conn).next_item(cx)).await {
        Some(Ok(head)) => head,
        Some(Err(ParseError::Io(e))) => return Err(closed(e.to_string())),
        Some(Err(e)) => return Err(Attempt::Failed(UpstreamError::Failed(e.to_string()))),
        None => return Err(closed("the connection was closed before a response".into())),
    };
    let content_type = head.headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_owned);
    // An HTTP/1.0 answer without a length ends where the connection does; any other end of
    // the connection before the end of the payload is a broken response.
    let ends_at_close = head.version == Version::HTTP_10 && !head.headers.contains_key(CONTENT_LENGTH);
    let (body, conn) = match conn.codec_ref().message_type() {
        MessageType::None => (Vec::new(), conn),
        MessageType::Payload | MessageType::Stream => read_body(conn, max_bytes, ends_at_close).await.map_err(Attempt::Failed)?,
    };
    let reusable = conn.codec_ref().keep_alive().then_some(conn);
    Ok((
        Response {
            status: head.status,
            content_type,
            body,
        },
        reusable,
    ))
}

/// Reads the payload to its end, or fails once it exceeds `max_bytes`.
async fn read_body(conn: Connection, max_bytes: usize, ends_at_close: bool) -> Result<(Vec<u8>, Connection), UpstreamError> {
    let mut conn = conn.into_map_codec(ClientCodec::into_payload_codec);
    let mut body = Vec::new();
    loop {
        match poll_fn(|cx| Pin::new(&mut conn).next_item(cx)).await {
            Some(Ok(Some(chunk))) => {
                if body.len() + chunk.len() > max_bytes {
                    return Err(UpstreamError::TooLarge(max_bytes));
                }
                body.extend_from_slice(&chunk);
            }
            Some(Ok(None)) => break,
            None if ends_at_close => break,
            Some(Err(e)) => return Err(UpstreamError::Failed(e.to_string())),
            None => return Err(UpstreamError::Failed("the connection was closed before the end".into())),
        }
    }
    Ok((body, conn.into_map_codec(|c| c.into_message_codec())))
}
