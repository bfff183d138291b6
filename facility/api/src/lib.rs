//! The Facility API: how the portal tells a facility agent what to run, and learns how it is
//! going. Trellis's own protocol (Merge's facility API is not published); the portal is the
//! client, each facility agent the server, and both sides authenticate with mutual TLS.

#[allow(clippy::all, missing_docs)]
pub mod v1 {
    tonic::include_proto!("trellis.facility.v1");
}
