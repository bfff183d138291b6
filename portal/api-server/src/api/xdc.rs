//! `portal.v1.XDC`: experiment development containers (create, list, attach to a
//! materialization, delete) and the jump hosts that reach them.

use tonic::Request;
use trellis_api::portal::v1 as pb;
use trellis_api::portal::v1::xdc_server::Xdc;
use trellis_policy::{Entity, Operation};
use trellis_types::Error;
use trellis_xdc::{Attachment, NewXdc, XdcKind, XdcPhase, XdcRecord, XdcStatusRecord};

use super::{Reply, Services, ok};
use crate::authz::{Target, caller};
use crate::convert::timestamp;
use crate::status::status;

/// The XDC service.
pub struct XdcApi(pub Services);

fn kind_from(value: i32) -> Result<XdcKind, Error> {
    match pb::XdcType::try_from(value) {
        Ok(pb::XdcType::Shared) => Ok(XdcKind::Shared),
        Ok(pb::XdcType::Personal) => Ok(XdcKind::Personal),
        Err(_) => Err(Error::invalid("type", format!("unknown XDC type {value}"))),
    }
}

fn non_negative(field: &str, value: i32) -> Result<u32, Error> {
    u32::try_from(value).map_err(|_| Error::invalid(field, format!("must not be negative (got {value})")))
}

/// Merge's `Duration{when, duration}` as an XDC lifetime: absent, empty or `Never` means the
/// XDC does not expire.
fn lifetime_from(field: &str, d: Option<&pb::Duration>) -> Result<Option<i64>, Error> {
    match d {
        None => Ok(None),
        Some(d) if d.when == pb::DurationCode::Never as i32 || d.duration.is_empty() => Ok(None),
        Some(d) if d.when != pb::DurationCode::Given as i32 => {
            Err(Error::invalid(format!("{field}.when"), format!("unknown duration code {}", d.when)))
        }
        Some(d) => Ok(Some(trellis_realize::parse_duration(&d.duration)?)),
    }
}

impl XdcApi {
    fn info(&self, x: &XdcRecord) -> pb::XdcInfo {
        let urls: Vec<pb::XdcUrl> =
            self.0.xdc.urls(x).into_iter().map(|(title, url)| pb::XdcUrl { title, url }).collect();
        pb::XdcInfo {
            name: x.full_name(),
            url: urls.first().map(|u| u.url.clone()).unwrap_or_default(),
            fqdn: x.id(),
            creator: x.creator.clone(),
            memlimit: i32::try_from(x.memory_gib).unwrap_or(i32::MAX),
            cpulimit: i32::try_from(x.cpu_cores).unwrap_or(i32::MAX),
            image: x.image.clone(),
            materialization: x.attachment.as_ref().map(|a| a.mzid.clone()).unwrap_or_default(),
            r#type: match x.kind {
                XdcKind::Shared => pb::XdcType::Shared as i32,
                XdcKind::Personal => pb::XdcType::Personal as i32,
            },
            expires: x.expires.and_then(timestamp),
            urls,
        }
    }
}

/// The XDC's status as Merge's task tree: the XDC, then its attachment when one is wanted.
fn status_tree(x: &XdcRecord, s: Option<&XdcStatusRecord>) -> pb::TaskTree {
    use pb::task_status::StatusType;
    let task = |name: String, state: StatusType, message: String, updated: i64| pb::TaskTree {
        highest_status: state as i32,
        last_updated: timestamp(updated),
        num_child_tasks: 0,
        task: Some(pb::TaskStatus {
            id: name.clone(),
            name,
            message: (!message.is_empty()).then(|| pb::TaskMessage {
                level: if state == StatusType::Error {
                    pb::task_message::Type::Error as i32
                } else {
                    pb::task_message::Type::Info as i32
                },
                message,
            }),
            status_value: state as i32,
            first_updated: timestamp(x.created),
            last_updated: timestamp(updated),
        }),
        subtasks: vec![],
    };
    let (state, message, updated) = match s {
        None => (StatusType::Pending, "waiting for the XDC controller".to_owned(), x.created),
        Some(s) => (
            match s.phase {
                XdcPhase::Pending => StatusType::Pending,
                XdcPhase::Running => StatusType::Success,
                XdcPhase::Failed => StatusType::Error,
            },
            s.message.clone(),
            s.updated,
        ),
    };
    let mut root = task(x.full_name(), state, message, updated);
    if let Some(want) = &x.attachment {
        let (state, message) = match s {
            Some(s) if s.attached.as_ref().is_some_and(|a| a.mzid == want.mzid) => {
                let address = s.attached.as_ref().map(|a| a.address.to_string()).unwrap_or_default();
                (StatusType::Success, format!("attached at {address}"))
            }
            Some(s) if s.attach_error.is_some() => {
                (StatusType::Error, s.attach_error.clone().unwrap_or_default())
            }
            _ => (StatusType::Pending, String::new()),
        };
        let child = task(format!("attach {}", want.mzid), state, message, s.map_or(x.created, |s| s.updated));
        if (state as i32) > root.highest_status {
            root.highest_status = state as i32;
        }
        root.num_child_tasks = 1;
        root.subtasks.push(child);
    }
    root
}

#[tonic::async_trait]
impl Xdc for XdcApi {
    async fn list_xd_cs(&self, request: Request<pb::ListXdCsRequest>) -> Reply<pb::ListXdCsResponse> {
        let caller = caller(&request).map_err(status)?;
        let project = &request.get_ref().project;
        let all = self.0.xdc.list((!project.is_empty()).then_some(project.as_str())).await.map_err(status)?;
        let mut visible = Vec::new();
        for x in all {
            let target = Target::Xdc { project: x.project.clone(), name: x.name.clone() };
            match self.0.gate.check(caller, Entity::Xdc, Operation::Read, &target).await {
                Ok(()) => visible.push(self.info(&x)),
                Err(Error::PermissionDenied(_) | Error::NotFound { .. }) => {}
                Err(other) => return Err(status(other)),
            }
        }
        ok(pb::ListXdCsResponse { xd_cs: visible })
    }

    async fn list_xdc_images(
        &self,
        _request: Request<pb::ListXdcImagesRequest>,
    ) -> Reply<pb::ListXdcImagesResponse> {
        let images = trellis_xdc::IMAGES
            .iter()
            .map(|(image, title, details)| pb::XdcImageInfo {
                image: (*image).to_owned(),
                title: (*title).to_owned(),
                details: (*details).to_owned(),
                alias: String::new(),
            })
            .collect();
        ok(pb::ListXdcImagesResponse { images })
    }

    async fn get_xdc(&self, request: Request<pb::GetXdcRequest>) -> Reply<pb::GetXdcResponse> {
        let r = request.get_ref();
        let x = self.0.xdc.get(&r.project, &r.xdc).await.map_err(status)?;
        let observed = self.0.xdc.status(&r.project, &r.xdc).await.map_err(status)?;
        ok(pb::GetXdcResponse { xdc: Some(self.info(&x)), status: Some(status_tree(&x, observed.as_ref())) })
    }

    async fn create_xdc(&self, request: Request<pb::CreateXdcRequest>) -> Reply<pb::CreateXdcResponse> {
        let by = caller(&request).map_err(status)?.username().to_owned();
        let r = request.into_inner();
        if r.ingress.as_ref().is_some_and(|i| !i.http.is_empty()) {
            return Err(status(Error::invalid(
                "ingress",
                "custom XDC ingresses are not supported; Jupyter is served by the portal's XDC web proxy",
            )));
        }
        let lifetime = lifetime_from("duration", r.duration.as_ref()).map_err(status)?;
        let new = NewXdc {
            project: r.project,
            name: r.xdc,
            kind: kind_from(r.r#type).map_err(status)?,
            image: r.image,
            cpu_cores: non_negative("cpulimit", r.cpulimit).map_err(status)?,
            memory_gib: non_negative("memlimit", r.memlimit).map_err(status)?,
            lifetime,
        };
        self.0.xdc.create(&by, new).await.map_err(status)?;
        ok(pb::CreateXdcResponse {})
    }

    async fn delete_xdc(&self, request: Request<pb::DeleteXdcRequest>) -> Reply<pb::DeleteXdcResponse> {
        let r = request.get_ref();
        self.0.xdc.delete(&r.project, &r.xdc).await.map_err(status)?;
        ok(pb::DeleteXdcResponse {})
    }

    async fn attach_xdc(&self, request: Request<pb::AttachXdcRequest>) -> Reply<pb::AttachXdcResponse> {
        let caller = caller(&request).map_err(status)?;
        let r = request.get_ref();
        let project = if r.realization_project.is_empty() { &r.project } else { &r.realization_project };
        // Attaching gives the XDC's users a way into the experiment: they must be allowed to
        // use the materialization as well as the XDC.
        let target = Target::Experiment { project: project.clone(), name: r.experiment.clone() };
        self.0
            .gate
            .check(caller, Entity::Materialization, Operation::Update, &target)
            .await
            .map_err(status)?;
        let attachment = Attachment::new(project, &r.experiment, &r.realization);
        self.0.xdc.attach(&r.project, &r.xdc, attachment, r.force).await.map_err(status)?;
        ok(pb::AttachXdcResponse {})
    }

    async fn detach_xdc(&self, request: Request<pb::DetachXdcRequest>) -> Reply<pb::DetachXdcResponse> {
        let r = request.get_ref();
        self.0.xdc.detach(&r.project, &r.xdc).await.map_err(status)?;
        ok(pb::DetachXdcResponse {})
    }

    async fn update_xdc(&self, request: Request<pb::UpdateXdcRequest>) -> Reply<pb::UpdateXdcResponse> {
        let r = request.get_ref();
        let expires = lifetime_from("expires", r.expires.as_ref())
            .map_err(status)?
            .map(|seconds| trellis_realize::stored::now_unix() + seconds);
        self.0.xdc.set_expiry(&r.project, &r.xdc, expires).await.map_err(status)?;
        ok(pb::UpdateXdcResponse {})
    }

    async fn get_xdc_jump_hosts(
        &self,
        _request: Request<pb::GetXdcJumpHostsRequest>,
    ) -> Reply<pb::GetXdcJumpHostsResponse> {
        let jump_hosts = self
            .0
            .xdc
            .config()
            .jump_hosts
            .iter()
            .map(|j| pb::SshJump {
                name: j.name.clone(),
                port: u32::from(j.port),
                fqdn: j.fqdn.clone(),
                ver: 0,
            })
            .collect();
        ok(pb::GetXdcJumpHostsResponse { jump_hosts })
    }
}
