//! SipHash-2-4, the keyed function of the guest (`guest.S`), and the two things the guest does
//! with it: derive its key from the seed and MAC a challenge. The verifier checks tags with
//! these, and the attacker recognises a key by them.

/// A SipHash key: two little-endian words.
pub(crate) type Key = [u64; 2];

/// The seed the host gives the guest: four little-endian words s0..s3.
pub(crate) type Seed = [u8; 32];

/// A challenge: two little-endian words.
pub(crate) type Challenge = [u64; 2];

struct State([u64; 4]);

impl State {
    fn new(key: &Key) -> Self {
        State([
            key[0] ^ 0x736f_6d65_7073_6575,
            key[1] ^ 0x646f_7261_6e64_6f6d,
            key[0] ^ 0x6c79_6765_6e65_7261,
            key[1] ^ 0x7465_6462_7974_6573,
        ])
    }

    fn round(&mut self) {
        let v = &mut self.0;
        v[0] = v[0].wrapping_add(v[1]);
        v[1] = v[1].rotate_left(13) ^ v[0];
        v[0] = v[0].rotate_left(32);
        v[2] = v[2].wrapping_add(v[3]);
        v[3] = v[3].rotate_left(16) ^ v[2];
        v[0] = v[0].wrapping_add(v[3]);
        v[3] = v[3].rotate_left(21) ^ v[0];
        v[2] = v[2].wrapping_add(v[1]);
        v[1] = v[1].rotate_left(17) ^ v[2];
        v[2] = v[2].rotate_left(32);
    }

    fn compress(&mut self, m: u64) {
        self.0[3] ^= m;
        self.round();
        self.round();
        self.0[0] ^= m;
    }

    fn finish(mut self) -> u64 {
        self.0[2] ^= 0xff;
        for _ in 0..4 {
            self.round();
        }
        self.0.iter().fold(0, |acc, v| acc ^ v)
    }
}

/// SipHash-2-4 of `msg` under `key`.
pub(crate) fn siphash24(key: &Key, msg: &[u8]) -> u64 {
    let mut state = State::new(key);
    let mut blocks = msg.chunks_exact(8);
    for block in &mut blocks {
        let mut word = [0; 8];
        word.copy_from_slice(block);
        state.compress(u64::from_le_bytes(word));
    }
    let mut last = [0; 8];
    last[..blocks.remainder().len()].copy_from_slice(blocks.remainder());
    last[7] = msg.len() as u8;
    state.compress(u64::from_le_bytes(last));
    state.finish()
}

/// SipHash-2-4 of little-endian words, as the guest computes it.
fn siphash24_words(key: &Key, words: &[u64]) -> u64 {
    let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
    siphash24(key, &bytes)
}

/// The guest's key: SipHash keyed by the seed's first half, of its second half and a counter.
pub(crate) fn derive_key(seed: &Seed) -> Key {
    // A `Seed` is 32 bytes, so `words` never fails here.
    let [s0, s1, s2, s3] = words::<4>(seed).unwrap_or_default();
    let prf = |i| siphash24_words(&[s0, s1], &[s2, s3, i]);
    [prf(0), prf(1)]
}

/// The guest's answer to `challenge`.
pub(crate) fn mac(key: &Key, challenge: &Challenge) -> u64 {
    siphash24_words(key, challenge)
}

/// Little-endian words from bytes; `N * 8` bytes must be given.
pub(crate) fn words<const N: usize>(bytes: &[u8]) -> Option<[u64; N]> {
    if bytes.len() != N * 8 {
        return None;
    }
    let mut words = [0; N];
    for (word, chunk) in words.iter_mut().zip(bytes.chunks_exact(8)) {
        let mut b = [0; 8];
        b.copy_from_slice(chunk);
        *word = u64::from_le_bytes(b);
    }
    Some(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reference key 00 01 .. 0f.
    fn reference_key() -> Key {
        [0x0706_0504_0302_0100, 0x0f0e_0d0c_0b0a_0908]
    }

    #[test]
    fn reference_vectors() {
        // From the SipHash paper's reference implementation: message 00 01 .. (len - 1).
        let msg: Vec<u8> = (0..15).collect();
        let key = reference_key();
        assert_eq!(siphash24(&key, &msg[..0]), 0x726f_db47_dd0e_0e31);
        assert_eq!(siphash24(&key, &msg[..1]), 0x74f8_39c5_93dc_67fd);
        assert_eq!(siphash24(&key, &msg[..8]), 0x93f5_f579_9a93_2462);
        assert_eq!(siphash24(&key, &msg[..15]), 0xa129_ca61_49be_45e5);
    }

    #[test]
    fn words_are_little_endian_bytes() {
        let key = reference_key();
        assert_eq!(
            siphash24_words(&key, &[0x0706_0504_0302_0100]),
            0x93f5_f579_9a93_2462
        );
        assert_eq!(words::<2>(&(0..16).collect::<Vec<u8>>()), Some(key));
        assert_eq!(words::<2>(&[0; 15]), None);
    }

    #[test]
    fn key_depends_on_every_seed_word() {
        let seed: Seed = std::array::from_fn(|i| i as u8);
        let key = derive_key(&seed);
        assert_ne!(key[0], key[1]);
        for i in (0..32).step_by(8) {
            let mut other = seed;
            other[i] ^= 1;
            assert_ne!(derive_key(&other), key);
        }
    }
}
