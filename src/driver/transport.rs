//! Socket tasks: UDP readers and TCP connections. They frame and parse (in parallel, off
//! the SIP task) and forward; they never decide what to answer.

use bytes::{Bytes, BytesMut};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc;

use super::Input;
use crate::config::TcpCaps;
use crate::sip::header::Transport;
use crate::sip::parse::{self, Frame, Limits};
use crate::sip::transaction::Peer;

/// Socket buffer size asked of the kernel (it caps it at net.core.rmem_max/wmem_max): a
/// burst of REGISTERs or INVITEs must queue, not drop, while the SIP task is busy.
const UDP_BUFFER: usize = 4 * 1024 * 1024;

/// Binds a UDP socket with large receive and send buffers; IPv6 sockets are v6-only so
/// an IPv4 listener on the same port can coexist.
pub(super) async fn bind_udp(addr: SocketAddr) -> std::io::Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let sock = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        sock.set_only_v6(true)?;
    }
    // Best effort: a smaller buffer still works, just drops sooner under bursts.
    let _ = sock.set_recv_buffer_size(UDP_BUFFER);
    let _ = sock.set_send_buffer_size(UDP_BUFFER);
    sock.set_nonblocking(true)?;
    sock.bind(&addr.into())?;
    UdpSocket::from_std(sock.into())
}

pub(super) async fn udp_reader(sock: Arc<UdpSocket>, tx: mpsc::Sender<Input>) {
    let limits = Limits::default();
    let mut buf = BytesMut::with_capacity(256 * 1024);
    loop {
        if buf.capacity() < 65536 {
            buf = BytesMut::with_capacity(256 * 1024);
        }
        let (_, from) = match sock.recv_buf_from(&mut buf).await {
            Ok(r) => r,
            Err(e) => {
                // ICMP port unreachable and friends surface here on Linux; keep reading.
                tracing::debug!(error = %e, "UDP receive error");
                continue;
            }
        };
        // One datagram becomes one Bytes; its headers are slices of it.
        let dgram: Bytes = buf.split().freeze();
        let peer = Peer {
            transport: Transport::Udp,
            addr: from,
        };
        let input = match parse::parse_datagram(dgram, &limits) {
            Ok(m) => Input::Message(Box::new(m), peer),
            Err(e) if e.kind == parse::ParseErrorKind::Empty => continue,
            Err(e) => Input::ParseError(e, peer),
        };
        if tx.send(input).await.is_err() {
            return;
        }
    }
}

/// Connections open, in all and per source address (shared by every TCP listener).
#[derive(Debug, Default)]
pub(super) struct OpenConns {
    total: usize,
    per_source: HashMap<IpAddr, usize>,
    /// Connections refused for a cap, and closed for being idle.
    pub(super) refused: u64,
    pub(super) idle_closed: u64,
}

impl OpenConns {
    /// Counts a new connection from `ip` in, unless a cap is reached.
    fn admit(&mut self, ip: IpAddr, caps: &TcpCaps) -> bool {
        let mine = self.per_source.get(&ip).copied().unwrap_or(0);
        if self.total >= caps.max_total || mine >= caps.max_per_source {
            self.refused += 1;
            return false;
        }
        self.total += 1;
        self.per_source.insert(ip, mine + 1);
        true
    }

    fn release(&mut self, ip: IpAddr) {
        self.total = self.total.saturating_sub(1);
        if let Some(n) = self.per_source.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                self.per_source.remove(&ip);
            }
        }
    }
}

pub(super) type SharedConns = Arc<std::sync::Mutex<OpenConns>>;

pub(super) async fn tcp_acceptor(
    lst: TcpListener,
    tx: mpsc::Sender<Input>,
    caps: TcpCaps,
    open: SharedConns,
) {
    loop {
        match lst.accept().await {
            Ok((s, from)) => {
                let ip = from.ip();
                let admitted = open.lock().is_ok_and(|mut o| o.admit(ip, &caps));
                if !admitted {
                    // Closed at once: a flood of connections cannot use up the box's
                    // sockets, nor one address everyone else's share.
                    tracing::warn!(source = %ip, "TCP connection refused: too many open");
                    continue;
                }
                let _ = s.set_nodelay(true);
                let (tx, open) = (tx.clone(), open.clone());
                tokio::spawn(async move {
                    tcp_conn(s, from, tx, caps, &open).await;
                    if let Ok(mut o) = open.lock() {
                        o.release(ip);
                    }
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "TCP accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

async fn tcp_conn(
    stream: TcpStream,
    from: SocketAddr,
    tx: mpsc::Sender<Input>,
    caps: TcpCaps,
    open: &SharedConns,
) {
    let peer = Peer {
        transport: Transport::Tcp,
        addr: from,
    };
    let (mut rd, mut wr) = stream.into_split();
    let (wtx, mut wrx) = mpsc::channel::<Bytes>(256);
    if tx
        .send(Input::Connected(peer.clone(), wtx.clone()))
        .await
        .is_err()
    {
        return;
    }
    let writer = tokio::spawn(async move {
        while let Some(b) = wrx.recv().await {
            if wr.write_all(&b).await.is_err() {
                break;
            }
        }
        let _ = wr.shutdown().await;
    });
    let limits = Limits::default();
    let mut buf = BytesMut::with_capacity(16 * 1024);
    // Until its first whole message a connection has little time (one that sends
    // nothing, or a byte at a time, holds a socket for nothing); after, its idle time.
    let mut spoke = false;
    'read: loop {
        let wait = if spoke { caps.idle } else { caps.first_message };
        match tokio::time::timeout(wait, rd.read_buf(&mut buf)).await {
            Err(_) => {
                tracing::info!(%from, idle_s = wait.as_secs(), "TCP connection closed: idle");
                if let Ok(mut o) = open.lock() {
                    o.idle_closed += 1;
                }
                break;
            }
            Ok(Ok(0) | Err(_)) => break,
            Ok(Ok(_)) => {}
        }
        loop {
            match parse::parse_stream(&mut buf, &limits) {
                Ok(None) => break,
                Ok(Some(Frame::Ping)) => {
                    let _ = wtx.send(Bytes::from_static(b"\r\n")).await;
                }
                Ok(Some(Frame::Message(m))) => {
                    spoke = true;
                    if tx
                        .send(Input::Message(Box::new(m), peer.clone()))
                        .await
                        .is_err()
                    {
                        break 'read;
                    }
                }
                Err(e) => {
                    // Framing is lost: answer if we can, then close (RFC 3261 §18.3).
                    let _ = tx.send(Input::ParseError(e, peer.clone())).await;
                    break 'read;
                }
            }
        }
    }
    let _ = tx.send(Input::Closed(peer)).await;
    drop(wtx);
    let _ = writer.await;
}
