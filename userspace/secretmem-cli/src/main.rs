//! `secretmem`: the status of secret memory on this machine, and demos that show what it
//! protects a key from: in a key agent, and as the RAM of a KVM guest.

mod attack;
mod demo;
mod status;
mod vm;

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
    /// Run two KVM guests that hold a MAC key, one with its RAM in ordinary memory and one
    /// whose entire RAM is secret memory; attack both from another process as root (including
    /// /proc/kcore) and show that the secret one still answers challenges. Needs root.
    Vm,
}

fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Command::Status => status::run(),
        Command::Demo => demo::run(),
        Command::Vm => vm::run(),
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
