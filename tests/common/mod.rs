//! Shared harness for tests that run the real binary against real peers on loopback.
//! Every test gets its own state directory and ports, and stops what it starts.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_switchboard")
}

/// Fails loudly when a peer is missing: these tests never skip.
pub fn need(tool: &str) {
    let ok = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "`{tool}` is not installed. These tests run real SIP peers: install them with \
         `apt-get install -y --no-install-recommends sip-tester baresip-core sipvicious` (bash .ci/run does this)."
    );
}

/// A port free for UDP and TCP, and (with `span` > 1) the ports after it too. Signalling
/// and phone ports come from 21000-29999; PBX relay ranges from [`rtp_range`] lie above.
pub fn free_ports(span: u16) -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    // Spread test processes apart, then walk; below the kernel's ephemeral range.
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let base = 21000 + (std::process::id() % 400) as u16 * 20;
    loop {
        let off = NEXT.fetch_add(span.max(1) + 1, Ordering::SeqCst);
        let p = 21000 + ((base - 21000 + off) % 8900);
        let all_free = (p..p + span.max(1)).all(|q| {
            UdpSocket::bind(("127.0.0.1", q)).is_ok() && TcpListener::bind(("127.0.0.1", q)).is_ok()
        });
        if all_free {
            return p;
        }
    }
}

/// A relay port range of 60 ports, free now, for one PBX (30000-32699: below the kernel's
/// ephemeral ports, apart from [`free_ports`]).
pub fn rtp_range() -> String {
    rtp_range_of(1)
}

/// Like [`rtp_range`], `slots` times 60 ports long (for many calls at once).
pub fn rtp_range_of(slots: u16) -> String {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let base = (std::process::id() % 45) as u16;
    loop {
        let slot = (base + NEXT.fetch_add(slots, Ordering::SeqCst)) % 45;
        if slot + slots > 45 {
            continue;
        }
        let low = 30000 + slot * 60;
        let high = low + slots * 60 - 1;
        if (low..=high).all(|q| UdpSocket::bind(("127.0.0.1", q)).is_ok()) {
            return format!("{low}-{high}");
        }
    }
}

/// A running switchboard.
pub struct Pbx {
    child: Child,
    pub state: tempfile::TempDir,
    pub udp: SocketAddr,
    pub tcp: Option<SocketAddr>,
    pub log: PathBuf,
}

impl Pbx {
    /// Starts the shipped config on loopback, UDP and TCP on free ports.
    pub fn start() -> Self {
        Self::start_with(&root().join("config/switchboard.toml"))
    }

    pub fn start_with(config: &Path) -> Self {
        Self::start_listening(config, &["udp:127.0.0.1:0", "tcp:127.0.0.1:0"])
    }

    /// Starts with the given listeners (each `PROTO:ADDR:PORT`).
    pub fn start_listening(config: &Path, listen: &[&str]) -> Self {
        Self::start_full(config, listen, &rtp_range())
    }

    /// Starts with the given listeners and relay port range (`LOW-HIGH`).
    pub fn start_full(config: &Path, listen: &[&str], rtp: &str) -> Self {
        Self::spawn(
            config,
            listen,
            rtp,
            tempfile::tempdir().unwrap(),
            "switchboard.log",
            &[],
        )
    }

    /// Starts the shipped config with `env` set (as systemd sets NOTIFY_SOCKET).
    pub fn start_env(env: &[(&str, String)]) -> Self {
        Self::spawn(
            &root().join("config/switchboard.toml"),
            &["udp:127.0.0.1:0", "tcp:127.0.0.1:0"],
            &rtp_range(),
            tempfile::tempdir().unwrap(),
            "switchboard.log",
            env,
        )
    }

    /// Stops it (SIGTERM) and starts `config` again on the same state directory, as
    /// after a restart; the new run logs to `switchboard.restarted.log`.
    pub fn restart(mut self, config: &Path) -> Self {
        self.stop();
        let state = std::mem::replace(&mut self.state, tempfile::tempdir().unwrap());
        let listen = ["udp:127.0.0.1:0", "tcp:127.0.0.1:0"];
        Self::spawn(
            config,
            &listen,
            &rtp_range(),
            state,
            "switchboard.restarted.log",
            &[],
        )
    }

    fn spawn(
        config: &Path,
        listen: &[&str],
        rtp: &str,
        state: tempfile::TempDir,
        log: &str,
        env: &[(&str, String)],
    ) -> Self {
        let log = state.path().join(log);
        let mut child = Command::new(bin())
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .args(["run", "--config"])
            .arg(config)
            .args(["--rtp-ports", rtp])
            .args(listen.iter().flat_map(|l| ["--sip-listen", l]))
            .arg("--state-dir")
            .arg(state.path())
            .env("SWITCHBOARD_LOG", "debug")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start switchboard");
        let out = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if let Some(rest) = line.strip_prefix("switchboard ready: ") {
                    let _ = tx.send(rest.to_string());
                }
            }
        });
        let ready = rx
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|_| {
                panic!(
                    "switchboard did not start; log:\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                )
            });
        let mut udp = None;
        let mut tcp = None;
        for l in ready.split_whitespace() {
            if let Some(a) = l.strip_prefix("udp:") {
                udp = Some(a.parse().unwrap());
            } else if let Some(a) = l.strip_prefix("tcp:") {
                tcp = Some(a.parse().unwrap());
            }
        }
        Self {
            child,
            state,
            udp: udp.unwrap(),
            tcp,
            log,
        }
    }

    /// Runs `switchboard ctl --json COMMAND` against this instance.
    pub fn ctl(&self, cmd: &str) -> serde_json::Value {
        let out = Command::new(bin())
            .args(["ctl", "--json", "--state-dir"])
            .arg(self.state.path())
            .args(cmd.split_whitespace())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "ctl {cmd}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// Who the party in `role` (`caller`, `callee`) of a call as `ctl --json calls`
    /// shows it is: its URI, or "" if it has none.
    pub fn party(call: &serde_json::Value, role: &str) -> String {
        call["legs"]
            .as_array()
            .and_then(|legs| legs.iter().find(|l| l["role"] == role))
            .and_then(|l| l["party"].as_str().map(str::to_string))
            .unwrap_or_default()
    }

    /// The leg in `role` (`caller`, `callee`) of a call as `ctl --json calls` shows it:
    /// its RTP port and the packets received on it (0 while it has none).
    pub fn leg(call: &serde_json::Value, role: &str) -> (Option<u16>, u64) {
        let leg = call["legs"]
            .as_array()
            .and_then(|legs| legs.iter().find(|l| l["role"] == role));
        leg.map_or((None, 0), |l| {
            (
                l["rtp_port"].as_u64().map(|p| p as u16),
                l["rtp_packets"].as_u64().unwrap_or(0),
            )
        })
    }

    /// Runs `switchboard ctl COMMAND` (its words split at spaces) and returns (success,
    /// stdout, stderr).
    pub fn ctl_raw(&self, cmd: &str) -> (bool, String, String) {
        let out = Command::new(bin())
            .args(["ctl", "--state-dir"])
            .arg(self.state.path())
            .args(cmd.split_whitespace())
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Registrations as (aor, contact, user agent).
    pub fn registrations(&self) -> Vec<(String, String, String)> {
        let v = self.ctl("registrations");
        v["registrations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["aor"].as_str().unwrap().to_string(),
                    r["contact"].as_str().unwrap().to_string(),
                    r["user_agent"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Stops it with SIGTERM, as systemd would, and waits for it to exit.
    pub fn stop(&mut self) {
        terminate(&mut self.child);
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Pbx {
    fn drop(&mut self) {
        terminate(&mut self.child);
    }
}

/// SIGTERM, then SIGKILL after 5 s.
pub fn terminate(child: &mut Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(5) {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Runs a SIPp scenario from tests/sipp against `target` from a fresh port, with a time
/// limit; true when every call succeeded (failures are printed).
pub fn sipp(scenario_name: &str, target: SocketAddr, args: &[&str]) -> bool {
    spawn_sipp(&scenario(scenario_name), Some(target), free_ports(1), args).wait(30)
}

/// A headless baresip phone (recipe: net_interface 127.0.0.1; it binds TLS on port+1).
pub struct Baresip {
    child: Child,
    pub dir: tempfile::TempDir,
    pub port: u16,
    pub cons: u16,
}

impl Baresip {
    pub fn start(user: &str, password: &str, pbx: SocketAddr) -> Self {
        Self::start_with(user, password, pbx, "manual")
    }

    /// `answermode` is baresip's: `manual` or `auto`. Decoded audio is dumped as WAV files
    /// in `dir/snd` (sndfile module), so a test can check what the phone heard.
    pub fn start_with(user: &str, password: &str, pbx: SocketAddr, answermode: &str) -> Self {
        Self::start_full(user, password, pbx, answermode, "PCMU")
    }

    /// As [`Self::start_with`], speaking only the G.711 law(s) in `codecs` (e.g. `PCMA`).
    pub fn start_full(
        user: &str,
        password: &str,
        pbx: SocketAddr,
        answermode: &str,
        codecs: &str,
    ) -> Self {
        need("baresip");
        let dir = tempfile::tempdir().unwrap();
        let port = free_ports(2);
        let cons = free_ports(1);
        let rtp = free_ports(12);
        let cfg = format!(
            "poll_method\tepoll\nsip_listen\t127.0.0.1:{port}\nnet_interface\t127.0.0.1\n\
dns_server\t127.0.0.1:9\naudio_player\taubridge,{user}-out\naudio_source\tausine,440\n\
ausrc_srate\t48000\nausrc_channels\t2\nrtp_ports\t{rtp}-{}\nrtcp_mux\tno\n\
module_path\t/usr/lib/baresip/modules\nmodule\tg711.so\nmodule\tausine.so\nmodule\taubridge.so\n\
module\tsndfile.so\nsnd_path\t{}\n\
module_tmp\taccount.so\nmodule_app\tmenu.so\nmodule_app\tcons.so\ncons_listen\t127.0.0.1:{cons}\n",
            rtp + 10,
            dir.path().join("snd").display()
        );
        std::fs::create_dir_all(dir.path().join("snd")).unwrap();
        std::fs::write(dir.path().join("config"), cfg).unwrap();
        std::fs::write(
            dir.path().join("accounts"),
            format!("<sip:{user}@{pbx}>;auth_pass={password};answermode={answermode};audio_codecs={codecs};regint=600\n"),
        )
        .unwrap();
        std::fs::write(dir.path().join("contacts"), "").unwrap();
        let log = std::fs::File::create(dir.path().join("baresip.log")).unwrap();
        let child = Command::new("baresip")
            .args(["-4", "-v", "-f"])
            .arg(dir.path())
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start baresip");
        Self {
            child,
            dir,
            port,
            cons,
        }
    }

    /// Sends a console command (e.g. `/dial 1002`, `/hangup`) over baresip's UDP console.
    pub fn cmd(&self, text: &str) {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        s.send_to(format!("{text}\n").as_bytes(), ("127.0.0.1", self.cons))
            .unwrap();
    }

    /// The WAV files the phone wrote of the audio it decoded (what its user heard).
    pub fn heard(&self) -> Vec<PathBuf> {
        self.dumps("-dec.wav")
    }

    /// The WAV files the phone wrote of the audio it sent (what its user said).
    pub fn sent(&self) -> Vec<PathBuf> {
        self.dumps("-enc.wav")
    }

    /// The phone's dumps ending in `suffix`, once each is whole. The phone writes a WAV's
    /// sizes into its header when it closes the call, which on a loaded machine can be a
    /// moment after switchboard has written the CDR; until then the file reads as empty.
    fn dumps(&self, suffix: &str) -> Vec<PathBuf> {
        let list = || -> Vec<PathBuf> {
            std::fs::read_dir(self.dir.path().join("snd"))
                .map(|d| {
                    d.filter_map(Result::ok)
                        .map(|e| e.path())
                        .filter(|p| p.to_string_lossy().ends_with(suffix))
                        .collect()
                })
                .unwrap_or_default()
        };
        wait_until(5, || list().iter().all(|p| wav_is_whole(p)));
        list()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("baresip.log")).unwrap_or_default()
    }

    /// Stops it the way an admin would (SIGTERM); baresip un-registers on the way out.
    pub fn stop(mut self) -> String {
        terminate(&mut self.child);
        self.log()
    }
}

impl Drop for Baresip {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `f` until it is true or `secs` pass.
pub fn wait_until(secs: u64, mut f: impl FnMut() -> bool) -> bool {
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(secs) {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// The 13 valid messages of RFC 4475 §3.1.1 (files in tests/fixtures/sip/rfc4475/valid).
pub const RFC4475_VALID: [&str; 13] = [
    "wsinv",
    "intmeth",
    "esc01",
    "escnull",
    "esc02",
    "lwsdisp",
    "longreq",
    "dblreq",
    "semiuri",
    "transports",
    "mpart01",
    "unreason",
    "noreason",
];

/// Raw bytes of an RFC 4475 fixture; `kind` is "valid" or "invalid".
pub fn rfc4475(kind: &str, name: &str) -> Vec<u8> {
    let p = root()
        .join("tests/fixtures/sip/rfc4475")
        .join(kind)
        .join(format!("{name}.sip"));
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// A SIPp process running in the background (a callee, say).
pub struct SippProc {
    child: Child,
    dir: tempfile::TempDir,
    name: String,
}

/// Starts SIPp with `scenario` (a path) bound to `port`; `target` for a UAC.
pub fn spawn_sipp(
    scenario: &Path,
    target: Option<SocketAddr>,
    port: u16,
    args: &[&str],
) -> SippProc {
    need("sipp");
    let dir = tempfile::tempdir().unwrap();
    let ctl = free_ports(1);
    let mut cmd = Command::new("sipp");
    cmd.current_dir(dir.path());
    if let Some(t) = target {
        cmd.arg(t.to_string());
    }
    cmd.arg("-sf")
        .arg(scenario)
        .args(if args.contains(&"-i") {
            &[][..]
        } else {
            &["-i", "127.0.0.1"][..]
        })
        .args(["-p", &port.to_string()])
        .args(["-ci", "127.0.0.1", "-cp", &ctl.to_string()])
        .args([
            "-buff_size",
            "4194304",
            "-nostdin",
            "-trace_err",
            "-timeout",
            "30s",
            "-m",
            "1",
        ])
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let child = cmd.spawn().expect("start sipp");
    SippProc {
        child,
        dir,
        name: scenario.file_name().unwrap().to_string_lossy().into_owned(),
    }
}

impl SippProc {
    /// Waits for SIPp to end (at most `secs`); true when every call succeeded.
    pub fn wait(mut self, secs: u64) -> bool {
        let t = Instant::now();
        let status = loop {
            if let Ok(Some(st)) = self.child.try_wait() {
                break Some(st);
            }
            if t.elapsed() > Duration::from_secs(secs) {
                let _ = self.child.kill();
                let _ = self.child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let ok = status.is_some_and(|s| s.success());
        if !ok {
            let errs: String = std::fs::read_dir(self.dir.path())
                .unwrap()
                .filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().contains("error"))
                .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
                .collect();
            eprintln!("sipp {} failed ({status:?}):\n{errs}", self.name);
        }
        ok
    }
}

impl Drop for SippProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A scenario from tests/sipp.
pub fn scenario(name: &str) -> PathBuf {
    root().join("tests/sipp").join(name)
}

/// Registers `ext` from SIPp on a fresh port and returns the port, for a SIPp callee to
/// listen on there.
pub fn register_callee(pbx: &Pbx, ext: &str, pw: &str) -> u16 {
    let port = free_ports(1);
    let p = spawn_sipp(
        &scenario("register_auth.xml"),
        Some(pbx.udp),
        port,
        &["-s", ext, "-au", ext, "-ap", pw],
    );
    assert!(p.wait(20), "register {ext}");
    port
}

/// `uac_fail.xml` with the expected status written in, saved in `dir`.
pub fn expecting(code: u16, dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(scenario("uac_fail.xml"))
        .unwrap()
        .replace("EXPECTED", &code.to_string());
    let p = dir.join(format!("uac_fail_{code}.xml"));
    std::fs::write(&p, text).unwrap();
    p
}

/// The shipped config and dialplan, copied where the test can edit them.
pub fn copy_setup(dir: &Path) -> (PathBuf, PathBuf) {
    let dp = dir.join("plan.dp");
    std::fs::copy(root().join("dialplans/default.dp"), &dp).unwrap();
    let text = std::fs::read_to_string(root().join("config/switchboard.toml"))
        .unwrap()
        .replace(
            "dialplan = \"dialplans/default.dp\"",
            &format!("dialplan = {:?}", dp.display().to_string()),
        );
    let cfg = dir.join("switchboard.toml");
    std::fs::write(&cfg, text).unwrap();
    (cfg, dp)
}

/// Seconds of a phone's WAV dump that are not near-silence: 100 ms windows whose mean
/// level is over 100 (of 32767). Dead air counts for nothing, whether the phone wrote it
/// as zeros or wrote nothing.
pub fn loud_seconds(p: &Path) -> f64 {
    let Ok(mut r) = hound::WavReader::open(p) else {
        return 0.0;
    };
    let spec = r.spec();
    let samples: Vec<i16> = r
        .samples::<i16>()
        .map_while(Result::ok)
        .step_by(usize::from(spec.channels))
        .collect();
    let win = (spec.sample_rate / 10) as usize;
    let loud = samples
        .chunks_exact(win.max(1))
        .filter(|w| {
            w.iter().map(|&x| f64::from(x.unsigned_abs())).sum::<f64>() / w.len() as f64 > 100.0
        })
        .count();
    loud as f64 / 10.0
}

/// For each 20 ms frame of 8 kHz `samples`, whether it carries a tone at `hz`: most of
/// the frame's power at that frequency (Goertzel) and a level well above quiet. Lengths
/// of sound are judged by it to the frame, where a level threshold blurs edges by the
/// margin of a fade, and other sounds (prompts, beeps, key tones) count for nothing.
pub fn tone_frames(samples: &[i16], hz: f64) -> Vec<bool> {
    let coeff = 2.0 * (2.0 * std::f64::consts::PI * hz / 8000.0).cos();
    samples
        .chunks_exact(160)
        .map(|f| {
            let (mut s1, mut s2) = (0.0f64, 0.0f64);
            let mut total = 0.0;
            for &x in f {
                let x = f64::from(x);
                total += x * x;
                let s0 = x + coeff * s1 - s2;
                s2 = s1;
                s1 = s0;
            }
            let at_hz = (s1 * s1 + s2 * s2 - coeff * s1 * s2) * 2.0 / 160.0;
            let rms = (total / 160.0).sqrt();
            rms > 500.0 && at_hz > 0.5 * total
        })
        .collect()
}

/// The runs of tone frames in `frames`: (first frame, frames), in order.
pub fn tone_runs(frames: &[bool]) -> Vec<(usize, usize)> {
    let mut runs: Vec<(usize, usize)> = Vec::new();
    for (i, on) in frames.iter().enumerate() {
        match runs.last_mut() {
            Some((start, len)) if *on && *start + *len == i => *len += 1,
            _ if *on => runs.push((i, 1)),
            _ => {}
        }
    }
    runs
}

/// Whether a WAV file's RIFF header counts every byte the file holds (its writer has
/// closed it).
fn wav_is_whole(p: &Path) -> bool {
    std::fs::read(p).is_ok_and(|b| {
        b.len() >= 8
            && u64::from(u32::from_le_bytes([b[4], b[5], b[6], b[7]])) + 8 == b.len() as u64
    })
}

/// The first channel of a WAV file (a phone's dump) as samples, and its sample rate;
/// `None` if it cannot be read.
pub fn wav_first_channel(p: &Path) -> Option<(Vec<f64>, f64)> {
    let mut r = hound::WavReader::open(p).ok()?;
    let spec = r.spec();
    let samples = r
        .samples::<i16>()
        .map_while(Result::ok)
        .step_by(usize::from(spec.channels))
        .map(f64::from)
        .collect();
    Some((samples, f64::from(spec.sample_rate)))
}

/// Seconds of ringback (440 + 480 Hz) in a phone's dumps.
pub fn ringback_seconds(dumps: &[PathBuf]) -> f64 {
    dumps.iter().map(|p| tone_seconds(p, &[440.0, 480.0])).sum()
}

/// An OPTIONS from `me` to `to` over UDP, its Call-ID `control-TAG`: the positive
/// control that follows a check for silence.
pub fn control_options(me: SocketAddr, to: SocketAddr, tag: &str) -> String {
    format!(
        "OPTIONS sip:{to} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK-control-{tag}\r\n\
         From: <sip:control@{me}>;tag=c\r\nTo: <sip:{to}>\r\nCall-ID: control-{tag}\r\n\
         CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    )
}

/// Seconds of a phone's WAV dump that carry all of the tones `hz` together (ringback is
/// 440 + 480 Hz): 20 ms frames above quiet with at least a quarter of their power at
/// each frequency and most of it at them. Other sounds (prompts, music) count for nothing.
pub fn tone_seconds(p: &Path, hz: &[f64]) -> f64 {
    let Some((samples, rate)) = wav_first_channel(p) else {
        return 0.0;
    };
    let n = (rate / 50.0) as usize;
    let power = |f: &[f64], hz: f64| {
        let coeff = 2.0 * (2.0 * std::f64::consts::PI * hz / rate).cos();
        let (mut s1, mut s2) = (0.0, 0.0);
        for x in f {
            let s0 = x + coeff * s1 - s2;
            s2 = s1;
            s1 = s0;
        }
        (s1 * s1 + s2 * s2 - coeff * s1 * s2) * 2.0 / f.len() as f64
    };
    let hits = samples
        .chunks_exact(n)
        .filter(|f| {
            let total: f64 = f.iter().map(|x| x * x).sum();
            let each: Vec<f64> = hz.iter().map(|h| power(f, *h)).collect();
            (total / n as f64).sqrt() > 300.0
                && each.iter().all(|p| *p >= 0.25 * total)
                && each.iter().sum::<f64>() >= 0.6 * total
        })
        .count();
    hits as f64 / 50.0
}

/// The end of a caller scenario: waits up to `ms` for our BYE and answers it.
pub fn await_bye(ms: u32) -> String {
    format!(
        r#"  <recv request="BYE" timeout="{ms}"/>
  <send>
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0
    ]]>
  </send>
  <Reference variables="sdp,origin,all"/>
</scenario>
"#
    )
}

/// A caller scenario (from `uac_dtmf_info.xml`) that sends keys as SIP INFO, each after its
/// pause in ms, then waits up to `bye_ms` for our BYE.
pub fn keys_scenario(dir: &Path, name: &str, keys: &[(u32, char)], bye_ms: u32) -> PathBuf {
    let text = std::fs::read_to_string(scenario("uac_dtmf_info.xml")).unwrap();
    let cut = text
        .find("  <send retrans=\"500\">\n    <![CDATA[\n      INFO")
        .unwrap();
    keys_after(dir, name, &text[..cut], keys, bye_ms)
}

/// `head` (a caller scenario up to its ACK), then keys as SIP INFO, each after its pause in
/// ms, then up to `bye_ms` for our BYE.
pub fn keys_after(
    dir: &Path,
    name: &str,
    head: &str,
    keys: &[(u32, char)],
    bye_ms: u32,
) -> PathBuf {
    let mut out = head.to_string();
    for (i, (pause, key)) in keys.iter().enumerate() {
        out.push_str(&format!(
            r#"  <pause milliseconds="{pause}"/>
  <send retrans="500">
    <![CDATA[
      INFO [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
      From: <sip:caller@[local_ip]>;tag=[pid]SIPpTag[call_number]
      To: <sip:[service]@[remote_ip]>;tag=[$totag]
      Call-ID: [call_id]
      CSeq: {} INFO
      [routes]
      Max-Forwards: 70
      Content-Type: application/dtmf-relay
      Content-Length: [len]

      Signal={key}
      Duration=160
    ]]>
  </send>
  <recv response="200"/>
"#,
            i + 3
        ));
    }
    out.push_str(&await_bye(bye_ms));
    let path = dir.join(format!("{name}.xml"));
    std::fs::write(&path, out).unwrap();
    path
}

/// Writes `data` (μ-law bytes, 8 kHz mono) as a WAV file, the kind SIPp's `rtp_stream`
/// plays.
pub fn write_ulaw_wav(data: &[u8], path: &Path) {
    let mut wav = Vec::new();
    let fmt: [u8; 16] = {
        let mut f = [0u8; 16];
        f[0..2].copy_from_slice(&7u16.to_le_bytes()); // μ-law
        f[2..4].copy_from_slice(&1u16.to_le_bytes());
        f[4..8].copy_from_slice(&8000u32.to_le_bytes());
        f[8..12].copy_from_slice(&8000u32.to_le_bytes());
        f[12..14].copy_from_slice(&1u16.to_le_bytes());
        f[14..16].copy_from_slice(&8u16.to_le_bytes());
        f
    };
    wav.extend_from_slice(b"RIFF");
    wav.extend_from_slice(&(4 + 8 + 16 + 8 + data.len() as u32).to_le_bytes());
    wav.extend_from_slice(b"WAVEfmt ");
    wav.extend_from_slice(&16u32.to_le_bytes());
    wav.extend_from_slice(&fmt);
    wav.extend_from_slice(b"data");
    wav.extend_from_slice(&(data.len() as u32).to_le_bytes());
    wav.extend_from_slice(data);
    std::fs::write(path, wav).unwrap();
}
