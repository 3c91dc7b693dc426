//! `xl-center user add|passwd|disable|enable|remove|list`: the users who log in to the API and
//! console (`users.toml` in the data directory). A running center reads the file again within a
//! second: a disabled or removed user, or one whose password changed, is logged out at once.

use std::path::{Path, PathBuf};

use clap::Subcommand;
use xueliang_center::access::{
    Role, Users, add_user, generate_password, remove_user, set_disabled, set_password,
};

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
    /// Set a user's password (their sessions end); prints the generated one unless
    /// --password-stdin.
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
    /// Refuse a user's log-ins and end their sessions (their open consoles within seconds).
    Disable {
        /// Login name.
        login: String,
        /// Directory of the alarm store.
        #[arg(long, default_value = "/var/lib/xueliang-center")]
        data_dir: PathBuf,
    },
    /// Let a disabled user log in again (the sessions that ended stay ended).
    Enable {
        /// Login name.
        login: String,
        /// Directory of the alarm store.
        #[arg(long, default_value = "/var/lib/xueliang-center")]
        data_dir: PathBuf,
    },
    /// Remove a user (their sessions end); the audit log keeps what they did.
    Remove {
        /// Login name.
        login: String,
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
        UserCommand::Disable { login, data_dir } => {
            match set_disabled(&users_file(&data_dir), &login, true)? {
                true => println!("{login} disabled: their sessions end"),
                false => println!("{login} was disabled already"),
            }
        }
        UserCommand::Enable { login, data_dir } => {
            match set_disabled(&users_file(&data_dir), &login, false)? {
                true => println!("{login} enabled: they may log in again"),
                false => println!("{login} was not disabled"),
            }
        }
        UserCommand::Remove { login, data_dir } => {
            remove_user(&users_file(&data_dir), &login)?;
            println!("{login} removed: their sessions end");
        }
        UserCommand::List { data_dir } => {
            let users = Users::open(&users_file(&data_dir))?;
            if users.is_empty() {
                println!("no users yet: `xl-center user add LOGIN --role admin` makes one");
            }
            for u in users.list() {
                let state = if users.is_disabled(&u.login) { "disabled" } else { "" };
                println!(
                    "{:<24} {:<13} {:<16} {:<9} {}",
                    u.login,
                    u.role.to_string(),
                    u.unit.unwrap_or_default(),
                    state,
                    u.name
                );
            }
        }
    }
    Ok(())
}
