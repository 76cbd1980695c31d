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
            c.hangup_by.as_str(),
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

#[cfg(test)]
mod tests {
    //! The store against real SQLite files. A write is made to fail by dropping the table
    //! from a second connection: any SQLite error (a full disk's SQLITE_FULL included)
    //! takes the same path, kept and retried.

    use super::*;
    use crate::cdr::Disposition;

    fn cdr(call: u64) -> Cdr {
        Cdr {
            call,
            sip_call_id: format!("call-{call}"),
            caller: "1001".into(),
            callee: "1002".into(),
            did: None,
            trunk: None,
            start_ms: 1_000,
            answer_ms: Some(2_000),
            end_ms: 5_000,
            disposition: Disposition::Answered,
            sip_code: 200,
            hangup_by: crate::cdr::HangupBy::Caller,
        }
    }

    fn calls_in(db: &Path) -> Vec<i64> {
        let c = Connection::open(db).unwrap();
        let Ok(mut st) = c.prepare("SELECT call FROM cdr ORDER BY id") else {
            return Vec::new();
        };
        st.query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }

    fn wait_for(secs: u64, mut f: impl FnMut() -> bool) -> bool {
        let t = std::time::Instant::now();
        while t.elapsed() < Duration::from_secs(secs) {
            if f() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    #[test]
    fn a_record_that_cannot_be_written_is_retried_in_order_until_it_can() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("cdr.sqlite");
        let store = Store::open(&db).unwrap();
        let sink = store.sender();
        sink.write(cdr(1));
        assert!(wait_for(5, || calls_in(&db) == [1]));
        Connection::open(&db)
            .unwrap()
            .execute_batch("DROP TABLE cdr")
            .unwrap();
        sink.write(cdr(2));
        sink.write(cdr(3));
        std::thread::sleep(Duration::from_millis(300));
        assert!(calls_in(&db).is_empty(), "nothing can be written now");
        Connection::open(&db)
            .unwrap()
            .execute_batch(SCHEMA)
            .unwrap();
        assert!(
            wait_for(5, || calls_in(&db) == [2, 3]),
            "kept and written once the database takes writes again: {:?}",
            calls_in(&db)
        );
        drop(sink);
        store.close();
        assert!(!dir.path().join("cdr-unwritten.jsonl").exists());
    }

    #[test]
    fn records_still_unwritten_at_shutdown_are_kept_as_json_lines() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("cdr.sqlite");
        let fallback = dir.path().join("cdr-unwritten.jsonl");
        // A line kept by an earlier run stays; new ones are appended.
        std::fs::write(&fallback, "{\"earlier\":true}\n").unwrap();
        let store = Store::open(&db).unwrap();
        Connection::open(&db)
            .unwrap()
            .execute_batch("DROP TABLE cdr")
            .unwrap();
        let sink = store.sender();
        sink.write(cdr(7));
        sink.write(cdr(8));
        // The writer stops once every sender is gone.
        drop(sink);
        store.close();
        let text = std::fs::read_to_string(&fallback).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert_eq!(lines[0], "{\"earlier\":true}");
        let kept: Vec<Cdr> = lines[1..]
            .iter()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(
            kept.iter().map(|c| c.call).collect::<Vec<_>>(),
            [7, 8],
            "every record, in order, whole"
        );
        assert_eq!(kept[0].sip_call_id, "call-7");
    }

    #[test]
    fn a_database_that_cannot_be_opened_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        // A directory where the file should be, and a path under a file.
        let as_dir = dir.path().join("cdr.sqlite");
        std::fs::create_dir(&as_dir).unwrap();
        let under_file = dir.path().join("plain").join("cdr.sqlite");
        std::fs::write(dir.path().join("plain"), "x").unwrap();
        for path in [as_dir, under_file] {
            let err = Store::open(&path).err().expect("refused").to_string();
            assert!(
                err.contains(&path.display().to_string()) && err.contains("CDR"),
                "{err}"
            );
        }
    }
}
