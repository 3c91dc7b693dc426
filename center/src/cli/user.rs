//! `xl-center user add|passwd|list`: the users who log in to the API and console
//! (`users.toml` in the data directory).

use std::path::{Path, PathBuf};

use clap::Subcommand;
use xueliang_center::access::{Role, Users, add_user, generate_password, set_password};

/// The `user` subcommands.
#[derive(Subcommand)]
pub enum UserCommand {
    /// Add a user; prints the generated password unless --password-stdin.
    Add {
        /// Login name.
        login: String,
        /// admin, duty_officer, police or installer.
        #[arg(long)]
        role: Role,
        /// For role police: the responder unit (its id in routing.toml).
        #[arg(long)]
        unit: Option<String>,
        /// Display name, e.g. 张三.
        #[arg(long)]
        name: Option<String>,
        /// Read the password from standard input instead of generating one.
        #[arg(long)]
        password_stdin: bool,
        /// Directory of the alarm store.
        #[arg(long, default_value = "/var/lib/xueliang-center")]
        data_dir: PathBuf,
    },
    /// Set a user's password; prints the generated one unless --password-stdin.
    Passwd {
        /// Login name.
        login: String,
        /// Read the password from standard input instead of generating one.
        #[arg(long)]
        password_stdin: bool,
        /// Directory of the alarm store.
        #[arg(long, default_value = "/var/lib/xueliang-center")]
        data_dir: PathBuf,
    },
    /// List the users.
    List {
        /// Directory of the alarm store.
        #[arg(long, default_value = "/var/lib/xueliang-center")]
        data_dir: PathBuf,
    },
}

fn users_file(data_dir: &Path) -> PathBuf {
    data_dir.join("users.toml")
}

/// The password from standard input (first line), or a generated one to print.
fn password(from_stdin: bool) -> anyhow::Result<(String, bool)> {
    if !from_stdin {
        return Ok((generate_password(), true));
    }
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    Ok((line.trim_end_matches(['\r', '\n']).to_owned(), false))
}

/// Runs the user subcommand.
pub fn run(command: UserCommand) -> anyhow::Result<()> {
    match command {
        UserCommand::Add { login, role, unit, name, password_stdin, data_dir } => {
            let (password, generated) = password(password_stdin)?;
            let user = add_user(
                &users_file(&data_dir),
                &login,
                name.as_deref(),
                role,
                unit.as_deref(),
                &password,
            )?;
            println!(
                "added {} ({}{})",
                user.login,
                user.role,
                user.unit.map(|u| format!(", unit {u}")).unwrap_or_default()
            );
            if generated {
                println!("password: {password}");
            }
        }
        UserCommand::Passwd { login, password_stdin, data_dir } => {
            let (password, generated) = password(password_stdin)?;
            set_password(&users_file(&data_dir), &login, &password)?;
            println!("password of {login} changed");
            if generated {
                println!("password: {password}");
            }
        }
        UserCommand::List { data_dir } => {
            let users = Users::open(&users_file(&data_dir))?;
            if users.is_empty() {
                println!("no users yet: `xl-center user add LOGIN --role admin` makes one");
            }
            for u in users.list() {
                println!(
                    "{:<24} {:<13} {:<16} {}",
                    u.login,
                    u.role.to_string(),
                    u.unit.unwrap_or_default(),
                    u.name
                );
            }
        }
    }
    Ok(())
}
