//! ICMPv4 echo and errors: whatever parses (checksum unchecked) re-emits
//! to a message that parses with its checksum verified to the same
//! `Icmpv4Repr`; any `Icmpv4Repr` emits, parses back to itself, and
//! etherparse reads the same type, code, echo fields and a right checksum.
//!
//! cargo +nightly fuzz run wire_icmp --fuzz-dir tests/fuzz
#![no_main]

mod wire;

use arbitrary::Unstructured;
use dpstack::wire::{
    Icmpv4DstUnreachable, Icmpv4Packet, Icmpv4Repr, Icmpv4TimeExceeded, IpProtocol,
};
use libfuzzer_sys::fuzz_target;

fn emit(r: &Icmpv4Repr) -> Vec<u8> {
    let mut out = vec![0u8; r.buffer_len()];
    r.emit(&mut Icmpv4Packet::new_unchecked(&mut out[..]));
    out
}

fn check_round_trip(r: &Icmpv4Repr) -> Vec<u8> {
    let out = emit(r);
    let p = Icmpv4Packet::new_checked(&out[..]).expect("emitted icmp: length");
    let back = Icmpv4Repr::parse(&p, true).expect("emitted icmp: parse");
    assert_eq!(&back, r);
    out
}

/// An ICMP message from the input: echo of any length, or an error
/// quoting a header and at most the 8 bytes after it (RFC 792: what the
/// parser keeps of the quoted datagram).
fn repr<'a>(u: &mut Unstructured<'a>) -> arbitrary::Result<Icmpv4Repr<'a>> {
    let kind = u.int_in_range(0..=3u8)?;
    Ok(match kind {
        0 | 1 => {
            let (ident, seq_no) = (u.arbitrary()?, u.arbitrary()?);
            let len = u.int_in_range(0..=1472)?;
            let data = u.bytes(len.min(u.len()))?;
            if kind == 0 {
                Icmpv4Repr::EchoRequest {
                    ident,
                    seq_no,
                    data,
                }
            } else {
                Icmpv4Repr::EchoReply {
                    ident,
                    seq_no,
                    data,
                }
            }
        }
        _ => {
            let code: u8 = u.arbitrary()?;
            let proto: u8 = u.arbitrary()?;
            let len: u16 = u.arbitrary()?;
            let header = wire::ipv4_repr(u, IpProtocol::from(proto), usize::from(len))?;
            let n = u.int_in_range(0..=8)?;
            let data = u.bytes(n.min(u.len()))?;
            if kind == 2 {
                Icmpv4Repr::DstUnreachable {
                    reason: Icmpv4DstUnreachable::from(code),
                    header,
                    data,
                }
            } else {
                Icmpv4Repr::TimeExceeded {
                    reason: Icmpv4TimeExceeded::from(code),
                    header,
                    data,
                }
            }
        }
    })
}

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = Icmpv4Packet::new_checked(data) {
        if let Ok(r) = Icmpv4Repr::parse(&p, false) {
            check_round_trip(&r);
        }
    }

    let mut u = Unstructured::new(data);
    let Ok(r) = repr(&mut u) else {
        return;
    };
    let out = check_round_trip(&r);

    let s = etherparse::Icmpv4Slice::from_slice(&out).expect("etherparse: icmp");
    let h = s.header();
    let mut want = h.clone();
    want.update_checksum(s.payload());
    assert_eq!(h.checksum, want.checksum, "icmp checksum");
    use etherparse::Icmpv4Type as T;
    match (r, s.icmp_type()) {
        (
            Icmpv4Repr::EchoRequest {
                ident,
                seq_no,
                data,
            },
            T::EchoRequest(e),
        )
        | (
            Icmpv4Repr::EchoReply {
                ident,
                seq_no,
                data,
            },
            T::EchoReply(e),
        ) => {
            assert_eq!((e.id, e.seq), (ident, seq_no));
            assert_eq!(s.payload(), data);
        }
        (Icmpv4Repr::DstUnreachable { reason, .. }, T::DestinationUnreachable(_)) => {
            assert_eq!((s.type_u8(), s.code_u8()), (3, u8::from(reason)));
        }
        (Icmpv4Repr::TimeExceeded { reason, .. }, T::TimeExceeded(_)) => {
            assert_eq!((s.type_u8(), s.code_u8()), (11, u8::from(reason)));
        }
        // etherparse keeps codes it does not know as its Unknown type.
        (
            Icmpv4Repr::DstUnreachable { reason, .. },
            T::Unknown {
                type_u8, code_u8, ..
            },
        ) => {
            assert_eq!((type_u8, code_u8), (3, u8::from(reason)));
        }
        (
            Icmpv4Repr::TimeExceeded { reason, .. },
            T::Unknown {
                type_u8, code_u8, ..
            },
        ) => {
            assert_eq!((type_u8, code_u8), (11, u8::from(reason)));
        }
        (r, t) => panic!("dpstack emitted {r:?}, etherparse reads {t:?}"),
    }
});
