//! The workspace-level tests, one binary: the deployment files as an
//! operator installs them (`deploy`), and the architecture invariants that
//! a scan of the workspace can check (`invariants`).

mod deploy;
mod invariants;
