//! CPU accounting from `/proc`: what the jumps, and the whole pipeline, spent per transfer.
//!
//! Wall-clock throughput on a shared two-core machine swings with whatever else runs; CPU
//! seconds per GiB are steadier and say how much each path costs.

use std::time::Duration;

/// USER_HZ, fixed at 100 in the `/proc` ABI.
const TICKS: f64 = 100.0;

/// Cumulative CPU seconds at one moment.
#[derive(Clone, Copy, Debug, Default)]
pub struct Sample {
    /// This process: the Trellis jump (and the benchmark's own small bookkeeping).
    pub trellis_jump: f64,
    /// The OpenSSH jump daemon's reaped connection processes.
    pub openssh_jump: f64,
    /// Everything in the pipeline: this process, its reaped children (the `ssh` clients, `head`,
    /// the shell) and both daemons' reaped connection processes (the XDC's `sshd` included).
    pub total: f64,
}

impl std::ops::Sub for Sample {
    type Output = Sample;
    fn sub(self, rhs: Sample) -> Sample {
        Sample {
            trellis_jump: self.trellis_jump - rhs.trellis_jump,
            openssh_jump: self.openssh_jump - rhs.openssh_jump,
            total: self.total - rhs.total,
        }
    }
}

/// The daemons whose connection processes count.
pub struct Probe {
    pub xdc_sshd: u32,
    pub openssh_jump: u32,
}

impl Probe {
    /// Samples once every daemon has reaped its finished connections (up to two seconds).
    pub async fn sample(&self) -> Result<Sample, String> {
        for pid in [self.xdc_sshd, self.openssh_jump] {
            wait_for_no_children(pid).await;
        }
        let me = stat(std::process::id())?;
        let xdc = stat(self.xdc_sshd)?;
        let jump = stat(self.openssh_jump)?;
        Ok(Sample {
            trellis_jump: me.own,
            openssh_jump: jump.children,
            total: me.own + me.children + xdc.children + jump.children,
        })
    }
}

struct Stat {
    own: f64,
    children: f64,
}

async fn wait_for_no_children(pid: u32) {
    let children = format!("/proc/{pid}/task/{pid}/children");
    for _ in 0..200 {
        if std::fs::read_to_string(&children).map(|c| c.trim().is_empty()).unwrap_or(true) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn stat(pid: u32) -> Result<Stat, String> {
    let text =
        std::fs::read_to_string(format!("/proc/{pid}/stat")).map_err(|e| format!("/proc/{pid}/stat: {e}"))?;
    // The fields after the parenthesised command name (which may hold spaces) start at field 3.
    let rest = text.rsplit_once(')').map(|(_, rest)| rest).ok_or("malformed /proc stat")?;
    let fields: Vec<f64> = rest.split_whitespace().map(|f| f.parse().unwrap_or(0.0)).collect();
    // utime, stime, cutime, cstime are fields 14 to 17.
    let get = |field: usize| fields.get(field - 3).copied().unwrap_or(0.0) / TICKS;
    Ok(Stat { own: get(14) + get(15), children: get(16) + get(17) })
}
