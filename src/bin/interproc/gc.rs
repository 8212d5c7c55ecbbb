//! `interproc gc`: remove the leftovers of crashed processes.

use std::process::ExitCode;

use interproc::inspect::{GcOptions, GcOutcome};

use crate::{fail, out};

/// The arguments of `interproc gc` (help text: see `Command` in main.rs).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print what would be removed; remove nothing.
    #[arg(long)]
    dry_run: bool,
    /// Also remove files whose header does not check out, if no live process holds them.
    #[arg(long)]
    force: bool,
    /// Only consider objects whose name starts with PREFIX.
    #[arg(long, value_name = "PREFIX")]
    prefix: Option<String>,
}

pub fn run(args: Args) -> ExitCode {
    let options = GcOptions {
        dry_run: args.dry_run,
        force: args.force,
        prefix: args.prefix,
    };
    let actions = match interproc::inspect::gc(&options) {
        Ok(actions) => actions,
        Err(e) => return fail(format_args!("gc: {e}")),
    };
    let mut status = ExitCode::SUCCESS;
    for a in &actions {
        match a.outcome {
            GcOutcome::Removed => out(&format!("removed {}: {}\n", a.name, a.reason)),
            GcOutcome::WouldRemove => out(&format!("would remove {}: {}\n", a.name, a.reason)),
            GcOutcome::NeedsForce => out(&format!("skipped {}: {}\n", a.name, a.reason)),
            GcOutcome::Failed => status = fail(format_args!("gc: {}: {}", a.name, a.reason)),
        }
    }
    if actions.is_empty() {
        out("nothing to collect\n");
    }
    status
}
