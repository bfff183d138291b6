//! The cases every backend must pass. Each takes a fresh, empty store.

use std::any::Any;
use std::sync::Arc;
use std::time::Instant;

use sha2::{Digest, Sha256};
use trellis_blobs::{BlobError, BlobId, BlobStore};

/// Damages a stored blob behind the store's back.
pub type Corrupter = Box<dyn Fn(&BlobId, u64) + Send + Sync>;

/// A store under test plus what the suite cannot do through the trait.
pub struct Harness {
    /// For messages: "local" or "rados".
    pub backend: &'static str,
    pub store: Arc<dyn BlobStore>,
    /// Damages the stored copy of `id` (which has `size` bytes) without changing its size.
    pub corrupt: Corrupter,
    /// Dropped last: removes the directory or pool.
    pub _cleanup: Box<dyn Any + Send>,
}

/// `len` pseudo-random bytes from `seed` (xorshift64*): cheap, and different seeds differ.
pub fn data(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        out.extend_from_slice(&state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

const MIB: usize = 1 << 20;

pub async fn round_trip(h: &Harness) {
    for (seed, len) in [(1, 0), (2, 1), (3, 1000), (4, 5 * MIB + 7)] {
        let bytes = data(seed, len);
        let id = h.store.put(bytes.clone()).await.unwrap();
        assert!(h.store.exists(&id).await.unwrap());
        let got = h.store.get(&id).await.unwrap().expect("just put");
        assert_eq!(got.len(), len);
        assert!(got == bytes, "bytes of a {len}-byte blob differ");
    }
}

pub async fn idempotent_put(h: &Harness) {
    let bytes = data(10, 3 * MIB);
    let a = h.store.put(bytes.clone()).await.unwrap();
    let b = h.store.put(bytes.clone()).await.unwrap();
    assert_eq!(a, b);
    assert_eq!(h.store.list().await.unwrap(), vec![a.clone()]);
    assert_eq!(h.store.get(&a).await.unwrap().unwrap(), bytes);
}

pub async fn id_is_sha256(h: &Harness) {
    // FIPS 180-2 test vectors, so the id does not just agree with itself.
    let vectors: [(&[u8], &str); 2] = [
        (b"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
        (b"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
    ];
    for (bytes, want) in vectors {
        let id = h.store.put(bytes.to_vec()).await.unwrap();
        assert_eq!(id.to_string(), want);
    }
    let bytes = data(20, 100_000);
    let id = h.store.put(bytes.clone()).await.unwrap();
    assert_eq!(id.as_str(), sha256_hex(&bytes));
    assert_eq!(id, BlobId::parse(&sha256_hex(&bytes).to_uppercase()).unwrap());
}

pub async fn missing_is_none(h: &Harness) {
    let id = BlobId::of(b"never stored");
    assert!(h.store.get(&id).await.unwrap().is_none());
    assert!(!h.store.exists(&id).await.unwrap());
    assert!(!h.store.delete(&id).await.unwrap());
}

pub async fn delete(h: &Harness) {
    let keep = h.store.put(data(30, 1000)).await.unwrap();
    let gone = h.store.put(data(31, 2 * MIB)).await.unwrap();
    assert!(h.store.delete(&gone).await.unwrap());
    assert!(!h.store.exists(&gone).await.unwrap());
    assert!(h.store.get(&gone).await.unwrap().is_none());
    assert!(!h.store.delete(&gone).await.unwrap(), "a second delete finds nothing");
    assert_eq!(h.store.get(&keep).await.unwrap().unwrap(), data(30, 1000));
    // Deleted blobs can be put again.
    assert_eq!(h.store.put(data(31, 2 * MIB)).await.unwrap(), gone);
    assert!(h.store.exists(&gone).await.unwrap());
}

pub async fn list(h: &Harness) {
    assert_eq!(h.store.list().await.unwrap(), Vec::<BlobId>::new());
    let mut ids = Vec::new();
    for seed in 40..45 {
        ids.push(h.store.put(data(seed, 10_000 + seed as usize)).await.unwrap());
    }
    ids.sort();
    assert_eq!(h.store.list().await.unwrap(), ids);
    let removed = ids.remove(2);
    assert!(h.store.delete(&removed).await.unwrap());
    assert_eq!(h.store.list().await.unwrap(), ids);
}

/// 300 MiB: more than two default RADOS objects (osd_max_object_size is 128 MiB). Only one copy of
/// the data is alive at a time besides what the store itself holds.
pub async fn large_blob(h: &Harness) {
    let len = 300 * MIB;
    let bytes = data(50, len);
    let want = sha256_hex(&bytes);
    let t = Instant::now();
    let id = h.store.put(bytes).await.unwrap();
    let put_secs = t.elapsed().as_secs_f64();
    assert_eq!(id.as_str(), want);
    let t = Instant::now();
    let got = h.store.get(&id).await.unwrap().expect("just put");
    let get_secs = t.elapsed().as_secs_f64();
    assert_eq!(got.len(), len);
    assert_eq!(sha256_hex(&got), want);
    drop(got);
    let mib = (len / MIB) as f64;
    println!(
        "large_blob[{}]: 300 MiB put {put_secs:.2} s ({:.0} MiB/s), get {get_secs:.2} s ({:.0} MiB/s)",
        h.backend,
        mib / put_secs,
        mib / get_secs
    );
    assert!(h.store.delete(&id).await.unwrap());
}

pub async fn corruption_is_detected(h: &Harness) {
    let len = 5 * MIB + 3;
    let bytes = data(60, len);
    let id = h.store.put(bytes.clone()).await.unwrap();
    let (corrupt, id2) = (&h.corrupt, id.clone());
    tokio::task::block_in_place(|| corrupt(&id2, len as u64));
    match h.store.get(&id).await {
        Err(BlobError::Corrupt { id: bad, .. }) => assert_eq!(bad, id),
        other => panic!("a damaged blob must be an error, got {:?}", other.map(|b| b.map(|b| b.len()))),
    }
    // The way to repair: delete, then put from the source again.
    assert!(h.store.delete(&id).await.unwrap());
    assert_eq!(h.store.put(bytes.clone()).await.unwrap(), id);
    assert_eq!(h.store.get(&id).await.unwrap().unwrap(), bytes);
}

/// Several puts of the same bytes at once, with a reader polling meanwhile: all puts agree, the
/// reader sees either nothing or the whole blob, and one blob remains. 65 MiB spans two RADOS parts.
pub async fn concurrent_puts_of_the_same_bytes(h: &Harness) {
    let bytes = Arc::new(data(70, 65 * MIB));
    let want = sha256_hex(&bytes);
    let mut puts = Vec::new();
    for _ in 0..4 {
        let (store, bytes) = (Arc::clone(&h.store), Arc::clone(&bytes));
        puts.push(tokio::spawn(async move { store.put(bytes.to_vec()).await }));
    }
    let reader = {
        let (store, id) = (Arc::clone(&h.store), BlobId::parse(&want).unwrap());
        tokio::spawn(async move {
            let mut whole = 0;
            for _ in 0..30 {
                match store.get(&id).await {
                    Ok(None) => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
                    Ok(Some(b)) => {
                        assert_eq!(b.len(), 65 * MIB);
                        whole += 1;
                        if whole == 3 {
                            break;
                        }
                    }
                    Err(e) => panic!("a read during concurrent puts failed: {e:?}"),
                }
            }
        })
    };
    for put in puts {
        assert_eq!(put.await.unwrap().unwrap().as_str(), want);
    }
    reader.await.unwrap();
    let id = BlobId::parse(&want).unwrap();
    assert_eq!(h.store.list().await.unwrap(), vec![id.clone()]);
    assert_eq!(sha256_hex(&h.store.get(&id).await.unwrap().unwrap()), want);
}
