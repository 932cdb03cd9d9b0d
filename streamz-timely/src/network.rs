//! Connecting the processes: each connection opened with a handshake that names the cluster
//! and the process, before timely takes the sockets over.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use streamz_core::panic_message;

use crate::config::ClusterConfig;
use crate::error::ClusterError;

/// Opens every connection of a cluster: what is sent first on each, to tell a streamz-timely
/// peer of the same cluster from anything else on the port.
const MAGIC: &[u8; 8] = b"STRMZTLY";

/// Connects this process to every other: it connects to those before it and accepts those
/// after it, as timely does, each connection opened with a handshake that names the process.
pub(crate) fn connect(config: &ClusterConfig) -> Result<Vec<Option<TcpStream>>, ClusterError> {
    let me = config.process;
    let n = config.addresses.len();
    let deadline = Instant::now() + config.connect_timeout;
    let address = &config.addresses[me];
    let listener = TcpListener::bind(address.as_str()).map_err(|e| {
        ClusterError::connect(
            me,
            format!("process {me} cannot listen on its address {address}: {e}"),
        )
    })?;
    listener
        .set_nonblocking(true)
        .map_err(|e| ClusterError::connect(me, format!("process {me}: {e}")))?;
    let timeout = config.connect_timeout;
    let accepting = std::thread::spawn({
        let address = address.clone();
        let n_after = n - me - 1;
        move || accept(listener, me, n, n_after, deadline, timeout, &address)
    });
    let mut sockets: Vec<Option<TcpStream>> = Vec::with_capacity(n);
    for (peer, peer_address) in config.addresses.iter().enumerate().take(me) {
        sockets.push(Some(dial(me, n, peer, peer_address, deadline, timeout)?));
    }
    sockets.push(None);
    let after = accepting
        .join()
        .map_err(|p| ClusterError::connect(me, panic_message(&*p)))??;
    sockets.extend(after.into_iter().map(Some));
    Ok(sockets)
}

fn handshake(me: usize, n: usize) -> [u8; 24] {
    let mut bytes = [0u8; 24];
    bytes[..8].copy_from_slice(MAGIC);
    bytes[8..16].copy_from_slice(&(me as u64).to_le_bytes());
    bytes[16..].copy_from_slice(&(n as u64).to_le_bytes());
    bytes
}

fn dial(
    me: usize,
    n: usize,
    peer: usize,
    address: &str,
    deadline: Instant,
    timeout: Duration,
) -> Result<TcpStream, ClusterError> {
    let mut last = String::from("no attempt");
    while Instant::now() < deadline {
        let attempt = resolve(address).and_then(|addr| {
            let left = deadline.saturating_duration_since(Instant::now());
            TcpStream::connect_timeout(&addr, left.max(Duration::from_millis(1)))
        });
        match attempt {
            Ok(mut stream) => {
                let sent = stream
                    .set_nodelay(true)
                    .and_then(|()| stream.write_all(&handshake(me, n)));
                match sent {
                    Ok(()) => return Ok(stream),
                    Err(e) => last = e.to_string(),
                }
            }
            Err(e) => last = e.to_string(),
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(ClusterError::connect(
        peer,
        format!(
            "process {me} could not connect to process {peer} at {address} within {timeout:?} \
             ({last}): is it running, with the same -n and hostfile?"
        ),
    ))
}

fn resolve(address: &str) -> std::io::Result<SocketAddr> {
    address.to_socket_addrs()?.next().ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "the address resolves to nothing",
        )
    })
}

fn accept(
    listener: TcpListener,
    me: usize,
    n: usize,
    expected: usize,
    deadline: Instant,
    timeout: Duration,
    address: &str,
) -> Result<Vec<TcpStream>, ClusterError> {
    let mut peers: Vec<Option<TcpStream>> = (0..expected).map(|_| None).collect();
    while peers.iter().any(Option::is_none) {
        if Instant::now() >= deadline {
            let missing: Vec<String> = peers
                .iter()
                .enumerate()
                .filter(|(_, s)| s.is_none())
                .map(|(i, _)| (me + 1 + i).to_string())
                .collect();
            let first = me + 1 + peers.iter().position(Option::is_none).unwrap_or(0);
            return Err(ClusterError::connect(
                first,
                format!(
                    "process {me} waited {timeout:?} at {address} for process{} {} to connect: \
                     are they running, with the same -n and hostfile?",
                    if missing.len() == 1 { "" } else { "es" },
                    missing.join(", ")
                ),
            ));
        }
        match listener.accept() {
            Ok((mut stream, from)) => {
                let mut hello = [0u8; 24];
                let read = stream
                    .set_nonblocking(false)
                    .and_then(|()| stream.set_read_timeout(Some(Duration::from_secs(5))))
                    .and_then(|()| stream.read_exact(&mut hello));
                let peer = u64::from_le_bytes(hello[8..16].try_into().unwrap_or_default());
                let size = u64::from_le_bytes(hello[16..].try_into().unwrap_or_default());
                if read.is_err() || &hello[..8] != MAGIC {
                    // something else on the port: not a peer of ours
                    continue;
                }
                if size != n as u64 {
                    return Err(ClusterError::config(
                        Some(peer as usize),
                        format!(
                            "process {peer} (from {from}) thinks the cluster has {size} \
                             processes, process {me} that it has {n}: start them with the same -n"
                        ),
                    ));
                }
                let slot = (peer as usize)
                    .checked_sub(me + 1)
                    .filter(|i| *i < expected)
                    .ok_or_else(|| {
                        ClusterError::config(
                            Some(peer as usize),
                            format!(
                                "process {me} was reached by a process calling itself {peer} \
                                 (from {from}): two processes have the same -p, or the \
                                 hostfiles differ"
                            ),
                        )
                    })?;
                let _ = stream.set_read_timeout(None);
                let _ = stream.set_nodelay(true);
                peers[slot] = Some(stream);
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => {
                return Err(ClusterError::connect(
                    me,
                    format!("process {me} cannot accept connections at {address}: {e}"),
                ));
            }
        }
    }
    Ok(peers.into_iter().flatten().collect())
}
