//! The `coexist` binary.

use clap::Parser;

/// mimalloc: less memory per small allocation than the system allocator,
/// which matters when a plan holds hundreds of thousands of stubs.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() {
    let cli = coexist::cli::Cli::parse();
    let code = coexist::cli::run(cli).await;
    std::process::exit(code);
}
