//! Reaching facility agents: the [`FacilityConnector`] seam and its mutual-TLS implementation.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use tonic::transport::{Channel, Endpoint};
use trellis_facility_api::v1::facility_client::FacilityClient;
use trellis_pki::{CLIENT_CERT_VALIDITY, IssuedCert, Pki, client_tls_config};
use trellis_realize::FacilityRecord;
use trellis_types::Error;

use crate::stored::now_unix;

/// Gives a Facility API client for a facility. Implementations must be cheap to call often:
/// the controller asks for a client on every step.
#[async_trait]
pub trait FacilityConnector: Send + Sync + 'static {
    async fn client(&self, facility: &FacilityRecord) -> Result<FacilityClient<Channel>, Error>;
}

/// The name on the portal's client certificate.
pub const PORTAL_CLIENT_NAME: &str = "portal";

/// Connects over mutual TLS with a client certificate from the portal CA.
///
/// Whom it trusts: a facility whose record has a `ca_certificate` is trusted through that CA
/// and must present a certificate for the host of its address; one without is trusted through
/// the portal CA and must present a certificate naming the facility (what
/// [`Pki::issue_server_cert`] issues), so one facility cannot answer for another.
///
/// Channels are cached per facility and rebuilt when its address or CA changes or when the
/// portal's client certificate is renewed (at half its lifetime).
pub struct MtlsConnector {
    pki: Pki,
    connect_timeout: Duration,
    request_timeout: Duration,
    state: Mutex<ConnectorState>,
}

#[derive(Default)]
struct ConnectorState {
    identity: Option<IssuedCert>,
    channels: HashMap<String, CachedChannel>,
}

struct CachedChannel {
    address: String,
    ca_certificate: String,
    identity_expires: i64,
    channel: Channel,
}

impl MtlsConnector {
    pub fn new(pki: Pki) -> Self {
        MtlsConnector {
            pki,
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
            state: Mutex::default(),
        }
    }

    pub fn with_timeouts(mut self, connect: Duration, request: Duration) -> Self {
        self.connect_timeout = connect;
        self.request_timeout = request;
        self
    }

    /// The portal's client certificate, issued anew once half of its lifetime has passed.
    fn identity(&self, state: &mut ConnectorState) -> Result<IssuedCert, Error> {
        let renew_at = |cert: &IssuedCert| cert.not_after - CLIENT_CERT_VALIDITY.whole_seconds() / 2;
        match &state.identity {
            Some(cert) if now_unix() < renew_at(cert) => Ok(cert.clone()),
            _ => {
                let cert = self.pki.issue_client_cert(PORTAL_CLIENT_NAME)?;
                state.identity = Some(cert.clone());
                Ok(cert)
            }
        }
    }

    fn channel(&self, facility: &FacilityRecord) -> Result<Channel, Error> {
        if facility.address.trim().is_empty() {
            return Err(Error::FailedPrecondition(format!("facility {} has no API address", facility.name)));
        }
        let mut state = self.state.lock().map_err(|_| Error::Internal("connector state poisoned".into()))?;
        let identity = self.identity(&mut state)?;
        if let Some(cached) = state.channels.get(&facility.name)
            && cached.address == facility.address
            && cached.ca_certificate == facility.ca_certificate
            && cached.identity_expires == identity.not_after
        {
            return Ok(cached.channel.clone());
        }
        let (trusted, server_name) = if facility.ca_certificate.trim().is_empty() {
            (self.pki.ca_pem(), facility.name.as_str())
        } else {
            (facility.ca_certificate.as_str(), host_of(&facility.address))
        };
        let tls = client_tls_config(trusted, &identity, server_name)
            .map_err(|e| Error::FailedPrecondition(format!("facility {}: {e}", facility.name)))?;
        let invalid = |e: tonic::transport::Error| {
            Error::FailedPrecondition(format!("facility {} address {}: {e}", facility.name, facility.address))
        };
        let channel = Endpoint::from_shared(format!("https://{}", facility.address))
            .map_err(invalid)?
            .tls_config(tls)
            .map_err(invalid)?
            .connect_timeout(self.connect_timeout)
            .timeout(self.request_timeout)
            // Connecting lazily keeps an unreachable facility from failing here; its calls fail
            // instead, and the controller records why.
            .connect_lazy();
        state.channels.insert(
            facility.name.clone(),
            CachedChannel {
                address: facility.address.clone(),
                ca_certificate: facility.ca_certificate.clone(),
                identity_expires: identity.not_after,
                channel: channel.clone(),
            },
        );
        Ok(channel)
    }
}

#[async_trait]
impl FacilityConnector for MtlsConnector {
    async fn client(&self, facility: &FacilityRecord) -> Result<FacilityClient<Channel>, Error> {
        Ok(FacilityClient::new(self.channel(facility)?))
    }
}

/// The host part of `host:port`, `[v6]:port`, or a bare host.
fn host_of(address: &str) -> &str {
    if let Some(rest) = address.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match address.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => host,
        _ => address,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_cut_from_addresses() {
        assert_eq!(host_of("fac.example.net:6000"), "fac.example.net");
        assert_eq!(host_of("10.0.0.1:6000"), "10.0.0.1");
        assert_eq!(host_of("[fd00::1]:6000"), "fd00::1");
        assert_eq!(host_of("fac.example.net"), "fac.example.net");
        assert_eq!(host_of("fd00::1"), "fd00::1");
    }
}
