//! The socket between the verifier and a VMM: fixed-size binary frames, both ends.
//!
//! VMM to verifier: `R` + the host address and size of guest RAM (u64 LE each) once the guest
//! is ready, then one 8-byte tag (LE) per challenge. Verifier to VMM: `C` + a 16-byte
//! challenge, or `Q` to stop.

use super::siphash::Challenge;
use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;

const READY: u8 = b'R';
const CHALLENGE: u8 = b'C';
const QUIT: u8 = b'Q';

/// What the verifier asks of a VMM.
pub(crate) enum Request {
    /// Have the guest MAC this challenge.
    Challenge(Challenge),
    /// Stop the VM.
    Quit,
}

fn bad(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what)
}

/// VMM side: the guest has its key; its RAM is `len` bytes at `addr` in the VMM.
pub(crate) fn send_ready(link: &mut UnixStream, addr: u64, len: u64) -> io::Result<()> {
    let mut frame = vec![READY];
    frame.extend_from_slice(&addr.to_le_bytes());
    frame.extend_from_slice(&len.to_le_bytes());
    link.write_all(&frame)
}

/// VMM side: the next request.
pub(crate) fn read_request(link: &mut UnixStream) -> io::Result<Request> {
    let mut op = [0; 1];
    link.read_exact(&mut op)?;
    match op[0] {
        CHALLENGE => {
            let mut bytes = [0; 8];
            let mut challenge = [0; 2];
            for word in &mut challenge {
                link.read_exact(&mut bytes)?;
                *word = u64::from_le_bytes(bytes);
            }
            Ok(Request::Challenge(challenge))
        }
        QUIT => Ok(Request::Quit),
        _ => Err(bad("unknown request")),
    }
}

/// VMM side: the guest's tag for the last challenge.
pub(crate) fn send_tag(link: &mut UnixStream, tag: u64) -> io::Result<()> {
    link.write_all(&tag.to_le_bytes())
}

/// Verifier side: waits until the guest is ready; returns where its RAM is in the VMM.
pub(crate) fn wait_ready(link: &mut UnixStream) -> io::Result<(u64, u64)> {
    let mut frame = [0; 17];
    link.read_exact(&mut frame)?;
    let word = |i: usize| {
        let mut bytes = [0; 8];
        bytes.copy_from_slice(&frame[i..i + 8]);
        u64::from_le_bytes(bytes)
    };
    if frame[0] != READY {
        return Err(bad("expected the VMM's ready frame"));
    }
    Ok((word(1), word(9)))
}

/// Verifier side: sends `challenge`, returns the guest's tag.
pub(crate) fn ask(link: &mut UnixStream, challenge: &Challenge) -> io::Result<u64> {
    let mut frame = vec![CHALLENGE];
    for word in challenge {
        frame.extend_from_slice(&word.to_le_bytes());
    }
    link.write_all(&frame)?;
    let mut tag = [0; 8];
    link.read_exact(&mut tag)?;
    Ok(u64::from_le_bytes(tag))
}

/// Verifier side: stops the VM.
pub(crate) fn quit(link: &mut UnixStream) -> io::Result<()> {
    link.write_all(&[QUIT])
}
