//! The reference for `scripts/single.py`: a bare axum server on the same
//! stack as the exporter (axum, tokio's multi-threaded runtime, hyper
//! HTTP/1.1) whose `POST /api/v1/events` reads the body and answers 200 `{}`.
//! What the exporter's durable single-event write is compared with.
//!
//! `cargo build --release --example noop && target/release/examples/noop 127.0.0.1:10998`

use axum::Router;
use axum::body::Bytes;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::post;

async fn noop(body: Bytes) -> impl IntoResponse {
    std::hint::black_box(body);
    ([(header::CONTENT_TYPE, "application/json")], "{}")
}

fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:10998".into());
    tokio::runtime::Runtime::new()?.block_on(async {
        let app = Router::new().route("/api/v1/events", post(noop));
        let listener = tokio::net::TcpListener::bind(&addr).await?;
        axum::serve(listener, app).await
    })
}
