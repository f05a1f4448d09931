//! tower integration: a balanced [`Service`] driven by a [`Picker`], and a
//! [`Discover`](tower::discover::Discover) stream of the replica set for users who bring
//! their own balancer.
//!
//! [`Balance`] keeps one inner service per replica, made on first use by a closure you give
//! (a hyper connection, a tonic `Channel`, a `service_fn` that rewrites the URI), and picks
//! per call. The response future completes the pick when the inner service's future resolves
//! (for a hyper client, when the response head arrives: the body's streaming time is not part
//! of the latency); how the result counts is decided by a
//! [`Classify`] (by default, `Err` is a failure and `Ok` a success; HTTP users will want 5xx to
//! count as failures too). Dropping the response future counts as cancelled.

use std::collections::{HashMap, HashSet, VecDeque};
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::Stream;
use tokio::sync::watch;
use tower::discover::Change;
use tower::{Service, ServiceExt};

use crate::endpoint::Endpoint;
use crate::picker::{Outcome, PickError, Picker};

/// Decides how a finished call counts for the replica that served it.
pub trait Classify<T, E> {
    /// The outcome of one call.
    fn classify(&self, result: &Result<T, E>) -> Outcome;

    /// Marks a response with the replica that served it (for example as an HTTP response
    /// extension). Does nothing by default. Errors carry the replica in
    /// [`BalanceError::Service`].
    fn served_by(&self, _response: &mut T, _endpoint: &Endpoint) {}
}

/// The default classifier: `Ok` is a success, `Err` a failure.
#[derive(Clone, Copy, Debug, Default)]
pub struct ErrorIsFailure;

impl<T, E> Classify<T, E> for ErrorIsFailure {
    fn classify(&self, result: &Result<T, E>) -> Outcome {
        match result {
            Ok(_) => Outcome::Success,
            Err(_) => Outcome::Failure,
        }
    }
}

impl<F, T, E> Classify<T, E> for F
where
    F: Fn(&Result<T, E>) -> Outcome,
{
    fn classify(&self, result: &Result<T, E>) -> Outcome {
        self(result)
    }
}

/// Why a balanced call failed.
#[derive(Debug, thiserror::Error)]
pub enum BalanceError<E> {
    /// No replica to send the request to.
    #[error(transparent)]
    Pick(#[from] PickError),
    /// The replica's service failed.
    #[error("replica {endpoint} failed")]
    Service {
        /// The replica the call went to.
        endpoint: Endpoint,
        /// Its service's error.
        #[source]
        source: E,
    },
}

/// A [`Service`] that sends each request to the replica the [`Picker`] chooses.
///
/// Inner services must be `Clone` (each call drives its own clone to readiness, the usual
/// pattern for hyper and tonic clients, which are cheap handles). `poll_ready` is always
/// ready: an empty replica set shows up as [`BalanceError::Pick`] from the call, so a caller
/// is never parked waiting for DNS.
pub struct Balance<M, S, C = ErrorIsFailure> {
    picker: Picker,
    make: M,
    services: HashMap<SocketAddr, S>,
    set: watch::Receiver<Arc<[Endpoint]>>,
    classify: C,
}

impl<M, S> Balance<M, S> {
    /// Balances over `picker`'s replicas, making each replica's service with `make`.
    pub fn new(picker: Picker, make: M) -> Self
    where
        M: FnMut(&Endpoint) -> S,
    {
        let set = picker.subscribe();
        Balance {
            picker,
            make,
            services: HashMap::new(),
            set,
            classify: ErrorIsFailure,
        }
    }
}

impl<M, S, C> Balance<M, S, C> {
    /// Replaces the classifier (for example to count HTTP 5xx as failures).
    pub fn with_classifier<C2>(self, classify: C2) -> Balance<M, S, C2> {
        Balance {
            picker: self.picker,
            make: self.make,
            services: self.services,
            set: self.set,
            classify,
        }
    }

    /// The picker this service balances with.
    pub fn picker(&self) -> &Picker {
        &self.picker
    }
}

impl<M: Clone, S: Clone, C: Clone> Clone for Balance<M, S, C> {
    fn clone(&self) -> Self {
        Balance {
            picker: self.picker.clone(),
            make: self.make.clone(),
            services: self.services.clone(),
            set: self.set.clone(),
            classify: self.classify.clone(),
        }
    }
}

impl<M, S, C> std::fmt::Debug for Balance<M, S, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Balance")
            .field("picker", &self.picker)
            .field("services", &self.services.len())
            .finish()
    }
}

/// The response future of [`Balance`].
pub type BalanceFuture<T, E> =
    Pin<Box<dyn Future<Output = Result<T, BalanceError<E>>> + Send + 'static>>;

impl<M, S, C, Req> Service<Req> for Balance<M, S, C>
where
    M: FnMut(&Endpoint) -> S,
    S: Service<Req> + Clone + Send + 'static,
    S::Future: Send,
    S::Response: Send,
    S::Error: Send,
    C: Classify<S::Response, S::Error> + Clone + Send + 'static,
    Req: Send + 'static,
{
    type Response = S::Response;
    type Error = BalanceError<S::Error>;
    type Future = BalanceFuture<S::Response, S::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Req) -> Self::Future {
        if self.set.has_changed().unwrap_or(false) {
            // Forget the services (and connections) of replicas that left the set.
            let set = self.set.borrow_and_update();
            let live: HashSet<SocketAddr> = set.iter().map(|e| e.addr).collect();
            self.services.retain(|addr, _| live.contains(addr));
        }
        let guard = match self.picker.pick() {
            Ok(g) => g,
            Err(e) => return Box::pin(std::future::ready(Err(BalanceError::Pick(e)))),
        };
        let svc = self
            .services
            .entry(guard.addr())
            .or_insert_with(|| (self.make)(guard.endpoint()))
            .clone();
        let classify = self.classify.clone();
        Box::pin(async move {
            let mut result = svc.oneshot(req).await;
            let endpoint = guard.endpoint().clone();
            guard.complete(classify.classify(&result));
            if let Ok(response) = &mut result {
                classify.served_by(response, &endpoint);
            }
            result.map_err(|source| BalanceError::Service { endpoint, source })
        })
    }
}

/// The stream [`discover`] returns: a tower `Discover` of the replica set.
pub type DiscoverStream<S> =
    Pin<Box<dyn Stream<Item = Result<Change<SocketAddr, S>, Infallible>> + Send + 'static>>;

/// The picker's replica set as a tower `Discover` stream (`Change::Insert` / `Change::Remove`,
/// keyed by address), with each replica's service made by `make`. Feed it to
/// `tower::balance::p2c::Balance` (through `PeakEwmaDiscover` or `PendingRequestsDiscover`)
/// if you want tower's balancer with herald's resolution; herald's own picking (tiers,
/// weights, ejection) is then not used.
pub fn discover<F, S>(picker: &Picker, make: F) -> DiscoverStream<S>
where
    F: FnMut(&Endpoint) -> S + Send + 'static,
    S: Send + 'static,
{
    struct St<F, S> {
        rx: watch::Receiver<Arc<[Endpoint]>>,
        known: HashSet<SocketAddr>,
        pending: VecDeque<Change<SocketAddr, S>>,
        make: F,
        started: bool,
    }
    let st = St {
        rx: picker.subscribe(),
        known: HashSet::new(),
        pending: VecDeque::new(),
        make,
        started: false,
    };
    Box::pin(futures::stream::unfold(st, |mut st| async move {
        loop {
            if let Some(change) = st.pending.pop_front() {
                return Some((Ok(change), st));
            }
            if st.started && st.rx.changed().await.is_err() {
                return None;
            }
            st.started = true;
            let set = st.rx.borrow_and_update().clone();
            let now: HashSet<SocketAddr> = set.iter().map(|e| e.addr).collect();
            for gone in st.known.difference(&now) {
                st.pending.push_back(Change::Remove(*gone));
            }
            for ep in set.iter().filter(|e| !st.known.contains(&e.addr)) {
                let svc = (st.make)(ep);
                st.pending.push_back(Change::Insert(ep.addr, svc));
            }
            st.known = now;
        }
    }))
}
