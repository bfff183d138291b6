//! How a blob is laid out in RADOS objects: pure naming and manifest code, no I/O.
//!
//! A RADOS object has a maximum size (`osd_max_object_size`, 128 MiB by default) and a single
//! write has one too (`osd_max_write_size`, 90 MiB), so a blob of hundreds of MiB is striped:
//! - parts `<id>.0`, `<id>.1`, … hold consecutive [`PART_SIZE`] slices of the bytes (the last one
//!   shorter), each written in [`CHUNK_SIZE`] writes at increasing offsets;
//! - the head object `<id>` holds a small text manifest (format version, size, part size) and is
//!   written last, with one atomic `write_full`. The head is the commit point: a blob exists
//!   exactly when its head does, and a put that dies before it leaves only unreferenced parts.
//!
//! The part size is in the manifest, so a later version may change it and still read old blobs.

use crate::BlobId;

/// Size of one part object: half the default `osd_max_object_size`, leaving room for clusters
/// configured lower.
pub(crate) const PART_SIZE: u64 = 64 << 20;
/// Size of one read or write call: small enough to keep each OSD op short, large enough that
/// per-op latency does not dominate.
pub(crate) const CHUNK_SIZE: usize = 4 << 20;
/// Upper bound on a head object; manifests are a few dozen bytes.
pub(crate) const MAX_HEAD_SIZE: usize = 4096;

const MAGIC: &str = "trellis-blob v1";

/// What the head object of a blob records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Manifest {
    /// Length of the blob in bytes.
    pub(crate) size: u64,
    /// Length of every part but the last.
    pub(crate) part_size: u64,
}

impl Manifest {
    /// The manifest this version writes for a blob of `size` bytes.
    pub(crate) fn for_size(size: u64) -> Self {
        Self { size, part_size: PART_SIZE }
    }

    /// Number of part objects (none for an empty blob).
    pub(crate) fn parts(&self) -> u64 {
        self.size.div_ceil(self.part_size)
    }

    /// Byte range `[start, start + len)` of the blob held by part `index`.
    pub(crate) fn part_range(&self, index: u64) -> (u64, u64) {
        let start = index.saturating_mul(self.part_size).min(self.size);
        let len = self.part_size.min(self.size - start);
        (start, len)
    }

    pub(crate) fn encode(&self) -> String {
        format!("{MAGIC}\nsize={}\npart_size={}\n", self.size, self.part_size)
    }

    /// Parses a head object's contents; the error says what is wrong with it.
    pub(crate) fn decode(bytes: &[u8]) -> Result<Self, String> {
        let text = std::str::from_utf8(bytes).map_err(|_| "manifest is not UTF-8".to_owned())?;
        let mut lines = text.lines();
        if lines.next() != Some(MAGIC) {
            return Err(format!("manifest does not start with {MAGIC:?}"));
        }
        let mut field = |name: &str| -> Result<u64, String> {
            let line = lines.next().ok_or_else(|| format!("manifest lacks {name}"))?;
            let value = line
                .strip_prefix(name)
                .and_then(|rest| rest.strip_prefix('='))
                .ok_or_else(|| format!("manifest line {line:?} is not {name}=…"))?;
            value.parse().map_err(|_| format!("manifest {name} {value:?} is not a number"))
        };
        let size = field("size")?;
        let part_size = field("part_size")?;
        if part_size == 0 {
            return Err("manifest part_size is 0".to_owned());
        }
        if lines.next().is_some() {
            return Err("manifest has trailing lines".to_owned());
        }
        Ok(Self { size, part_size })
    }
}

/// Name of the object holding part `index` of `id`. The `.` keeps it from ever parsing as an id.
pub(crate) fn part_name(id: &BlobId, index: u64) -> String {
    format!("{id}.{index}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_round_trips() {
        for size in [0, 1, PART_SIZE - 1, PART_SIZE, PART_SIZE + 1, 300 << 20] {
            let m = Manifest::for_size(size);
            assert_eq!(Manifest::decode(m.encode().as_bytes()), Ok(m));
        }
    }

    #[test]
    fn parts_cover_the_blob_exactly() {
        for size in [0, 1, PART_SIZE - 1, PART_SIZE, PART_SIZE + 1, 300 << 20] {
            let m = Manifest::for_size(size);
            let mut next = 0;
            for i in 0..m.parts() {
                let (start, len) = m.part_range(i);
                assert_eq!(start, next);
                assert!(len > 0 && len <= PART_SIZE);
                next = start + len;
            }
            assert_eq!(next, size);
        }
        assert_eq!(Manifest::for_size(300 << 20).parts(), 5);
    }

    #[test]
    fn bad_manifests_are_rejected() {
        for bad in [
            &b""[..],
            b"trellis-blob v2\nsize=1\npart_size=1\n",
            b"trellis-blob v1\nsize=x\npart_size=1\n",
            b"trellis-blob v1\nsize=1\n",
            b"trellis-blob v1\nsize=1\npart_size=0\n",
            b"trellis-blob v1\nsize=1\npart_size=1\nmore\n",
            b"\xff\xfe",
        ] {
            assert!(Manifest::decode(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn part_names_are_not_ids() {
        let id = BlobId::of(b"x");
        assert!(BlobId::parse(&part_name(&id, 0)).is_err());
    }
}
