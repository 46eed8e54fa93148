//! The `coexist` binary.

use clap::Parser;

#[tokio::main]
async fn main() {
    let cli = coexist::cli::Cli::parse();
    let code = coexist::cli::run(cli).await;
    std::process::exit(code);
}
