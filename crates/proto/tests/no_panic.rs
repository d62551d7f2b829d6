//! Arbitrary input must produce a value or an error, never a panic.

use proptest::prelude::*;
use timonel_proto::{MAGIC, decode};

/// A valid envelope around arbitrary object bytes, so fuzzing reaches the table-driven walk.
fn wrap(api_version: &str, kind: &str, raw: &[u8]) -> Vec<u8> {
    fn field(tag: u8, bytes: &[u8], out: &mut Vec<u8>) {
        out.push(tag << 3 | 2);
        let mut len = bytes.len();
        while len >= 0x80 {
            out.push((len as u8 & 0x7f) | 0x80);
            len >>= 7;
        }
        out.push(len as u8);
        out.extend_from_slice(bytes);
    }
    let mut type_meta = Vec::new();
    field(1, api_version.as_bytes(), &mut type_meta);
    field(2, kind.as_bytes(), &mut type_meta);
    let mut body = MAGIC.to_vec();
    field(1, &type_meta, &mut body);
    field(2, raw, &mut body);
    body
}

const KINDS: &[(&str, &str)] = &[
    ("v1", "Pod"),
    ("apps/v1", "Deployment"),
    ("v1", "Secret"),
    ("apiextensions.k8s.io/v1", "CustomResourceDefinition"),
    ("v1", "DeleteOptions"),
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode(&bytes);
    }

    #[test]
    fn arbitrary_bytes_after_magic_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let body = [MAGIC.as_slice(), &bytes].concat();
        let _ = decode(&body);
    }

    #[test]
    fn arbitrary_objects_never_panic(
        kind in 0..KINDS.len(),
        raw in proptest::collection::vec(any::<u8>(), 0..512),
    ) {
        let (api_version, kind) = KINDS[kind];
        if let Ok(decoded) = decode(&wrap(api_version, kind, &raw)) {
            prop_assert_eq!(decoded.object["kind"].as_str(), Some(kind));
        }
    }
}
