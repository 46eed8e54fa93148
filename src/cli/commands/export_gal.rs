//! `coexist export-gal`: the GAL as LDIF, CSV, vCard or JSON, on stdout
//! or into a file.

use std::path::Path;

use crate::cli::failure::Failure;
use crate::cli::print::{err_line, write_out};
use crate::config::Config;
use crate::exit;
use crate::export::{default_base, export, Format};
use crate::store::Store;

/// Writes the stored GAL in `format`; LDIF entries go under `base`
/// (default: `ou=gal` under the first shared domain).
pub async fn run(
    config_path: &Path,
    format: Format,
    base: Option<&str>,
    out: Option<&Path>,
) -> Result<i32, Failure> {
    let config = Config::load(config_path)?;
    let store = Store::open(&config.store_url()?).await?;
    let gal = store.load_gal().await?;
    let base = base.map_or_else(
        || default_base(&config.policy.shared_domains),
        str::to_string,
    );
    let text = export(&gal, format, &base)?;
    match out {
        Some(path) => {
            std::fs::write(path, text)?;
            err_line(format_args!(
                "Wrote {} GAL entries to {}",
                gal.len(),
                path.display()
            ));
        }
        None => write_out(&text)?,
    }
    Ok(exit::OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_exports_under_the_default_base() {
        let config = Config::parse(Path::new("coexist.toml"), crate::demo::CONFIG).unwrap();
        assert_eq!(
            default_base(&config.policy.shared_domains),
            crate::demo::GAL_BASE
        );
    }
}
