//! A connector whose `info()` sleeps for a minute: `kast plugin install`
//! must give up on it at its 10-second limit, not wait the minute out.
//! For kast's sandbox tests only.

use kast_sdk::{Connector, Error, Location, PluginInfo, Role, Source};

struct Stalling;

impl Connector for Stalling {
    fn info() -> PluginInfo {
        std::thread::sleep(std::time::Duration::from_secs(60));
        PluginInfo {
            name: "stalling".into(),
            version: "0.0.1".into(),
            schemes: vec!["stalling".into()],
            roles: vec![Role::Source],
            description: "answers info() after a minute (tests only)".into(),
        }
    }

    fn source(_location: Location) -> Result<Box<dyn Source>, Error> {
        Err(Error::unsupported("reading"))
    }
}

kast_sdk::export_connector!(Stalling);
