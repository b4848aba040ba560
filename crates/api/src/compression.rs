//! Response compression (gzip, br) for clients that ask for it with `Accept-Encoding`: lists
//! of executions and functions are JSON text that shrinks five- to tenfold, and the UI's
//! script and styles too.
//!
//! Not compressed: live streams (`text/event-stream`: each event must reach the client when it
//! is sent, not when a compressor's block fills), small answers, images, and function URL
//! answers ([`Verbatim`]): those are the function's own response, passed on as it made it (a
//! Lambda function URL does not compress either), and a body that mixes a caller's text with a
//! secret is what compression side channels (BREACH) read.

use axum::http::Response;
use tower_http::compression::predicate::{DefaultPredicate, Predicate};
use tower_http::compression::CompressionLayer;

/// Marks a response that goes out as its handler made it, never compressed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Verbatim;

/// [`DefaultPredicate`] (32 bytes or more, not gRPC, images or `text/event-stream`), and not
/// [`Verbatim`].
#[derive(Clone, Default)]
pub(crate) struct Compressible(DefaultPredicate);

impl Predicate for Compressible {
    fn should_compress<B: axum::body::HttpBody>(&self, response: &Response<B>) -> bool {
        response.extensions().get::<Verbatim>().is_none() && self.0.should_compress(response)
    }
}

pub(crate) fn layer() -> CompressionLayer<Compressible> {
    CompressionLayer::new().gzip(true).br(true).compress_when(Compressible::default())
}
