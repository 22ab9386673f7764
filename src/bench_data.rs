//! `bench-data`: a synthetic tree for benchmarks.

use crate::app::App;

pub async fn generate(_app: &App, _orgs: u32) -> anyhow::Result<()> {
    anyhow::bail!("bench-data is not built yet")
}
