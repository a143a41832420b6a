//! Assembles the guest of `secretmem vm` (`src/vm/guest.S`) into a flat binary in `OUT_DIR`,
//! which `src/vm/machine.rs` includes.

use std::env;
use std::path::PathBuf;
use std::process::{exit, Command};

const SOURCE: &str = "src/vm/guest.S";

/// Runs a build tool, or stops the build with a one-line reason.
fn run(tool: &str, args: &[&str]) {
    match Command::new(tool).args(args).status() {
        Ok(status) if status.success() => {}
        Ok(status) => {
            eprintln!(
                "secretmem-cli: `{tool} {}` failed: {status}",
                args.join(" ")
            );
            exit(1);
        }
        Err(e) => {
            eprintln!("secretmem-cli: cannot run {tool} to assemble {SOURCE} (install gcc and binutils): {e}");
            exit(1);
        }
    }
}

fn main() {
    println!("cargo::rerun-if-changed={SOURCE}");
    let Some(out) = env::var_os("OUT_DIR").map(PathBuf::from) else {
        eprintln!("secretmem-cli: cargo did not set OUT_DIR");
        exit(1);
    };
    let object = out.join("guest.o");
    let binary = out.join("guest.bin");
    let (object, binary) = (object.to_string_lossy(), binary.to_string_lossy());
    // The guest is x86-64 code whatever the host; `cc` preprocesses .S files.
    run("cc", &["-m64", "-c", "-o", &object, SOURCE]);
    // Only .text: the guest keeps its data there too, and nothing needs relocating.
    run(
        "objcopy",
        &["-O", "binary", "-j", ".text", &object, &binary],
    );
}
