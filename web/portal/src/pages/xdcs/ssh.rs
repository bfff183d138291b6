//! The SSH command lines the XDC pages show: what `trellis xdc ssh` runs (without the `-F`
//! file `trellis login` writes, which a browser-only user does not have).

use trellis_api::portal::v1 as pb;

/// Merge's jump host listens on 2022 when the portal names no port (as in the CLI).
const MERGE_JUMP_PORT: u16 = 2022;
/// Where `trellis login` (and the account page's downloads) put the portal-issued key.
const KEY_PATH: &str = "~/.ssh/merge_key";

/// `user@host:port` for ssh's `-J`, built as `trellis xdc ssh` builds it.
pub(super) fn jump_spec(user: &str, jump: &pb::SshJump) -> String {
    let port = u16::try_from(jump.port).ok().filter(|p| *p != 0).unwrap_or(MERGE_JUMP_PORT);
    let host = if jump.fqdn.is_empty() { &jump.name } else { &jump.fqdn };
    if host.contains(':') { format!("{user}@[{host}]:{port}") } else { format!("{user}@{host}:{port}") }
}

/// The XDC's SSH name at the jump host: what the API says, else `<xdc>-<project>`.
pub(super) fn ssh_name(info: &pb::XdcInfo, name: &str, project: &str) -> String {
    if info.fqdn.is_empty() { format!("{name}-{project}") } else { info.fqdn.clone() }
}

/// A word as a POSIX shell needs it typed (names are validated by the API; links and
/// commands must not depend on that).
pub(super) fn sh(word: &str) -> String {
    let plain =
        !word.is_empty() && word.chars().all(|c| c.is_ascii_alphanumeric() || "@%+=:,./_-[]".contains(c));
    if plain { word.to_owned() } else { format!("'{}'", word.replace('\'', r"'\''")) }
}

/// The command reaching the XDC itself through the jump host.
pub(super) fn ssh_command(user: &str, jump: &str, xdc: &str) -> String {
    format!("ssh -i {KEY_PATH} -J {} {}", sh(jump), sh(&format!("{user}@{xdc}")))
}

/// The command reaching an experiment node through the jump host and the XDC, with the
/// options `trellis xdc ssh --node` adds: nodes are rebuilt under the same names with new
/// host keys, so remembering them would only produce "host key changed" failures.
pub(super) fn node_command(user: &str, jump: &str, xdc: &str, node: &str) -> String {
    format!(
        "ssh -i {KEY_PATH} -J {} -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR {}@{node}",
        sh(&format!("{jump},{user}@{xdc}")),
        sh(user),
    )
}

/// `2025-01-02 03:04 UTC` (days to civil date after Howard Hinnant's `civil_from_days`).
pub(super) fn utc(seconds: i64) -> String {
    let (days, rest) = (seconds.div_euclid(86_400), seconds.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02} {:02}:{:02} UTC", rest / 3600, rest % 3600 / 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jump_specs_follow_the_cli() {
        let j = pb::SshJump { name: "jump".into(), fqdn: "jump.example.net".into(), port: 2202, ver: 0 };
        assert_eq!(jump_spec("alice", &j), "alice@jump.example.net:2202");
        let bare = pb::SshJump { name: "jump.example.net".into(), fqdn: String::new(), port: 0, ver: 0 };
        assert_eq!(jump_spec("bob", &bare), "bob@jump.example.net:2022");
        let v6 = pb::SshJump { name: "j".into(), fqdn: "fd00::1".into(), port: 70000, ver: 0 };
        assert_eq!(jump_spec("bob", &v6), "bob@[fd00::1]:2022");
    }

    #[test]
    fn commands_reach_the_xdc_and_nodes_through_the_jump_host() {
        assert_eq!(
            ssh_command("alice", "alice@localhost:2202", "x0-lab"),
            "ssh -i ~/.ssh/merge_key -J alice@localhost:2202 alice@x0-lab"
        );
        let node = node_command("alice", "alice@localhost:2202", "x0-lab", "n1");
        assert!(node.starts_with("ssh -i ~/.ssh/merge_key -J alice@localhost:2202,alice@x0-lab "), "{node}");
        assert!(node.ends_with(" alice@n1"), "{node}");
        assert_eq!(sh("it's"), r"'it'\''s'");
        let info = pb::XdcInfo::default();
        assert_eq!(ssh_name(&info, "x0", "lab"), "x0-lab");
    }

    #[test]
    fn expiry_times_are_shown_as_utc_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00 UTC");
        assert_eq!(utc(951_825_600), "2000-02-29 12:00 UTC");
        assert_eq!(utc(1_735_689_600 + 3 * 3600 + 4 * 60), "2025-01-01 03:04 UTC");
    }
}
