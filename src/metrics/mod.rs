//! Everything `/metrics` serves: the aggregates (kept current by the store's
//! writer), the scrape-time collector that turns them into gauges, the
//! exporter's self-metrics, and the two exposition formats.

pub mod collector;
pub mod exposition;
pub mod failing;
pub mod formula;
pub mod process;
pub mod regression;
pub mod report;
pub mod sync;
pub mod telemetry;

use std::sync::{Arc, RwLock};

use prometheus_client::registry::Registry;

use crate::aggregate::Aggregates;
use crate::config::Config;
use crate::telemetry::Telemetry;
use collector::EscapeCollector;

/// The registry behind `/metrics`.
pub struct Metrics {
    registry: Registry,
}

impl Metrics {
    /// Registers the escape-rate collector, the self-metrics and the process
    /// metrics.
    pub fn new(
        config: Arc<Config>,
        aggregates: Arc<RwLock<Aggregates>>,
        telemetry: &Telemetry,
    ) -> Self {
        let mut registry = Registry::default();
        telemetry::register(telemetry, &mut registry);
        registry.register_collector(Box::new(EscapeCollector::new(config, aggregates)));
        registry.register_collector(Box::new(process::ProcessCollector));
        Self { registry }
    }

    /// Encodes every metric as OpenMetrics text.
    pub fn openmetrics(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::with_capacity(64 * 1024);
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}
