//! Writing stepgate's own answers to the downstream, and reading bounded bodies.
//!
//! An answer written without proxying leaves the request body unread: a small
//! declared body is drained (with a time bound) so the connection can be kept
//! alive; anything else closes the connection. The body is never parsed as a
//! next request.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::StatusCode;
use pingora::http::ResponseHeader;
use pingora::proxy::Session;

use crate::reply::Reply;

/// The largest request body stepgate reads itself (portal JSON, forms).
pub const BODY_LIMIT: usize = 64 * 1024;
/// Bodies up to this size are drained to keep the connection alive.
const DRAIN_LIMIT: u64 = 64 * 1024;
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

/// Write `reply` as the complete response; `close` forces `Connection: close`.
pub async fn write(session: &mut Session, reply: Reply, close: bool) -> pingora::Result<()> {
    // Drain a small unread body before answering, so the connection can be
    // reused; anything else (or a drain that fails) closes it.
    let keep = !close
        && drainable(session)
        && matches!(
            tokio::time::timeout(DRAIN_TIMEOUT, session.drain_request_body()).await,
            Ok(Ok(()))
        );
    if !keep {
        session.set_keepalive(None);
    }
    let head = session.req_header().method == http::Method::HEAD;
    let mut resp = ResponseHeader::build(reply.status, Some(reply.headers.len() + 2))?;
    for (name, value) in reply.headers {
        resp.append_header(name, value)?;
    }
    resp.insert_header(http::header::CONTENT_LENGTH, reply.body.len().to_string())?;
    let empty = reply.body.is_empty() || head;
    session.write_response_header(Box::new(resp), empty).await?;
    if !empty {
        session.write_response_body(Some(reply.body), true).await?;
    }
    Ok(())
}

/// Is what is left of the request body small enough to drain?
fn drainable(session: &mut Session) -> bool {
    if session.is_body_done() {
        return true;
    }
    // A client waiting for `100 Continue` will not send its body: don't wait for it.
    if expects_continue(session) {
        return false;
    }
    let req = session.req_header();
    if req.headers.contains_key(http::header::TRANSFER_ENCODING) {
        return false;
    }
    req.headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .is_some_and(|n| n <= DRAIN_LIMIT)
}

/// Does the client wait for `100 Continue` before sending its body?
fn expects_continue(session: &Session) -> bool {
    session
        .req_header()
        .headers
        .get(http::header::EXPECT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("100-continue"))
}

/// Read the whole request body, at most [`BODY_LIMIT`] bytes; too large or
/// unreadable bodies come back as the answer to send instead.
pub async fn read_body(session: &mut Session) -> Result<Bytes, Reply> {
    let mut buf = BytesMut::new();
    if expects_continue(session) && session.write_continue_response().await.is_err() {
        return Err(Reply::new(StatusCode::BAD_REQUEST));
    }
    loop {
        match session.read_request_body().await {
            Ok(Some(chunk)) => {
                if buf.len() + chunk.len() > BODY_LIMIT {
                    return Err(Reply::new(StatusCode::PAYLOAD_TOO_LARGE)
                        .body("text/plain; charset=utf-8", "413 Payload Too Large\n"));
                }
                buf.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(buf.freeze()),
            Err(_) => {
                return Err(Reply::new(StatusCode::BAD_REQUEST).body(
                    "text/plain; charset=utf-8",
                    "400 Bad Request: unreadable body\n",
                ));
            }
        }
    }
}
