//! The VMM: a KVM VM with one vCPU in 64-bit mode whose only memslot is a [`GuestRam`], running
//! the guest of `guest.S` and serving it challenges from the verifier over two I/O ports.
//!
//! Guest-physical layout (RAM starts at 0):
//!
//! | address  | what                                                  |
//! |----------|-------------------------------------------------------|
//! | `0x1000` | PML4, PDPT at `0x2000`, PD at `0x3000`: one 2 MiB page identity-maps RAM |
//! | `0x4000` | the seed, 32 bytes, until the guest wipes it          |
//! | `0x8000` | the guest program, its key and its message buffer     |
//! | top      | the stack, growing down from the end of RAM           |

use super::link::{self, Request};
use super::ram::GuestRam;
use kvm_bindings::{kvm_regs, kvm_segment, kvm_userspace_memory_region, KVM_MAX_CPUID_ENTRIES};
use kvm_ioctls::{Kvm, VcpuExit, VcpuFd, VmFd};
use std::os::unix::net::UnixStream;

type BoxError = Box<dyn std::error::Error>;

/// The guest program, assembled by build.rs.
const GUEST: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/guest.bin"));

/// Guest RAM: 16 pages.
pub(crate) const RAM_SIZE: usize = 64 * 1024;
const PML4: u64 = 0x1000;
const PDPT: u64 = 0x2000;
const PD: u64 = 0x3000;
const SEED: u64 = 0x4000;
const ENTRY: u64 = 0x8000;

/// Where the guest reads challenges (four 32-bit IN) and writes tags (two 32-bit OUT).
const PORT_CHALLENGE: u16 = 0x10;
const PORT_TAG: u16 = 0x11;
const CHALLENGE_LEN: usize = 16;
const TAG_LEN: usize = 8;

// The program, its data and its stack must fit between ENTRY and the end of RAM, and the key
// must share one page with the program's first bytes (`attack.rs` finds pages by them).
const _: () = assert!(GUEST.len() <= 4096 && ENTRY as usize + 4096 < RAM_SIZE);

const PTE_PRESENT_RW: u64 = 0b11;
const PDE_2M_PAGE: u64 = 1 << 7;
const CR0_PE: u64 = 1;
const CR0_ET: u64 = 1 << 4;
const CR0_PG: u64 = 1 << 31;
const CR4_PAE: u64 = 1 << 5;
const EFER_LME: u64 = 1 << 8;
const EFER_LMA: u64 = 1 << 10;

/// The first bytes of the guest program: what the kcore attack looks for in physical pages.
pub(crate) fn program_signature() -> &'static [u8] {
    &GUEST[..16]
}

/// A VM ready to run. Its fields drop in order: the vCPU and the VM before their RAM.
pub(crate) struct Machine {
    vcpu: VcpuFd,
    _vm: VmFd,
    ram: GuestRam,
}

impl Machine {
    /// Loads the guest and `seed` into `ram` and builds the VM around it. Every failure to get
    /// a VM (no `/dev/kvm`, `KVM_CREATE_VM` refused) is an error.
    pub(crate) fn new(mut ram: GuestRam, seed: &[u8; 32]) -> Result<Self, BoxError> {
        ram.write(PML4, &(PDPT | PTE_PRESENT_RW).to_le_bytes())?;
        ram.write(PDPT, &(PD | PTE_PRESENT_RW).to_le_bytes())?;
        ram.write(PD, &(PDE_2M_PAGE | PTE_PRESENT_RW).to_le_bytes())?;
        ram.write(ENTRY, GUEST)?;
        ram.write(SEED, seed)?;

        let kvm = Kvm::new().map_err(|e| format!("cannot open /dev/kvm: {e}"))?;
        let vm = kvm
            .create_vm()
            .map_err(|e| format!("KVM_CREATE_VM failed: {e}"))?;
        let region = kvm_userspace_memory_region {
            slot: 0,
            flags: 0,
            guest_phys_addr: 0,
            memory_size: ram.len() as u64,
            userspace_addr: ram.host_address(),
        };
        // SAFETY: The region is `ram`'s whole mapping, which stays mapped until `ram` drops,
        // after the VM (field order of `Machine`). Nothing else in this process maps or writes
        // it while the guest runs: `GuestRam::write` is only called above.
        unsafe { vm.set_user_memory_region(region) }
            .map_err(|e| format!("KVM_SET_USER_MEMORY_REGION failed: {e}"))?;
        let vcpu = vm
            .create_vcpu(0)
            .map_err(|e| format!("KVM_CREATE_VCPU failed: {e}"))?;
        let cpuid = kvm
            .get_supported_cpuid(KVM_MAX_CPUID_ENTRIES)
            .map_err(|e| format!("KVM_GET_SUPPORTED_CPUID failed: {e}"))?;
        vcpu.set_cpuid2(&cpuid)
            .map_err(|e| format!("KVM_SET_CPUID2 failed: {e}"))?;
        enter_long_mode(&vcpu)?;
        Ok(Machine { vcpu, _vm: vm, ram })
    }

    /// Runs the guest: reports it ready once it first asks for a challenge, then answers the
    /// verifier's requests on `link` until it says quit.
    pub(crate) fn serve(&mut self, link: &mut UnixStream) -> Result<(), BoxError> {
        let (addr, len) = (self.ram.host_address(), self.ram.len() as u64);
        let mut ready = false;
        let mut challenge = [0u8; CHALLENGE_LEN];
        // How much of the challenge the guest has read, and of its tag written.
        let mut given = 0;
        let mut tag = [0u8; TAG_LEN];
        let mut taken = 0;
        loop {
            match self.vcpu.run() {
                Ok(VcpuExit::IoIn(PORT_CHALLENGE, data)) => {
                    if given == 0 {
                        if !ready {
                            link::send_ready(link, addr, len)?;
                            ready = true;
                        }
                        match link::read_request(link)? {
                            Request::Challenge(words) => {
                                for (bytes, word) in challenge.chunks_exact_mut(8).zip(words) {
                                    bytes.copy_from_slice(&word.to_le_bytes());
                                }
                            }
                            Request::Quit => return Ok(()),
                        }
                    }
                    let part = challenge
                        .get(given..given + data.len())
                        .ok_or("the guest read past the challenge")?;
                    data.copy_from_slice(part);
                    given = (given + data.len()) % CHALLENGE_LEN;
                }
                Ok(VcpuExit::IoOut(PORT_TAG, data)) => {
                    tag.get_mut(taken..taken + data.len())
                        .ok_or("the guest wrote past its tag")?
                        .copy_from_slice(data);
                    taken = (taken + data.len()) % TAG_LEN;
                    if taken == 0 {
                        link::send_tag(link, u64::from_le_bytes(tag))?;
                    }
                }
                Ok(exit) => return Err(format!("unexpected VM exit: {exit:?}").into()),
                // A signal (an attacker's ptrace stop) interrupted KVM_RUN: run on.
                Err(e) if e.errno() == libc::EINTR => {}
                Err(e) => return Err(format!("KVM_RUN failed: {e}").into()),
            }
        }
    }
}

/// Puts the vCPU in 64-bit mode at the guest's entry, with flat segments, our page tables,
/// interrupts off, `%rdi` at the seed and `%rsp` at the top of RAM.
fn enter_long_mode(vcpu: &VcpuFd) -> Result<(), BoxError> {
    let mut sregs = vcpu
        .get_sregs()
        .map_err(|e| format!("KVM_GET_SREGS failed: {e}"))?;
    let code = kvm_segment {
        base: 0,
        limit: 0xffff_ffff,
        selector: 1 << 3,
        type_: 0xb, // execute/read, accessed
        present: 1,
        dpl: 0,
        db: 0,
        s: 1,
        l: 1,
        g: 1,
        ..Default::default()
    };
    let data = kvm_segment {
        selector: 2 << 3,
        type_: 0x3, // read/write, accessed
        db: 1,
        l: 0,
        ..code
    };
    sregs.cs = code;
    (sregs.ds, sregs.es, sregs.fs, sregs.gs, sregs.ss) = (data, data, data, data, data);
    sregs.cr3 = PML4;
    sregs.cr4 = CR4_PAE;
    sregs.cr0 = CR0_PE | CR0_ET | CR0_PG;
    sregs.efer = EFER_LME | EFER_LMA;
    vcpu.set_sregs(&sregs)
        .map_err(|e| format!("KVM_SET_SREGS (64-bit mode) failed: {e}"))?;
    let regs = kvm_regs {
        rip: ENTRY,
        rdi: SEED,
        rsp: RAM_SIZE as u64,
        rflags: 0x2, // bit 1 is always set; IF is clear
        ..Default::default()
    };
    vcpu.set_regs(&regs)
        .map_err(|e| format!("KVM_SET_REGS failed: {e}"))?;
    Ok(())
}
