//! Host-side bindings generated from `wit/0.1.0/connector.wit`: one module per
//! world the host instantiates, all sharing the `types` interface.

/// The host's own import (`local-fs`) and the shared types.
pub mod imports {
    wasmtime::component::bindgen!({ path: "../../wit/0.1.0", world: "local-fs-user" });
}

pub use imports::kast::connector::local_fs;
pub use imports::kast::connector::types;

pub mod storage {
    wasmtime::component::bindgen!({
        path: "../../wit/0.1.0",
        world: "storage",
        // Calls run as futures, so a deadline can end one that waits.
        exports: { default: async },
        with: { "kast:connector/types@0.1.0": crate::bindings::types },
    });
}

pub mod source {
    wasmtime::component::bindgen!({
        path: "../../wit/0.1.0",
        world: "source",
        // Calls run as futures, so a deadline can end one that waits.
        exports: { default: async },
        with: { "kast:connector/types@0.1.0": crate::bindings::types },
    });
}

pub mod destination {
    wasmtime::component::bindgen!({
        path: "../../wit/0.1.0",
        world: "destination",
        // Calls run as futures, so a deadline can end one that waits.
        exports: { default: async },
        with: { "kast:connector/types@0.1.0": crate::bindings::types },
    });
}

#[cfg(test)]
mod tests {
    /// `wit/0.1.0` is frozen: components built against it exist. A change
    /// to the contract is a new version in a folder of its own.
    #[test]
    fn released_contracts_are_frozen() {
        let released = include_bytes!("../../../wit/0.1.0/connector.wit");
        assert_eq!(
            blake3::hash(released).to_hex().as_str(),
            "4aa78bc22f52ba45eef9619d19ff17c0f2f523bbbd18a191e7cd74f69710e3eb",
            "wit/0.1.0 changed; released versions are frozen"
        );
    }
}
