//! `xl-center copy-store`: moves a county's records from one store to another (from the
//! embedded sled store to PostgreSQL, or back), every tree byte for byte, then reads both back
//! and compares them. The center must be stopped; the target must be empty.

use xueliang_center::store::{Backend, Store};

use super::store_args::StoreArgs;

/// The arguments of `xl-center copy-store`.
#[derive(clap::Args)]
pub struct CopyStoreArgs {
    /// The store copied from (and the data directory, where clips stay).
    #[command(flatten)]
    from: StoreArgs,
    /// The store copied into: `postgres://user:password@host:port/database`, or `sled` (the
    /// data directory's embedded store; it must hold none yet).
    #[arg(long, env = "XL_STORE_TO", hide_env_values = true)]
    to: Backend,
}

/// Copies, compares and says what it copied.
pub fn run(args: CopyStoreArgs) -> anyhow::Result<()> {
    if args.to == args.from.store {
        anyhow::bail!("--to is the store copied from ({}): name another", args.to);
    }
    let from = args.from.open()?;
    let to = Store::open_database(&args.to, &args.from.data_dir)?;
    let copied = from.db().copy_to(&to)?;
    println!(
        "copied {} entries in {} trees from {} to {}; read back, every tree is equal",
        copied.entries, copied.trees, args.from.store, args.to
    );
    Ok(())
}
