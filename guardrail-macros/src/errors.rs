//! [`Errors`]: collects `syn::Error`s so one compile reports every independent mistake.

use syn::Error;

/// Every error found so far, combined into one `syn::Error` (each keeps its own span).
#[derive(Default)]
pub(crate) struct Errors(Option<Error>);

impl Errors {
    /// Adds an error.
    pub(crate) fn push(&mut self, e: Error) {
        match &mut self.0 {
            Some(all) => all.combine(e),
            None => self.0 = Some(e),
        }
    }

    /// The value of `result`, or `None` after pushing its error.
    pub(crate) fn ok<T>(&mut self, result: syn::Result<T>) -> Option<T> {
        result.map_err(|e| self.push(e)).ok()
    }

    /// `Err` of everything pushed, or `Ok(())`.
    pub(crate) fn finish(self) -> syn::Result<()> {
        match self.0 {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Everything pushed, if anything was.
    pub(crate) fn into_error(self) -> Option<Error> {
        self.0
    }
}
