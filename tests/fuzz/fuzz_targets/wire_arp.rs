//! ARP for Ethernet and IPv4: whatever parses re-emits to the same 28
//! bytes; any `ArpRepr` emits, parses back to itself, and etherparse reads
//! the same fields.
//!
//! cargo +nightly fuzz run wire_arp --fuzz-dir tests/fuzz
#![no_main]

mod wire;

use arbitrary::Unstructured;
use dpstack::wire::{ArpOperation, ArpPacket, ArpRepr};
use libfuzzer_sys::fuzz_target;

fn emit(r: &ArpRepr) -> Vec<u8> {
    let mut out = vec![0u8; r.buffer_len()];
    r.emit(&mut ArpPacket::new_unchecked(&mut out[..]));
    out
}

fn parse(b: &[u8]) -> ArpRepr {
    let p = ArpPacket::new_checked(b).expect("emitted arp: length");
    ArpRepr::parse(&p).expect("emitted arp: parse")
}

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = ArpPacket::new_checked(data) {
        if let Ok(r) = ArpRepr::parse(&p) {
            let out = emit(&r);
            assert_eq!(out[..], data[..28], "re-emitted ARP differs");
            assert_eq!(parse(&out), r);
        }
    }

    let mut u = Unstructured::new(data);
    let Ok((reply, sha, spa, tha, tpa)) = (|| {
        Ok::<_, arbitrary::Error>((
            u.arbitrary::<bool>()?,
            wire::mac(&mut u)?,
            wire::ip(&mut u)?,
            wire::mac(&mut u)?,
            wire::ip(&mut u)?,
        ))
    })() else {
        return;
    };
    let operation = if reply {
        ArpOperation::Reply
    } else {
        ArpOperation::Request
    };
    let r = ArpRepr::EthernetIpv4 {
        operation,
        source_hardware_addr: sha,
        source_protocol_addr: spa,
        target_hardware_addr: tha,
        target_protocol_addr: tpa,
    };
    let out = emit(&r);
    assert_eq!(parse(&out), r);

    let a = etherparse::ArpPacketSlice::from_slice(&out).expect("etherparse: arp");
    assert_eq!(a.hw_addr_type(), etherparse::ArpHardwareId::ETHERNET);
    assert_eq!(a.proto_addr_type(), etherparse::EtherType::IPV4);
    assert_eq!(a.operation().0, u16::from(operation));
    assert_eq!(a.sender_hw_addr(), &sha.0);
    assert_eq!(a.sender_protocol_addr(), &spa.octets());
    assert_eq!(a.target_hw_addr(), &tha.0);
    assert_eq!(a.target_protocol_addr(), &tpa.octets());
});
