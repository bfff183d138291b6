//! A container root: the directories every root has, the merged-`/usr` links, and the base
//! `/etc` files a root on the host's `/usr` needs. What else goes in it is the caller's.

use std::fs;
use std::io;
use std::os::unix::fs::{PermissionsExt as _, symlink};
use std::path::Path;

/// Host files a root built on the host's `/usr` needs in its own `/etc`.
pub const HOST_ETC: &[&str] = &[
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "localtime",
    "profile",
    "bash.bashrc",
    "inputrc",
    "protocols",
    "services",
    "shells",
    "login.defs",
    "mime.types",
    "ssh/ssh_config",
    "ssh/moduli",
    // Debian's Python reads its site customisation from here (Jupyter, and researchers'
    // scripts on nodes).
    "python3",
    "python3.11",
    "python3.12",
    "python3.13",
];

/// Directories every root has (0755); `root`, `tmp` and `var/tmp` get their own modes.
const DIRECTORIES: &[&str] =
    &["etc/ssh", "home", "usr", "opt", "srv", "mnt", "var/lib", "var/log", "proc", "sys", "dev", "run"];

/// Creates `path` and its parents, and gives it `mode`.
pub fn mkdir(path: &Path, mode: u32) -> io::Result<()> {
    fs::create_dir_all(path)?;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
}

/// Copies a file, directory tree or symlink as it is.
pub fn copy_tree(from: &Path, to: &Path) -> io::Result<()> {
    let meta = fs::symlink_metadata(from)?;
    if meta.file_type().is_symlink() {
        let _ = fs::remove_file(to);
        symlink(fs::read_link(from)?, to)
    } else if meta.is_dir() {
        fs::create_dir_all(to)?;
        fs::set_permissions(to, meta.permissions())?;
        for entry in fs::read_dir(from)? {
            let entry = entry?;
            copy_tree(&entry.path(), &to.join(entry.file_name()))?;
        }
        Ok(())
    } else {
        fs::copy(from, to).map(drop)
    }
}

/// Creates the directories of a root (plus `extra`), and links `/bin`, `/lib`… to their
/// `usr/` counterparts where `usr` (the `/usr` the container will see) has them. Safe to run
/// again over a finished or half-made root.
pub fn create(root: &Path, usr: &Path, extra: &[&str]) -> io::Result<()> {
    mkdir(root, 0o755)?;
    for dir in DIRECTORIES.iter().chain(extra) {
        mkdir(&root.join(dir), 0o755)?;
    }
    mkdir(&root.join("root"), 0o700)?;
    mkdir(&root.join("tmp"), 0o1777)?;
    mkdir(&root.join("var/tmp"), 0o1777)?;
    for dir in ["bin", "sbin", "lib", "lib32", "lib64", "libx32"] {
        let link = root.join(dir);
        if usr.join(dir).is_dir() && fs::symlink_metadata(&link).is_err() {
            symlink(format!("usr/{dir}"), link)?;
        }
    }
    Ok(())
}

/// Copies the [`HOST_ETC`] files this host has into the root's `/etc`, with `/etc/alternatives`
/// as the mount point for the host's.
pub fn copy_host_etc(root: &Path) -> io::Result<()> {
    mkdir(&root.join("etc/alternatives"), 0o755)?;
    for name in HOST_ETC {
        let from = Path::new("/etc").join(name);
        if fs::symlink_metadata(&from).is_ok() {
            copy_tree(&from, &root.join("etc").join(name))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_root_has_its_directories_links_and_host_files_and_can_be_made_again() {
        let dir = tempfile::tempdir().unwrap();
        let usr = dir.path().join("usr");
        fs::create_dir_all(usr.join("bin")).unwrap();
        fs::create_dir_all(usr.join("lib")).unwrap();
        let root = dir.path().join("root");
        create(&root, &usr, &["project"]).unwrap();
        create(&root, &usr, &["project"]).unwrap();
        copy_host_etc(&root).unwrap();
        copy_host_etc(&root).unwrap();
        let mode = |p: &str| fs::metadata(root.join(p)).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode("tmp"), 0o1777);
        assert_eq!(mode("root"), 0o700);
        assert_eq!(mode("project"), 0o755);
        assert_eq!(fs::read_link(root.join("bin")).unwrap(), Path::new("usr/bin"));
        assert!(fs::symlink_metadata(root.join("sbin")).is_err(), "no link to what usr lacks");
        assert!(root.join("etc/alternatives").is_dir());
        assert_eq!(fs::read(root.join("etc/services")).ok(), fs::read("/etc/services").ok());
    }

    #[test]
    fn a_tree_is_copied_with_its_links_and_modes() {
        let dir = tempfile::tempdir().unwrap();
        let from = dir.path().join("from");
        mkdir(&from.join("sub"), 0o750).unwrap();
        fs::write(from.join("sub/file"), "text").unwrap();
        symlink("sub/file", from.join("link")).unwrap();
        let to = dir.path().join("to");
        copy_tree(&from, &to).unwrap();
        copy_tree(&from, &to).unwrap();
        assert_eq!(fs::read_to_string(to.join("sub/file")).unwrap(), "text");
        assert_eq!(fs::read_link(to.join("link")).unwrap(), Path::new("sub/file"));
        assert_eq!(fs::metadata(to.join("sub")).unwrap().permissions().mode() & 0o777, 0o750);
    }
}
