//! A configuration watch: follow one node's value. Each
//! [`ConfigWatch::changed`] waits for the watch to fire and then **re-reads**
//! (the event carries no data; what matters is the value now, not what the
//! change was), leaving a new watch in the same read, so no update between
//! two reads goes unnoticed.

use bytes::Bytes;

use crate::client::{ClientError, CoordClient, Read, Watch};
use crate::types::{CoordError, Stat};

/// Follows the value of one node.
pub struct ConfigWatch {
    client: CoordClient,
    path: String,
    watch: Option<Watch>,
    value: Option<(Bytes, Stat)>,
}

impl ConfigWatch {
    /// Reads `path` now and leaves a watch.
    pub async fn new(client: &CoordClient, path: &str) -> Result<ConfigWatch, ClientError> {
        let mut config = ConfigWatch {
            client: client.clone(),
            path: path.to_string(),
            watch: None,
            value: None,
        };
        config.reread().await?;
        Ok(config)
    }

    /// The value as last read (`None` while the node does not exist).
    pub fn current(&self) -> Option<&(Bytes, Stat)> {
        self.value.as_ref()
    }

    /// Waits for the next change and returns the new value.
    pub async fn changed(&mut self) -> Result<Option<&(Bytes, Stat)>, ClientError> {
        loop {
            let before = self
                .value
                .as_ref()
                .map(|(_, stat)| (stat.created, stat.version));
            if let Some(watch) = self.watch.take() {
                watch.await?;
            }
            self.reread().await?;
            let after = self
                .value
                .as_ref()
                .map(|(_, stat)| (stat.created, stat.version));
            if after != before {
                return Ok(self.value.as_ref());
            }
        }
    }

    async fn reread(&mut self) -> Result<(), ClientError> {
        loop {
            match self.client.get(&self.path, Read::watch()).await {
                Ok((data, stat, watch)) => {
                    self.value = Some((data, stat));
                    self.watch = watch;
                    return Ok(());
                }
                Err(ClientError::Coord(CoordError::NoNode(_))) => {
                    let (stat, watch) = self.client.exists(&self.path, Read::watch()).await?;
                    if stat.is_some() {
                        continue; // created in between: read it
                    }
                    self.value = None;
                    self.watch = watch;
                    return Ok(());
                }
                Err(error) => return Err(error),
            }
        }
    }
}
