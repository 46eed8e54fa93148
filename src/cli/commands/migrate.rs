//! `coexist migrate`: create or upgrade the store's tables.

use std::path::Path;

use crate::cli::failure::Failure;
use crate::cli::print::{outln, print_json};
use crate::cli::Output;
use crate::config::Config;
use crate::exit;
use crate::store::Store;

pub async fn run(config_path: &Path, output: Output) -> Result<i32, Failure> {
    let config = Config::load(config_path)?;
    let url = config.store_url()?;
    Store::open(&url).await?;
    if output == Output::Json {
        print_json(&serde_json::json!({ "ok": true, "store": crate::store::redact(&url) }))?;
    } else {
        outln!("The store at {} is up to date.", crate::store::redact(&url))?;
    }
    Ok(exit::OK)
}
