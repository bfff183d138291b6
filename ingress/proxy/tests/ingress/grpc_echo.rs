//! A tonic gRPC echo service written without code generation (the proxy only needs real gRPC
//! framing, HTTP/2 and trailers): `Unary` echoes one message, `Chat` echoes a stream.

use std::net::SocketAddr;
use std::task::{Context, Poll};

use futures::StreamExt as _;
use tonic::codegen::BoxFuture;
use tonic::{Request, Response, Status, Streaming};
use tonic_prost::ProstCodec;

use super::support::BoxStream;

#[derive(Clone, PartialEq, prost::Message)]
pub struct Echo {
    #[prost(string, tag = "1")]
    pub text: String,
    #[prost(uint32, tag = "2")]
    pub seq: u32,
}

pub const UNARY: &str = "/trellis.test.Echo/Unary";
pub const CHAT: &str = "/trellis.test.Echo/Chat";

#[derive(Clone)]
struct EchoServer;

impl tonic::server::NamedService for EchoServer {
    const NAME: &'static str = "trellis.test.Echo";
}

struct UnarySvc;

impl tonic::server::UnaryService<Echo> for UnarySvc {
    type Response = Echo;
    type Future = BoxFuture<Response<Echo>, Status>;

    fn call(&mut self, request: Request<Echo>) -> Self::Future {
        Box::pin(async move {
            let mut echo = request.into_inner();
            echo.text = format!("echo: {}", echo.text);
            Ok(Response::new(echo))
        })
    }
}

struct ChatSvc;

impl tonic::server::StreamingService<Echo> for ChatSvc {
    type Response = Echo;
    type ResponseStream = BoxStream<Result<Echo, Status>>;
    type Future = BoxFuture<Response<Self::ResponseStream>, Status>;

    fn call(&mut self, request: Request<Streaming<Echo>>) -> Self::Future {
        Box::pin(async move {
            let stream = request.into_inner().map(|item| {
                item.map(|mut echo| {
                    echo.text = format!("echo: {}", echo.text);
                    echo
                })
            });
            Ok(Response::new(Box::pin(stream) as Self::ResponseStream))
        })
    }
}

impl<B> tower::Service<http::Request<B>> for EchoServer
where
    B: tonic::codegen::Body + Send + 'static,
    B::Error: Into<tonic::codegen::StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = std::convert::Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        match request.uri().path() {
            UNARY => Box::pin(async move {
                let mut grpc = tonic::server::Grpc::new(ProstCodec::<Echo, Echo>::default());
                Ok(grpc.unary(UnarySvc, request).await)
            }),
            CHAT => Box::pin(async move {
                let mut grpc = tonic::server::Grpc::new(ProstCodec::<Echo, Echo>::default());
                Ok(grpc.streaming(ChatSvc, request).await)
            }),
            _ => Box::pin(async move { Ok(Status::unimplemented("no such method").into_http()) }),
        }
    }
}

pub async fn start() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(EchoServer)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
            .await
            .unwrap();
    });
    addr
}

pub async fn client(addr: SocketAddr) -> tonic::client::Grpc<tonic::transport::Channel> {
    let channel =
        tonic::transport::Channel::from_shared(format!("http://{addr}")).unwrap().connect().await.unwrap();
    tonic::client::Grpc::new(channel)
}
