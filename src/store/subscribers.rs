//! [`Subscribers`]: the application's [`Subscriber`] implementations by the names its
//! configuration declares, for [`EventStore::start_subscribers`].

use std::collections::HashSet;
use std::fmt;

use futures::future::BoxFuture;

use crate::error::{Error, Result};
use crate::runtime::SubscriberHandle;
use crate::store::EventStore;
use crate::subscriber::Subscriber;
use crate::subscription::SubscriptionOptions;

/// Starts one implementation: store, stream, name, options.
pub(crate) type Starter = Box<
    dyn FnOnce(EventStore, String, String, SubscriptionOptions) -> BoxFuture<'static, Result<SubscriberHandle>> + Send,
>;

/// The [`Subscriber`] implementations of an application, by the names its configuration
/// declares them under (`[[subscriptions]]`), for [`EventStore::start_subscribers`].
///
/// ```
/// use chronik::{HandlerError, RecordedEvent, Subscriber, Subscribers};
///
/// struct Projector;
/// impl Subscriber for Projector {
///     async fn handle(&mut self, _events: &[RecordedEvent]) -> Result<(), HandlerError> {
///         Ok(())
///     }
/// }
///
/// let subscribers = Subscribers::new().add("projector", Projector);
/// assert_eq!(subscribers.names().collect::<Vec<_>>(), ["projector"]);
/// ```
///
/// [`EventStore::start_subscribers`]: crate::EventStore::start_subscribers
#[derive(Default)]
pub struct Subscribers {
    starters: Vec<(String, Starter)>,
}

impl fmt::Debug for Subscribers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.names()).finish()
    }
}

impl Subscribers {
    /// No implementations yet.
    pub fn new() -> Self {
        Subscribers::default()
    }

    /// Adds the implementation of the subscription declared as `name`.
    #[must_use]
    pub fn add<S: Subscriber>(mut self, name: impl Into<String>, subscriber: S) -> Self {
        let starter: Starter = Box::new(move |store: EventStore, stream: String, name: String, options| {
            Box::pin(async move { store.start_subscriber(&stream, &name, options, subscriber).await })
        });
        self.starters.push((name.into(), starter));
        self
    }

    /// The names given implementations, in the order they were added.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.starters.iter().map(|(name, _)| name.as_str())
    }

    /// Checks the names against the declared ones: each declared name needs exactly one
    /// implementation and each implementation a declaration.
    pub(crate) fn check(&self, declared: &[&str]) -> Result<()> {
        let mut given = HashSet::new();
        for name in self.names() {
            if !given.insert(name) {
                return Err(Error::config(
                    "subscriptions",
                    format!("`{name}` was given two Subscriber implementations"),
                ));
            }
            if !declared.contains(&name) {
                return Err(Error::config(
                    "subscriptions",
                    format!(
                        "a Subscriber implementation was given for `{name}`, but no [[subscriptions]] entry declares it"
                    ),
                ));
            }
        }
        if let Some(missing) = declared.iter().find(|name| !given.contains(*name)) {
            return Err(Error::config(
                "subscriptions",
                format!(
                    "`{missing}` is declared in [[subscriptions]] but no Subscriber implementation was given for it"
                ),
            ));
        }
        Ok(())
    }

    /// Takes out the starter of `name`.
    pub(crate) fn take(&mut self, name: &str) -> Option<Starter> {
        let index = self.starters.iter().position(|(n, _)| n == name)?;
        Some(self.starters.swap_remove(index).1)
    }
}
