//! Link latency and loss without `netem` (this kernel has none): in the switch namespace,
//! `br_netfilter` hands every IP frame entering a delayed link's bridge to an iptables
//! NFQUEUE rule (one queue per bridge port), and a "delay line" thread here holds each
//! frame's verdict for the link's latency, dropping a fraction for loss. The frames stay in
//! the kernel; only their ids travel.
//!
//! Why there and not on the nodes: a packet held on its sender's egress still counts against
//! the sending socket (TCP small queues, UDP send buffers), which throttled TCP to ~5 Mb/s;
//! held on the receiver's ingress it already carries its receive timestamp, so `ping` showed
//! half the RTT. Crossing into the switch namespace frees the packet from its socket, and
//! crossing out again clears the timestamp.
//!
//! The rules use `--queue-bypass`: while no delay line listens (the agent restarting),
//! traffic flows undelayed instead of stopping.

use std::collections::VecDeque;
use std::io;
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags, Timespec, poll};
use rustix::io::Errno;
use rustix::net::netlink::{self, SocketAddrNetlink};
use rustix::net::{AddressFamily, RecvFlags, SendFlags, SocketFlags, SocketType};

use crate::netns;

// From <linux/netfilter/nfnetlink_queue.h> and <linux/netlink.h>.
const NFNL_SUBSYS_QUEUE: u16 = 3;
const NFQNL_MSG_PACKET: u16 = 0;
const NFQNL_MSG_VERDICT: u16 = 1;
const NFQNL_MSG_CONFIG: u16 = 2;
const NFQNL_MSG_VERDICT_BATCH: u16 = 3;
const NFQA_PACKET_HDR: u16 = 1;
const NFQA_VERDICT_HDR: u16 = 2;
const NFQA_CFG_CMD: u16 = 1;
const NFQA_CFG_PARAMS: u16 = 2;
const NFQA_CFG_QUEUE_MAXLEN: u16 = 3;
const NFQA_CFG_MASK: u16 = 4;
const NFQA_CFG_FLAGS: u16 = 5;
const NFQNL_CFG_CMD_BIND: u8 = 1;
const NFQNL_COPY_META: u8 = 1;
const NFQA_CFG_F_GSO: u32 = 4;
const NF_DROP: u32 = 0;
const NF_ACCEPT: u32 = 1;
const NLMSG_ERROR: u16 = 2;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_ACK: u16 = 4;
const NLMSG_HDRLEN: usize = 16;

/// Packets a queue may hold before the kernel drops new ones (like netem's `limit`).
const QUEUE_MAXLEN: u32 = 20_000;
/// How often the thread looks at its stop flag when no packet is due.
const IDLE_WAKEUP: Duration = Duration::from_millis(20);
/// Receives per turn before due packets are released again, so a flood of arrivals cannot
/// hold back departures.
const RECEIVES_PER_TURN: usize = 64;

/// One delayed interface: its queue number and what to do to its packets.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct QueueSpec {
    pub num: u16,
    pub delay: Duration,
    /// Fraction of packets dropped, 0..1.
    pub loss: f64,
}

/// A running delay line for one node; stops (releasing every held packet) when dropped.
pub(crate) struct DelayLine {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    queues: Vec<QueueSpec>,
}

impl DelayLine {
    /// Starts serving `queues` inside namespace `netns`; returns once the queues are bound.
    pub fn start(netns: &str, queues: Vec<QueueSpec>) -> io::Result<DelayLine> {
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let thread = {
            let (netns, queues, stop) = (netns.to_owned(), queues.clone(), stop.clone());
            std::thread::Builder::new().name(format!("delay-{netns}")).spawn(move || {
                match open(&netns, &queues) {
                    Ok(socket) => {
                        let _ = ready_tx.send(Ok(()));
                        serve(&socket, &queues, &stop);
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                    }
                }
            })?
        };
        let mut line = DelayLine { stop, thread: Some(thread), queues };
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(line),
            Ok(Err(e)) => {
                line.stop_and_join();
                Err(io::Error::new(e.kind(), format!("delay line in {netns}: {e}")))
            }
            Err(_) => Err(io::Error::other(format!("the delay line thread for {netns} died"))),
        }
    }

    pub fn queues(&self) -> &[QueueSpec] {
        &self.queues
    }

    fn stop_and_join(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for DelayLine {
    fn drop(&mut self) {
        // Joining makes the queue numbers free again before a new line binds them.
        self.stop_and_join();
    }
}

/// A netlink message: header, nfgenmsg (family, version, big-endian resource id), attributes.
fn message(kind: u16, flags: u16, queue: u16, attrs: &[(u16, &[u8])]) -> Vec<u8> {
    let mut buf = vec![0u8; NLMSG_HDRLEN];
    buf[4..6].copy_from_slice(&((NFNL_SUBSYS_QUEUE << 8) | kind).to_ne_bytes());
    buf[6..8].copy_from_slice(&(NLM_F_REQUEST | flags).to_ne_bytes());
    buf.extend_from_slice(&[0, 0]); // AF_UNSPEC, NFNETLINK_V0
    buf.extend_from_slice(&queue.to_be_bytes());
    for (kind, payload) in attrs {
        let len = u16::try_from(4 + payload.len()).unwrap_or(u16::MAX);
        buf.extend_from_slice(&len.to_ne_bytes());
        buf.extend_from_slice(&kind.to_ne_bytes());
        buf.extend_from_slice(payload);
        buf.resize(buf.len().next_multiple_of(4), 0);
    }
    let total = u32::try_from(buf.len()).unwrap_or(u32::MAX);
    buf[0..4].copy_from_slice(&total.to_ne_bytes());
    buf
}

/// Sends a configuration message and waits for the kernel's acknowledgement.
fn configure(socket: &OwnedFd, queue: u16, attrs: &[(u16, &[u8])]) -> io::Result<()> {
    rustix::net::send(socket, &message(NFQNL_MSG_CONFIG, NLM_F_ACK, queue, attrs), SendFlags::empty())?;
    let mut buf = vec![0u8; 8192];
    loop {
        let (_, len) = rustix::net::recv(socket, &mut buf[..], RecvFlags::empty())?;
        for (kind, body) in messages(&buf[..len.min(buf.len())]) {
            if kind == NLMSG_ERROR && body.len() >= 4 {
                let code = i32::from_ne_bytes([body[0], body[1], body[2], body[3]]);
                return if code == 0 { Ok(()) } else { Err(io::Error::from_raw_os_error(-code)) };
            }
        }
    }
}

/// Splits a receive buffer into (message type, payload after the netlink header).
fn messages(mut buf: &[u8]) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    while buf.len() >= NLMSG_HDRLEN {
        let len = u32::from_ne_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
        if len < NLMSG_HDRLEN || len > buf.len() {
            break;
        }
        let kind = u16::from_ne_bytes([buf[4], buf[5]]);
        out.push((kind, &buf[NLMSG_HDRLEN..len]));
        buf = &buf[len.next_multiple_of(4).min(buf.len())..];
    }
    out
}

/// The queue number and packet id of a queued-packet message, if it is one.
fn packet_id(kind: u16, body: &[u8]) -> Option<(u16, u32)> {
    if kind != (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET || body.len() < 4 {
        return None;
    }
    let queue = u16::from_be_bytes([body[2], body[3]]);
    let mut attrs = &body[4..];
    while attrs.len() >= 4 {
        let len = u16::from_ne_bytes([attrs[0], attrs[1]]) as usize;
        let kind = u16::from_ne_bytes([attrs[2], attrs[3]]) & 0x3fff;
        if len < 4 || len > attrs.len() {
            return None;
        }
        if kind == NFQA_PACKET_HDR && len >= 8 {
            return Some((queue, u32::from_be_bytes([attrs[4], attrs[5], attrs[6], attrs[7]])));
        }
        attrs = &attrs[len.next_multiple_of(4).min(attrs.len())..];
    }
    None
}

fn verdict(socket: &OwnedFd, kind: u16, queue: u16, verdict: u32, id: u32) {
    let mut hdr = [0u8; 8];
    hdr[..4].copy_from_slice(&verdict.to_be_bytes());
    hdr[4..].copy_from_slice(&id.to_be_bytes());
    // A lost verdict is not fatal: the next batch verdict covers every lower id.
    let _ =
        rustix::net::send(socket, &message(kind, 0, queue, &[(NFQA_VERDICT_HDR, &hdr)]), SendFlags::empty());
}

fn open(netns: &str, queues: &[QueueSpec]) -> io::Result<OwnedFd> {
    netns::enter(netns)?;
    let socket = rustix::net::socket_with(
        AddressFamily::NETLINK,
        SocketType::RAW,
        SocketFlags::CLOEXEC,
        Some(netlink::NETFILTER),
    )?;
    rustix::net::bind(&socket, &SocketAddrNetlink::new(0, 0))?;
    if rustix::net::sockopt::set_socket_recv_buffer_size_force(&socket, 8 << 20).is_err() {
        rustix::net::sockopt::set_socket_recv_buffer_size(&socket, 8 << 20)?;
    }
    for q in queues {
        // A previous line for the same node may still be letting go of the queue.
        let deadline = Instant::now() + Duration::from_secs(3);
        loop {
            match configure(&socket, q.num, &[(NFQA_CFG_CMD, &[NFQNL_CFG_CMD_BIND, 0, 0, 0])]) {
                Err(e)
                    if e.raw_os_error() == Some(Errno::BUSY.raw_os_error()) && Instant::now() < deadline =>
                {
                    std::thread::sleep(Duration::from_millis(20));
                }
                other => break other?,
            }
        }
        let mut params = [0u8; 5];
        params[4] = NFQNL_COPY_META;
        configure(&socket, q.num, &[(NFQA_CFG_PARAMS, &params)])?;
        configure(&socket, q.num, &[(NFQA_CFG_QUEUE_MAXLEN, &QUEUE_MAXLEN.to_be_bytes())])?;
        // Without loss, whole GSO packets may wait in the queue (fewer messages); with loss
        // the kernel segments them so loss applies per wire packet.
        let flags: u32 = if q.loss > 0.0 { 0 } else { NFQA_CFG_F_GSO };
        configure(
            &socket,
            q.num,
            &[(NFQA_CFG_FLAGS, &flags.to_be_bytes()), (NFQA_CFG_MASK, &NFQA_CFG_F_GSO.to_be_bytes())],
        )?;
    }
    Ok(socket)
}

/// Packets held for one queue, oldest first; a constant delay keeps deadlines in id order,
/// so one batch verdict releases every due packet.
struct Held {
    spec: QueueSpec,
    packets: VecDeque<(u32, Instant)>,
    last_id: Option<u32>,
}

fn serve(socket: &OwnedFd, queues: &[QueueSpec], stop: &AtomicBool) {
    let mut held: Vec<Held> =
        queues.iter().map(|q| Held { spec: q.clone(), packets: VecDeque::new(), last_id: None }).collect();
    let mut buf = vec![0u8; 1 << 16];
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        for h in &mut held {
            let mut release = None;
            while let Some(&(id, due)) = h.packets.front() {
                if due > now {
                    break;
                }
                release = Some(id);
                h.packets.pop_front();
            }
            if let Some(id) = release {
                verdict(socket, NFQNL_MSG_VERDICT_BATCH, h.spec.num, NF_ACCEPT, id);
            }
        }
        let next_due = held.iter().filter_map(|h| h.packets.front().map(|&(_, due)| due)).min();
        let wait = next_due.map_or(IDLE_WAKEUP, |due| due.saturating_duration_since(now).min(IDLE_WAKEUP));
        let timeout = Timespec { tv_sec: 0, tv_nsec: i64::from(wait.subsec_nanos()) };
        let mut fds = [PollFd::new(socket, PollFlags::IN)];
        match poll(&mut fds, Some(&timeout)) {
            Ok(0) | Err(Errno::INTR) => continue,
            Ok(_) => {}
            Err(_) => break,
        }
        for _ in 0..RECEIVES_PER_TURN {
            let len = match rustix::net::recv(socket, &mut buf[..], RecvFlags::DONTWAIT) {
                Ok((_, len)) => len.min(buf.len()),
                // Overrun: some packet messages were lost; later batch verdicts release them.
                Err(Errno::NOBUFS) | Err(Errno::INTR) => continue,
                Err(_) => break,
            };
            let arrived = Instant::now();
            for (kind, body) in messages(&buf[..len]) {
                let Some((queue, id)) = packet_id(kind, body) else { continue };
                let Some(h) = held.iter_mut().find(|h| h.spec.num == queue) else { continue };
                h.last_id = Some(id);
                if h.spec.loss > 0.0 && rand::random::<f64>() < h.spec.loss {
                    verdict(socket, NFQNL_MSG_VERDICT, queue, NF_DROP, id);
                } else {
                    h.packets.push_back((id, arrived + h.spec.delay));
                }
            }
        }
    }
    // Let go of everything still held rather than leave it to the kernel's flush (a drop).
    for h in &held {
        if let Some(id) = h.last_id {
            verdict(socket, NFQNL_MSG_VERDICT_BATCH, h.spec.num, NF_ACCEPT, id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_through_the_parser() {
        // nfqnl_msg_packet_hdr: be32 id, be16 hw protocol, u8 hook.
        let hdr = [0, 0, 1, 2, 0x08, 0x00, 3];
        let mut buf = message(NFQNL_MSG_PACKET, 0, 7, &[(9, &[1, 2, 3]), (NFQA_PACKET_HDR, &hdr)]);
        buf.extend(message(NFQNL_MSG_CONFIG, 0, 9, &[(1, &[1, 0, 0, 0])]));
        let parsed = messages(&buf);
        assert_eq!(parsed.len(), 2);
        assert_eq!(packet_id(parsed[0].0, parsed[0].1), Some((7, 0x0102)));
        assert_eq!(packet_id(parsed[1].0, parsed[1].1), None, "not a packet message");
    }
}
