//! What the API's benchmarks share: a keep-alive HTTP/1.1 client small enough to cost
//! nothing next to what it measures (one blocking socket, requests written by hand,
//! `Content-Length` bodies read into a reused buffer), and the server started on a port.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};

/// One keep-alive connection.
pub struct Client {
    addr: SocketAddr,
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

/// A response: status and body length (the body is in [`Client::body`] when kept).
pub struct Reply {
    pub status: u16,
    pub len: usize,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        let writer = stream.try_clone().expect("clone");
        Client {
            addr,
            reader: BufReader::with_capacity(1 << 20, stream),
            writer,
        }
    }

    /// GET `path`, keeping the body in `body` (`keep`) or only counting it.
    pub fn get(
        &mut self,
        path: &str,
        token: Option<&str>,
        body: &mut Vec<u8>,
        keep: bool,
    ) -> Reply {
        let auth = token
            .map(|t| format!("Authorization: Bearer {t}\r\n"))
            .unwrap_or_default();
        self.get_with(path, &auth, body, keep)
    }

    /// GET `path` with extra header lines (each ending in CRLF), e.g. a cookie.
    pub fn get_with(&mut self, path: &str, headers: &str, body: &mut Vec<u8>, keep: bool) -> Reply {
        let req = format!("GET {path} HTTP/1.1\r\nHost: bench\r\n{headers}\r\n");
        self.writer.write_all(req.as_bytes()).expect("write");
        let mut line = String::new();
        self.reader.read_line(&mut line).expect("status line");
        let status: u16 = line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bad status line {line:?} from {}", self.addr));
        let mut len = None;
        loop {
            line.clear();
            self.reader.read_line(&mut line).expect("header");
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':')
                && k.eq_ignore_ascii_case("content-length")
            {
                len = v.trim().parse::<usize>().ok();
            }
        }
        let len = len.expect("a Content-Length reply");
        body.clear();
        if keep {
            body.resize(len, 0);
            self.reader.read_exact(body).expect("body");
        } else {
            let mut left = len;
            let mut buf = vec![0u8; 1 << 20];
            while left > 0 {
                let n = self
                    .reader
                    .read(&mut buf[..left.min(1 << 20)])
                    .expect("body");
                assert!(n > 0, "connection closed mid-body");
                left -= n;
            }
        }
        Reply { status, len }
    }
}

/// Serve the API over `state` on a free loopback port, on its own runtime thread.
pub fn start_api(state: callrec_api::ApiState) -> SocketAddr {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            tx.send(listener.local_addr().expect("addr"))
                .expect("send addr");
            callrec_api::serve(listener, state, std::future::pending()).await;
        });
    });
    rx.recv().expect("server address")
}

/// Percent-encodes a query value.
pub fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}
