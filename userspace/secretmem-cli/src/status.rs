//! `secretmem status`.

use secretmem::Mode;
use std::fs;
use std::path::Path;

const MODULE: &str = "/sys/module/secretmemfd";
const STATS: &str = "/sys/kernel/debug/secretmemfd/stats";

/// Prints what is there; fails only if secret memory cannot be had at all.
pub(crate) fn run() -> Result<bool, Box<dyn std::error::Error>> {
    let loaded = Path::new(MODULE).exists();
    println!(
        "module:       {}",
        if loaded {
            "secretmemfd loaded"
        } else {
            "not loaded"
        }
    );
    let entry = match secretmem::served_syscall() {
        Some(nr) => format!("secretmemfd() system call {nr}"),
        None if Path::new(secretmem::DEVICE_PATH).exists() => {
            format!("ioctl on {}", secretmem::DEVICE_PATH)
        }
        _ => "none".to_string(),
    };
    println!("entry:        {entry}");
    if loaded {
        // Read-only parameter: how the module takes pages out of the direct map.
        let backend = fs::read_to_string(format!("{MODULE}/parameters/backend"))
            .map(|b| b.trim().to_string())
            .unwrap_or_else(|_| "unknown".to_string());
        let what = match backend.as_str() {
            "patched" => "one change and one flush per 2 MiB block (kernel patches)",
            "mce-helpers" => "set_mce_nospec(), one page and one flush per call (unpatched kernel)",
            _ => "unknown",
        };
        println!("backend:      {backend}: {what}");
    }
    // Creating a descriptor is enough to know; nothing is mapped or allocated.
    let modes: Vec<&str> = [("exclusive", Mode::Exclusive), ("uncached", Mode::Uncached)]
        .into_iter()
        .filter(|&(_, mode)| secretmem::secretmemfd(mode).is_ok())
        .map(|(name, _)| name)
        .collect();
    println!(
        "modes:        {}",
        if modes.is_empty() {
            "none".to_string()
        } else {
            modes.join(", ")
        }
    );
    let memfd_secret = secretmem::memfd_secret().is_ok();
    println!(
        "memfd_secret: {}",
        if memfd_secret {
            "available (fallback without the module)"
        } else {
            "not available"
        }
    );
    println!("memlock:      {}", memlock());
    match fs::read_to_string(STATS) {
        Ok(stats) => {
            let line: Vec<String> = stats
                .lines()
                .filter_map(|l| l.split_once(':'))
                .map(|(k, v)| format!("{k} {}", v.trim()))
                .collect();
            println!("stats:        {}", line.join(", "));
        }
        Err(_) if loaded => println!("stats:        {STATS} not readable (debugfs needs root)"),
        Err(_) => {}
    }
    Ok(!modes.is_empty() || memfd_secret)
}

fn memlock() -> String {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid rlimit to fill.
    if unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut lim) } != 0 {
        return "unknown".to_string();
    }
    if lim.rlim_cur == libc::RLIM_INFINITY {
        "unlimited".to_string()
    } else {
        format!(
            "RLIMIT_MEMLOCK {} bytes (for root too: CAP_IPC_LOCK does not lift it)",
            lim.rlim_cur
        )
    }
}
