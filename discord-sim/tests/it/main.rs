//! The simulator's integration tests, one binary: the real, unmodified
//! serenity client against the fake Discord's REST and gateway, its faults
//! and sharding, and the `discord-sim` binary itself.

mod binary;
mod common;
mod gateway_faults;
mod gateway_live;
mod rest;
mod sharding;
