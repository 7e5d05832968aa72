//! The host-testable logic of `bridge-peer` (the program is `main.rs`): the text of the
//! readings it streams and of the replies it gives. Both are ASCII so that a shell script
//! in Linux (`rhlink recv` prints one message per line) can check order and content.
#![cfg_attr(not(test), no_std)]

/// Bytes of a reading: `reading NNNNNNN` (a 7-digit decimal sequence number from 1).
pub const READING_BYTES: usize = 15;
/// What a reply starts with; the request's bytes follow.
pub const REPLY_PREFIX: &[u8] = b"reply: ";

/// The text of reading number `n` (modulo 10^7).
pub fn reading(n: u64) -> [u8; READING_BYTES] {
    let mut out = *b"reading 0000000";
    let mut rest = n % 10_000_000;
    for digit in out[8..].iter_mut().rev() {
        *digit = b'0' + (rest % 10) as u8;
        rest /= 10;
    }
    out
}

/// Writes the reply to `request` into `out` (at most `out.len()` bytes: the request is cut
/// to fit) and returns its length.
pub fn reply(request: &[u8], out: &mut [u8]) -> usize {
    let prefix = REPLY_PREFIX.len().min(out.len());
    out[..prefix].copy_from_slice(&REPLY_PREFIX[..prefix]);
    let body = request.len().min(out.len() - prefix);
    out[prefix..prefix + body].copy_from_slice(&request[..body]);
    prefix + body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readings_count_in_fixed_width_decimal() {
        assert_eq!(&reading(1), b"reading 0000001");
        assert_eq!(&reading(1234567), b"reading 1234567");
        assert_eq!(&reading(10_000_001), b"reading 0000001");
    }

    #[test]
    fn replies_echo_the_request_and_fit_the_buffer() {
        let mut out = [0u8; 64];
        let n = reply(b"request 7", &mut out);
        assert_eq!(&out[..n], b"reply: request 7");
        let mut small = [0u8; 10];
        let n = reply(b"request 7", &mut small);
        assert_eq!(&small[..n], b"reply: req");
        let mut tiny = [0u8; 3];
        assert_eq!(reply(b"x", &mut tiny), 3);
        assert_eq!(&tiny, b"rep");
        assert_eq!(reply(b"", &mut out), REPLY_PREFIX.len());
    }
}
