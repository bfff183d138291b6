//! One benchmark run on one backend: set up, then measure each peer and its subject back to
//! back with the same concurrency in the same process.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use tonic::transport::Channel;

use crate::counting::Snapshot;
use crate::fixture::{Backend, Fixture, Member, Ws};
use crate::measure::{Sample, drive};
use crate::workers::{CreateExperiment, GetProject, Health, RawCreate, RawRead, Whoami, Worker, project_key};

/// How the gRPC workers reach the portal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ChannelMode {
    /// Every worker has its own HTTP/2 connection.
    PerTask,
    /// All workers multiplex over one HTTP/2 connection.
    Shared,
}

/// What to measure and how hard.
#[derive(Debug, Clone)]
pub struct Settings {
    pub duration: Duration,
    pub warmup: Duration,
    pub concurrency: usize,
    pub channel: ChannelMode,
    /// Also measure `CreateExperiment` with one user and project per worker (no shared records).
    pub spread: bool,
}

/// The measured operations, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpKind {
    RawRead,
    Health,
    Whoami,
    GetProject,
    RawCreate,
    CreateExperiment,
    CreateExperimentSpread,
}

impl OpKind {
    /// The label printed in the table.
    pub fn label(self) -> &'static str {
        match self {
            OpKind::RawRead => "(a) raw store get (project key)",
            OpKind::Health => "(b0) Health, no token: gRPC + 1 store read",
            OpKind::Whoami => "(b1) Whoami: gRPC + authentication only",
            OpKind::GetProject => "(b) authorized GetProject (gRPC)",
            OpKind::RawCreate => "(c) raw store txn (CAS create)",
            OpKind::CreateExperiment => "(d) authorized CreateExperiment, one project",
            OpKind::CreateExperimentSpread => "(e) authorized CreateExperiment, project per task",
        }
    }

    /// The raw-store operation this one is compared with.
    pub fn peer(self) -> Option<OpKind> {
        match self {
            OpKind::Health | OpKind::Whoami | OpKind::GetProject => Some(OpKind::RawRead),
            OpKind::CreateExperiment | OpKind::CreateExperimentSpread => Some(OpKind::RawCreate),
            OpKind::RawRead | OpKind::RawCreate => None,
        }
    }
}

/// One measured operation.
#[derive(Debug)]
pub struct Row {
    pub op: OpKind,
    pub sample: Sample,
    /// Store calls made while this operation ran (warm-up included; see `Sample::attempts`).
    pub calls: Snapshot,
}

/// Everything measured on one backend.
#[derive(Debug)]
pub struct BackendReport {
    pub backend: Backend,
    pub rows: Vec<Row>,
}

impl BackendReport {
    /// The row for `op`, if it was measured.
    pub fn row(&self, op: OpKind) -> Option<&Row> {
        self.rows.iter().find(|r| r.op == op)
    }

    /// `op`'s rate divided by its peer's rate.
    pub fn ratio(&self, op: OpKind) -> Option<f64> {
        let peer = self.row(op.peer()?)?.sample.rate();
        let subject = self.row(op)?.sample.rate();
        (peer > 0.0).then(|| subject / peer)
    }
}

/// Starts `backend`, measures every operation, stops it again (even when a measurement fails).
pub async fn run_backend(backend: Backend, settings: &Settings) -> anyhow::Result<BackendReport> {
    let fixture = Fixture::start(backend).await?;
    let result = measure_all(&fixture, settings).await;
    let stopped = fixture.stop().await;
    let report = result?;
    stopped?;
    Ok(report)
}

async fn measure_all(fixture: &Fixture, settings: &Settings) -> anyhow::Result<BackendReport> {
    let c = settings.concurrency.max(1);
    eprintln!("[{}] setting up accounts and projects", fixture.backend);
    let main = fixture.member("bench", "benchp").await?;
    let spread = if settings.spread {
        let mut members = Vec::with_capacity(c);
        for i in 0..c {
            members.push(fixture.member(&format!("bu{i}"), &format!("bp{i}")).await?);
        }
        members
    } else {
        Vec::new()
    };
    let shared = fixture.channel().await?;
    let mut rows = Vec::new();

    let key = project_key(&main.project);
    let workers = (0..c).map(|_| RawRead { store: fixture.store.clone(), key: key.clone() }).collect();
    rows.push(measure(fixture, settings, OpKind::RawRead, workers).await?);

    let mut workers = Vec::with_capacity(c);
    for _ in 0..c {
        let channel = connection(fixture, settings, &shared).await?;
        workers.push(Health { client: Fixture::anonymous(channel) });
    }
    rows.push(measure(fixture, settings, OpKind::Health, workers).await?);

    let mut workers = Vec::with_capacity(c);
    for _ in 0..c {
        workers.push(Whoami { client: client(fixture, settings, &shared, &main).await? });
    }
    rows.push(measure(fixture, settings, OpKind::Whoami, workers).await?);

    let mut workers = Vec::with_capacity(c);
    for _ in 0..c {
        let client = client(fixture, settings, &shared, &main).await?;
        workers.push(GetProject { client, project: main.project.clone() });
    }
    rows.push(measure(fixture, settings, OpKind::GetProject, workers).await?);

    let next = Arc::new(AtomicU64::new(0));
    let workers = (0..c).map(|_| RawCreate::new(fixture.store.clone(), next.clone())).collect();
    rows.push(measure(fixture, settings, OpKind::RawCreate, workers).await?);

    let next = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::with_capacity(c);
    for _ in 0..c {
        let client = client(fixture, settings, &shared, &main).await?;
        workers.push(CreateExperiment { client, project: main.project.clone(), next: next.clone() });
    }
    rows.push(measure(fixture, settings, OpKind::CreateExperiment, workers).await?);

    if !spread.is_empty() {
        let next = Arc::new(AtomicU64::new(0));
        let mut workers = Vec::with_capacity(c);
        for member in &spread {
            let client = client(fixture, settings, &shared, member).await?;
            workers.push(CreateExperiment { client, project: member.project.clone(), next: next.clone() });
        }
        rows.push(measure(fixture, settings, OpKind::CreateExperimentSpread, workers).await?);
    }
    Ok(BackendReport { backend: fixture.backend, rows })
}

/// The shared connection or a new one, as the settings say.
async fn connection(fixture: &Fixture, settings: &Settings, shared: &Channel) -> anyhow::Result<Channel> {
    Ok(match settings.channel {
        ChannelMode::Shared => shared.clone(),
        ChannelMode::PerTask => fixture.channel().await?,
    })
}

/// A client for `member` over the shared connection or a new one of its own.
async fn client(
    fixture: &Fixture,
    settings: &Settings,
    shared: &Channel,
    member: &Member,
) -> anyhow::Result<Ws> {
    Ok(Fixture::workspace(connection(fixture, settings, shared).await?, &member.token))
}

async fn measure<W: Worker>(
    fixture: &Fixture,
    settings: &Settings,
    op: OpKind,
    workers: Vec<W>,
) -> anyhow::Result<Row> {
    eprintln!("[{}] {}", fixture.backend, op.label());
    let before = fixture.counts.snapshot();
    let sample = drive(workers, settings.warmup, settings.duration).await?;
    let calls = fixture.counts.snapshot().since(before);
    Ok(Row { op, sample, calls })
}
