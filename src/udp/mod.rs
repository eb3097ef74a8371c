//! UDP: the per-core socket table.
//!
//! Each core binds the same ports for its own instance of each application,
//! so a datagram is delivered on whichever core its flow landed. The table is
//! a fixed-capacity `heapless` map: binding past capacity fails and says so.

use heapless::FnvIndexMap;

/// Sockets one core can hold.
pub const MAX_SOCKETS: usize = 256;

/// Who owns a bound port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Binding {
    /// Index of the owning application on this core.
    pub app: usize,
    /// Datagrams delivered.
    pub rx: u64,
    /// Datagrams sent from this port.
    pub tx: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BindError {
    #[error("port {0} is already bound on this core")]
    InUse(u16),
    #[error("the socket table is full")]
    TableFull,
    #[error("port 0 cannot be bound")]
    PortZero,
}

#[derive(Debug, Default)]
pub struct UdpTable {
    map: FnvIndexMap<u16, Binding, MAX_SOCKETS>,
}

impl UdpTable {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn bind(&mut self, port: u16, app: usize) -> Result<(), BindError> {
        if port == 0 {
            return Err(BindError::PortZero);
        }
        if self.map.contains_key(&port) {
            return Err(BindError::InUse(port));
        }
        self.map
            .insert(port, Binding { app, rx: 0, tx: 0 })
            .map_err(|_| BindError::TableFull)?;
        Ok(())
    }

    /// Release a port; true if it was bound.
    pub fn unbind(&mut self, port: u16) -> bool {
        self.map.remove(&port).is_some()
    }

    #[inline]
    pub fn lookup(&mut self, port: u16) -> Option<&mut Binding> {
        self.map.get_mut(&port)
    }

    pub fn is_bound(&self, port: u16) -> bool {
        self.map.contains_key(&port)
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (u16, &Binding)> {
        self.map.iter().map(|(p, b)| (*p, b))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bind_lookup_unbind() {
        let mut t = UdpTable::new();
        t.bind(7, 0).unwrap();
        t.bind(9, 1).unwrap();
        assert_eq!(t.bind(7, 1), Err(BindError::InUse(7)));
        assert_eq!(t.bind(0, 1), Err(BindError::PortZero));
        assert_eq!(t.lookup(9).unwrap().app, 1);
        t.lookup(9).unwrap().rx += 1;
        assert_eq!(t.lookup(9).unwrap().rx, 1);
        assert!(t.unbind(7));
        assert!(!t.unbind(7));
        assert!(t.lookup(7).is_none());
    }

    #[test]
    fn full_table_refuses_and_keeps_working() {
        let mut t = UdpTable::new();
        for p in 1..=MAX_SOCKETS as u16 {
            t.bind(p, 0).unwrap();
        }
        assert_eq!(t.bind(60000, 0), Err(BindError::TableFull));
        assert_eq!(t.len(), MAX_SOCKETS);
        assert!(t.unbind(1));
        t.bind(60000, 0).unwrap();
        assert!(t.lookup(60000).is_some());
    }
}
