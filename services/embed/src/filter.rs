//! Candidate hosts for a node profile: every constraint applied in turn, counting how many
//! hosts survive each, so a failure says which constraint emptied the list and what was left.

use trellis_api::xir;

use crate::NodeKind;
use crate::constraint::{Bound, bytes, rate};
use crate::request::{KindRequest, Profile};
use crate::state::{HostState, resolve_kind};
use crate::testbed::{Host, Testbed};

/// A constraint no candidate host satisfies.
#[derive(Debug, Clone)]
pub struct Failure {
    pub constraint: &'static str,
    /// Candidates before the constraint was applied.
    pub before: usize,
    /// "no host <what> (n candidates before the <constraint> constraint, 0 after)<extra>".
    pub message: String,
}

/// Host index, host, its state.
type Pred<'a> = Box<dyn Fn(usize, &Host, &HostState) -> bool + 'a>;
type Extra<'a> = Box<dyn Fn(&mut dyn Iterator<Item = (&Host, &HostState)>) -> String + 'a>;

/// Name, constraint, what a VM reserves, how to print an amount.
type Resource<'a> = (&'static str, Option<&'a Bound<u64>>, u64, fn(u64) -> String);

struct Step<'a> {
    name: &'static str,
    what: String,
    pred: Pred<'a>,
    /// Context for the failure message, from the hosts that were still candidates.
    extra: Option<Extra<'a>>,
}

/// Virtual NIC models (`Virtio`, `E1000`, `E1000E`) are what a VM's interface is, whatever the
/// host's port is.
fn is_virtual_model(model: i32) -> bool {
    model >= xir::NicModel::Virtio as i32
}

fn model_name(model: i32) -> String {
    xir::NicModel::try_from(model)
        .map(|m| m.as_str_name().to_string())
        .unwrap_or_else(|_| format!("model {model}"))
}

fn named(bound: &Bound<String>, noun: &str) -> String {
    if bound.wants_name() {
        format!("{noun} {:?}", bound.value)
    } else {
        format!("{noun} other than {:?}", bound.value)
    }
}

fn amount(bound: &Bound<u64>, unit: fn(u64) -> String) -> String {
    format!("{} {}", bound.op.symbol(), unit(bound.value))
}

fn count(n: u64) -> String {
    n.to_string()
}

/// Builds the steps for `profile` in the order they are applied.
fn steps<'a>(profile: &'a Profile, eligible: &'a dyn Fn(usize) -> bool) -> Vec<Step<'a>> {
    let mut steps: Vec<Step<'a>> = Vec::new();
    let kind_of = move |h: &Host, s: &HostState| resolve_kind(profile.kind, h, s);

    if let Some(f) = &profile.facility {
        steps.push(Step {
            name: "facility",
            what: format!("is in {}", named(f, "facility")),
            pred: Box::new(move |_, h, _| f.admits_name(&h.facility)),
            extra: None,
        });
    }
    if let Some(pin) = &profile.host {
        steps.push(Step {
            name: "host",
            what: if pin.wants_name() {
                format!("is named {:?}", pin.value)
            } else {
                format!("is not named {:?}", pin.value)
            },
            pred: Box::new(move |_, h, _| pin.admits_name(&h.name)),
            extra: None,
        });
    }
    steps.push(Step {
        name: "pool",
        what: "is both in the project's pool and active".into(),
        pred: Box::new(move |i, h, _| h.active && eligible(i)),
        extra: None,
    });
    let (kind_name, kind_what) = match profile.kind {
        KindRequest::BareMetal => ("metal", "can be allocated as bare metal"),
        KindRequest::VirtualMachine => ("virt", "can run virtual machines"),
        KindRequest::Either => ("kind", "can be allocated to experiments"),
    };
    steps.push(Step {
        name: kind_name,
        what: kind_what.into(),
        pred: Box::new(move |_, h, _| resolve_kind(profile.kind, h, &HostState::default()).is_some()),
        extra: None,
    });
    if let Some(a) = &profile.architecture {
        steps.push(Step {
            name: "architecture",
            what: format!("has {}", named(a, "architecture")),
            pred: Box::new(move |_, h, _| a.admits_name(&h.architecture)),
            extra: None,
        });
    }
    if let Some(p) = &profile.platform {
        steps.push(Step {
            name: "platform",
            what: format!("has {}", named(p, "platform")),
            pred: Box::new(
                move |_, h, _| {
                    if p.wants_name() { h.has_platform(&p.value) } else { !h.has_platform(&p.value) }
                },
            ),
            extra: None,
        });
    }
    if let Some(image) = &profile.image
        && image.wants_name()
    {
        steps.push(Step {
            name: "image",
            what: format!("can boot image {:?}", image.value),
            pred: Box::new(move |_, h, _| h.can_boot(&image.value)),
            extra: None,
        });
    }
    if profile.nics > 0 {
        let nics = profile.nics as usize;
        steps.push(Step {
            name: "nics",
            what: format!("has {nics} experiment ports for the node's {nics} interfaces"),
            pred: Box::new(move |_, h, s| {
                kind_of(h, s) != Some(NodeKind::BareMetal) || h.switched_ports() >= nics
            }),
            extra: Some(Box::new(|hosts| {
                format!(
                    "; the most any candidate has is {}",
                    hosts.map(|(h, _)| h.switched_ports()).max().unwrap_or(0)
                )
            })),
        });
    }
    for port in &profile.ports {
        if let Some(cap) = &port.capacity {
            steps.push(Step {
                name: "nic-capacity",
                what: format!("has an experiment port with capacity {}", amount(cap, rate)),
                pred: Box::new(move |_, h, _| {
                    h.ports.iter().any(|p| p.switch.is_some() && cap.admits(&p.capacity))
                }),
                extra: Some(Box::new(|hosts| {
                    let best = hosts.flat_map(|(h, _)| h.ports.iter().map(|p| p.capacity)).max().unwrap_or(0);
                    format!("; the fastest port is {}", rate(best))
                })),
            });
        }
        if let Some(model) = &port.model {
            steps.push(Step {
                name: "nic-model",
                what: format!(
                    "has an experiment port of model {} {}",
                    model.op.symbol(),
                    model_name(model.value)
                ),
                pred: Box::new(move |_, h, s| {
                    (is_virtual_model(model.value) && kind_of(h, s) == Some(NodeKind::VirtualMachine))
                        || h.ports.iter().any(|p| p.switch.is_some() && model.admits(&p.model))
                }),
                extra: None,
            });
        }
    }
    steps.push(Step {
        name: "free",
        what: "is free: every candidate is in use by other realizations".into(),
        pred: Box::new(move |_, h, s| match kind_of(h, s) {
            Some(NodeKind::BareMetal) => !s.busy,
            Some(NodeKind::VirtualMachine) => !s.exclusive,
            None => false,
        }),
        extra: None,
    });
    let (cores, memory, disk) = profile.vm_reservation();
    let metal = profile.kind == KindRequest::BareMetal;
    let resources: [Resource<'a>; 3] = [
        ("cores", profile.cores.as_ref(), cores, count),
        ("memory", profile.memory.as_ref(), memory, bytes),
        ("disk", profile.disk.as_ref(), disk, bytes),
    ];
    for (i, (name, bound, reserve, unit)) in resources.into_iter().enumerate() {
        let total = move |h: &Host| [u64::from(h.cores), h.memory, h.disk][i];
        let free = move |s: &HostState| [s.free_cores, s.free_memory, s.free_disk][i];
        if bound.is_none() && reserve == 0 {
            continue;
        }
        let noun = if name == "cores" { " cores" } else { " of memory" };
        let noun = if name == "disk" { " of disk" } else { noun };
        let what = match (metal, bound) {
            (true, Some(b)) => format!("has {}{noun}", amount(b, unit)),
            (true, None) => continue,
            (false, _) => format!("has {}{noun} free", unit(reserve)),
        };
        steps.push(Step {
            name,
            what,
            pred: Box::new(move |_, h, s| match kind_of(h, s) {
                Some(NodeKind::BareMetal) => bound.is_none_or(|b| b.admits(&total(h))),
                Some(NodeKind::VirtualMachine) => free(s) >= reserve,
                None => false,
            }),
            extra: Some(Box::new(move |hosts| {
                let largest =
                    hosts
                        .map(|(h, s)| {
                            if metal || kind_of(h, s) == Some(NodeKind::BareMetal) {
                                total(h)
                            } else {
                                free(s)
                            }
                        })
                        .max()
                        .unwrap_or(0);
                if metal {
                    format!("; the largest has {}", unit(largest))
                } else {
                    format!("; largest free is {}", unit(largest))
                }
            })),
        });
    }
    steps
}

/// The hosts that can take a node with `profile` now, in host order, or the first constraint
/// that leaves none.
pub fn candidates(
    testbed: &Testbed,
    states: &[HostState],
    eligible: &dyn Fn(usize) -> bool,
    profile: &Profile,
) -> Result<Vec<u32>, Failure> {
    let mut list: Vec<u32> = (0..testbed.hosts.len() as u32).collect();
    for step in steps(profile, eligible) {
        let check = |&h: &u32| (step.pred)(h as usize, &testbed.hosts[h as usize], &states[h as usize]);
        if !list.iter().any(check) {
            let extra = step.extra.as_ref().map_or(String::new(), |extra| {
                let mut it = list.iter().map(|&h| (&testbed.hosts[h as usize], &states[h as usize]));
                extra(&mut it)
            });
            return Err(Failure {
                constraint: step.name,
                before: list.len(),
                message: format!(
                    "no host {} ({} before the {} constraint, 0 after){extra}",
                    step.what,
                    match list.len() {
                        1 => "1 candidate".to_owned(),
                        n => format!("{n} candidates"),
                    },
                    step.name
                ),
            });
        }
        list.retain(check);
    }
    Ok(list)
}
