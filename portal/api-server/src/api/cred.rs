//! `portal.v1.Cred`: a user's SSH key pair and short-lived certificates from the portal's CA.

use tonic::Request;
use trellis_api::portal::v1 as pb;
use trellis_api::portal::v1::cred_server::Cred;

use super::{Reply, Services, ok};
use crate::status::status;

/// The Cred service.
pub struct CredApi(pub Services);

#[tonic::async_trait]
impl Cred for CredApi {
    async fn get_user_ssh_keys(
        &self,
        request: Request<pb::GetUserSshKeysRequest>,
    ) -> Reply<pb::GetUserSshKeysResponse> {
        let username = &request.get_ref().username;
        self.0.workspace.get_user(username).await.map_err(status)?;
        let keys = self.0.credentials.user_keys(username).await.map_err(status)?;
        ok(pb::GetUserSshKeysResponse {
            keys: Some(pb::SshKeyPair {
                public: keys.public_openssh.clone(),
                private: keys.private_openssh.clone(),
                ver: keys.revision,
            }),
        })
    }

    async fn get_user_ssh_cert(
        &self,
        request: Request<pb::GetUserSshCertRequest>,
    ) -> Reply<pb::GetUserSshCertResponse> {
        let username = &request.get_ref().username;
        self.0.workspace.get_user(username).await.map_err(status)?;
        let ca = &self.0.credentials;
        let issued = ca.user_certificate(username, &[], None).await.map_err(status)?;
        tracing::info!(user = %username, key_id = %issued.key_id, "issued SSH certificate");
        ok(pb::GetUserSshCertResponse {
            cert: Some(pb::SshCert {
                cert: issued.openssh,
                ca_host_pub_key: ca.host_public_key_openssh().map_err(status)?,
                ver: issued.serial as i64,
            }),
        })
    }
}
