//! rte_flow rules that steer a traffic class to one queue: "TCP (or UDP) to
//! our address and port P goes to queue Q". Built as DPDK's item and action
//! arrays, validated, then created; where the device refuses, the caller
//! says so once and relies on RSS and the handoff between cores.

use super::error::{DpdkError, Result};
use crate::ffi;
use std::ffi::CStr;
use std::net::Ipv4Addr;
use std::os::raw::c_void;
use std::ptr;

/// Rules are parsed with the configuration (which builds without DPDK).
pub use crate::config::{FlowRule, L4};

/// A rule's pattern and action, in DPDK's structures (all owned here, so
/// the pointers in `items` stay valid while this lives).
pub struct FlowSpec {
    pub attr: ffi::rte_flow_attr,
    pub ipv4: [ffi::rte_flow_item_ipv4; 2],
    pub tcp: [ffi::rte_flow_item_tcp; 2],
    pub udp: [ffi::rte_flow_item_udp; 2],
    pub queue: ffi::rte_flow_action_queue,
    pub l4: L4,
}

impl FlowSpec {
    /// Match IPv4 to `dst` with the rule's protocol and destination port.
    pub fn new(rule: &FlowRule, dst: Ipv4Addr) -> Box<FlowSpec> {
        let mut attr = ffi::rte_flow_attr::default();
        attr.set_ingress(1);
        let mut ip_spec = ffi::rte_flow_item_ipv4::default();
        let mut ip_mask = ffi::rte_flow_item_ipv4::default();
        ip_spec.hdr.dst_addr = u32::from(dst).to_be();
        ip_mask.hdr.dst_addr = u32::MAX;
        ip_spec.hdr.next_proto_id = match rule.l4 {
            L4::Tcp => 6,
            L4::Udp => 17,
        };
        ip_mask.hdr.next_proto_id = 0xff;
        let mut tcp_spec = ffi::rte_flow_item_tcp::default();
        let mut tcp_mask = ffi::rte_flow_item_tcp::default();
        tcp_spec.hdr.dst_port = rule.dst_port.to_be();
        tcp_mask.hdr.dst_port = u16::MAX;
        let mut udp_spec = ffi::rte_flow_item_udp::default();
        let mut udp_mask = ffi::rte_flow_item_udp::default();
        udp_spec.hdr.dst_port = rule.dst_port.to_be();
        udp_mask.hdr.dst_port = u16::MAX;
        Box::new(FlowSpec {
            attr,
            ipv4: [ip_spec, ip_mask],
            tcp: [tcp_spec, tcp_mask],
            udp: [udp_spec, udp_mask],
            queue: ffi::rte_flow_action_queue { index: rule.queue },
            l4: rule.l4,
        })
    }

    /// ETH / IPV4 / TCP|UDP / END, pointing into `self`.
    pub fn items(&self) -> [ffi::rte_flow_item; 4] {
        let item = |t, spec: *const c_void, mask: *const c_void| ffi::rte_flow_item {
            type_: t,
            spec,
            last: ptr::null(),
            mask,
        };
        let (l4t, spec, mask) = match self.l4 {
            L4::Tcp => (
                ffi::rte_flow_item_type_RTE_FLOW_ITEM_TYPE_TCP,
                &self.tcp[0] as *const _ as *const c_void,
                &self.tcp[1] as *const _ as *const c_void,
            ),
            L4::Udp => (
                ffi::rte_flow_item_type_RTE_FLOW_ITEM_TYPE_UDP,
                &self.udp[0] as *const _ as *const c_void,
                &self.udp[1] as *const _ as *const c_void,
            ),
        };
        [
            item(
                ffi::rte_flow_item_type_RTE_FLOW_ITEM_TYPE_ETH,
                ptr::null(),
                ptr::null(),
            ),
            item(
                ffi::rte_flow_item_type_RTE_FLOW_ITEM_TYPE_IPV4,
                &self.ipv4[0] as *const _ as *const c_void,
                &self.ipv4[1] as *const _ as *const c_void,
            ),
            item(l4t, spec, mask),
            item(
                ffi::rte_flow_item_type_RTE_FLOW_ITEM_TYPE_END,
                ptr::null(),
                ptr::null(),
            ),
        ]
    }

    /// QUEUE / END.
    pub fn actions(&self) -> [ffi::rte_flow_action; 2] {
        [
            ffi::rte_flow_action {
                type_: ffi::rte_flow_action_type_RTE_FLOW_ACTION_TYPE_QUEUE,
                conf: &self.queue as *const _ as *const c_void,
            },
            ffi::rte_flow_action {
                type_: ffi::rte_flow_action_type_RTE_FLOW_ACTION_TYPE_END,
                conf: ptr::null(),
            },
        ]
    }
}

/// An installed rule, destroyed on drop (before its port is closed).
pub struct Flow {
    port: u16,
    flow: *mut ffi::rte_flow,
    _spec: Box<FlowSpec>,
}

fn flow_error(op: &str, ret: i32, err: &ffi::rte_flow_error) -> DpdkError {
    let msg = if err.message.is_null() {
        super::error::strerror(-ret)
    } else {
        // SAFETY: DPDK set message to a NUL-terminated static string.
        unsafe { CStr::from_ptr(err.message) }
            .to_string_lossy()
            .into_owned()
    };
    DpdkError::Unsupported(format!("{op}: {msg}"))
}

/// Validate and create `rule` on `port` for traffic to `dst`.
pub fn install(port: u16, rule: &FlowRule, dst: Ipv4Addr) -> Result<Flow> {
    let spec = FlowSpec::new(rule, dst);
    let items = spec.items();
    let actions = spec.actions();
    let mut err = ffi::rte_flow_error::default();
    // SAFETY: attr, items and actions point into `spec`, alive for the call.
    let ret = unsafe {
        ffi::rte_flow_validate(port, &spec.attr, items.as_ptr(), actions.as_ptr(), &mut err)
    };
    if ret != 0 {
        return Err(flow_error("rte_flow_validate", ret, &err));
    }
    // SAFETY: as above.
    let flow = unsafe {
        ffi::rte_flow_create(port, &spec.attr, items.as_ptr(), actions.as_ptr(), &mut err)
    };
    if flow.is_null() {
        return Err(flow_error(
            "rte_flow_create",
            -super::error::rte_errno(),
            &err,
        ));
    }
    Ok(Flow {
        port,
        flow,
        _spec: spec,
    })
}

impl Drop for Flow {
    fn drop(&mut self) {
        let mut err = ffi::rte_flow_error::default();
        // SAFETY: flow was created on this port and is destroyed once.
        unsafe { ffi::rte_flow_destroy(self.port, self.flow, &mut err) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_are_built_in_network_order() {
        let rule: FlowRule = "tcp:8080@3".parse().unwrap();
        let s = FlowSpec::new(&rule, Ipv4Addr::new(198, 18, 0, 1));
        assert_eq!({ s.ipv4[0].hdr.dst_addr }.to_ne_bytes(), [198, 18, 0, 1]);
        assert_eq!({ s.ipv4[1].hdr.dst_addr }, u32::MAX);
        assert_eq!({ s.ipv4[0].hdr.next_proto_id }, 6);
        assert_eq!(
            { s.tcp[0].hdr.dst_port }.to_ne_bytes(),
            8080u16.to_be_bytes()
        );
        assert_eq!({ s.tcp[1].hdr.dst_port }, u16::MAX);
        assert_eq!(s.queue.index, 3);
        assert_eq!(s.attr.ingress(), 1);
        let items = s.items();
        assert_eq!(
            items[0].type_,
            ffi::rte_flow_item_type_RTE_FLOW_ITEM_TYPE_ETH
        );
        assert_eq!(
            items[2].type_,
            ffi::rte_flow_item_type_RTE_FLOW_ITEM_TYPE_TCP
        );
        assert_eq!(items[2].spec, &s.tcp[0] as *const _ as *const c_void);
        assert_eq!(
            items[3].type_,
            ffi::rte_flow_item_type_RTE_FLOW_ITEM_TYPE_END
        );
        let a = s.actions();
        assert_eq!(
            a[0].type_,
            ffi::rte_flow_action_type_RTE_FLOW_ACTION_TYPE_QUEUE
        );
        let u = FlowSpec::new(&"udp:53@0".parse().unwrap(), Ipv4Addr::new(198, 18, 0, 1));
        assert_eq!({ u.ipv4[0].hdr.next_proto_id }, 17);
        assert_eq!(
            u.items()[2].type_,
            ffi::rte_flow_item_type_RTE_FLOW_ITEM_TYPE_UDP
        );
    }
}
