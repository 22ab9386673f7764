//! The demo tree (DESIGN.md section 4, `demo`).

use crate::app::App;

pub async fn prepare(_app: &App) -> anyhow::Result<()> {
    anyhow::bail!("the demo is not built yet")
}
