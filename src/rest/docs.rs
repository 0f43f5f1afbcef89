//! `/docs` (Swagger UI, embedded: works with no network) and the OpenAPI document at
//! `/openapi.json` and `/docs.json`.

use super::envelope::api_headers;
use super::RestConfig;
use crate::proto::http::Response;
use serde_json::Value;

/// The OpenAPI 3.0.3 description of every endpoint [`super::route`] serves.
pub(crate) const OPENAPI_JSON: &str = include_str!("openapi.json");

/// The policy of every docs response: scripts, styles, images, fonts and fetches from this
/// origin only; inline styles (Swagger UI sets `style` attributes) and `data:` images (its
/// icons) are the only exceptions; no inline scripts, no plugins, no framing.
pub(crate) const DOCS_CSP: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; \
     connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; \
     frame-ancestors 'none'";

/// One embedded file.
pub(crate) struct Asset {
    pub path: &'static str,
    pub content_type: &'static str,
    pub body: &'static [u8],
}

/// `swagger-ui-dist`'s licence, its notice and the licences of the code bundled into it.
const LICENSES: &str = concat!(
    include_str!("../../assets/docs/LICENSE"),
    "\n\n----------------------------------------------------------------------\nNOTICE\n\n",
    include_str!("../../assets/docs/NOTICE"),
    "\n\n----------------------------------------------------------------------\n\
     Licences of the code bundled into swagger-ui-bundle.js\n\n",
    include_str!("../../assets/docs/swagger-ui-bundle.js.LICENSE.txt"),
);

/// The docs page and its files. `/docs/` redirects to `/docs`.
pub(crate) const ASSETS: &[Asset] = &[
    Asset {
        path: "/docs",
        content_type: "text/html; charset=utf-8",
        body: include_bytes!("../../assets/docs/index.html"),
    },
    Asset {
        path: "/docs/init.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../assets/docs/init.js"),
    },
    Asset {
        path: "/docs/swagger-ui-bundle.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../assets/docs/swagger-ui-bundle.js"),
    },
    Asset {
        path: "/docs/swagger-ui.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../../assets/docs/swagger-ui.css"),
    },
    Asset {
        path: "/docs/LICENSE",
        content_type: "text/plain; charset=utf-8",
        body: LICENSES.as_bytes(),
    },
];

/// The embedded file at `path`, if any.
pub(crate) fn find(path: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.path == path)
}

/// Headers of every docs response.
fn docs_headers(resp: Response) -> Response {
    resp.header("Content-Security-Policy", DOCS_CSP)
        .header("X-Content-Type-Options", "nosniff")
        .header("Referrer-Policy", "no-referrer")
}

/// The answer for an embedded file.
pub(crate) fn serve(asset: &Asset) -> Response {
    let cache = if asset.path == "/docs" {
        "no-cache"
    } else {
        "public, max-age=3600"
    };
    docs_headers(
        Response::new(200)
            .header("Content-Type", asset.content_type)
            .header("Cache-Control", cache)
            .static_body(asset.body),
    )
}

/// `/docs/` → `/docs`.
pub(crate) fn redirect_to_docs() -> Response {
    docs_headers(
        Response::text(301, "Moved to /docs\n")
            .header("Location", "/docs")
            .header("Cache-Control", "no-cache"),
    )
}

/// The OpenAPI document, with the configured announcement limit filled in.
pub(crate) fn openapi(cfg: &RestConfig) -> Response {
    let body = match openapi_value(cfg) {
        Some(doc) => serde_json::to_vec_pretty(&doc).unwrap_or_else(|_| OPENAPI_JSON.into()),
        None => OPENAPI_JSON.as_bytes().to_vec(),
    };
    api_headers(
        Response::new(200)
            .header("Content-Type", "application/json")
            .body(body),
    )
}

/// [`OPENAPI_JSON`] parsed, with `maxLength` of the announcement's `message` set from `cfg`.
pub(crate) fn openapi_value(cfg: &RestConfig) -> Option<Value> {
    let mut doc: Value = serde_json::from_str(OPENAPI_JSON).ok()?;
    if let Some(slot) =
        doc.pointer_mut("/components/schemas/Announcement/properties/message/maxLength")
    {
        *slot = Value::from(cfg.max_announcement_bytes);
    }
    Some(doc)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header<'a>(resp: &'a Response, name: &str) -> Option<&'a str> {
        resp.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn every_asset_is_served_with_the_csp() {
        for asset in ASSETS {
            let resp = serve(asset);
            assert_eq!(resp.status, 200);
            assert!(!resp.body.is_empty(), "{}", asset.path);
            assert_eq!(header(&resp, "Content-Type"), Some(asset.content_type));
            assert_eq!(header(&resp, "Content-Security-Policy"), Some(DOCS_CSP));
        }
        let resp = redirect_to_docs();
        assert_eq!(resp.status, 301);
        assert_eq!(header(&resp, "Location"), Some("/docs"));
        assert_eq!(header(&resp, "Content-Security-Policy"), Some(DOCS_CSP));
    }

    #[test]
    fn csp_allows_only_self_and_no_inline_script() {
        assert!(DOCS_CSP.contains("default-src 'self'"));
        assert!(DOCS_CSP.contains("script-src 'self';"));
        assert!(!DOCS_CSP.contains("unsafe-eval"));
        assert!(!DOCS_CSP.contains("http"));
        let script_src = DOCS_CSP
            .split(';')
            .find(|d| d.trim().starts_with("script-src"))
            .unwrap();
        assert!(!script_src.contains("unsafe-inline"));
    }

    #[test]
    fn page_loads_local_files_only_and_no_inline_script() {
        let page = std::str::from_utf8(find("/docs").unwrap().body).unwrap();
        assert!(page.contains("src=\"/docs/swagger-ui-bundle.js\""));
        assert!(page.contains("src=\"/docs/init.js\""));
        assert!(page.contains("href=\"/docs/swagger-ui.css\""));
        assert!(!page.contains("http://") && !page.contains("https://"));
        // Every <script> has a src and no body.
        for part in page.split("<script").skip(1) {
            let (tag, rest) = part.split_once('>').unwrap();
            assert!(tag.contains("src=\"/docs/"), "{tag}");
            assert!(rest.starts_with("</script>"), "inline script: {rest}");
        }
        // Every file the page and its script refer to is served.
        for path in [
            "/docs/swagger-ui-bundle.js",
            "/docs/init.js",
            "/docs/swagger-ui.css",
        ] {
            assert!(find(path).is_some(), "{path}");
        }
        let init = std::str::from_utf8(find("/docs/init.js").unwrap().body).unwrap();
        assert!(init.contains("url: \"/openapi.json\""));
        assert!(init.contains("persistAuthorization: true"));
        assert!(init.contains("validatorUrl: null"));
    }

    #[test]
    fn licence_is_served() {
        let text = std::str::from_utf8(find("/docs/LICENSE").unwrap().body).unwrap();
        assert!(text.contains("Apache License"));
        assert!(text.contains("SmartBear"));
    }

    #[test]
    fn openapi_gets_the_configured_limit() {
        let cfg = RestConfig {
            admin_token: "t".into(),
            max_announcement_bytes: 300,
        };
        let doc = openapi_value(&cfg).unwrap();
        assert_eq!(
            doc.pointer("/components/schemas/Announcement/properties/message/maxLength"),
            Some(&Value::from(300))
        );
        let resp = openapi(&cfg);
        assert_eq!(resp.status, 200);
        let served: Value = serde_json::from_slice(&resp.body).unwrap();
        assert_eq!(served, doc);
    }
}
