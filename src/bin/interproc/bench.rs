//! `interproc bench`: the built-in benchmark (not in this build yet; its flags are settled).

use std::process::ExitCode;

use crate::fail;

/// The arguments of `interproc bench` (help text: see `Command` in main.rs).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A short run (fewer iterations) for a quick look.
    #[arg(long)]
    quick: bool,
    /// Only run the benchmarks whose name contains PATTERN.
    #[arg(long, value_name = "PATTERN")]
    filter: Option<String>,
    /// Print the results as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> ExitCode {
    let _ = (args.quick, args.filter, args.json);
    fail("bench: the built-in benchmark is not yet available in this build")
}
