//! UDP: the per-core socket table.
//!
//! Each core binds the same ports for its own instance of each application,
//! so a datagram is delivered on whichever core its flow landed. The table
//! holds at most [`MAX_SOCKETS`] sockets (binding past capacity fails and
//! says so), found by port through a direct index: one load per datagram
//! instead of a hash lookup.
//!
//! A connected socket (an active open, [`UdpTable::connect`]) is one core's
//! alone: its ephemeral port is chosen so that replies come back to this
//! core, and where the device's hash cannot be predicted it is written into
//! the shared [`FlowDirectory`] so that another core receiving a reply hands
//! it over. It takes datagrams from its remote end only.

use crate::flow::{FlowDirectory, PortAllocator};
use crate::tcp::table::FlowKey;
use std::net::SocketAddrV4;
use std::sync::Arc;

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
    /// The one remote end of a connected socket.
    pub remote: Option<SocketAddrV4>,
}

impl Binding {
    /// Whether a datagram from `src` belongs to this socket.
    #[inline]
    pub fn accepts(&self, src: SocketAddrV4) -> bool {
        self.remote.is_none_or(|r| r == src)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BindError {
    #[error("port {0} is already bound on this core")]
    InUse(u16),
    #[error("the socket table is full")]
    TableFull,
    #[error("port 0 cannot be bound")]
    PortZero,
    #[error("no free local port")]
    NoPort,
}

pub struct UdpTable {
    /// The sockets, in binding order (a removal moves the last into the
    /// hole, as `swap_remove` does).
    slots: Vec<(u16, Binding)>,
    /// By port: 0 for none, else the socket's place in `slots` plus one.
    index: Box<[u16; 1 << 16]>,
    /// Where other cores look up who owns a connected socket (multi-core,
    /// unpredictable RSS), and this core's index.
    directory: Option<(Arc<FlowDirectory>, usize)>,
    /// Connected sockets the directory had no room for.
    pub directory_full: u64,
}

impl Default for UdpTable {
    fn default() -> Self {
        let index: Box<[u16]> = vec![0u16; 1 << 16].into_boxed_slice();
        UdpTable {
            slots: Vec::with_capacity(MAX_SOCKETS),
            index: index.try_into().expect("65536 entries"),
            directory: None,
            directory_full: 0,
        }
    }
}

impl UdpTable {
    pub fn new() -> Self {
        Self::default()
    }

    /// The place in `slots` of the socket bound to `port`.
    #[inline]
    fn slot(&self, port: u16) -> Option<usize> {
        (self.index[usize::from(port)] as usize).checked_sub(1)
    }

    pub fn bind(&mut self, port: u16, app: usize) -> Result<(), BindError> {
        if port == 0 {
            return Err(BindError::PortZero);
        }
        if self.is_bound(port) {
            return Err(BindError::InUse(port));
        }
        if self.slots.len() >= MAX_SOCKETS {
            return Err(BindError::TableFull);
        }
        self.slots.push((
            port,
            Binding {
                app,
                rx: 0,
                tx: 0,
                remote: None,
            },
        ));
        // At most MAX_SOCKETS (256) slots: the place fits.
        self.index[usize::from(port)] = self.slots.len() as u16;
        Ok(())
    }

    /// Share connected sockets with the other cores through `dir`.
    pub fn set_directory(&mut self, dir: Arc<FlowDirectory>, core: usize) {
        self.directory = Some((dir, core));
    }

    /// Bind `port` as a socket connected to `remote` (the caller chose a
    /// port whose replies reach this core, or that no other core uses).
    pub fn connect(
        &mut self,
        port: u16,
        remote: SocketAddrV4,
        app: usize,
    ) -> Result<(), BindError> {
        self.bind(port, app)?;
        if let Some(b) = self.lookup(port) {
            b.remote = Some(remote);
        }
        if let Some((dir, core)) = &self.directory {
            if !dir.insert(
                &FlowKey {
                    local_port: port,
                    remote,
                },
                *core,
            ) {
                self.directory_full += 1;
            }
        }
        Ok(())
    }

    /// Connect an ephemeral port to `remote`: the next of this core's ports
    /// (`ports`) that no socket here holds and `is_free` (the other
    /// transports' say) takes.
    pub fn connect_ephemeral(
        &mut self,
        ports: &mut PortAllocator,
        remote: SocketAddrV4,
        app: usize,
        mut is_free: impl FnMut(u16) -> bool,
    ) -> Result<u16, BindError> {
        let port = ports
            .pick(rss::L4::Udp, remote, |p| !self.is_bound(p) && is_free(p))
            .ok_or(BindError::NoPort)?;
        self.connect(port, remote, app)?;
        Ok(port)
    }

    /// Release a port; true if it was bound.
    pub fn unbind(&mut self, port: u16) -> bool {
        match self.slot(port) {
            Some(i) => {
                self.index[usize::from(port)] = 0;
                let (_, b) = self.slots.swap_remove(i);
                if let Some(&(moved, _)) = self.slots.get(i) {
                    self.index[usize::from(moved)] = (i + 1) as u16;
                }
                if let (Some(remote), Some((dir, core))) = (b.remote, &self.directory) {
                    dir.remove(
                        &FlowKey {
                            local_port: port,
                            remote,
                        },
                        *core,
                    );
                }
                true
            }
            None => false,
        }
    }

    #[inline]
    pub fn lookup(&mut self, port: u16) -> Option<&mut Binding> {
        let i = self.slot(port)?;
        self.slots.get_mut(i).map(|(_, b)| b)
    }

    /// The socket bound to `port`, read-only.
    #[inline]
    pub fn get(&self, port: u16) -> Option<&Binding> {
        let i = self.slot(port)?;
        self.slots.get(i).map(|(_, b)| b)
    }

    #[inline]
    pub fn is_bound(&self, port: u16) -> bool {
        self.index[usize::from(port)] != 0
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (u16, &Binding)> {
        self.slots.iter().map(|(p, b)| (*p, b))
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
    fn index_follows_removals_from_the_middle() {
        let mut t = UdpTable::new();
        let ports = [7u16, 9, 53, 65535, 1, 40000];
        for (app, p) in ports.iter().enumerate() {
            t.bind(*p, app).unwrap();
        }
        // Remove from the middle, the end and the front: every other
        // port still finds its own socket, and a removed one none.
        for (gone, p) in [9u16, 40000, 7].iter().enumerate() {
            assert!(t.unbind(*p));
            assert!(t.lookup(*p).is_none() && !t.is_bound(*p));
            for (app, q) in ports.iter().enumerate() {
                if [9u16, 40000, 7][..=gone].contains(q) {
                    assert!(t.get(*q).is_none());
                } else {
                    assert_eq!(t.get(*q).unwrap().app, app, "port {q}");
                    assert_eq!(t.lookup(*q).unwrap().app, app, "port {q}");
                }
            }
        }
        assert_eq!(t.len(), 3);
        let mut seen: Vec<u16> = t.iter().map(|(p, _)| p).collect();
        seen.sort_unstable();
        assert_eq!(seen, vec![1, 53, 65535]);
        // Rebinding a freed port works; the others are untouched.
        t.bind(9, 42).unwrap();
        assert_eq!(t.get(9).unwrap().app, 42);
        assert_eq!(t.get(65535).unwrap().app, 3);
        assert!(t.get(0).is_none());
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

    #[test]
    fn connected_sockets_take_their_remote_only_and_are_in_the_directory() {
        let dir = Arc::new(FlowDirectory::new(16));
        let mut t = UdpTable::new();
        t.set_directory(dir.clone(), 1);
        let peer: SocketAddrV4 = "198.18.0.2:7".parse().unwrap();
        t.connect(61001, peer, 0).unwrap();
        assert_eq!(t.connect(61001, peer, 0), Err(BindError::InUse(61001)));
        let b = *t.lookup(61001).unwrap();
        assert!(b.accepts(peer));
        assert!(!b.accepts("198.18.0.3:7".parse().unwrap()));
        assert!(!b.accepts("198.18.0.2:8".parse().unwrap()));
        let key = FlowKey {
            local_port: 61001,
            remote: peer,
        };
        assert_eq!(dir.owner(&key), Some(1));
        assert!(t.unbind(61001));
        assert_eq!(dir.owner(&key), None);
        // A plain binding takes anyone.
        t.bind(7, 0).unwrap();
        assert!(t.lookup(7).unwrap().accepts(peer));
    }
}
