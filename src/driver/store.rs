//! The CDR store: a thread of its own writing finished calls to SQLite, so a slow or full
//! disk never stalls signalling. A call's `cdr` row and its story's `call_events` rows
//! are written in one transaction, both or neither (with the other calls that ended
//! meanwhile, up to `BATCH`: one commit per burst, not per call). A call that cannot
//! be written is kept and retried; whatever is still unwritten at shutdown goes to `cdr-unwritten.jsonl` beside
//! the database (one call per line, its story included), so no record is lost silently.

use rusqlite::{params, Connection};
use std::collections::VecDeque;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use crate::cdr::{EVENTS_SCHEMA, SCHEMA, SCHEMA_VERSION};
use crate::story::CallRecord;

/// Where finished calls go.
#[derive(Clone)]
pub struct CdrSink(Option<mpsc::Sender<CallRecord>>);

impl CdrSink {
    /// Queues a finished call for writing.
    pub fn write(&self, record: CallRecord) {
        match &self.0 {
            Some(tx) => {
                if let Err(e) = tx.send(record) {
                    tracing::error!(
                        "CDR store stopped; record logged here: {}",
                        serde_json::to_string(&e.0).unwrap_or_default()
                    );
                }
            }
            None => tracing::error!(
                "no CDR store; record logged here: {}",
                serde_json::to_string(&record).unwrap_or_default()
            ),
        }
    }
}

/// Sends records to the store thread.
pub struct Store {
    tx: Option<mpsc::Sender<CallRecord>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Brings the database to [`SCHEMA_VERSION`], each step in one transaction with the
/// version it reaches; refuses a database a later release made.
fn migrate(conn: &mut Connection) -> anyhow::Result<()> {
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version > SCHEMA_VERSION {
        anyhow::bail!(
            "its schema is version {version}, newer than this release's {SCHEMA_VERSION}: \
             use the release that wrote it, or a new database file"
        );
    }
    // Version 0 is the `cdr` table, which releases before versions created without
    // setting one; a new file starts there too.
    conn.execute_batch(SCHEMA)?;
    let steps: [&str; 1] = [EVENTS_SCHEMA];
    for (to, step) in (1..).zip(steps) {
        if version >= to {
            continue;
        }
        let tx = conn.transaction()?;
        tx.execute_batch(step)?;
        tx.pragma_update(None, "user_version", to)?;
        tx.commit()?;
    }
    Ok(())
}

impl Store {
    /// Opens (creating) the database, brings its schema up to date and starts the writer.
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        let mut conn = Connection::open(path)
            .map_err(|e| anyhow::anyhow!("opening CDR database {}: {e}", path.display()))?;
        migrate(&mut conn)
            .map_err(|e| anyhow::anyhow!("preparing CDR database {}: {e}", path.display()))?;
        let (tx, rx) = mpsc::channel::<CallRecord>();
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

/// Calls written in one transaction at most: a burst of calls ending costs one commit
/// (one journal sync) rather than one each, and no batch holds the writer for long.
const BATCH: usize = 256;

/// Calls in one transaction: every row and story, or none.
fn insert(conn: &mut Connection, batch: &[CallRecord]) -> rusqlite::Result<()> {
    let tx = conn.transaction()?;
    for r in batch {
        insert_call(&tx, r)?;
    }
    tx.commit()
}

/// One call's row and its story.
fn insert_call(tx: &rusqlite::Transaction, r: &CallRecord) -> rusqlite::Result<()> {
    let c = &r.cdr;
    tx.execute(
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
    )?;
    let cdr_id = tx.last_insert_rowid();
    {
        let mut st = tx.prepare_cached(
            "INSERT INTO call_events (cdr_id, call, seq, at_ms, event, detail)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?;
        for e in &r.events {
            st.execute(params![
                cdr_id,
                e.call as i64,
                e.seq,
                e.at_ms as i64,
                e.event.name(),
                serde_json::to_string(&e.event).unwrap_or_default(),
            ])?;
        }
    }
    Ok(())
}

fn writer(mut conn: Connection, rx: mpsc::Receiver<CallRecord>, fallback: PathBuf) {
    let mut pending: VecDeque<CallRecord> = VecDeque::new();
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
        // Whatever else has ended meanwhile goes in the same transaction.
        while pending.len() < BATCH {
            match rx.try_recv() {
                Ok(c) => pending.push_back(c),
                Err(_) => break,
            }
        }
        while !pending.is_empty() {
            let n = pending.len().min(BATCH);
            match insert(&mut conn, &pending.make_contiguous()[..n]) {
                Ok(()) => {
                    pending.drain(..n);
                }
                Err(e) => {
                    tracing::error!(error = %e, queued = pending.len(), "CDR write failed; will retry");
                    break;
                }
            }
        }
    }
    // Shutdown: one last try, call by call, then keep the rest on disk as JSON lines.
    pending.retain(|c| insert(&mut conn, std::slice::from_ref(c)).is_err());
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
    //! The store against real SQLite files. A write is made to fail by dropping a table
    //! from a second connection: any SQLite error (a full disk's SQLITE_FULL included)
    //! takes the same path, kept and retried.

    use super::*;
    use crate::cdr::{Cdr, Disposition, HangupBy};
    use crate::story::{Event, Start, Story};

    /// Call `call`: 1001 rang 1002, who answered at 2 s; 1001 hung up at 5 s.
    fn cdr(call: u64) -> CallRecord {
        let start = Start {
            sip_call_id: format!("call-{call}"),
            caller: "1001".into(),
            callee: "1002".into(),
            did: None,
            trunk: None,
            callback_of: None,
        };
        let mut s = Story::begin(call, start, 1_000);
        let number = "1002".to_string();
        s.tell(
            1_010,
            Event::Dialled {
                number,
                trunk: None,
            },
        );
        s.tell(2_000, Event::Answered);
        let party = "1002".to_string();
        s.tell(2_000, Event::Bridged { party });
        let (disposition, sip_code, by) = (Disposition::Answered, 200, HangupBy::Caller);
        s.tell(
            5_000,
            Event::Ended {
                disposition,
                sip_code,
                by,
            },
        );
        s.record()
    }

    /// Each stored call's (call, seq, at_ms, event) rows, in the order written.
    fn events_in(db: &Path) -> Vec<(i64, i64, i64, String)> {
        let c = Connection::open(db).unwrap();
        let mut st = c
            .prepare(
                "SELECT e.call, e.seq, e.at_ms, e.event FROM call_events e
                 JOIN cdr ON cdr.id = e.cdr_id ORDER BY e.id",
            )
            .unwrap();
        st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }

    #[test]
    fn a_call_is_stored_as_its_row_and_its_story_together() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("cdr.sqlite");
        let store = Store::open(&db).unwrap();
        store.sender().write(cdr(4));
        store.close();
        assert_eq!(calls_in(&db), [4]);
        let rows = events_in(&db);
        let names: Vec<&str> = rows.iter().map(|r| r.3.as_str()).collect();
        assert_eq!(
            names,
            ["started", "dialled", "answered", "bridged", "ended"]
        );
        assert!(rows.iter().all(|r| r.0 == 4));
        assert_eq!(
            rows.iter().map(|r| r.1).collect::<Vec<_>>(),
            [0, 1, 2, 3, 4]
        );
        assert_eq!((rows[0].2, rows[4].2), (1_000, 5_000));
        // The detail is the event itself, as JSON.
        let c = Connection::open(&db).unwrap();
        let detail: String = c
            .query_row(
                "SELECT detail FROM call_events WHERE event = 'ended'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        let ended: Event = serde_json::from_str(&detail).unwrap();
        assert_eq!(
            ended,
            Event::Ended {
                disposition: Disposition::Answered,
                sip_code: 200,
                by: HangupBy::Caller
            }
        );
        let (billable, answer): (i64, i64) = c
            .query_row("SELECT billable_s, answer_ms FROM cdr", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
        assert_eq!((billable, answer), (3, 2_000));
    }

    #[test]
    fn a_burst_of_calls_is_written_whole_and_in_order_across_batches() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("cdr.sqlite");
        let store = Store::open(&db).unwrap();
        let sink = store.sender();
        let n = (BATCH * 2 + 10) as u64;
        for call in 1..=n {
            sink.write(cdr(call));
        }
        drop(sink);
        store.close();
        assert_eq!(calls_in(&db), (1..=n as i64).collect::<Vec<_>>());
        let events = events_in(&db);
        assert_eq!(events.len() as u64, n * 5);
        // Each call's story is tied to its own row.
        assert!(events
            .chunks(5)
            .zip(1..)
            .all(|(e, call)| e.iter().all(|r| r.0 == call)));
        assert!(!dir.path().join("cdr-unwritten.jsonl").exists());
    }

    #[test]
    fn an_older_database_gains_the_events_table_and_keeps_its_rows() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("cdr.sqlite");
        // A database as the release before stories left it: the cdr table alone, version 0.
        let old = Connection::open(&db).unwrap();
        old.execute_batch(SCHEMA).unwrap();
        old.execute(
            "INSERT INTO cdr (call, sip_call_id, caller, callee, start_ms, end_ms, duration_s,
                              billable_s, disposition, sip_code, hangup_by)
             VALUES (9, 'old', '1001', '1002', 0, 0, 0, 0, 'failed', 503, 'system')",
            [],
        )
        .unwrap();
        drop(old);
        let store = Store::open(&db).unwrap();
        store.sender().write(cdr(1));
        store.close();
        assert_eq!(
            calls_in(&db),
            [9, 1],
            "the old row kept, the new one after it"
        );
        assert_eq!(events_in(&db).len(), 5);
        let c = Connection::open(&db).unwrap();
        let v: i64 = c
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, SCHEMA_VERSION);
        drop(c);
        // Opening it again changes nothing.
        Store::open(&db).unwrap().close();
        assert_eq!(calls_in(&db), [9, 1]);
    }

    #[test]
    fn a_database_from_a_later_release_is_refused_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("cdr.sqlite");
        let c = Connection::open(&db).unwrap();
        c.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .unwrap();
        drop(c);
        let err = Store::open(&db).err().expect("refused").to_string();
        assert!(
            err.contains("newer than this release") && err.contains(&db.display().to_string()),
            "{err}"
        );
        let c = Connection::open(&db).unwrap();
        let tables: i64 = c
            .query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))
            .unwrap();
        assert_eq!(tables, 0, "nothing created in it");
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
            .execute_batch("DROP TABLE call_events")
            .unwrap();
        sink.write(cdr(2));
        sink.write(cdr(3));
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(
            calls_in(&db),
            [1],
            "nothing can be written now: not even the row of a call whose story cannot be"
        );
        Connection::open(&db)
            .unwrap()
            .execute_batch(EVENTS_SCHEMA)
            .unwrap();
        assert!(
            wait_for(5, || calls_in(&db) == [1, 2, 3]),
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
        let kept: Vec<CallRecord> = lines[1..]
            .iter()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(
            kept.iter().map(|c| c.cdr.call).collect::<Vec<_>>(),
            [7, 8],
            "every record, in order, whole"
        );
        assert_eq!(kept[0], cdr(7), "its story with it");
        // A line is still a CDR to whatever read the file before stories.
        let as_cdr: Cdr = serde_json::from_str(lines[1]).unwrap();
        assert_eq!(as_cdr.sip_call_id, "call-7");
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
