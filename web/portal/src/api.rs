//! The web portal's way into the portal: the same gRPC API every other client uses.
//!
//! Pages never call services directly. Each request is a gRPC call carrying the signed-in
//! user's token through the API's authorization layer, so the policy gate that guards the
//! `mergetb` client and the CLI guards every page too, and a refusal arrives with the same
//! reason. In `trellisd up` the transport is the API router itself, in process: no socket,
//! no second copy of any check.

use std::convert::Infallible;

use tower::ServiceExt;
use tower::util::BoxCloneSyncService;
use trellis_api::portal::v1 as pb;

/// Any tower service that answers gRPC requests: the API router in process, or a channel.
/// Failures to reach a remote API become gRPC `UNAVAILABLE` answers, so the error type is
/// `Infallible` (which also keeps handler futures simple enough for the compiler to see `Send`).
pub type Transport =
    BoxCloneSyncService<http::Request<tonic::body::Body>, http::Response<axum::body::Body>, Infallible>;

/// Models and XIR of large experiments exceed tonic's 4 MiB default.
const MAX_MESSAGE: usize = 64 << 20;

/// Clients for every API service the pages use, over one transport.
#[derive(Clone)]
pub struct Api {
    transport: Transport,
}

macro_rules! clients {
    ($($method:ident => $module:ident :: $client:ident),* $(,)?) => {
        $(
            pub fn $method(&self) -> pb::$module::$client<Transport> {
                pb::$module::$client::new(self.transport.clone())
                    .max_decoding_message_size(MAX_MESSAGE)
                    .max_encoding_message_size(MAX_MESSAGE)
            }
        )*
    };
}

impl Api {
    /// Calls go straight into `router` (the API's, with its authorization layer).
    pub fn in_process(router: axum::Router) -> Api {
        Api { transport: BoxCloneSyncService::new(router) }
    }

    /// Calls go over the network to an API at `channel`'s address (`trellisd serve launch`).
    pub fn remote(channel: tonic::transport::Channel) -> Api {
        let service = tower::service_fn(move |request: http::Request<tonic::body::Body>| {
            let channel = channel.clone();
            async move {
                let response = channel.oneshot(request).await.unwrap_or_else(|e| {
                    tonic::Status::unavailable(format!("cannot reach the portal API: {e}")).into_http()
                });
                Ok::<_, Infallible>(response.map(axum::body::Body::new))
            }
        });
        Api { transport: BoxCloneSyncService::new(service) }
    }
}

impl Api {
    clients! {
        identity => identity_client::IdentityClient,
        workspace => workspace_client::WorkspaceClient,
        model => model_client::ModelClient,
        realize => realize_client::RealizeClient,
        materialize => materialize_client::MaterializeClient,
        xdc => xdc_client::XdcClient,
        cred => cred_client::CredClient,
        commission => commission_client::CommissionClient,
        alloc => alloc_client::AllocClient,
    }
}

/// `message` as a request on behalf of the holder of `token`.
pub fn authed<T>(token: &str, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    if let Ok(value) = format!("Bearer {token}").parse() {
        request.metadata_mut().insert("authorization", value);
    }
    request
}

/// `message` as an anonymous request (login, registration, configuration lists).
pub fn anonymous<T>(message: T) -> tonic::Request<T> {
    tonic::Request::new(message)
}
