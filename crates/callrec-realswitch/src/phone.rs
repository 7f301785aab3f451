//! A SIP phone registered on the test switch: Debian's `baresip` (package `baresip-core`),
//! as `../shared/freeswitch/README.md` describes it. It registers as a directory user
//! (password `test-1234`), answers every call by itself (`answermode=auto`), sends an 8 kHz
//! WAV of tone bursts as its microphone, and takes up to `max_calls` calls at once. It is
//! killed when dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::{Switch, free_port};

/// A running baresip registered on a switch.
pub struct Phone {
    dir: tempfile::TempDir,
    child: Child,
    ctrl: u16,
    /// The directory user it registered as.
    pub user: String,
}

/// Whether baresip is installed (`/usr/bin/baresip`).
pub fn available() -> bool {
    Command::new("baresip")
        .arg("-h")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// 8 kHz mono 16-bit PCM: 1 s of 440 Hz, 0.5 s of silence, `bursts` times.
fn tone_wav(bursts: u32) -> Vec<u8> {
    let rate = 8000u32;
    let mut samples: Vec<i16> = Vec::new();
    for _ in 0..bursts {
        samples.extend((0..rate).map(|i| {
            let t = f64::from(i) / f64::from(rate);
            ((t * 440.0 * std::f64::consts::TAU).sin() * 8000.0) as i16
        }));
        samples.extend(std::iter::repeat_n(0i16, rate as usize / 2));
    }
    let data_len = (samples.len() * 2) as u32;
    let mut out = Vec::with_capacity(44 + data_len as usize);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data_len).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&rate.to_le_bytes());
    out.extend_from_slice(&(rate * 2).to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_len.to_le_bytes());
    for s in samples {
        out.extend_from_slice(&s.to_le_bytes());
    }
    out
}

impl Phone {
    /// Starts baresip as `user` on `switch` and waits until the switch lists it registered.
    /// With `auto_answer` it answers every call at once; otherwise calls ring until
    /// [`Phone::accept`].
    pub fn register(switch: &Switch, user: &str, max_calls: u32, auto_answer: bool) -> Phone {
        let ctrl = free_port();
        // baresip listens on UDP and TCP at `sip_listen` and on TLS at the next port.
        let sip = loop {
            let sip = free_port();
            if sip < u16::MAX
                && sip + 1 != ctrl
                && std::net::TcpListener::bind(("127.0.0.1", sip + 1)).is_ok()
            {
                break sip;
            }
        };
        let dir = tempfile::Builder::new()
            .prefix("callrec-phone-")
            .tempdir()
            .expect("a temp dir for the phone");
        let tone: PathBuf = dir.path().join("tone.wav");
        std::fs::write(&tone, tone_wav(120)).expect("write the phone's tone");
        let config = format!(
            "poll_method\t\tepoll\n\
             sip_listen\t\t127.0.0.1:{sip}\n\
             call_max_calls\t\t{max_calls}\n\
             audio_source\t\taufile,{tone}\n\
             audio_player\t\taufile,/dev/null\n\
             audio_alert\t\taufile,/dev/null\n\
             module_path\t\t/usr/lib/baresip/modules\n\
             module\t\t\tg711.so\n\
             module\t\t\taufile.so\n\
             module_app\t\taccount.so\n\
             module_app\t\tmenu.so\n\
             module_app\t\tctrl_tcp.so\n\
             ctrl_tcp_listen\t\t127.0.0.1:{ctrl}\n",
            tone = tone.display(),
        );
        std::fs::write(dir.path().join("config"), config).expect("write baresip's config");
        std::fs::write(
            dir.path().join("accounts"),
            format!(
                "<sip:{user}@127.0.0.1:{port};transport=udp>;auth_pass=test-1234;\
                 answermode={mode};regint=3600;audio_codecs=PCMU\n",
                port = switch.sip_port,
                mode = if auto_answer { "auto" } else { "manual" },
            ),
        )
        .expect("write baresip's accounts");
        let log = std::fs::File::create(dir.path().join("baresip.log")).expect("a log file");
        let child = Command::new("baresip")
            .arg("-f")
            .arg(dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start baresip (apt-get install baresip-core)");
        let phone = Phone {
            dir,
            child,
            ctrl,
            user: user.to_owned(),
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while !switch
            .api(&format!("sofia_contact {user}@127.0.0.1"))
            .starts_with("sofia/")
        {
            assert!(
                std::time::Instant::now() < deadline,
                "the phone did not register within 20 s; baresip said:\n{}",
                phone.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        phone
    }

    /// Answers the call ringing now (baresip's `accept`), as a person picking up.
    pub fn accept(&self) {
        self.command("accept");
    }

    /// Sends one `ctrl_tcp` command (a netstring of JSON) and returns its answer.
    pub fn command(&self, command: &str) -> String {
        self.command_with(command, "")
    }

    /// Sends one `ctrl_tcp` command with parameters (e.g. `dial`, `9997`) and returns its
    /// answer. baresip also sends every connected controller its events (a call ringing,
    /// established, closed), so netstrings are read until the answer, the one carrying our
    /// token: closing on an event instead left data unread, the close became a reset, and
    /// baresip dropped commands it had not read yet (97 of 300 dials at 20/s were lost so).
    pub fn command_with(&self, command: &str, params: &str) -> String {
        use std::io::{Read, Write};
        let mut tcp = std::net::TcpStream::connect(("127.0.0.1", self.ctrl))
            .expect("connect to the phone's ctrl_tcp");
        tcp.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("a read timeout");
        let json =
            format!("{{\"command\":\"{command}\",\"params\":\"{params}\",\"token\":\"callrec\"}}");
        tcp.write_all(format!("{}:{json},", json.len()).as_bytes())
            .expect("send to the phone");
        let mut pending = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            while let Some((message, used)) = netstring(&pending) {
                let message = String::from_utf8_lossy(message).into_owned();
                pending.drain(..used);
                if message.contains("\"response\":true") && message.contains("\"callrec\"") {
                    return message;
                }
            }
            match tcp.read(&mut buf) {
                Ok(n) if n > 0 => pending.extend_from_slice(&buf[..n]),
                _ => return String::from_utf8_lossy(&pending).into_owned(),
            }
        }
    }

    /// What baresip logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("baresip.log")).unwrap_or_default()
    }

    /// Its configuration directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Phone {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The first complete netstring (`<len>:<bytes>,`) of `data`: its bytes and how many bytes of
/// `data` it took.
fn netstring(data: &[u8]) -> Option<(&[u8], usize)> {
    let colon = data.iter().position(|&b| b == b':')?;
    let len: usize = std::str::from_utf8(&data[..colon])
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let end = colon + 1 + len;
    (data.len() > end).then(|| (&data[colon + 1..end], end + 1))
}

#[cfg(test)]
mod tests {
    use super::netstring;

    #[test]
    fn netstrings_are_split_where_their_length_says() {
        assert_eq!(netstring(b"3:abc,4:de"), Some((&b"abc"[..], 6)));
        assert_eq!(netstring(b"4:de"), None);
        assert_eq!(netstring(b"3:abc"), None, "the comma is still to come");
        assert_eq!(netstring(b"12"), None);
    }
}
