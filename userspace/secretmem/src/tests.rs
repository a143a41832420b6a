//! Unit tests that run on any machine: they need neither the module nor `memfd_secret(2)`.

use super::*;

const MISSING: &CStr = c"/nonexistent/secretmem";

#[test]
fn sizes_are_checked_up_front() {
    assert!(matches!(
        check_size(0, 4096, None),
        Err(Error::InvalidSize(0))
    ));
    // The kernel takes any file size up to i64::MAX, as memfd_secret(2) does; the crate sizes
    // whole pages.
    assert_eq!(check_size(1 << 31, 4096, None).unwrap(), 1 << 31);
    assert_eq!(check_size(5 << 30, 4096, None).unwrap(), 5 << 30);
    let largest = i64::MAX as usize / 4096 * 4096;
    assert_eq!(check_size(largest, 4096, None).unwrap(), largest);
    for len in [largest + 1, i64::MAX as usize, usize::MAX] {
        assert!(matches!(
            check_size(len, 4096, None),
            Err(Error::InvalidSize(l)) if l == len
        ));
    }
    assert_eq!(check_size(1, 4096, None).unwrap(), 4096);
    assert_eq!(check_size(4097, 4096, Some(8192)).unwrap(), 8192);
}

#[test]
fn memlock_limit_is_named_with_the_way_out() {
    let err = check_size(3 * 4096, 4096, Some(8192)).unwrap_err();
    assert!(matches!(
        err,
        Error::MemlockLimit {
            needed: 12288,
            limit: 8192
        }
    ));
    let text = err.to_string();
    assert!(text.contains("RLIMIT_MEMLOCK"), "{text}");
    assert!(text.contains("ulimit -l"), "{text}");
    // CAP_IPC_LOCK does not lift the limit, in the kernel or here: the text must not send the
    // reader after it.
    assert!(text.contains("CAP_IPC_LOCK does not lift it"), "{text}");
}

#[test]
fn missing_module_says_to_load_it() {
    let options = Options::new().device(MISSING).memfd_secret_fallback(false);
    let err = SecretMem::with_options(16, &options).unwrap_err();
    assert!(matches!(err, Error::ModuleNotLoaded));
    assert!(err.to_string().contains("load the secretmemfd module"));
}

#[test]
fn no_silent_downgrade_to_ordinary_memory() {
    // Without the module and without memfd_secret, the only way to ordinary memory is to ask.
    let refused = Options::new().device(MISSING).memfd_secret_fallback(false);
    assert!(SecretMem::with_options(16, &refused).is_err());
    let asked = refused.allow_ordinary_memory(true);
    let mem = SecretMem::with_options(16, &asked).unwrap();
    assert_eq!(mem.backend(), Backend::OrdinaryMemory);
    assert!(!mem.backend().is_secret());
}

#[test]
fn uncached_mode_does_not_fall_back_to_memfd_secret() {
    let options = Options::new().device(MISSING).mode(Mode::Uncached);
    assert!(matches!(
        SecretMem::with_options(16, &options),
        Err(Error::Unsupported)
    ));
}

#[test]
fn bytes_read_back_and_debug_hides_them() {
    let options = Options::new()
        .device(MISSING)
        .memfd_secret_fallback(false)
        .allow_ordinary_memory(true);
    let mut mem = SecretMem::with_options(5000, &options).unwrap();
    assert_eq!(mem.len(), 5000);
    assert!(mem.iter().all(|&b| b == 0));
    mem.copy_from_slice(&[0xAB; 5000]);
    assert_eq!(mem[4999], 0xAB);
    let shown = format!("{mem:?}");
    assert!(shown.contains("len: 5000"), "{shown}");
    assert!(
        !shown.contains("171") && !shown.to_lowercase().contains("ab,"),
        "{shown}"
    );
}

#[test]
fn zeroize_clears_every_byte() {
    let mut bytes = [0x5Au8; 300];
    zeroize(&mut bytes);
    assert!(bytes.iter().all(|&b| b == 0));
}

#[test]
fn secret_box_starts_zeroed_and_hides_its_value() {
    let options = Options::new()
        .device(MISSING)
        .memfd_secret_fallback(false)
        .allow_ordinary_memory(true);
    let mut seed = SecretBox::<[u64; 4]>::with_options(&options).unwrap();
    assert_eq!(*seed, [0; 4]);
    seed[3] = 0xDEAD_BEEF;
    assert_eq!(seed[3], 0xDEAD_BEEF);
    let shown = format!("{seed:?}");
    assert!(shown.contains("[u64; 4]"), "{shown}");
    assert!(!shown.contains("3735928559"), "{shown}");
}

#[test]
fn secret_box_of_nothing_is_refused() {
    let options = Options::new().device(MISSING).allow_ordinary_memory(true);
    assert!(matches!(
        SecretBox::<[u8; 0]>::with_options(&options),
        Err(Error::InvalidSize(0))
    ));
}
