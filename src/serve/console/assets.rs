//! The console's files, embedded in the binary at build time (no CDN, nothing read from disk).

pub struct Asset {
    pub content_type: &'static str,
    pub bytes: &'static [u8],
}

macro_rules! embedded {
    ($($name:literal => $content_type:literal),* $(,)?) => {
        &[$(($name, Asset { content_type: $content_type, bytes: include_bytes!(concat!("assets/", $name)) })),*]
    };
}

/// Every file the page loads, by the name it has under `/console/`.
static ASSETS: &[(&str, Asset)] = embedded! {
    "index.html" => "text/html; charset=utf-8",
    "style.css" => "text/css; charset=utf-8",
    "app.js" => "text/javascript; charset=utf-8",
    "api.js" => "text/javascript; charset=utf-8",
    "live.js" => "text/javascript; charset=utf-8",
    "log-buffer.js" => "text/javascript; charset=utf-8",
    "format.js" => "text/javascript; charset=utf-8",
    "charts.js" => "text/javascript; charset=utf-8",
    "session.js" => "text/javascript; charset=utf-8",
    "health.js" => "text/javascript; charset=utf-8",
    "executions.js" => "text/javascript; charset=utf-8",
    "execution.js" => "text/javascript; charset=utf-8",
    "result.js" => "text/javascript; charset=utf-8",
    "dashboard.js" => "text/javascript; charset=utf-8",
    "signalr.min.js" => "text/javascript; charset=utf-8",
    "signalr.LICENSE.txt" => "text/plain; charset=utf-8",
};

pub fn find(name: &str) -> Option<&'static Asset> {
    ASSETS
        .iter()
        .find(|(file, _)| *file == name)
        .map(|(_, asset)| asset)
}

#[cfg(test)]
mod tests {
    use super::*;

    const JS: &str = "text/javascript; charset=utf-8";

    #[test]
    fn every_script_the_page_imports_is_embedded() {
        for (name, asset) in ASSETS {
            let text = String::from_utf8_lossy(asset.bytes);
            if asset.content_type == JS {
                for line in text.lines().filter(|l| l.starts_with("import ")) {
                    let target = line
                        .split(['"', '\''])
                        .nth(1)
                        .unwrap_or_else(|| panic!("{name}: {line}"));
                    let file = target.trim_start_matches("./");
                    assert!(
                        find(file).is_some(),
                        "{name} imports {target}, not embedded"
                    );
                }
            }
        }
        let index = String::from_utf8_lossy(find("index.html").unwrap().bytes);
        for src in index
            .split("src=\"")
            .skip(1)
            .chain(index.split("href=\"").skip(1))
        {
            let path = src.split('"').next().unwrap();
            if let Some(file) = path.strip_prefix("/console/") {
                assert!(
                    find(file).is_some(),
                    "index.html loads {path}, not embedded"
                );
            }
        }
    }
}
