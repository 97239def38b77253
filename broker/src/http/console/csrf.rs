//! Cross-site request forgery, refused twice.
//!
//! A browser presents its client certificate to the broker on *any* request to it, also one a
//! foreign page starts (a form posted from `evil.example` to the console): the certificate is an
//! ambient credential like a cookie, without SameSite. So every state-changing form carries a
//! token the broker derived for this certificate and this form, which a foreign page cannot know,
//! and a browser's own word on where the request comes from (`Sec-Fetch-Site`, else `Origin`)
//! must say "this site". Either alone would do against today's browsers; both together also hold
//! against an old browser without Fetch Metadata and a proxy that strips `Origin`.
//!
//! Tokens are HMAC-SHA-256 over (certificate serial, form path, hour), keyed from the broker's
//! secret, valid for 12 hours: nothing is stored, and every replica with the same secret accepts
//! the others' tokens.

use ring::hmac;

/// How long a form stays valid, in hours.
const VALID_HOURS: u64 = 12;

/// The key tokens are made with.
pub struct CsrfKey(hmac::Key);

impl std::fmt::Debug for CsrfKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CsrfKey(..)")
    }
}

/// Why a form post was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Forgery {
    #[error("the form was sent from another site ({0}); the console accepts its own forms only")]
    CrossSite(String),
    #[error("the form has no valid token (it is older than {VALID_HOURS} hours, or not the console's); open the page again")]
    BadToken,
}

impl CsrfKey {
    /// The key derived from the broker's secret (the pseudonym secret every replica shares), so
    /// that knowing a token says nothing of the secret and the two uses never collide.
    pub fn derive(secret: &[u8]) -> Self {
        let root = hmac::Key::new(hmac::HMAC_SHA256, secret);
        let derived = hmac::sign(&root, b"kdr console csrf v1");
        Self(hmac::Key::new(hmac::HMAC_SHA256, derived.as_ref()))
    }

    /// The token for a form at `path` shown to the holder of certificate `serial`.
    pub fn token(&self, serial: &str, path: &str) -> String {
        self.token_at(serial, path, hour_now())
    }

    fn token_at(&self, serial: &str, path: &str, hour: u64) -> String {
        let tag = hmac::sign(&self.0, &message(serial, path, hour));
        format!("{hour}.{}", crate::hex::encode(tag.as_ref()))
    }

    /// Checks a posted token (constant time).
    pub fn verify(&self, serial: &str, path: &str, token: &str) -> Result<(), Forgery> {
        let (hour, tag) = token.split_once('.').ok_or(Forgery::BadToken)?;
        let hour: u64 = hour.parse().map_err(|_| Forgery::BadToken)?;
        let now = hour_now();
        if hour > now || now - hour >= VALID_HOURS {
            return Err(Forgery::BadToken);
        }
        let tag = crate::hex::decode(tag).ok_or(Forgery::BadToken)?;
        hmac::verify(&self.0, &message(serial, path, hour), &tag).map_err(|_| Forgery::BadToken)
    }
}

fn message(serial: &str, path: &str, hour: u64) -> Vec<u8> {
    // Lengths first: ("ab", "c") and ("a", "bc") are different messages.
    let mut m = Vec::with_capacity(serial.len() + path.len() + 24);
    for part in [serial.as_bytes(), path.as_bytes()] {
        m.extend_from_slice(&(part.len() as u64).to_be_bytes());
        m.extend_from_slice(part);
    }
    m.extend_from_slice(&hour.to_be_bytes());
    m
}

fn hour_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() / 3600)
}

/// The browser's word on where a request comes from: `Sec-Fetch-Site` (every current browser),
/// else `Origin` compared with the request's own host. A request with neither (a command-line
/// client) passes this check and still needs the token.
pub fn same_site(sec_fetch_site: Option<&str>, origin: Option<&str>, host: &str) -> Result<(), Forgery> {
    if let Some(site) = sec_fetch_site {
        return match site {
            "same-origin" | "none" => Ok(()),
            other => Err(Forgery::CrossSite(format!("Sec-Fetch-Site: {other}"))),
        };
    }
    match origin {
        None => Ok(()),
        Some(o) if o.strip_prefix("https://") == Some(host) => Ok(()),
        Some(o) => Err(Forgery::CrossSite(format!("Origin: {o}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_bound_to_its_certificate_form_and_hour() {
        let key = CsrfKey::derive(b"secret");
        let t = key.token("01ab", "/console/freigaben/x/1");
        assert_eq!(key.verify("01ab", "/console/freigaben/x/1", &t), Ok(()));
        assert_eq!(
            key.verify("01ac", "/console/freigaben/x/1", &t),
            Err(Forgery::BadToken),
            "another certificate"
        );
        assert_eq!(
            key.verify("01ab", "/console/freigaben/x/2", &t),
            Err(Forgery::BadToken),
            "another form"
        );
        assert_eq!(
            CsrfKey::derive(b"other").verify("01ab", "/console/freigaben/x/1", &t),
            Err(Forgery::BadToken),
            "another broker"
        );
        let old = key.token_at("01ab", "/p", hour_now() - VALID_HOURS);
        assert_eq!(key.verify("01ab", "/p", &old), Err(Forgery::BadToken), "expired");
        let future = key.token_at("01ab", "/p", hour_now() + 1);
        assert_eq!(key.verify("01ab", "/p", &future), Err(Forgery::BadToken));
        for junk in ["", ".", "1.", "x.00", "99999999999999999999.00", "1.zz", "ä.ö"] {
            assert_eq!(key.verify("01ab", "/p", junk), Err(Forgery::BadToken), "{junk}");
        }
    }

    #[test]
    fn cross_site_requests_are_told_by_fetch_metadata_or_origin() {
        assert!(same_site(Some("same-origin"), None, "h:1").is_ok());
        assert!(
            same_site(Some("cross-site"), Some("https://h:1"), "h:1").is_err(),
            "fetch metadata wins"
        );
        assert!(
            same_site(Some("same-site"), None, "h:1").is_err(),
            "a sibling subdomain is not the console"
        );
        assert!(same_site(None, Some("https://h:1"), "h:1").is_ok());
        assert!(same_site(None, Some("https://evil.example"), "h:1").is_err());
        assert!(same_site(None, Some("null"), "h:1").is_err());
        assert!(same_site(None, None, "h:1").is_ok());
    }
}
