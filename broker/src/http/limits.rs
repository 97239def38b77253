//! Limits per caller, so that no member and no stranger can starve the others: requests per
//! second per member (all its certificates together), open connections per certificate, and
//! requests per second per address on the public listener.
//!
//! The rate limits are GCRA token buckets (governor, keyed). A refusal says which limit was hit
//! and when to try again (429 with `Retry-After`); a caller within its limits never notices them.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::identity::Ags;

pub use crate::config::LimitSettings;

pub struct Limits {
    settings: LimitSettings,
    members: DefaultKeyedRateLimiter<Ags>,
    public: DefaultKeyedRateLimiter<IpAddr>,
    /// Checks since the public limiter last forgot idle addresses.
    public_checks: AtomicU64,
    connections: crate::shares::Shares,
}

impl std::fmt::Debug for Limits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limits").field("settings", &self.settings).finish_non_exhaustive()
    }
}

fn quota(per_second: u32) -> Quota {
    let rate = NonZeroU32::new(per_second.max(1)).unwrap_or(NonZeroU32::MIN);
    let burst = NonZeroU32::new(per_second.max(1).saturating_mul(2)).unwrap_or(rate);
    Quota::per_second(rate).allow_burst(burst)
}

/// Whole seconds until `not_until`, at least one.
fn seconds_until(wait: std::time::Duration) -> u32 {
    u32::try_from(wait.as_secs() + 1).unwrap_or(u32::MAX)
}

impl Limits {
    pub fn new(settings: LimitSettings) -> Self {
        Self {
            settings,
            members: RateLimiter::keyed(quota(settings.member_per_second)),
            public: RateLimiter::keyed(quota(settings.public_per_second)),
            public_checks: AtomicU64::new(0),
            connections: crate::shares::Shares::default(),
        }
    }

    pub fn settings(&self) -> LimitSettings {
        self.settings
    }

    /// One request by `member`; `Err(seconds to wait)` over its rate.
    pub fn member(&self, member: &Ags) -> Result<(), u32> {
        self.members
            .check_key(member)
            .map_err(|n| seconds_until(n.wait_time_from(DefaultClock::default().now())))
    }

    /// One request from `ip` on the public listener; `Err(seconds to wait)` over its rate.
    pub fn public(&self, ip: IpAddr) -> Result<(), u32> {
        // Addresses are not bounded like members: forget idle ones now and then.
        if self.public_checks.fetch_add(1, Ordering::Relaxed) % 10_000 == 9_999 {
            self.public.retain_recent();
            self.public.shrink_to_fit();
        }
        self.public
            .check_key(&ip)
            .map_err(|n| seconds_until(n.wait_time_from(DefaultClock::default().now())))
    }

    /// A new connection by the certificate `serial`: a permit while it is open, or `None` when
    /// the certificate holds its maximum already.
    pub fn connect(&self, serial: &str) -> Option<ConnectionPermit> {
        self.connections.take(serial, self.settings.connections_per_certificate)
    }
}

/// Held by an open connection (in its connection data); counts it for its certificate.
pub type ConnectionPermit = crate::shares::Share;

/// Put into a connection's data instead of a permit: every request on it is refused.
#[derive(Debug, Clone, Copy)]
pub struct TooManyConnections(pub usize);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_member_over_its_rate_waits_and_the_others_do_not() {
        let l = Limits::new(LimitSettings {
            member_per_second: 5,
            ..LimitSettings::default()
        });
        let (a, b): (Ags, Ags) = ("08136088".parse().expect("ags"), "08135019".parse().expect("ags"));
        let ok = (0..30).filter(|_| l.member(&a).is_ok()).count();
        assert_eq!(ok, 10, "a burst of twice the rate, then refusals");
        assert!(l.member(&a).is_err_and(|s| s >= 1));
        assert!(l.member(&b).is_ok(), "another member is not affected");
    }

    #[test]
    fn connections_per_certificate_are_counted_while_open() {
        let l = Limits::new(LimitSettings {
            connections_per_certificate: 2,
            ..LimitSettings::default()
        });
        let first = l.connect("aa").expect("first");
        let _second = l.connect("aa").expect("second");
        assert!(l.connect("aa").is_none(), "a third is refused");
        assert!(l.connect("bb").is_some(), "another certificate is not");
        drop(first);
        assert!(l.connect("aa").is_some(), "a closed connection frees its place");
    }
}
