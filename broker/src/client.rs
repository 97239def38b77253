//! A small mutual-TLS client for the CLI (`broker policy submit|approve|reject|simulate`,
//! `broker report ...`): the same TLS settings as the broker's own client side.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Connection {
    /// `https://host:port`
    pub broker: String,
    pub ca: PathBuf,
    pub certificate: PathBuf,
    pub private_key: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    #[error("cannot reach {url}: {reason}")]
    Send { url: String, reason: String },
    #[error("{0}")]
    Runtime(#[from] std::io::Error),
}

/// The status and body of one request.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Connection {
    /// `method` (`GET` or `POST`) on `path` (with its query), with an optional body and media type.
    pub fn call(&self, method: &str, path: &str, body: Option<(Vec<u8>, String)>) -> Result<Answer, ClientError> {
        let tls = crate::tls::client_config(&self.ca, &self.certificate, &self.private_key)?;
        let url = format!("{}{path}", self.broker.trim_end_matches('/'));
        actix_rt::System::new().block_on(async move {
            let connector = awc::Connector::new().rustls_0_23(Arc::new(tls));
            let client = awc::Client::builder()
                .connector(connector)
                .timeout(Duration::from_secs(60))
                .finish();
            let req = match method {
                "POST" => client.post(&url),
                _ => client.get(&url),
            };
            let sent = match body {
                Some((bytes, media_type)) => req.insert_header(("Content-Type", media_type)).send_body(bytes).await,
                None => req.send().await,
            };
            let send_err = |reason: String| ClientError::Send { url: url.clone(), reason };
            let mut resp = sent.map_err(|e| send_err(e.to_string()))?;
            let body = resp.body().limit(64 << 20).await.map_err(|e| send_err(e.to_string()))?;
            Ok(Answer {
                status: resp.status().as_u16(),
                body: body.to_vec(),
            })
        })
    }

    /// `POST`s a large body in chunks, calling `sent` with the bytes sent so far (for a progress
    /// bar) and waiting up to `timeout` for the answer: an import of a whole portal takes
    /// minutes, not the sixty seconds other calls get.
    pub fn upload(
        &self,
        path: &str,
        body: Vec<u8>,
        media_type: &str,
        timeout: Duration,
        sent: impl Fn(u64) + 'static,
    ) -> Result<Answer, ClientError> {
        const CHUNK: usize = 256 * 1024;
        let tls = crate::tls::client_config(&self.ca, &self.certificate, &self.private_key)?;
        let url = format!("{}{path}", self.broker.trim_end_matches('/'));
        let media_type = media_type.to_owned();
        actix_rt::System::new().block_on(async move {
            let connector = awc::Connector::new().rustls_0_23(Arc::new(tls));
            let client = awc::Client::builder().connector(connector).timeout(timeout).finish();
            let body = bytes::Bytes::from(body);
            let total = body.len();
            let mut done = 0u64;
            let chunks = (0..total.div_ceil(CHUNK)).map(move |i| {
                let chunk = body.slice(i * CHUNK..((i + 1) * CHUNK).min(total));
                done += chunk.len() as u64;
                sent(done);
                Ok::<_, std::io::Error>(chunk)
            });
            let send_err = |reason: String| ClientError::Send { url: url.clone(), reason };
            let mut resp = client
                .post(&url)
                .insert_header(("Content-Type", media_type))
                .send_stream(futures_util::stream::iter(chunks))
                .await
                .map_err(|e| send_err(e.to_string()))?;
            let body = resp.body().limit(64 << 20).await.map_err(|e| send_err(e.to_string()))?;
            Ok(Answer {
                status: resp.status().as_u16(),
                body: body.to_vec(),
            })
        })
    }
}
