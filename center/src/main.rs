//! `xl-center`: the county center's command line.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand};
use std::io::Write;
use std::path::Path;
use tokio_util::sync::CancellationToken;
use xueliang_center::access::{Role, Users, add_user, generate_password, set_password};
use xueliang_center::fleet::PasswordHash;
use xueliang_center::ingest::{BrokerConnection, ServerTls};
use xueliang_center::running::{BrokerChoice, CenterConfig, key_path, start};
use xueliang_center::store::{AlarmFilter, Retention, Store, StoreError, parse_time};
use xueliang_proto::endpoint::{BrokerUrl, parse_mqtt_url};
use xueliang_proto::signing::SigningKey;
use xueliang_proto::tls::TlsFiles;

#[derive(Parser)]
#[command(
    name = "xl-center",
    version,
    about = "xueliang county center: alarm ingest, store and API"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
// Parsed once per process: the size of `serve`'s arguments does not matter.
#[allow(clippy::large_enum_variant)]
enum Command {
    /// Print the center's public key (made on first use, in the data directory) as the line
    /// for agents' configs, under [mqtt].
    Key {
        /// Directory of the alarm store.
        #[arg(long, default_value = "/var/lib/xueliang-center")]
        data_dir: PathBuf,
    },
    /// Make a password for an agent at the embedded broker: prints the line for the agent's
    /// config ([mqtt] password) and the line for the key registry's [passwords].
    BrokerPassword {
        /// The agent id (its username at the broker).
        agent: String,
    },
    /// Run the center until interrupted.
    Serve(ServeArgs),
    /// Manage the users who log in to the API and console (users.toml in the data directory).
    #[command(subcommand)]
    User(UserCommand),
    /// Write every alarm record as JSON Lines, oldest first (for backups and statistics). The
    /// center must be stopped; while it runs, use `GET /api/export` as an admin.
    Export {
        /// Directory of the alarm store.
        #[arg(long, default_value = "/var/lib/xueliang-center")]
        data_dir: PathBuf,
        /// Only alarms at or after this time (UTC ms or RFC 3339).
        #[arg(long)]
        from: Option<String>,
        /// Write here instead of standard output.
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum UserCommand {
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

/// How the center runs.
#[derive(clap::Args)]
struct ServeArgs {
    /// Directory of the alarm store.
    #[arg(long, default_value = "/var/lib/xueliang-center")]
    data_dir: PathBuf,
    /// HTTP API listen address.
    #[arg(long, default_value = "127.0.0.1:8080")]
    http: SocketAddr,
    /// Listen address of the embedded MQTT broker (ignored with --broker-url).
    #[arg(long, default_value = "0.0.0.0:1883")]
    mqtt_listen: SocketAddr,
    /// TLS for the embedded broker's agents: its certificate (PEM); agents then use mqtts://.
    #[arg(long, requires = "mqtt_tls_key", conflicts_with = "broker_url")]
    mqtt_tls_cert: Option<PathBuf>,
    /// The embedded broker's private key (PEM).
    #[arg(long, requires = "mqtt_tls_cert")]
    mqtt_tls_key: Option<PathBuf>,
    /// The embedded broker accepts only agents logging in as their agent id with the password
    /// registered for them (the key registry's [passwords]; `xl-center broker-password`).
    #[arg(long, conflicts_with = "broker_url")]
    mqtt_passwords: bool,
    /// Use an external broker (e.g. mqtt://127.0.0.1:1883) instead of the embedded one.
    #[arg(long)]
    broker_url: Option<String>,
    /// With an mqtts:// broker URL: the CA certificate (PEM) that signed the broker's.
    #[arg(long, requires = "broker_url")]
    broker_ca: Option<PathBuf>,
    /// With mqtts://, for a broker that requires client certificates: the center's (PEM).
    #[arg(long, requires = "broker_client_key")]
    broker_client_cert: Option<PathBuf>,
    /// Its private key (PEM).
    #[arg(long, requires = "broker_client_cert")]
    broker_client_key: Option<PathBuf>,
    /// Username at the external broker.
    #[arg(long, requires = "broker_url")]
    broker_username: Option<String>,
    /// Password at the external broker (or the XL_BROKER_PASSWORD environment variable).
    #[arg(long, env = "XL_BROKER_PASSWORD", hide_env_values = true, requires = "broker_url")]
    broker_password: Option<String>,
    /// MQTT topic prefix.
    #[arg(long, default_value = xueliang_proto::topics::DEFAULT_PREFIX)]
    topic_prefix: String,
    /// The registry of agents' public keys (default: agent-keys.toml in the data directory).
    #[arg(long)]
    agent_keys: Option<PathBuf>,
    /// Routing rules (default: routing.toml in the data directory; none if absent).
    #[arg(long)]
    routing: Option<PathBuf>,
    /// Days alarm records are kept.
    #[arg(long, default_value_t = 365, value_parser = clap::value_parser!(u32).range(1..))]
    retention_days: u32,
    /// Days snapshots are kept (at most --retention-days).
    #[arg(long, default_value_t = 90, value_parser = clap::value_parser!(u32).range(1..))]
    snapshot_retention_days: u32,
    /// The broker URL enrolling boxes are given (`xl-agent enroll`), as they reach it, e.g.
    /// mqtts://county.example:8883. Default, with the embedded broker: its port on the host name
    /// the box reached this API by. Required with an external broker.
    #[arg(long)]
    agent_mqtt_url: Option<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,rumqttd=warn".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Key { data_dir } => {
            let key = SigningKey::load_or_create(&key_path(&data_dir))?;
            println!("center_key = \"{}\"", key.public_key());
            Ok(())
        }
        Command::BrokerPassword { agent } => {
            let mut secret = [0u8; 18];
            ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut secret)
                .map_err(|_| anyhow::anyhow!("no randomness for a password"))?;
            let password =
                base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, secret);
            println!("# in the agent's config, under [mqtt]:\npassword = \"{password}\"");
            println!(
                "# in the center's agent-keys.toml, under [passwords]:\n{agent} = \"{}\"",
                PasswordHash::new(&password)
            );
            Ok(())
        }
        Command::Serve(args) => serve(args),
        Command::User(command) => user(command),
        Command::Export { data_dir, from, output } => {
            export(&data_dir, from.as_deref(), output.as_deref())
        }
    }
}

fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let ServeArgs {
        data_dir,
        http,
        mqtt_listen,
        mqtt_tls_cert,
        mqtt_tls_key,
        mqtt_passwords,
        broker_url,
        broker_username,
        broker_password,
        broker_ca,
        broker_client_cert,
        broker_client_key,
        topic_prefix,
        agent_keys,
        routing,
        retention_days,
        snapshot_retention_days,
        agent_mqtt_url,
    } = args;
    let broker = match broker_url {
        None => BrokerChoice::Embedded {
            listen: mqtt_listen,
            tls: mqtt_tls_cert.zip(mqtt_tls_key).map(|(cert, key)| ServerTls { cert, key }),
            passwords: mqtt_passwords,
        },
        Some(url) => {
            let BrokerUrl { host, port, tls } =
                parse_mqtt_url(&url).map_err(|e| anyhow::anyhow!("--broker-url: {e}"))?;
            let tls = match (tls, broker_ca) {
                (true, Some(ca)) => {
                    Some(TlsFiles { ca, client: broker_client_cert.zip(broker_client_key) })
                }
                (true, None) => bail!(
                    "--broker-url is mqtts://: give --broker-ca, the CA certificate that signed the broker's"
                ),
                (false, None) if broker_client_cert.is_none() => None,
                (false, _) => {
                    bail!("--broker-ca and --broker-client-cert need an mqtts:// --broker-url")
                }
            };
            BrokerChoice::External(BrokerConnection {
                host,
                port,
                credentials: broker_password
                    .map(|p| (broker_username.unwrap_or_else(|| "xl-center".into()), p)),
                tls,
            })
        }
    };
    let mut config = CenterConfig::new(data_dir, http, broker);
    config.topic_prefix = topic_prefix;
    if let Some(path) = agent_keys {
        config.agent_keys = path;
    }
    if let Some(path) = routing {
        config.routing = path;
    }
    config.retention =
        Retention { alarm_days: retention_days, snapshot_days: snapshot_retention_days };
    if let Some(url) = &agent_mqtt_url {
        parse_mqtt_url(url).map_err(|e| anyhow::anyhow!("--agent-mqtt-url: {e}"))?;
    }
    config.agent_mqtt_url = agent_mqtt_url;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        let shutdown = CancellationToken::new();
        let center = start(config, shutdown.clone()).await?;
        eprintln!(
            "xl-center: API http://{}/api/alarms, MQTT {}, center key {}",
            center.http_addr, center.mqtt_addr, center.center_key
        );
        wait_for_signal().await;
        shutdown.cancel();
        center.join().await;
        Ok(())
    })
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

fn user(command: UserCommand) -> anyhow::Result<()> {
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

fn is_locked(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::WouldBlock || e.to_string().contains("lock")
}

/// Opens the store, waiting up to 3 s for a center that is stopping to let go of it.
fn open_when_free(data_dir: &Path) -> Result<Store, StoreError> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
    loop {
        match Store::open(data_dir) {
            Err(StoreError::Sled(sled::Error::Io(io)))
                if is_locked(&io) && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            r => return r,
        }
    }
}

fn export(data_dir: &Path, from: Option<&str>, output: Option<&Path>) -> anyhow::Result<()> {
    let from_ms = from
        .map(|t| parse_time(t).ok_or_else(|| anyhow::anyhow!("--from {t:?} is neither UTC milliseconds nor RFC 3339 (2026-07-01T18:00:00+08:00)")))
        .transpose()?;
    if !data_dir.join("db").exists() {
        bail!("{} holds no alarm store (give --data-dir)", data_dir.display());
    }
    let store = open_when_free(data_dir).map_err(|e| match e {
        StoreError::Sled(sled::Error::Io(io)) if is_locked(&io) => anyhow::anyhow!(
            "the store in {} is in use by a running xl-center: stop it first, or use GET /api/export as an admin",
            data_dir.display()
        ),
        e => e.into(),
    })?;
    let mut out: Box<dyn Write> = match output {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path)
                .with_context(|| format!("cannot create {}", path.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let filter = AlarmFilter { from_ms, ..Default::default() };
    let mut count = 0u64;
    store.for_each(&filter, |r| {
        serde_json::to_writer(&mut out, &r)?;
        count += 1;
        out.write_all(b"\n")
    })?;
    out.flush()?;
    eprintln!("exported {count} alarms");
    Ok(())
}

/// Ctrl-C or SIGTERM (systemd's stop).
async fn wait_for_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}
