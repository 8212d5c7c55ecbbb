//! `interproc remove NAME...`: unlink objects by name.

use std::process::ExitCode;

use interproc::Error;

use crate::{fail, out};

/// The arguments of `interproc remove` (help text: see `Command` in main.rs).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The objects' names (without the `interproc.` prefix).
    #[arg(required = true)]
    names: Vec<String>,
}

pub fn run(args: Args) -> ExitCode {
    let mut status = ExitCode::SUCCESS;
    for name in &args.names {
        match interproc::remove(name) {
            Ok(()) => out(&format!("removed {name}\n")),
            Err(Error::NotFound) => status = fail(format_args!("{name}: no such object")),
            Err(e) => status = fail(format_args!("{name}: {e}")),
        }
    }
    status
}
