//! `secretmem-fuzz`: a seeded random-operation tester of the secretmemfd module.
//!
//! It creates secret memory files (ioctl and system call, every flag, invalid ones too), sizes,
//! maps, touches, mprotects, mremaps, madvises, unmaps, forks and closes at random for a bounded
//! time, predicting every answer from a model of what it holds. A crash, an unexpected signal,
//! an errno outside the documented set (`allowed.rs`), a wrong byte, or module counters that
//! disagree with the model or are not zero at the end fail the run, with the seed printed.
//!
//! ```text
//! secretmem-fuzz [--seconds N] [--seed S] [--ops N] [--trace]
//! ```
//!
//! `--seed S --ops N` replays a run exactly: every choice comes from the seed, and mappings are
//! chosen by name, not by address. Prints TAP (two tests when the module's debugfs counters are
//! readable, as root; one otherwise).

mod allowed;
mod fuzz;
mod model;
mod rng;
mod sys;

use fuzz::{Fuzzer, Progress};
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

struct Args {
    seed: u64,
    seconds: u64,
    ops: Option<u64>,
    trace: bool,
}

fn parse_u64(s: &str) -> Option<u64> {
    match s.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    }
}

fn usage() -> ! {
    eprintln!("usage: secretmem-fuzz [--seconds N] [--seed S] [--ops N] [--trace]");
    std::process::exit(2);
}

/// A seed nobody chose: the clock and the process id.
fn fresh_seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    rng::Rng::new(nanos ^ u64::from(std::process::id()) << 32).next_u64()
}

fn parse_args() -> Args {
    let mut args = Args {
        seed: fresh_seed(),
        seconds: 20,
        ops: None,
        trace: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || {
            it.next()
                .as_deref()
                .and_then(parse_u64)
                .unwrap_or_else(|| usage())
        };
        match arg.as_str() {
            "--seed" => args.seed = value(),
            "--seconds" => args.seconds = value(),
            "--ops" => args.ops = Some(value()),
            "--trace" => args.trace = true,
            _ => usage(),
        }
    }
    args
}

/// Progress counters in memory shared with the child that runs the operations.
fn shared_progress() -> &'static Progress {
    // SAFETY: A fresh shared anonymous mapping at an address of the kernel's choosing.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            std::mem::size_of::<Progress>(),
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    assert_ne!(p, libc::MAP_FAILED, "mmap of the progress counters");
    // SAFETY: The mapping is zeroed, suitably aligned, as large as `Progress` (atomics, for
    // which all-zero is valid) and never unmapped, so it lives for the whole program.
    unsafe { &*p.cast::<Progress>() }
}

/// Runs the operations; the exit code says how it ended: 0, 1 (a check failed), 3 (counters).
fn run_child(args: &Args, progress: &Progress) -> i32 {
    sys::install_fault_handler();
    let mut fuzzer = Fuzzer::new(args.seed, progress, args.trace);
    let start = Instant::now();
    let deadline = start + Duration::from_secs(args.seconds);
    let mut done = 0u64;
    let result = loop {
        if args.ops.map_or(Instant::now() >= deadline, |n| done >= n) {
            break Ok(());
        }
        if let Err(e) = fuzzer.step() {
            break Err(e);
        }
        done += 1;
    };
    println!(
        "# {done} operations in {:.1} s",
        start.elapsed().as_secs_f64()
    );
    for line in fuzzer.summary() {
        println!("# {line}");
    }
    match result {
        Err(e) => {
            println!("# FAIL in operation {}: {e}", done + 1);
            1
        }
        Ok(()) => match fuzzer.finish() {
            Ok(()) => 0,
            Err(e) => {
                println!("# FAIL after {done} operations, at the end: {e}");
                3
            }
        },
    }
}

fn main() -> ExitCode {
    let args = parse_args();
    let progress = shared_progress();
    let stats = sys::stat("areas").is_some();
    println!("TAP version 13");
    println!("1..{}", if stats { 2 } else { 1 });
    println!("# seed {:#x}", args.seed);

    let pid = match sys::fork() {
        Ok(0) => sys::exit_child(run_child(&args, progress)),
        Ok(pid) => pid,
        Err(e) => {
            println!("not ok 1 random_operations # fork: errno {e}");
            return ExitCode::FAILURE;
        }
    };
    let status = match sys::wait(pid) {
        Ok(status) => status,
        Err(e) => {
            println!("not ok 1 random_operations # waitpid: errno {e}");
            return ExitCode::FAILURE;
        }
    };
    let ops = progress.ops.load(Ordering::Relaxed);
    let last =
        allowed::Op::ALL[progress.op.load(Ordering::Relaxed) as usize % allowed::Op::ALL.len()];
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        -1
    };
    if libc::WIFSIGNALED(status) {
        println!(
            "# the tester died of {} in operation {ops} ({})",
            fuzz::describe_signal(libc::WTERMSIG(status)),
            last.name()
        );
    }
    let ran_clean = code == 0 || code == 3;
    println!(
        "# {ops} operations; replay: secretmem-fuzz --seed {:#x} --ops {ops}",
        args.seed
    );
    println!(
        "{} 1 random_operations",
        if ran_clean { "ok" } else { "not ok" }
    );
    let mut ok = ran_clean;
    if stats {
        let areas = sys::stat("areas");
        let pages = sys::stat("pages");
        // Out of the direct map: only the page pool's fresh pages.
        let pooled = sys::stat("direct_map_restores")
            .zip(sys::stat("pool_pages"))
            .map(|(restores, pool)| restores + pool);
        let balanced = sys::stat("direct_map_removals") == pooled;
        let zero = code == 0 && areas == Some(0) && pages == Some(0) && balanced;
        println!("# counters after the run: areas {areas:?}, pages {pages:?}, removals == restores + pool_pages: {balanced}");
        println!(
            "{} 2 counters_back_to_zero",
            if zero { "ok" } else { "not ok" }
        );
        ok &= zero;
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
