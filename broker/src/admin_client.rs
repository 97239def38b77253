//! The CLI's side of the admin listener (`broker backup`, `broker audit rotate-key`): one POST in
//! plain HTTP to the running broker on its loopback address. Nothing listening there is not an
//! error: the command then works on the stopped broker's files itself. A change needs the token
//! the broker wrote to its state directory at start: whoever runs the command must be able to
//! read that directory (the broker's user, or root).

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

/// The admin listener's token in the state directory (written by the broker at start, 0600).
pub const TOKEN_FILE: &str = "admin.token";

/// POSTs to `path` on the admin listener at `addr` with the token in `state_dir`: the status
/// and JSON body, or `None` if nothing listens there. Waits as long as a backup of a large state
/// may take.
pub fn post(addr: SocketAddr, state_dir: &Path, path: &str) -> Result<Option<(u16, serde_json::Value)>, String> {
    let url = format!("http://{addr}{path}");
    let token_file = state_dir.join(TOKEN_FILE);
    actix_rt::System::new().block_on(async move {
        let client = awc::Client::builder().timeout(Duration::from_secs(6 * 3600)).finish();
        // Nothing listening is found out before the token is needed.
        let token = match std::fs::read_to_string(&token_file) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(format!("{}: {e} (run this as the broker's user)", token_file.display())),
        };
        let request = client
            .post(&url)
            .insert_header(("Authorization", format!("Bearer {}", token.trim())));
        let mut resp = match request.send().await {
            Ok(r) => r,
            Err(awc::error::SendRequestError::Connect(_)) => return Ok(None),
            Err(e) => return Err(format!("the broker's admin listener at {addr} did not answer: {e}")),
        };
        let body = resp.body().limit(1 << 20).await.map_err(|e| format!("{url}: {e}"))?;
        let json = serde_json::from_slice(&body).unwrap_or_default();
        Ok(Some((resp.status().as_u16(), json)))
    })
}
