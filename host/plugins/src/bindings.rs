//! Host-side bindings, one module per released contract version
//! (`wit/0.1.0`, `wit/0.2.0`) plus the host's private `local-fs`
//! (`wit/host`). Every version's `types` interface is the same, so all of
//! them share one set of Rust types ([`types`], generated from the newest);
//! wasmtime checks records and enums by their field and case names, so a
//! 0.1 component's values pass through them unchanged. A version whose
//! types differ will need types and conversions of its own.

/// The host's private import for its own `fs` connector, and the shared types.
pub mod private {
    wasmtime::component::bindgen!({
        path: ["../../wit/0.2.0", "../../wit/host"],
        world: "kast:host/fs-plugin",
    });
}

pub use private::kast::connector::types;
pub use private::kast::host::local_fs;

/// `kast:connector@0.1.0`: a whole object per call, handles as numbers.
pub mod v0_1 {
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
            exports: { default: async },
            with: { "kast:connector/types@0.1.0": crate::bindings::types },
        });
    }

    pub mod destination {
        wasmtime::component::bindgen!({
            path: "../../wit/0.1.0",
            world: "destination",
            exports: { default: async },
            with: { "kast:connector/types@0.1.0": crate::bindings::types },
        });
    }
}

/// `kast:connector@0.2.0`: objects, files and listings as resources, in parts.
pub mod v0_2 {
    pub mod storage {
        wasmtime::component::bindgen!({
            path: "../../wit/0.2.0",
            world: "storage",
            exports: { default: async },
            with: { "kast:connector/types@0.2.0": crate::bindings::types },
        });
    }

    pub mod source {
        wasmtime::component::bindgen!({
            path: "../../wit/0.2.0",
            world: "source",
            exports: { default: async },
            with: { "kast:connector/types@0.2.0": crate::bindings::types },
        });
    }

    pub mod destination {
        wasmtime::component::bindgen!({
            path: "../../wit/0.2.0",
            world: "destination",
            exports: { default: async },
            with: { "kast:connector/types@0.2.0": crate::bindings::types },
        });
    }
}

#[cfg(test)]
mod tests {
    /// Released versions are frozen: components built against them exist.
    /// A change to the contract is a new version in a folder of its own.
    #[test]
    fn released_contracts_are_frozen() {
        let released: [(&str, &[u8], &str); 2] = [
            (
                "0.1.0",
                include_bytes!("../../../wit/0.1.0/connector.wit"),
                "4aa78bc22f52ba45eef9619d19ff17c0f2f523bbbd18a191e7cd74f69710e3eb",
            ),
            (
                "0.2.0",
                include_bytes!("../../../wit/0.2.0/connector.wit"),
                "86926890ff45535c6350419c8f1b0a3c3acbb60612a880f06f9199e97b59b818",
            ),
        ];
        for (version, text, pinned) in released {
            assert_eq!(
                blake3::hash(text).to_hex().as_str(),
                pinned,
                "wit/{version} changed; released versions are frozen"
            );
        }
    }

    /// The SDK ships its own copy of the newest contract (a published crate
    /// cannot reach outside itself); it must be that contract, byte for byte.
    #[test]
    fn the_sdk_carries_the_newest_contract() {
        assert_eq!(
            include_str!("../../../sdk/wit/connector.wit"),
            include_str!("../../../wit/0.2.0/connector.wit"),
            "sdk/wit/connector.wit must be a copy of wit/0.2.0/connector.wit"
        );
    }
}
