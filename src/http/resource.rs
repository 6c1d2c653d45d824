//! [`Resource`]: what answers requests, one render function per method —
//! `twisted.web.resource.Resource`'s `render_GET`, `render_POST`, ...

use super::request::{Method, Request};
use super::response::Response;

/// Whether a render function answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rendered {
    /// The response is filled in.
    Done,
    /// This resource does not render this method: the site answers `405`
    /// with [`Resource::allowed_methods`] in `Allow`.
    NotAllowed,
}

/// Answers requests. Shared by every connection of a site, so `&self`:
/// keep shared state in atomics or behind your own lock.
///
/// Each `render_*` gets the request head and a [`Response`] that starts as
/// `200 OK`, `text/plain`, empty. The default for every method is
/// [`Rendered::NotAllowed`], except `HEAD`, which renders `GET` (the site
/// then sends the head without the body, as Twisted does).
pub trait Resource: Send + Sync + 'static {
    /// The methods this resource renders, as the `Allow` header lists them
    /// (`"GET, HEAD"`).
    fn allowed_methods(&self) -> &'static str;

    /// `GET`.
    fn render_get(&self, request: &Request<'_>, response: &mut Response) -> Rendered {
        let _ = (request, response);
        Rendered::NotAllowed
    }

    /// `HEAD`: by default `GET`, whose body the site drops.
    fn render_head(&self, request: &Request<'_>, response: &mut Response) -> Rendered {
        self.render_get(request, response)
    }

    /// `POST` (the body was read and discarded).
    fn render_post(&self, request: &Request<'_>, response: &mut Response) -> Rendered {
        let _ = (request, response);
        Rendered::NotAllowed
    }

    /// `PUT`.
    fn render_put(&self, request: &Request<'_>, response: &mut Response) -> Rendered {
        let _ = (request, response);
        Rendered::NotAllowed
    }

    /// `DELETE`.
    fn render_delete(&self, request: &Request<'_>, response: &mut Response) -> Rendered {
        let _ = (request, response);
        Rendered::NotAllowed
    }

    /// `OPTIONS`.
    fn render_options(&self, request: &Request<'_>, response: &mut Response) -> Rendered {
        let _ = (request, response);
        Rendered::NotAllowed
    }

    /// `PATCH`.
    fn render_patch(&self, request: &Request<'_>, response: &mut Response) -> Rendered {
        let _ = (request, response);
        Rendered::NotAllowed
    }
}

/// Calls the render function for the request's method.
pub(crate) fn render(
    resource: &dyn Resource,
    request: &Request<'_>,
    response: &mut Response,
) -> Rendered {
    match request.method {
        Method::Get => resource.render_get(request, response),
        Method::Head => resource.render_head(request, response),
        Method::Post => resource.render_post(request, response),
        Method::Put => resource.render_put(request, response),
        Method::Delete => resource.render_delete(request, response),
        Method::Options => resource.render_options(request, response),
        Method::Patch => resource.render_patch(request, response),
        Method::Other => Rendered::NotAllowed,
    }
}
