//! Which FUSE mounts exist, read from `/proc/self/mountinfo` (proc(5)): the kernel's view, so
//! it is right even after this process restarted or a `ceph-fuse` died.

use std::path::{Path, PathBuf};

/// One line of mountinfo, reduced to what the volume backends need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Mount {
    pub mount_point: PathBuf,
    pub fs_type: String,
}

/// Parses mountinfo text. Lines that do not have the documented shape are skipped: the file
/// comes from the kernel, and one odd line must not hide the others.
pub(crate) fn parse(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let mount_point = left.split(' ').nth(4)?;
            let fs_type = right.split(' ').next()?;
            Some(Mount { mount_point: PathBuf::from(unescape(mount_point)), fs_type: fs_type.to_owned() })
        })
        .collect()
}

/// Reads this process's mount table.
pub(crate) async fn read() -> std::io::Result<Vec<Mount>> {
    Ok(parse(&tokio::fs::read_to_string("/proc/self/mountinfo").await?))
}

/// The mounts of type `fs_type` at `root` or below it, deepest first (the order to unmount
/// them in). Mounts stacked on one point appear once each.
pub(crate) fn below<'a>(mounts: &'a [Mount], root: &Path, fs_type: &str) -> Vec<&'a Mount> {
    let mut found: Vec<&Mount> =
        mounts.iter().filter(|m| m.fs_type == fs_type && m.mount_point.starts_with(root)).collect();
    found.sort_by_key(|m| std::cmp::Reverse(m.mount_point.components().count()));
    found
}

/// How many mounts of type `fs_type` sit exactly at `mount_point` (more than one when stacked).
pub(crate) fn count_at(mounts: &[Mount], mount_point: &Path, fs_type: &str) -> usize {
    mounts.iter().filter(|m| m.fs_type == fs_type && m.mount_point == mount_point).count()
}

/// The kernel writes space, tab, newline and backslash in paths as `\ooo` octal escapes.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 3 < bytes.len()
            && bytes[i + 1..i + 4].iter().all(|b| (b'0'..=b'7').contains(b))
        {
            let value = bytes[i + 1..i + 4].iter().fold(0u32, |acc, b| acc * 8 + u32::from(b - b'0'));
            if let Ok(byte) = u8::try_from(value) {
                out.push(byte);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw
44 27 0:40 / /tmp/m/homes/alice rw,nosuid,nodev,relatime - fuse.ceph-fuse ceph-fuse rw,user_id=0,group_id=0,allow_other
45 27 0:41 / /tmp/m/projects/p1 rw,relatime shared:7 master:3 - fuse.ceph-fuse ceph-fuse rw
46 27 0:42 / /tmp/with\\040space/x rw - fuse.ceph-fuse ceph-fuse rw
garbage line
";

    #[test]
    fn parses_mount_points_types_and_escapes() {
        let mounts = parse(SAMPLE);
        assert_eq!(mounts.len(), 4);
        assert_eq!(mounts[1].mount_point, PathBuf::from("/tmp/m/homes/alice"));
        assert_eq!(mounts[1].fs_type, "fuse.ceph-fuse");
        assert_eq!(mounts[2].mount_point, PathBuf::from("/tmp/m/projects/p1"));
        assert_eq!(mounts[3].mount_point, PathBuf::from("/tmp/with space/x"));
        assert_eq!(mounts[0].fs_type, "ext4");
    }

    #[test]
    fn below_filters_by_root_and_type() {
        let mounts = parse(SAMPLE);
        let found = below(&mounts, Path::new("/tmp/m"), "fuse.ceph-fuse");
        let points: Vec<_> = found.iter().map(|m| m.mount_point.clone()).collect();
        assert_eq!(points, [PathBuf::from("/tmp/m/homes/alice"), PathBuf::from("/tmp/m/projects/p1")]);
        assert!(below(&mounts, Path::new("/tmp/m"), "ext4").is_empty());
        // A sibling whose name merely starts with the root is not below it.
        assert!(below(&mounts, Path::new("/tmp/m/home"), "fuse.ceph-fuse").is_empty());
        assert_eq!(count_at(&mounts, Path::new("/tmp/m/projects/p1"), "fuse.ceph-fuse"), 1);
        assert_eq!(count_at(&mounts, Path::new("/tmp/m/projects"), "fuse.ceph-fuse"), 0);
    }
}
