//! The caller: the identity from the connection's verified certificate, and the member it
//! belongs to. Handlers take a [`Caller`] and never see certificates.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest, web};

use super::AppState;
use super::problem::Problem;
use crate::catalog::Member;
use crate::identity::{Identity, IdentityError, Role};

/// Stored in the connection's data by `on_connect`: what the certificate said, parsed once.
#[derive(Debug, Clone)]
pub struct PeerIdentity(pub Result<Identity, IdentityError>);

/// A verified member identity.
#[derive(Debug, Clone)]
pub struct Caller {
    pub identity: Identity,
    pub member: Member,
}

impl Caller {
    /// Refuses callers whose role is not one of `roles`.
    pub fn require(&self, roles: &[Role], action: &str) -> Result<(), Problem> {
        if roles.contains(&self.identity.role) {
            Ok(())
        } else {
            let allowed: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
            Err(Problem::forbidden(format!(
                "{action} needs a certificate with role {}; this one has role '{}'",
                allowed.join(" or "),
                self.identity.role
            )))
        }
    }
}

impl FromRequest for Caller {
    type Error = Problem;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Problem>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let peer = req.conn_data::<PeerIdentity>().cloned();
        let req_connections = req.conn_data::<super::limits::TooManyConnections>().copied();
        let state = req.app_data::<web::Data<AppState>>().cloned();
        Box::pin(async move {
            let state = state.ok_or_else(|| Problem::internal("application state missing", "no AppState"))?;
            let identity = match peer {
                Some(PeerIdentity(Ok(identity))) => identity,
                Some(PeerIdentity(Err(e))) => return Err(Problem::forbidden(e.to_string())),
                None => return Err(Problem::forbidden(IdentityError::NoCertificate.to_string())),
            };
            if let Some(super::limits::TooManyConnections(max)) = req_connections {
                return Err(Problem::rate_limited(
                    format!("this certificate holds {max} connections already, the most it may; reuse them"),
                    1,
                ));
            }
            // The handshake checked the certificate once; a kept-alive connection lives on, so
            // revocation and expiry are checked again for every request.
            if let Err(refusal) = state.revocation.check(&identity.serial, identity.not_after) {
                return Err(Problem::new(
                    actix_web::http::StatusCode::FORBIDDEN,
                    "certificate-refused",
                    "Forbidden",
                    format!("{refusal}; open a new connection with a valid certificate"),
                ));
            }
            let member = match state.members.get(&identity.ags) {
                Some(m) => m,
                None => {
                    let catalog = state.catalog.clone();
                    let ags = identity.ags.clone();
                    let member = web::block(move || catalog.member(&ags)).await??;
                    state.members.put(identity.ags.clone(), member)
                }
            };
            let Some(member) = member.as_ref().clone() else {
                return Err(Problem::forbidden(format!(
                    "municipality {} ({}) is not a member of this data space",
                    identity.ags, identity.organisation
                )));
            };
            if let Err(wait) = state.limits.member(&identity.ags) {
                return Err(Problem::rate_limited(
                    format!(
                        "{} makes more than {} requests a second, the most a member may; try again in {wait} s",
                        member.organisation,
                        state.limits.settings().member_per_second
                    ),
                    wait,
                ));
            }
            if !member.roles.contains(&identity.role) {
                return Err(Problem::forbidden(format!(
                    "member {} has no '{}' role assignment",
                    member.organisation, identity.role
                )));
            }
            Ok(Caller { identity, member })
        })
    }
}
