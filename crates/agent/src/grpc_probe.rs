//! gRPC probes: the standard health service (`grpc.health.v1.Health/Check`), as kubelet
//! calls it — plaintext, the probe's `service` in the request, healthy only on SERVING.

use std::time::Duration;

use crate::probes::Outcome;

#[derive(Clone, PartialEq, prost::Message)]
pub struct HealthCheckRequest {
    #[prost(string, tag = "1")]
    pub service: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct HealthCheckResponse {
    #[prost(int32, tag = "1")]
    pub status: i32,
}

pub const CHECK_PATH: &str = "/grpc.health.v1.Health/Check";
pub const SERVING: i32 = 1;

fn status_name(status: i32) -> &'static str {
    match status {
        0 => "UNKNOWN",
        1 => "SERVING",
        2 => "NOT_SERVING",
        3 => "SERVICE_UNKNOWN",
        _ => "UNKNOWN",
    }
}

/// One health check of `host:port` for `service` within `timeout`.
pub async fn check(host: &str, port: u16, service: &str, timeout: Duration) -> Outcome {
    let address = format!("{host}:{port}");
    let endpoint = match tonic::transport::Endpoint::from_shared(format!("http://{address}")) {
        Ok(e) => e.connect_timeout(timeout).timeout(timeout),
        Err(e) => return Outcome::Failure(format!("invalid address {address:?}: {e}")),
    };
    let channel = match endpoint.connect().await {
        Ok(c) => c,
        Err(e) => {
            return Outcome::Failure(format!(
                "timeout: failed to connect service {address:?} within {}s: {e}",
                timeout.as_secs()
            ));
        }
    };
    let mut grpc = tonic::client::Grpc::new(channel);
    if let Err(e) = grpc.ready().await {
        return Outcome::Failure(format!("failed to connect service {address:?}: {e}"));
    }
    let request = tonic::Request::new(HealthCheckRequest {
        service: service.to_string(),
    });
    let reply = grpc
        .unary(
            request,
            http::uri::PathAndQuery::from_static(CHECK_PATH),
            tonic_prost::ProstCodec::<HealthCheckRequest, HealthCheckResponse>::default(),
        )
        .await;
    match reply {
        Ok(r) if r.get_ref().status == SERVING => Outcome::Success,
        Ok(r) => Outcome::Failure(format!(
            "service unhealthy (responded with {:?})",
            status_name(r.get_ref().status)
        )),
        Err(status) => Outcome::Failure(format!(
            "rpc error: code = {:?} desc = {}",
            status.code(),
            status.message()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::convert::Infallible;
    use tonic::codegen::{BoxFuture, Service, http as tonic_http};

    /// A health service answering every check with `status`.
    #[derive(Clone)]
    struct Health(i32);

    impl tonic::server::UnaryService<HealthCheckRequest> for Health {
        type Response = HealthCheckResponse;
        type Future =
            futures::future::Ready<Result<tonic::Response<Self::Response>, tonic::Status>>;
        fn call(&mut self, request: tonic::Request<HealthCheckRequest>) -> Self::Future {
            let status = if request.get_ref().service == "missing" {
                3
            } else {
                self.0
            };
            futures::future::ready(Ok(tonic::Response::new(HealthCheckResponse { status })))
        }
    }

    impl Service<tonic_http::Request<tonic::body::Body>> for Health {
        type Response = tonic_http::Response<tonic::body::Body>;
        type Error = Infallible;
        type Future = BoxFuture<Self::Response, Self::Error>;
        fn poll_ready(
            &mut self,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Result<(), Self::Error>> {
            std::task::Poll::Ready(Ok(()))
        }
        fn call(&mut self, request: tonic_http::Request<tonic::body::Body>) -> Self::Future {
            let service = self.clone();
            Box::pin(async move {
                let mut grpc = tonic::server::Grpc::new(tonic_prost::ProstCodec::<
                    HealthCheckResponse,
                    HealthCheckRequest,
                >::default());
                Ok(grpc.unary(service, request).await)
            })
        }
    }

    impl tonic::server::NamedService for Health {
        const NAME: &'static str = "grpc.health.v1.Health";
    }

    async fn serve(status: i32) -> u16 {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let incoming = tokio_stream_from(listener);
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(Health(status))
                .serve_with_incoming(incoming),
        );
        port
    }

    fn tokio_stream_from(
        listener: tokio::net::TcpListener,
    ) -> impl futures::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
        futures::stream::unfold(listener, |listener| async move {
            let accepted = listener.accept().await.map(|(s, _)| s);
            Some((accepted, listener))
        })
    }

    #[tokio::test]
    async fn serving_passes_anything_else_fails_with_upstream_messages() {
        let timeout = Duration::from_secs(2);
        let serving = serve(SERVING).await;
        assert_eq!(
            check("127.0.0.1", serving, "", timeout).await,
            Outcome::Success
        );
        assert_eq!(
            check("127.0.0.1", serving, "missing", timeout).await,
            Outcome::Failure("service unhealthy (responded with \"SERVICE_UNKNOWN\")".into())
        );
        let not_serving = serve(2).await;
        assert_eq!(
            check("127.0.0.1", not_serving, "", timeout).await,
            Outcome::Failure("service unhealthy (responded with \"NOT_SERVING\")".into())
        );
        // Nothing listening.
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let Outcome::Failure(message) = check("127.0.0.1", closed, "", timeout).await else {
            panic!("a closed port passed");
        };
        assert!(
            message.starts_with("timeout: failed to connect service"),
            "{message}"
        );
    }
}
