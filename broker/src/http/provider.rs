//! The example provider services of the demo cities (`broker example-provider`): a city's own
//! API behind mutual TLS, serving realistic data with personal fields, as the broker fetches it.
//! Besides the data paths, `/slow` never answers in time and `/garbage` sends unusable bytes, so
//! the broker's handling of failing providers can be shown and tested.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use actix_web::{App, HttpResponse, HttpServer, web};

use super::BackgroundServer;

/// One path the provider serves.
#[derive(Debug, Clone)]
pub struct Resource {
    pub path: String,
    pub content_type: String,
    pub body: Vec<u8>,
}

/// Starts a provider on `listen` (port 0 for an ephemeral one).
pub fn start(listen: SocketAddr, tls: rustls::ServerConfig, resources: Vec<Resource>) -> std::io::Result<BackgroundServer> {
    let resources = Arc::new(resources);
    BackgroundServer::spawn(move || {
        let server = HttpServer::new(move || {
            let mut app = App::new().route("/slow", web::get().to(slow)).route(
                "/garbage",
                web::get().to(|| async { HttpResponse::Ok().content_type("application/json").body("[{\"name\": \"Erika\", ") }),
            );
            for r in resources.iter() {
                let r = r.clone();
                app = app.route(
                    &r.path.clone(),
                    web::get().to(move || {
                        let r = r.clone();
                        async move { HttpResponse::Ok().content_type(r.content_type.clone()).body(r.body.clone()) }
                    }),
                );
            }
            app
        })
        .workers(1)
        .bind_rustls_0_23(listen, tls)?;
        let addrs = server.addrs();
        Ok((server.run(), addrs))
    })
}

async fn slow() -> HttpResponse {
    tokio::time::sleep(Duration::from_secs(30)).await;
    HttpResponse::Ok().content_type("application/json").body("[]")
}
