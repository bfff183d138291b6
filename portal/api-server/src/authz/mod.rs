//! Authentication and authorization, applied once, in front of every RPC.
//!
//! Every gRPC request passes [`layer::authorize`]: it finds the method's [`rules::Rule`],
//! authenticates the bearer token, checks the caller's account state, decodes the request just
//! far enough to name the object concerned, and asks the [`gate::Gate`] (the YAML policy plus the
//! caller's relations to that object). Only then does the request reach its handler, carrying a
//! [`Caller`] in its extensions. Handlers never authorize by themselves; list handlers filter
//! through the same gate.

pub mod gate;
pub mod layer;
pub mod rules;

use tonic::Request;
use trellis_identity::Verified;
use trellis_types::{Error, User, UserState};
use trellis_workspace::access::Subject;

pub use gate::{Gate, Target};

/// The authenticated caller of a request, put in the request extensions by the layer.
#[derive(Debug, Clone)]
pub struct Caller {
    /// Who is calling and whether they are an administrator.
    pub subject: Subject,
    /// The account's state when the request arrived.
    pub state: UserState,
    /// The caller's user record (for relations to other users).
    pub user: User,
    /// The verified token (for logout).
    pub token: Verified,
}

impl Caller {
    /// The caller's username.
    pub fn username(&self) -> &str {
        &self.subject.username
    }

    /// Whether the caller is a portal administrator.
    pub fn is_admin(&self) -> bool {
        self.subject.admin
    }
}

/// The authenticated caller of `request`. Fails only if the authorization layer was not applied,
/// which is a wiring bug, never a client error.
pub fn caller<T>(request: &Request<T>) -> Result<&Caller, Error> {
    request
        .extensions()
        .get::<Caller>()
        .ok_or_else(|| Error::Internal("request reached a handler without passing authorization".to_owned()))
}

/// The caller of a request whose rule allows anonymous access, if a valid token came with it.
pub fn optional_caller<T>(request: &Request<T>) -> Option<&Caller> {
    request.extensions().get::<Caller>()
}
