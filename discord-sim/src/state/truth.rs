//! What the simulator records of what happened: the ground truth of emitted messages, frames
//! written to clients, and the REST call log.

use super::State;
use crate::ground_truth::GroundTruth;
use crate::rest_log::RestCall;

impl State {
    pub fn ground_truth(&self) -> GroundTruth {
        self.truth.clone()
    }

    pub fn truth(&self) -> &GroundTruth {
        &self.truth
    }

    pub fn note_frame_written(&mut self, message_id: Option<u64>) {
        self.stats.frames_written += 1;
        if let Some(id) = message_id {
            self.stats.message_creates_written += 1;
            if let Some(record) = self.truth.get_mut(id) {
                record.writes += 1;
            }
        }
    }

    pub fn log_rest_call(&mut self, call: RestCall) {
        if self.rest_calls.len() >= self.settings.rest_log_limit {
            self.rest_calls.pop_front();
        }
        self.rest_calls.push_back(call);
    }

    pub fn rest_calls(&self) -> Vec<RestCall> {
        self.rest_calls.iter().cloned().collect()
    }
}
