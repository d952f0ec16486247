//! The portal's stylesheet and its one script (the copy button), embedded
//! in the binary: no build step and no request to any other host.

use crate::http::error::{self, Body};
use hyper::{Response, StatusCode};

const CSS: &str = include_str!("assets/portal.css");
const COPY_JS: &str = include_str!("assets/copy.js");

/// The asset at `path`, if there is one.
pub fn get(path: &str) -> Option<Response<Body>> {
    let (content_type, text) = match path {
        "/assets/portal.css" => ("text/css; charset=utf-8", CSS),
        "/assets/copy.js" => ("text/javascript; charset=utf-8", COPY_JS),
        _ => return None,
    };
    Some(error::text(StatusCode::OK, content_type, text))
}
