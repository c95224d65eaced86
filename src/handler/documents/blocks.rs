//! The host's doubly escaped documents text, 64 bytes at a time: which bytes survive the two
//! unescapes, which quotes open or close the documents' strings, and which brackets lie outside
//! them, all as bit masks (bit `i`: byte `i` of the block) with no branch per byte.
//!
//! In the outer string every byte of the documents' text is one of: itself, `\\\"` (a quote),
//! `\\\\` (a backslash). So a maximal run of `n` backslashes in the body and the byte after it
//! (its terminator) are, in the documents' text, `n / 4` backslashes and the terminator, where:
//! - `n % 4 == 3` and a quote: a quote, which opens or closes a string when `n / 4` is even
//!   (`n % 8 == 3`) and is an escaped quote inside one when it is odd (`n % 8 == 7`);
//! - `n % 4 == 0` and not a quote: the terminator itself (escaped by the last backslash when
//!   `n / 4` is odd, as in `\n`);
//! - anything else (a quote after no backslash or after `n % 4 == 1`: the end of one of the two
//!   strings; other remainders: an escape such as `\n` at one of the outer levels) is not for
//!   this path: `classify` gives `None` and the caller decodes that stretch byte by byte.
//!
//! Run lengths come from carries: adding a run's first bit to the backslash mask carries through
//! the run into the bit after it, so one addition per start position class (modulo 8) gives
//! every terminator with its run's length modulo 8.

/// Bytes per block.
pub(super) const BLOCK: usize = 64;

/// Bit `i` set for each byte `i` of a block that is a backslash, a quote, a control byte (which
/// the outer string may not hold raw), or a bracket.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Masks {
    pub backslash: u64,
    pub quote: u64,
    pub control: u64,
    pub bracket: u64,
}

/// What a block is in the documents' text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Block {
    /// How many of the block's bytes this covers: all 64, or up to a run of backslashes that
    /// reaches the block's end (its length is not known yet, so it starts the next block).
    pub length: usize,
    /// The bytes that are the documents' text, in order (the others are escapes' backslashes).
    pub keep: u64,
    /// The brackets outside the documents' strings.
    pub brackets: u64,
    /// Whether the covered bytes end inside a string of the documents.
    pub in_string: bool,
}

const EVERY_8TH: u64 = 0x0101_0101_0101_0101;
const EVERY_4TH: u64 = 0x1111_1111_1111_1111;

/// The block as the documents' text, given whether it starts inside one of their strings;
/// `None` if it holds anything but plain bytes and the two escapes (see the module docs). The
/// byte before the block must not be a backslash: a run must start in the block to be measured.
#[inline]
pub(super) fn classify(masks: Masks, in_string: bool) -> Option<Block> {
    // A run reaching the end goes to the next block, whole.
    let length = if masks.backslash >> 63 == 1 {
        let last_other = (!masks.backslash).leading_zeros();
        BLOCK - last_other as usize
    } else {
        BLOCK
    };
    if length == 0 {
        return None;
    }
    let covered = u64::MAX >> (BLOCK - length);
    let backslash = masks.backslash & covered;
    let quote = masks.quote & covered;
    if masks.control & covered != 0 {
        return None;
    }
    let (keep, delimiters) = match quotes_only(backslash, quote) {
        Some(found) => found,
        None => by_run_length(backslash, quote)?,
    };
    let inside = prefix_xor(delimiters & covered) ^ if in_string { u64::MAX } else { 0 };
    Some(Block {
        length,
        keep: keep & covered,
        brackets: masks.bracket & covered & !inside,
        in_string: (inside >> (length - 1)) & 1 == 1,
    })
}

/// The common case, quickly: every run is `\\\"` (a quote of the documents' text) or seven
/// backslashes and a quote (an escaped quote in one of their strings). Gives the kept bytes and
/// the quotes that open or close strings.
fn quotes_only(backslash: u64, quote: u64) -> Option<(u64, u64)> {
    // Seven-backslash runs: the fourth byte before the quote is a backslash too.
    let escaped = quote & (backslash << 4);
    let runs = (quote >> 1 | quote >> 2 | quote >> 3)
        | (escaped >> 4 | escaped >> 5 | escaped >> 6 | escaped >> 7);
    // No run may start before the block (the byte before it is not a backslash) or go on past
    // its seventh backslash.
    let whole = quote & 0b111 == 0 && escaped & 0x7f == 0 && (escaped >> 8) & backslash == 0;
    (whole && runs == backslash).then_some((!backslash | escaped >> 4, quote & !escaped))
}

/// Any runs, measured: `None` if one is not of the two escapes (see the module docs).
fn by_run_length(backslash: u64, quote: u64) -> Option<(u64, u64)> {
    let starts = backslash & !(backslash << 1);
    let ends = backslash.wrapping_add(starts) & !backslash;
    let mut keep = !backslash;
    let (mut quote_3, mut quote_7, mut plain) = (0, 0, 0);
    for class in 0..8 {
        let sum = backslash.wrapping_add(starts & (EVERY_8TH << class));
        let class_ends = sum & !backslash;
        // The 4th, 8th, … backslash of each run is the documents' text.
        keep |= backslash & !sum & (EVERY_4TH << ((class + 3) % 4));
        quote_3 |= class_ends & (EVERY_8TH << ((class + 3) % 8));
        quote_7 |= class_ends & (EVERY_8TH << ((class + 7) % 8));
        plain |= class_ends & (EVERY_4TH << (class % 4));
    }
    let valid = ends & !(quote_3 | quote_7 | plain) == 0
        && (quote_3 | quote_7) & !quote == 0
        && plain & quote == 0
        && quote & !ends == 0;
    valid.then_some((keep, quote_3))
}

/// Bit `i` is the parity of bits `0..=i` of `bits`.
fn prefix_xor(mut bits: u64) -> u64 {
    for shift in [1, 2, 4, 8, 16, 32] {
        bits ^= bits << shift;
    }
    bits
}

/// Where SSSE3 and POPCNT are there (every x86_64 machine of the last fifteen years), `masks`
/// and `compact` may be called.
#[cfg(target_arch = "x86_64")]
pub(super) fn available() -> bool {
    std::arch::is_x86_feature_detected!("ssse3") && std::arch::is_x86_feature_detected!("popcnt")
}

#[cfg(not(target_arch = "x86_64"))]
pub(super) fn available() -> bool {
    false
}

#[cfg(target_arch = "x86_64")]
pub(super) use x86::{compact, masks};

#[cfg(not(target_arch = "x86_64"))]
pub(super) unsafe fn masks(_block: &[u8; BLOCK]) -> Masks {
    unreachable!("`available` is false")
}

#[cfg(not(target_arch = "x86_64"))]
pub(super) unsafe fn compact(_block: &[u8; BLOCK], _keep: u64, _text: &mut Vec<u8>) {
    unreachable!("`available` is false")
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::{Masks, BLOCK};

    /// # Safety
    /// The CPU must have SSSE3 and POPCNT (`available`).
    #[inline]
    #[target_feature(enable = "ssse3,popcnt")]
    pub(in crate::handler::documents) unsafe fn masks(block: &[u8; BLOCK]) -> Masks {
        let mut masks = Masks::default();
        for lane in 0..4 {
            // SAFETY: the load reads bytes `16 * lane ..` of the 64 in `block`.
            let bytes = unsafe { _mm_loadu_si128(block.as_ptr().add(16 * lane).cast()) };
            let bit = |mask: __m128i| (_mm_movemask_epi8(mask) as u16 as u64) << (16 * lane);
            masks.backslash |= bit(_mm_cmpeq_epi8(bytes, _mm_set1_epi8(b'\\' as i8)));
            masks.quote |= bit(_mm_cmpeq_epi8(bytes, _mm_set1_epi8(b'"' as i8)));
            // Unsigned `byte <= 0x1f`: the byte is its own minimum with 0x1f.
            let low = _mm_min_epu8(bytes, _mm_set1_epi8(0x1f));
            masks.control |= bit(_mm_cmpeq_epi8(low, bytes));
            // With 0x20 set, `[` and `{` are both 0x7b, `]` and `}` both 0x7d.
            let folded = _mm_or_si128(bytes, _mm_set1_epi8(0x20));
            let open = _mm_cmpeq_epi8(folded, _mm_set1_epi8(0x7b));
            let close = _mm_cmpeq_epi8(folded, _mm_set1_epi8(0x7d));
            masks.bracket |= bit(_mm_or_si128(open, close));
        }
        masks
    }

    /// For each 8 kept-byte patterns, where each kept byte comes from (unused slots read 0x80,
    /// which `pshufb` turns into zeros).
    static SHUFFLES: [[u8; 8]; 256] = shuffles();

    const fn shuffles() -> [[u8; 8]; 256] {
        let mut table = [[0x80u8; 8]; 256];
        let mut pattern = 0;
        while pattern < 256 {
            let (mut bit, mut slot) = (0, 0);
            while bit < 8 {
                if pattern & (1 << bit) != 0 {
                    table[pattern][slot] = bit as u8;
                    slot += 1;
                }
                bit += 1;
            }
            pattern += 1;
        }
        table
    }

    /// Appends the bytes of `block` whose bit is set in `keep` to `text`, in order.
    ///
    /// # Safety
    /// The CPU must have SSSE3 and POPCNT (`available`).
    #[inline]
    #[target_feature(enable = "ssse3,popcnt")]
    pub(in crate::handler::documents) unsafe fn compact(
        block: &[u8; BLOCK],
        keep: u64,
        text: &mut Vec<u8>,
    ) {
        // Every 8-byte store may write up to 8 bytes past what it keeps.
        text.reserve(BLOCK + 8);
        let mut length = text.len();
        let base = text.as_mut_ptr();
        for lane in 0..4 {
            let lane_keep = (keep >> (16 * lane)) as u16;
            // SAFETY: reads bytes `16 * lane ..` of the 64 in `block`; the stores write at most
            // `16 * lane + 8 + 8 <= 64 + 8` bytes past the length the call started with, within
            // the capacity reserved above, and the length only counts kept bytes.
            unsafe {
                let bytes = _mm_loadu_si128(block.as_ptr().add(16 * lane).cast());
                if lane_keep == u16::MAX {
                    _mm_storeu_si128(base.add(length).cast(), bytes);
                    length += 16;
                    continue;
                }
                let low = lane_keep as u8;
                let high = (lane_keep >> 8) as u8;
                let order = _mm_set_epi64x(
                    i64::from_le_bytes(SHUFFLES[high as usize]),
                    i64::from_le_bytes(SHUFFLES[low as usize]),
                );
                // The high half's indices are 8 further on (0x80 + 8 still has its top bit).
                let order = _mm_add_epi8(order, _mm_set_epi64x(0x0808_0808_0808_0808, 0));
                let packed = _mm_shuffle_epi8(bytes, order);
                _mm_storel_epi64(base.add(length).cast(), packed);
                length += low.count_ones() as usize;
                _mm_storel_epi64(base.add(length).cast(), _mm_srli_si128(packed, 8));
                length += high.count_ones() as usize;
            }
        }
        // SAFETY: every byte up to `length` was written above.
        unsafe { text.set_len(length) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The module docs' rules, byte by byte: what a block is, from its bytes.
    fn reference(bytes: &[u8; BLOCK], mut in_string: bool) -> Option<(Vec<u8>, Vec<usize>, bool)> {
        let mut length = BLOCK;
        while length > 0 && bytes[length - 1] == b'\\' {
            length -= 1;
        }
        if length == 0 || bytes[..length].iter().any(|&b| b < 0x20) {
            return None;
        }
        let (mut text, mut brackets) = (Vec::new(), Vec::new());
        let mut at = 0;
        while at < length {
            let run = bytes[at..length]
                .iter()
                .take_while(|&&b| b == b'\\')
                .count();
            let terminator = bytes[at + run];
            match (run % 8, terminator) {
                (3, b'"') => in_string = !in_string,
                (7, b'"') => {}
                (0 | 4, b'"') => return None,
                (0 | 4, _) => {}
                _ => return None,
            }
            text.extend(std::iter::repeat_n(b'\\', run / 4));
            if matches!(terminator, b'[' | b']' | b'{' | b'}') && !in_string {
                brackets.push(at + run);
            }
            text.push(terminator);
            at += run + 1;
        }
        Some((text, brackets, in_string))
    }

    fn scalar_masks(bytes: &[u8; BLOCK]) -> Masks {
        let bits = |test: &dyn Fn(u8) -> bool| {
            (0..BLOCK).fold(0u64, |mask, i| mask | (u64::from(test(bytes[i])) << i))
        };
        Masks {
            backslash: bits(&|b| b == b'\\'),
            quote: bits(&|b| b == b'"'),
            control: bits(&|b| b < 0x20),
            bracket: bits(&|b| matches!(b, b'[' | b']' | b'{' | b'}')),
        }
    }

    fn block_strategy() -> impl Strategy<Value = [u8; BLOCK]> {
        // Mostly what the fast path takes, now and then what it leaves to the byte-by-byte one.
        let piece = prop_oneof![
            30 => Just(&b"\\\\\\\""[..]),
            10 => Just(&b"\\\\\\\\\\\\\\\""[..]),
            10 => Just(&b"\\\\\\\\n"[..]),
            20 => Just(&b"{}[]"[..]),
            10 => Just(&b"_\x7f\x5f\x5d\x7b"[..]),
            30 => Just(&b"abc,:"[..]),
            10 => Just("\u{e9}".as_bytes()),
            1 => Just(&b"\\"[..]),
            1 => Just(&b"\""[..]),
            1 => Just(&b"\n"[..]),
        ];
        prop::collection::vec(piece, 16..64).prop_map(|pieces| {
            let bytes: Vec<u8> = pieces.concat();
            let mut block = [b'x'; BLOCK];
            let n = bytes.len().min(BLOCK);
            block[..n].copy_from_slice(&bytes[..n]);
            block
        })
    }

    proptest! {
        #[test]
        fn the_masks_say_what_the_bytes_are(block in block_strategy()) {
            prop_assume!(available());
            // SAFETY: SSSE3 is there (`available`).
            prop_assert_eq!(unsafe { masks(&block) }, scalar_masks(&block));
        }

        #[test]
        fn a_block_is_what_the_rules_say(block in block_strategy(), in_string in any::<bool>()) {
            let got = classify(scalar_masks(&block), in_string);
            let want = reference(&block, in_string);
            match (got, want) {
                (None, None) => {}
                (Some(got), Some((text, brackets, ends_in_string))) => {
                    let kept: Vec<u8> = (0..got.length)
                        .filter(|&i| got.keep >> i & 1 == 1)
                        .map(|i| block[i])
                        .collect();
                    prop_assert_eq!(kept, text);
                    let found: Vec<usize> = (0..BLOCK).filter(|&i| got.brackets >> i & 1 == 1).collect();
                    prop_assert_eq!(found, brackets);
                    prop_assert_eq!(got.in_string, ends_in_string);
                }
                (got, want) => prop_assert!(false, "classify {:?}, rules {:?}", got, want),
            }
        }

        #[test]
        fn the_quick_case_agrees_with_measuring_runs(block in block_strategy()) {
            let masks = scalar_masks(&block);
            // As `classify` calls them: no run reaching the block's end.
            let covered = if masks.backslash >> 63 == 1 {
                u64::MAX >> (masks.backslash.leading_ones())
            } else {
                u64::MAX
            };
            let (backslash, quote) = (masks.backslash & covered, masks.quote & covered);
            if let Some(quick) = quotes_only(backslash, quote) {
                prop_assert_eq!(Some(quick), by_run_length(backslash, quote));
            }
        }

        #[test]
        fn compacting_keeps_the_kept_bytes_in_order(block in block_strategy(), keep in any::<u64>()) {
            prop_assume!(available());
            let mut text = b"before".to_vec();
            // SAFETY: SSSE3 is there (`available`).
            unsafe { compact(&block, keep, &mut text) };
            let mut want = b"before".to_vec();
            want.extend((0..BLOCK).filter(|&i| keep >> i & 1 == 1).map(|i| block[i]));
            prop_assert_eq!(text, want);
        }
    }
}
