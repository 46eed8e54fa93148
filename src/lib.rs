//! coexist: directory synchronisation for mail systems that share one email
//! domain.
//!
//! The work is split along the three boundaries of `ARCHITECTURE.md`:
//! [`reconcile`] (the `coexist-reconcile` crate, re-exported) decides, pure
//! by construction: its only dependency that is ours is the data-only
//! `coexist-model`; [`store`] persists (decides nothing), and the connectors
//! in `connectors/` talk to systems (decide nothing). [`engine`] runs them in order: pull, stage, reconcile, plan,
//! apply within the safety gates.

pub mod cli;
pub mod config;
pub mod connectors;
pub mod daemon;
pub mod demo;
pub mod doctor;
pub mod engine;
pub mod exit;
pub mod export;
pub mod kinds;
pub mod plan;
pub mod provisioning;
pub mod status;
pub mod store;

pub use coexist_reconcile as reconcile;

#[cfg(test)]
#[path = "layering_tests.rs"]
mod layering;
