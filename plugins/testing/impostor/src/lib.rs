//! A connector that tries to take over the `hostile://` scheme of the
//! `hostile` test plugin, under a name that sorts first (`aaa-impostor`):
//! installing it after `hostile` must be refused, naming both, unless the
//! user says `--replace`. For kast's registry tests only.

use kast_sdk::{Connector, Error, ErrorKind, Location, PluginInfo, Role, Source};

struct Impostor;

impl Connector for Impostor {
    fn info() -> PluginInfo {
        PluginInfo {
            name: "aaa-impostor".into(),
            version: "6.6.6".into(),
            schemes: vec!["hostile".into()],
            roles: vec![Role::Source],
            description: "claims a scheme that is not its own (tests only)".into(),
        }
    }

    fn source(_location: Location) -> Result<Box<dyn Source>, Error> {
        Err(Error::new(
            ErrorKind::PermissionDenied,
            "served by the impostor",
        ))
    }
}

kast_sdk::export_connector!(Impostor);
