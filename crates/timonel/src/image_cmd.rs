//! `timonel image import|ls|rm`: the node agent's image store from the command line. Safe
//! while the agent runs: the store takes a file lock for every write.

use std::path::{Path, PathBuf};

use anyhow::Context;
use timonel_runtime::image::{ImageRecord, ImageStore, ImportOptions, Reference};

const DEFAULT_DATA_DIR: &str = "/var/lib/timonel/agent";

#[derive(clap::Subcommand)]
pub enum ImageCommand {
    /// Import the images of an OCI image layout or `docker save` archive (tar, or tar.gz).
    Import {
        file: PathBuf,
        /// The node agent's data dir (the store is its `images/`).
        #[arg(long, default_value = DEFAULT_DATA_DIR)]
        data_dir: PathBuf,
        /// Repository for images whose `org.opencontainers.image.ref.name` is only a tag.
        #[arg(long)]
        base_name: Option<String>,
    },
    /// List images, as `crictl images` does.
    Ls {
        #[arg(long, default_value = DEFAULT_DATA_DIR)]
        data_dir: PathBuf,
    },
    /// Remove an image (by reference, digest reference or ID) and the layers only it used.
    Rm {
        reference: String,
        #[arg(long, default_value = DEFAULT_DATA_DIR)]
        data_dir: PathBuf,
    },
}

pub fn run(command: ImageCommand) -> anyhow::Result<()> {
    match command {
        ImageCommand::Import {
            file,
            data_dir,
            base_name,
        } => {
            let store = open(&data_dir)?;
            let images = store
                .import_archive(&file, &ImportOptions { base_name })
                .with_context(|| format!("cannot import {}", file.display()))?;
            for image in images {
                let names = if image.repo_tags.is_empty() {
                    "<none>".to_string()
                } else {
                    image.repo_tags.join(", ")
                };
                println!("Imported {names} ({})", image.id);
            }
            Ok(())
        }
        ImageCommand::Ls { data_dir } => {
            let store = open(&data_dir)?;
            print!("{}", format_table(&store.list()?));
            Ok(())
        }
        ImageCommand::Rm {
            reference,
            data_dir,
        } => {
            let store = open(&data_dir)?;
            let image = store
                .remove(&reference)
                .with_context(|| format!("cannot remove image {reference:?}"))?;
            let names: Vec<&String> = image.repo_tags.iter().chain(&image.repo_digests).collect();
            if names.is_empty() {
                println!("Deleted: {}", image.id);
            }
            for name in names {
                println!("Deleted: {name}");
            }
            Ok(())
        }
    }
}

fn open(data_dir: &Path) -> anyhow::Result<ImageStore> {
    ImageStore::open(data_dir)
        .with_context(|| format!("cannot open the image store in {}", data_dir.display()))
}

/// `crictl images`' table: one row per tag (`<none>` for untagged images), columns padded as
/// its tabwriter does (minimum width 20, padding 3).
fn format_table(images: &[ImageRecord]) -> String {
    let mut rows = vec![[
        "IMAGE".to_string(),
        "TAG".to_string(),
        "IMAGE ID".to_string(),
        "SIZE".to_string(),
    ]];
    for image in images {
        let id = image.id.short().to_string();
        let size = human_size(image.size);
        let mut named = false;
        for tag in &image.repo_tags {
            if let Ok(reference) = Reference::parse(tag) {
                let tag = reference
                    .tag
                    .clone()
                    .unwrap_or_else(|| "<none>".to_string());
                rows.push([reference.name(), tag, id.clone(), size.clone()]);
                named = true;
            }
        }
        if !named {
            let name = image
                .repo_digests
                .first()
                .and_then(|d| d.split_once('@'))
                .map_or("<none>".to_string(), |(name, _)| name.to_string());
            rows.push([name, "<none>".to_string(), id, size]);
        }
    }
    let widths: Vec<usize> = (0..3)
        .map(|column| {
            rows.iter()
                .map(|row| row[column].len() + 3)
                .max()
                .unwrap_or(0)
                .max(20)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        for (column, width) in widths.iter().enumerate() {
            out.push_str(&format!("{:<width$}", row[column]));
        }
        out.push_str(&row[3]);
        out.push('\n');
    }
    out
}

/// docker/go-units `HumanSizeWithPrecision(size, 3)`: decimal units, 3 significant digits.
fn human_size(size: u64) -> String {
    const UNITS: [&str; 9] = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"];
    let mut value = size as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    // `%.3g`: three significant digits, trailing zeros dropped.
    let decimals = if value >= 100.0 {
        0
    } else if value >= 10.0 {
        1
    } else {
        2
    };
    let mut text = format!("{value:.decimals$}");
    if text.contains('.') {
        text = text.trim_end_matches('0').trim_end_matches('.').to_string();
    }
    format!("{text}{}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::human_size;

    #[test]
    fn sizes_as_crictl_prints_them() {
        assert_eq!(human_size(0), "0B");
        assert_eq!(human_size(999), "999B");
        assert_eq!(human_size(1000), "1kB");
        assert_eq!(human_size(2_234_567), "2.23MB");
        assert_eq!(human_size(12_500_000), "12.5MB");
        assert_eq!(human_size(123_456_789), "123MB");
        assert_eq!(human_size(1_500_000_000), "1.5GB");
    }
}
