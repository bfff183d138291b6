//! Connecting to the portal: the channel, the bearer-token interceptor and error rendering.
//!
//! `host:port` means plaintext HTTP/2 (`http://host:port`); `https://` uses TLS trusting the
//! Mozilla root set plus an optional `--ca-cert` file (for portals with a private CA).

use std::path::Path;
use std::time::Duration;

use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};
use tonic::{Request, Status};
use tonic_types::StatusExt;
use trellis_api::portal::v1::alloc_client::AllocClient;
use trellis_api::portal::v1::commission_client::CommissionClient;
use trellis_api::portal::v1::cred_client::CredClient;
use trellis_api::portal::v1::identity_client::IdentityClient;
use trellis_api::portal::v1::materialize_client::MaterializeClient;
use trellis_api::portal::v1::model_client::ModelClient;
use trellis_api::portal::v1::realize_client::RealizeClient;
use trellis_api::portal::v1::workspace_client::WorkspaceClient;
use trellis_api::portal::v1::xdc_client::XdcClient;

use crate::error::CliError;

/// A channel that adds `authorization: Bearer <token>` to every call (when logged in).
pub type AuthChannel = InterceptedService<Channel, Auth>;

/// The portal services the CLI calls.
pub struct Clients {
    /// `portal.v1.Identity`.
    pub identity: IdentityClient<AuthChannel>,
    /// `portal.v1.Workspace`.
    pub workspace: WorkspaceClient<AuthChannel>,
    /// `portal.v1.Model`.
    pub model: ModelClient<AuthChannel>,
    /// `portal.v1.Realize`.
    pub realize: RealizeClient<AuthChannel>,
    /// `portal.v1.Commission` (facilities).
    pub commission: CommissionClient<AuthChannel>,
    /// `portal.v1.Alloc` (pools and the allocation table).
    pub alloc: AllocClient<AuthChannel>,
    /// `portal.v1.Materialize`.
    pub materialize: MaterializeClient<AuthChannel>,
    /// `portal.v1.XDC`.
    pub xdc: XdcClient<AuthChannel>,
    /// `portal.v1.Cred` (SSH keys and certificates).
    pub cred: CredClient<AuthChannel>,
}

/// Adds the bearer token to outgoing requests.
#[derive(Clone)]
pub struct Auth(Option<MetadataValue<Ascii>>);

impl Auth {
    /// An interceptor sending `token`, or nothing when `None`.
    pub fn new(token: Option<&str>) -> Result<Auth, CliError> {
        token
            .map(|t| format!("Bearer {t}").parse::<MetadataValue<Ascii>>().map_err(|_| CliError::BadToken))
            .transpose()
            .map(Auth)
    }
}

impl Interceptor for Auth {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(value) = &self.0 {
            request.metadata_mut().insert("authorization", value.clone());
        }
        Ok(request)
    }
}

/// Turns a user-supplied server into a URI: `host:port` becomes `http://host:port`.
pub fn server_uri(server: &str) -> Result<String, CliError> {
    let bad = |reason: &str| CliError::BadServer { server: server.to_owned(), reason: reason.to_owned() };
    let (scheme, rest) = match server.trim().split_once("://") {
        Some((scheme @ ("http" | "https"), rest)) => (scheme, rest),
        Some(_) => return Err(bad("the scheme must be http:// or https://")),
        None => ("http", server.trim()),
    };
    let rest = rest.trim_end_matches('/');
    if rest.is_empty() {
        return Err(bad("no host is given"));
    }
    let uri = format!("{scheme}://{rest}");
    match uri.parse::<tonic::codegen::http::Uri>() {
        Ok(parsed) if parsed.host().is_some() => Ok(uri),
        _ => Err(bad("expected host:port or http(s)://host:port")),
    }
}

/// Connects to `server` (already normalized by [`server_uri`]), sending `token` if given.
pub async fn connect(server: &str, ca_cert: Option<&Path>, token: Option<&str>) -> Result<Clients, CliError> {
    let auth = Auth::new(token)?;
    let bad = |reason: String| CliError::BadServer { server: server.to_owned(), reason };
    let mut endpoint = Endpoint::from_shared(server.to_owned())
        .map_err(|e| bad(e.to_string()))?
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(120));
    if server.starts_with("https://") {
        let mut tls = ClientTlsConfig::new().trust_anchors(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        if let Some(path) = ca_cert {
            let pem =
                std::fs::read(path).map_err(|source| CliError::ReadFile { path: path.to_owned(), source })?;
            tls = tls.ca_certificate(Certificate::from_pem(pem));
        }
        endpoint =
            endpoint.tls_config(tls).map_err(|source| CliError::Tls { server: server.to_owned(), source })?;
    }
    let channel =
        endpoint.connect().await.map_err(|source| CliError::Connect { server: server.to_owned(), source })?;
    Ok(Clients {
        identity: IdentityClient::with_interceptor(channel.clone(), auth.clone()),
        workspace: WorkspaceClient::with_interceptor(channel.clone(), auth.clone()),
        model: ModelClient::with_interceptor(channel.clone(), auth.clone()),
        realize: RealizeClient::with_interceptor(channel.clone(), auth.clone()),
        commission: CommissionClient::with_interceptor(channel.clone(), auth.clone()),
        alloc: AllocClient::with_interceptor(channel.clone(), auth.clone()),
        materialize: MaterializeClient::with_interceptor(channel.clone(), auth.clone()),
        xdc: XdcClient::with_interceptor(channel.clone(), auth.clone()),
        cred: CredClient::with_interceptor(channel, auth),
    })
}

/// Renders a portal error: its message and code, then any field violations that add to it.
///
/// Trellis (like Merge) attaches `google.rpc.BadRequest` violations named `title` and `detail`
/// to every error; `detail` usually repeats the message, so only what is new is shown.
pub fn describe_status(status: &Status) -> String {
    let message = match status.message() {
        "" => status.code().description(),
        m => m,
    };
    let mut out = format!("{message} ({:?})", status.code());
    if let Some(bad) = status.get_error_details().bad_request() {
        for v in &bad.field_violations {
            let repeats =
                v.field == "title" || v.description.is_empty() || status.message().contains(&v.description);
            if !repeats {
                out.push_str(&format!("\n  {}: {}", v.field, v.description));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use tonic::Code;
    use tonic_types::{ErrorDetails, FieldViolation};

    use super::*;

    #[test]
    fn servers_become_uris() {
        assert_eq!(server_uri("127.0.0.1:7080").unwrap(), "http://127.0.0.1:7080");
        assert_eq!(server_uri("http://h:1/").unwrap(), "http://h:1");
        assert_eq!(server_uri("https://portal.example.net").unwrap(), "https://portal.example.net");
        assert_eq!(server_uri("[::1]:9").unwrap(), "http://[::1]:9");
        for bad in ["", "ftp://h:1", "http://", "a b:1"] {
            assert!(server_uri(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn status_shows_message_code_and_new_violations() {
        let status = Status::with_error_details(
            Code::InvalidArgument,
            "invalid name",
            ErrorDetails::with_bad_request(vec![
                FieldViolation::new("title", "Invalid argument"),
                FieldViolation::new("detail", "invalid name"),
                FieldViolation::new("project.name", "must start with a lowercase letter"),
            ]),
        );
        assert_eq!(
            describe_status(&status),
            "invalid name (InvalidArgument)\n  project.name: must start with a lowercase letter"
        );
        let status = Status::with_error_details(
            Code::InvalidArgument,
            "project: \"B\" must start with a lowercase letter",
            ErrorDetails::with_bad_request(vec![FieldViolation::new(
                "project",
                "\"B\" must start with a lowercase letter",
            )]),
        );
        assert_eq!(
            describe_status(&status),
            "project: \"B\" must start with a lowercase letter (InvalidArgument)"
        );
        assert_eq!(describe_status(&Status::not_found("")), "Some requested entity was not found (NotFound)");
    }

    #[test]
    fn tokens_become_bearer_headers() {
        let mut auth = Auth::new(Some("abc")).unwrap();
        let request = auth.call(Request::new(())).unwrap();
        assert_eq!(request.metadata().get("authorization").unwrap(), "Bearer abc");
        let request = Auth::new(None).unwrap().call(Request::new(())).unwrap();
        assert!(request.metadata().get("authorization").is_none());
        assert!(matches!(Auth::new(Some("bad\ntoken")), Err(CliError::BadToken)));
    }
}
