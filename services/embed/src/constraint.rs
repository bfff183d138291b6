//! XIR constraint operators turned into comparisons the engine can apply to hosts.

use trellis_api::xir;

/// A comparison operator. XIR's `Op_Undefined` is read as `==`, which is what a constraint
/// written without an operator means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Op {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
}

impl Op {
    pub fn from_xir(op: i32) -> Op {
        match xir::Operator::try_from(op).unwrap_or(xir::Operator::OpUndefined) {
            xir::Operator::Lt => Op::Lt,
            xir::Operator::Le => Op::Le,
            xir::Operator::Gt => Op::Gt,
            xir::Operator::Ge => Op::Ge,
            xir::Operator::Ne => Op::Ne,
            xir::Operator::Eq | xir::Operator::OpUndefined => Op::Eq,
        }
    }

    pub fn symbol(self) -> &'static str {
        match self {
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Eq => "==",
            Op::Ne => "!=",
        }
    }
}

/// `<op> <value>`: a constraint on one host attribute.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Bound<T> {
    pub op: Op,
    pub value: T,
}

impl<T: PartialOrd> Bound<T> {
    /// Whether a host attribute of `actual` satisfies the constraint.
    pub fn admits(&self, actual: &T) -> bool {
        match self.op {
            Op::Lt => *actual < self.value,
            Op::Le => *actual <= self.value,
            Op::Gt => *actual > self.value,
            Op::Ge => *actual >= self.value,
            Op::Eq => *actual == self.value,
            Op::Ne => *actual != self.value,
        }
    }
}

impl Bound<String> {
    /// Names have no order: `==`, `>=` and `<=` ask for that name, `!=`, `<` and `>` for any
    /// other. Comparison ignores ASCII case, as host and platform names are case-insensitive.
    pub fn admits_name(&self, actual: &str) -> bool {
        let same = actual.eq_ignore_ascii_case(&self.value);
        match self.op {
            Op::Eq | Op::Ge | Op::Le => same,
            Op::Ne | Op::Lt | Op::Gt => !same,
        }
    }

    /// Whether the constraint asks for exactly one name (rather than excluding one).
    pub fn wants_name(&self) -> bool {
        matches!(self.op, Op::Eq | Op::Ge | Op::Le)
    }
}

impl std::fmt::Display for Bound<u32> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.op.symbol(), self.value)
    }
}

impl std::fmt::Display for Bound<String> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {:?}", self.op.symbol(), self.value)
    }
}

/// How much of an amount a VM reserves under a constraint, given the amount it gets when
/// unconstrained: `==`/`>=` reserve the value, `>` one more, `<=`/`<` at most the default,
/// `!=` the default unless that is the excluded value.
pub fn reserve(bound: Option<&Bound<u64>>, default: u64) -> u64 {
    let Some(bound) = bound else { return default };
    match bound.op {
        Op::Eq | Op::Ge => bound.value,
        Op::Gt => bound.value.saturating_add(1),
        Op::Le => default.min(bound.value),
        Op::Lt => default.min(bound.value.saturating_sub(1)),
        Op::Ne if default == bound.value => default.saturating_add(1),
        Op::Ne => default,
    }
}

/// Bytes as a short human figure ("16 GiB").
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if value.fract() == 0.0 {
        format!("{value:.0} {}", UNITS[unit])
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// Bits per second as a short human figure ("10 Gb/s").
pub fn rate(bps: u64) -> String {
    const UNITS: [&str; 5] = ["b/s", "kb/s", "Mb/s", "Gb/s", "Tb/s"];
    let mut value = bps as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    if value.fract() == 0.0 {
        format!("{value:.0} {}", UNITS[unit])
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operators_compare_host_values() {
        let ge = Bound { op: Op::Ge, value: 8u64 };
        assert!(ge.admits(&8) && ge.admits(&9) && !ge.admits(&7));
        let lt = Bound { op: Op::Lt, value: 8u64 };
        assert!(lt.admits(&7) && !lt.admits(&8));
        let ne = Bound { op: Op::Ne, value: 8u64 };
        assert!(ne.admits(&7) && !ne.admits(&8));
        assert_eq!(Op::from_xir(0), Op::Eq);
    }

    #[test]
    fn reservations_follow_the_operator() {
        let b = |op, value| Some(Bound { op, value });
        assert_eq!(reserve(None, 1), 1);
        assert_eq!(reserve(b(Op::Ge, 4).as_ref(), 1), 4);
        assert_eq!(reserve(b(Op::Gt, 4).as_ref(), 1), 5);
        assert_eq!(reserve(b(Op::Le, 4).as_ref(), 8), 4);
        assert_eq!(reserve(b(Op::Le, 4).as_ref(), 1), 1);
        assert_eq!(reserve(b(Op::Ne, 1).as_ref(), 1), 2);
    }

    #[test]
    fn names_ignore_case_and_have_no_order() {
        let eq = Bound { op: Op::Eq, value: "X86_64".to_string() };
        assert!(eq.admits_name("x86_64"));
        let ne = Bound { op: Op::Ne, value: "n1".to_string() };
        assert!(ne.admits_name("n2") && !ne.admits_name("N1"));
        assert_eq!(bytes(16 << 30), "16 GiB");
        assert_eq!(rate(10_000_000_000), "10 Gb/s");
    }
}
