//! A test double of a facility agent: it speaks the Facility API as the real agent does
//! (idempotent calls, status per node and link, unknown materializations reported as
//! unspecified) but runs nothing. It records every call with the client certificate that made
//! it, so tests can tell controllers apart.
//!
//! The controller tests take any `Facility` implementation through [`serve`]; pointing them at
//! the real agent (`trellis-facility`) means serving that instead.

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio_stream::wrappers::TcpListenerStream;
use tokio_util::sync::CancellationToken;
use tonic::transport::{Server, ServerTlsConfig};
use tonic::{Request, Response, Status};
use trellis_facility_api::v1::facility_server::{Facility, FacilityServer};
use trellis_facility_api::v1::*;

/// One call the agent answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub method: &'static str,
    pub mzid: String,
    /// The caller's client certificate (DER), which differs per controller.
    pub client: Vec<u8>,
}

#[derive(Default)]
struct Running {
    spec: Materialization,
    /// Status calls since it was (re)materialized.
    polls: u32,
    tearing_down: bool,
}

#[derive(Default)]
struct Books {
    running: BTreeMap<String, Running>,
    calls: Vec<Call>,
    reboots: Vec<(String, Vec<String>)>,
    /// (mzid, xdc) → (netns, address) of attached XDCs.
    xdcs: BTreeMap<(String, String), (String, String)>,
}

/// Shared so the test keeps a handle while the server owns a clone.
#[derive(Clone, Default)]
pub struct RecordingAgent {
    state: Arc<Mutex<Books>>,
    /// Status polls before a materialization reports ready.
    pub ready_after: u32,
    /// Status polls a teardown takes before the materialization is gone.
    pub teardown_polls: u32,
    /// Nodes that fail to come up.
    pub failing_nodes: Arc<HashSet<String>>,
}

impl RecordingAgent {
    pub fn new(ready_after: u32, teardown_polls: u32) -> Self {
        RecordingAgent { ready_after, teardown_polls, ..Default::default() }
    }

    pub fn failing(mut self, nodes: &[&str]) -> Self {
        self.failing_nodes = Arc::new(nodes.iter().map(|n| n.to_string()).collect());
        self
    }

    pub fn calls(&self) -> Vec<Call> {
        self.state.lock().unwrap().calls.clone()
    }

    pub fn calls_of(&self, method: &str, mzid: &str) -> usize {
        self.calls().iter().filter(|c| c.method == method && c.mzid == mzid).count()
    }

    /// The spec it runs for `mzid`, if any.
    pub fn spec(&self, mzid: &str) -> Option<Materialization> {
        self.state.lock().unwrap().running.get(mzid).map(|r| r.spec.clone())
    }

    pub fn running(&self) -> Vec<String> {
        self.state.lock().unwrap().running.keys().cloned().collect()
    }

    pub fn reboots(&self) -> Vec<(String, Vec<String>)> {
        self.state.lock().unwrap().reboots.clone()
    }

    /// Attached XDCs: (mzid, xdc, netns, address).
    pub fn xdcs(&self) -> Vec<(String, String, String, String)> {
        let state = self.state.lock().unwrap();
        state.xdcs.iter().map(|((m, x), (n, a))| (m.clone(), x.clone(), n.clone(), a.clone())).collect()
    }

    /// Loses everything it ran, as a restarted agent without persistent state would.
    pub fn forget_everything(&self) {
        self.state.lock().unwrap().running.clear();
    }

    fn record<T>(&self, method: &'static str, mzid: &str, request: &Request<T>) {
        let client = request.peer_certs().and_then(|c| c.first().map(|c| c.to_vec())).unwrap_or_default();
        self.state.lock().unwrap().calls.push(Call { method, mzid: mzid.to_owned(), client });
    }

    fn element_state(&self, ready: bool, name: &str) -> i32 {
        if !ready {
            State::Processing as i32
        } else if self.failing_nodes.contains(name) {
            State::Failed as i32
        } else {
            State::Ready as i32
        }
    }
}

#[tonic::async_trait]
impl Facility for RecordingAgent {
    async fn materialize(
        &self,
        request: Request<MaterializeRequest>,
    ) -> Result<Response<MaterializeResponse>, Status> {
        let spec =
            request.get_ref().materialization.clone().ok_or_else(|| Status::invalid_argument("no spec"))?;
        self.record("materialize", &spec.mzid, &request);
        let mut state = self.state.lock().unwrap();
        let unchanged = state.running.get(&spec.mzid).is_some_and(|r| r.spec == spec && !r.tearing_down);
        if !unchanged {
            state.running.insert(spec.mzid.clone(), Running { spec, polls: 0, tearing_down: false });
        }
        Ok(Response::new(MaterializeResponse {}))
    }

    async fn dematerialize(
        &self,
        request: Request<DematerializeRequest>,
    ) -> Result<Response<DematerializeResponse>, Status> {
        let mzid = request.get_ref().mzid.clone();
        self.record("dematerialize", &mzid, &request);
        let mut state = self.state.lock().unwrap();
        if let Some(running) = state.running.get_mut(&mzid)
            && !running.tearing_down
        {
            running.tearing_down = true;
            running.polls = 0;
        }
        Ok(Response::new(DematerializeResponse {}))
    }

    async fn status(&self, request: Request<StatusRequest>) -> Result<Response<StatusResponse>, Status> {
        let mzid = request.get_ref().mzid.clone();
        self.record("status", &mzid, &request);
        let mut state = self.state.lock().unwrap();
        let Some(running) = state.running.get_mut(&mzid) else {
            return Ok(Response::new(StatusResponse { mzid, ..Default::default() }));
        };
        running.polls += 1;
        if running.tearing_down {
            if running.polls > self.teardown_polls {
                state.running.remove(&mzid);
                state.xdcs.retain(|(m, _), _| *m != mzid);
                return Ok(Response::new(StatusResponse { mzid, ..Default::default() }));
            }
            return Ok(Response::new(StatusResponse {
                mzid,
                state: State::Processing as i32,
                ..Default::default()
            }));
        }
        let ready = running.polls > self.ready_after;
        let nodes: Vec<NodeStatus> = running
            .spec
            .nodes
            .iter()
            .map(|n| NodeStatus {
                name: n.name.clone(),
                state: self.element_state(ready, &n.name),
                message: if self.failing_nodes.contains(&n.name) {
                    "image would not boot".into()
                } else {
                    String::new()
                },
                since: 1_000 + i64::from(running.polls),
            })
            .collect();
        let links = running
            .spec
            .links
            .iter()
            .map(|l| LinkStatus {
                name: l.name.clone(),
                state: self.element_state(ready, &l.name),
                message: String::new(),
                since: 1_000,
            })
            .collect();
        let overall = nodes.iter().map(|n| n.state).max_by_key(|s| match State::try_from(*s) {
            Ok(State::Failed) => 3,
            Ok(State::Processing) => 2,
            _ => 1,
        });
        Ok(Response::new(StatusResponse {
            mzid,
            state: overall.unwrap_or(State::Ready as i32),
            nodes,
            links,
        }))
    }

    async fn reboot(&self, request: Request<RebootRequest>) -> Result<Response<RebootResponse>, Status> {
        let RebootRequest { mzid, nodes } = request.get_ref().clone();
        self.record("reboot", &mzid, &request);
        let mut state = self.state.lock().unwrap();
        if !state.running.contains_key(&mzid) {
            return Err(Status::not_found(format!("{mzid} does not run here")));
        }
        state.reboots.push((mzid, nodes));
        Ok(Response::new(RebootResponse {}))
    }

    /// Answers as the real agent does, without a network: addresses from .254 down, the
    /// same one again for the same XDC; a namespace named `missing*` does not exist.
    async fn attach_xdc(
        &self,
        request: Request<AttachXdcRequest>,
    ) -> Result<Response<AttachXdcResponse>, Status> {
        let AttachXdcRequest { mzid, xdc, netns } = request.get_ref().clone();
        self.record("attach_xdc", &mzid, &request);
        let mut state = self.state.lock().unwrap();
        let Some(running) = state.running.get(&mzid).filter(|r| !r.tearing_down) else {
            return Err(Status::not_found(format!("materialization {mzid} does not run here")));
        };
        if netns.starts_with("missing") {
            return Err(Status::failed_precondition(format!("network namespace {netns} does not exist")));
        }
        let spec = running.spec.clone();
        let prefix = spec.infranet_subnet.rsplit_once('/').map(|(net, len)| (net.to_owned(), len.to_owned()));
        let Some((net, len)) = prefix else { return Err(Status::internal("no subnet")) };
        let base: std::net::Ipv4Addr = net.parse().unwrap();
        let taken = state.xdcs.iter().filter(|((m, x), _)| *m == mzid && *x != xdc).count() as u32;
        let address = state
            .xdcs
            .get(&(mzid.clone(), xdc.clone()))
            .map(|(_, a)| a.clone())
            .unwrap_or_else(|| std::net::Ipv4Addr::from(u32::from(base) + 254 - taken).to_string());
        state.xdcs.insert((mzid.clone(), xdc), (netns, address.clone()));
        let hosts = spec
            .nodes
            .iter()
            .flat_map(|n| {
                [
                    HostEntry { name: n.name.clone(), address: n.infranet_addr.clone() },
                    HostEntry { name: format!("{}.infra.{mzid}", n.name), address: n.infranet_addr.clone() },
                ]
            })
            .collect();
        Ok(Response::new(AttachXdcResponse {
            address,
            prefix_len: len.parse().unwrap(),
            hosts,
            search: vec![format!("infra.{mzid}")],
            interface: "mzrecording".into(),
        }))
    }

    async fn detach_xdc(
        &self,
        request: Request<DetachXdcRequest>,
    ) -> Result<Response<DetachXdcResponse>, Status> {
        let DetachXdcRequest { mzid, xdc, .. } = request.get_ref().clone();
        self.record("detach_xdc", &mzid, &request);
        self.state.lock().unwrap().xdcs.remove(&(mzid, xdc));
        Ok(Response::new(DetachXdcResponse {}))
    }

    async fn list(&self, request: Request<ListRequest>) -> Result<Response<ListResponse>, Status> {
        self.record("list", "", &request);
        Ok(Response::new(ListResponse { mzids: self.running() }))
    }
}

/// Serves `agent` with `tls` on a free loopback port until `stop` is cancelled.
pub async fn serve<F: Facility>(agent: F, tls: ServerTlsConfig, stop: CancellationToken) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = Server::builder().tls_config(tls).unwrap().add_service(FacilityServer::new(agent));
    tokio::spawn(
        router.serve_with_incoming_shutdown(TcpListenerStream::new(listener), stop.cancelled_owned()),
    );
    addr
}
