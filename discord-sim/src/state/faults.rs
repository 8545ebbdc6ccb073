//! What a script injects: gateway faults on connections, silent loss of message events, and
//! queued REST faults.

use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};

use super::{MESSAGE_CREATE, Outbound, State};
use crate::faults::{
    GatewayFault, RestFault, RestFaultRule, SilentLoss, Target, close_invalidates_session,
};

impl State {
    /// Queues a fault on every matching connection. Returns how many connections got it.
    pub fn inject(&mut self, target: &Target, fault: &GatewayFault) -> usize {
        let picked: Vec<u64> = self
            .connections
            .iter()
            .filter(|(_, c)| match target {
                Target::All => true,
                Target::Shard(shard) => c.shard == Some(*shard),
                Target::Session(id) => c.session_id.as_deref() == Some(id.as_str()),
            })
            .map(|(id, _)| *id)
            .collect();
        let invalidates = match fault {
            GatewayFault::InvalidSession { resumable } => !resumable,
            GatewayFault::Close { code, .. } => close_invalidates_session(*code),
            _ => false,
        };
        for conn_id in &picked {
            let Some(conn) = self.connections.get_mut(conn_id) else {
                continue;
            };
            if invalidates && let Some(session_id) = conn.session_id.take() {
                // Gone at once: what is posted from now on reaches this client only through
                // REST history.
                self.sessions.remove(&session_id);
            }
            let _ = conn.tx.send(Outbound::Fault(fault.clone()));
        }
        self.recount_connected();
        picked.len()
    }

    /// Starts (or, with `None`, stops) dropping a fraction of message events silently.
    pub fn set_silent_loss(&mut self, loss: Option<SilentLoss>) {
        self.silent_loss = loss.map(|l| (l, StdRng::seed_from_u64(l.seed)));
    }

    /// Whether this event is lost on its way to every session.
    pub(super) fn silently_lost(&mut self, event: &str) -> bool {
        let Some((loss, rng)) = self.silent_loss.as_mut() else {
            return false;
        };
        if !matches!(event, MESSAGE_CREATE | "MESSAGE_UPDATE" | "MESSAGE_DELETE") {
            return false;
        }
        let lost = rng.random::<f64>() < loss.rate;
        if lost {
            self.stats.silently_dropped += 1;
        }
        lost
    }

    pub fn push_rest_fault(&mut self, rule: RestFaultRule) {
        self.rest_faults.push_back(rule);
    }

    pub fn clear_rest_faults(&mut self) {
        self.rest_faults.clear();
    }

    /// Takes the fault for the next call to `path`, if one is queued.
    pub fn take_rest_fault(&mut self, path: &str) -> Option<RestFault> {
        let index = self.rest_faults.iter().position(|rule| {
            rule.path_contains
                .as_deref()
                .is_none_or(|needle| path.contains(needle))
        })?;
        let rule = self.rest_faults.get_mut(index)?;
        rule.remaining = rule.remaining.saturating_sub(1);
        let fault = rule.fault.clone();
        if rule.remaining == 0 {
            self.rest_faults.remove(index);
        }
        Some(fault)
    }
}
