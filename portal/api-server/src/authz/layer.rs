//! The authorization layer: an axum middleware in front of every gRPC route.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use bytes::Bytes;
use tonic::Status;
use trellis_identity::TokenService;
use trellis_types::{Error, UserState};
use trellis_workspace::Workspace;
use trellis_workspace::access::Subject;

use super::rules::{Access, Rule, rules};
use super::{Caller, Gate};
use crate::status::to_status;

/// Largest request message accepted (the gRPC default); bigger ones are refused before decoding.
pub const MAX_REQUEST_BYTES: usize = 4 * 1024 * 1024;

/// Everything the layer needs; shared by all requests.
pub struct Authorizer {
    tokens: Arc<TokenService>,
    workspace: Workspace,
    gate: Gate,
    rules: HashMap<&'static str, Rule>,
}

impl Authorizer {
    /// An authorizer with the built-in rule table.
    pub fn new(tokens: Arc<TokenService>, workspace: Workspace, gate: Gate) -> Authorizer {
        Authorizer { tokens, workspace, gate, rules: rules() }
    }

    /// Verifies a bearer token and loads the caller's account.
    pub async fn authenticate(&self, token: &str) -> Result<Caller, Error> {
        let verified = self.tokens.verify(token).await?;
        let Some(user) = self.workspace.find_user(&verified.username).await? else {
            return Err(Error::Unauthenticated(format!("account {} no longer exists", verified.username)));
        };
        Ok(Caller {
            subject: Subject { username: user.username.clone(), admin: user.admin },
            state: user.state,
            user,
            token: verified,
        })
    }

    async fn admit(&self, request: Request) -> Result<Request, Status> {
        let path = request.uri().path().to_owned();
        let Some(rule) = self.rules.get(path.as_str()).copied() else {
            return match trellis_api::find_method(&path) {
                Some(m) => Err(Status::unimplemented(format!(
                    "{}/{} is not implemented by this Trellis portal yet",
                    m.service, m.method
                ))),
                // Not an API method at all: let the router answer.
                None => Ok(request),
            };
        };
        if let Access::NotBuilt(what) = rule.access {
            return Err(Status::unimplemented(format!(
                "{} is not implemented by this Trellis portal yet (it comes with {what})",
                path.trim_start_matches('/')
            )));
        }
        // Every Identity and Workspace RPC is unary and small: read the one message now, so
        // size limits and malformed input are refused the same way for every method, before
        // any work is done on the caller's behalf.
        let (parts, body) = request.into_parts();
        let bytes = axum::body::to_bytes(body, MAX_REQUEST_BYTES + 5).await.map_err(|_| {
            to_status(&Error::ResourceExhausted(format!(
                "request is larger than the {MAX_REQUEST_BYTES}-byte limit"
            )))
        })?;
        let target = (rule.target)(grpc_message(&bytes)?).map_err(|e| to_status(&e))?;
        let mut request = Request::from_parts(parts, Body::from(bytes));

        let public = matches!(rule.access, Access::Public);
        let caller = match bearer_token(&request) {
            Some(token) => match self.authenticate(token).await {
                Ok(caller) => Some(caller),
                // A stale token must not stop someone from logging in again or registering.
                Err(_) if public => None,
                Err(e) => return Err(to_status(&e)),
            },
            None => None,
        };
        let Some(caller) = caller else {
            if public {
                return Ok(request);
            }
            return Err(to_status(&Error::Unauthenticated("no access token provided".to_owned())));
        };
        if !public {
            check_state(&caller, rule)?;
        }
        match (rule.access, target) {
            (Access::Admin, _) if !caller.is_admin() => {
                return Err(to_status(&Error::PermissionDenied(format!(
                    "{} is for portal administrators only",
                    path.trim_start_matches('/')
                ))));
            }
            (Access::Policy(entity, operation), Some(target)) => {
                self.gate.check(&caller, entity, operation, &target).await.map_err(|e| to_status(&e))?;
            }
            (Access::Policy(..), None) => {
                return Err(to_status(&Error::Internal(format!("{path}: policy rule names no target"))));
            }
            _ => {}
        }
        request.extensions_mut().insert(caller);
        Ok(request)
    }
}

/// Refuses frozen accounts everywhere and pending ones outside their own account's methods.
fn check_state(caller: &Caller, rule: Rule) -> Result<(), Status> {
    match caller.state {
        UserState::Active => Ok(()),
        UserState::Frozen => Err(to_status(&Error::PermissionDenied(format!(
            "account {} is frozen; contact a portal administrator",
            caller.username()
        )))),
        UserState::Pending | UserState::NotSet if rule.while_pending => Ok(()),
        UserState::Pending | UserState::NotSet => Err(to_status(&Error::PermissionDenied(format!(
            "account {} is waiting for activation by a portal administrator or organization maintainer",
            caller.username()
        )))),
    }
}

fn bearer_token(request: &Request) -> Option<&str> {
    let value = request.headers().get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let token = value.strip_prefix("Bearer ").or_else(|| value.strip_prefix("bearer "))?.trim();
    (!token.is_empty() && token != "None").then_some(token)
}

/// The message inside a unary gRPC request body (one length-prefixed frame).
fn grpc_message(body: &Bytes) -> Result<&[u8], Status> {
    let malformed = |why: &str| to_status(&Error::invalid("request", format!("malformed gRPC frame: {why}")));
    if body.len() < 5 {
        return Err(malformed("shorter than its 5-byte header"));
    }
    if body[0] != 0 {
        return Err(Status::unimplemented("compressed requests are not supported; send them uncompressed"));
    }
    let len = u32::from_be_bytes([body[1], body[2], body[3], body[4]]) as usize;
    if len > MAX_REQUEST_BYTES {
        return Err(to_status(&Error::ResourceExhausted(format!(
            "request message of {len} bytes exceeds the {MAX_REQUEST_BYTES}-byte limit"
        ))));
    }
    body.get(5..5 + len)
        .filter(|_| body.len() == 5 + len)
        .ok_or_else(|| malformed("length prefix does not match the body"))
}

fn is_grpc(request: &Request) -> bool {
    request
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/grpc"))
}

/// The middleware: authenticate, authorize, then pass the request on with its [`Caller`].
pub async fn authorize(State(authorizer): State<Arc<Authorizer>>, request: Request, next: Next) -> Response {
    if !is_grpc(&request) {
        return next.run(request).await;
    }
    match authorizer.admit(request).await {
        Ok(request) => next.run(request).await,
        Err(status) => status.into_http::<Body>(),
    }
}
