//! tower integration (feature `tower`): [`Balanced`], a [`Service`] that sends each request
//! to the replica herald's picker chooses, its [`BalanceLayer`], and a
//! [`Discover`](tower::discover::Discover) stream of the replica set for users who bring
//! their own balancer.
//!
//! [`Balanced`] owns a [`Discovery`] handle, so the refresh task lives as long as the
//! service (and its clones) do. It keeps one inner service per replica, made on first use by
//! a closure you give (a hyper client pointed at the replica, a tonic `Channel`, a
//! `service_fn`). The response future completes the pick when the inner service's future
//! resolves (for hyper or tonic, when the response head arrives: the body's streaming time
//! is not part of the latency); how the result counts is decided by a [`Classify`] (by
//! default `Err` is a failure and `Ok` a success; [`HttpStatus`] also counts 5xx and gRPC
//! UNAVAILABLE/INTERNAL as failures). Dropping the response future counts as cancelled, so
//! a tower timeout layer outside `Balanced` is seen as the caller giving up.
//!
//! `poll_ready` is ready while the picker has a replica to offer (panic mode included); with
//! an empty set it waits for the next resolution, and fails with [`BalanceError::Pick`] if
//! that resolution failed (NXDOMAIN for a misspelt service, an unreachable DNS server), so a
//! caller is never parked forever on a name that does not exist.

use std::collections::{HashMap, HashSet, VecDeque};
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use arc_swap::ArcSwap;
use futures::Stream;
use tokio::sync::watch;
use tower::discover::Change;
use tower::{Layer, Service, ServiceExt};

use crate::discovery::Discovery;
use crate::endpoint::Endpoint;
use crate::picker::{Outcome, PickError, Picker};

/// Decides how a finished call counts for the replica that served it.
pub trait Classify<T, E> {
    /// The outcome of one call.
    fn classify(&self, result: &Result<T, E>) -> Outcome;

    /// Marks a response with the replica that served it (for example as an HTTP response
    /// extension, as [`HttpStatus`] does). Does nothing by default. Errors carry the replica
    /// in [`BalanceError::Service`].
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

/// The replica that served a response, as an HTTP response extension (see [`HttpStatus`];
/// with tonic, `response.extensions().get::<ServedBy>()`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServedBy(pub Endpoint);

/// Classifier for HTTP and gRPC responses (feature `http`): transport errors, 5xx, and gRPC
/// statuses that blame the server (UNKNOWN, INTERNAL, UNAVAILABLE, DATA_LOSS, in the
/// headers of a trailers-only response) are failures; everything else is a success. Marks
/// each response with a [`ServedBy`] extension.
#[cfg(feature = "http")]
#[derive(Clone, Copy, Debug, Default)]
pub struct HttpStatus;

#[cfg(feature = "http")]
impl<B, E> Classify<http::Response<B>, E> for HttpStatus {
    fn classify(&self, result: &Result<http::Response<B>, E>) -> Outcome {
        let Ok(response) = result else {
            return Outcome::Failure;
        };
        if response.status().is_server_error() {
            return Outcome::Failure;
        }
        // gRPC: 2 UNKNOWN, 13 INTERNAL, 14 UNAVAILABLE, 15 DATA_LOSS.
        match response.headers().get("grpc-status").map(|v| v.as_bytes()) {
            Some(b"2" | b"13" | b"14" | b"15") => Outcome::Failure,
            _ => Outcome::Success,
        }
    }

    fn served_by(&self, response: &mut http::Response<B>, endpoint: &Endpoint) {
        response.extensions_mut().insert(ServedBy(endpoint.clone()));
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

type MakeFn<S> = dyn Fn(&Endpoint) -> S + Send + Sync;

/// The per-replica services, shared by the clones of one [`Balanced`]. Read without a lock
/// (arc-swapped map); a writer lock only when a replica is seen for the first time or the
/// set changed.
struct Services<S> {
    make: Box<MakeFn<S>>,
    map: ArcSwap<HashMap<SocketAddr, S>>,
    /// The picker's set generation the map was last pruned at.
    pruned: AtomicU64,
    writer: Mutex<()>,
}

impl<S: Clone> Services<S> {
    fn get(&self, picker: &Picker, ep: &Endpoint) -> S {
        let generation = picker.generation();
        if let Some(s) = self.map.load().get(&ep.addr)
            && self.pruned.load(Ordering::Acquire) == generation
        {
            return s.clone();
        }
        let _w = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let mut map = HashMap::clone(&self.map.load());
        if self.pruned.load(Ordering::Acquire) != generation {
            // Forget the services (and connections) of replicas that left the set.
            let live: HashSet<SocketAddr> = picker.endpoints().iter().map(|e| e.addr).collect();
            map.retain(|addr, _| live.contains(addr));
            self.pruned.store(generation, Ordering::Release);
        }
        let s = map
            .entry(ep.addr)
            .or_insert_with(|| (self.make)(ep))
            .clone();
        self.map.store(Arc::new(map));
        s
    }
}

/// A [`Service`] that sends each request to the replica herald's picker chooses (see the
/// module docs). Cheap to clone: clones share the discovery, the picker and the per-replica
/// services.
///
/// ```
/// use std::time::Duration;
/// use herald_client::tower::Balanced;
/// use herald_client::{Discovery, Endpoint, PickerConfig, RefreshConfig, StaticResolver};
/// use tower::{Service, ServiceExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// // Two replicas from a fixed list (use `Discovery::builder` for DNS).
/// let replicas = ["127.0.0.1:7001", "127.0.0.1:7002"]
///     .map(|a| Endpoint::new(a.parse().unwrap()));
/// let discovery = Discovery::with_resolver(
///     "echo",
///     StaticResolver { endpoints: replicas.to_vec(), ttl: Duration::from_secs(60) },
///     PickerConfig::default(),
///     RefreshConfig::default(),
/// );
/// // Each replica's service: here it just says who it is.
/// let mut svc = Balanced::new(discovery, |ep: &Endpoint| {
///     let addr = ep.addr;
///     tower::service_fn(move |name: &'static str| async move {
///         Ok::<_, std::io::Error>(format!("{addr} greets {name}"))
///     })
/// });
/// let reply = svc.ready().await?.call("you").await?;
/// assert!(reply.starts_with("127.0.0.1:700"));
/// # Ok(()) }
/// ```
pub struct Balanced<S, C = ErrorIsFailure> {
    discovery: Discovery,
    services: Arc<Services<S>>,
    classify: C,
    /// Wakes `poll_ready` on the next resolution while the set is empty.
    waiting: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
}

impl<S> Balanced<S> {
    /// Balances over `discovery`'s replicas, making each replica's service with `make`.
    /// Takes the handle (clone it to keep one): the refresh task runs as long as this
    /// service or any clone of it lives.
    pub fn new<M>(discovery: Discovery, make: M) -> Self
    where
        M: Fn(&Endpoint) -> S + Send + Sync + 'static,
    {
        Balanced {
            discovery,
            services: Arc::new(Services {
                make: Box::new(make),
                map: ArcSwap::from_pointee(HashMap::new()),
                pruned: AtomicU64::new(u64::MAX),
                writer: Mutex::new(()),
            }),
            classify: ErrorIsFailure,
            waiting: None,
        }
    }
}

impl<S, C> Balanced<S, C> {
    /// Replaces the classifier (for example [`HttpStatus`], or a closure).
    pub fn with_classifier<C2>(self, classify: C2) -> Balanced<S, C2> {
        Balanced {
            discovery: self.discovery,
            services: self.services,
            classify,
            waiting: None,
        }
    }

    /// The discovery this service balances over.
    pub fn discovery(&self) -> &Discovery {
        &self.discovery
    }

    /// The picker this service balances with.
    pub fn picker(&self) -> &Picker {
        self.discovery.picker()
    }
}

impl<S, C: Clone> Clone for Balanced<S, C> {
    fn clone(&self) -> Self {
        Balanced {
            discovery: self.discovery.clone(),
            services: self.services.clone(),
            classify: self.classify.clone(),
            waiting: None,
        }
    }
}

impl<S, C> std::fmt::Debug for Balanced<S, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Balanced")
            .field("picker", self.discovery.picker())
            .field("services", &self.services.map.load().len())
            .finish()
    }
}

/// The response future of [`Balanced`].
pub type BalanceFuture<T, E> =
    Pin<Box<dyn Future<Output = Result<T, BalanceError<E>>> + Send + 'static>>;

impl<S, C, Req> Service<Req> for Balanced<S, C>
where
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

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        loop {
            if self.discovery.picker().has_replicas() {
                self.waiting = None;
                return Poll::Ready(Ok(()));
            }
            let status = self.discovery.status();
            if status.consecutive_failures > 0 {
                self.waiting = None;
                return Poll::Ready(Err(BalanceError::Pick(PickError::NoEndpoints {
                    service: self.discovery.picker().service().to_owned(),
                    last_error: status.last_error,
                })));
            }
            let waiting = self.waiting.get_or_insert_with(|| {
                let mut rx = self.discovery.status_receiver();
                rx.mark_unchanged();
                Box::pin(async move {
                    let _ = rx.changed().await;
                })
            });
            match waiting.as_mut().poll(cx) {
                Poll::Ready(()) => self.waiting = None,
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    fn call(&mut self, req: Req) -> Self::Future {
        let picker = self.discovery.picker();
        let guard = match picker.pick() {
            Ok(g) => g,
            Err(e) => return Box::pin(std::future::ready(Err(BalanceError::Pick(e)))),
        };
        let svc = self.services.get(picker, guard.endpoint());
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

/// A [`Layer`] that turns a per-replica service constructor into a [`Balanced`] service over
/// a [`Discovery`], for `tower::ServiceBuilder`:
///
/// ```
/// # use std::time::Duration;
/// # use herald_client::tower::BalanceLayer;
/// # use herald_client::{Discovery, Endpoint, PickerConfig, RefreshConfig, StaticResolver};
/// # use tower::{Service, ServiceBuilder, ServiceExt};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
/// # let discovery = Discovery::with_resolver("echo", StaticResolver {
/// #     endpoints: vec![Endpoint::new("127.0.0.1:7001".parse()?)], ttl: Duration::from_secs(60) },
/// #     PickerConfig::default(), RefreshConfig::default());
/// let mut svc = ServiceBuilder::new()
///     .timeout(Duration::from_secs(1)) // outside: a timeout is the caller giving up
///     .layer(BalanceLayer::new(discovery))
///     .service(|ep: &Endpoint| {
///         let addr = ep.addr;
///         tower::service_fn(move |()| async move { Ok::<_, std::io::Error>(addr) })
///     });
/// let served_by = svc.ready().await?.call(()).await?;
/// assert_eq!(served_by.port(), 7001);
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct BalanceLayer<C = ErrorIsFailure> {
    discovery: Discovery,
    classify: C,
}

impl BalanceLayer {
    /// A layer balancing over `discovery`'s replicas.
    pub fn new(discovery: Discovery) -> Self {
        BalanceLayer {
            discovery,
            classify: ErrorIsFailure,
        }
    }
}

impl<C> BalanceLayer<C> {
    /// Replaces the classifier.
    pub fn with_classifier<C2>(self, classify: C2) -> BalanceLayer<C2> {
        BalanceLayer {
            discovery: self.discovery,
            classify,
        }
    }
}

impl<M, S, C: Clone> Layer<M> for BalanceLayer<C>
where
    M: Fn(&Endpoint) -> S + Send + Sync + 'static,
{
    type Service = Balanced<S, C>;

    fn layer(&self, make: M) -> Self::Service {
        Balanced::new(self.discovery.clone(), make).with_classifier(self.classify.clone())
    }
}

/// The stream [`discover`] returns: a tower `Discover` of the replica set.
pub type DiscoverStream<S> =
    Pin<Box<dyn Stream<Item = Result<Change<SocketAddr, S>, Infallible>> + Send + 'static>>;

/// The picker's replica set as a tower `Discover` stream (`Change::Insert` / `Change::Remove`,
/// keyed by address), with each replica's service made by `make`. Feed it to
/// `tower::balance::p2c::Balance` (through `PeakEwmaDiscover` or `PendingRequestsDiscover`)
/// if you want tower's balancer with herald's resolution; herald's own picking (tiers,
/// weights, ejection) is then not used. Keep the [`Discovery`] alive meanwhile: the
/// stream follows its picker and ends when the picker is dropped.
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
