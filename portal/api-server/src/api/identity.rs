//! `portal.v1.Identity`: registration, login, logout and credentials.

use tonic::Request;
use trellis_api::portal::v1 as pb;
use trellis_api::portal::v1::identity_server::Identity;
use trellis_identity::records::list_identities;
use trellis_types::{Error, UserState};
use trellis_workspace::RegisterInput;

use super::{Reply, Services, ok};
use crate::authz::{caller, optional_caller};
use crate::convert::given;
use crate::status::status;

/// The Identity service.
pub struct IdentityApi(pub Services);

fn identity_info(r: &trellis_identity::IdentityRecord) -> pb::IdentityInfo {
    pb::IdentityInfo {
        username: r.username.clone(),
        email: r.email.clone(),
        admin: r.admin,
        ..Default::default()
    }
}

#[tonic::async_trait]
impl Identity for IdentityApi {
    async fn register(&self, request: Request<pb::RegisterRequest>) -> Reply<pb::RegisterResponse> {
        let by_admin =
            optional_caller(&request).is_some_and(|c| c.is_admin() && c.state == UserState::Active);
        let r = request.into_inner();
        if r.admin && !by_admin {
            return Err(status(Error::PermissionDenied(
                "only portal administrators may register administrator accounts".to_owned(),
            )));
        }
        let input = RegisterInput {
            username: r.username,
            email: r.email,
            password: r.password,
            name: r.name,
            institution: r.institution,
            category: r.category,
            country: r.country,
            usstate: r.usstate,
            admin: r.admin,
        };
        // An administrator registering someone vouches for them: the account starts active.
        let user = self.0.workspace.register(input, by_admin).await.map_err(status)?;
        tracing::info!(user = %user.username, state = ?user.state, "registered");
        ok(pb::RegisterResponse {})
    }

    async fn login(&self, request: Request<pb::LoginRequest>) -> Reply<pb::LoginResponse> {
        let r = request.into_inner();
        let token = self.0.tokens.login(&r.username, &r.password).await.map_err(status)?;
        if let Some(user) = self.0.workspace.find_user(&r.username).await.map_err(status)?
            && user.state == UserState::Frozen
        {
            return Err(status(Error::PermissionDenied(format!(
                "account {} is frozen; contact a portal administrator",
                r.username
            ))));
        }
        ok(pb::LoginResponse { token })
    }

    async fn logout(&self, request: Request<pb::LogoutRequest>) -> Reply<pb::LogoutResponse> {
        let caller = caller(&request).map_err(status)?;
        self.0.tokens.revoke(&caller.token).await.map_err(status)?;
        ok(pb::LogoutResponse {})
    }

    async fn get_identity(&self, request: Request<pb::GetIdentityRequest>) -> Reply<pb::GetIdentityResponse> {
        let username = request.into_inner().username;
        let store = self.0.workspace.store().as_ref();
        let (record, _) = trellis_identity::records::load_identity(store, &username)
            .await
            .map_err(status)?
            .ok_or_else(|| status(Error::not_found("identity", &username)))?;
        ok(pb::GetIdentityResponse { identity: Some(identity_info(&record)) })
    }

    async fn list_identities(
        &self,
        _request: Request<pb::ListIdentityRequest>,
    ) -> Reply<pb::ListIdentityResponse> {
        let records = list_identities(self.0.workspace.store().as_ref()).await.map_err(status)?;
        ok(pb::ListIdentityResponse { identities: records.iter().map(identity_info).collect() })
    }

    async fn unregister(&self, request: Request<pb::UnregisterRequest>) -> Reply<pb::UnregisterResponse> {
        let username = request.into_inner().username;
        self.0.workspace.delete_user(&username).await.map_err(status)?;
        ok(pb::UnregisterResponse {})
    }

    async fn update_identity(
        &self,
        request: Request<pb::UpdateIdentityRequest>,
    ) -> Reply<pb::UpdateIdentityResponse> {
        let r = request.into_inner();
        if let Some(password) = given(&r.password) {
            self.0.workspace.set_password(&r.username, &password).await.map_err(status)?;
        }
        if let Some(email) = given(&r.emailaddress) {
            let update = trellis_workspace::users::UserUpdate { email: Some(email), ..Default::default() };
            self.0.workspace.update_user(&r.username, update).await.map_err(status)?;
        }
        ok(pb::UpdateIdentityResponse {})
    }
}
