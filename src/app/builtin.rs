//! Built-in applications: `udp-echo:PORT` and `udp-sink:PORT`.

use super::{App, AppFactory, BindError, CoreInfo, Datagram, NetCtx};
use std::str::FromStr;
use std::sync::Arc;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AppKind {
    /// Send each datagram back to where it came from.
    UdpEcho,
    /// Count each datagram and drop it.
    UdpSink,
}

/// A built-in application chosen on the command line, `NAME:PORT`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AppSpec {
    pub kind: AppKind,
    pub port: u16,
}

impl FromStr for AppSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (name, port) = s
            .split_once(':')
            .ok_or_else(|| "expected NAME:PORT, e.g. udp-echo:7".to_string())?;
        let kind = match name {
            "udp-echo" => AppKind::UdpEcho,
            "udp-sink" => AppKind::UdpSink,
            other => {
                return Err(format!(
                    "unknown application '{other}' (udp-echo, udp-sink)"
                ))
            }
        };
        let port: u16 = port.parse().map_err(|_| format!("bad port '{port}'"))?;
        if port == 0 {
            return Err("port 0 cannot be bound".into());
        }
        Ok(AppSpec { kind, port })
    }
}

impl AppSpec {
    /// A factory making one instance per core.
    pub fn factory(self) -> AppFactory {
        Arc::new(move |_core: &CoreInfo| -> Box<dyn App> {
            match self.kind {
                AppKind::UdpEcho => Box::new(UdpEcho::new(self.port)),
                AppKind::UdpSink => Box::new(UdpSink::new(self.port)),
            }
        })
    }
}

/// Echoes every datagram back to its sender, from the port it arrived on.
#[derive(Debug)]
pub struct UdpEcho {
    port: u16,
    echoed: u64,
    failed: u64,
}

impl UdpEcho {
    pub fn new(port: u16) -> Self {
        UdpEcho {
            port,
            echoed: 0,
            failed: 0,
        }
    }
}

impl App for UdpEcho {
    fn name(&self) -> String {
        format!("udp-echo:{}", self.port)
    }
    fn start(&mut self, net: &mut dyn NetCtx) -> Result<(), BindError> {
        net.bind_udp(self.port)
    }
    fn on_datagram(&mut self, net: &mut dyn NetCtx, d: &Datagram<'_>) {
        match net.send_udp(d.dst.port(), d.src, d.payload) {
            Ok(()) => self.echoed += 1,
            Err(_) => self.failed += 1,
        }
    }
    fn counters(&self) -> Vec<(&'static str, u64)> {
        vec![("echoed", self.echoed), ("failed", self.failed)]
    }
}

/// Counts datagrams and bytes, and drops them.
#[derive(Debug)]
pub struct UdpSink {
    port: u16,
    datagrams: u64,
    bytes: u64,
}

impl UdpSink {
    pub fn new(port: u16) -> Self {
        UdpSink {
            port,
            datagrams: 0,
            bytes: 0,
        }
    }
}

impl App for UdpSink {
    fn name(&self) -> String {
        format!("udp-sink:{}", self.port)
    }
    fn start(&mut self, net: &mut dyn NetCtx) -> Result<(), BindError> {
        net.bind_udp(self.port)
    }
    fn on_datagram(&mut self, _net: &mut dyn NetCtx, d: &Datagram<'_>) {
        self.datagrams += 1;
        self.bytes += d.payload.len() as u64;
    }
    fn counters(&self) -> Vec<(&'static str, u64)> {
        vec![("datagrams", self.datagrams), ("bytes", self.bytes)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse() {
        assert_eq!(
            "udp-echo:7".parse::<AppSpec>(),
            Ok(AppSpec {
                kind: AppKind::UdpEcho,
                port: 7
            })
        );
        assert!("udp-sink:9".parse::<AppSpec>().is_ok());
        assert!("udp-echo".parse::<AppSpec>().is_err());
        assert!("udp-echo:0".parse::<AppSpec>().is_err());
        assert!("udp-echo:70000".parse::<AppSpec>().is_err());
        assert!("tcp-echo:7".parse::<AppSpec>().is_err());
    }
}
