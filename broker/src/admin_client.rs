//! The CLI's side of the admin listener (`broker backup`, `broker audit rotate-key`): one POST in
//! plain HTTP to the running broker on its loopback address. Nothing listening there is not an
//! error: the command then works on the stopped broker's files itself.

use std::net::SocketAddr;
use std::time::Duration;

/// POSTs to `path` on the admin listener at `addr`: the status and JSON body, or `None` if
/// nothing listens there. Waits as long as a backup of a large state may take.
pub fn post(addr: SocketAddr, path: &str) -> Result<Option<(u16, serde_json::Value)>, String> {
    let url = format!("http://{addr}{path}");
    actix_rt::System::new().block_on(async move {
        let client = awc::Client::builder().timeout(Duration::from_secs(6 * 3600)).finish();
        let mut resp = match client.post(&url).send().await {
            Ok(r) => r,
            Err(awc::error::SendRequestError::Connect(_)) => return Ok(None),
            Err(e) => return Err(format!("the broker's admin listener at {addr} did not answer: {e}")),
        };
        let body = resp.body().limit(1 << 20).await.map_err(|e| format!("{url}: {e}"))?;
        let json = serde_json::from_slice(&body).unwrap_or_default();
        Ok(Some((resp.status().as_u16(), json)))
    })
}
