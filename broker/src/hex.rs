//! Lower-case hex, the one spelling of hashes, serials, keys and signatures in the broker's
//! records and file names. `encode` is the policy compiler's (module hashes are hex too).

pub use policy_compiler::wasm::hex as encode;

/// The bytes of an even-length hex string (either case), or `None` for anything else.
pub fn decode(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| s.get(i..i + 2).and_then(|b| u8::from_str_radix(b, 16).ok()))
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn decode_refuses_what_is_not_hex_without_panicking() {
        assert_eq!(super::decode("00ff7A"), Some(vec![0, 255, 122]));
        assert_eq!(super::decode("abc"), None);
        assert_eq!(super::decode("zz"), None);
        assert_eq!(super::decode("ä0"), None, "a multi-byte character is no hex digit");
        assert_eq!(super::decode(&super::encode(&[1, 2, 254])), Some(vec![1, 2, 254]));
    }
}
