//! Audio download over loopback against nginx serving the same file in the same run
//! (SPEC §8: ≥ 80 % of nginx).
//!
//! One stored recording (default 256 MiB) is downloaded whole, alternately from callrec's API
//! (`GET /api/v1/recordings/{id}/audio`, token, audit entry, streamed from the store) and from
//! Debian's nginx (static file, `sendfile on`) serving the store directory, each over its own
//! keep-alive loopback connection with the same client. The file is in the page cache after
//! the warm-up, so both measure serving, not the disk.
//!
//! `scripts/bench-api.sh` installs nginx (Debian's `nginx-light`) and runs this;
//! `CALLREC_NGINX` (default `/usr/sbin/nginx`), `CALLREC_BENCH_FILE_MB` (default 256),
//! `CALLREC_BENCH_ROUNDS` (default 10), `CALLREC_NGINX_IO` (nginx's I/O directives, default
//! `sendfile on; tcp_nopush on;`, to compare against its other settings).

#[path = "../../callrec-store/benches/support/mod.rs"]
mod store_support;
mod support;

use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command};
use std::sync::Arc;
use std::time::{Duration, Instant};

use callrec_model::NewRecording;
use callrec_model::{Direction, RecordingId};
use callrec_store::{Access, FilePurpose, IngestJob, NewUser, Store, StoreHandle};
use store_support::env_usize;
use support::{Client, start_api};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

fn wait_listening(addr: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on {addr}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

struct Nginx(Child);

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM to the master: it stops its workers and exits.
        let pid = nix::unistd::Pid::from_raw(self.0.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let _ = self.0.wait();
    }
}

fn start_nginx(nginx: &Path, prefix: &Path, root: &Path, port: u16) -> Nginx {
    let conf = prefix.join("nginx.conf");
    let p = prefix.display();
    std::fs::write(
        &conf,
        format!(
            "worker_processes 1;
daemon off;
user root;
pid {p}/nginx.pid;
error_log {p}/error.log;
events {{ worker_connections 64; }}
http {{
    access_log off;
    keepalive_requests 100000;
    {io}
    types {{ audio/wav wav; }}
    client_body_temp_path {p}/body;
    proxy_temp_path {p}/proxy;
    fastcgi_temp_path {p}/fastcgi;
    uwsgi_temp_path {p}/uwsgi;
    scgi_temp_path {p}/scgi;
    server {{
        listen 127.0.0.1:{port};
        root {root};
        location / {{ }}
    }}
}}
",
            root = root.display(),
            io = std::env::var("CALLREC_NGINX_IO")
                .unwrap_or_else(|_| "sendfile on; tcp_nopush on;".to_owned()),
        ),
    )
    .expect("nginx.conf");
    let child = Command::new(nginx)
        .arg("-p")
        .arg(prefix)
        .arg("-c")
        .arg(&conf)
        .arg("-e")
        .arg(prefix.join("error.log"))
        .spawn()
        .expect("start nginx");
    let nginx = Nginx(child);
    wait_listening(SocketAddr::from(([127, 0, 0, 1], port)));
    nginx
}

fn main() {
    let nginx_bin = std::env::var_os("CALLREC_NGINX").unwrap_or_else(|| "/usr/sbin/nginx".into());
    let nginx_bin = Path::new(&nginx_bin).to_path_buf();
    if !nginx_bin.exists() {
        eprintln!(
            "{} not found: run scripts/bench-api.sh, which installs Debian's nginx-light",
            nginx_bin.display()
        );
        std::process::exit(2);
    }
    let mb = env_usize("CALLREC_BENCH_FILE_MB", 256);
    let rounds = env_usize("CALLREC_BENCH_ROUNDS", 10);
    let dir = tempfile::tempdir().expect("tempdir");

    // A stored recording of about `mb` MiB, made the way the daemon makes one.
    let mut store = Store::open(dir.path().join("data")).expect("store");
    let user = store
        .add_user(&NewUser::new("default", "1001"), "bench")
        .expect("user");
    let token = store
        .create_token(user.id, "bench", &Access::system("bench"))
        .expect("token")
        .secret;
    let id = RecordingId::new();
    let spool = dir.path().join(format!("{id}.wav"));
    {
        let data_len = (mb * 1024 * 1024) as u32;
        let mut f = std::io::BufWriter::new(std::fs::File::create(&spool).expect("spool"));
        f.write_all(&callrec_testkit::wav::header(8000, 1, data_len))
            .expect("write");
        let mut x: u64 = 1;
        let mut block = vec![0u8; 1 << 16];
        for _ in 0..(data_len as usize / block.len()) {
            for b in block.chunks_mut(8) {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                b.copy_from_slice(&x.to_le_bytes()[..b.len()]);
            }
            f.write_all(&block).expect("write");
        }
        f.flush().expect("flush");
    }
    store
        .create_recording(
            &NewRecording {
                id: id.clone(),
                user: user.id,
                call_uuid: "bench".into(),
                direction: Direction::Outbound,
                from: "1001".into(),
                to: "01234567890".into(),
                started_at: chrono::Utc::now(),
                format: "wav".into(),
                spool_path: spool.clone(),
            },
            "bench",
        )
        .expect("create");
    store.ingest(&IngestJob::new(id.clone())).expect("ingest");
    let stored = store
        .open_file(&id, &Access::system("bench"), FilePurpose::Archive)
        .expect("stored file");
    let store_root = store.paths().store.clone();
    let rel = stored
        .path
        .strip_prefix(&store_root)
        .expect("inside the store")
        .to_path_buf();
    let len = stored.size_bytes as usize;

    let api = start_api(callrec_api::ApiState::new(
        StoreHandle::new(store),
        Arc::new(callrec_api::NoDaemon),
    ));
    let prefix = dir.path().join("nginx");
    std::fs::create_dir_all(&prefix).expect("nginx prefix");
    let port = free_port();
    let _nginx = start_nginx(&nginx_bin, &prefix, &store_root, port);
    let nginx_addr = SocketAddr::from(([127, 0, 0, 1], port));

    let api_path = format!("/api/v1/recordings/{id}/audio");
    let nginx_path = format!("/{}", rel.display());
    let mut api_client = Client::connect(api);
    let mut nginx_client = Client::connect(nginx_addr);
    let mut sink = Vec::new();
    let mut fetch = |client: &mut Client, path: &str, token: Option<&str>| -> f64 {
        let t = Instant::now();
        let reply = client.get(path, token, &mut sink, false);
        let secs = t.elapsed().as_secs_f64();
        assert_eq!(reply.status, 200, "{path}");
        assert_eq!(reply.len, len, "{path}: length");
        len as f64 / secs / (1024.0 * 1024.0)
    };
    // Warm-up: the file into the page cache, both servers past their first request.
    fetch(&mut api_client, &api_path, Some(&token));
    fetch(&mut nginx_client, &nginx_path, None);

    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        ours.push(fetch(&mut api_client, &api_path, Some(&token)));
        theirs.push(fetch(&mut nginx_client, &nginx_path, None));
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let best = |v: &[f64]| v.iter().copied().fold(0.0, f64::max);
    let (mo, mt) = (median(&mut ours), median(&mut theirs));
    println!(
        "download of a {:.0} MiB recording over loopback, {rounds} rounds each, alternating",
        len as f64 / 1048576.0
    );
    println!(
        "callrec API  median {mo:>8.0} MiB/s  best {:>8.0} MiB/s",
        best(&ours)
    );
    println!(
        "nginx        median {mt:>8.0} MiB/s  best {:>8.0} MiB/s",
        best(&theirs)
    );
    println!("callrec / nginx (medians): {:.0} %", 100.0 * mo / mt);
}
