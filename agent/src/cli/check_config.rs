//! `xl-agent check-config`: every problem of a config file at its line and column, with a hint,
//! in file order; exit 2 if there is one.

use std::path::PathBuf;

use anyhow::Context;
use xueliang_agent::config::{AgentConfig, ConfigError, Placed, Problem};
use xueliang_agent::detect::ModelCard;
use xueliang_agent::rules::class_problems;

use super::Failure;

#[derive(clap::Args)]
pub(super) struct Args {
    /// The TOML config to check.
    file: PathBuf,
}

/// `check-config`: every problem with its place and a hint; exit 2 if there is one.
pub(super) fn run(args: Args) -> Result<(), Failure> {
    let file = args.file.as_path();
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("cannot read {}", file.display()))
        .map_err(|e| (2, e))?;
    let config = match AgentConfig::parse_unchecked(&text, file) {
        Ok(c) => c,
        Err(e @ ConfigError::Syntax { .. }) => {
            for placed in e.placed(&text) {
                println!("{}", placed.report(file.display()));
            }
            return Err((2, anyhow::anyhow!("1 problem in {}", file.display())));
        }
        Err(e) => return Err((2, e.into())),
    };
    let mut problems = config.problems();
    let card =
        config.model.card.clone().unwrap_or_else(|| ModelCard::default_path(&config.model.path));
    if !config.model.path.is_file() {
        problems.push(
            Problem::new("model.path", format!("no model file at {}", config.model.path.display()))
                .hint(
                    "install the model (deploy/agent/install.sh, or `make setup` in a checkout) \
                     or fix the path",
                ),
        );
    }
    match ModelCard::load(&card) {
        Ok(card) => problems.extend(class_problems(&config, &card)),
        Err(e) => problems.push(Problem::new("model.card", e.to_string()).hint(
            "the card lists the model's classes; it lies beside the model as NAME.card.toml",
        )),
    }
    if problems.is_empty() {
        println!(
            "{}: ok ({} cameras, {} zones, {} lines, {} rules)",
            file.display(),
            config.cameras.len(),
            config.zones.len(),
            config.lines.len(),
            config.rules.len()
        );
        return Ok(());
    }
    for placed in Placed::all(&text, &problems) {
        println!("{}", placed.report(file.display()));
    }
    let n = problems.len();
    Err((2, anyhow::anyhow!("{n} problem{} in {}", if n == 1 { "" } else { "s" }, file.display())))
}
