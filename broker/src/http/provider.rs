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

/// The demo's closing act: two real cross-city requests through the running broker as
/// Heidenheim's system, one permitted (and minimised), one denied. Returns what to print.
pub fn demo_requests(broker: SocketAddr, client_tls: rustls::ClientConfig) -> String {
    let dataset = "aalen-buergerbuero-termine";
    let ask = |purpose: &'static str| {
        let url = format!("https://{broker}/v1/datasets/{dataset}/data?purpose=https://w3id.org/dpv%23{purpose}");
        let tls = Arc::new(client_tls.clone());
        async move {
            let client = awc::Client::builder()
                .connector(awc::Connector::new().rustls_0_23(tls))
                .timeout(Duration::from_secs(30))
                .finish();
            let mut resp = client.get(&url).send().await.map_err(|e| e.to_string())?;
            let status = resp.status();
            let body = resp.body().await.map_err(|e| e.to_string())?;
            Ok::<_, String>((status, String::from_utf8_lossy(&body).into_owned()))
        }
    };
    let outcome = actix_web::rt::System::new().block_on(async {
        let permitted = ask("ImprovePublicServices").await;
        let denied = ask("Marketing").await;
        (permitted, denied)
    });
    let show = |label: &str, r: Result<(actix_web::http::StatusCode, String), String>| match r {
        Ok((status, body)) => format!("{label}: {status}\n  {body}\n"),
        Err(e) => format!("{label}: failed: {e}\n"),
    };
    format!(
        "Two cross-city requests just made through the broker as Heidenheim's system:\n{}{}",
        show(
            "For dpv:ImprovePublicServices (permitted; aggregated, the group of 4 suppressed, no names)",
            outcome.0
        ),
        show("For dpv:Marketing (denied; the failing constraint is named)", outcome.1),
    )
}
