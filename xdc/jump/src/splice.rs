//! Copies bytes between a `direct-tcpip` channel and the TCP connection to its target.
//!
//! Rather than `channel.into_stream()` and `copy_bidirectional`, this moves russh's own
//! buffers: client data arrives as `Bytes` and is written to the target as is, and target data
//! is read in large chunks that russh slices into packets without copying. Each direction runs
//! concurrently, so a target that writes while we write to it cannot deadlock the splice.
//!
//! Half-closes are passed on: the client's EOF shuts down the target's write side, and the
//! target's EOF becomes a channel EOF. Once both happened, or either side closed or failed,
//! the channel is closed.

use std::sync::atomic::{AtomicBool, Ordering};

use bytes::BytesMut;
use russh::server::Msg;
use russh::{Channel, ChannelMsg};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::handler::ConnState;
use crate::limits::Stats;

/// How much to read from the target at once: several packets' worth, so one read and one
/// wake-up feed many packets, which russh then writes to the client together.
const READ_CHUNK: usize = 256 * 1024;

/// The buffer chunks are cut from. Once every chunk cut from it has been sent, `reserve`
/// reuses it in place; a buffer per chunk would come from a fresh `mmap` (it is above glibc's
/// threshold) and pay page faults for every chunk.
const READ_BUFFER: usize = 4 * READ_CHUNK;

/// Runs until the channel is done; returns the bytes copied to the target and to the client.
/// The byte counters in `stats` grow as data moves, so they are current for long sessions.
pub(crate) async fn run(
    channel: Channel<Msg>,
    tcp: TcpStream,
    conn: &ConnState,
    stats: &Stats,
) -> (u64, u64) {
    let (mut from_client, to_client) = channel.split();
    let (mut from_target, mut to_target) = tcp.into_split();
    // Cancelled when the channel is over in both directions, or the connection ends.
    let done = conn.cancel.child_token();
    let client_eof = AtomicBool::new(false);
    let target_eof = AtomicBool::new(false);

    // Both futures run on this one task, so the flag checks below cannot interleave.
    let up = async {
        let mut copied = 0u64;
        loop {
            let msg = tokio::select! {
                msg = from_client.wait() => msg,
                () = done.cancelled() => break,
            };
            match msg {
                Some(ChannelMsg::Data { data }) => {
                    conn.touch();
                    if to_target.write_all(&data).await.is_err() {
                        break;
                    }
                    copied += data.len() as u64;
                    stats.bytes_to_targets.fetch_add(data.len() as u64, Ordering::Relaxed);
                }
                Some(ChannelMsg::Eof) => {
                    let _ = to_target.shutdown().await;
                    client_eof.store(true, Ordering::SeqCst);
                    if target_eof.load(Ordering::SeqCst) {
                        break;
                    }
                }
                Some(ChannelMsg::Close) | None => break,
                Some(_) => {}
            }
        }
        done.cancel();
        copied
    };

    let down = async {
        let mut copied = 0u64;
        let mut buf = BytesMut::with_capacity(READ_BUFFER);
        loop {
            buf.reserve(READ_CHUNK);
            let read = tokio::select! {
                read = from_target.read_buf(&mut buf) => read,
                () = done.cancelled() => return copied,
            };
            match read {
                Ok(n) if n > 0 => {
                    conn.touch();
                    if to_client.data_bytes(buf.split().freeze()).await.is_err() {
                        done.cancel();
                        return copied;
                    }
                    copied += n as u64;
                    stats.bytes_to_clients.fetch_add(n as u64, Ordering::Relaxed);
                }
                // EOF, or a reset: either way the target sends no more.
                _ => break,
            }
        }
        let _ = to_client.eof().await;
        target_eof.store(true, Ordering::SeqCst);
        if client_eof.load(Ordering::SeqCst) {
            done.cancel();
        }
        copied
    };

    let (up, down) = tokio::join!(up, down);
    let _ = to_client.close().await;
    (up, down)
}
