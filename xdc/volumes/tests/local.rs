//! The local backend on a real filesystem. Needs root (chown to other users), as in CI.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use trellis_volumes::local::LocalVolumes;
use trellis_volumes::{VolumeError, VolumeOwner, VolumeRef, Volumes};

fn owner(uid: u32, gid: u32, mode: u32) -> VolumeOwner {
    VolumeOwner { uid, gid, mode, quota_bytes: 0 }
}

fn stat(path: &Path) -> (u32, u32, u32) {
    let meta = std::fs::symlink_metadata(path).unwrap();
    assert!(meta.is_dir(), "{} is not a directory", path.display());
    (meta.uid(), meta.gid(), meta.mode() & 0o7777)
}

#[tokio::test]
async fn ensure_creates_home_and_project_with_owner_and_mode() {
    let root = tempfile::tempdir().unwrap();
    let volumes = LocalVolumes::new(root.path());

    let home = volumes.ensure(&VolumeRef::Home("alice".into()), owner(1000, 1000, 0o750)).await.unwrap();
    assert_eq!(home, root.path().join("home/alice"));
    assert_eq!(stat(&home), (1000, 1000, 0o750));

    let project = volumes.ensure(&VolumeRef::Project("proj1".into()), owner(0, 2000, 0o2770)).await.unwrap();
    assert_eq!(project, root.path().join("project/proj1"));
    assert_eq!(stat(&project), (0, 2000, 0o2770));
}

#[tokio::test]
async fn ensure_is_idempotent_and_reapplies_owner_and_mode() {
    let root = tempfile::tempdir().unwrap();
    let volumes = LocalVolumes::new(root.path());
    let home = VolumeRef::Home("bob".into());

    let path = volumes.ensure(&home, owner(1000, 1000, 0o750)).await.unwrap();
    std::fs::write(path.join("notes"), "keep me").unwrap();
    // Someone (the user, inside the XDC) changed the top directory.
    std::os::unix::fs::chown(&path, Some(1234), Some(1234)).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o777)).unwrap();

    let again = volumes.ensure(&home, owner(1000, 1000, 0o750)).await.unwrap();
    assert_eq!(again, path);
    assert_eq!(stat(&path), (1000, 1000, 0o750));
    assert_eq!(std::fs::read_to_string(path.join("notes")).unwrap(), "keep me");

    // A new owner and mode replace the old ones, set-ID bits included.
    volumes.ensure(&home, owner(1001, 1002, 0o2700)).await.unwrap();
    assert_eq!(stat(&path), (1001, 1002, 0o2700));
}

#[tokio::test]
async fn remove_deletes_the_tree_and_is_idempotent() {
    let root = tempfile::tempdir().unwrap();
    let volumes = LocalVolumes::new(root.path());
    let project = VolumeRef::Project("gone".into());

    let path = volumes.ensure(&project, owner(0, 2000, 0o2770)).await.unwrap();
    std::fs::create_dir_all(path.join("a/b")).unwrap();
    std::fs::write(path.join("a/b/file"), "data").unwrap();
    volumes.remove(&project).await.unwrap();
    assert!(!path.exists());
    volumes.remove(&project).await.unwrap();

    // Created again, it starts empty.
    let path = volumes.ensure(&project, owner(0, 2000, 0o2770)).await.unwrap();
    assert_eq!(std::fs::read_dir(&path).unwrap().count(), 0);
}

#[tokio::test]
async fn symlinks_are_never_followed() {
    let root = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("precious"), "x").unwrap();
    std::fs::set_permissions(outside.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let before = stat(outside.path());
    std::fs::create_dir_all(root.path().join("home")).unwrap();
    std::os::unix::fs::symlink(outside.path(), root.path().join("home/mallory")).unwrap();
    let volumes = LocalVolumes::new(root.path());
    let home = VolumeRef::Home("mallory".into());

    let err = volumes.ensure(&home, owner(1000, 1000, 0o750)).await.unwrap_err();
    assert!(matches!(err, VolumeError::Failed(_)), "{err:?}");
    assert!(err.to_string().contains("not a directory"), "{err}");
    assert_eq!(stat(outside.path()), before);

    // remove takes away the link, not what it points to.
    volumes.remove(&home).await.unwrap();
    assert!(std::fs::symlink_metadata(root.path().join("home/mallory")).is_err());
    assert_eq!(std::fs::read_to_string(outside.path().join("precious")).unwrap(), "x");
}

#[tokio::test]
async fn bad_names_are_rejected_before_anything_is_created() {
    let root = tempfile::tempdir().unwrap();
    let volumes = LocalVolumes::new(root.path().join("volumes"));
    let bad = [
        VolumeRef::Home(String::new()),
        VolumeRef::Home("..".into()),
        VolumeRef::Home("../etc".into()),
        VolumeRef::Project("a/b".into()),
        VolumeRef::Project("Proj".into()),
        VolumeRef::Project("p\u{1b}[0m".into()),
    ];
    for volume in &bad {
        let err = volumes.ensure(volume, owner(1000, 1000, 0o750)).await.unwrap_err();
        assert!(matches!(err, VolumeError::InvalidName(_)), "{volume:?}: {err:?}");
        let err = volumes.remove(volume).await.unwrap_err();
        assert!(matches!(err, VolumeError::InvalidName(_)), "{volume:?}: {err:?}");
    }
    let err = volumes.ensure(&VolumeRef::Home("../etc".into()), owner(0, 0, 0o755)).await.unwrap_err();
    assert_eq!(err.to_string(), r#"invalid volume name "../etc": must start with a lowercase letter"#);
    assert!(!root.path().join("volumes").exists());
}
