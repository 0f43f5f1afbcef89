//! The WebSocket port's HTTP side: the upgrade at `/ws`, the browser client page at
//! `/client` (embedded in the binary), and `/` redirecting to it. Pure: request → outcome.

use crate::proto::http::{Request, Response};
use crate::proto::websocket;

/// What to do with a request on the WebSocket port.
#[derive(Debug, PartialEq, Eq)]
pub enum WebOutcome {
    /// Send this `101` response and switch the connection to WebSocket.
    Upgrade(Response),
    /// Send this response.
    Respond(Response),
}

const INDEX_HTML: &str = include_str!("../assets/client/index.html");
const APP_JS: &str = include_str!("../assets/client/app.js");
const STYLE_CSS: &str = include_str!("../assets/client/style.css");

/// Routes one request. `allowed_origins` are the configured extra WebSocket origins.
pub fn route(req: &Request, allowed_origins: &[String]) -> WebOutcome {
    if req.path == "/ws" {
        return match websocket::handshake(req, allowed_origins) {
            Ok(r) => WebOutcome::Upgrade(r),
            Err(r) => WebOutcome::Respond(r),
        };
    }
    let asset = match req.path.as_str() {
        "/" => None,
        "/client" | "/client/" => Some(("text/html; charset=utf-8", INDEX_HTML)),
        "/client/app.js" => Some(("text/javascript; charset=utf-8", APP_JS)),
        "/client/style.css" => Some(("text/css; charset=utf-8", STYLE_CSS)),
        _ => {
            return WebOutcome::Respond(Response::text(
                404,
                "Not Found. The chat page is at /client, the WebSocket at /ws.\n",
            ))
        }
    };
    if req.method != "GET" && req.method != "HEAD" {
        return WebOutcome::Respond(
            Response::text(405, "Method Not Allowed\n").header("Allow", "GET, HEAD"),
        );
    }
    let Some((content_type, body)) = asset else {
        return WebOutcome::Respond(
            Response::new(302)
                .header("Location", "/client")
                .header("Content-Type", "text/plain; charset=utf-8")
                .body(b"The chat page is at /client\n".to_vec()),
        );
    };
    WebOutcome::Respond(
        Response::new(200)
            .header("Content-Type", content_type)
            .header("Content-Security-Policy", csp(req.header("host")))
            .header("X-Content-Type-Options", "nosniff")
            .header("Referrer-Policy", "no-referrer")
            .header("Cache-Control", "no-cache")
            .static_body(body.as_bytes()),
    )
}

/// The page may load only its own files and open a socket only to its own host.
fn csp(host: Option<&str>) -> String {
    let mut policy = String::from(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         base-uri 'none'; form-action 'none'; frame-ancestors 'none'; connect-src 'self'",
    );
    // Older browsers do not let 'self' cover ws: URLs; name the host, if it is a plain one.
    if let Some(host) = host.filter(|h| {
        !h.is_empty()
            && h.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
    }) {
        policy.push_str(&format!(" ws://{host} wss://{host}"));
    }
    policy
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(path: &str) -> Request {
        Request {
            method: "GET".into(),
            path: path.into(),
            version: 1,
            headers: vec![("host".into(), "localhost:4004".into())],
            ..Request::default()
        }
    }

    fn respond(outcome: WebOutcome) -> Response {
        match outcome {
            WebOutcome::Respond(r) => r,
            WebOutcome::Upgrade(r) => panic!("unexpected upgrade {r:?}"),
        }
    }

    #[test]
    fn serves_the_page_with_a_strict_policy() {
        let r = respond(route(&get("/client"), &[]));
        assert_eq!(r.status, 200);
        let csp = r
            .headers
            .iter()
            .find(|(n, _)| *n == "Content-Security-Policy")
            .unwrap();
        assert!(csp
            .1
            .contains("connect-src 'self' ws://localhost:4004 wss://localhost:4004"));
        assert!(csp.1.contains("script-src 'self'"));
        assert!(r
            .headers
            .contains(&("X-Content-Type-Options", "nosniff".to_string())));
        assert_eq!(respond(route(&get("/client/app.js"), &[])).status, 200);
        assert_eq!(respond(route(&get("/client/style.css"), &[])).status, 200);
    }

    #[test]
    fn root_redirects_and_unknown_paths_are_404() {
        let r = respond(route(&get("/"), &[]));
        assert_eq!(r.status, 302);
        assert!(r.headers.contains(&("Location", "/client".to_string())));
        assert_eq!(respond(route(&get("/nope"), &[])).status, 404);
        let mut post = get("/client");
        post.method = "POST".into();
        assert_eq!(respond(route(&post, &[])).status, 405);
    }

    #[test]
    fn hostile_host_is_not_put_in_the_policy() {
        assert!(!csp(Some("a; script-src *")).contains("script-src *"));
    }

    #[test]
    fn plain_get_on_ws_is_400() {
        assert_eq!(respond(route(&get("/ws"), &[])).status, 400);
    }
}
