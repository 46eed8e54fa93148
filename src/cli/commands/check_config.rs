//! `coexist check-config`: load the configuration and set up every
//! connector, touching no system.

use std::path::Path;

use crate::cli::failure::Failure;
use crate::cli::print::{outln, print_json};
use crate::cli::Output;
use crate::config::Config;
use crate::exit;

pub fn run(config_path: &Path, output: Output) -> Result<i32, Failure> {
    let config = Config::load(config_path)?;
    crate::connectors::connect_all(&config)?;
    // A secret's environment variable may be set only where the
    // service runs (systemd's EnvironmentFile): say so, fail nothing.
    let unset: Vec<String> = config
        .unset_env()
        .into_iter()
        .map(|(key, name)| {
            format!("{key} refers to the environment variable {name}, which is not set here; a run from this shell would fail to read it")
        })
        .collect();
    let store = config.store_description();
    if output == Output::Json {
        print_json(&serde_json::json!({
            "ok": true,
            "systems": config.system_ids(),
            "store": store,
            "warnings": unset,
        }))?;
    } else {
        outln!(
            "{}: OK ({} systems: {}; store: {store})",
            config_path.display(),
            config.systems.len(),
            config.system_ids().join(", ")
        )?;
        for warning in &unset {
            outln!("warning: {warning}")?;
        }
    }
    Ok(exit::OK)
}
