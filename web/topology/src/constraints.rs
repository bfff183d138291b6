//! Constraint messages of nodes and links as readable lines (`cores >= 4`, `latency = 10ms`).
//!
//! Units follow mergexp: latency in nanoseconds, link and port capacity in bits per second
//! (decimal prefixes), memory and disk sizes in bytes (mergexp's `gb()` is 2^30).

use trellis_api::xir;

/// The comparison an `Operator` value stands for.
///
/// mergexp leaves the operator unset on link properties, which always act as `==`, so an unset
/// operator reads as `=`; values outside the enum read as `?`.
pub fn operator(op: i32) -> &'static str {
    match xir::Operator::try_from(op) {
        Ok(xir::Operator::OpUndefined | xir::Operator::Eq) => "=",
        Ok(xir::Operator::Lt) => "<",
        Ok(xir::Operator::Le) => "<=",
        Ok(xir::Operator::Gt) => ">",
        Ok(xir::Operator::Ge) => ">=",
        Ok(xir::Operator::Ne) => "!=",
        Err(_) => "?",
    }
}

/// The constraints and properties set on a node, one readable line each.
pub fn node_constraints(node: &xir::Node) -> Vec<String> {
    let mut out = Lines(Vec::new());
    out.string("image", &node.image);
    out.bool("metal", &node.metal);
    out.bool("virt", &node.virt);
    out.string("platform", &node.platform);
    out.string("host", &node.host);
    out.string("facility", &node.facility);
    out.enumerated("architecture", &node.architecture, |c| (c.op, isa(c.value)));
    if let Some(p) = &node.proc {
        out.count("cores", &p.cores);
        out.count("threads", &p.threads);
        out.count("sockets", &p.sockets);
        out.enumerated("isa", &p.isa, |c| (c.op, isa(c.value)));
        out.string("cpu family", &p.family);
        out.string("microarchitecture", &p.microarchitecture);
        out.plain("base frequency", &p.base_frequency);
        out.bytes("l2", &p.l2);
        out.count("tdp", &p.tdp);
        out.bool("hyperthreaded", &p.hyperthreaded);
        out.set("cpu flags", &p.cpu_flags);
        out.fpga("fpga", &p.fpga);
    }
    if let Some(m) = &node.memory {
        out.bytes("memory", &m.capacity);
        out.enumerated("memory type", &m.r#type, |c| {
            (c.op, xir::MemoryType::try_from(c.value).map(|t| t.as_str_name()).ok())
        });
        out.plain("memory frequency", &m.frequency);
        out.plain("memory modules", &m.modules);
    }
    for (i, disk) in node.disks.iter().enumerate() {
        out.disk(&format!("disk {i}"), disk);
    }
    if let Some(rootfs) = &node.rootfs {
        out.disk("rootfs", rootfs);
    }
    if let Some(g) = &node.gpu {
        out.bool("gpu", &g.present);
        out.count("gpu count", &g.count);
        out.string("gpu vendor", &g.vendor);
        out.string("gpu model", &g.model);
        out.string("gpu architecture", &g.architecture);
        out.count("gpu cores", &g.cores);
        out.count("gpu tensor cores", &g.tensor_cores);
        out.bytes("gpu memory", &g.memory);
        out.bool("gpu unified memory", &g.unified);
    }
    out.bool("tpm", &node.tpm);
    if let Some(w) = &node.max_watts {
        out.0.push(format!("max watts {} {}", operator(w.op), decimal(f64::from(w.value))));
    }
    out.set("tags", &node.tags);
    for socket in &node.sockets {
        if let Some(port) = &socket.port {
            out.port(&format!("socket {}", socket.index), port);
        }
    }
    out.properties(&node.properties);
    out.0
}

/// The constraints and properties set on a link or LAN, one readable line each.
pub fn link_constraints(link: &xir::Link) -> Vec<String> {
    let mut out = Lines(Vec::new());
    if let Some(c) = &link.latency {
        out.0.push(format!("latency {} {}", operator(c.op), duration_ns(c.value)));
    }
    if let Some(c) = &link.capacity {
        out.0.push(format!("capacity {} {}", operator(c.op), bits_per_second(c.value)));
    }
    if let Some(c) = &link.loss {
        out.0.push(format!("loss {} {}%", operator(c.op), decimal(f64::from(c.value) * 100.0)));
    }
    out.enumerated("kind", &link.kind, |c| {
        (c.op, xir::LinkKind::try_from(c.value).map(|k| k.as_str_name()).ok())
    });
    out.plain("layer", &link.layer);
    for endpoint in &link.endpoints {
        if let (Some(socket), Some(spec)) = (&endpoint.socket, &endpoint.connector) {
            let what = format!("{}.{} connector", socket.element, socket.index);
            out.enumerated(&what, &spec.kind, |c| {
                (c.op, xir::ConnectorKind::try_from(c.value).map(|k| k.as_str_name()).ok())
            });
            if spec.capacity > 0 {
                out.0.push(format!("{what} capacity = {}", bits_per_second(spec.capacity)));
            }
        }
    }
    out.properties(&link.properties);
    out.0
}

fn isa(value: i32) -> Option<&'static str> {
    xir::Isa::try_from(value).map(|i| i.as_str_name()).ok()
}

struct Lines(Vec<String>);

impl Lines {
    fn string(&mut self, what: &str, c: &Option<xir::StringConstraint>) {
        if let Some(c) = c {
            self.0.push(format!("{what} {} {}", operator(c.op), c.value));
        }
    }

    fn bool(&mut self, what: &str, c: &Option<xir::BoolConstraint>) {
        if let Some(c) = c {
            self.0.push(format!("{what} {} {}", operator(c.op), c.value));
        }
    }

    fn count(&mut self, what: &str, c: &Option<xir::Uint32Constraint>) {
        if let Some(c) = c {
            self.0.push(format!("{what} {} {}", operator(c.op), c.value));
        }
    }

    fn plain(&mut self, what: &str, c: &Option<xir::Uint64Constraint>) {
        if let Some(c) = c {
            self.0.push(format!("{what} {} {}", operator(c.op), c.value));
        }
    }

    fn bytes(&mut self, what: &str, c: &Option<xir::Uint64Constraint>) {
        if let Some(c) = c {
            self.0.push(format!("{what} {} {}", operator(c.op), bytes(c.value)));
        }
    }

    fn set(&mut self, what: &str, c: &Option<xir::SetConstraint>) {
        if let Some(c) = c {
            self.0.push(format!("{what} {} {{{}}}", operator(c.op), c.value.join(", ")));
        }
    }

    /// An enum-valued constraint; `parts` gives its operator and the value's name, if known.
    fn enumerated<C>(
        &mut self,
        what: &str,
        c: &Option<C>,
        parts: impl Fn(&C) -> (i32, Option<&'static str>),
    ) {
        if let Some(c) = c {
            let (op, name) = parts(c);
            self.0.push(format!("{what} {} {}", operator(op), name.unwrap_or("(unknown)")));
        }
    }

    fn disk(&mut self, what: &str, d: &xir::DiskSpec) {
        self.bytes(what, &d.capacity);
        self.enumerated(&format!("{what} form factor"), &d.form_factor, |c| {
            (c.op, xir::DiskFormFactor::try_from(c.value).map(|k| k.as_str_name()).ok())
        });
        self.enumerated(&format!("{what} interface"), &d.disk_interface, |c| {
            (c.op, xir::DiskInterface::try_from(c.value).map(|k| k.as_str_name()).ok())
        });
    }

    fn port(&mut self, what: &str, p: &xir::PortSpec) {
        if let Some(c) = &p.capacity {
            self.0.push(format!("{what} capacity {} {}", operator(c.op), bits_per_second(c.value)));
        }
        self.enumerated(&format!("{what} nic"), &p.model, |c| {
            (c.op, xir::NicModel::try_from(c.value).map(|k| k.as_str_name()).ok())
        });
        self.enumerated(&format!("{what} form factor"), &p.form_factor, |c| {
            (c.op, xir::ConnectorKind::try_from(c.value).map(|k| k.as_str_name()).ok())
        });
        self.plain(&format!("{what} queues"), &p.queues);
        self.bool(&format!("{what} dpdk"), &p.dpdk);
        self.bool(&format!("{what} sr-iov vf"), &p.sriov_vf);
        self.fpga(&format!("{what} fpga"), &p.fpga);
    }

    fn fpga(&mut self, what: &str, f: &Option<xir::FpgaSpec>) {
        let Some(f) = f else { return };
        self.bool(what, &f.present);
        self.plain(&format!("{what} luts"), &f.lut_count);
        self.plain(&format!("{what} dsps"), &f.dsp_count);
        self.bytes(&format!("{what} bram"), &f.brambytes);
        self.bytes(&format!("{what} uram"), &f.urambytes);
        self.bytes(&format!("{what} hbm"), &f.hbmbytes);
        self.plain(&format!("{what} transceivers"), &f.transceiver_count);
        self.plain(&format!("{what} transceiver rate"), &f.transceiver_max_rate);
        self.bool(&format!("{what} ai engine"), &f.aiengine_support);
        self.bool(&format!("{what} cxl"), &f.cxl_support);
    }

    /// Properties are a map: sorted so the same model always gives the same text.
    fn properties(&mut self, p: &Option<xir::Properties>) {
        let Some(p) = p else { return };
        let mut keys: Vec<&String> = p.keyvalues.keys().collect();
        keys.sort();
        for key in keys {
            let values = p.keyvalues.get(key).map(|v| v.values.join(", ")).unwrap_or_default();
            self.0.push(format!("{key}: {values}"));
        }
    }
}

/// `value` with at most three decimals and no trailing zeros (`1`, `0.25`, `2.5`).
pub fn decimal(value: f64) -> String {
    let text = format!("{value:.3}");
    let text = if text.contains('.') { text.trim_end_matches('0').trim_end_matches('.') } else { &text };
    if text == "-0" { "0".to_string() } else { text.to_string() }
}

fn scaled(value: u64, units: &[(u64, &str)], base: &str) -> String {
    for &(size, unit) in units {
        if value >= size {
            return format!("{}{unit}", decimal(value as f64 / size as f64));
        }
    }
    format!("{value}{base}")
}

/// A duration in nanoseconds (`10ms`, `250.007µs`).
pub fn duration_ns(ns: u64) -> String {
    scaled(ns, &[(1_000_000_000, "s"), (1_000_000, "ms"), (1_000, "µs")], "ns")
}

/// A rate in bits per second (`1Gbps`, `512kbps`).
pub fn bits_per_second(bps: u64) -> String {
    scaled(
        bps,
        &[(1_000_000_000_000, "Tbps"), (1_000_000_000, "Gbps"), (1_000_000, "Mbps"), (1_000, "kbps")],
        "bps",
    )
}

/// A size in bytes, with mergexp's binary units (`8GB` is 8 × 2^30).
pub fn bytes(n: u64) -> String {
    scaled(n, &[(1 << 40, "TB"), (1 << 30, "GB"), (1 << 20, "MB"), (1 << 10, "KB")], "B")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        assert_eq!(duration_ns(10_000_000), "10ms");
        assert_eq!(duration_ns(250_007), "250.007µs");
        assert_eq!(duration_ns(1_000_000_000), "1s");
        assert_eq!(duration_ns(7), "7ns");
        assert_eq!(bits_per_second(1_000_000_000), "1Gbps");
        assert_eq!(bits_per_second(512_000), "512kbps");
        assert_eq!(bits_per_second(100_000_000), "100Mbps");
        assert_eq!(bytes(8 << 30), "8GB");
        assert_eq!(bytes(512 << 20), "512MB");
        assert_eq!(bytes(3 << 29), "1.5GB");
        assert_eq!(decimal(f64::from(0.01_f32) * 100.0), "1");
        assert_eq!(decimal(25.0), "25");
        assert_eq!(operator(xir::Operator::Ge as i32), ">=");
        assert_eq!(operator(xir::Operator::Ne as i32), "!=");
        assert_eq!(operator(99), "?");
    }
}
