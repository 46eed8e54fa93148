//! coexist: directory synchronisation for mail systems that share one email
//! domain.
//!
//! The crate is split along the three boundaries of `ARCHITECTURE.md`:
//! [`reconcile`] decides (pure, no I/O), [`store`] persists (decides
//! nothing), and the connectors in `connectors/` talk to systems (decide
//! nothing). [`engine`] runs them in order: pull, stage, reconcile, plan,
//! apply within the safety gates.

pub mod cli;
pub mod config;
pub mod connectors;
pub mod demo;
pub mod engine;
pub mod exit;
pub mod export;
pub mod plan;
pub mod reconcile;
pub mod store;
