//! Attachments over HTTP: list (`kanban attachments --json`), upload (`kanban attach`), download, remove
//! (`kanban attach-rm`). Uploads and downloads are streamed in chunks between the connection and a blocking
//! thread, never held whole in memory. An upload goes through [`ops::attachments::attach_stream`], the
//! CLI's path: the name is reduced to one safe file name inside the card's folder and the 25 MiB cap is
//! enforced while copying (413). A download serves only an attachment of the card named in the path, from
//! the path the commands layer computes for it.

use std::io::Read;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt as _;
use serde::Deserialize;
use tokio::sync::mpsc;

use super::{ApiError, App};
use crate::model::Attachment;
use crate::ops::attachments::{self as ops_attachments, MAX_ATTACHMENT_BYTES, TooBig};
use crate::views::AttachmentView;

type Answer = Result<Response, ApiError>;

/// Chunks in flight between the connection and the blocking thread.
const CHUNKS: usize = 8;

/// `GET cards/{id}/attachments`: `kanban attachments --json`.
pub async fn list(State(app): State<Arc<App>>, Path((slug, id)): Path<(String, String)>) -> Answer {
    let rows = app
        .on_board(slug, move |desk| {
            desk.store.require_task(&id)?;
            let atts = desk.store.attachments(&id)?;
            let rows: Vec<AttachmentView> = atts.iter().map(|a| AttachmentView::new(desk.board, a)).collect();
            serde_json::to_value(rows).map_err(|e| ApiError::internal(e.to_string()))
        })
        .await?;
    Ok(axum::Json(rows).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UploadQuery {
    /// The name to store it under (reduced to a safe file name), as `kanban attach --name`.
    name: String,
}

/// `POST cards/{id}/attachments?name=NAME` with the file as the body: `kanban attach`; 201 with the
/// attachment (docs/cli.md "Attachment").
pub async fn upload(
    State(app): State<Arc<App>>,
    Path((slug, id)): Path<(String, String)>,
    query: Result<Query<UploadQuery>, QueryRejection>,
    headers: HeaderMap,
    body: Body,
) -> Answer {
    let Query(UploadQuery { name }) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let declared = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if let Some(size) = declared.filter(|size| *size > MAX_ATTACHMENT_BYTES) {
        return Err(anyhow::Error::from(TooBig { what: "the upload".into(), size }).into());
    }
    let (sender, receiver) = mpsc::channel::<std::io::Result<Bytes>>(CHUNKS);
    let writer = app.on_board(slug, move |desk| {
        let reader = ChunkReader { chunks: receiver, current: Bytes::new() };
        let att = ops_attachments::attach_stream(desk, &id, &name, reader, "the upload")?;
        serde_json::to_value(AttachmentView::new(desk.board, &att))
            .map_err(|e| ApiError::internal(e.to_string()))
    });
    let pump = async move {
        let mut stream = body.into_data_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(std::io::Error::other);
            let failed = chunk.is_err();
            // The writer stopped reading (the cap, or an error): it answers; stop sending.
            if sender.send(chunk).await.is_err() || failed {
                break;
            }
        }
    };
    let (written, ()) = tokio::join!(writer, pump);
    Ok((StatusCode::CREATED, axum::Json(written?)).into_response())
}

/// The body's chunks as a `Read`, for the synchronous copy of the commands layer.
struct ChunkReader {
    chunks: mpsc::Receiver<std::io::Result<Bytes>>,
    current: Bytes,
}

impl Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.chunks.blocking_recv() {
                Some(chunk) => self.current = chunk?,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}

/// The attachment `attachment` of card `id`: 404 when the card has no such attachment (another card's
/// attachment id is not found either).
fn find(desk: &mut crate::ops::Desk, id: &str, attachment: i64) -> Result<Attachment, ApiError> {
    desk.store.require_task(id)?;
    desk.store.attachments(id)?.into_iter().find(|a| a.id == attachment).ok_or_else(|| {
        ApiError::new(StatusCode::NOT_FOUND, format!("attachment {attachment} of card {id} not found"))
    })
}

/// `GET cards/{id}/attachments/{attachment}`: the file, streamed.
pub async fn download(
    State(app): State<Arc<App>>,
    Path((slug, id, attachment)): Path<(String, String, i64)>,
) -> Answer {
    let (att, file) = app
        .on_board(slug, move |desk| {
            let att = find(desk, &id, attachment)?;
            // The stored name was made safe when it was written; refuse one that is not (a tampered row).
            if ops_attachments::safe_name(&att.stored_name).ok().as_deref() != Some(att.stored_name.as_str())
            {
                return Err(ApiError::new(
                    StatusCode::NOT_FOUND,
                    format!("attachment {attachment} has an unsafe name"),
                ));
            }
            let path = ops_attachments::path_of(desk.board, &att);
            let file = std::fs::File::open(&path)
                .map_err(|e| ApiError::internal(format!("cannot read {}: {e}", path.display())))?;
            Ok((att, file))
        })
        .await?;
    let (sender, receiver) = mpsc::channel::<std::io::Result<Bytes>>(CHUNKS);
    tokio::task::spawn_blocking(move || {
        let mut file = file;
        loop {
            let mut buf = vec![0u8; 64 * 1024];
            let chunk = match file.read(&mut buf) {
                Ok(0) => return,
                Ok(n) => {
                    buf.truncate(n);
                    Ok(Bytes::from(buf))
                }
                Err(e) => Err(e),
            };
            let failed = chunk.is_err();
            if sender.blocking_send(chunk).is_err() || failed {
                return; // the client went away, or the read failed (the response ends short)
            }
        }
    });
    let stream =
        futures_util::stream::unfold(receiver, |mut rx| async { rx.recv().await.map(|item| (item, rx)) });
    let disposition = format!("attachment; filename*=UTF-8''{}", percent_encoded(&att.stored_name));
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (header::CONTENT_DISPOSITION, disposition),
            (header::CONTENT_LENGTH, att.size.to_string()),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_string()),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}

/// `DELETE cards/{id}/attachments/{attachment}`: `kanban attach-rm`; answers with the removed attachment.
pub async fn remove(
    State(app): State<Arc<App>>,
    Path((slug, id, attachment)): Path<(String, String, i64)>,
) -> Answer {
    let removed = app
        .on_board(slug, move |desk| {
            find(desk, &id, attachment)?;
            let att = ops_attachments::remove(desk, attachment, Some(&id))?;
            serde_json::to_value(att).map_err(|e| ApiError::internal(e.to_string()))
        })
        .await?;
    Ok(axum::Json(removed).into_response())
}

/// RFC 8187 encoding of a file name for `Content-Disposition`.
fn percent_encoded(name: &str) -> String {
    name.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}
