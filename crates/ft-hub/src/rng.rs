//! NumPy's random permutation, bit for bit, so that `shuffle(seed)` orders rows as `datasets` does.
//!
//! `datasets.Dataset.shuffle(seed=s)` and `train_test_split(seed=s)` draw their order with
//! `np.random.default_rng(s).permutation(len(dataset))`. That is, in NumPy ≥ 1.17:
//!
//! 1. **Seeding** — `SeedSequence(s)`: the seed is split into 32-bit words (least significant
//!    first), hashed into a pool of four 32-bit words (`mix_entropy`, multiply-xorshift hashes
//!    with constants `0x43b0d7e5`/`0x931e8875` and the mixing constants
//!    `0xca01f9dd`/`0x4973f715`), and `generate_state(4, uint64)` draws eight 32-bit words from
//!    the pool (constants `0x8b51f9dd`/`0x58f38ded`), read as four little-endian 64-bit words.
//! 2. **Bit generator** — `PCG64` (PCG XSL-RR 128/64): the first two words are the 128-bit
//!    initial state (high word first), the last two the stream; seeding is
//!    `state = 0; inc = stream << 1 | 1; step; state += initstate; step`, and each 64-bit draw is
//!    one LCG step (multiplier `0x2360ed051fc65da44385df649fccf645`) followed by the XSL-RR output
//!    of the new state. 32-bit draws use the low half of a 64-bit draw and keep the high half
//!    for the next 32-bit draw.
//! 3. **Permutation** — `Generator.permutation(n)` shuffles `arange(n)` with a Fisher–Yates pass
//!    from the end: for `i = n-1 … 1`, swap `i` with `j = random_interval(i)`, where
//!    `random_interval(max)` draws masked values (mask = smallest `2^k - 1 ≥ max`) until one is
//!    `≤ max`, with 32-bit draws when `max < 2^32` and 64-bit draws otherwise.
//!
//! Verified against NumPy 2.4 for several seeds and lengths (`tests/fixtures/data/shuffle.json`).

/// NumPy's `SeedSequence` for an integer seed (no spawn key), pool size 4.
#[derive(Debug, Clone)]
pub struct SeedSequence {
    pool: [u32; 4],
}

const INIT_A: u32 = 0x43b0_d7e5;
const MULT_A: u32 = 0x931e_8875;
const INIT_B: u32 = 0x8b51_f9dd;
const MULT_B: u32 = 0x58f3_8ded;
const MIX_MULT_L: u32 = 0xca01_f9dd;
const MIX_MULT_R: u32 = 0x4973_f715;
const XSHIFT: u32 = 16;

impl SeedSequence {
    /// `np.random.SeedSequence(entropy)` for a non-negative integer `entropy`.
    pub fn new(entropy: u128) -> Self {
        let mut words = Vec::new();
        let mut x = entropy;
        loop {
            words.push(x as u32);
            x >>= 32;
            if x == 0 {
                break;
            }
        }
        let mut hash_const = INIT_A;
        let mut hashmix = |value: u32| {
            let mut value = value ^ hash_const;
            hash_const = hash_const.wrapping_mul(MULT_A);
            value = value.wrapping_mul(hash_const);
            value ^ (value >> XSHIFT)
        };
        let mix = |x: u32, y: u32| {
            let r = MIX_MULT_L.wrapping_mul(x).wrapping_sub(MIX_MULT_R.wrapping_mul(y));
            r ^ (r >> XSHIFT)
        };
        let mut pool = [0u32; 4];
        for (i, slot) in pool.iter_mut().enumerate() {
            *slot = hashmix(words.get(i).copied().unwrap_or(0));
        }
        for src in 0..4 {
            for dst in 0..4 {
                if src != dst {
                    let h = hashmix(pool[src]);
                    pool[dst] = mix(pool[dst], h);
                }
            }
        }
        for &w in words.iter().skip(4) {
            for slot in pool.iter_mut() {
                let h = hashmix(w);
                *slot = mix(*slot, h);
            }
        }
        Self { pool }
    }

    /// `generate_state(n, np.uint64)`.
    pub fn generate_state_u64(&self, n: usize) -> Vec<u64> {
        let mut hash_const = INIT_B;
        let words: Vec<u32> = (0..2 * n)
            .map(|i| {
                let mut v = self.pool[i % 4] ^ hash_const;
                hash_const = hash_const.wrapping_mul(MULT_B);
                v = v.wrapping_mul(hash_const);
                v ^ (v >> XSHIFT)
            })
            .collect();
        words.chunks_exact(2).map(|c| c[0] as u64 | (c[1] as u64) << 32).collect()
    }
}

/// NumPy's `PCG64` bit generator (PCG XSL-RR 128/64), with its buffered 32-bit draws.
#[derive(Debug, Clone)]
pub struct Pcg64 {
    state: u128,
    inc: u128,
    buffered: Option<u32>,
}

const PCG_MULT: u128 = 0x2360_ed05_1fc6_5da4_4385_df64_9fcc_f645;

impl Pcg64 {
    /// `np.random.PCG64(seed)`, i.e. the bit generator of `np.random.default_rng(seed)`.
    pub fn from_seed(seed: u128) -> Self {
        let s = SeedSequence::new(seed).generate_state_u64(4);
        let initstate = (s[0] as u128) << 64 | s[1] as u128;
        let initseq = (s[2] as u128) << 64 | s[3] as u128;
        let mut rng = Self { state: 0, inc: (initseq << 1) | 1, buffered: None };
        rng.step();
        rng.state = rng.state.wrapping_add(initstate);
        rng.step();
        rng
    }

    fn step(&mut self) {
        self.state = self.state.wrapping_mul(PCG_MULT).wrapping_add(self.inc);
    }

    /// The 128-bit LCG state (`bit_generator.state['state']['state']`).
    pub fn state(&self) -> u128 {
        self.state
    }

    /// One 64-bit draw.
    pub fn next_u64(&mut self) -> u64 {
        self.step();
        let s = self.state;
        let x = ((s >> 64) as u64) ^ (s as u64);
        x.rotate_right((s >> 122) as u32)
    }

    /// One 32-bit draw: the low half of a 64-bit draw, then its high half.
    pub fn next_u32(&mut self) -> u32 {
        if let Some(v) = self.buffered.take() {
            return v;
        }
        let n = self.next_u64();
        self.buffered = Some((n >> 32) as u32);
        n as u32
    }

    /// NumPy's `random_interval(max)`: uniform in `[0, max]` by masked rejection.
    pub fn interval(&mut self, max: u64) -> u64 {
        if max == 0 {
            return 0;
        }
        let mut mask = max;
        for shift in [1, 2, 4, 8, 16, 32] {
            mask |= mask >> shift;
        }
        if max <= u32::MAX as u64 {
            loop {
                let v = (self.next_u32() as u64) & mask;
                if v <= max {
                    return v;
                }
            }
        }
        loop {
            let v = self.next_u64() & mask;
            if v <= max {
                return v;
            }
        }
    }

    /// `Generator.permutation(n)`: a Fisher–Yates shuffle of `0..n` from the last element down.
    pub fn permutation(&mut self, n: usize) -> Vec<usize> {
        let mut a: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            let j = self.interval(i as u64) as usize;
            a.swap(i, j);
        }
        a
    }
}

/// `np.random.default_rng(seed).permutation(n)`: the order `datasets`' `shuffle(seed)` gives.
pub fn permutation(n: usize, seed: u64) -> Vec<usize> {
    Pcg64::from_seed(seed as u128).permutation(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numpy_state_after_seeding() {
        // np.random.default_rng(42).bit_generator.state['state']['state']
        let rng = Pcg64::from_seed(42);
        assert_eq!(rng.state(), 274_674_114_334_540_486_603_088_602_300_644_985_544);
    }

    #[test]
    fn numpy_permutations() {
        // np.random.default_rng(seed).permutation(10).tolist()
        assert_eq!(permutation(10, 42), vec![5, 6, 0, 7, 3, 2, 4, 9, 1, 8]);
        assert_eq!(permutation(10, 0), vec![4, 6, 2, 7, 3, 5, 9, 0, 8, 1]);
        assert!(permutation(0, 1).is_empty());
        assert_eq!(permutation(1, 1), vec![0]);
    }

    #[test]
    fn permutation_is_a_permutation() {
        let mut p = permutation(1000, 7);
        p.sort_unstable();
        assert_eq!(p, (0..1000).collect::<Vec<_>>());
    }
}
