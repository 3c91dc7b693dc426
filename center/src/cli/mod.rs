//! The subcommands of `xl-center`, one file each: its arguments and what it does.

pub mod audit;
pub mod broker_password;
pub mod copy_store;
pub mod export;
pub mod key;
pub mod salvage;
pub mod serve;
pub mod store_args;
pub mod user;
pub mod verify;
