//! The CDR store: a thread of its own writing finished calls to SQLite, so a slow or full
//! disk never stalls signalling. A record that cannot be written is kept and retried;
//! whatever is still unwritten at shutdown goes to `cdr-unwritten.jsonl` beside the
//! database, so no record is lost silently.

use rusqlite::{params, Connection};
use std::collections::VecDeque;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use crate::cdr::{Cdr, SCHEMA};

/// Where finished calls go.
#[derive(Clone)]
pub struct CdrSink(Option<mpsc::Sender<Cdr>>);

impl CdrSink {
    /// Queues a record for writing.
    pub fn write(&self, cdr: Cdr) {
        match &self.0 {
            Some(tx) => {
                if let Err(e) = tx.send(cdr) {
                    tracing::error!(
                        "CDR store stopped; record logged here: {}",
                        serde_json::to_string(&e.0).unwrap_or_default()
                    );
                }
            }
            None => tracing::error!(
                "no CDR store; record logged here: {}",
                serde_json::to_string(&cdr).unwrap_or_default()
            ),
        }
    }
}

/// Sends records to the store thread.
pub struct Store {
    tx: Option<mpsc::Sender<Cdr>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Store {
    /// Opens (creating) the database and starts the writer.
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        let conn = Connection::open(path)
            .map_err(|e| anyhow::anyhow!("opening CDR database {}: {e}", path.display()))?;
        conn.execute_batch(SCHEMA)
            .map_err(|e| anyhow::anyhow!("creating CDR table in {}: {e}", path.display()))?;
        let (tx, rx) = mpsc::channel::<Cdr>();
        let fallback = path.with_file_name("cdr-unwritten.jsonl");
        let thread = std::thread::Builder::new()
            .name("cdr-store".into())
            .spawn(move || writer(conn, rx, fallback))?;
        Ok(Self {
            tx: Some(tx),
            thread: Some(thread),
        })
    }

    /// A sender for the task that produces records.
    pub fn sender(&self) -> CdrSink {
        CdrSink(self.tx.clone())
    }

    /// Writes what is queued and stops the writer.
    pub fn close(mut self) {
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn insert(conn: &Connection, c: &Cdr) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO cdr (call, sip_call_id, caller, callee, did, trunk, start_ms, answer_ms, end_ms,
                          duration_s, billable_s, disposition, sip_code, hangup_by)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
        params![
            c.call as i64,
            c.sip_call_id,
            c.caller,
            c.callee,
            c.did,
            c.trunk,
            c.start_ms as i64,
            c.answer_ms.map(|a| a as i64),
            c.end_ms as i64,
            c.duration_s() as i64,
            c.billable_s() as i64,
            c.disposition.as_str(),
            c.sip_code,
            c.hangup_by,
        ],
    )
    .map(|_| ())
}

fn writer(conn: Connection, rx: mpsc::Receiver<Cdr>, fallback: PathBuf) {
    let mut pending: VecDeque<Cdr> = VecDeque::new();
    loop {
        let next = if pending.is_empty() {
            match rx.recv() {
                Ok(c) => Some(c),
                Err(_) => break,
            }
        } else {
            match rx.recv_timeout(Duration::from_secs(1)) {
                Ok(c) => Some(c),
                Err(mpsc::RecvTimeoutError::Timeout) => None,
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        };
        pending.extend(next);
        while let Some(c) = pending.front() {
            match insert(&conn, c) {
                Ok(()) => {
                    pending.pop_front();
                }
                Err(e) => {
                    tracing::error!(error = %e, queued = pending.len(), "CDR write failed; will retry");
                    break;
                }
            }
        }
    }
    // Shutdown: one last try, then keep the rest on disk as JSON lines.
    pending.retain(|c| insert(&conn, c).is_err());
    if pending.is_empty() {
        return;
    }
    let saved = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&fallback)
        .and_then(|mut f| {
            for c in &pending {
                writeln!(f, "{}", serde_json::to_string(c).unwrap_or_default())?;
            }
            f.sync_all()
        });
    match saved {
        Ok(()) => {
            tracing::error!(count = pending.len(), file = %fallback.display(), "CDRs kept outside the database")
        }
        Err(e) => {
            for c in &pending {
                tracing::error!(error = %e, "CDR lost to disk errors, logged here: {}", serde_json::to_string(c).unwrap_or_default());
            }
        }
    }
}
