//! IPv4 headers: whatever parses (checksum unchecked) re-emits, with its
//! payload, to a packet that parses with its checksum verified to the same
//! `Ipv4Repr`; any `Ipv4Repr` emits, parses back to itself, and etherparse
//! reads the same fields and checksum. Differential the other way: a
//! packet etherparse accepts with a right header checksum, dpstack accepts
//! with the same fields.
//!
//! cargo +nightly fuzz run wire_ipv4 --fuzz-dir tests/fuzz
#![no_main]

mod wire;

use arbitrary::Unstructured;
use dpstack::wire::{IpProtocol, Ipv4Packet, Ipv4Repr};
use libfuzzer_sys::fuzz_target;

fn emit(r: &Ipv4Repr, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; r.buffer_len() + r.payload_len];
    let mut p = Ipv4Packet::new_unchecked(&mut out[..]);
    r.emit(&mut p, true);
    p.payload_mut().copy_from_slice(payload);
    out
}

fn parse(b: &[u8]) -> Ipv4Repr {
    let p = Ipv4Packet::new_checked(b).expect("emitted ipv4: length");
    Ipv4Repr::parse(&p, true).expect("emitted ipv4: parse")
}

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = Ipv4Packet::new_checked(data) {
        if let Ok(r) = Ipv4Repr::parse(&p, false) {
            assert_eq!(r.payload_len, p.payload().len());
            let out = emit(&r, p.payload());
            assert_eq!(parse(&out), r);
            assert_eq!(Ipv4Packet::new_unchecked(&out[..]).payload(), p.payload());
            assert_eq!(
                Ipv4Repr::parse(&p, true).is_ok(),
                p.verify_checksum(),
                "checksum verdict"
            );
        }
    }

    // etherparse's verdict on the raw bytes: what it accepts with a right
    // header checksum, dpstack accepts alike.
    if let Ok(s) = etherparse::Ipv4Slice::from_slice(data) {
        let h = s.header().to_header();
        // etherparse's header has no reserved flag bit (RFC 791 3.1, bit
        // 0 of the flags): it sums the header it would write, without it,
        // so with the bit set its checksum verdict is not about these bytes.
        let reserved = data[6] & 0x80 != 0;
        if !reserved && h.header_checksum == h.calc_header_checksum() {
            let p = Ipv4Packet::new_checked(data).expect("etherparse accepts, dpstack does not");
            let r = Ipv4Repr::parse(&p, true).expect("etherparse accepts, dpstack does not");
            assert_eq!(r.src_addr.octets(), h.source);
            assert_eq!(r.dst_addr.octets(), h.destination);
            assert_eq!(u8::from(r.next_header), h.protocol.0);
            assert_eq!(r.hop_limit, h.time_to_live);
            assert_eq!(r.payload_len, usize::from(h.total_len) - h.header_len());
            assert_eq!(p.is_fragment(), s.payload().fragmented);
        }
    }

    let mut u = Unstructured::new(data);
    // Lengths up to 2047 mostly (speed), up to the largest one in 1 of 16.
    let Ok((proto, len, big)) = (|| {
        Ok::<_, arbitrary::Error>((u.arbitrary::<u8>()?, u.arbitrary::<u16>()?, u.ratio(1, 16)?))
    })() else {
        return;
    };
    let len = if big { len } else { len & 0x07ff };
    let Ok(r) = wire::ipv4_repr(&mut u, IpProtocol::from(proto), usize::from(len)) else {
        return;
    };
    let payload = wire::payload(&mut u, r.payload_len);
    let out = emit(&r, &payload);
    assert_eq!(parse(&out), r);
    wire::check_ipv4(&out, &r);
});
