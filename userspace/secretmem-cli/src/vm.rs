//! `secretmem vm`: two tiny KVM guests that each hold a MAC key, one with its RAM in ordinary
//! memory (a memfd) and one whose entire RAM is secret memory (a secretmemfd). A verifier
//! challenges both; an attacker in another process tries to take their keys; the verifier
//! challenges them again.
//!
//! Processes: the verifier (this one) forks one VMM per VM and, later, the attacker. The
//! verifier draws each VM's seed, keeps only the key derived from it (in its own secret
//! memory), and hands the seed to the VMM at the fork; the VMM writes it into guest RAM and
//! both zero their copies. The guest derives the same key and wipes the seed.

mod attack;
mod kcore;
mod link;
mod machine;
mod ram;
mod siphash;

use attack::{Attacker, Finding, Target, VM_ATTACKS};
use machine::Machine;
use ram::{GuestRam, Memory};
use secretmem::SecretBox;
use siphash::{Challenge, Key, Seed};
use std::io::Write;
use std::os::unix::net::UnixStream;

type BoxError = Box<dyn std::error::Error>;

/// Challenges each VM answers after the attacks.
const ROUNDS: usize = 16;

/// Zeroes `bytes` in a way the compiler cannot remove.
fn zeroize(bytes: &mut [u8]) {
    for b in bytes.iter_mut() {
        // SAFETY: `b` is a valid, exclusive reference.
        unsafe { std::ptr::write_volatile(b, 0) };
    }
    std::sync::atomic::compiler_fence(std::sync::atomic::Ordering::SeqCst);
}

fn random(bytes: &mut [u8]) -> Result<(), BoxError> {
    // SAFETY: `bytes` is writable for its length.
    let n = unsafe { libc::getrandom(bytes.as_mut_ptr().cast(), bytes.len(), 0) };
    if n != bytes.len() as isize {
        return Err(format!("getrandom: {}", std::io::Error::last_os_error()).into());
    }
    Ok(())
}

fn random_challenge() -> Result<Challenge, BoxError> {
    let mut bytes = [0u8; 16];
    random(&mut bytes)?;
    siphash::words::<2>(&bytes).ok_or_else(|| "16 bytes are two words".into())
}

/// Forks; runs `child` in the child and ends it with its status. Returns the child's pid.
fn fork(child: impl FnOnce() -> i32) -> Result<libc::pid_t, BoxError> {
    let _ = std::io::stdout().flush();
    // SAFETY: This process is single-threaded; the child runs `child` and exits without
    // returning into the parent's code or running its destructors.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(format!("fork: {}", std::io::Error::last_os_error()).into());
    }
    if pid == 0 {
        let status = child();
        let _ = std::io::stdout().flush();
        // SAFETY: Ends the child here.
        unsafe { libc::_exit(status) };
    }
    Ok(pid)
}

/// Waits for child `pid`; whether it exited with status 0.
fn reap(pid: libc::pid_t) -> bool {
    let mut status = 0;
    // SAFETY: `pid` is our child.
    let waited = unsafe { libc::waitpid(pid, &mut status, 0) };
    waited == pid && libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0
}

/// The VMM process: builds the VM around `seed`, zeroes `seed`, serves the verifier.
fn vmm(memory: Memory, seed: &mut Seed, mut link: UnixStream) -> i32 {
    // A VMM outlives no verifier.
    // SAFETY: prctl(PR_SET_PDEATHSIG) has no memory arguments.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
    let machine = GuestRam::new(memory, machine::RAM_SIZE).and_then(|ram| Machine::new(ram, seed));
    zeroize(seed);
    let result = machine.and_then(|mut machine| machine.serve(&mut link));
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("secretmem vm: {} VMM: {e}", name(memory));
            1
        }
    }
}

fn name(memory: Memory) -> &'static str {
    match memory {
        Memory::Ordinary => "ordinary",
        Memory::Secret => "secret",
    }
}

/// The verifier's side of one VM.
struct Vm {
    memory: Memory,
    pid: libc::pid_t,
    link: UnixStream,
    /// The key, derived from the seed before the seed was zeroed.
    key: SecretBox<Key>,
    /// Guest RAM in the VMM: address and size.
    ram: (u64, u64),
    stopped: bool,
}

impl Vm {
    /// Draws a seed, keeps its key, starts the VMM and waits until its guest holds the key.
    fn start(memory: Memory) -> Result<Self, BoxError> {
        let mut seed: Seed = [0; 32];
        random(&mut seed)?;
        let mut key = SecretBox::<Key>::new()?;
        *key = siphash::derive_key(&seed);
        let (link, theirs) = UnixStream::pair()?;
        // The secret box is not mapped in the child (the module's mappings are not inherited),
        // and the child never touches it.
        let pid = fork(|| vmm(memory, &mut seed, theirs));
        zeroize(&mut seed);
        let pid = pid?;
        let mut vm = Vm {
            memory,
            pid,
            link,
            key,
            ram: (0, 0),
            stopped: false,
        };
        vm.ram = link::wait_ready(&mut vm.link).map_err(|e| {
            format!(
                "the {} VMM (pid {pid}) stopped before its guest was ready ({e}); see its error above",
                name(memory)
            )
        })?;
        Ok(vm)
    }

    /// Sends a fresh challenge; returns it with the guest's tag and whether the tag verifies.
    fn challenge(&mut self) -> Result<(Challenge, u64, bool), BoxError> {
        let challenge = random_challenge()?;
        let tag = link::ask(&mut self.link, &challenge)
            .map_err(|e| format!("the {} VM did not answer: {e}", name(self.memory)))?;
        Ok((challenge, tag, siphash::mac(&self.key, &challenge) == tag))
    }

    /// Stops the VM; whether its VMM exited cleanly.
    fn stop(&mut self) -> bool {
        if self.stopped {
            return true;
        }
        self.stopped = true;
        let _ = link::quit(&mut self.link);
        reap(self.pid)
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Runs every attack on both targets in a child process that holds no key. Returns whether the
/// ordinary VM leaked to every attack and the secret VM to none.
fn attack(ordinary: &Target, secret: &Target) -> Result<bool, BoxError> {
    let attacker = fork(|| {
        // SAFETY: getpid has no arguments.
        let pid = unsafe { libc::getpid() };
        println!("attacker: pid {pid}, root, holds no key; it knows a key by the tag seen above");
        println!("  {:<18} {:<44} secret VM", "attack", "ordinary VM");
        let attacker = Attacker::default();
        let mut as_expected = true;
        for attack in &VM_ATTACKS {
            let mut row = format!("  {:<18}", attack.name);
            for (target, secret) in [(ordinary, false), (secret, true)] {
                let (text, leaked) = match (attack.run)(&attacker, target) {
                    Finding::Leaked(text) => (text, true),
                    Finding::Refused(text) => (text, false),
                };
                row += &format!(" {text:<44}");
                as_expected &= leaked != secret;
            }
            println!("{}", row.trim_end());
        }
        i32::from(!as_expected)
    })?;
    Ok(reap(attacker))
}

pub(crate) fn run() -> Result<bool, BoxError> {
    println!(
        "two KVM guests, each with {} KiB of RAM as its only memslot, derive a SipHash-2-4 key",
        machine::RAM_SIZE / 1024
    );
    println!("from a seed the host wrote once and forgot, and MAC challenges over port I/O");
    let mut vms = [Vm::start(Memory::Ordinary)?, Vm::start(Memory::Secret)?];
    let mut targets = Vec::new();
    let mut answers_ok = true;
    for vm in &mut vms {
        let (challenge, tag, ok) = vm.challenge()?;
        answers_ok &= ok;
        println!(
            "  {:<8} VM: VMM pid {}, RAM at {:#x} in {}; challenge {:016x}{:016x} -> tag {tag:016x} {}",
            name(vm.memory),
            vm.pid,
            vm.ram.0,
            match vm.memory {
                Memory::Ordinary => "a memfd",
                Memory::Secret => "a secretmemfd",
            },
            challenge[0],
            challenge[1],
            if ok { "verifies" } else { "DOES NOT VERIFY" }
        );
        targets.push(Target {
            pid: vm.pid,
            addr: vm.ram.0,
            len: usize::try_from(vm.ram.1)?,
            sighting: (challenge, tag),
            signature: machine::program_signature(),
        });
    }
    // SAFETY: getpid has no arguments.
    let verifier = unsafe { libc::getpid() };
    println!(
        "  the verifier (pid {verifier}) keeps both keys in its own secret memory; the VMMs keep none"
    );
    println!();

    let attacks_ok = attack(&targets[0], &targets[1])?;
    println!();

    let mut answered = Vec::new();
    for vm in &mut vms {
        let mut good = 0;
        for _ in 0..ROUNDS {
            good += usize::from(vm.challenge()?.2);
        }
        answered.push(format!("{} VM {good}/{ROUNDS}", name(vm.memory)));
        answers_ok &= good == ROUNDS;
    }
    println!(
        "after the attacks, correct answers to fresh challenges: {}",
        answered.join(", ")
    );
    let stopped = vms.iter_mut().fold(true, |ok, vm| vm.stop() & ok);
    if !stopped {
        println!("a VMM did not exit cleanly (see its error above)");
    }
    let ok = attacks_ok && answers_ok && stopped;
    println!(
        "{}",
        if ok {
            "result: the ordinary VM leaked its key to every attack; the secret VM to none and answered every challenge"
        } else {
            "result: UNEXPECTED: see the lines above"
        }
    );
    Ok(ok)
}
