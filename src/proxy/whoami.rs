//! `builtin:whoami`: answer with the request line and every header the
//! upstream would have received, so a user (and a test) sees what an app gets.

use http::StatusCode;
use pingora::http::RequestHeader;

use crate::reply::Reply;

/// The whoami page for an already prepared upstream request.
pub fn reply(req: &RequestHeader) -> Reply {
    let mut out = String::new();
    let target = String::from_utf8_lossy(req.raw_path());
    out.push_str(&format!("{} {} {:?}\n", req.method, target, req.version));
    for (name, value) in req.headers.iter() {
        out.push_str(name.as_str());
        out.push_str(": ");
        out.push_str(&String::from_utf8_lossy(value.as_bytes()));
        out.push('\n');
    }
    Reply::new(StatusCode::OK)
        .body("text/plain; charset=utf-8", out)
        .header(http::header::CACHE_CONTROL, "no-store")
}
