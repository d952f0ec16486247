//! Operations for admins: `POST /admin/backup` copies the store, as of one
//! moment, into a directory on the server's machine while the server goes
//! on serving (`storage::backup`). It answers when the copy is finished
//! and durable; `tijori backup` is its command-line client.

use super::Ctx;
use crate::http::error::{self, Body};
use crate::http::request::JsonBody;
use domain::{Rejection, Role, Timestamp};
use hyper::{Response, StatusCode};
use serde_json::json;
use std::path::PathBuf;
use std::time::Duration;
use storage::backup::{BackupError, BackupLimits};

/// Longest path accepted for the backup directory, in characters.
const PATH_MAX_CHARS: usize = 4_096;

pub async fn backup(ctx: &Ctx<'_>) -> Result<Response<Body>, Rejection> {
    ctx.caller.require(&[Role::Admin])?;
    let body = JsonBody::parse(&ctx.body)?;
    let to = PathBuf::from(body.required_string("to", PATH_MAX_CHARS)?);
    if !to.is_absolute() {
        return Err(Rejection::InvalidRequest(
            "to must be an absolute path on the server's machine".into(),
        ));
    }
    let config = &ctx.app.config;
    let limits = BackupLimits {
        time_max: Duration::from_secs(config.backup_max_secs),
        bytes_max: config.backup_max_mib.saturating_mul(1_024 * 1_024),
    };
    let store = ctx.app.store.clone();
    tracing::info!(to = %to.display(), "backup started");
    let outcome = tokio::task::spawn_blocking(move || store.backup(&to, limits))
        .await
        .map_err(|_| Rejection::DatabaseError)?;
    let report = match outcome {
        Ok(report) => report,
        Err(BackupError::Busy) => return Err(Rejection::BackupInProgress),
        Err(BackupError::Target(why) | BackupError::Limit(why)) => {
            tracing::warn!(reason = %why, "backup refused");
            return Err(Rejection::InvalidRequest(why));
        }
        Err(e) => {
            tracing::error!(error = %e, "backup failed");
            return Err(Rejection::DatabaseError);
        }
    };
    let m = &report.manifest;
    tracing::info!(
        to = %report.dir.display(),
        sequence = m.sequence,
        rows = m.total_rows(),
        bytes = m.bytes,
        elapsed_ms = u64::try_from(report.duration.as_millis()).unwrap_or(u64::MAX),
        write_pause_us = u64::try_from(report.write_pause.as_micros()).unwrap_or(u64::MAX),
        "backup written"
    );
    let data = json!({
        "to": report.dir.display().to_string(),
        "sequence": m.sequence,
        "rows": m.total_rows(),
        "bytes": m.bytes,
        "created_at": Timestamp::from_unix_ms(m.created_at_ms).to_string(),
        "duration_ms": u64::try_from(report.duration.as_millis()).unwrap_or(u64::MAX),
        "write_pause_us": u64::try_from(report.write_pause.as_micros()).unwrap_or(u64::MAX),
    });
    Ok(error::ok(StatusCode::OK, &data))
}
