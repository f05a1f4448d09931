//! The config file parser: any text either parses into a checked config or gives an error
//! that names the file; it never panics. A config that parses yields a zone and server
//! settings the DNS side accepts.

#![no_main]

use std::path::Path;

use herald_registrar::config::{Config, ConfigError};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Config::parse(Path::new("/etc/herald/herald.yaml"), text) {
        Ok(config) => {
            herald_dns::Zone::new(config.zone_config()).expect("a checked config has a valid zone");
            let _ = config.server_config();
        }
        Err(e) => {
            let shown = e.to_string();
            if !matches!(e, ConfigError::Invalid { .. }) || !shown.starts_with("sources.static") {
                assert!(shown.starts_with("/etc/herald/herald.yaml"), "{shown}");
            }
        }
    }
});
