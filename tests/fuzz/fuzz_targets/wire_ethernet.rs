//! Ethernet (and 802.1Q) headers: whatever parses re-emits to the same
//! bytes and parses back to the same `EthernetRepr`; any `EthernetRepr`
//! emits, parses back to itself, and etherparse reads the same fields.
//!
//! cargo +nightly fuzz run wire_ethernet --fuzz-dir tests/fuzz
#![no_main]

mod wire;

use arbitrary::Unstructured;
use dpstack::wire::{EthernetFrame, EthernetRepr};
use libfuzzer_sys::fuzz_target;

fn emit(r: &EthernetRepr, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; r.buffer_len() + payload.len()];
    let mut f = EthernetFrame::new_unchecked(&mut out[..]);
    r.emit(&mut f);
    f.payload_mut().copy_from_slice(payload);
    out
}

fn parse(b: &[u8]) -> EthernetRepr {
    let f = EthernetFrame::new_checked(b).expect("emitted frame: length");
    let r = EthernetRepr::parse(&f).expect("emitted frame: parse");
    assert_eq!(f.payload().len(), b.len() - r.buffer_len());
    r
}

fuzz_target!(|data: &[u8]| {
    // Bytes first: every field the parser reads is one emit writes, so a
    // frame that parses comes back byte for byte.
    if let Ok(f) = EthernetFrame::new_checked(data) {
        if let Ok(r) = EthernetRepr::parse(&f) {
            let out = emit(&r, f.payload());
            assert_eq!(out, data, "re-emitted frame differs");
            assert_eq!(parse(&out), r);
        }
    }

    // Then a header made from the input.
    let mut u = Unstructured::new(data);
    let Ok(r) = wire::ethernet_repr(&mut u) else {
        return;
    };
    let payload = wire::payload(&mut u, 46);
    let out = emit(&r, &payload);
    assert_eq!(parse(&out), r);
    assert_eq!(&out[r.buffer_len()..], &payload[..]);
    wire::check_ethernet(&out, &r);
});
