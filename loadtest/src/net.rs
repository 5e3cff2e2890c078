//! Where load goes: loopback only, spread over several 127.0.0.x source
//! addresses (each source address has its own ~28k ephemeral ports), and
//! within the process's open-file limit.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{Context as _, bail};

/// Files a process keeps for itself (stdio, the runtime, logs) when
/// budgeting sockets against the limit.
pub const RESERVED_FILES: u64 = 256;

/// Refuses a target that is not a loopback address: load stays on this
/// machine.
pub fn require_loopback(addr: &SocketAddr, what: &str) -> anyhow::Result<()> {
    if !addr.ip().is_loopback() {
        bail!("{what} {addr} is not a loopback address; axon-loadtest only loads this machine");
    }
    Ok(())
}

/// Resolves `host:port` to a loopback socket address.
pub async fn resolve_loopback(host: &str, port: u16, what: &str) -> anyhow::Result<SocketAddr> {
    let addr = tokio::net::lookup_host((host, port))
        .await
        .with_context(|| format!("resolving {what} {host}:{port}"))?
        .find(|a| a.ip().is_loopback())
        .with_context(|| {
            format!("{what} {host}:{port} has no loopback address; axon-loadtest only loads this machine")
        })?;
    require_loopback(&addr, what)?;
    Ok(addr)
}

/// Source addresses handed out round-robin: 127.0.0.1 ... 127.0.0.N for
/// an IPv4 loopback target, the target's own family otherwise.
pub struct SourceAddrs {
    addrs: Vec<IpAddr>,
    next: AtomicUsize,
}

impl SourceAddrs {
    /// `count` addresses (at least 1, at most 254) for `target`.
    pub fn new(target: &SocketAddr, count: usize) -> Self {
        let addrs = match target.ip() {
            IpAddr::V4(_) => (1..=count.clamp(1, 254) as u8)
                .map(|i| IpAddr::V4(Ipv4Addr::new(127, 0, 0, i)))
                .collect(),
            ip @ IpAddr::V6(_) => vec![ip],
        };
        Self {
            addrs,
            next: AtomicUsize::new(0),
        }
    }

    /// The next source address.
    pub fn next(&self) -> IpAddr {
        self.addrs[self.next.fetch_add(1, Ordering::Relaxed) % self.addrs.len()]
    }

    /// All of them.
    pub fn all(&self) -> &[IpAddr] {
        &self.addrs
    }
}

/// A TCP connection to `target` from `source` (port chosen by the kernel).
pub async fn connect_tcp(source: IpAddr, target: SocketAddr) -> io::Result<tokio::net::TcpStream> {
    let socket = if target.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.bind(SocketAddr::new(source, 0))?;
    let stream = socket.connect(target).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// The soft limit on open files of this process (`/proc/self/limits`).
pub fn open_file_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// Files this process has open now.
pub fn open_files() -> Option<u64> {
    Some(std::fs::read_dir("/proc/self/fd").ok()?.count() as u64)
}

/// Whether `err` means the process (or the system) ran out of file
/// descriptors.
pub fn is_out_of_files(err: &io::Error) -> bool {
    matches!(err.raw_os_error(), Some(23 | 24)) // ENFILE, EMFILE
}

/// Checks that `sockets` more sockets fit under the open-file limit, with
/// [`RESERVED_FILES`] to spare, and says how many do when they do not.
pub fn check_file_budget(sockets: u64, what: &str) -> anyhow::Result<()> {
    let (Some(limit), Some(open)) = (open_file_limit(), open_files()) else {
        return Ok(());
    };
    let room = limit.saturating_sub(open + RESERVED_FILES);
    if sockets > room {
        bail!(
            "{what} needs {sockets} sockets but this process may open only {room} more \
             (open-file limit {limit}, {open} open, {RESERVED_FILES} kept spare); \
             use fewer, or more processes (--processes)"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_rotate_over_loopback_addresses() {
        let target: SocketAddr = "127.0.0.1:8008".parse().unwrap();
        let s = SourceAddrs::new(&target, 3);
        let got: Vec<_> = (0..4).map(|_| s.next().to_string()).collect();
        assert_eq!(got, ["127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.1"]);
        let v6: SocketAddr = "[::1]:8008".parse().unwrap();
        assert_eq!(SourceAddrs::new(&v6, 8).all().len(), 1);
    }

    #[test]
    fn refuses_targets_off_this_machine() {
        assert!(require_loopback(&"10.0.0.1:80".parse().unwrap(), "server").is_err());
        assert!(require_loopback(&"127.0.0.5:80".parse().unwrap(), "server").is_ok());
    }

    #[test]
    fn reads_the_open_file_limit() {
        let limit = open_file_limit().expect("Linux has /proc/self/limits");
        assert!(limit > 0);
        assert!(open_files().unwrap() > 0);
        assert!(check_file_budget(u64::MAX / 2, "test").is_err());
        assert!(check_file_budget(1, "test").is_ok());
    }
}
