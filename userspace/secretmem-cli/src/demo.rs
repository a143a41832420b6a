//! `secretmem demo`: a key agent with its Ed25519 seed in secret memory and, for comparison, a
//! copy in ordinary memory. Attackers of the same user and root try to read both; the agent
//! then signs a request to show it still works.

use crate::attack::{Outcome, ATTACKS, KEY_LEN};
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use secretmem::SecretBox;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::{fs, thread, time::Duration};

/// The user the agent (and the same-user attacker) runs as when the demo starts as root.
const AGENT_UID: libc::uid_t = 65534;

type BoxError = Box<dyn std::error::Error>;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

fn drop_to(uid: libc::uid_t) -> Result<(), BoxError> {
    // SAFETY: Plain credential changes of this process.
    if unsafe {
        libc::setgroups(0, std::ptr::null()) != 0
            || libc::setgid(uid) != 0
            || libc::setuid(uid) != 0
    } {
        return Err(format!(
            "cannot switch to uid {uid}: {}",
            std::io::Error::last_os_error()
        )
        .into());
    }
    // A process that changed its credentials is not dumpable, which alone would keep
    // same-user attackers out; make it an ordinary process of that user again.
    // SAFETY: prctl(PR_SET_DUMPABLE) has no memory arguments.
    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 1) };
    Ok(())
}

/// The agent: keeps the seed, answers `WHERE`, `SIGN <hex>` and `QUIT`, one per line.
fn agent(socket: &Path) -> Result<(), BoxError> {
    // Filled in place: the seed never exists outside secret memory.
    let mut seed = SecretBox::<[u8; KEY_LEN]>::new()?;
    // SAFETY: `seed` is KEY_LEN writable bytes.
    if unsafe { libc::getrandom(seed.as_mut_ptr().cast(), KEY_LEN, 0) } != KEY_LEN as isize {
        return Err("getrandom failed".into());
    }
    // The comparison: the same key as most programs keep it.
    let plain: Vec<u8> = seed.to_vec();
    let listener = UnixListener::bind(socket)?;
    for stream in listener.incoming() {
        let mut stream = stream?;
        let mut line = String::new();
        BufReader::new(&stream).read_line(&mut line)?;
        let mut words = line.split_whitespace();
        let reply = match words.next() {
            // Demo only: where the two copies are; an attacker would read /proc/PID/maps.
            Some("WHERE") => format!(
                "{:x} {:x} {:?}",
                seed.as_ptr() as usize,
                plain.as_ptr() as usize,
                seed.backend()
            ),
            Some("SIGN") => {
                let msg = unhex(words.next().unwrap_or("")).unwrap_or_default();
                // The expanded key lives on the stack only while signing; it zeroes on drop.
                let key = SigningKey::from_bytes(&seed);
                format!(
                    "{} {}",
                    hex(&key.sign(&msg).to_bytes()),
                    hex(key.verifying_key().as_bytes())
                )
            }
            _ => return Ok(()),
        };
        writeln!(stream, "{reply}")?;
    }
    Ok(())
}

fn ask(socket: &Path, request: &str) -> Result<String, BoxError> {
    let mut stream = UnixStream::connect(socket)?;
    writeln!(stream, "{request}")?;
    let mut reply = String::new();
    BufReader::new(stream).read_line(&mut reply)?;
    Ok(reply.trim().to_string())
}

/// Whether leaked bytes really are the agent's key: they must derive its public key.
fn describe(outcome: &Outcome, public: &VerifyingKey) -> (String, bool) {
    match outcome {
        Ok(bytes) => {
            let derived = SigningKey::from_bytes(bytes).verifying_key();
            let real = if derived == *public {
                ", the agent's key"
            } else {
                ", not the key"
            };
            (format!("LEAKED {}..{real}", &hex(bytes)[..12]), true)
        }
        Err(e) => (format!("refused: {e}"), false),
    }
}

/// Runs every attack as the current user and prints one row per attack. Returns whether the
/// ordinary copy leaked and the secret one did not, every time.
fn attack_both(agent: libc::pid_t, secret: usize, plain: usize, public: &VerifyingKey) -> bool {
    let mut as_expected = true;
    // SAFETY: getuid has no arguments.
    let uid = unsafe { libc::getuid() };
    for attack in &ATTACKS {
        let (plain_text, plain_leaked) = describe(&attack.run(agent, plain), public);
        let (secret_text, secret_leaked) = describe(&attack.run(agent, secret), public);
        println!(
            "  uid {uid:<6} {:<18} {:<40} {}",
            attack.name, plain_text, secret_text
        );
        as_expected &= plain_leaked && !secret_leaked;
    }
    as_expected
}

/// Runs `attack_both` in a child that has switched to `uid`.
fn attack_as(
    uid: libc::uid_t,
    agent: libc::pid_t,
    secret: usize,
    plain: usize,
    public: &VerifyingKey,
) -> Result<bool, BoxError> {
    // SAFETY: The child only attacks, prints and exits.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err("fork failed".into());
    }
    if pid == 0 {
        let ok = drop_to(uid).is_ok() && attack_both(agent, secret, plain, public);
        let _ = std::io::stdout().flush();
        // SAFETY: Ends the child here.
        unsafe { libc::_exit(if ok { 0 } else { 1 }) };
    }
    let mut status = 0;
    // SAFETY: `pid` is our child.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    Ok(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0)
}

pub(crate) fn run() -> Result<bool, BoxError> {
    // SAFETY: geteuid has no arguments.
    let root = unsafe { libc::geteuid() } == 0;
    let dir = PathBuf::from(format!("/tmp/secretmem-demo-{}", std::process::id()));
    fs::create_dir_all(&dir)?;
    let socket = dir.join("agent.sock");
    if root {
        // SAFETY: chown of our own directory has no memory arguments beyond the path.
        let path = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes())?;
        unsafe { libc::chown(path.as_ptr(), AGENT_UID, AGENT_UID) };
    }
    let _ = std::io::stdout().flush();

    // SAFETY: The child runs the agent and exits.
    let agent_pid = unsafe { libc::fork() };
    if agent_pid < 0 {
        return Err("fork failed".into());
    }
    if agent_pid == 0 {
        let result = if root { drop_to(AGENT_UID) } else { Ok(()) }.and_then(|()| agent(&socket));
        if let Err(e) = &result {
            eprintln!("agent: {e}");
        }
        // SAFETY: Ends the agent here.
        unsafe { libc::_exit(result.is_err() as i32) };
    }

    let mut tries = 0;
    while !socket.exists() && tries < 100 {
        thread::sleep(Duration::from_millis(50));
        tries += 1;
    }
    let result = demo(agent_pid, &socket, root);
    let _ = ask(&socket, "QUIT");
    let mut status = 0;
    // SAFETY: `agent_pid` is our child.
    unsafe { libc::waitpid(agent_pid, &mut status, 0) };
    let _ = fs::remove_dir_all(&dir);
    result
}

fn demo(agent: libc::pid_t, socket: &Path, root: bool) -> Result<bool, BoxError> {
    let where_ = ask(socket, "WHERE")?;
    let mut words = where_.split_whitespace();
    let (Some(secret), Some(plain), Some(backend)) = (words.next(), words.next(), words.next())
    else {
        return Err("bad WHERE reply".into());
    };
    let (secret, plain) = (
        usize::from_str_radix(secret, 16)?,
        usize::from_str_radix(plain, 16)?,
    );
    let first = ask(socket, &format!("SIGN {}", hex(b"hello")))?;
    let public_hex = first.split_whitespace().nth(1).ok_or("bad SIGN reply")?;
    let public = VerifyingKey::from_bytes(unhex(public_hex).ok_or("bad key")?[..].try_into()?)?;

    println!("key agent pid {agent}: Ed25519 seed in secret memory at {secret:#x} ({backend}),");
    println!("                      the same seed in ordinary memory at {plain:#x}");
    println!();
    println!(
        "  {:<10} {:<18} {:<40} secret memory",
        "attacker", "attack", "ordinary memory"
    );
    // As root: the agent's user first, in a child, then root. Otherwise: our own user.
    let ok = if root {
        attack_as(AGENT_UID, agent, secret, plain, &public)?
            & attack_both(agent, secret, plain, &public)
    } else {
        let ok = attack_both(agent, secret, plain, &public);
        println!("  (run as root to see root's attacks too)");
        ok
    };

    let message = b"sign this request";
    let reply = ask(socket, &format!("SIGN {}", hex(message)))?;
    let signature_hex = reply.split_whitespace().next().ok_or("bad SIGN reply")?;
    let signature = Signature::from_slice(&unhex(signature_hex).ok_or("bad signature")?)?;
    let verified = public.verify(message, &signature).is_ok();
    println!();
    println!(
        "after the attacks the agent still signs: signature {}",
        if verified {
            "verifies"
        } else {
            "DOES NOT VERIFY"
        }
    );
    println!(
        "{}",
        if ok && verified {
            "result: the ordinary copy leaked to every attack; the secret one to none"
        } else {
            "result: UNEXPECTED: see the rows above"
        }
    );
    Ok(ok && verified)
}
