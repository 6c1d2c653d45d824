//! [`Server`]: listening sockets with their factories, run by one engine.

use std::collections::HashSet;
use std::io;
use std::sync::Arc;
use std::thread;

use super::process::ChildCommand;
use super::service::Service;
use super::{
    Model, ServerConfig, Stopper, hybrid, pool, process, reactor, thread as thread_engine,
};
use crate::endpoint::{Endpoint, Listener};
use crate::log::ContextGuard;
use crate::protocol::{Addr, Factory};

/// A server: bind its endpoints with [`Server::listen`], then
/// [`Server::run`] it (blocking) or [`Server::spawn`] it (on a thread).
///
/// ```no_run
/// use std::sync::Arc;
/// use spindle::{Endpoint, Server, ServerConfig};
/// use spindle::protocols::echo;
///
/// let mut server = Server::new(ServerConfig::default());
/// let addr = server.listen(&Endpoint::parse("tcp:1234")?, Arc::new(echo::factory()))?;
/// println!("try: nc {} {}", "127.0.0.1", addr.port().unwrap());
/// server.run()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Server {
    config: ServerConfig,
    services: Vec<Service>,
    stopper: Stopper,
}

impl Server {
    /// A server with nothing bound yet.
    pub fn new(config: ServerConfig) -> Self {
        Server {
            config,
            services: Vec::new(),
            stopper: Stopper::new(),
        }
    }

    /// Binds `endpoint` for `factory` now, so that errors (a port in use)
    /// surface before anything runs. Returns the bound address. One factory
    /// may be given several endpoints.
    pub fn listen(&mut self, endpoint: &Endpoint, factory: Arc<dyn Factory>) -> io::Result<Addr> {
        let listener = endpoint.bind()?;
        let host = listener.local_addr()?;
        self.services.push(Service {
            listener,
            factory,
            host: host.clone(),
            child: None,
        });
        Ok(host)
    }

    /// As [`Server::listen`], and names the command that serves one
    /// connection of this service in a child process, for
    /// [`Model::Process`] (the other models ignore it).
    pub fn listen_with_child(
        &mut self,
        endpoint: &Endpoint,
        factory: Arc<dyn Factory>,
        child: ChildCommand,
    ) -> io::Result<Addr> {
        let host = self.listen(endpoint, factory)?;
        if let Some(service) = self.services.last_mut() {
            service.child = Some(child);
        }
        Ok(host)
    }

    /// The addresses bound so far, in `listen` order.
    pub fn local_addrs(&self) -> Vec<Addr> {
        self.services.iter().map(|s| s.host.clone()).collect()
    }

    /// The signal that stops this server.
    pub fn stopper(&self) -> Stopper {
        self.stopper.clone()
    }

    /// The configuration.
    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    /// Serves until the stopper fires, then shuts down gracefully.
    pub fn run(self) -> io::Result<()> {
        let Server {
            config,
            services,
            stopper,
        } = self;
        if services.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "nothing to serve: no endpoint was bound",
            ));
        }
        let factories = unique_factories(&services);
        for f in &factories {
            let _ctx = ContextGuard::enter("-");
            log::info!("Starting factory {}", f.name());
            f.start_factory();
        }
        for s in &services {
            log::info!("{} starting on {}", s.factory.name(), s.host);
        }
        {
            let _ctx = ContextGuard::enter("-");
            log::info!("{}", describe_model(&config));
        }
        let result = match config.model {
            Model::Pool => pool::run(&services, Arc::new(config), &stopper),
            Model::Thread => thread_engine::run(&services, Arc::new(config), &stopper),
            Model::Process => process::run(&services, Arc::new(config), &stopper),
            Model::Reactor => reactor::run(&services, Arc::new(config), &stopper),
            Model::Hybrid => hybrid::run(&services, Arc::new(config), &stopper),
        };
        for s in services {
            let label = match &s.listener {
                Listener::Tcp(_) => format!("TCP Port {}", s.listener.port_label()),
                Listener::Unix(..) => format!("UNIX Port {}", s.listener.port_label()),
            };
            drop(s.listener);
            log::info!("({label} Closed)");
        }
        for f in &factories {
            log::info!("Stopping factory {}", f.name());
            f.stop_factory();
        }
        result
    }

    /// Runs the server on a thread of its own, for tests and embedding.
    pub fn spawn(self) -> io::Result<RunningServer> {
        let stopper = self.stopper();
        let addrs = self.local_addrs();
        let thread = thread::Builder::new()
            .name("spindle-server".into())
            .spawn(move || self.run())?;
        Ok(RunningServer {
            stopper,
            addrs,
            thread: Some(thread),
        })
    }
}

/// Each factory once, in first-listen order (one factory may serve several
/// ports, and starts and stops once).
fn unique_factories(services: &[Service]) -> Vec<Arc<dyn Factory>> {
    let mut seen = HashSet::new();
    services
        .iter()
        .filter(|s| seen.insert(Arc::as_ptr(&s.factory) as *const () as usize))
        .map(|s| s.factory.clone())
        .collect()
}

/// A server running on its own thread. Dropping it stops the server and
/// waits for it.
pub struct RunningServer {
    stopper: Stopper,
    addrs: Vec<Addr>,
    thread: Option<thread::JoinHandle<io::Result<()>>>,
}

impl RunningServer {
    /// The bound addresses, in `listen` order.
    pub fn addrs(&self) -> &[Addr] {
        &self.addrs
    }

    /// The first bound TCP address, for tests.
    pub fn tcp_addr(&self) -> std::net::SocketAddr {
        self.addrs
            .iter()
            .find_map(|a| match a {
                Addr::Tcp(a) => Some(*a),
                Addr::Unix(_) => None,
            })
            .expect("the server listens on TCP")
    }

    /// The signal that stops it.
    pub fn stopper(&self) -> Stopper {
        self.stopper.clone()
    }

    /// Stops the server and waits for its graceful shutdown.
    pub fn stop(mut self) -> io::Result<()> {
        self.stop_and_join()
    }

    fn stop_and_join(&mut self) -> io::Result<()> {
        self.stopper.stop();
        match self.thread.take() {
            Some(t) => t
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("the server thread panicked"))),
            None => Ok(()),
        }
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        let _ = self.stop_and_join();
    }
}

/// The start-up log line naming the model and its bounds, so that whoever
/// reads the log knows what limits are in force.
fn describe_model(config: &ServerConfig) -> String {
    let max = config.max_connections;
    match config.model {
        Model::Pool => format!(
            "Model pool: {} workers, {} may wait, at most {max} connections \
             (each client holds a worker until it leaves; for many idle clients use --model hybrid)",
            config.workers, config.queue
        ),
        Model::Thread => format!(
            "Model thread: a thread per connection ({} KiB stacks), at most {max} connections",
            config.stack_size / 1024
        ),
        Model::Process => {
            format!("Model process: a process per connection, at most {max} connections")
        }
        Model::Reactor => {
            format!("Model reactor: one event-loop thread, at most {max} connections")
        }
        Model::Hybrid => format!(
            "Model hybrid: a poller and {} workers, at most {max} connections",
            config.workers
        ),
    }
}
