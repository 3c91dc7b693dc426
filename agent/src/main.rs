//! `xl-agent`: the edge agent's command line; each subcommand in `cli/`.

// The services never unwrap what a user or the network can influence (tests may).
#![warn(clippy::unwrap_used)]

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
