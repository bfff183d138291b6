//! XDCs and jump hosts: their JSON and tables.

use serde_json::{Value, json};
use trellis_api::portal::v1 as pb;

use super::{expires, key_values, name_or_number, table, task_status_name, timestamp_json};

/// `shared` or `personal`.
pub fn xdc_type_name(value: i32) -> String {
    name_or_number::<pb::XdcType>(value, pb::XdcType::as_str_name)
}

/// `XdcInfo` as JSON.
pub fn xdc_json(x: &pb::XdcInfo) -> Value {
    json!({
        "name": x.name,
        "url": x.url,
        "fqdn": x.fqdn,
        "creator": x.creator,
        "memlimit": x.memlimit,
        "cpulimit": x.cpulimit,
        "image": x.image,
        "materialization": x.materialization,
        "type": xdc_type_name(x.r#type),
        "expires": timestamp_json(x.expires.as_ref()),
        "urls": x.urls.iter().map(|u| json!({ "title": u.title, "url": u.url })).collect::<Vec<_>>(),
    })
}

/// The XDC's first web URL (Jupyter), falling back to the deprecated single `url`.
fn first_url(x: &pb::XdcInfo) -> &str {
    x.urls.first().map_or(x.url.as_str(), |u| u.url.as_str())
}

/// NAME, CREATOR, TYPE, MATERIALIZATION, SSH, URL; sorted by name.
pub fn xdcs_table(xdcs: &[pb::XdcInfo]) -> String {
    let mut sorted: Vec<&pb::XdcInfo> = xdcs.iter().collect();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    let rows: Vec<Vec<String>> = sorted
        .into_iter()
        .map(|x| {
            vec![
                x.name.clone(),
                x.creator.clone(),
                xdc_type_name(x.r#type),
                x.materialization.clone(),
                x.fqdn.clone(),
                first_url(x).to_owned(),
            ]
        })
        .collect();
    table(&["name", "creator", "type", "materialization", "ssh", "url"], &rows)
}

/// The `key: value` block of `trellis show xdc`.
pub fn xdc_text(x: &pb::XdcInfo, status: Option<&pb::TaskTree>) -> String {
    let mut pairs = vec![
        ("name", x.name.clone()),
        ("type", xdc_type_name(x.r#type)),
        ("creator", x.creator.clone()),
        ("image", x.image.clone()),
        ("cpu", format!("{} core(s)", x.cpulimit)),
        ("memory", format!("{} GiB", x.memlimit)),
        ("materialization", x.materialization.clone()),
        ("ssh", x.fqdn.clone()),
        ("expires", expires(x.expires.as_ref())),
    ];
    if let Some(tree) = status {
        let message = tree.task.as_ref().and_then(|t| t.message.as_ref()).map(|m| m.message.as_str());
        let state = task_status_name(tree.highest_status);
        pairs.push((
            "status",
            message.filter(|m| !m.is_empty()).map_or(state.clone(), |m| format!("{state} ({m})")),
        ));
    }
    if x.urls.is_empty() && !x.url.is_empty() {
        pairs.push(("url", x.url.clone()));
    }
    for u in &x.urls {
        pairs.push((
            "url",
            if u.title.is_empty() { u.url.clone() } else { format!("{} ({})", u.url, u.title) },
        ));
    }
    key_values(&pairs)
}

/// `SshJump` as JSON.
pub fn jump_json(j: &pb::SshJump) -> Value {
    json!({ "name": j.name, "fqdn": j.fqdn, "port": j.port })
}

/// NAME, HOST, PORT.
pub fn jumps_table(jumps: &[pb::SshJump]) -> String {
    let rows: Vec<Vec<String>> =
        jumps.iter().map(|j| vec![j.name.clone(), j.fqdn.clone(), j.port.to_string()]).collect();
    table(&["name", "host", "port"], &rows)
}

/// `XdcImageInfo` as JSON.
pub fn image_json(i: &pb::XdcImageInfo) -> Value {
    json!({ "image": i.image, "title": i.title, "details": i.details, "alias": i.alias })
}

/// IMAGE, TITLE, DETAILS.
pub fn images_table(images: &[pb::XdcImageInfo]) -> String {
    let rows: Vec<Vec<String>> =
        images.iter().map(|i| vec![i.image.clone(), i.title.clone(), i.details.clone()]).collect();
    table(&["image", "title", "details"], &rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn xdc(name: &str, attached: &str) -> pb::XdcInfo {
        pb::XdcInfo {
            name: name.into(),
            fqdn: name.replace('.', "-"),
            creator: "alice".into(),
            cpulimit: 2,
            memlimit: 4,
            image: "default".into(),
            materialization: attached.into(),
            r#type: pb::XdcType::Shared as i32,
            urls: vec![
                pb::XdcUrl { title: "Jupyter".into(), url: format!("http://localhost/p/{name}/") },
                pb::XdcUrl { title: "Jupyter (host form)".into(), url: "https://x".into() },
            ],
            ..Default::default()
        }
    }

    #[test]
    fn tables_sort_by_name_and_show_the_first_url() {
        let text = xdcs_table(&[xdc("x1.p", ""), xdc("x0.p", "r.e.p")]);
        assert_eq!(
            text,
            "NAME  CREATOR  TYPE    MATERIALIZATION  SSH   URL\n\
             x0.p  alice    shared  r.e.p            x0-p  http://localhost/p/x0.p/\n\
             x1.p  alice    shared                   x1-p  http://localhost/p/x1.p/\n"
        );
        let legacy = pb::XdcInfo { urls: vec![], url: "https://old".into(), ..xdc("x2.p", "") };
        assert!(xdcs_table(&[legacy]).contains("https://old"));
    }

    #[test]
    fn json_and_text_name_every_field() {
        let x = xdc("x0.p", "");
        let v = xdc_json(&x);
        assert_eq!(
            (v["type"].as_str(), v["fqdn"].as_str(), v["expires"].is_null()),
            (Some("shared"), Some("x0-p"), true)
        );
        assert_eq!(v["urls"][1]["title"], "Jupyter (host form)");
        let tree = pb::TaskTree {
            highest_status: pb::task_status::StatusType::Pending as i32,
            task: Some(pb::TaskStatus {
                message: Some(pb::TaskMessage { level: 0, message: "waiting for the XDC controller".into() }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let text = xdc_text(&x, Some(&tree));
        assert!(text.contains("status:          Pending (waiting for the XDC controller)\n"), "{text}");
        assert!(
            text.contains("ssh:             x0-p\n") && text.contains("expires:         never\n"),
            "{text}"
        );
        assert!(text.contains("url:             https://x (Jupyter (host form))\n"), "{text}");
        assert_eq!(xdc_type_name(pb::XdcType::Personal as i32), "personal");
        let jumps = [pb::SshJump { name: "jump".into(), fqdn: "localhost".into(), port: 2202, ver: 0 }];
        assert_eq!(jumps_table(&jumps), "NAME  HOST       PORT\njump  localhost  2202\n");
    }
}
