//! Scripting faults: gateway faults, silent loss, heartbeat ACKs, IDENTIFY refusals and REST
//! faults.

use super::Sim;
use crate::faults::{GatewayFault, RestFault, RestFaultRule, SilentLoss, Target};
use crate::state::State;

impl Sim {
    /// Queues a fault on the matching open connections, after what is already queued for
    /// them. Returns how many connections got it.
    pub fn inject(&self, target: Target, fault: GatewayFault) -> usize {
        self.shared.with(|s| s.inject(&target, &fault))
    }

    /// Starts dropping a fraction of `MESSAGE_CREATE`, `MESSAGE_UPDATE` and `MESSAGE_DELETE`
    /// events silently on every live session (see [`SilentLoss`]); `None` stops it. Returns
    /// nothing: the loss shows only in [`SimStats::silently_dropped`] and in REST history.
    pub fn set_silent_loss(&self, loss: Option<SilentLoss>) {
        self.shared.with(|s| s.set_silent_loss(loss));
    }

    /// Turns heartbeat ACKs on or off for every connection, present and future.
    pub fn set_heartbeat_acks(&self, enabled: bool) {
        self.shared.with(|s| s.heartbeat_acks = enabled);
    }

    /// Makes every IDENTIFY (until cleared with `None`) answered by a close with this code.
    pub fn set_identify_close_code(&self, code: Option<u16>) {
        self.shared.with(|s| s.identify_close_code = code);
    }

    /// Answers the next `count` REST calls with `fault` (gateway discovery excluded).
    pub fn fail_next_rest(&self, count: u32, fault: RestFault) {
        self.push_rest_fault(None, count, fault);
    }

    /// Answers the next `count` REST calls whose path contains `path_contains` with `fault`.
    pub fn fail_next_rest_matching(&self, path_contains: &str, count: u32, fault: RestFault) {
        self.push_rest_fault(Some(path_contains.to_owned()), count, fault);
    }

    fn push_rest_fault(&self, path_contains: Option<String>, count: u32, fault: RestFault) {
        if count == 0 {
            return;
        }
        self.shared.with(|s| {
            s.push_rest_fault(RestFaultRule {
                fault,
                remaining: count,
                path_contains,
            })
        });
    }

    /// Drops all queued REST faults.
    pub fn clear_rest_faults(&self) {
        self.shared.with(State::clear_rest_faults);
    }
}
