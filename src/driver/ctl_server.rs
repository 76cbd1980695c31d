//! The control socket: a Unix socket in the state directory (never a network port), one
//! JSON request line in, one JSON response line out.

use anyhow::Context as _;
use std::path::Path;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixListener;
use tokio::sync::{mpsc, oneshot};

use super::Input;
use crate::ctl::{Request, Response};

pub(super) fn bind(path: &Path) -> anyhow::Result<UnixListener> {
    if path.exists() {
        // A socket left by a crashed run is removed; one a live instance answers on is not.
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            anyhow::bail!(
                "another switchboard is running with state directory {} (its control socket answers)",
                path.parent().map(|p| p.display().to_string()).unwrap_or_default()
            );
        }
        std::fs::remove_file(path).with_context(|| format!("removing stale {}", path.display()))?;
    }
    let l = UnixListener::bind(path)
        .with_context(|| format!("binding control socket {}", path.display()))?;
    // Only the owner may control the PBX.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(l)
}

pub(super) async fn serve(l: UnixListener, tx: mpsc::Sender<Input>) {
    loop {
        let Ok((s, _)) = l.accept().await else {
            continue;
        };
        let tx = tx.clone();
        tokio::spawn(async move {
            let (rd, mut wr) = s.into_split();
            let mut line = String::new();
            let mut rd = BufReader::new(rd);
            if rd.read_line(&mut line).await.is_err() {
                return;
            }
            let resp = match serde_json::from_str::<Request>(line.trim()) {
                Ok(req) => {
                    let (otx, orx) = oneshot::channel();
                    if tx.send(Input::Ctl(req, otx)).await.is_err() {
                        return;
                    }
                    match orx.await {
                        Ok(r) => r,
                        Err(_) => return,
                    }
                }
                Err(e) => Response::Error(format!("bad request: {e}")),
            };
            let mut out = serde_json::to_vec(&resp).unwrap_or_default();
            out.push(b'\n');
            let _ = wr.write_all(&out).await;
        });
    }
}
