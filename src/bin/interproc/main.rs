//! Temporary entry point until the CLI lands: runs the benchmark.
mod bench;

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().collect();
    bench::run(&bench::Options {
        quick: args.iter().any(|a| a == "--quick"),
        filter: args
            .iter()
            .position(|a| a == "--filter")
            .and_then(|i| args.get(i + 1).cloned()),
        json: args.iter().any(|a| a == "--json"),
    })
}
