//! `xl-agent`: the edge agent's command line; each subcommand in `cli/`.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
