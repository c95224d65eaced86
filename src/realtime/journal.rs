//! A message sink that appends each message as one JSON line and flushes before reporting
//! success, so a batch is only checkpointed once its messages are on disk.

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use tokio::io::AsyncWriteExt;
use tokio::sync::Mutex;

use super::{HubMessage, MessageSink, SinkError};

#[derive(Debug)]
pub struct JournalSink {
    path: PathBuf,
    file: Mutex<tokio::fs::File>,
}

impl JournalSink {
    pub async fn open(path: &Path) -> std::io::Result<Self> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            tokio::fs::create_dir_all(parent).await?;
        }
        let file = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .await?;
        Ok(JournalSink {
            path: path.to_owned(),
            file: Mutex::new(file),
        })
    }
}

#[async_trait]
impl MessageSink for JournalSink {
    fn name(&self) -> &'static str {
        "journal"
    }

    async fn send(&self, messages: &[HubMessage]) -> Result<(), SinkError> {
        let mut buffer = Vec::new();
        for message in messages {
            serde_json::to_writer(&mut buffer, message)
                .map_err(|e| SinkError::Send(format!("encoding message: {e}")))?;
            buffer.push(b'\n');
        }
        let io_error = |e: std::io::Error| SinkError::Send(format!("{}: {e}", self.path.display()));
        let mut file = self.file.lock().await;
        file.write_all(&buffer).await.map_err(io_error)?;
        file.flush().await.map_err(io_error)?;
        file.sync_data().await.map_err(io_error)
    }
}
