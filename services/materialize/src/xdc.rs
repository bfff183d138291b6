//! Connecting XDCs to a materialization's infranet through the facility that runs it.
//!
//! The portal keeps no record of attachments: the facility does (and removes them when the
//! materialization is torn down), and the XDC's controller decides when to attach or detach.

use std::net::IpAddr;

use tonic::Code;
use trellis_facility_api::v1::{AttachXdcRequest, DetachXdcRequest};
use trellis_types::{Error, validate_name};

use crate::lifecycle::{facility_error, mzid};
use crate::service::MaterializeService;
use crate::types::{MaterializationRecord, Phase, TaskState};

/// What an attached XDC needs: its infranet address and the names of the experiment's nodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XdcNetwork {
    /// The facility the XDC is attached through.
    pub facility: String,
    /// The XDC's infranet address and the infranet's prefix length.
    pub address: IpAddr,
    pub prefix_len: u8,
    /// The interface inside the XDC's network namespace.
    pub interface: String,
    /// `<node>` and `<node>.infra.<mzid>` for every node, with its infranet address: the
    /// lines of the XDC's `/etc/hosts`.
    pub hosts: Vec<(String, IpAddr)>,
    /// Resolver search domains (`infra.<mzid>`).
    pub search: Vec<String>,
}

/// `(project, experiment, realization)` of a Merge mzid `<realization>.<experiment>.<project>`;
/// `None` unless all three are valid names (which never contain a dot).
pub fn split_mzid(mzid: &str) -> Option<(String, String, String)> {
    let mut parts = mzid.split('.');
    let (Some(r), Some(e), Some(p), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return None;
    };
    [("project", p), ("experiment", e), ("realization", r)]
        .iter()
        .all(|(field, value)| validate_name(field, value).is_ok())
        .then(|| (p.to_owned(), e.to_owned(), r.to_owned()))
}

/// The facility whose infranet an XDC joins: the first one running nodes. A realization
/// spanning facilities has an infranet bridge on each; an XDC joins one of them and reaches
/// that facility's nodes (joining several is for the WireGuard attachment, not done yet).
fn hosting_facility(record: &MaterializationRecord) -> Result<&str, Error> {
    record
        .facilities
        .iter()
        .find(|f| !f.nodes.is_empty())
        .map(|f| f.facility.as_str())
        .ok_or_else(|| Error::FailedPrecondition(format!("{} has no nodes to attach to", record.mzid())))
}

/// A facility's answer to AttachXdc/DetachXdc as an error for people.
fn xdc_error(facility: &str, id: &str, status: &tonic::Status) -> Error {
    match status.code() {
        Code::Unimplemented => Error::FailedPrecondition(format!(
            "facility {facility} cannot attach XDCs to its infranets: {}",
            status.message()
        )),
        // The controller has not brought it up there yet (or the facility lost it).
        Code::NotFound => Error::FailedPrecondition(format!(
            "{id} is not materialized yet on facility {facility}: {}",
            status.message()
        )),
        _ => facility_error(facility, status),
    }
}

fn bad_reply(facility: &str, what: &str) -> Error {
    Error::Internal(format!("facility {facility} answered AttachXdc with {what}"))
}

impl MaterializeService {
    /// Connects XDC `xdc_id`, whose network namespace on the facility host is `netns`, to the
    /// infranet of `project/experiment/realization` (mzid `<realization>.<experiment>.<project>`).
    /// Idempotent: the same XDC keeps its address. `NotFound` if there is no such
    /// materialization; `FailedPrecondition` while it is not up (or being torn down), when
    /// the namespace does not exist on the facility host, or when the facility cannot attach.
    pub async fn attach_xdc(
        &self,
        project: &str,
        experiment: &str,
        realization: &str,
        xdc_id: &str,
        netns: &str,
    ) -> Result<XdcNetwork, Error> {
        let record = self.materialization(project, experiment, realization).await?;
        let id = record.mzid();
        if record.phase == Phase::Dematerializing {
            return Err(Error::FailedPrecondition(format!("{id} is being dematerialized")));
        }
        let facility = hosting_facility(&record)?.to_owned();
        // Up means the facility settled on it: ready, or running with some nodes failed
        // (the XDC can still reach the rest).
        let observed = self.status_record(project, experiment, realization).await?;
        let state = observed.as_ref().and_then(|o| o.facilities.get(&facility)).map(|f| f.state);
        if !matches!(state, Some(TaskState::Success | TaskState::Error)) {
            return Err(Error::FailedPrecondition(format!("{id} is not materialized yet")));
        }
        let (facility_record, _) = self.realize.facility(&facility).await?;
        let mut client = self.connector.client(&facility_record).await?;
        let request = AttachXdcRequest { mzid: id.clone(), xdc: xdc_id.to_owned(), netns: netns.to_owned() };
        let reply = tokio::time::timeout(self.config.controller.call_timeout, client.attach_xdc(request))
            .await
            .map_err(|_| Error::Unavailable(format!("facility {facility} did not answer in time")))?
            .map_err(|status| xdc_error(&facility, &id, &status))?
            .into_inner();
        let address = reply.address.parse().map_err(|_| bad_reply(&facility, "no address"))?;
        let prefix_len = u8::try_from(reply.prefix_len).map_err(|_| bad_reply(&facility, "a bad prefix"))?;
        let hosts = reply
            .hosts
            .into_iter()
            .map(|h| match h.address.parse() {
                Ok(a) => Ok((h.name, a)),
                Err(_) => Err(bad_reply(&facility, &format!("address {:?} for {}", h.address, h.name))),
            })
            .collect::<Result<_, _>>()?;
        Ok(XdcNetwork {
            facility,
            address,
            prefix_len,
            interface: reply.interface,
            hosts,
            search: reply.search,
        })
    }

    /// Disconnects XDC `xdc_id` from the infranet of `project/experiment/realization`.
    /// Succeeds when it was not attached, and when the materialization is gone (its teardown
    /// removed every attachment). `netns` may be empty.
    pub async fn detach_xdc(
        &self,
        project: &str,
        experiment: &str,
        realization: &str,
        xdc_id: &str,
        netns: &str,
    ) -> Result<(), Error> {
        let record = match self.materialization(project, experiment, realization).await {
            Ok(record) => record,
            Err(Error::NotFound { .. }) => return Ok(()),
            Err(e) => return Err(e),
        };
        let Ok(facility) = hosting_facility(&record) else { return Ok(()) };
        let id = mzid(project, experiment, realization);
        let (facility_record, _) = self.realize.facility(facility).await?;
        let mut client = self.connector.client(&facility_record).await?;
        let request = DetachXdcRequest { mzid: id.clone(), xdc: xdc_id.to_owned(), netns: netns.to_owned() };
        match tokio::time::timeout(self.config.controller.call_timeout, client.detach_xdc(request)).await {
            Err(_) => Err(Error::Unavailable(format!("facility {facility} did not answer in time"))),
            Ok(Ok(_)) => Ok(()),
            // A facility that cannot attach has nothing attached.
            Ok(Err(status)) if status.code() == Code::Unimplemented => Ok(()),
            Ok(Err(status)) => Err(xdc_error(facility, &id, &status)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mzids_split_into_their_names() {
        assert_eq!(split_mzid("rlz.exp.alice"), Some(("alice".into(), "exp".into(), "rlz".into())));
        for bad in ["rlz.exp", "a.b.c.d", "rlz..alice", "Rlz.exp.alice", ""] {
            assert_eq!(split_mzid(bad), None, "{bad}");
        }
    }
}
