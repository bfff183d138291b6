use std::os::unix::fs::PermissionsExt;

use super::*;

fn files(dir: &Path) -> SshFiles {
    SshFiles::locate(Some(dir)).unwrap()
}

fn creds() -> Credentials {
    Credentials {
        private_key: "-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n-----END OPENSSH PRIVATE KEY-----\n".into(),
        public_key: "ssh-ed25519 AAAApub alice".into(),
        certificate: "ssh-ed25519-cert-v01@openssh.com AAAAcert alice".into(),
        host_ca: "ssh-ed25519 AAAAhostca".into(),
    }
}

fn jump() -> Jump {
    Jump { user: "alice".into(), host: "jump.example.net".into(), port: 2022 }
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn strings(args: &[OsString]) -> Vec<String> {
    args.iter().map(|a| a.to_string_lossy().into_owned()).collect()
}

#[test]
fn jumps_print_as_ssh_takes_them() {
    assert_eq!(jump().to_string(), "alice@jump.example.net:2022");
    let v6 = Jump { user: "bob".into(), host: "::1".into(), port: 2202 };
    assert_eq!(v6.to_string(), "bob@[::1]:2202");
}

#[test]
fn the_block_is_appended_then_replaced_in_place() {
    let path = Path::new("/x/config");
    let block = "# BEGIN trellis: x\nHost mergejump\n    Port 1\n# END trellis\n";
    assert_eq!(with_block("", block, path).unwrap(), block);
    let user = "Host work\n    User me\n";
    let once = with_block(user, block, path).unwrap();
    assert_eq!(once, format!("{user}\n{block}"));
    // No final newline: one is added before the blank line.
    assert_eq!(with_block("Host a", block, path).unwrap(), format!("Host a\n\n{block}"));

    // Replacing keeps what surrounds the block, byte for byte.
    let surrounded = format!("# top\n{block}Host after\n    Port 9\n");
    let newer = "# BEGIN trellis: y\nHost mergejump\n    Port 2\n# END trellis\n";
    assert_eq!(
        with_block(&surrounded, newer, path).unwrap(),
        format!("# top\n{newer}Host after\n    Port 9\n")
    );
    assert_eq!(
        with_block(&with_block(&surrounded, newer, path).unwrap(), newer, path).unwrap(),
        format!("# top\n{newer}Host after\n    Port 9\n")
    );

    for broken in ["# BEGIN trellis\nHost x\n", "Host x\n# END trellis\n", "# END trellis\n# BEGIN trellis\n"]
    {
        assert!(matches!(with_block(broken, block, path), Err(CliError::ManagedBlock { .. })), "{broken:?}");
    }
}

#[test]
fn install_writes_files_with_modes_and_keeps_other_config() {
    let dir = tempfile::tempdir().unwrap();
    let ssh = dir.path().join("dot ssh");
    let f = files(&ssh);
    std::fs::create_dir(&ssh).unwrap();
    std::fs::write(f.user_config(), "Host work\n    HostName w.example.org\n").unwrap();
    std::fs::set_permissions(f.user_config(), std::fs::Permissions::from_mode(0o640)).unwrap();

    let installed = install(&f, &creds(), Some(&jump())).unwrap();
    assert_eq!(installed, Installed { jump_block: true, host_ca: true });
    assert_eq!(mode(&f.key()), 0o600);
    assert_eq!(mode(&f.public_key()), 0o644);
    assert_eq!(mode(&f.certificate()), 0o644);
    assert_eq!(mode(&f.user_config()), 0o640, "the config keeps its mode");
    assert_eq!(std::fs::read_to_string(f.public_key()).unwrap(), "ssh-ed25519 AAAApub alice\n");
    assert_eq!(
        std::fs::read_to_string(f.known_hosts()).unwrap(),
        "@cert-authority * ssh-ed25519 AAAAhostca\n"
    );

    let config = std::fs::read_to_string(f.user_config()).unwrap();
    assert!(config.starts_with("Host work\n    HostName w.example.org\n\n# BEGIN trellis"), "{config}");
    let key = format!("\"{}\"", f.key().display());
    for line in ["Host mergejump", "HostName jump.example.net", "Port 2022", "User alice"] {
        assert!(config.contains(&format!("{line}\n")), "{line}: {config}");
    }
    assert!(config.contains(&format!("    IdentityFile {key}\n")), "paths with spaces are quoted: {config}");
    assert!(config.ends_with("# END trellis\n"), "{config}");

    let client = std::fs::read_to_string(f.client_config()).unwrap();
    assert!(client.contains("Host *\n"), "{client}");
    assert!(
        client.contains(&format!("    UserKnownHostsFile \"{}\"\n", f.known_hosts().display())),
        "{client}"
    );

    // A second login changes nothing; a different jump host replaces the block in place.
    install(&f, &creds(), Some(&jump())).unwrap();
    assert_eq!(std::fs::read_to_string(f.user_config()).unwrap(), config);
    let moved = Jump { port: 2202, ..jump() };
    install(&f, &creds(), Some(&moved)).unwrap();
    let again = std::fs::read_to_string(f.user_config()).unwrap();
    assert_eq!(again.matches("# BEGIN trellis").count(), 1, "{again}");
    assert!(again.contains("    Port 2202\n") && !again.contains("Port 2022"), "{again}");
    assert!(again.starts_with("Host work\n"), "{again}");
    // Nothing else was left in the directory (no temporary files).
    let mut names: Vec<String> = std::fs::read_dir(&ssh)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "config",
            "merge_key",
            "merge_key-cert.pub",
            "merge_key.pub",
            "trellis_known_hosts",
            "trellis_ssh_config"
        ]
    );
}

#[test]
fn install_without_jump_host_or_ca_writes_less_and_refuses_empty_keys() {
    let dir = tempfile::tempdir().unwrap();
    let f = files(&dir.path().join("new"));
    let no_ca = Credentials { host_ca: String::new(), ..creds() };
    assert_eq!(install(&f, &no_ca, None).unwrap(), Installed { jump_block: false, host_ca: false });
    assert_eq!(mode(&f.dir), 0o700);
    assert!(!f.user_config().exists() && !f.known_hosts().exists());
    assert!(!std::fs::read_to_string(f.client_config()).unwrap().contains("UserKnownHostsFile"));
    f.check_installed().unwrap();
    let empty = Credentials { certificate: " ".into(), ..creds() };
    assert!(matches!(install(&f, &empty, None), Err(CliError::EmptyCredentials)));
    std::fs::remove_file(f.certificate()).unwrap();
    assert!(matches!(f.check_installed(), Err(CliError::NoSshKey { path }) if path == f.certificate()));
}

#[test]
fn symlinked_config_is_followed() {
    let dir = tempfile::tempdir().unwrap();
    let f = files(dir.path());
    let real = dir.path().join("dotfiles-config");
    std::fs::write(&real, "Host keep\n").unwrap();
    std::os::unix::fs::symlink(&real, f.user_config()).unwrap();
    install(&f, &creds(), Some(&jump())).unwrap();
    assert!(std::fs::symlink_metadata(f.user_config()).unwrap().file_type().is_symlink());
    let text = std::fs::read_to_string(&real).unwrap();
    assert!(text.starts_with("Host keep\n") && text.contains("Host mergejump\n"), "{text}");
}

#[test]
fn ssh_and_scp_command_lines() {
    let f = files(Path::new("/home/alice/.ssh"));
    let direct = Route { jump: jump(), xdc: "x0-proj".into(), node: None };
    let args = direct.ssh_args(&f, &["8888:localhost:8888".into()], &["ls".into(), "-l".into()]);
    assert_eq!(
        shell_line(&args),
        "-F /home/alice/.ssh/trellis_ssh_config -J alice@jump.example.net:2022 \
         -L 8888:localhost:8888 alice@x0-proj ls -l"
    );
    let via = Route { node: Some("a".into()), ..direct.clone() };
    assert_eq!(
        strings(&via.ssh_args(&f, &[], &[])),
        [
            "-F",
            "/home/alice/.ssh/trellis_ssh_config",
            "-J",
            "alice@jump.example.net:2022,alice@x0-proj",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "LogLevel=ERROR",
            "alice@a",
        ]
    );
    let up = direct.scp_args(&f, true, true, &["a.txt".into(), "c:d".into(), "/abs/x:y".into()], "dir/");
    assert_eq!(strings(&up)[4..], ["-r", "a.txt", "./c:d", "/abs/x:y", "alice@x0-proj:dir/"]);
    let down = via.scp_args(&f, false, false, &["/tmp/out".into()], "here:there");
    assert_eq!(strings(&down)[10..], ["alice@a:/tmp/out", "./here:there"]);
}

#[test]
fn shell_lines_quote_what_a_shell_would_change() {
    let argv: Vec<OsString> =
        ["ssh", "echo hi", "it's", "", "a@b:1", "[::1]", "$HOME"].map(OsString::from).into();
    assert_eq!(shell_line(&argv), r#"ssh 'echo hi' 'it'\''s' '' a@b:1 '[::1]' '$HOME'"#);
}
