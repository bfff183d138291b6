//! `XDC` through gRPC: who may create, read, list, attach and delete XDCs (the built-in policy:
//! project members create, read and use them; the creator or the project's maintainers delete
//! them; nobody outside the project sees them), and the answers the jump host and the web proxy
//! get from `XdcAccess`.

mod common;

use common::*;
use tonic::Code;
use tonic::transport::Channel;
use trellis_api::portal::v1 as pb;
use trellis_api::portal::v1::xdc_client::XdcClient;

type Xdc = XdcClient<tonic::service::interceptor::InterceptedService<Channel, Bearer>>;

async fn xdc(portal: &TestPortal, user: &str) -> Xdc {
    let token = if user == "admin" {
        portal.login("admin", ADMIN_PASSWORD).await
    } else {
        portal.login(user, PASSWORD).await
    };
    let ch = Channel::from_shared(format!("http://{}", portal.addr)).unwrap().connect().await.unwrap();
    XdcClient::with_interceptor(ch, Bearer(Some(token)))
}

fn create(name: &str) -> pb::CreateXdcRequest {
    pb::CreateXdcRequest { project: "lab".into(), xdc: name.into(), ..Default::default() }
}

fn get(name: &str) -> pb::GetXdcRequest {
    pb::GetXdcRequest { project: "lab".into(), xdc: name.into(), status_ms: 0 }
}

fn delete(name: &str) -> pb::DeleteXdcRequest {
    pb::DeleteXdcRequest { project: "lab".into(), xdc: name.into() }
}

#[tokio::test]
async fn members_use_xdcs_creators_and_maintainers_delete_them_outsiders_see_nothing() {
    let portal = TestPortal::start().await;
    for user in ["maya", "mel", "otto"] {
        portal.user(user, true).await;
    }
    let (mut maya_ws, _) = portal.as_user("maya").await;
    maya_ws
        .create_project(pb::CreateProjectRequest {
            user: "maya".into(),
            project: Some(pb::Project {
                name: "lab".into(),
                access_mode: pb::AccessMode::Private as i32,
                ..Default::default()
            }),
        })
        .await
        .unwrap();
    maya_ws
        .add_project_member(pb::AddProjectMemberRequest {
            project: "lab".into(),
            username: "mel".into(),
            member: Some(active(pb::member::Role::Member)),
        })
        .await
        .unwrap();
    let (mut maya, mut mel, mut otto, mut admin) = (
        xdc(&portal, "maya").await,
        xdc(&portal, "mel").await,
        xdc(&portal, "otto").await,
        xdc(&portal, "admin").await,
    );

    // Members create; an outsider may not, and is told why.
    mel.create_xdc(create("x0")).await.unwrap();
    maya.create_xdc(create("x1")).await.unwrap();
    let denied = otto.create_xdc(create("x2")).await.unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied, "{denied:?}");
    assert!(denied.message().contains("Project.Member"), "{}", denied.message());

    // Bad input: a clear error naming the field, nothing stored.
    let bad = mel.create_xdc(create("Bad-Name")).await.unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument, "{bad:?}");
    let negative = mel.create_xdc(pb::CreateXdcRequest { cpulimit: -1, ..create("x3") }).await.unwrap_err();
    assert_eq!(negative.code(), Code::InvalidArgument, "{negative:?}");
    assert!(negative.message().contains("cpulimit"), "{}", negative.message());
    let taken = maya.create_xdc(create("x0")).await.unwrap_err();
    assert_eq!(taken.code(), Code::AlreadyExists, "{taken:?}");

    // Reading.
    let info = maya.get_xdc(get("x0")).await.unwrap().into_inner();
    let x = info.xdc.unwrap();
    assert_eq!((x.name.as_str(), x.fqdn.as_str(), x.creator.as_str()), ("x0.lab", "x0-lab", "mel"));
    assert!(info.status.is_some());
    assert_eq!(otto.get_xdc(get("x0")).await.unwrap_err().code(), Code::PermissionDenied);
    assert_eq!(maya.get_xdc(get("nope")).await.unwrap_err().code(), Code::NotFound);
    let names = |r: pb::ListXdCsResponse| r.xd_cs.into_iter().map(|x| x.name).collect::<Vec<_>>();
    let all = pb::ListXdCsRequest { project: String::new() };
    assert_eq!(names(mel.list_xd_cs(all.clone()).await.unwrap().into_inner()), ["x0.lab", "x1.lab"]);
    assert!(names(otto.list_xd_cs(all.clone()).await.unwrap().into_inner()).is_empty());
    assert_eq!(names(admin.list_xd_cs(all).await.unwrap().into_inner()), ["x0.lab", "x1.lab"]);

    // Attaching needs the materialization to exist, and the caller to be allowed to use it.
    let attach = pb::AttachXdcRequest {
        xdc: "x0".into(),
        project: "lab".into(),
        experiment: "e".into(),
        realization: "r".into(),
        ..Default::default()
    };
    assert_eq!(mel.attach_xdc(attach.clone()).await.unwrap_err().code(), Code::NotFound);
    assert_eq!(otto.attach_xdc(attach).await.unwrap_err().code(), Code::PermissionDenied);

    // Deleting: a member only their own; the project's creator (a maintainer) any.
    let denied = mel.delete_xdc(delete("x1")).await.unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied, "{denied:?}");
    mel.delete_xdc(delete("x0")).await.unwrap();
    maya.create_xdc(create("x0")).await.unwrap();
    maya.delete_xdc(delete("x0")).await.unwrap();
    maya.delete_xdc(delete("x1")).await.unwrap();
    assert_eq!(maya.delete_xdc(delete("x1")).await.unwrap_err().code(), Code::NotFound);

    // Jump hosts and images are for every signed-in user.
    let jumps = otto.get_xdc_jump_hosts(pb::GetXdcJumpHostsRequest {}).await.unwrap().into_inner();
    assert_eq!(jumps.jump_hosts.len(), 1);
    let images = otto.list_xdc_images(pb::ListXdcImagesRequest {}).await.unwrap().into_inner();
    assert_eq!(images.images[0].image, "default");
}
