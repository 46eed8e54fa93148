//! One module per command. Each `run` takes what the command line parsed
//! (and the engine, for the commands that need one), calls the library,
//! prints the result as text or JSON, and returns the exit code.

pub mod apply;
pub mod check_config;
pub mod daemon;
pub mod demo;
pub mod deprovision;
pub mod doctor;
pub mod export_gal;
pub mod migrate;
pub mod moving;
pub mod place;
pub mod plan;
pub mod provision;
pub mod route;
pub mod runs;
pub mod serve_gal;
pub mod sync;
