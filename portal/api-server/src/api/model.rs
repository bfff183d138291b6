//! `portal.v1.Model`: compile a model, push it as a revision; and `Workspace.GetRevision`.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use prost::Message;
use tonic::Request;
use trellis_api::portal::v1 as pb;
use trellis_api::portal::v1::model_server::Model;
use trellis_api::xir;
use trellis_types::Error;

use super::workspace::WorkspaceApi;
use super::{Reply, Services, ok};
use crate::authz::caller;
use crate::status::status;

/// The Model service.
pub struct ModelApi(pub Services);

#[tonic::async_trait]
impl Model for ModelApi {
    /// Merge answers a model's own errors in the response (`success: false`) and keeps gRPC
    /// errors for failures of the call itself; so do we.
    async fn compile(&self, request: Request<pb::CompileRequest>) -> Reply<pb::CompileResponse> {
        let models = self.0.models().map_err(status)?;
        match models.compile(&request.get_ref().model).await {
            Ok(compiled) => {
                let mut errors: Vec<String> =
                    compiled.analysis.diagnostics.iter().map(|d| d.to_string()).collect();
                let success = !compiled.analysis.has_errors();
                if success {
                    errors.clear();
                }
                ok(pb::CompileResponse { success, errors, network: STANDARD.encode(&compiled.xir) })
            }
            Err(Error::InvalidArgument { violations }) => ok(pb::CompileResponse {
                success: false,
                errors: violations.into_iter().map(|v| format!("{}: {}", v.field, v.description)).collect(),
                network: String::new(),
            }),
            Err(other) => Err(status(other)),
        }
    }

    async fn push(&self, request: Request<pb::PushRequest>) -> Reply<pb::PushResponse> {
        let models = self.0.models().map_err(status)?;
        let by = caller(&request).map_err(status)?.username().to_owned();
        let r = request.into_inner();
        let revision =
            models.push(&r.project, &r.experiment, &r.model, &r.branch, &r.tag, &by).await.map_err(status)?;
        tracing::info!(project = %r.project, experiment = %r.experiment, revision = %revision.id, by = %by, "pushed model");
        ok(pb::PushResponse { revision: revision.id })
    }
}

/// Graphviz text of a network: nodes, point-to-point links as edges, LANs as small hubs.
fn dot(net: &xir::Network) -> String {
    let mut out = format!("graph {:?} {{\n", net.id);
    for node in &net.nodes {
        out.push_str(&format!("  {:?};\n", node.id));
    }
    for link in &net.links {
        let ends: Vec<&str> =
            link.endpoints.iter().filter_map(|e| e.socket.as_ref()).map(|s| s.element.as_str()).collect();
        if let [a, b] = ends.as_slice() {
            out.push_str(&format!("  {a:?} -- {b:?} [label={:?}];\n", link.id));
        } else {
            out.push_str(&format!("  {:?} [shape=point];\n", link.id));
            for end in ends {
                out.push_str(&format!("  {:?} -- {end:?};\n", link.id));
            }
        }
    }
    out.push_str("}\n");
    out
}

impl WorkspaceApi {
    pub(crate) async fn get_revision(
        &self,
        request: Request<pb::GetRevisionRequest>,
    ) -> Reply<pb::GetRevisionResponse> {
        let models = self.0.models().map_err(status)?;
        let r = request.into_inner();
        let (revision, bytes) =
            models.revision(&r.project, &r.experiment, &r.revision).await.map_err(status)?;
        let network = xir::Network::decode(bytes.as_slice()).map_err(|e| {
            status(Error::Internal(format!("stored XIR of revision {} is corrupt: {e}", revision.id)))
        })?;
        let (encoding, model_file) = match pb::GetRevisionRequestEncoding::try_from(r.encoding) {
            Ok(pb::GetRevisionRequestEncoding::None) => ("NONE", revision.source.clone()),
            Ok(pb::GetRevisionRequestEncoding::Xirb64) => ("XIRB64", STANDARD.encode(&bytes)),
            Ok(pb::GetRevisionRequestEncoding::Dot) => ("DOT", dot(&network)),
            Err(_) => {
                return Err(status(Error::invalid(
                    "encoding",
                    format!("{} is not an encoding (NONE, XIRB64, DOT)", r.encoding),
                )));
            }
        };
        ok(pb::GetRevisionResponse {
            model: Some(pb::XpNetModel { compiled: true, model: Some(network) }),
            encoding: encoding.to_owned(),
            model_file,
        })
    }
}
