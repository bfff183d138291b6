//! What the agent reports: per node and link a state, a message for people, and since when.

use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use trellis_facility_api::v1::{LinkStatus, NodeStatus, State, StatusResponse};

#[derive(Debug, Clone)]
struct Entry {
    name: String,
    state: State,
    message: String,
    since: i64,
}

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// How bad a state is, for the worst-child summary.
fn severity(state: State) -> u8 {
    match state {
        State::Failed => 4,
        State::Processing => 3,
        State::Pending => 2,
        State::Unspecified => 1,
        State::Ready | State::Deleted => 0,
    }
}

#[derive(Debug, Default)]
struct Table {
    nodes: Vec<Entry>,
    links: Vec<Entry>,
}

/// The states of one materialization's nodes and links, in spec order.
#[derive(Debug, Default)]
pub(crate) struct StatusTable {
    inner: Mutex<Table>,
}

fn set(entries: &mut Vec<Entry>, name: &str, state: State, message: &str) {
    match entries.iter_mut().find(|e| e.name == name) {
        Some(e) => {
            if e.state != state {
                e.since = now();
            }
            e.state = state;
            e.message = message.to_owned();
        }
        None => {
            entries.push(Entry { name: name.to_owned(), state, message: message.to_owned(), since: now() })
        }
    }
}

impl StatusTable {
    fn table(&self) -> std::sync::MutexGuard<'_, Table> {
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Keeps exactly these nodes and links, in this order; new ones start PENDING.
    pub fn reshape(&self, nodes: &[String], links: &[String]) {
        let mut t = self.table();
        let keep = |old: &[Entry], names: &[String]| -> Vec<Entry> {
            names
                .iter()
                .map(|n| {
                    old.iter().find(|e| &e.name == n).cloned().unwrap_or_else(|| Entry {
                        name: n.clone(),
                        state: State::Pending,
                        message: "waiting to be materialized".into(),
                        since: now(),
                    })
                })
                .collect()
        };
        t.nodes = keep(&t.nodes, nodes);
        t.links = keep(&t.links, links);
    }

    pub fn set_node(&self, name: &str, state: State, message: &str) {
        set(&mut self.table().nodes, name, state, message);
    }

    pub fn set_link(&self, name: &str, state: State, message: &str) {
        set(&mut self.table().links, name, state, message);
    }

    /// Marks every node and link that is not READY as FAILED with `message` (a
    /// materialization that stopped half-way).
    pub fn fail_unfinished(&self, message: &str) {
        let mut t = self.table();
        let Table { nodes, links } = &mut *t;
        for e in nodes.iter_mut().chain(links.iter_mut()).filter(|e| e.state != State::Ready) {
            if e.state != State::Failed {
                e.since = now();
                e.state = State::Failed;
                e.message = message.to_owned();
            }
        }
    }

    pub fn node_state(&self, name: &str) -> Option<State> {
        self.table().nodes.iter().find(|e| e.name == name).map(|e| e.state)
    }

    /// The wire answer, with the worst state of any node or link as the overall state.
    pub fn response(&self, mzid: &str) -> StatusResponse {
        let t = self.table();
        let worst = t
            .nodes
            .iter()
            .chain(&t.links)
            .map(|e| e.state)
            .max_by_key(|s| severity(*s))
            .unwrap_or(State::Ready);
        let overall = if severity(worst) == 0 { State::Ready } else { worst };
        StatusResponse {
            mzid: mzid.to_owned(),
            state: overall as i32,
            nodes: t
                .nodes
                .iter()
                .map(|e| NodeStatus {
                    name: e.name.clone(),
                    state: e.state as i32,
                    message: e.message.clone(),
                    since: e.since,
                })
                .collect(),
            links: t
                .links
                .iter()
                .map(|e| LinkStatus {
                    name: e.name.clone(),
                    state: e.state as i32,
                    message: e.message.clone(),
                    since: e.since,
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overall_state_is_the_worst_child() {
        let t = StatusTable::default();
        t.reshape(&["a".into(), "b".into()], &["l".into()]);
        assert_eq!(t.response("m").state, State::Pending as i32);
        t.set_node("a", State::Ready, "");
        t.set_node("b", State::Ready, "");
        t.set_link("l", State::Ready, "");
        assert_eq!(t.response("m").state, State::Ready as i32);
        t.set_node("b", State::Failed, "disk gone");
        let r = t.response("m");
        assert_eq!(r.state, State::Failed as i32);
        assert_eq!(r.nodes[1].message, "disk gone");
        t.reshape(&["a".into()], &[]);
        assert_eq!(t.response("m").state, State::Ready as i32);
    }
}
