//! Keeps a 32-byte key in secret memory, uses it, and lets it go.
//!
//! Run it where the secretmemfd module is loaded (or on a kernel with `memfd_secret(2)`):
//! `cargo run --example hold_key`.

use secretmem::{Error, SecretMem};

fn main() -> Result<(), Error> {
    let mut key = match SecretMem::new(32) {
        Ok(key) => key,
        Err(e) => {
            // The error says what to do: load the module, raise RLIMIT_MEMLOCK, ...
            eprintln!("no secret memory: {e}");
            std::process::exit(1);
        }
    };
    // Fill it in place: never build the key elsewhere and copy it in.
    for (i, byte) in key.iter_mut().enumerate() {
        *byte = (i as u8).wrapping_mul(37);
    }
    let checksum: u32 = key.iter().map(|&b| u32::from(b)).sum();
    println!("{key:?} holds a key with checksum {checksum}");
    Ok(())
    // `key` drops here: zeroed, unmapped, and the kernel frees the page.
}
