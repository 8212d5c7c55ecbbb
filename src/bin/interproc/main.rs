//! `interproc`: look at, remove and garbage-collect the shared objects under
//! `/dev/shm/interproc.*`, and run the built-in benchmark.
//!
//! Each subcommand lives in its own module and only formats what the library's
//! [`interproc::inspect`] layer returns. Results go to stdout; errors go to stderr, prefixed
//! with `interproc:`, and make the exit status non-zero.

mod bench;
mod checked;
mod gc;
mod inspect;
mod list;
mod remove;
mod soak;

use std::io::Write;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Shared-memory IPC objects: list, inspect, remove, garbage-collect, benchmark.
#[derive(Debug, Parser)]
#[command(name = "interproc", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// List every object: name, kind, size, capacity, queue depth, owner, attached processes.
    ///
    /// One row per file /dev/shm/interproc.*. KIND is `?` when the header does not check out
    /// (NOTE says why). SIZE is the file's length in bytes. DEPTH is the number of messages
    /// queued (queue-like kinds only). OWNER is `alive` (the creator holds the name and removes
    /// it when it exits), `persisted` (the name outlives its creator), `orphaned` (the creator
    /// died without persisting it: `interproc gc` removes it once nobody is attached),
    /// `initialising` or `unknown`. PIDS are the processes attached now.
    List(list::Args),
    /// Show everything about one object: header fields, participants, kind-specific state.
    ///
    /// Shows what `list` shows for the object, every header field (element size and alignment,
    /// parameters, format version, creator pid), the attached processes and the object's own
    /// state (a value's value, a queue's depth, ...). Exits non-zero if the object does not
    /// exist, or if its header does not check out (after showing what can be read).
    Inspect(inspect::Args),
    /// Unlink objects by name (processes attached to them keep using them).
    ///
    /// The names are free for new objects at once. Exits non-zero if any name does not exist
    /// or cannot be removed.
    Remove(remove::Args),
    /// Remove the leftovers of crashed processes (persisted and live objects stay).
    ///
    /// Removes an object when no live process holds it (its creator and every attached process
    /// are gone, as the kernel's locks prove) and either its creator died without persisting
    /// it, or died while creating it (more than two seconds ago). Persisted objects and objects
    /// any live process holds are never removed. Files whose header does not check out are only
    /// reported, unless --force is given.
    Gc(gc::Args),
    /// Run the built-in benchmark: every figure a ratio against a baseline run beside it.
    ///
    /// Measures throughput and latency of each object kind between processes, interleaved with
    /// the floor (a raw shared-memory ring, a raw ping-pong, bare futex round trips) and the
    /// alternatives (pipe(2), a Unix socketpair, a robust pthread mutex, Python multiprocessing
    /// when python3 is present). Prints one table: scenario, interproc, baseline, the ratio
    /// (> 1: interproc better) and a verdict against the project's targets.
    Bench(bench::Args),
}

fn main() -> ExitCode {
    // `bench --soak` runs its children as spawned functions of this program.
    interproc::process::init();
    let cli = Cli::parse();
    match cli.command {
        Command::List(args) => list::run(args),
        Command::Inspect(args) => inspect::run(args),
        Command::Remove(args) => remove::run(args),
        Command::Gc(args) => gc::run(args),
        Command::Bench(args) => bench::run(args),
    }
}

/// Writes `text` to stdout. A closed pipe (`interproc list | head`) is not an error worth a
/// panic: the output is simply cut short.
pub(crate) fn out(text: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush());
}

/// Reports `message` on stderr and returns the failure status.
pub(crate) fn fail(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("interproc: {message}");
    ExitCode::FAILURE
}

/// `-` for nothing, else the value.
pub(crate) fn or_dash<T: ToString>(v: Option<T>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| v.to_string())
}

/// Distinct pids in order of appearance as `1234,5678` (`?` for one that could not be read),
/// `-` for none. A process attached through several handles appears once.
pub(crate) fn pids(pids: &[u32]) -> String {
    if pids.is_empty() {
        return "-".to_owned();
    }
    let mut seen = Vec::new();
    for &p in pids {
        if !seen.contains(&p) {
            seen.push(p);
        }
    }
    seen.iter()
        .map(|&p| {
            if p == 0 {
                "?".to_owned()
            } else {
                p.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn small_formatters() {
        assert_eq!(or_dash(None::<u64>), "-");
        assert_eq!(or_dash(Some(3)), "3");
        assert_eq!(pids(&[]), "-");
        assert_eq!(pids(&[12, 0, 7, 12]), "12,?,7");
    }
}
