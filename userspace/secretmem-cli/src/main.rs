//! `secretmem`: the status of secret memory on this machine, and a demo that shows what it
//! protects a key from.

mod attack;
mod demo;
mod status;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Secret memory: pages that not even the kernel's direct map covers.
#[derive(Parser)]
#[command(version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Show whether the secretmemfd module is loaded, how it is reached, its counters and the
    /// caller's locked-memory limit.
    Status,
    /// Run a key agent that keeps an Ed25519 key in secret memory (and, for comparison, a copy
    /// in ordinary memory), attack both as the same user and as root, and show that the agent
    /// still signs.
    Demo,
}

fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Command::Status => status::run(),
        Command::Demo => demo::run(),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("secretmem: {e}");
            ExitCode::FAILURE
        }
    }
}
