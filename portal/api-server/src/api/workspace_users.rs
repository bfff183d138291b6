//! Workspace RPCs about users and their SSH keys.

use tonic::Request;
use trellis_api::portal::v1 as pb;
use trellis_policy::{Entity, Operation};
use trellis_types::{Error, UserState};
use trellis_workspace::users::UserUpdate;

use super::workspace::WorkspaceApi;
use super::{Reply, ok};
use crate::authz::caller;
use crate::authz::gate::Target;
use crate::convert::{access_mode_from, given, public_key_to, user_state_from, user_to};
use crate::status::status;

impl WorkspaceApi {
    pub(crate) async fn get_users(
        &self,
        request: Request<pb::GetUsersRequest>,
    ) -> Reply<pb::GetUsersResponse> {
        let caller = caller(&request).map_err(status)?;
        let by_all = request.get_ref().filter == pb::FilterMode::ByAll as i32;
        let users = self.0.workspace.list_users().await.map_err(status)?;
        let mut users = self.0.gate.visible_users(caller, users).await.map_err(status)?;
        if !by_all {
            // "Mine": myself and the people I share a project or organization with.
            let me = &caller.user;
            users.retain(|u| {
                u.username == me.username
                    || u.projects.keys().any(|p| me.projects.contains_key(p))
                    || u.organizations.keys().any(|o| me.organizations.contains_key(o))
            });
        }
        ok(pb::GetUsersResponse { users: users.iter().map(user_to).collect() })
    }

    pub(crate) async fn get_user(&self, request: Request<pb::GetUserRequest>) -> Reply<pb::GetUserResponse> {
        let user =
            self.0.workspace.user_with_experiments(&request.get_ref().username).await.map_err(status)?;
        ok(pb::GetUserResponse { user: Some(user_to(&user)), status: None })
    }

    pub(crate) async fn init_user(
        &self,
        request: Request<pb::InitUserRequest>,
    ) -> Reply<pb::InitUserResponse> {
        // Registration already created the account and its personal project in one transaction,
        // so initialization only confirms the account exists.
        self.0.workspace.get_user(&request.get_ref().username).await.map_err(status)?;
        ok(pb::InitUserResponse {})
    }

    pub(crate) async fn activate_user(
        &self,
        request: Request<pb::ActivateUserRequest>,
    ) -> Reply<pb::ActivateUserResponse> {
        let username = &request.get_ref().username;
        self.0.workspace.set_user_state(username, UserState::Active).await.map_err(status)?;
        tracing::info!(user = %username, by = %caller(&request).map_err(status)?.username(), "activated user");
        ok(pb::ActivateUserResponse {})
    }

    pub(crate) async fn freeze_user(
        &self,
        request: Request<pb::FreezeUserRequest>,
    ) -> Reply<pb::FreezeUserResponse> {
        let username = &request.get_ref().username;
        if caller(&request).map_err(status)?.username() == username {
            return Err(status(Error::FailedPrecondition("you cannot freeze your own account".to_owned())));
        }
        self.0.workspace.set_user_state(username, UserState::Frozen).await.map_err(status)?;
        ok(pb::FreezeUserResponse {})
    }

    pub(crate) async fn decline_user(
        &self,
        request: Request<pb::DeclineUserRequest>,
    ) -> Reply<pb::DeclineUserResponse> {
        let username = &request.get_ref().username;
        let user = self.0.workspace.get_user(username).await.map_err(status)?;
        if user.state != UserState::Pending {
            return Err(status(Error::FailedPrecondition(format!(
                "only pending registrations can be declined; {username} is {:?}",
                user.state
            ))));
        }
        self.0.workspace.delete_user(username).await.map_err(status)?;
        ok(pb::DeclineUserResponse {})
    }

    pub(crate) async fn update_user(
        &self,
        request: Request<pb::UpdateUserRequest>,
    ) -> Reply<pb::UpdateUserResponse> {
        let caller = caller(&request).map_err(status)?.clone();
        let r = request.into_inner();
        let membership_given = |m: &Option<pb::MembershipUpdate>| {
            m.as_ref().is_some_and(|m| !m.set.is_empty() || !m.remove.is_empty())
        };
        if membership_given(&r.projects)
            || membership_given(&r.organizations)
            || membership_given(&r.facilities)
        {
            return Err(status(Error::invalid(
                "projects",
                "memberships are changed through the project and organization member calls, not UpdateUser",
            )));
        }
        let state = match &r.state {
            Some(s) => Some(user_state_from("state", s.value).map_err(status)?),
            None => None,
        };
        if state.is_some() {
            // Changing a state is admitting or freezing: the same right ActivateUser needs.
            self.0
                .gate
                .check(&caller, Entity::User, Operation::Create, &Target::User(r.username.clone()))
                .await
                .map_err(status)?;
        }
        if !r.email.is_empty() && r.username != caller.username() && !caller.is_admin() {
            // The address is also the login identity's; only its owner may change it.
            return Err(status(Error::PermissionDenied(format!(
                "only {} or an administrator may change {}'s email address",
                r.username, r.username
            ))));
        }
        if r.toggle_admin && !caller.is_admin() {
            return Err(status(Error::PermissionDenied(
                "only portal administrators may grant or revoke administrator rights".to_owned(),
            )));
        }
        let access_mode = match &r.access_mode {
            Some(m) => Some(access_mode_from("access_mode", m.value).map_err(status)?),
            None => None,
        };
        let update = UserUpdate {
            name: given(&r.name),
            state: state.filter(|s| *s != UserState::NotSet),
            access_mode,
            toggle_admin: r.toggle_admin,
            institution: given(&r.institution),
            category: given(&r.category),
            country: given(&r.country),
            email: given(&r.email),
            usstate: given(&r.usstate),
        };
        self.0.workspace.update_user(&r.username, update).await.map_err(status)?;
        ok(pb::UpdateUserResponse {})
    }

    pub(crate) async fn delete_user(
        &self,
        request: Request<pb::DeleteUserRequest>,
    ) -> Reply<pb::DeleteUserResponse> {
        self.0.workspace.delete_user(&request.get_ref().user).await.map_err(status)?;
        ok(pb::DeleteUserResponse {})
    }

    pub(crate) async fn get_user_public_keys(
        &self,
        request: Request<pb::GetUserPublicKeysRequest>,
    ) -> Reply<pb::GetUserPublicKeysResponse> {
        let keys = self.0.workspace.public_keys(&request.get_ref().user).await.map_err(status)?;
        ok(pb::GetUserPublicKeysResponse { keys: keys.iter().map(public_key_to).collect() })
    }

    pub(crate) async fn add_user_public_key(
        &self,
        request: Request<pb::AddUserPublicKeyRequest>,
    ) -> Reply<pb::AddUserPublicKeyResponse> {
        let r = request.get_ref();
        self.0.workspace.add_public_key(&r.user, &r.key).await.map_err(status)?;
        ok(pb::AddUserPublicKeyResponse {})
    }

    pub(crate) async fn delete_user_public_key(
        &self,
        request: Request<pb::DeleteUserPublicKeyRequest>,
    ) -> Reply<pb::DeleteUserPublicKeyResponse> {
        let r = request.get_ref();
        self.0.workspace.delete_public_key(&r.user, &r.fingerprint).await.map_err(status)?;
        ok(pb::DeleteUserPublicKeyResponse {})
    }

    pub(crate) async fn delete_user_public_keys(
        &self,
        request: Request<pb::DeleteUserPublicKeysRequest>,
    ) -> Reply<pb::DeleteUserPublicKeysResponse> {
        self.0.workspace.delete_public_keys(&request.get_ref().user).await.map_err(status)?;
        ok(pb::DeleteUserPublicKeysResponse {})
    }
}
